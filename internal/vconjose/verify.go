package vconjose

import (
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// MaxPayloadBytes bounds a gzipped payload or plaintext once inflated, so
// that a small hostile document cannot take the worker's memory.
const MaxPayloadBytes = 256 << 20

// VerifierConfig is what a verifier trusts. A signature counts when its
// x5c chain leads to one of Roots, or when its kid names one of Keys.
type VerifierConfig struct {
	// Roots are the trust anchors of x5c chains. The issuing CA itself
	// may be one: Go, like OpenSSL, refuses an intermediate that is not
	// marked as a CA (an X.509 v1 certificate, as in the draft's example).
	Roots []*x509.Certificate
	// Keys are pinned public keys by their kid.
	Keys []jose.JSONWebKey
	// Now is the time certificates must be valid at; time.Now when nil.
	Now func() time.Time
}

// Verifier checks signed vCons.
type Verifier struct {
	roots *x509.CertPool
	keys  map[string]jose.JSONWebKey
	now   func() time.Time
}

// NewVerifier checks c and prepares a verifier.
func NewVerifier(c VerifierConfig) (*Verifier, error) {
	if len(c.Roots) == 0 && len(c.Keys) == 0 {
		return nil, errors.New("nothing to trust: give trust roots for x5c chains or public keys by kid")
	}
	v := &Verifier{now: c.Now, keys: map[string]jose.JSONWebKey{}}
	if v.now == nil {
		v.now = time.Now
	}
	if len(c.Roots) > 0 {
		v.roots = x509.NewCertPool()
		for _, r := range c.Roots {
			v.roots.AddCert(r)
		}
	}
	for i, k := range c.Keys {
		switch {
		case k.KeyID == "":
			return nil, fmt.Errorf("key %d has no kid", i+1)
		case !k.Valid() || !k.IsPublic():
			return nil, fmt.Errorf("key %q is not a valid public key", k.KeyID)
		}
		if err := checkKey(k.Key); err != nil {
			return nil, fmt.Errorf("key %q: %w", k.KeyID, err)
		}
		if _, dup := v.keys[k.KeyID]; dup {
			return nil, fmt.Errorf("kid %q is given twice", k.KeyID)
		}
		v.keys[k.KeyID] = k
	}
	return v, nil
}

// Verify opens the signed vCon jws and returns the unsigned vCon it
// carries when one of its signatures verifies with a trusted key, every
// signature's uuid header equals the vCon's uuid, and that uuid is want.
// Signatures by keys it does not trust are passed over: a vCon may carry
// the signatures of several domains. Its errors say what failed, never
// what the vCon holds.
func (ver *Verifier) Verify(jws *vcon.VCon, want string) (*vcon.VCon, error) {
	if jws.Form() != vcon.Signed {
		return nil, fmt.Errorf("the vCon is %s, not signed", jws.Form())
	}
	data, err := jws.Marshal()
	if err != nil {
		return nil, err
	}
	obj, err := jose.ParseSignedJSON(string(data), SignatureAlgorithms)
	if err != nil {
		return nil, fmt.Errorf("not a JWS this verifier accepts (algorithms %v): %w", SignatureAlgorithms, err)
	}
	var (
		payload  []byte
		problems []string
	)
	for i, sig := range obj.Signatures {
		key, why := ver.keyFor(sig)
		if key == nil {
			problems = append(problems, fmt.Sprintf("signature %d: %s", i+1, why))
			continue
		}
		idx, _, p, err := obj.VerifyMulti(key)
		if err != nil || idx != i {
			problems = append(problems, fmt.Sprintf("signature %d: does not verify with its %s", i+1, why))
			continue
		}
		payload = p
		break
	}
	if payload == nil {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	if payload, err = inflate(payload); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	out, err := vcon.Parse(payload)
	if err != nil {
		return nil, errors.New("the payload is not a JSON object")
	}
	if out.Form() != vcon.Unsigned {
		return nil, fmt.Errorf("the payload is %s: verify a re-signed vCon one layer at a time is not supported", out.Form())
	}
	uuid := out.UUID()
	for i, sig := range obj.Signatures {
		if u, _ := sig.Header.ExtraHeaders["uuid"].(string); !strings.EqualFold(u, uuid) {
			return nil, fmt.Errorf("signature %d: its uuid header is not the signed vCon's uuid", i+1)
		}
	}
	if !strings.EqualFold(uuid, want) {
		return nil, errors.New("the signed vCon's uuid is not the one it was queued under")
	}
	return out, nil
}

// keyFor is the trusted public key of sig, or nil and why there is none;
// with a key, why names where it came from. A signature may name its key
// both ways (x5c and kid): the chain is tried when trust roots are
// configured, the kid when keys are.
func (ver *Verifier) keyFor(sig jose.Signature) (any, string) {
	h := sig.Header
	var why []string
	roots := ver.roots
	if roots == nil {
		// Only to learn whether there is a chain: an empty pool trusts
		// nothing, where nil would load the system's roots.
		roots = x509.NewCertPool()
	}
	chains, err := h.Certificates(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: ver.now(),
		// Signing certificates carry no TLS usage; the chain is what is
		// checked here, not what else the key may do.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	switch {
	case errors.Is(err, jose.ErrMissingX5cHeader):
	case ver.roots == nil:
		why = append(why, "has an x5c chain and no trust roots are configured")
	case err != nil:
		why = append(why, "its x5c chain is not trusted: "+err.Error())
	default:
		return chains[0][0].PublicKey, "x5c certificate"
	}
	if h.KeyID != "" {
		if k, ok := ver.keys[h.KeyID]; ok {
			return k.Key, fmt.Sprintf("key %q", h.KeyID)
		}
		why = append(why, fmt.Sprintf("kid %q is not a trusted key", h.KeyID))
	}
	if len(why) > 0 {
		return nil, strings.Join(why, ", and ")
	}
	if _, ok := h.ExtraHeaders["x5u"]; ok {
		return nil, "names its certificates by x5u only, which is not fetched (a URL in an unverified header)"
	}
	return nil, "has neither x5c nor kid"
}

// inflate is a gzipped payload inflated (the draft allows a payload or
// plaintext of application/vcon+gzip), else data.
func inflate(data []byte) ([]byte, error) {
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		return data, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, MaxPayloadBytes+1))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if len(out) > MaxPayloadBytes {
		return nil, fmt.Errorf("gzip: inflates to more than %d bytes", MaxPayloadBytes)
	}
	return out, nil
}
