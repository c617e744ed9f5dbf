package vconjose

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconjose/josetest"
)

// nodeJose runs testdata/interop/jose.mjs with panva's jose: a JOSE
// implementation that shares no code with go-jose. node comes from
// hack/deps.sh, jose from hack/tools.sh jose-node (make tools); a missing
// one fails the test with the command that provides it.
type nodeJose struct {
	t      *testing.T
	node   string
	script string
}

func newNodeJose(t *testing.T) *nodeJose {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: run hack/deps.sh (make deps)")
	}
	mods, _ := filepath.Abs("../../bin/jose-node/node_modules")
	if _, err := os.Stat(filepath.Join(mods, "jose", "package.json")); err != nil {
		t.Fatalf("node's jose is not installed at %s: run hack/tools.sh jose-node (make tools)", mods)
	}
	// An ES module finds its packages beside it: the script runs from a
	// directory whose node_modules is the installed one.
	dir := t.TempDir()
	script, err := os.ReadFile("testdata/interop/jose.mjs")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jose.mjs"), script, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(mods, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	return &nodeJose{t: t, node: node, script: filepath.Join(dir, "jose.mjs")}
}

// try sends one request; err when jose refused it.
func (n *nodeJose) try(req map[string]any) ([]byte, error) {
	in, _ := json.Marshal(req)
	cmd := exec.Command(n.node, n.script)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return stderr.Bytes(), err
	}
	return out, nil
}

// run sends one request that must succeed and returns the answer.
func (n *nodeJose) run(req map[string]any) map[string]any {
	n.t.Helper()
	out, err := n.try(req)
	if err != nil {
		n.t.Fatalf("node jose %s: %v: %s", req["op"], err, out)
	}
	var answer map[string]any
	if err := json.Unmarshal(out, &answer); err != nil {
		n.t.Fatalf("node jose %s answered %q", req["op"], out)
	}
	return answer
}

func docOf(t *testing.T, v *vcon.VCon) map[string]any {
	t.Helper()
	b, _ := v.Marshal()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestInteropSignatures: a signature made here verifies with node's jose,
// and one made there verifies here, for each algorithm.
func TestInteropSignatures(t *testing.T) {
	nj := newNodeJose(t)
	run := nj.run
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		s := josetest.NewSigner(t, alg)
		t.Run(alg+"/signed here", func(t *testing.T) {
			signer, err := NewSigner(SignerConfig{Key: s.Key, Certificates: []*x509.Certificate{s.Leaf}})
			if err != nil {
				t.Fatal(err)
			}
			in := unsignedVcon(t)
			payload, _ := in.Marshal()
			signed, err := signer.Sign(in)
			if err != nil {
				t.Fatal(err)
			}
			got := run(map[string]any{"op": "verify", "alg": alg, "cert": s.ChainPEM, "jws": docOf(t, signed)})
			if got["payload"] != string(payload) {
				t.Fatalf("node's payload %q", got["payload"])
			}
			if h := got["header"].(map[string]any); h["uuid"] != testUUID || h["x5c"] == nil {
				t.Fatalf("node's unprotected header %v", h)
			}
			// node refuses the signature once the payload changes: its
			// check is a real one.
			tampered := docOf(t, signed)
			tampered["payload"] = b64(`{"uuid":"` + testUUID + `"}`)
			if out, err := nj.try(map[string]any{"op": "verify", "alg": alg, "cert": s.ChainPEM, "jws": tampered}); err == nil || !strings.Contains(string(out), "ERR_JWS_SIGNATURE_VERIFICATION_FAILED") {
				t.Fatalf("node verified a tampered payload: %s", out)
			}
		})
		t.Run(alg+"/signed by node", func(t *testing.T) {
			payload, _ := unsignedVcon(t).Marshal()
			for _, how := range []string{"x5c", "kid"} {
				header := map[string]any{"uuid": testUUID}
				cfg := VerifierConfig{}
				if how == "x5c" {
					header["x5c"] = []string{pemBody(s.ChainPEM)}
					cfg.Roots = []*x509.Certificate{s.Root}
				} else {
					header["kid"] = "node-key"
					cfg.Keys = []jose.JSONWebKey{{Key: s.Key.Public(), KeyID: "node-key"}}
				}
				jws := run(map[string]any{"op": "sign", "alg": alg, "key": s.KeyPEM, "payload": string(payload), "header": header})
				data, _ := json.Marshal(jws)
				v, err := vcon.Parse(data)
				if err != nil || v.Form() != vcon.Signed {
					t.Fatalf("node's JWS is not a signed vCon: %v", err)
				}
				ver, err := NewVerifier(cfg)
				if err != nil {
					t.Fatal(err)
				}
				got, err := ver.Verify(v, testUUID)
				if err != nil {
					t.Fatalf("%s: %v", how, err)
				}
				if b, _ := got.Marshal(); !bytes.Equal(b, payload) {
					t.Fatalf("%s: payload %s", how, b)
				}
			}
		})
	}
}

// TestInteropEncryption: a vCon encrypted here decrypts with node's jose,
// and one encrypted there decrypts here.
func TestInteropEncryption(t *testing.T) {
	run := newNodeJose(t).run
	s := josetest.NewSigner(t, "RS256")
	signer, _ := NewSigner(SignerConfig{Key: s.Key, KeyID: "k"})
	signed, err := signer.Sign(unsignedVcon(t))
	if err != nil {
		t.Fatal(err)
	}
	signedBytes, _ := signed.Marshal()
	t.Run("encrypted here", func(t *testing.T) {
		e, err := NewEncrypter([]crypto.PublicKey{s.Key.Public()}, jose.RSA_OAEP)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := e.Encrypt(signed)
		if err != nil {
			t.Fatal(err)
		}
		got := run(map[string]any{"op": "decrypt", "key": s.KeyPEM, "jwe": docOf(t, enc)})
		if got["plaintext"] != string(signedBytes) {
			t.Fatal("node's plaintext is not the signed vCon")
		}
		if u := got["unprotected"].(map[string]any); u["uuid"] != testUUID || u["cty"] != MediaType {
			t.Fatalf("node's shared unprotected header %v", u)
		}
	})
	t.Run("encrypted by node", func(t *testing.T) {
		jwe := run(map[string]any{"op": "encrypt", "cert": s.ChainPEM, "uuid": testUUID, "plaintext": string(signedBytes)})
		data, _ := json.Marshal(jwe)
		v, err := vcon.Parse(data)
		if err != nil || v.Form() != vcon.Encrypted || v.UUID() != testUUID {
			t.Fatalf("node's JWE is not an encrypted vCon (%v)", err)
		}
		d, _ := NewDecrypter(s.Key)
		got, err := d.Decrypt(v, testUUID)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := got.Marshal(); !bytes.Equal(b, signedBytes) {
			t.Fatal("plaintext is not the signed vCon")
		}
	})
}

// pemBody is the base64 of a PEM certificate: its DER in x5c's encoding.
func pemBody(p string) string {
	var b strings.Builder
	for _, line := range strings.Split(p, "\n") {
		if !strings.HasPrefix(line, "-----") {
			b.WriteString(strings.TrimSpace(line))
		}
	}
	return b.String()
}
