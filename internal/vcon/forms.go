package vcon

import (
	"errors"
	"fmt"
	"strings"
)

// Form is which of the core draft's three forms a document is in
// (draft-ietf-vcon-vcon-core, "Differentiation of unsigned, signed and
// encrypted forms of vCon").
type Form int

const (
	// Unsigned is the plain vCon: parties, dialog, analysis, attachments.
	Unsigned Form = iota
	// Signed is the General JWS JSON Serialization of an unsigned vCon:
	// payload and signatures.
	Signed
	// Encrypted is the General JWE JSON Serialization of a signed vCon:
	// ciphertext and recipients.
	Encrypted
)

func (f Form) String() string {
	switch f {
	case Signed:
		return "signed (JWS)"
	case Encrypted:
		return "encrypted (JWE)"
	}
	return "unsigned"
}

// FormOf says which form doc is in, as the draft tells them apart: both
// payload and signatures make it signed, both ciphertext and recipients
// encrypted, anything else is read as unsigned.
func FormOf(doc map[string]any) Form {
	if has(doc, "payload") && has(doc, "signatures") {
		return Signed
	}
	if has(doc, "ciphertext") && has(doc, "recipients") {
		return Encrypted
	}
	return Unsigned
}

func has(doc map[string]any, key string) bool {
	_, ok := doc[key]
	return ok
}

// Form is the form v is in.
func (v *VCon) Form() Form { return FormOf(v.tree()) }

// Secured says whether v is signed or encrypted. Such a document is not
// rewritten by anything in this module: it is kept as the bytes it was
// parsed from (or made as), because a normalisation, a version stamp or
// even a re-encoding of the envelope would make it something its signer
// did not write.
func (v *VCon) Secured() bool { return v.Form() != Unsigned }

// securedUUID is the uuid a signed or encrypted form carries outside its
// protected content: the draft's uuid header parameter, in every
// signature's unprotected header of a JWS, in the shared unprotected
// header of a JWE. "" when absent or when the signatures disagree.
func securedUUID(doc map[string]any) string {
	switch FormOf(doc) {
	case Signed:
		sigs, _ := doc["signatures"].([]any)
		uuid := ""
		for _, s := range sigs {
			sig, _ := s.(map[string]any)
			h, _ := sig["header"].(map[string]any)
			u, _ := h["uuid"].(string)
			if u == "" || (uuid != "" && !strings.EqualFold(u, uuid)) {
				return ""
			}
			uuid = u
		}
		return uuid
	case Encrypted:
		h, _ := doc["unprotected"].(map[string]any)
		u, _ := h["uuid"].(string)
		return u
	}
	return ""
}

// CheckSecured reports why a signed or encrypted document cannot be
// queued: the JSON members of its serialization (RFC 7515 7.2.1, RFC 7516
// 7.2.1) are missing or of the wrong type, or it does not say its uuid in
// the draft's uuid header parameter, which the body's key needs since the
// vCon inside cannot be read without a key. It checks the shape only,
// never a signature or a key. nil for an unsigned document.
func CheckSecured(v *VCon) error {
	var errs []error
	str := func(m map[string]any, key, where string) {
		if s, ok := m[key].(string); !ok || s == "" {
			errs = append(errs, fmt.Errorf("%s%s: want a non-empty base64url string", where, key))
		}
	}
	doc := v.tree()
	switch v.Form() {
	case Unsigned:
		return nil
	case Signed:
		str(doc, "payload", "")
		sigs, ok := doc["signatures"].([]any)
		if !ok || len(sigs) == 0 {
			errs = append(errs, errors.New("signatures: want a non-empty list of signature objects"))
		}
		for i, s := range sigs {
			sig, ok := s.(map[string]any)
			where := fmt.Sprintf("signatures[%d].", i)
			if !ok {
				errs = append(errs, fmt.Errorf("signatures[%d]: want an object", i))
				continue
			}
			str(sig, "protected", where)
			str(sig, "signature", where)
			h, ok := sig["header"].(map[string]any)
			if !ok {
				errs = append(errs, fmt.Errorf("%sheader: want an object holding alg, x5c or x5u (or kid) and uuid", where))
				continue
			}
			if u, _ := h["uuid"].(string); !ValidUUID(u) {
				errs = append(errs, fmt.Errorf("%sheader.uuid: want the vCon's uuid", where))
			}
		}
	case Encrypted:
		for _, key := range []string{"iv", "ciphertext", "tag"} {
			str(doc, key, "")
		}
		if r, ok := doc["recipients"].([]any); !ok || len(r) == 0 {
			errs = append(errs, errors.New("recipients: want a non-empty list of recipient objects"))
		}
		h, ok := doc["unprotected"].(map[string]any)
		if u, _ := h["uuid"].(string); !ok || !ValidUUID(u) {
			errs = append(errs, errors.New("unprotected.uuid: want the vCon's uuid"))
		}
	}
	if len(errs) == 0 && securedUUID(doc) == "" {
		errs = append(errs, errors.New("the signatures' header.uuid differ"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s vCon: %w", v.Form(), errors.Join(errs...))
	}
	return nil
}
