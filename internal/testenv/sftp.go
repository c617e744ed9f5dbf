package testenv

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SFTP is a private OpenSSH server (Debian's sshd, its internal-sftp
// subsystem) on a free loopback port, run in the foreground with a config,
// host key and authorized key of its own in a temporary directory; nothing
// under /etc is read or changed. It is stopped when the test ends.
//
// The user is the one running the test (root here). sshd can only check a
// password against /etc/shadow, so the server accepts the generated client
// key only; password authentication is enabled so that a wrong password
// is refused by the server as it would be anywhere.
type SFTP struct {
	Host string
	Port int
	User string
	// HostKey is the server's public key as a known_hosts entry without
	// the host ("ssh-ed25519 AAAA..."), what ssh-keyscan prints.
	HostKey string
	// ClientKeyFile is an unencrypted OpenSSH private key the server
	// accepts for User.
	ClientKeyFile string
	// Dir is an empty directory the user may write to, an absolute path
	// on the server (which is this machine).
	Dir string

	t    testing.TB
	args []string
	proc process
}

const sshdFix = "sshd not found: apt-get install -y openssh-server (make deps does)"

// SSHDPath finds sshd: /usr/sbin first (Debian keeps it off a user's PATH),
// then PATH.
func SSHDPath() (string, error) {
	if isExecutable("/usr/sbin/sshd") {
		return "/usr/sbin/sshd", nil
	}
	if p, err := exec.LookPath("sshd"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s", sshdFix)
}

// StartSFTP writes the server's files, starts it and waits until it sends
// its SSH banner. Stop runs at t.Cleanup.
func StartSFTP(t testing.TB) *SFTP {
	t.Helper()
	bin, err := SSHDPath()
	if err != nil {
		t.Fatal(err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("sftp server: current user: %v", err)
	}
	if os.Geteuid() == 0 {
		// Run as root, sshd insists on its privilege separation
		// directory, which the packaged service (systemd) would create.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("sftp server: create /run/sshd: %v", err)
		}
	}
	dir := t.TempDir()
	s := &SFTP{Host: "127.0.0.1", Port: FreePort(t), User: u.Username, Dir: filepath.Join(dir, "files"), t: t}
	if err := os.Mkdir(s.Dir, 0o755); err != nil {
		t.Fatalf("sftp server: %v", err)
	}
	hostKeyFile := filepath.Join(dir, "ssh_host_ed25519_key")
	hostPub := writeSSHKey(t, hostKeyFile)
	s.HostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostPub)))
	s.ClientKeyFile = filepath.Join(dir, "client_key")
	clientPub := writeSSHKey(t, s.ClientKeyFile)
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		t.Fatalf("sftp server: %v", err)
	}
	config := filepath.Join(dir, "sshd_config")
	logPath := filepath.Join(dir, "sshd.log")
	// Only sftp, only this key, nothing from /etc/ssh. StrictModes is
	// off because the temporary directory's parents are not the user's.
	lines := []string{
		"HostKey " + hostKeyFile,
		"ListenAddress " + net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		"PidFile none",
		"UsePAM no",
		"StrictModes no",
		"PermitRootLogin yes",
		"PubkeyAuthentication yes",
		"PasswordAuthentication yes",
		"KbdInteractiveAuthentication no",
		"AuthorizedKeysFile " + authorized,
		"AllowTcpForwarding no",
		"X11Forwarding no",
		"Subsystem sftp internal-sftp",
		"ForceCommand internal-sftp",
		"LogLevel VERBOSE",
	}
	if err := os.WriteFile(config, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("sftp server: %v", err)
	}
	// -D: stay in the foreground; -E: log to a file (there is no syslog).
	s.args = []string{bin, "-D", "-f", config, "-E", logPath}
	s.proc = process{t: t, name: "sshd on " + s.Addr(), logPath: logPath}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// writeSSHKey writes a new ed25519 private key in OpenSSH format to path
// and returns its public key.
func writeSSHKey(t testing.TB, path string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate ssh key: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatalf("encode ssh key: %v", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatalf("write ssh key: %v", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatalf("ssh public key: %v", err)
	}
	return sshPub
}

// Addr is host:port.
func (s *SFTP) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Start starts the server (again) and waits until it sends its banner.
func (s *SFTP) Start() {
	s.t.Helper()
	s.proc.start(exec.Command(s.args[0], s.args[1:]...), 20*time.Second, 20*time.Millisecond, func() error {
		c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "SSH-2.0-") {
			return fmt.Errorf("unexpected banner %q", line)
		}
		return nil
	})
}

// Stop stops the server and its sessions, which sshd runs each in a
// session of its own (outside its process group); stopping twice does
// nothing.
func (s *SFTP) Stop() {
	s.proc.signalTree(syscall.SIGKILL)
	s.proc.stop(syscall.SIGTERM, 10*time.Second)
}
