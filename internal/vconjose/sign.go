package vconjose

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// SignerConfig is one signing key and how a verifier finds its public key.
type SignerConfig struct {
	Key crypto.Signer
	// Algorithm, when set, must be the key's (AlgorithmFor); it guards
	// against a Secret holding another kind of key than the config says.
	Algorithm jose.SignatureAlgorithm
	// Certificates is the key's chain, leaf first, sent as x5c: the
	// draft's way, which lets the chain travel with the vCon.
	Certificates []*x509.Certificate
	// KeyID is sent as kid, for verifiers that pin public keys by id.
	KeyID string
}

// Signer makes the signed form of vCons with one key.
type Signer struct {
	signer jose.Signer
	alg    jose.SignatureAlgorithm
	x5c    []any
	kid    string
}

// NewSigner checks c and prepares a signer.
func NewSigner(c SignerConfig) (*Signer, error) {
	if c.Key == nil {
		return nil, errors.New("no private key")
	}
	alg, err := AlgorithmFor(c.Key.Public())
	if err != nil {
		return nil, err
	}
	if c.Algorithm != "" && c.Algorithm != alg {
		return nil, fmt.Errorf("the private key signs %s, not %s", alg, c.Algorithm)
	}
	if len(c.Certificates) == 0 && c.KeyID == "" {
		return nil, errors.New("neither a certificate chain (x5c) nor a key id (kid): a verifier could not find the key")
	}
	s := &Signer{alg: alg, kid: c.KeyID}
	if len(c.Certificates) > 0 {
		if !samePublicKey(c.Key.Public(), c.Certificates[0].PublicKey) {
			return nil, errors.New("the first certificate is not the private key's: put the signing certificate first, then its issuers")
		}
		for _, cert := range c.Certificates {
			// x5c is standard base64 of DER, not base64url (RFC 7515 4.1.6).
			s.x5c = append(s.x5c, base64.StdEncoding.EncodeToString(cert.Raw))
		}
	}
	// Only alg is protected: go-jose puts nothing else there for a bare
	// key. The draft wants x5c (or x5u) and uuid in the unprotected
	// header, and RFC 7515 wants the two headers disjoint, so they go
	// there alone; an altered x5c or kid only makes verification fail.
	if s.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: c.Key}, nil); err != nil {
		return nil, fmt.Errorf("prepare the %s signer: %w", alg, err)
	}
	return s, nil
}

// Algorithm is the signature algorithm of s.
func (s *Signer) Algorithm() jose.SignatureAlgorithm { return s.alg }

// Sign returns the signed form of the unsigned vCon v, whose encoding is
// the payload: {payload, signatures: [{protected, header: {x5c|kid,
// uuid}, signature}]}, encoded as this module encodes every document
// (sorted keys, no white space), so that a storage keeping JSON as a value
// gives back these very bytes.
func (s *Signer) Sign(v *vcon.VCon) (*vcon.VCon, error) {
	if v.Secured() {
		return nil, fmt.Errorf("the vCon is already %s", v.Form())
	}
	uuid := v.UUID()
	if !vcon.ValidUUID(uuid) {
		return nil, errors.New("the vCon has no valid uuid for the signature header")
	}
	payload, err := v.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode the payload: %w", err)
	}
	obj, err := s.signer.Sign(payload)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	// go-jose writes one signature in the flattened serialization; the
	// draft wants the general one, so the parts are moved into it.
	var flat struct {
		Payload   string `json:"payload"`
		Protected string `json:"protected"`
		Signature string `json:"signature"`
	}
	if err := json.Unmarshal([]byte(obj.FullSerialize()), &flat); err != nil || flat.Protected == "" || flat.Signature == "" {
		return nil, errors.New("sign: go-jose gave no flattened serialization")
	}
	header := map[string]any{"uuid": uuid}
	if s.x5c != nil {
		header["x5c"] = s.x5c
	}
	if s.kid != "" {
		header["kid"] = s.kid
	}
	doc := map[string]any{
		"payload": flat.Payload,
		"signatures": []any{map[string]any{
			"protected": flat.Protected,
			"header":    header,
			"signature": flat.Signature,
		}},
	}
	data, err := vcon.FromDoc(doc).Marshal()
	if err != nil {
		return nil, err
	}
	return vcon.Parse(data)
}
