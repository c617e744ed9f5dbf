package devsys

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// Postgres is a PostgreSQL server with a "vcon" database owned by the
// "vcon" user (scram-sha-256). PostgreSQL refuses to run as root, so as
// root it runs as the postgres system user in a directory that user owns.
type Postgres struct {
	Host, User, Password, Database string
	Port                           int

	bin  string
	dir  string
	cred *syscall.Credential
	proc *proc
}

// DSN is the postgres:// URL of the database.
func (p *Postgres) DSN() string { return p.dsn(p.Database) }

func (p *Postgres) dsn(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(p.User, p.Password),
		Host: net.JoinHostPort(p.Host, strconv.Itoa(p.Port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// startPostgres runs PostgreSQL on the node's address, reached by pods
// through the Service postgres.databases (createManagedServices) and by
// this machine's tests at Node.IP.
func (s *System) startPostgres(ctx context.Context) error {
	bin, err := testenv.PostgresBinDir()
	if err != nil {
		return fmt.Errorf("%w (or run hack/deps.sh)", err)
	}
	password, err := randomToken(16)
	if err != nil {
		return err
	}
	uid, gid, err := postgresCredential()
	if err != nil {
		return err
	}
	p := &Postgres{Host: s.Node.IP, Port: postgresPort, User: "vcon", Password: password, Database: "vcon", bin: bin}
	if uid > 0 {
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// A directory of its own under /tmp: the postgres user may not be able
	// to reach the repository.
	if p.dir, err = os.MkdirTemp("", "vcon-dev-pg-"); err != nil {
		return err
	}
	if p.cred != nil {
		if err := os.Chown(p.dir, uid, gid); err != nil {
			return err
		}
	}
	s.Postgres = p
	pwfile := filepath.Join(p.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	if p.cred != nil {
		_ = os.Chown(pwfile, uid, gid)
	}
	data := filepath.Join(p.dir, "data")
	initdb, err := startProc(procSpec{name: "initdb", path: filepath.Join(bin, "initdb"), dir: p.dir, cred: p.cred,
		log: s.logPath("postgres-initdb"), env: []string{"LC_ALL=C", "TZ=UTC"},
		args: []string{"-D", data, "-U", p.User, "--pwfile", pwfile,
			"-A", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync"}})
	if err != nil {
		return err
	}
	s.track(initdb)
	<-initdb.exited
	os.Remove(pwfile)
	if initdb.err != nil {
		return fmt.Errorf("initdb: %v\n%s", initdb.err, logTail(initdb.log, 20))
	}
	// Pods connect from the pod range, tests from the host's end of the
	// veth: both by password, as to a managed database.
	hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(hba, "host all all 0.0.0.0/0 scram-sha-256")
	if cerr := hba.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	p.proc, err = startProc(s.inNode(procSpec{name: "postgres", path: filepath.Join(bin, "postgres"), dir: p.dir,
		log: s.logPath("postgres"), env: []string{"LC_ALL=C", "TZ=UTC"},
		args: []string{"-D", data, "-k", p.dir, "-p", strconv.Itoa(p.Port),
			"-c", "listen_addresses=" + p.Host, "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"}}, uid, gid))
	if err != nil {
		return err
	}
	s.track(p.proc)
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, p.dsn("postgres"))
		if err == nil {
			_, err = conn.Exec(cctx, "CREATE DATABASE "+pgx.Identifier{p.Database}.Sanitize())
			conn.Close(cctx)
			cancel()
			if err != nil {
				return fmt.Errorf("create database: %w", err)
			}
			return nil
		}
		cancel()
		if !p.proc.running() || time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections (%v):\n%s", err, logTail(p.proc.log, 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *Postgres) stop() {
	if p.proc != nil {
		// SIGINT: PostgreSQL's fast shutdown.
		p.proc.signal(syscall.SIGINT)
		select {
		case <-p.proc.exited:
		case <-time.After(20 * time.Second):
		}
		p.proc.stop(time.Second)
	}
	if p.dir != "" {
		_ = os.RemoveAll(p.dir)
	}
}
