package vconjose

import (
	"crypto"
	"crypto/x509"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconjose/josetest"
)

// testCA is a root CA and a signing certificate it issued, for one kind
// of key: what a Secret of a real deployment holds.
type testCA struct {
	root    *x509.Certificate
	leafKey crypto.Signer
	leaf    *x509.Certificate
}

func newCA(t testing.TB, alg string, notAfter time.Time) testCA {
	t.Helper()
	s := josetest.NewSignerUntil(t, alg, notAfter)
	return testCA{root: s.Root, leafKey: s.Key, leaf: s.Leaf}
}

func newKey(t testing.TB, alg string) crypto.Signer { return josetest.NewKey(t, alg) }

const testUUID = "019f15a6-a752-826f-b9a2-279e0d16bc46"

func unsignedVcon(t testing.TB) *vcon.VCon {
	t.Helper()
	v, err := vcon.Parse([]byte(`{"uuid":"` + testUUID + `","vcon":"0.4.0","created_at":"2026-12-02T10:00:00Z","subject":"a call","parties":[{"tel":"+12345678901","name":"Alice"}],"dialog":[],"analysis":[],"attachments":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	return v
}
