package vconjose

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// mutate is signed (or encrypted) with f applied to its decoded JSON.
func mutate(t *testing.T, v *vcon.VCon, f func(doc map[string]any)) *vcon.VCon {
	t.Helper()
	data, _ := v.Marshal()
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	f(doc)
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := vcon.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func firstSig(doc map[string]any) map[string]any {
	return doc["signatures"].([]any)[0].(map[string]any)
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestSignVerifyRoundTrip(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		ca := newCA(t, alg, time.Now().Add(time.Hour))
		for _, how := range []string{"x5c", "kid"} {
			t.Run(alg+"/"+how, func(t *testing.T) {
				cfg := SignerConfig{Key: ca.leafKey, Algorithm: jose.SignatureAlgorithm(alg)}
				vcfg := VerifierConfig{}
				if how == "x5c" {
					cfg.Certificates = []*x509.Certificate{ca.leaf}
					vcfg.Roots = []*x509.Certificate{ca.root}
				} else {
					cfg.KeyID = "key-1"
					vcfg.Keys = []jose.JSONWebKey{{Key: ca.leafKey.Public(), KeyID: "key-1"}}
				}
				s, err := NewSigner(cfg)
				if err != nil {
					t.Fatal(err)
				}
				in := unsignedVcon(t)
				want, _ := in.Marshal()
				signed, err := s.Sign(in)
				if err != nil {
					t.Fatal(err)
				}
				if signed.Form() != vcon.Signed || signed.UUID() != testUUID {
					t.Fatalf("form %v uuid %q", signed.Form(), signed.UUID())
				}
				sig := firstSig(signed.Doc())
				header := sig["header"].(map[string]any)
				if _, ok := header[how]; !ok || header["uuid"] != testUUID {
					t.Fatalf("unprotected header %v: want %s and uuid", header, how)
				}
				prot, _ := base64.RawURLEncoding.DecodeString(sig["protected"].(string))
				if string(prot) != `{"alg":"`+alg+`"}` {
					t.Fatalf("protected header %s", prot)
				}
				// The signed form is encoded as the module encodes every
				// document: what a JSON-valued storage gives back.
				enc, _ := signed.Marshal()
				canon, _ := vcon.FromDoc(signed.Doc()).Marshal()
				if !bytes.Equal(enc, canon) {
					t.Fatalf("signed form is not in the module's encoding:\n%s\n%s", enc, canon)
				}
				ver, err := NewVerifier(vcfg)
				if err != nil {
					t.Fatal(err)
				}
				got, err := ver.Verify(signed, testUUID)
				if err != nil {
					t.Fatal(err)
				}
				if b, _ := got.Marshal(); !bytes.Equal(b, want) {
					t.Fatalf("payload\n%s\nwant\n%s", b, want)
				}
			})
		}
	}
}

func TestVerifyRefuses(t *testing.T) {
	ca := newCA(t, "ES256", time.Now().Add(time.Hour))
	other := newCA(t, "ES256", time.Now().Add(time.Hour))
	expired := newCA(t, "ES256", time.Now().Add(-time.Minute))
	sign := func(c testCA, kid string) *vcon.VCon {
		cfg := SignerConfig{Key: c.leafKey, KeyID: kid}
		if kid == "" {
			cfg.Certificates = []*x509.Certificate{c.leaf}
		}
		s, err := NewSigner(cfg)
		if err != nil {
			t.Fatal(err)
		}
		v, err := s.Sign(unsignedVcon(t))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	good := sign(ca, "")
	trusting := VerifierConfig{Roots: []*x509.Certificate{ca.root, expired.root}, Keys: []jose.JSONWebKey{{Key: ca.leafKey.Public(), KeyID: "k"}}}
	cases := []struct {
		name string
		in   *vcon.VCon
		want string // the uuid it was queued under
		err  string
	}{
		{"payload changed", mutate(t, good, func(d map[string]any) {
			d["payload"] = b64(`{"uuid":"` + testUUID + `","subject":"forged"}`)
		}), testUUID, "does not verify"},
		{"signature changed", mutate(t, good, func(d map[string]any) {
			s := firstSig(d)
			sig := []byte(s["signature"].(string))
			sig[3] = otherBase64URLChar(sig[3])
			s["signature"] = string(sig)
		}), testUUID, "signature 1"},
		{"protected alg swapped", mutate(t, good, func(d map[string]any) { firstSig(d)["protected"] = b64(`{"alg":"RS256"}`) }), testUUID, "does not verify"},
		{"alg none", mutate(t, good, func(d map[string]any) { firstSig(d)["protected"] = b64(`{"alg":"none"}`) }), testUUID, "not a JWS"},
		{"uuid header differs from the payload", mutate(t, good, func(d map[string]any) {
			firstSig(d)["header"].(map[string]any)["uuid"] = "00000000-0000-4000-8000-000000000000"
		}), "00000000-0000-4000-8000-000000000000", "uuid header is not the signed vCon's uuid"},
		{"queued under another uuid", good, "00000000-0000-4000-8000-000000000000", "not the one it was queued under"},
		{"chain to an untrusted root", sign(other, ""), testUUID, "not trusted"},
		{"expired certificate", sign(expired, ""), testUUID, "not trusted"},
		{"unknown kid", sign(other, "nobody"), testUUID, `kid "nobody" is not a trusted key`},
		{"trusted kid, another key", sign(other, "k"), testUUID, "does not verify"},
		{"x5c removed", mutate(t, good, func(d map[string]any) { delete(firstSig(d)["header"].(map[string]any), "x5c") }), testUUID, "neither x5c nor kid"},
		{"x5u only", mutate(t, good, func(d map[string]any) {
			h := firstSig(d)["header"].(map[string]any)
			delete(h, "x5c")
			h["x5u"] = "https://example.com/chain.pem"
		}), testUUID, "x5u only"},
		{"not signed", unsignedVcon(t), testUUID, "not signed"},
	}
	ver, err := NewVerifier(trusting)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ver.Verify(good, testUUID); err != nil {
		t.Fatalf("the untampered vCon: %v", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ver.Verify(c.in, c.want)
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err = %v, want %q", err, c.err)
			}
			if strings.Contains(err.Error(), "Alice") || strings.Contains(err.Error(), "forged") {
				t.Fatalf("the error quotes the vCon: %v", err)
			}
		})
	}
}

// A signature that names its key both ways (x5c and kid) verifies with
// either kind of trust alone.
func TestVerifyX5cAndKid(t *testing.T) {
	ca := newCA(t, "ES256", time.Now().Add(time.Hour))
	s, err := NewSigner(SignerConfig{Key: ca.leafKey, Certificates: []*x509.Certificate{ca.leaf}, KeyID: "both"})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := s.Sign(unsignedVcon(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]VerifierConfig{
		"trust roots": {Roots: []*x509.Certificate{ca.root}},
		"jwks":        {Keys: []jose.JSONWebKey{{Key: ca.leafKey.Public(), KeyID: "both"}}},
	} {
		ver, _ := NewVerifier(cfg)
		if _, err := ver.Verify(signed, testUUID); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestVerifyGzippedPayload(t *testing.T) {
	ca := newCA(t, "EdDSA", time.Now().Add(time.Hour))
	in, _ := unsignedVcon(t).Marshal()
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write(in)
	_ = zw.Close()
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: ca.leafKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, _ := js.Sign(z.Bytes())
	var flat map[string]any
	_ = json.Unmarshal([]byte(obj.FullSerialize()), &flat)
	doc := map[string]any{"payload": flat["payload"], "signatures": []any{map[string]any{
		"protected": flat["protected"], "signature": flat["signature"], "header": map[string]any{"kid": "z", "uuid": testUUID},
	}}}
	data, _ := json.Marshal(doc)
	signed, _ := vcon.Parse(data)
	ver, _ := NewVerifier(VerifierConfig{Keys: []jose.JSONWebKey{{Key: ca.leafKey.Public(), KeyID: "z"}}})
	got, err := ver.Verify(signed, testUUID)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := got.Marshal(); !bytes.Equal(b, in) {
		t.Fatalf("payload %s", b)
	}
}

func TestNewSignerRefuses(t *testing.T) {
	rsaCA := newCA(t, "RS256", time.Now().Add(time.Hour))
	ecCA := newCA(t, "ES256", time.Now().Add(time.Hour))
	cases := []struct {
		name string
		cfg  SignerConfig
		err  string
	}{
		{"no key", SignerConfig{KeyID: "k"}, "no private key"},
		{"neither x5c nor kid", SignerConfig{Key: rsaCA.leafKey}, "neither a certificate chain"},
		{"algorithm of another key type", SignerConfig{Key: rsaCA.leafKey, KeyID: "k", Algorithm: jose.ES256}, "signs RS256, not ES256"},
		{"certificate of another key", SignerConfig{Key: rsaCA.leafKey, Certificates: []*x509.Certificate{ecCA.leaf}}, "not the private key's"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewSigner(c.cfg); err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err = %v, want %q", err, c.err)
			}
		})
	}
}

// The draft's signed example, made by py-vcon, verifies here with its own
// x5c chain. Its issuing CA is an X.509 v1 certificate, which Go (and
// OpenSSL) refuse as an intermediate, so the trust anchor is that CA: the
// root alone does not make it trusted.
func TestDraftSignedExampleVerifies(t *testing.T) {
	signed := readVcon(t, "testdata/draft/ab_call_ext_rec_signed.vcon")
	chain := x5cOf(t, signed)
	if len(chain) != 3 {
		t.Fatalf("x5c has %d certificates", len(chain))
	}
	at := func() time.Time { return time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC) }
	ver, err := NewVerifier(VerifierConfig{Roots: chain[1:2], Now: at})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ver.Verify(signed, "019f15a6-a752-826f-b9a2-279e0d16bc46")
	if err != nil {
		t.Fatal(err)
	}
	unsigned := readVcon(t, "testdata/draft/ab_call_ext_rec.vcon")
	a, _ := got.Marshal()
	b, _ := vcon.FromDoc(unsigned.Doc()).Marshal()
	if !bytes.Equal(a, b) {
		t.Fatalf("payload\n%s\nis not the draft's unsigned example\n%s", a, b)
	}
	rootOnly, _ := NewVerifier(VerifierConfig{Roots: chain[2:], Now: at})
	if _, err := rootOnly.Verify(signed, got.UUID()); err == nil || !strings.Contains(err.Error(), "not authorized to sign") {
		t.Fatalf("with the v1 intermediate under the root: err = %v", err)
	}
	// The key the draft publishes is the leaf's: pinned by kid it verifies
	// too once the header names it, without trust roots for the chain.
	key, err := ParsePrivateKey(readFile(t, "testdata/draft/fake_grp.key"))
	if err != nil {
		t.Fatal(err)
	}
	byKid, _ := NewVerifier(VerifierConfig{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "grp"}}})
	withKid := mutate(t, signed, func(d map[string]any) {
		h := firstSig(d)["header"].(map[string]any)
		delete(h, "x5c")
		h["kid"] = "grp"
	})
	if _, err := byKid.Verify(withKid, got.UUID()); err != nil {
		t.Fatalf("by kid: %v", err)
	}
	// Its protected header still holds the x5c chain: with trust roots
	// that do not cover it and no key for the kid, nothing is trusted.
	other, _ := NewVerifier(VerifierConfig{Roots: chain[2:], Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "someone else"}}})
	if _, err := other.Verify(withKid, got.UUID()); err == nil || !strings.Contains(err.Error(), "x5c chain is not trusted") || !strings.Contains(err.Error(), `kid "grp" is not a trusted key`) {
		t.Fatalf("err = %v", err)
	}
}

// The draft's encrypted example decrypts with the published key into the
// signed example (py-vcon encrypted it in its compact encoding, the file
// is indented: the same JSON), which then verifies.
func TestDraftEncryptedExampleDecrypts(t *testing.T) {
	key, err := ParsePrivateKey(readFile(t, "testdata/draft/fake_grp.key"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDecrypter(key)
	if err != nil {
		t.Fatal(err)
	}
	enc := readVcon(t, "testdata/draft/ab_call_ext_rec_encrypted.vcon")
	if enc.Form() != vcon.Encrypted || enc.UUID() != "019f15a6-a752-826f-b9a2-279e0d16bc46" {
		t.Fatalf("form %v uuid %q", enc.Form(), enc.UUID())
	}
	got, err := d.Decrypt(enc, enc.UUID())
	if err != nil {
		t.Fatal(err)
	}
	signed := readVcon(t, "testdata/draft/ab_call_ext_rec_signed.vcon")
	a, _ := vcon.FromDoc(got.Doc()).Marshal()
	b, _ := vcon.FromDoc(signed.Doc()).Marshal()
	if !bytes.Equal(a, b) {
		t.Fatalf("plaintext is not the draft's signed example")
	}
	ver, _ := NewVerifier(VerifierConfig{Roots: x5cOf(t, got)[1:2], Now: func() time.Time { return time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC) }})
	if _, err := ver.Verify(got, enc.UUID()); err != nil {
		t.Fatal(err)
	}
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	ca := newCA(t, "RS256", time.Now().Add(time.Hour))
	s, _ := NewSigner(SignerConfig{Key: ca.leafKey, Certificates: []*x509.Certificate{ca.leaf}})
	signed, err := s.Sign(unsignedVcon(t))
	if err != nil {
		t.Fatal(err)
	}
	signedBytes, _ := signed.Marshal()
	alice, bob, eve := newKey(t, "RS256"), newKey(t, "RS256"), newKey(t, "RS256")
	for _, alg := range []jose.KeyAlgorithm{jose.RSA_OAEP, jose.RSA_OAEP_256} {
		for _, n := range []int{1, 2} {
			t.Run(string(alg)+"/"+string(rune('0'+n)), func(t *testing.T) {
				rcpts := []crypto.PublicKey{alice.Public(), bob.Public()}[:n]
				e, err := NewEncrypter(rcpts, alg)
				if err != nil {
					t.Fatal(err)
				}
				enc, err := e.Encrypt(signed)
				if err != nil {
					t.Fatal(err)
				}
				if enc.Form() != vcon.Encrypted || enc.UUID() != testUUID {
					t.Fatalf("form %v uuid %q", enc.Form(), enc.UUID())
				}
				if err := vcon.CheckSecured(enc); err != nil {
					t.Fatal(err)
				}
				if r := enc.Doc()["recipients"].([]any); len(r) != n {
					t.Fatalf("%d recipients", len(r))
				}
				if u := enc.Doc()["unprotected"].(map[string]any); u["cty"] != MediaType {
					t.Fatalf("unprotected %v", u)
				}
				raw, _ := enc.Marshal()
				if bytes.Contains(raw, []byte(signed.Doc()["payload"].(string)[:40])) {
					t.Fatal("the encrypted form holds the signed payload in the clear")
				}
				for _, k := range []crypto.Signer{alice, bob}[:n] {
					d, _ := NewDecrypter(k)
					got, err := d.Decrypt(enc, testUUID)
					if err != nil {
						t.Fatal(err)
					}
					if b, _ := got.Marshal(); !bytes.Equal(b, signedBytes) {
						t.Fatal("decrypted form differs from the signed one")
					}
				}
				d, _ := NewDecrypter(eve)
				if _, err := d.Decrypt(enc, testUUID); err == nil || !strings.Contains(err.Error(), "no recipient's key is ours") {
					t.Fatalf("another key: err = %v", err)
				}
			})
		}
	}
	e, _ := NewEncrypter([]crypto.PublicKey{alice.Public()}, "")
	enc, _ := e.Encrypt(signed)
	d, _ := NewDecrypter(alice)
	refused := []struct {
		name string
		in   *vcon.VCon
		err  string
	}{
		{"ciphertext altered", mutate(t, enc, func(doc map[string]any) {
			c := []byte(doc["ciphertext"].(string))
			c[5] = otherBase64URLChar(c[5])
			doc["ciphertext"] = string(c)
		}), "altered"},
		{"uuid header altered", mutate(t, enc, func(doc map[string]any) {
			doc["unprotected"].(map[string]any)["uuid"] = "00000000-0000-4000-8000-000000000000"
		}), "uuid header"},
		{"not encrypted", signed, "not encrypted"},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			if _, err := d.Decrypt(c.in, c.in.UUID()); err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err = %v, want %q", err, c.err)
			}
		})
	}
	if _, err := e.Encrypt(unsignedVcon(t)); err == nil || !strings.Contains(err.Error(), "sign it before encrypting") {
		t.Fatalf("unsigned: err = %v", err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readVcon(t *testing.T, path string) *vcon.VCon {
	t.Helper()
	v, err := vcon.Parse([]byte(readFile(t, path)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func x5cOf(t *testing.T, v *vcon.VCon) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, c := range firstSig(v.Doc())["header"].(map[string]any)["x5c"].([]any) {
		der, err := base64.StdEncoding.DecodeString(c.(string))
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cert)
	}
	return out
}

// otherBase64URLChar is a different base64url character than c, so that an
// altered signature or ciphertext still decodes and fails for what it says
// (flipping a bit could make it invalid base64 instead, now and then).
func otherBase64URLChar(c byte) byte {
	if c == 'A' {
		return 'B'
	}
	return 'A'
}
