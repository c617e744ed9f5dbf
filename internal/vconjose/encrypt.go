package vconjose

import (
	"crypto"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// ContentEncryption is the draft's enc, A256CBC-HS512, used for every
// vCon encrypted here.
const ContentEncryption = jose.A256CBC_HS512

// KeyAlgorithms are the key encryptions made and accepted: the draft's
// RSA-OAEP, and RSA-OAEP-256 for recipients that want SHA-256.
var KeyAlgorithms = []jose.KeyAlgorithm{jose.RSA_OAEP, jose.RSA_OAEP_256}

// contentEncryptions are accepted when decrypting: the draft's, and the
// other RFC 7518 content encryptions other implementations default to.
var contentEncryptions = []jose.ContentEncryption{jose.A256CBC_HS512, jose.A128CBC_HS256, jose.A192CBC_HS384, jose.A256GCM, jose.A192GCM, jose.A128GCM}

// MediaType is the cty of the encrypted form's unprotected header.
const MediaType = "application/vcon"

// Encrypter makes the encrypted form of signed vCons for its recipients.
type Encrypter struct {
	enc jose.Encrypter
}

// NewEncrypter encrypts to every key of recipients (RSA public keys) with
// alg, one of KeyAlgorithms (RSA-OAEP when empty).
func NewEncrypter(recipients []crypto.PublicKey, alg jose.KeyAlgorithm) (*Encrypter, error) {
	if alg == "" {
		alg = jose.RSA_OAEP
	}
	if !contains(KeyAlgorithms, alg) {
		return nil, fmt.Errorf("key algorithm %s: want one of %v", alg, KeyAlgorithms)
	}
	if len(recipients) == 0 {
		return nil, errors.New("no recipient public key")
	}
	rcpts := make([]jose.Recipient, len(recipients))
	for i, k := range recipients {
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("recipient %d: a %T, want an RSA public key (%s)", i+1, k, alg)
		}
		if err := checkKey(rk); err != nil {
			return nil, fmt.Errorf("recipient %d: %w", i+1, err)
		}
		rcpts[i] = jose.Recipient{Algorithm: alg, Key: rk}
	}
	enc, err := jose.NewMultiEncrypter(ContentEncryption, rcpts, nil)
	if err != nil {
		return nil, fmt.Errorf("prepare the encrypter: %w", err)
	}
	return &Encrypter{enc: enc}, nil
}

// Encrypt returns the encrypted form of the signed vCon v: the General
// JWE JSON Serialization of its bytes, with the draft's unprotected
// {cty, uuid}. enc stays in the protected header, where go-jose puts it
// and where it is authenticated; RFC 7516 wants the headers disjoint, so
// it is not repeated in the unprotected one as the draft's example does.
func (e *Encrypter) Encrypt(v *vcon.VCon) (*vcon.VCon, error) {
	if v.Form() != vcon.Signed {
		// The draft: "A vCon MUST be signed first ... then encrypted".
		return nil, fmt.Errorf("the vCon is %s: sign it before encrypting it", v.Form())
	}
	plaintext, err := v.Marshal()
	if err != nil {
		return nil, err
	}
	obj, err := e.enc.Encrypt(plaintext)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(obj.FullSerialize()), &doc); err != nil {
		return nil, errors.New("encrypt: go-jose gave no JSON serialization")
	}
	// One recipient comes flattened; the draft wants recipients.
	if _, general := doc["recipients"]; !general {
		r := map[string]any{"encrypted_key": doc["encrypted_key"]}
		if h, ok := doc["header"]; ok {
			r["header"] = h
		}
		delete(doc, "encrypted_key")
		delete(doc, "header")
		doc["recipients"] = []any{r}
	}
	doc["unprotected"] = map[string]any{"cty": MediaType, "uuid": v.UUID()}
	data, err := vcon.FromDoc(doc).Marshal()
	if err != nil {
		return nil, err
	}
	return vcon.Parse(data)
}

// Decrypter opens encrypted vCons with private keys.
type Decrypter struct {
	keys []crypto.Decrypter
}

// NewDecrypter decrypts with any of keys (RSA private keys).
func NewDecrypter(keys ...crypto.Signer) (*Decrypter, error) {
	d := &Decrypter{}
	for i, k := range keys {
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("key %d: a %T, want an RSA private key", i+1, k)
		}
		d.keys = append(d.keys, rk)
	}
	if len(d.keys) == 0 {
		return nil, errors.New("no private key")
	}
	return d, nil
}

// Decrypt opens the encrypted vCon jwe and returns the signed vCon it
// carries, whose uuid must be the unprotected header's and want.
func (d *Decrypter) Decrypt(jwe *vcon.VCon, want string) (*vcon.VCon, error) {
	if jwe.Form() != vcon.Encrypted {
		return nil, fmt.Errorf("the vCon is %s, not encrypted", jwe.Form())
	}
	data, err := jwe.Marshal()
	if err != nil {
		return nil, err
	}
	obj, err := jose.ParseEncryptedJSON(string(data), KeyAlgorithms, contentEncryptions)
	if err != nil {
		return nil, fmt.Errorf("not a JWE this decrypter accepts (key algorithms %v): %w", KeyAlgorithms, err)
	}
	var plaintext []byte
	for _, k := range d.keys {
		if _, _, pt, err := obj.DecryptMulti(k); err == nil {
			plaintext = pt
			break
		}
	}
	if plaintext == nil {
		// go-jose's errors are alike on purpose (no padding oracle).
		return nil, errors.New("no recipient's key is ours, or the ciphertext was altered")
	}
	if plaintext, err = inflate(plaintext); err != nil {
		return nil, fmt.Errorf("plaintext: %w", err)
	}
	out, err := vcon.Parse(plaintext)
	if err != nil {
		return nil, errors.New("the plaintext is not a JSON object")
	}
	if out.Form() != vcon.Signed {
		return nil, fmt.Errorf("the plaintext is %s: the draft encrypts only signed vCons", out.Form())
	}
	if err := vcon.CheckSecured(out); err != nil {
		return nil, fmt.Errorf("the plaintext: %w", err)
	}
	if !strings.EqualFold(out.UUID(), jwe.UUID()) || !strings.EqualFold(out.UUID(), want) {
		return nil, errors.New("the encrypted vCon's uuid header is not the uuid of the signed vCon inside")
	}
	return out, nil
}

func contains[T comparable](s []T, x T) bool {
	for _, e := range s {
		if e == x {
			return true
		}
	}
	return false
}
