package pipeline

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconjose/josetest"
)

// pass queues uuid on list and runs p on it once.
func (e *env) pass(t *testing.T, p *Processor, list, uuid string) {
	t.Helper()
	if err := e.rdb.RPush(context.Background(), list, uuid).Err(); err != nil {
		t.Fatal(err)
	}
	if err := p.Process(context.Background(), e.take(t, p, list)); err != nil {
		t.Fatalf("process %s from %s: %v", uuid, list, err)
	}
}

func (e *env) body(t *testing.T, uuid string) []byte {
	t.Helper()
	b, err := e.bodies.Get(context.Background(), uuid)
	if err != nil {
		t.Fatal(err)
	}
	return b.Data
}

func postgresMod(pg *testenv.Postgres, table string) mod {
	return mod{"pg", "storage.postgres", map[string]any{
		"database": pg.Database, "user": pg.User, "password": pg.Password,
		"host": pg.Host, "port": pg.Port, "table_name": table,
	}}
}

// TestSignedVconsThroughChains: links.sign leaves the vCon signed, every
// storage writes that document byte for byte and gives it back so, egress
// carries it, and links.verify in the next chain gives the later links the
// vCon that was signed; for each algorithm, with x5c and with kid.
func TestSignedVconsThroughChains(t *testing.T) {
	e := newEnv(t)
	pg := testenv.StartPostgres(t)
	ctx := context.Background()
	n := 0
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		signer := josetest.NewSigner(t, alg)
		for _, how := range []string{"x5c", "kid"} {
			t.Run(alg+"/"+how, func(t *testing.T) {
				n++
				uuid := testUUID(100 + n)
				signOpts := map[string]any{"private_key": signer.KeyPEM, "algorithm": alg}
				verifyOpts := map[string]any{}
				if how == "x5c" {
					signOpts["certificates"] = signer.ChainPEM
					verifyOpts["trust_roots"] = signer.RootPEM
				} else {
					signOpts["kid"] = "key-" + alg
					verifyOpts["jwks"] = signer.JWKS(t, "key-"+alg)
				}
				dir := t.TempDir()
				sinks := []mod{
					{"files", "storage.file", map[string]any{"path": dir}},
					{"copy", "storage.redis_storage", map[string]any{"prefix": "copy"}},
					postgresMod(pg, "signed_"+strings.ToLower(alg)+"_"+how),
				}
				signing := e.chain(t, "signing", []string{"in"}, []string{"signed"},
					[]mod{{"tag", "links.tag", map[string]any{"tags": []any{"before:signing"}}}, {"sign", "links.sign", signOpts}}, sinks)
				p, _, _ := e.processor(signing, testOptions(), "w-sign")
				e.putBody(t, uuid, document(uuid, 2000), time.Hour)
				e.pass(t, p, "in", uuid)

				signed := e.body(t, uuid)
				v, err := vcon.Parse(signed)
				if err != nil || v.Form() != vcon.Signed || v.UUID() != uuid {
					t.Fatalf("body after signing: form %v uuid %q err %v", v.Form(), v.UUID(), err)
				}
				if err := vcon.CheckSecured(v); err != nil {
					t.Fatal(err)
				}
				for _, s := range signing.Storages {
					got, err := s.Storage.(storage.Getter).Get(ctx, uuid)
					if err != nil {
						t.Fatalf("%s: %v", s.Name, err)
					}
					if !bytes.Equal(got, signed) {
						t.Errorf("%s gave back another document (%d bytes, want the %d signed)", s.Name, len(got), len(signed))
					}
				}
				if got := e.list(t, "signed"); len(got) != 1 || got[0] != uuid {
					t.Fatalf("egress %v", got)
				}

				verifying := e.chain(t, "verifying", []string{"signed"}, []string{"out"},
					[]mod{{"verify", "links.verify", verifyOpts}, {"tag", "links.tag", map[string]any{"tags": []any{"after:verifying"}}}}, nil)
				q, _, _ := e.processor(verifying, testOptions(), "w-verify")
				_ = e.rdb.Del(ctx, "signed")
				e.pass(t, q, "signed", uuid)
				w, err := vcon.Parse(e.body(t, uuid))
				if err != nil || w.Form() != vcon.Unsigned {
					t.Fatalf("body after verifying: %v %v", w.Form(), err)
				}
				if tags := vcon.Tags(w); strings.Join(tags, ",") != "before:signing,after:verifying" {
					t.Fatalf("tags %v: the verified vCon is not the one signed", tags)
				}
				if w.String("subject") != "Support call" || w.UUID() != uuid {
					t.Fatalf("verified vCon %q %q", w.String("subject"), w.UUID())
				}
				if got := e.list(t, "out"); len(got) != 1 {
					t.Fatalf("out %v", got)
				}
				_ = e.rdb.Del(ctx, "out")
			})
		}
	}
}

// resign rewrites part of a signed body and stores it under uuid.
func resign(t *testing.T, signed []byte, f func(doc map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(signed, &doc); err != nil {
		t.Fatal(err)
	}
	f(doc)
	b, _ := json.Marshal(doc)
	return b
}

func sigOf(doc map[string]any) map[string]any { return doc["signatures"].([]any)[0].(map[string]any) }

// TestVerifyDeadLetters: a vCon whose signature does not verify is
// dead-lettered with reason signature_invalid, at once, with nothing
// stored and no egress.
func TestVerifyDeadLetters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	signer, stranger := josetest.NewSigner(t, "ES256"), josetest.NewSigner(t, "ES256")
	sign := func(s josetest.Signer, uuid string) []byte {
		l, err := links.New("sign", "links.sign", map[string]any{"private_key": s.KeyPEM, "certificates": s.ChainPEM}, links.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		v, _ := vcon.Parse(document(uuid, 1000))
		if _, err := l.Run(ctx, v); err != nil {
			t.Fatal(err)
		}
		b, _ := v.Marshal()
		return b
	}
	other := "0190d6f0-1c2d-7a00-8000-0000000000ff"
	cases := []struct {
		name string
		uuid string
		body func(uuid string) []byte
		why  string
	}{
		{"payload tampered", testUUID(201), func(u string) []byte {
			return resign(t, sign(signer, u), func(d map[string]any) {
				p, _ := base64.RawURLEncoding.DecodeString(d["payload"].(string))
				d["payload"] = base64.RawURLEncoding.EncodeToString(bytes.Replace(p, []byte("Support call"), []byte("Refund issued"), 1))
			})
		}, "does not verify"},
		{"signature tampered", testUUID(202), func(u string) []byte {
			return resign(t, sign(signer, u), func(d map[string]any) {
				// Another base64url character, never an invalid one: the
				// signature must decode and fail to verify.
				s := []byte(sigOf(d)["signature"].(string))
				if s[10] == 'A' {
					s[10] = 'B'
				} else {
					s[10] = 'A'
				}
				sigOf(d)["signature"] = string(s)
			})
		}, "signature 1"},
		{"uuid header is another vCon's", other, func(u string) []byte {
			return resign(t, sign(signer, testUUID(203)), func(d map[string]any) { sigOf(d)["header"].(map[string]any)["uuid"] = u })
		}, "uuid header is not the signed vCon's uuid"},
		{"signed by a stranger", testUUID(204), func(u string) []byte { return sign(stranger, u) }, "not trusted"},
		{"not signed", testUUID(205), func(u string) []byte { return document(u, 1000) }, "not signed"},
	}
	dir := t.TempDir()
	ch := e.chain(t, "verifying", []string{"in"}, []string{"out"},
		[]mod{{"verify", "links.verify", map[string]any{"trust_roots": signer.RootPEM}}},
		[]mod{{"files", "storage.file", map[string]any{"path": dir}}})
	ch.Retry = RetryPolicy{Attempts: 3}
	p, _, _ := e.processor(ch, testOptions(), "w")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.putBody(t, c.uuid, c.body(c.uuid), time.Hour)
			e.pass(t, p, "in", c.uuid)
			r := e.reason(t, c.uuid)
			if !strings.HasPrefix(r.Reason, "signature_invalid: link verify: ") || !strings.Contains(r.Reason, c.why) {
				t.Fatalf("reason %q, want signature_invalid naming %q", r.Reason, c.why)
			}
			if !slicesContains(e.list(t, "DLQ:in"), c.uuid) || len(e.list(t, "out")) != 0 {
				t.Fatalf("DLQ %v out %v", e.list(t, "DLQ:in"), e.list(t, "out"))
			}
			if _, err := ch.Storages[0].Storage.(storage.Getter).Get(ctx, c.uuid); err == nil {
				t.Fatal("a vCon that failed verification was stored")
			}
			if strings.Contains(r.Reason, "Support call") || strings.Contains(r.Reason, "Alice") {
				t.Fatalf("the reason quotes the vCon: %q", r.Reason)
			}
		})
	}
}

func slicesContains(s []string, x string) bool {
	for _, e := range s {
		if e == x {
			return true
		}
	}
	return false
}

// TestEncryptedVconsThroughChains: sign then encrypt in one chain, decrypt
// then verify in the next; the encrypted form is stored as made, and a
// key that is not a recipient's dead-letters with decryption_failed.
func TestEncryptedVconsThroughChains(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	signer, recipient, eve := josetest.NewSigner(t, "EdDSA"), josetest.NewSigner(t, "RS256"), josetest.NewSigner(t, "RS256")
	dir := t.TempDir()
	sealing := e.chain(t, "sealing", []string{"in"}, []string{"sealed"},
		[]mod{{"sign", "links.sign", map[string]any{"private_key": signer.KeyPEM, "kid": "s"}}, {"encrypt", "links.encrypt", map[string]any{"recipients": recipient.ChainPEM}}},
		[]mod{{"files", "storage.file", map[string]any{"path": dir}}})
	p, _, _ := e.processor(sealing, testOptions(), "w1")
	uuid := testUUID(301)
	e.putBody(t, uuid, document(uuid, 1500), time.Hour)
	e.pass(t, p, "in", uuid)
	sealed := e.body(t, uuid)
	v, _ := vcon.Parse(sealed)
	if v.Form() != vcon.Encrypted || v.UUID() != uuid || bytes.Contains(sealed, []byte("Support call")) {
		t.Fatalf("sealed body: form %v uuid %q", v.Form(), v.UUID())
	}
	if got, err := sealing.Storages[0].Storage.(storage.Getter).Get(ctx, uuid); err != nil || !bytes.Equal(got, sealed) {
		t.Fatalf("file storage gave back another document (%v)", err)
	}

	for _, c := range []struct {
		name   string
		key    string
		reason string
	}{
		{"a recipient's key", recipient.KeyPEM, ""},
		{"another key", eve.KeyPEM, "decryption_failed: link decrypt: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.putBody(t, uuid, sealed, time.Hour)
			opening := e.chain(t, "opening", []string{"sealed"}, []string{"opened"},
				[]mod{{"decrypt", "links.decrypt", map[string]any{"private_key": c.key}}, {"verify", "links.verify", map[string]any{"jwks": signer.JWKS(t, "s")}}, {"tag", "links.tag", map[string]any{"tags": []any{"opened:yes"}}}}, nil)
			q, _, _ := e.processor(opening, testOptions(), "w-"+c.name)
			_ = e.rdb.Del(ctx, "sealed")
			e.pass(t, q, "sealed", uuid)
			if c.reason != "" {
				r, _ := e.reasonsOn(t, "sealed", uuid)
				if !strings.HasPrefix(r, c.reason) {
					t.Fatalf("reason %q, want %q", r, c.reason)
				}
				return
			}
			w, err := vcon.Parse(e.body(t, uuid))
			if err != nil || w.Form() != vcon.Unsigned || strings.Join(vcon.Tags(w), ",") != "opened:yes" || w.String("subject") != "Support call" {
				t.Fatalf("opened body: %v %v %v", w.Form(), vcon.Tags(w), err)
			}
		})
	}
}

func (e *env) reasonsOn(t *testing.T, list, uuid string) (string, bool) {
	t.Helper()
	r := e.reasonOf(t, list, uuid)
	return r, r != ""
}

// TestWrongForm: a vCon in a form a link does not take is dead-lettered
// with reason wrong_form before the link runs.
func TestWrongForm(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	signer, recipient := josetest.NewSigner(t, "ES256"), josetest.NewSigner(t, "RS256")
	signLink, _ := links.New("sign", "links.sign", map[string]any{"private_key": signer.KeyPEM, "kid": "k"}, links.Deps{})
	cases := []struct {
		name string
		link mod
		body func(uuid string) []byte
		why  string
	}{
		{"signed vCon at a content link", mod{"tag", "links.tag", map[string]any{"tags": []any{"x"}}}, func(u string) []byte {
			v, _ := vcon.Parse(document(u, 800))
			_, _ = signLink.Run(ctx, v)
			b, _ := v.Marshal()
			return b
		}, "the vCon is signed (JWS) and this link works on unsigned vCons"},
		{"unsigned vCon at encrypt", mod{"encrypt", "links.encrypt", map[string]any{"recipients": recipient.PublicPEM}}, func(u string) []byte { return document(u, 800) }, "sign it first"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			uuid := testUUID(400 + i)
			ch := e.chain(t, "c", []string{"in"}, []string{"out"}, []mod{c.link}, nil)
			p, _, _ := e.processor(ch, testOptions(), "w")
			body := c.body(uuid)
			e.putBody(t, uuid, body, time.Hour)
			e.pass(t, p, "in", uuid)
			r := e.reason(t, uuid).Reason
			if !strings.HasPrefix(r, "wrong_form: link "+c.link.name+": ") || !strings.Contains(r, c.why) {
				t.Fatalf("reason %q", r)
			}
			if got := e.body(t, uuid); !bytes.Equal(got, body) {
				t.Fatal("the body was rewritten")
			}
		})
	}
}

// TestChainFormsCheckedAtLoad: a chain whose link follows one that leaves
// every vCon in a form it does not take is refused before it runs.
func TestChainFormsCheckedAtLoad(t *testing.T) {
	e := newEnv(t)
	signer, recipient := josetest.NewSigner(t, "ES256"), josetest.NewSigner(t, "RS256")
	sign := e.link(t, "sign", "links.sign", map[string]any{"private_key": signer.KeyPEM, "kid": "k"})
	verify := e.link(t, "verify", "links.verify", map[string]any{"jwks": signer.JWKS(t, "k")})
	gate := e.link(t, "gate", "links.verify", map[string]any{"jwks": signer.JWKS(t, "k"), "keep_signed": true})
	encrypt := e.link(t, "encrypt", "links.encrypt", map[string]any{"recipients": recipient.PublicPEM})
	decrypt := e.link(t, "decrypt", "links.decrypt", map[string]any{"private_key": recipient.KeyPEM})
	tag := e.link(t, "tag", "links.tag", map[string]any{"tags": []any{"x"}})
	hook := e.link(t, "hook", "links.webhook", map[string]any{"webhook-urls": []any{"https://example.com/hook"}})
	expire := e.link(t, "expire", "links.expire_vcon", nil)
	cases := []struct {
		name  string
		steps []Step
		err   string
	}{
		{"content link after sign", []Step{sign, tag}, "link tag cannot run on the signed (JWS) vCons link sign leaves"},
		{"content link after encrypt", []Step{sign, encrypt, hook, tag}, "link tag cannot run on the encrypted (JWE) vCons link encrypt leaves"},
		{"content link after a verify that keeps the signed form", []Step{gate, tag}, "link tag cannot run"},
		{"encrypt after verify", []Step{verify, encrypt}, "link encrypt cannot run on the unsigned vCons link verify leaves"},
		{"sign twice", []Step{sign, sign}, "link sign cannot run on the signed"},
		{"tag, sign, webhook, expire", []Step{tag, sign, hook, expire}, ""},
		{"sign, encrypt", []Step{sign, encrypt}, ""},
		{"decrypt, verify, tag", []Step{decrypt, verify, tag}, ""},
		{"gate, encrypt", []Step{gate, encrypt}, ""},
		{"verify first (any form may arrive)", []Step{verify, tag, sign}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkForms(c.steps)
			if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("err = %v, want %q", err, c.err)
			}
		})
	}
}

// TestDraftExamplesThroughChains: the draft's encrypted and signed
// examples, made by py-vcon, opened by a real chain: decrypted with the
// published test key, verified with the chain their x5c carries (anchored
// at its issuing CA, docs/compliance.md says why), then tagged. Its
// certificates are valid until June 2032.
func TestDraftExamplesThroughChains(t *testing.T) {
	e := newEnv(t)
	read := func(name string) []byte {
		b, err := os.ReadFile("../vconjose/testdata/draft/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	signed, _ := vcon.Parse(read("ab_call_ext_rec_signed.vcon"))
	x5c := sigOf(signed.Doc())["header"].(map[string]any)["x5c"].([]any)
	issuer, err := base64.StdEncoding.DecodeString(x5c[1].(string))
	if err != nil {
		t.Fatal(err)
	}
	verify := mod{"verify", "links.verify", map[string]any{"trust_roots": josetest.PEM("CERTIFICATE", issuer)}}
	tag := mod{"tag", "links.tag", map[string]any{"tags": []any{"verified:yes"}}}
	const uuid = "019f15a6-a752-826f-b9a2-279e0d16bc46"
	for _, c := range []struct {
		name  string
		body  []byte
		links []mod
	}{
		{"signed example", read("ab_call_ext_rec_signed.vcon"), []mod{verify, tag}},
		{"encrypted example", read("ab_call_ext_rec_encrypted.vcon"), []mod{{"decrypt", "links.decrypt", map[string]any{"private_key": string(read("fake_grp.key"))}}, verify, tag}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ch := e.chain(t, "opening", []string{"in"}, []string{"out"}, c.links, nil)
			p, _, _ := e.processor(ch, testOptions(), "w-"+c.name)
			e.putBody(t, uuid, c.body, time.Hour)
			e.pass(t, p, "in", uuid)
			if r := e.reason(t, uuid).Reason; r != "" {
				t.Fatalf("dead-lettered: %s", r)
			}
			v, err := vcon.Parse(e.body(t, uuid))
			if err != nil || v.Form() != vcon.Unsigned || v.UUID() != uuid {
				t.Fatalf("body: %v %v", v.Form(), err)
			}
			if parties := v.List(vcon.Parties); len(parties) != 2 || parties[0]["name"] != "Alice" || strings.Join(vcon.Tags(v), ",") != "verified:yes" {
				t.Fatalf("not the draft's vCon: parties %v tags %v", parties, vcon.Tags(v))
			}
		})
	}
}
