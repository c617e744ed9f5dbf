package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a private PostgreSQL server on a free loopback port, with its
// data directory in a temporary directory. It is stopped and removed when the
// test ends. Authentication is scram-sha-256, so a test that forgets the
// password fails as it would against a real server.
type Postgres struct {
	Host     string
	Port     int
	User     string
	Password string
	Database string

	t       testing.TB
	bin     string
	dir     string
	cred    *syscall.Credential
	proc    process
	logFile *os.File
}

const postgresFix = "PostgreSQL not found: apt-get install -y postgresql"

// PostgresBinDir finds the directory holding initdb and postgres: PATH first,
// then the newest /usr/lib/postgresql/*/bin (Debian keeps them off PATH).
func PostgresBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if isExecutable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, dir := range dirs {
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", errors.New(postgresFix)
}

func pgMajor(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// StartPostgres initialises a cluster, starts it and creates the database
// "vcon" owned by the user "vcon". Stop runs at t.Cleanup.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin, err := PostgresBinDir()
	if err != nil {
		t.Fatal(err)
	}
	p := &Postgres{
		Host:     "127.0.0.1",
		Port:     FreePort(t),
		User:     "vcon",
		Password: randomHex(t, 16),
		Database: "vcon",
		t:        t,
		bin:      bin,
	}
	// PostgreSQL refuses to run as root, so as root the server runs as the
	// postgres system user; its directory must then be reachable by that
	// user, which t.TempDir (0700, under a root-owned parent) is not.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres system user to start PostgreSQL (%v): apt-get install -y postgresql", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	p.dir, err = os.MkdirTemp("", "testenv-pg-")
	if err != nil {
		t.Fatalf("create PostgreSQL directory: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(p.dir) })
	if p.cred != nil {
		if err := os.Chown(p.dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			t.Fatalf("chown PostgreSQL directory to postgres: %v", err)
		}
	}
	p.logFile, err = os.Create(filepath.Join(p.dir, "postgres.log"))
	if err != nil {
		t.Fatalf("create PostgreSQL log: %v", err)
	}
	p.proc = process{t: t, name: "PostgreSQL on port " + strconv.Itoa(p.Port), logPath: p.logFile.Name()}
	t.Cleanup(func() { _ = p.logFile.Close() })

	p.initdb()
	p.Start()
	t.Cleanup(p.Stop)
	p.createDatabase()
	return p
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("generate a random credential: %v", err)
	}
	return hex.EncodeToString(b)
}

func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	cmd.Dir = p.dir // the postgres user cannot read the caller's working directory
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: p.cred}
	return cmd
}

func (p *Postgres) dataDir() string { return filepath.Join(p.dir, "data") }

func (p *Postgres) initdb() {
	p.t.Helper()
	pwfile := filepath.Join(p.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(p.Password+"\n"), 0o600); err != nil {
		p.t.Fatalf("write PostgreSQL password file: %v", err)
	}
	defer os.Remove(pwfile)
	if p.cred != nil {
		if err := os.Chown(pwfile, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			p.t.Fatalf("chown password file: %v", err)
		}
	}
	cmd := p.command("initdb", "-D", p.dataDir(), "-U", p.User, "--pwfile", pwfile,
		"-A", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("initdb: %v\n%s", err, out)
	}
}

func (p *Postgres) createDatabase() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.dsn("postgres"))
	if err != nil {
		p.t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{p.Database}.Sanitize()); err != nil {
		p.t.Fatalf("create database %s: %v", p.Database, err)
	}
}

// DSN is the postgres:// URL of the database, password included.
func (p *Postgres) DSN() string { return p.dsn(p.Database) }

func (p *Postgres) dsn(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(p.User, p.Password),
		Host:     net.JoinHostPort(p.Host, strconv.Itoa(p.Port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Conn returns a new connection to the database, closed when the test ends.
// A connection does not survive Stop; take a new one after Start.
func (p *Postgres) Conn() *pgx.Conn {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN())
	if err != nil {
		p.t.Fatalf("connect to PostgreSQL: %v", err)
	}
	p.t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// Start starts the server (again, after Stop) on the same port and data
// directory and waits until it accepts a connection.
func (p *Postgres) Start() {
	p.t.Helper()
	cmd := p.command("postgres", "-D", p.dataDir(), "-k", p.dir,
		"-p", strconv.Itoa(p.Port),
		"-c", "listen_addresses="+p.Host,
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off")
	cmd.Stdout = p.logFile
	cmd.Stderr = p.logFile
	p.proc.start(cmd, 30*time.Second, 50*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, p.dsn("postgres"))
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
}

// Stop shuts the server down (fast shutdown: open sessions are ended) and
// kills whatever is left of its process group. Stopping a stopped server
// does nothing.
func (p *Postgres) Stop() { p.proc.stop(syscall.SIGINT, 15*time.Second) }

// String names the server without its password, for test logs.
func (p *Postgres) String() string {
	return fmt.Sprintf("postgres://%s@%s/%s", p.User, net.JoinHostPort(p.Host, strconv.Itoa(p.Port)), p.Database)
}

// Freeze stops the server and its backends (SIGSTOP) as a hung host would:
// connections stay open and nothing answers. Thaw resumes it; the test's
// cleanup thaws a frozen server before it is stopped.
func (p *Postgres) Freeze() {
	p.proc.signalTree(syscall.SIGSTOP)
	p.t.Cleanup(p.Thaw)
}

// Thaw resumes a frozen server.
func (p *Postgres) Thaw() { p.proc.signalTree(syscall.SIGCONT) }
