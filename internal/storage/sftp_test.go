package storage

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// These tests run against a real OpenSSH server (sshd with internal-sftp,
// started by testenv.StartSFTP), not a mock: renames, permissions, host
// keys and logins are the server's.

const sftpTestUUID = "018f1c1e-8d2a-7c3e-9a55-1f2e3d4c5b6b"

func sftpTestOptions(srv *testenv.SFTP, extra ...any) map[string]any {
	opts := map[string]any{
		"url":         srv.Host,
		"port":        int64(srv.Port),
		"username":    srv.User,
		"key_file":    srv.ClientKeyFile,
		"known_hosts": srv.HostKey,
		"path":        srv.Dir,
	}
	for i := 0; i < len(extra); i += 2 {
		if extra[i+1] == nil {
			delete(opts, extra[i].(string))
			continue
		}
		opts[extra[i].(string)] = extra[i+1]
	}
	return opts
}

func newTestSFTP(t *testing.T, opts map[string]any) *sftpStorage {
	t.Helper()
	st, err := New(context.Background(), "sftp", "storage.sftp", opts, Deps{})
	if err != nil {
		t.Fatalf("build storage.sftp: %v", err)
	}
	t.Cleanup(func() { _ = st.(Closer).Close() })
	return st.(*sftpStorage)
}

// dirNames lists a directory on the server's side (the same machine).
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestSftpSaveOverwriteGetDelete(t *testing.T) {
	srv := testenv.StartSFTP(t)
	ctx := context.Background()
	privateKey, err := os.ReadFile(srv.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name     string
		extra    []any
		wantFile string
	}{
		{"conserver defaults", nil, "vcon_" + sftpTestUUID + ".json"},
		{"filename and extension", []any{"filename", "call", "extension", ".vcon"}, "call_" + sftpTestUUID + ".vcon"},
		{"no filename", []any{"filename", ""}, sftpTestUUID + ".json"},
		{"sftp:// url with its port", []any{"url", "sftp://" + srv.Addr(), "port", nil}, "vcon_" + sftpTestUUID + ".json"},
		{"known_hosts as ssh-keyscan prints it", []any{"known_hosts", "# " + srv.Addr() + " SSH-2.0-OpenSSH\n[" + srv.Host + "]:" + strconv.Itoa(srv.Port) + " " + srv.HostKey + "\n"}, "vcon_" + sftpTestUUID + ".json"},
		{"private_key instead of key_file", []any{"key_file", nil, "private_key", string(privateKey)}, "vcon_" + sftpTestUUID + ".json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(srv.Dir, strconv.Itoa(i))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			st := newTestSFTP(t, sftpTestOptions(srv, append([]any{"path", dir}, tc.extra...)...))

			first := testVCon(t, sftpTestUUID, "2026-03-04T05:06:07Z", "first")
			if err := st.Save(ctx, first); err != nil {
				t.Fatalf("Save: %v", err)
			}
			// A redelivered vCon, changed meanwhile, replaces the file.
			second := testVCon(t, sftpTestUUID, "2026-03-04T05:06:07Z", "second")
			if err := st.Save(ctx, second); err != nil {
				t.Fatalf("Save again: %v", err)
			}
			if got := dirNames(t, dir); !slices.Equal(got, []string{tc.wantFile}) {
				t.Fatalf("directory holds %q, want only %q", got, tc.wantFile)
			}
			onDisk, err := os.ReadFile(filepath.Join(dir, tc.wantFile))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := second.Marshal()
			if string(onDisk) != string(want) {
				t.Fatalf("file holds %s\nwant %s", onDisk, want)
			}
			got, err := st.Get(ctx, sftpTestUUID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if string(got) != string(want) {
				t.Fatalf("Get = %s\nwant %s", got, want)
			}
			if _, err := st.Get(ctx, "018f1c1e-0000-7000-8000-000000000000"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get of a vCon never saved: %v, want ErrNotFound", err)
			}
			if err := st.Delete(ctx, sftpTestUUID); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if got := dirNames(t, dir); len(got) != 0 {
				t.Fatalf("after Delete the directory holds %q", got)
			}
			if err := st.Delete(ctx, sftpTestUUID); err != nil {
				t.Fatalf("Delete of a deleted vCon: %v", err)
			}
		})
	}
}

func TestSftpRefusals(t *testing.T) {
	srv := testenv.StartSFTP(t)
	other := testenv.StartSFTP(t) // another server, another host key
	ctx := context.Background()
	v := testVCon(t, sftpTestUUID, "", "")
	for _, tc := range []struct {
		name      string
		opts      map[string]any
		want      string
		permanent bool
	}{
		{
			name: "another server's host key",
			opts: sftpTestOptions(srv, "known_hosts", other.HostKey),
			want: `is not in option "known_hosts"`,
		},
		{
			name: "wrong password, no key",
			opts: sftpTestOptions(srv, "key_file", nil, "password", "not-the-pw-s3cret"),
			want: "refused (check username, password and key_file)",
		},
		{
			name: "another user's key",
			opts: sftpTestOptions(srv, "key_file", other.ClientKeyFile),
			want: "refused (check username, password and key_file)",
		},
		{
			name: "directory missing",
			opts: sftpTestOptions(srv, "path", filepath.Join(srv.Dir, "missing")),
			want: "check path: the directory must exist",
		},
		{
			name: "nobody listening",
			opts: sftpTestOptions(srv, "port", int64(testenv.FreePort(t))),
			want: "connection refused",
		},
		{
			name:      "uuid with a slash",
			opts:      sftpTestOptions(srv),
			want:      "cannot be a file name",
			permanent: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newTestSFTP(t, tc.opts)
			doc := v
			if tc.permanent {
				doc = testVCon(t, "../"+sftpTestUUID, "", "")
			}
			err := st.Save(ctx, doc)
			if err == nil {
				t.Fatal("Save succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q quotes the password", err)
			}
			if IsPermanent(err) != tc.permanent {
				t.Errorf("IsPermanent = %v, want %v", IsPermanent(err), tc.permanent)
			}
		})
	}

	t.Run("insecure_skip_host_key_check accepts any key", func(t *testing.T) {
		st := newTestSFTP(t, sftpTestOptions(srv, "known_hosts", nil, "insecure_skip_host_key_check", true))
		if err := st.Save(ctx, v); err != nil {
			t.Fatalf("Save: %v", err)
		}
	})
}

// A server that goes away drops the connection; the next Save after it is
// back connects again.
func TestSftpReconnects(t *testing.T) {
	srv := testenv.StartSFTP(t)
	ctx := context.Background()
	st := newTestSFTP(t, sftpTestOptions(srv))
	v := testVCon(t, sftpTestUUID, "", "")
	if err := st.Save(ctx, v); err != nil {
		t.Fatalf("Save: %v", err)
	}
	srv.Stop()
	if err := st.Save(ctx, v); err == nil {
		t.Fatal("Save succeeded with the server stopped")
	}
	srv.Start()
	if err := st.Save(ctx, v); err != nil {
		t.Fatalf("Save after the server came back: %v", err)
	}
	if _, err := st.Get(ctx, sftpTestUUID); err != nil {
		t.Fatalf("Get: %v", err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := st.Save(cancelled, v); !errors.Is(err, context.Canceled) {
		t.Fatalf("Save with a cancelled context: %v", err)
	}
}

// A key the worker cannot use without a passphrase is refused at load,
// saying so, rather than on every vCon.
func TestSftpPassphraseKeyRefused(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("phrase"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), "sftp", "storage.sftp", map[string]any{
		"url": "sftp.example", "username": "u", "insecure_skip_host_key_check": true,
		"private_key": string(pem.EncodeToMemory(block)),
	}, Deps{})
	if err == nil || !strings.Contains(err.Error(), `option "private_key": a passphrase-protected key`) {
		t.Fatalf("New = %v, want the passphrase named", err)
	}
}
