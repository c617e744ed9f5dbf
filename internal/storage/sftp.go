package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// storage.sftp writes each vCon as one file on an SFTP server, with
// conserver's option names:
//
//	url       the server's host name (conserver hands it to paramiko as a
//	          host); sftp://host[:port] is read too, its port used unless
//	          port is set
//	port      22
//	username, password
//	path      the remote directory, "."
//	filename  "vcon", extension "json"
//
// The file is {path}/{filename}_{uuid}.{extension}. conserver names it
// {filename}[_{now}].{extension}, without the uuid: every vCon overwrites
// the last (or, with add_timestamp_to_filename, a redelivered vCon is a
// second file), and its get returns the newest file whatever the uuid. A
// name from the uuid is what makes a redelivery overwrite and Get find the
// vCon asked for; add_timestamp_to_filename is therefore read but not
// applied. A file is written beside its final name and renamed into place,
// so a reader never sees half a vCon.
//
// Host keys are checked, where conserver (paramiko.Transport) accepts any
// key: known_hosts names the server's public key(s), and only
// insecure_skip_host_key_check: true connects without one. A private key
// logs in instead of, or as well as, the password: private_key holds it
// (usually ${VAR} from the Storage's Secret), key_file names a file holding
// it (conserver's README names key_file; its code has password only).
func init() { Register("storage.sftp", newSFTP) }

const (
	sftpDialTimeout = 15 * time.Second
	sftpTempInfix   = ".tmp-"
)

type sftpStorage struct {
	addr     string
	config   *ssh.ClientConfig
	dir      string
	filename string
	ext      string
	logger   *slog.Logger

	// One connection, used by one operation at a time, so that a
	// cancelled context can close it without failing another vCon's
	// write. It is made on first use and again after any failure.
	mu     sync.Mutex
	conn   net.Conn
	client *ssh.Client
	sftp   *sftp.Client
}

func newSFTP(_ context.Context, _ string, raw map[string]any, deps Deps) (Storage, error) {
	o := options.New(raw)
	host := o.Name("url", "")
	port := o.IntRange("port", 22, 1, 65535)
	if p, h, ok := sftpURLHost(host); ok {
		host = h
		if p != 0 && !o.Has("port") {
			port = p
		}
	} else if host != "" {
		o.Fail("url", "a host name, or sftp://host[:port]")
		host = ""
	}
	if host == "" && o.Problems() == 0 {
		o.Failf("url", "required: the SFTP server's host name")
	}
	username := o.Required("username")
	password := o.Secret("password")
	keyFile := o.Name("key_file", "")
	privateKey := o.Secret("private_key")
	dir := o.Name("path", ".")
	filename := o.Name("filename", "vcon")
	ext := strings.TrimPrefix(o.Name("extension", "json"), ".")
	for _, part := range []struct{ key, value string }{{"filename", filename}, {"extension", ext}} {
		if strings.ContainsAny(part.value, "/\\\x00") {
			o.Fail(part.key, "a file name part without / or \\")
		}
	}
	if ext == "" {
		o.Failf("extension", "must not be empty")
	}
	if dir == "" {
		o.Failf("path", "must not be empty (the default is \".\", the login directory)")
	}
	addTimestamp := o.Bool("add_timestamp_to_filename", false)
	insecure := o.Bool("insecure_skip_host_key_check", false)
	hostKeys := sftpHostKeys(o)

	var auth []ssh.AuthMethod
	switch {
	case keyFile != "" && privateKey != "":
		o.Errorf(`options "key_file" and "private_key" exclude each other: set one`)
	case keyFile != "":
		if signer, err := sftpKeyFile(keyFile); err != nil {
			o.Failf("key_file", "%v", err)
		} else {
			auth = append(auth, ssh.PublicKeys(signer))
		}
	case privateKey != "":
		if signer, err := sftpSigner([]byte(privateKey)); err != nil {
			o.Failf("private_key", "%v", err)
		} else {
			auth = append(auth, ssh.PublicKeys(signer))
		}
	}
	if password != "" {
		auth = append(auth, ssh.Password(password))
	}
	if password == "" && keyFile == "" && privateKey == "" && o.Problems() == 0 {
		o.Errorf(`set option "password", "private_key" or "key_file": the SFTP server needs one to log in`)
	}
	switch {
	case insecure && len(hostKeys) > 0:
		o.Errorf(`options "known_hosts" and "insecure_skip_host_key_check" exclude each other: keep known_hosts`)
	case !insecure && len(hostKeys) == 0 && !o.Has("known_hosts"):
		o.Failf("known_hosts", "required: the server's public key as ssh-keyscan prints it (\"ssh-ed25519 AAAA...\"), so that vCons go to that server only; insecure_skip_host_key_check: true accepts any key, as conserver does")
	}
	if err := o.Err(); err != nil {
		return nil, err
	}

	config := &ssh.ClientConfig{
		User:    username,
		Auth:    auth,
		Timeout: sftpDialTimeout,
	}
	if insecure {
		config.HostKeyCallback = ssh.InsecureIgnoreHostKey() //nolint:gosec // asked for by insecure_skip_host_key_check
	} else {
		config.HostKeyCallback = sftpHostKeyCallback(hostKeys)
		config.HostKeyAlgorithms = sftpHostKeyAlgorithms(hostKeys)
	}
	if addTimestamp {
		deps.Logger.Warn("storage.sftp: add_timestamp_to_filename is not applied: files are named by vCon uuid so that a redelivered vCon overwrites its file")
	}
	return &sftpStorage{
		addr:     net.JoinHostPort(host, strconv.Itoa(port)),
		config:   config,
		dir:      dir,
		filename: filename,
		ext:      ext,
		logger:   deps.Logger,
	}, nil
}

// sftpURLHost reads url as conserver configs hold it: a bare host (what
// conserver's code uses) or sftp://host[:port] (its default's shape).
func sftpURLHost(s string) (port int, host string, ok bool) {
	if rest, found := strings.CutPrefix(s, "sftp://"); found {
		rest = strings.TrimSuffix(rest, "/")
		if h, p, err := net.SplitHostPort(rest); err == nil {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 || h == "" {
				return 0, "", false
			}
			return n, h, true
		}
		s = rest
	}
	if s == "" {
		return 0, "", true
	}
	if strings.ContainsAny(s, "/@?# \t") || strings.Contains(s, "://") {
		return 0, "", false
	}
	return 0, strings.Trim(s, "[]"), true
}

// sftpHostKeys reads known_hosts: text or a list of texts, each line a
// key as ssh-keyscan prints it or a known_hosts file holds it
// ("ssh-ed25519 AAAA...", with or without host names in front; # starts a
// comment). Host names are not matched: every key listed is accepted for
// this storage's server, and only those.
func sftpHostKeys(o *options.Reader) []ssh.PublicKey {
	var keys []ssh.PublicKey
	for i, text := range o.Strings("known_hosts") {
		for n, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			where := fmt.Sprintf("item %d, line %d", i, n+1)
			if k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
				keys = append(keys, k)
				continue
			}
			marker, _, k, _, _, err := ssh.ParseKnownHosts([]byte(line))
			switch {
			case err != nil:
				o.Failf("known_hosts", "%s: want a public key such as \"ssh-ed25519 AAAA...\" (ssh-keyscan -t ed25519 HOST prints it)", where)
			case marker != "":
				o.Failf("known_hosts", "%s: @%s entries are not supported; list the server's own keys", where, marker)
			default:
				keys = append(keys, k)
			}
		}
	}
	if o.Has("known_hosts") && len(keys) == 0 && o.Problems() == 0 {
		o.Failf("known_hosts", "holds no key")
	}
	return keys
}

func sftpHostKeyCallback(keys []ssh.PublicKey) ssh.HostKeyCallback {
	return func(hostname string, _ net.Addr, key ssh.PublicKey) error {
		for _, k := range keys {
			if k.Type() == key.Type() && string(k.Marshal()) == string(key.Marshal()) {
				return nil
			}
		}
		return fmt.Errorf("host key %s %s of %s is not in option \"known_hosts\" (a different server, or its key changed)",
			key.Type(), ssh.FingerprintSHA256(key), hostname)
	}
}

// sftpHostKeyAlgorithms asks the server for a key of a type known_hosts has,
// so that a server holding several is not refused for offering another.
func sftpHostKeyAlgorithms(keys []ssh.PublicKey) []string {
	var algos []string
	seen := map[string]bool{}
	for _, k := range keys {
		names := []string{k.Type()}
		if k.Type() == ssh.KeyAlgoRSA {
			names = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				algos = append(algos, n)
			}
		}
	}
	return algos
}

func sftpKeyFile(keyFile string) (ssh.Signer, error) {
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read the private key: %v", errors.Unwrap(err))
	}
	signer, err := sftpSigner(pem)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	return signer, nil
}

// sftpSigner parses an unencrypted private key; the error never quotes it.
func sftpSigner(pem []byte) (ssh.Signer, error) {
	signer, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, errors.New("a passphrase-protected key; give it without a passphrase (kept in a Secret)")
	}
	if err != nil {
		return nil, errors.New("holds no private key ssh can read (want OpenSSH or PEM format, as ssh-keygen writes it)")
	}
	return signer, nil
}

func (s *sftpStorage) remotePath(uuid string) string {
	name := uuid + "." + s.ext
	if s.filename != "" {
		name = s.filename + "_" + name
	}
	return path.Join(s.dir, name)
}

// Save writes the vCon beside its name and renames it over any earlier
// copy: a redelivered vCon replaces its file, and a write cut short leaves
// only a temporary file behind.
func (s *sftpStorage) Save(ctx context.Context, v *vcon.VCon) error {
	uuid := v.UUID()
	if err := checkFileName(uuid); err != nil {
		return Permanent(err)
	}
	body, err := v.Marshal()
	if err != nil {
		return Permanent(fmt.Errorf("encode vcon %s: %w", uuid, err))
	}
	final := s.remotePath(uuid)
	return s.do(ctx, "write "+final, func(c *sftp.Client) error {
		tmp := path.Join(s.dir, "."+path.Base(final)+sftpTempInfix+sftpRandom())
		if err := sftpWrite(c, tmp, body); err != nil {
			_ = c.Remove(tmp)
			return err
		}
		if err := sftpReplace(c, tmp, final); err != nil {
			_ = c.Remove(tmp)
			return err
		}
		return nil
	})
}

func sftpWrite(c *sftp.Client, name string, body []byte) error {
	f, err := c.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return err
	}
	if _, err := f.Write(body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// sftpReplace renames tmp over final. SFTP's own rename refuses an
// existing target; OpenSSH's posix-rename replaces it atomically. Without
// that extension the old file is removed first.
func sftpReplace(c *sftp.Client, tmp, final string) error {
	if _, ok := c.HasExtension("posix-rename@openssh.com"); ok {
		return c.PosixRename(tmp, final)
	}
	if err := c.Remove(final); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return c.Rename(tmp, final)
}

func sftpRandom() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Get reads {path}/{filename}_{uuid}.{extension}.
func (s *sftpStorage) Get(ctx context.Context, uuid string) ([]byte, error) {
	if checkFileName(uuid) != nil {
		return nil, ErrNotFound
	}
	var body []byte
	name := s.remotePath(uuid)
	err := s.do(ctx, "read "+name, func(c *sftp.Client) error {
		f, err := c.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		body, err = io.ReadAll(f)
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	return body, err
}

// Delete removes the file; a vCon that is not there is deleted already.
func (s *sftpStorage) Delete(ctx context.Context, uuid string) error {
	if checkFileName(uuid) != nil {
		return nil
	}
	name := s.remotePath(uuid)
	err := s.do(ctx, "delete "+name, func(c *sftp.Client) error { return c.Remove(name) })
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// do runs op on the connection, connecting first when there is none. A
// cancelled context closes the connection, which ends op; any failure
// other than a missing file drops the connection, so the next call starts
// on a fresh one.
func (s *sftpStorage) do(ctx context.Context, what string, op func(*sftp.Client) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.sftp == nil {
		if err := s.connect(ctx); err != nil {
			return err
		}
	}
	conn := s.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	err := op(s.sftp)
	cancelled := !stop()
	switch {
	case cancelled:
		s.closeLocked()
		return fmt.Errorf("sftp %s: %s: %w", s.addr, what, ctx.Err())
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		// The connection is fine; Get and Delete look for this.
		return fmt.Errorf("sftp %s: %s: %w (check path: the directory must exist)", s.addr, what, err)
	case errors.Is(err, fs.ErrPermission):
		return Permanent(fmt.Errorf("sftp %s: %s as %s: %w (check path and the user's rights there)", s.addr, what, s.config.User, err))
	}
	s.closeLocked()
	return fmt.Errorf("sftp %s: %s: %w", s.addr, what, err)
}

func (s *sftpStorage) connect(ctx context.Context) error {
	dialer := net.Dialer{Timeout: sftpDialTimeout}
	conn, err := dialer.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("sftp: connect to %s: %w", s.addr, err)
	}
	// The handshake has no context of its own: a deadline bounds it.
	deadline := time.Now().Add(sftpDialTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	sc, chans, reqs, err := ssh.NewClientConn(conn, s.addr, s.config)
	if err != nil {
		_ = conn.Close()
		return sftpLoginError(s.addr, s.config.User, err)
	}
	_ = conn.SetDeadline(time.Time{})
	client := ssh.NewClient(sc, chans, reqs)
	sc2, err := sftp.NewClient(client)
	if err != nil {
		_ = client.Close()
		return fmt.Errorf("sftp: start the sftp subsystem on %s: %w", s.addr, err)
	}
	s.conn, s.client, s.sftp = conn, client, sc2
	return nil
}

// sftpLoginError says which option to look at. A refused login or host
// key is not marked permanent: credentials and keys are fixed by changing
// a Secret, and the retry then goes through.
func sftpLoginError(addr, user string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "unable to authenticate"):
		return fmt.Errorf("sftp: log in to %s as %s: refused (check username, password and key_file)", addr, user)
	case strings.Contains(msg, `option "known_hosts"`):
		return fmt.Errorf("sftp: %s: %w", addr, err)
	}
	return fmt.Errorf("sftp: ssh handshake with %s: %w", addr, err)
}

func (s *sftpStorage) closeLocked() {
	if s.sftp != nil {
		_ = s.sftp.Close()
	}
	if s.client != nil {
		_ = s.client.Close()
	}
	if s.conn != nil {
		_ = s.conn.Close()
	}
	s.conn, s.client, s.sftp = nil, nil, nil
}

// Close drops the connection.
func (s *sftpStorage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
	return nil
}
