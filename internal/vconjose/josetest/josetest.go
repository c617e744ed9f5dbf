// Package josetest makes the keys and certificates the tests of signed and
// encrypted vCons need, as the PEM and JWKS text a Secret would hold, so
// that each test goes through the same option parsing as a deployment.
package josetest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Signer is a signing key with a certificate issued by its own root CA.
type Signer struct {
	Alg  string // RS256, ES256 or EdDSA
	Key  crypto.Signer
	Leaf *x509.Certificate
	Root *x509.Certificate

	KeyPEM    string // PKCS #8
	ChainPEM  string // the leaf, for links.sign's certificates
	RootPEM   string // for links.verify's trust_roots
	PublicPEM string // PKIX public key, for links.encrypt's recipients
}

// JWKS is the public key as a JSON Web Key Set with kid, for links.verify.
func (s Signer) JWKS(t testing.TB, kid string) string {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: s.Key.Public(), KeyID: kid, Algorithm: s.Alg, Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var serial atomic.Int64

// NewKey is a fresh key for alg.
func NewKey(t testing.TB, alg string) crypto.Signer {
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
		t.Fatalf("josetest: no key type for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// NewSigner is a key for alg and a certificate for it, valid for a day,
// issued by a new root CA.
func NewSigner(t testing.TB, alg string) Signer {
	t.Helper()
	return NewSignerUntil(t, alg, time.Now().Add(24*time.Hour))
}

// NewSignerUntil is NewSigner with a certificate valid until notAfter (in
// the past for an expired one).
func NewSignerUntil(t testing.TB, alg string, notAfter time.Time) Signer {
	t.Helper()
	rootKey := NewKey(t, "ES256")
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: "josetest root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	key := NewKey(t, alg)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: "josetest signer " + alg},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, root, key.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pkix, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return Signer{
		Alg: alg, Key: key, Leaf: leaf, Root: root,
		KeyPEM:    PEM("PRIVATE KEY", pkcs8),
		ChainPEM:  PEM("CERTIFICATE", leafDER),
		RootPEM:   PEM("CERTIFICATE", rootDER),
		PublicPEM: PEM("PUBLIC KEY", pkix),
	}
}

// PEM is one PEM block.
func PEM(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}
