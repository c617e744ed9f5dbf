package links

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconjose"
)

// The signed and encrypted forms of the core draft (internal/vconjose):
// links.sign and links.encrypt make them, links.verify and links.decrypt
// open them. A vCon in one of these forms is its signer's document, not a
// vCon other links can read or change, so the pipeline lets only a
// FormLink run on it.

func init() {
	Register("links.sign", newSign)
	Register("links.verify", newVerify)
	Register("links.encrypt", newEncrypt)
	Register("links.decrypt", newDecrypt)
}

// FormLink is implemented by the links that know the vCon's form. Every
// other link works on unsigned vCons only: the pipeline dead-letters a
// signed or encrypted vCon that reaches one (reason wrong_form), and
// refuses at load a chain where one follows a link that leaves every vCon
// signed or encrypted.
type FormLink interface {
	// Accepts says whether the link runs on a vCon in form f.
	Accepts(f vcon.Form) bool
	// Output is the form the link leaves every vCon in, and false when it
	// leaves the form as it found it.
	Output() (vcon.Form, bool)
}

// Accepts says whether l runs on a vCon in form f.
func Accepts(l Link, f vcon.Form) bool {
	if fl, ok := l.(FormLink); ok {
		return fl.Accepts(f)
	}
	return f == vcon.Unsigned
}

// Dead-letter reasons a link gives with a ReasonError, beside the
// pipeline's own.
const (
	// ReasonSignatureInvalid: links.verify found no signature that
	// verifies with a trusted key, or a uuid that does not match.
	ReasonSignatureInvalid = "signature_invalid"
	// ReasonDecryptionFailed: links.decrypt could not open the vCon with
	// its key, or what it opened is not the signed vCon the header names.
	ReasonDecryptionFailed = "decryption_failed"
)

// ReasonError is a link's error that dead-letters the vCon with its own
// reason, at once: the same document fails the same way every time.
type ReasonError struct {
	Reason string
	Err    error
}

func (e *ReasonError) Error() string { return e.Err.Error() }
func (e *ReasonError) Unwrap() error { return e.Err }

// signLink makes the signed form of each vCon.
type signLink struct {
	signer *vconjose.Signer
}

func newSign(_ string, raw map[string]any, _ Deps) (Link, error) {
	o := options.New(raw)
	cfg := vconjose.SignerConfig{KeyID: o.Name("kid", "")}
	cfg.Key = privateKey(o, "private_key")
	if chain := o.Secret("certificates"); chain != "" {
		certs, err := vconjose.ParseCertificates(chain)
		if err != nil {
			o.Failf("certificates", "want the signing certificate and its issuers as PEM: %v", err)
		}
		cfg.Certificates = certs
	}
	if o.Has("algorithm") {
		alg := jose.SignatureAlgorithm(o.Name("algorithm", ""))
		if !containsAlg(alg) {
			o.Fail("algorithm", fmt.Sprintf("one of %v", vconjose.SignatureAlgorithms))
		}
		cfg.Algorithm = alg
	}
	if !o.Has("certificates") && cfg.KeyID == "" {
		o.Errorf("set certificates (the chain sent as x5c, as the draft requires) or kid (for verifiers that pin keys by id)")
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	s, err := vconjose.NewSigner(cfg)
	if err != nil {
		return nil, err
	}
	return &signLink{signer: s}, nil
}

func (l *signLink) Accepts(f vcon.Form) bool  { return f == vcon.Unsigned }
func (l *signLink) Output() (vcon.Form, bool) { return vcon.Signed, true }

func (l *signLink) Run(_ context.Context, v *vcon.VCon) (Result, error) {
	// The payload is the vCon as the worker stores it, so that what a
	// verifier gets back is what an unsigned chain would have written.
	vcon.Normalize(v)
	signed, err := l.signer.Sign(v)
	if err != nil {
		return Result{}, err
	}
	v.Replace(signed)
	return Continue, nil
}

// verifyLink checks the signature of each vCon and goes on with the
// unsigned vCon inside (or the signed form, with keep_signed).
type verifyLink struct {
	verifier      *vconjose.Verifier
	keepSigned    bool
	allowUnsigned bool
}

func newVerify(_ string, raw map[string]any, _ Deps) (Link, error) {
	o := options.New(raw)
	var cfg vconjose.VerifierConfig
	if roots := o.Secret("trust_roots"); roots != "" {
		certs, err := vconjose.ParseCertificates(roots)
		if err != nil {
			o.Failf("trust_roots", "want CA certificates as PEM: %v", err)
		}
		cfg.Roots = certs
	}
	if text := o.Secret("jwks"); text != "" {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal([]byte(text), &set); err != nil {
			o.Failf("jwks", "want a JSON Web Key Set ({\"keys\": [...]}) of public keys with kid: it does not parse")
		} else if len(set.Keys) == 0 {
			o.Failf("jwks", "want a JSON Web Key Set with at least one key")
		}
		cfg.Keys = set.Keys
	}
	keep := o.Bool("keep_signed", false)
	allow := o.Bool("allow_unsigned", false)
	if !o.Has("trust_roots") && !o.Has("jwks") {
		o.Errorf("set trust_roots (CA certificates for x5c chains) or jwks (public keys by kid): nothing is trusted")
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	ver, err := vconjose.NewVerifier(cfg)
	if err != nil {
		return nil, err
	}
	return &verifyLink{verifier: ver, keepSigned: keep, allowUnsigned: allow}, nil
}

// Accepts unsigned vCons too, to refuse them with signature_invalid (or
// pass them with allow_unsigned) rather than as the wrong form.
func (l *verifyLink) Accepts(f vcon.Form) bool { return f != vcon.Encrypted }

func (l *verifyLink) Output() (vcon.Form, bool) {
	switch {
	case !l.keepSigned:
		return vcon.Unsigned, true
	case !l.allowUnsigned:
		return vcon.Signed, true
	}
	return 0, false
}

func (l *verifyLink) Run(_ context.Context, v *vcon.VCon) (Result, error) {
	if v.Form() == vcon.Unsigned {
		if l.allowUnsigned {
			return Continue, nil
		}
		return Result{}, &ReasonError{Reason: ReasonSignatureInvalid, Err: fmt.Errorf("the vCon is not signed")}
	}
	payload, err := l.verifier.Verify(v, v.UUID())
	if err != nil {
		return Result{}, &ReasonError{Reason: ReasonSignatureInvalid, Err: err}
	}
	if !l.keepSigned {
		v.Replace(payload)
	}
	return Continue, nil
}

// encryptLink makes the encrypted form of each signed vCon.
type encryptLink struct {
	enc *vconjose.Encrypter
}

func newEncrypt(_ string, raw map[string]any, _ Deps) (Link, error) {
	o := options.New(raw)
	var keys []crypto.PublicKey
	if text := o.Secret("recipients"); text != "" {
		var err error
		if keys, err = vconjose.ParsePublicKeys(text); err != nil {
			o.Failf("recipients", "want the recipients' RSA public keys or certificates as PEM: %v", err)
		}
	} else if o.Problems() == 0 {
		o.Failf("recipients", "required, missing")
	}
	alg := jose.KeyAlgorithm(o.Name("key_algorithm", string(jose.RSA_OAEP)))
	if alg != jose.RSA_OAEP && alg != jose.RSA_OAEP_256 {
		o.Fail("key_algorithm", "RSA-OAEP or RSA-OAEP-256")
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	enc, err := vconjose.NewEncrypter(keys, alg)
	if err != nil {
		return nil, err
	}
	return &encryptLink{enc: enc}, nil
}

// Accepts signed vCons only: the draft says a vCon MUST be signed first,
// then encrypted.
func (l *encryptLink) Accepts(f vcon.Form) bool  { return f == vcon.Signed }
func (l *encryptLink) Output() (vcon.Form, bool) { return vcon.Encrypted, true }

func (l *encryptLink) Run(_ context.Context, v *vcon.VCon) (Result, error) {
	enc, err := l.enc.Encrypt(v)
	if err != nil {
		return Result{}, err
	}
	v.Replace(enc)
	return Continue, nil
}

// decryptLink opens each encrypted vCon into the signed vCon inside.
type decryptLink struct {
	dec *vconjose.Decrypter
}

func newDecrypt(_ string, raw map[string]any, _ Deps) (Link, error) {
	o := options.New(raw)
	key := privateKey(o, "private_key")
	if err := o.Err(); err != nil {
		return nil, err
	}
	dec, err := vconjose.NewDecrypter(key)
	if err != nil {
		return nil, err
	}
	return &decryptLink{dec: dec}, nil
}

func (l *decryptLink) Accepts(f vcon.Form) bool  { return f == vcon.Encrypted }
func (l *decryptLink) Output() (vcon.Form, bool) { return vcon.Signed, true }

func (l *decryptLink) Run(_ context.Context, v *vcon.VCon) (Result, error) {
	signed, err := l.dec.Decrypt(v, v.UUID())
	if err != nil {
		return Result{}, &ReasonError{Reason: ReasonDecryptionFailed, Err: err}
	}
	v.Replace(signed)
	return Continue, nil
}

// privateKey reads a PEM private key option, required. The error never
// quotes the value.
func privateKey(o *options.Reader, key string) crypto.Signer {
	before := o.Problems()
	text := o.Secret(key)
	if text == "" {
		if o.Problems() == before {
			o.Failf(key, "required, missing (a PEM private key, usually ${VAR} from a Secret)")
		}
		return nil
	}
	k, err := vconjose.ParsePrivateKey(text)
	if err != nil {
		o.Failf(key, "want a PEM private key: %s", strings.TrimSpace(err.Error()))
		return nil
	}
	return k
}

func containsAlg(alg jose.SignatureAlgorithm) bool {
	for _, a := range vconjose.SignatureAlgorithms {
		if a == alg {
			return true
		}
	}
	return false
}
