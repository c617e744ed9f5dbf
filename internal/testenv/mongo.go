package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Mongo is a private MongoDB-compatible server (FerretDB with its SQLite
// backend) on a free loopback port, keeping its databases as SQLite files
// in a temporary directory. It speaks the MongoDB wire protocol, so the
// official driver's commands, upserts and error codes are a real server's.
// It is built once per machine by hack/tools.sh and stopped when the test
// ends.
type Mongo struct {
	// URL is the server's mongodb:// URL (no authentication).
	URL string

	t      testing.TB
	args   []string
	proc   process
	mu     sync.Mutex
	client *mongo.Client
}

const mongoServerName = "ferretdb"

const mongoFix = "run `hack/tools.sh ferretdb` (make tools-test does)"

// MongoServerPath finds FerretDB in bin/ of the repository (found by
// walking up from the working directory to go.mod).
func MongoServerPath() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "bin", mongoServerName)
	if !isExecutable(p) {
		return "", fmt.Errorf("MongoDB test server (FerretDB) not found at %s: %s", p, mongoFix)
	}
	return p, nil
}

// StartMongo starts the server and waits until it answers ping. Stop runs
// at t.Cleanup.
func StartMongo(t testing.TB) *Mongo {
	t.Helper()
	bin, err := MongoServerPath()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatalf("create MongoDB server directory: %v", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
	logPath := filepath.Join(dir, "server.log")
	m := &Mongo{URL: "mongodb://" + addr + "/", t: t}
	m.args = []string{bin,
		"--handler=sqlite",
		"--sqlite-url=file:" + data + "/",
		"--state-dir=" + dir,
		"--listen-addr=" + addr,
		// Its HTTP debug listener defaults to a fixed port; another
		// free one keeps parallel tests apart.
		"--debug-addr=" + net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t))),
		"--telemetry=disable",
		"--log-format=text",
		"--log-level=warn",
	}
	m.proc = process{t: t, name: "MongoDB server (FerretDB) on " + addr, logPath: logPath}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// Start starts the server (again) on the same port and directory and
// waits until it answers ping.
func (m *Mongo) Start() {
	m.t.Helper()
	logFile, err := os.OpenFile(m.proc.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		m.t.Fatalf("open MongoDB server log: %v", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(m.args[0], m.args[1:]...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// FerretDB listens once its backend is open. A TCP connection is the
	// readiness check, not a driver ping: a driver that found no server
	// waits for its next heartbeat before looking again.
	addr := strings.TrimSuffix(strings.TrimPrefix(m.URL, "mongodb://"), "/")
	m.proc.start(cmd, 30*time.Second, 20*time.Millisecond, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	// After a restart the client's pooled connections are dead; the
	// first commands on them fail, and the driver then dials anew.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := m.Client().Ping(ctx, nil)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("%s does not answer ping: %v\n%s", m.proc.name, err, m.proc.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server and waits for it; stopping twice does nothing.
// FerretDB waits up to 3 s for open connections when it shuts down, and
// storages under test keep theirs, so it is killed: its SQLite files are
// durable, and a test that restarts it finds its data.
func (m *Mongo) Stop() { m.proc.stop(syscall.SIGKILL, 10*time.Second) }

// Client is a driver client for the server, disconnected when the test
// ends.
func (m *Mongo) Client() *mongo.Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.client == nil {
		c, err := mongo.Connect(options.Client().ApplyURI(m.URL).SetServerSelectionTimeout(2 * time.Second))
		if err != nil {
			m.t.Fatalf("MongoDB client for %s: %v", m.URL, err)
		}
		m.client = c
		m.t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	}
	return m.client
}
