package links

import (
	"context"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconjose/josetest"
)

// TestKeysFromTheEnvironment: keys reach the links as a deployment passes
// them, a Secret key in an env var referenced as ${NAME} in the config
// file: multi-line PEM (and a JWKS) survive the interpolation, and a vCon
// signed and encrypted by links built from that config opens again.
func TestKeysFromTheEnvironment(t *testing.T) {
	signer, recipient := josetest.NewSigner(t, "EdDSA"), josetest.NewSigner(t, "RS256")
	env := map[string]string{
		"SIGN_KEY": signer.KeyPEM, "SIGN_CHAIN": signer.ChainPEM, "ROOTS": signer.RootPEM,
		"JWKS": signer.JWKS(t, "k1"), "RCPT": recipient.ChainPEM, "RCPT_KEY": recipient.KeyPEM,
	}
	cfg, err := config.Parse([]byte(`
links:
  sign: {module: links.sign, options: {private_key: "${SIGN_KEY}", certificates: "${SIGN_CHAIN}", kid: k1}}
  encrypt: {module: links.encrypt, options: {recipients: "${RCPT}"}}
  decrypt: {module: links.decrypt, options: {private_key: "${RCPT_KEY}"}}
  by_chain: {module: links.verify, options: {trust_roots: "${ROOTS}"}}
  by_kid: {module: links.verify, options: {jwks: "${JWKS}"}}
chains:
  c: {links: [sign, encrypt, decrypt, by_chain], ingress_lists: [in]}
`), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	build := func(name string) Link {
		m := cfg.Links[name]
		l, err := New(name, m.Module, m.Options, Deps{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return l
	}
	for _, verifier := range []string{"by_chain", "by_kid"} {
		v, _ := vcon.Parse([]byte(`{"uuid":"0190d6f0-1c2d-7a00-8000-0000000000e1","created_at":"2026-12-02T10:00:00Z","subject":"kept","parties":[]}`))
		for _, step := range []string{"sign", "encrypt", "decrypt", verifier} {
			if _, err := build(step).Run(context.Background(), v); err != nil {
				t.Fatalf("%s: %v", step, err)
			}
		}
		if v.Form() != vcon.Unsigned || v.String("subject") != "kept" {
			t.Fatalf("after %s: %v %q", verifier, v.Form(), v.String("subject"))
		}
	}
}
