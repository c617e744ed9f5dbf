package storage

import (
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconjose"
	"github.com/vcon-operator/vcon-operator/internal/vconjose/josetest"
)

// securedForm is a signed or encrypted vCon as one storage test saves it.
type securedForm struct {
	name string
	data []byte
	// canonical is true for the encoding links.sign and links.encrypt
	// write (sorted keys, no white space), which a storage keeping JSON as
	// a value (jsonb, BSON) gives back byte for byte too.
	canonical bool
}

// securedForms are a vCon signed here (x5c, as links.sign writes it), the
// same vCon encrypted here, and the draft's signed and encrypted examples
// (made by py-vcon: indented, keys in its order).
func securedForms(t *testing.T) []securedForm {
	t.Helper()
	unsigned, err := vcon.Parse([]byte(`{"uuid":"019f15a6-a752-826f-b9a2-279e0d16bc47","vcon":"0.4.0","created_at":"2026-12-02T10:00:00Z","subject":"a call","parties":[{"tel":"+12345678901","name":"Alice"}],"dialog":[{"type":"text","start":"2026-12-02T10:00:01Z","parties":[0],"body":"hello <world> & \u00e9"}],"analysis":[],"attachments":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	key := josetest.NewSigner(t, "ES256")
	signer, err := vconjose.NewSigner(vconjose.SignerConfig{Key: key.Key, Algorithm: "ES256", Certificates: []*x509.Certificate{key.Leaf}})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := signer.Sign(unsigned)
	if err != nil {
		t.Fatal(err)
	}
	recipients, err := vconjose.ParsePublicKeys(josetest.NewSigner(t, "RS256").PublicPEM)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := vconjose.NewEncrypter(recipients, "RSA-OAEP")
	if err != nil {
		t.Fatal(err)
	}
	encrypted, err := enc.Encrypt(signed)
	if err != nil {
		t.Fatal(err)
	}
	forms := []securedForm{{name: "signed here", canonical: true}, {name: "encrypted here", canonical: true}}
	for i, v := range []*vcon.VCon{signed, encrypted} {
		if forms[i].data, err = v.Marshal(); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"ab_call_ext_rec_signed.vcon", "ab_call_ext_rec_encrypted.vcon"} {
		data, err := os.ReadFile("../vconjose/testdata/draft/" + f)
		if err != nil {
			t.Fatal(err)
		}
		forms = append(forms, securedForm{name: "the draft's " + f, data: data})
	}
	return forms
}

// TestSecuredFormsStoredIntact saves signed and encrypted vCons in every
// storage that keeps documents, each against its real server (PostgreSQL,
// FerretDB, versitygw, OpenSSH, redis-server, a file system, an HTTP
// receiver), and reads them back: the bytes as sent from storages that
// keep bytes, the same JSON value (every member, so the same payload and
// signatures) from those that keep JSON as a value, and for what links.sign
// and links.encrypt write, the bytes from those too. vcon_mcp, which keeps
// a vCon's parts and not the document, refuses them for good.
func TestSecuredFormsStoredIntact(t *testing.T) {
	ctx := context.Background()
	forms := securedForms(t)
	pg := testenv.StartPostgres(t)
	mongoSrv := testenv.StartMongo(t)
	s3Srv := testenv.StartS3(t)
	sftpSrv := testenv.StartSFTP(t)
	rdb := testenv.StartRedis(t).Client()

	var mu sync.Mutex
	posted := map[string][]byte{}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		posted[r.Header.Get("X-Vcon-Uuid")] = body
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)

	build := func(name, module string, opts map[string]any, deps Deps) Storage {
		st, err := New(ctx, name, module, opts, deps)
		if err != nil {
			t.Fatalf("build %s: %v", module, err)
		}
		if c, ok := st.(Closer); ok {
			t.Cleanup(func() { _ = c.Close() })
		}
		return st
	}
	bucket := s3Srv.CreateBucket()
	storages := []struct {
		name string
		st   Storage
		// keepsBytes: the storage writes and reads the document's bytes
		// (files, objects, strings); otherwise it keeps a JSON value.
		keepsBytes bool
	}{
		{"file", build("files", "storage.file", map[string]any{"path": t.TempDir()}, Deps{}), true},
		{"redis_storage", build("copy", "storage.redis_storage", map[string]any{"prefix": "copy"}, Deps{Redis: rdb}), true},
		{"s3", build("s3", "storage.s3", s3TestOptions(s3Srv, bucket, nil), Deps{}), true},
		{"sftp", build("sftp", "storage.sftp", sftpTestOptions(sftpSrv), Deps{}), true},
		{"postgres", build("pg", "storage.postgres", postgresOptions(pg, "secured"), Deps{}), false},
		{"mongo", build("mongo", "storage.mongo", map[string]any{"url": mongoSrv.URL, "collection": "secured"}, Deps{}), false},
	}
	hook := build("hook", "storage.webhook", map[string]any{"webhook-urls": []any{receiver.URL}}, Deps{})
	mcp := startFakeVconMCP(t, "mcp-key")
	mcpStorage := build("mcp", "storage.vcon_mcp", map[string]any{"base_url": mcp.URL + "/api/v1/", "api_key": "mcp-key"}, Deps{})

	for _, form := range forms {
		v, err := vcon.Parse(form.data)
		if err != nil {
			t.Fatal(err)
		}
		if !v.Secured() {
			t.Fatalf("%s: parsed as %v", form.name, v.Form())
		}
		uuid := v.UUID()
		for _, s := range storages {
			t.Run(form.name+"/"+s.name, func(t *testing.T) {
				if err := s.st.Save(ctx, v); err != nil {
					t.Fatalf("Save: %v", err)
				}
				got, err := s.st.(Getter).Get(ctx, uuid)
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				if s.keepsBytes || form.canonical {
					if !bytes.Equal(got, form.data) {
						t.Fatalf("read back %d bytes that differ from the %d saved:\n%.300s", len(got), len(form.data), got)
					}
					return
				}
				back, err := vcon.Parse(got)
				if err != nil {
					t.Fatalf("read back no JSON: %v", err)
				}
				if back.Form() != v.Form() || back.UUID() != uuid {
					t.Fatalf("read back a %v vCon %q, want %v %q", back.Form(), back.UUID(), v.Form(), uuid)
				}
				want, _ := vcon.Canonical(v)
				if have, _ := vcon.Canonical(back); !bytes.Equal(have, want) {
					t.Fatalf("read back another document:\n%.300s\nwant\n%.300s", have, want)
				}
			})
		}
		t.Run(form.name+"/webhook", func(t *testing.T) {
			if err := hook.Save(ctx, v); err != nil {
				t.Fatalf("Save: %v", err)
			}
			mu.Lock()
			got := posted[uuid]
			mu.Unlock()
			if !bytes.Equal(got, form.data) {
				t.Fatalf("posted %d bytes that differ from the %d saved", len(got), len(form.data))
			}
		})
		t.Run(form.name+"/vcon_mcp", func(t *testing.T) {
			err := mcpStorage.Save(ctx, v)
			if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "put links.verify or links.decrypt before this storage") {
				t.Fatalf("Save = %v, want a permanent refusal", err)
			}
		})
	}
	if n := len(mcp.vcons); n != 0 {
		t.Fatalf("vcon_mcp was sent %d secured vCons", n)
	}
}
