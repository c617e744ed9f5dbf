package vconjose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// testCA is a root CA and a signing certificate it issued, for one kind
// of key: what a Secret of a real deployment holds.
type testCA struct {
	root    *x509.Certificate
	leafKey crypto.Signer
	leaf    *x509.Certificate
}

func newKey(t testing.TB, alg string) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case "RS256":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var serial int64

func newCA(t testing.TB, alg string, notAfter time.Time) testCA {
	t.Helper()
	rootKey := newKey(t, "ES256")
	serial++
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	leafKey := newKey(t, alg)
	serial++
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "test signer " + alg},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, root, leafKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	return testCA{root: root, leafKey: leafKey, leaf: leaf}
}

func pemOf(t testing.TB, typ string, der []byte) string {
	t.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func privatePEM(t testing.TB, k crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "PRIVATE KEY", der)
}

const testUUID = "019f15a6-a752-826f-b9a2-279e0d16bc46"

func unsignedVcon(t testing.TB) *vcon.VCon {
	t.Helper()
	v, err := vcon.Parse([]byte(`{"uuid":"` + testUUID + `","vcon":"0.4.0","created_at":"2026-12-02T10:00:00Z","subject":"a call","parties":[{"tel":"+12345678901","name":"Alice"}],"dialog":[],"analysis":[],"attachments":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	return v
}
