package devsys

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// Postgres is a private PostgreSQL server with a "vcon" database owned by
// the "vcon" user (scram-sha-256). PostgreSQL refuses to run as root, so as
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

func (s *System) startPostgres(ctx context.Context) error {
	bin, err := testenv.PostgresBinDir()
	if err != nil {
		return fmt.Errorf("%w (or run hack/deps.sh)", err)
	}
	port, err := s.port(0)
	if err != nil {
		return err
	}
	password, err := randomToken(16)
	if err != nil {
		return err
	}
	p := &Postgres{Host: "127.0.0.1", Port: port, User: "vcon", Password: password, Database: "vcon", bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root needs the postgres system user (%v): apt-get install -y postgresql", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// A directory of its own under /tmp: the postgres user may not be able
	// to reach the repository.
	if p.dir, err = os.MkdirTemp("", "vcon-dev-pg-"); err != nil {
		return err
	}
	if p.cred != nil {
		if err := os.Chown(p.dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return err
		}
	}
	s.Postgres = p
	pwfile := filepath.Join(p.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	if p.cred != nil {
		_ = os.Chown(pwfile, int(p.cred.Uid), int(p.cred.Gid))
	}
	initdb, err := startProc(procSpec{name: "initdb", path: filepath.Join(bin, "initdb"), dir: p.dir, cred: p.cred,
		log: s.logPath("postgres-initdb"), env: []string{"LC_ALL=C", "TZ=UTC"},
		args: []string{"-D", filepath.Join(p.dir, "data"), "-U", p.User, "--pwfile", pwfile,
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
	p.proc, err = startProc(procSpec{name: "postgres", path: filepath.Join(bin, "postgres"), dir: p.dir, cred: p.cred,
		log: s.logPath("postgres"), env: []string{"LC_ALL=C", "TZ=UTC"},
		args: []string{"-D", filepath.Join(p.dir, "data"), "-k", p.dir, "-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"}})
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
