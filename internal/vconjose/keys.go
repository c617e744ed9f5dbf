// Package vconjose makes and opens the core draft's signed and encrypted
// forms of a vCon (draft-ietf-vcon-vcon-core, "Signed Form of vCon Object"
// and "Encrypted Form of vCon Object"): the General JWS JSON Serialization
// of the unsigned vCon, and the General JWE JSON Serialization of the
// signed one, with github.com/go-jose/go-jose/v4 doing the cryptography.
//
// Keys and certificates arrive as PEM text (the links read them from
// Secrets through ${VAR}), and errors never quote them.
package vconjose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// Signature algorithms this package signs with and accepts: the draft's
// RS256 (its SHOULD, "to maximize interoperability"), ES256 and EdDSA
// (Ed25519). Anything else in a header is refused before any key is used.
var SignatureAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// minRSABits is the smallest RSA key signed or encrypted with: shorter
// ones are breakable, and RFC 7518 requires 2048 for RS256 and RSA-OAEP.
const minRSABits = 2048

// ParsePrivateKey reads one private key from PEM: PKCS #8 (RSA, P-256
// ECDSA, Ed25519), PKCS #1 (RSA) or SEC 1 (EC).
func ParsePrivateKey(pemText string) (crypto.Signer, error) {
	blocks := pemBlocks(pemText)
	for _, b := range blocks {
		var (
			key any
			err error
		)
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("the %s block does not parse", b.Type)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
		if err := checkKey(s.Public()); err != nil {
			return nil, err
		}
		return s, nil
	}
	if len(blocks) == 0 {
		return nil, errors.New("no PEM block found (want -----BEGIN PRIVATE KEY-----)")
	}
	return nil, errors.New("no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block found")
}

// ParseCertificates reads every CERTIFICATE block of pemText, in order.
func ParseCertificates(pemText string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for i, b := range pemBlocks(pemText) {
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %w", i+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no CERTIFICATE block found")
	}
	return out, nil
}

// ParsePublicKeys reads every public key of pemText: PUBLIC KEY blocks
// (PKIX) and the keys of CERTIFICATE blocks, in order.
func ParsePublicKeys(pemText string) ([]crypto.PublicKey, error) {
	var out []crypto.PublicKey
	for i, b := range pemBlocks(pemText) {
		var (
			key any
			err error
		)
		switch b.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(b.Bytes); err == nil {
				key = c.PublicKey
			}
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s) does not parse", i+1, b.Type)
		}
		if err := checkKey(key); err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", i+1, err)
		}
		out = append(out, key)
	}
	if len(out) == 0 {
		return nil, errors.New("no PUBLIC KEY or CERTIFICATE block found")
	}
	return out, nil
}

func pemBlocks(text string) []*pem.Block {
	var out []*pem.Block
	rest := []byte(text)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		out = append(out, b)
	}
}

// checkKey refuses keys no algorithm here uses safely.
func checkKey(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits: want at least %d", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("EC key on %s: want P-256 (ES256)", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("unsupported key type %T: want RSA, P-256 or Ed25519", pub)
	}
	return nil
}

// AlgorithmFor is the signature algorithm of a key: RS256 for RSA, ES256
// for P-256, EdDSA for Ed25519.
func AlgorithmFor(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	if err := checkKey(pub); err != nil {
		return "", err
	}
	switch pub.(type) {
	case *rsa.PublicKey:
		return jose.RS256, nil
	case *ecdsa.PublicKey:
		return jose.ES256, nil
	}
	return jose.EdDSA, nil
}

// samePublicKey says whether a and b are the same key.
func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
