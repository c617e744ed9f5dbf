package api

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconjose/josetest"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// TestSignedVconsStoredAsSent: the API takes the signed and encrypted
// forms (which conserver refuses), stores each as sent and answers it
// byte for byte, in every egress format and in a multi-get: the draft's
// examples as py-vcon wrote them (indented) and one signed here.
func TestSignedVconsStoredAsSent(t *testing.T) {
	signer := josetest.NewSigner(t, "ES256")
	sign, err := links.New("sign", "links.sign", map[string]any{"private_key": signer.KeyPEM, "certificates": signer.ChainPEM}, links.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ours, _ := vcon.Parse([]byte(testVcon("0190d6f0-1c2d-7a00-8000-0000000000d1")))
	if _, err := sign.Run(context.Background(), ours); err != nil {
		t.Fatal(err)
	}
	oursBytes, _ := ours.Marshal()
	draft := func(name string) []byte {
		b, err := os.ReadFile("../vconjose/testdata/draft/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	docs := []struct {
		name string
		body []byte
		uuid string
	}{
		{"the draft's signed example", draft("ab_call_ext_rec_signed.vcon"), "019f15a6-a752-826f-b9a2-279e0d16bc46"},
		{"the draft's encrypted example", draft("ab_call_ext_rec_encrypted.vcon"), "019f15a6-a752-826f-b9a2-279e0d16bc46"},
		{"signed here", oursBytes, "0190d6f0-1c2d-7a00-8000-0000000000d1"},
	}
	for _, format := range []string{"", "0.0.1"} {
		h := newHarness(t, func(o *Options) { o.EgressFormat = format })
		for _, d := range docs {
			t.Run(d.name+"/egress "+format, func(t *testing.T) {
				ctx := context.Background()
				mustStatus(t, h.do("POST", "/api/vcon?ingress_lists=in", bytes.NewReader(d.body)), http.StatusCreated)
				stored, err := h.rdb.Get(ctx, vconstore.Key(d.uuid)).Bytes()
				if err != nil || !bytes.Equal(stored, d.body) {
					t.Fatalf("stored body differs from the one sent (%v)", err)
				}
				if q, _ := h.rdb.LRange(ctx, "in", 0, -1).Result(); len(q) == 0 || q[len(q)-1] != d.uuid {
					t.Fatalf("not queued: %v", q)
				}
				rec := h.doJSON("GET", "/api/vcon/"+d.uuid, "")
				mustStatus(t, rec, http.StatusOK)
				if !bytes.Equal(rec.Body.Bytes(), d.body) {
					t.Fatalf("GET answered another document (%d bytes, sent %d)", rec.Body.Len(), len(d.body))
				}
				rec = h.doJSON("GET", "/api/vcons?vcon_uuids="+d.uuid, "")
				mustStatus(t, rec, http.StatusOK)
				if want := append(append([]byte("["), d.body...), ']'); !bytes.Equal(rec.Body.Bytes(), want) {
					t.Fatalf("multi-get answered another document")
				}
				_ = h.rdb.Del(ctx, vconstore.Key(d.uuid))
			})
		}
	}
}

func TestSecuredFormRefused(t *testing.T) {
	h := newHarness(t, nil)
	for _, c := range []struct{ name, body, msg string }{
		{"signed without a uuid header", `{"payload":"eA","signatures":[{"protected":"eA","signature":"eA","header":{"alg":"RS256"}}]}`, "signatures[0].header.uuid"},
		{"encrypted without a tag", `{"recipients":[{"encrypted_key":"eA"}],"ciphertext":"eA","iv":"eA","unprotected":{"uuid":"019f15a6-a752-826f-b9a2-279e0d16bc46"}}`, "tag: want"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := h.doJSON("POST", "/api/vcon", c.body)
			mustStatus(t, rec, http.StatusUnprocessableEntity)
			if !strings.Contains(rec.Body.String(), c.msg) {
				t.Fatalf("answer %s does not name %q", rec.Body.String(), c.msg)
			}
		})
	}
}
