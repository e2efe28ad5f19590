package transitapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"

	"github.com/warden-sec/warden/internal/api/handler"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/transit"
)

// item is one operation's input: a request's own fields, or one element
// of its batch_input.
type item[T any] interface {
	// ref is Vault's "reference", echoed in the item's result.
	ref() string
	// sensitive lists the data fields, whose HMACs the audit record
	// carries; in a batch they are given in each item only.
	sensitive(f func(name, value string))
	// inherit returns the batch item with the options it leaves unset
	// (key_version, algorithms) taken from top, the request's own fields
	// beside batch_input, as Vault applies them to every item.
	inherit(top T) T
}

// request is an operation's body: the item's fields, or batch_input.
type request[T item[T]] struct {
	Item T `json:",embed"`
	batchFields
}

// result is one operation's output fields.
type result = map[string]any

// op runs one item against the key: its result and the key version it
// used, or an error naming the field (errs.Invalid), which a batch reports
// in the item's result. Any other error fails the whole request.
type op[T item[T]] func(k *transit.Key, in T) (result, int, error)

// run is an operation route: it decodes the request, hashes its inputs
// into the audit record, runs op on the one item or on each of the batch,
// and answers as Vault does.
func run[T item[T]](h *Handlers, r handler.Request, do op[T]) (int, any, error) {
	_, k, err := h.load(r)
	if err != nil {
		return 0, nil, err
	}
	var in request[T]
	if err := r.Decode(&in); err != nil {
		return 0, nil, err
	}
	partial, err := in.partialCode()
	if err != nil {
		return 0, nil, err
	}
	if !in.batched() {
		if err := hashItem(r, in.Item); err != nil {
			return 0, nil, err
		}
		out, v, err := do(k, in.Item)
		if err != nil {
			return 0, nil, err
		}
		setVersion(r, v)
		return ok, envelope{Data: out}, nil
	}
	var beside error
	in.Item.sensitive(func(name, value string) {
		if value != "" && beside == nil {
			beside = invalid("%s: give it in each item of batch_input, not beside it", name)
		}
	})
	if in.Item.ref() != "" {
		beside = invalid("reference: give it in each item of batch_input, not beside it")
	}
	if beside != nil {
		return 0, nil, beside
	}
	items, err := DecodeBatch[T](in.BatchInput)
	if err != nil {
		return 0, nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, in.BatchInput); err != nil {
		return 0, nil, invalid("batch_input: malformed JSON")
	}
	if err := r.Hash("batch_input", compact.Bytes()); err != nil {
		return 0, nil, err
	}
	results := make([]result, len(items))
	failed := 0
	for i, it := range items {
		out, v, err := do(k, it.inherit(in.Item))
		if err != nil {
			if errs.CodeOf(err) != errs.Invalid {
				return 0, nil, err
			}
			failed++
			out = result{"error": err.Error()}
		} else {
			setVersion(r, v)
		}
		if ref := it.ref(); ref != "" {
			out["reference"] = ref
		}
		results[i] = out
	}
	status := ok
	switch {
	case failed == 0:
	case failed < len(items) && partial != 0:
		status = partial
	default:
		status = http.StatusBadRequest
	}
	return status, envelope{Data: map[string]any{"batch_results": results}}, nil
}

// hashItem puts the HMACs of an item's sensitive fields that are set into
// the audit record.
func hashItem[T item[T]](r handler.Request, it T) error {
	var err error
	it.sensitive(func(name, value string) {
		if err == nil && value != "" {
			err = r.Hash(name, []byte(value))
		}
	})
	return err
}

// unsupported refuses a Vault field Warden does not implement when it is
// set to anything but its default (allowed, "" when only unset is).
func unsupported(field string, set bool, allowed string) error {
	switch {
	case !set:
		return nil
	case allowed == "":
		return invalid("%s: not supported", field)
	}
	return invalid("%s: not supported (%s only)", field, allowed)
}

// first is the first error that is not nil.
func first(es ...error) error {
	for _, err := range es {
		if err != nil {
			return err
		}
	}
	return nil
}

// contextOf decodes a base64 context.
func contextOf(s string) ([]byte, error) { return decodeBase64("context", s) }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// aeadOptions are the Vault fields of the encryption operations that
// Warden does not implement: accepted only empty.
type aeadOptions struct {
	Nonce          string `json:"nonce"`
	AssociatedData string `json:"associated_data"`
}

func (o aeadOptions) or(top aeadOptions) aeadOptions {
	return aeadOptions{Nonce: or(o.Nonce, top.Nonce), AssociatedData: or(o.AssociatedData, top.AssociatedData)}
}

func (o aeadOptions) check() error {
	return first(unsupported("nonce", o.Nonce != "", ""), unsupported("associated_data", o.AssociatedData != "", ""))
}

// encryptItem is an encrypt input. type is accepted and ignored, as Vault
// does (the key's type decides).
type encryptItem struct {
	Plaintext  string `json:"plaintext"`
	Context    string `json:"context"`
	KeyVersion Int    `json:"key_version"`
	aeadOptions
	ConvergentEncryption Bool   `json:"convergent_encryption"`
	Type                 string `json:"type"`
	Reference            string `json:"reference"`
}

func (it encryptItem) ref() string { return it.Reference }
func (it encryptItem) sensitive(f func(string, string)) {
	f("plaintext", it.Plaintext)
	f("context", it.Context)
}

func (it encryptItem) inherit(top encryptItem) encryptItem {
	it.KeyVersion = it.KeyVersion.or(top.KeyVersion)
	it.aeadOptions = it.aeadOptions.or(top.aeadOptions)
	it.ConvergentEncryption = it.ConvergentEncryption.or(top.ConvergentEncryption)
	return it
}

// versionOf is the version an operation with key_version n uses.
func versionOf(k *transit.Key, n Int) int {
	if n.N == 0 {
		return k.Latest
	}
	return n.N
}

// encrypted is the answer of an encryption with key_version n.
func encrypted(k *transit.Key, ct string, n Int) (result, int, error) {
	v := versionOf(k, n)
	return result{"ciphertext": ct, "key_version": v}, v, nil
}

func (h *Handlers) encrypt(k *transit.Key, in encryptItem) (result, int, error) {
	if err := first(in.check(), unsupported("convergent_encryption", in.ConvergentEncryption.B, "false")); err != nil {
		return nil, 0, err
	}
	pt, err := decodeBase64("plaintext", in.Plaintext)
	if err != nil {
		return nil, 0, err
	}
	c, err := contextOf(in.Context)
	if err != nil {
		return nil, 0, err
	}
	ct, err := k.Encrypt(pt, c, in.KeyVersion.N, h.e.Rand())
	if err != nil {
		return nil, 0, err
	}
	return encrypted(k, ct, in.KeyVersion)
}

// Encrypt is POST /v1/transit/encrypt/{name}.
func (h *Handlers) Encrypt(r handler.Request) (int, any, error) { return run(h, r, h.encrypt) }

// decryptItem is a decrypt input, and the ciphertext of a rewrap.
type decryptItem struct {
	Ciphertext string `json:"ciphertext"`
	Context    string `json:"context"`
	aeadOptions
	Reference string `json:"reference"`
}

func (it decryptItem) ref() string { return it.Reference }
func (it decryptItem) sensitive(f func(string, string)) {
	f("ciphertext", it.Ciphertext)
	f("context", it.Context)
}

func (it decryptItem) inherit(top decryptItem) decryptItem {
	it.aeadOptions = it.aeadOptions.or(top.aeadOptions)
	return it
}

// context checks the item and returns its decoded context.
func (it decryptItem) context() ([]byte, error) {
	if err := it.check(); err != nil {
		return nil, err
	}
	if it.Ciphertext == "" {
		return nil, invalid("ciphertext: required")
	}
	return contextOf(it.Context)
}

func (h *Handlers) decrypt(k *transit.Key, in decryptItem) (result, int, error) {
	c, err := in.context()
	if err != nil {
		return nil, 0, err
	}
	pt, v, err := k.Decrypt(in.Ciphertext, c)
	if err != nil {
		return nil, 0, err
	}
	s := b64(pt)
	clear(pt)
	return result{"plaintext": s, "key_version": v}, v, nil
}

// Decrypt is POST /v1/transit/decrypt/{name}.
func (h *Handlers) Decrypt(r handler.Request) (int, any, error) { return run(h, r, h.decrypt) }

type rewrapItem struct {
	decryptItem
	KeyVersion Int `json:"key_version"`
}

func (it rewrapItem) inherit(top rewrapItem) rewrapItem {
	it.decryptItem = it.decryptItem.inherit(top.decryptItem)
	it.KeyVersion = it.KeyVersion.or(top.KeyVersion)
	return it
}

func (h *Handlers) rewrap(k *transit.Key, in rewrapItem) (result, int, error) {
	c, err := in.context()
	if err != nil {
		return nil, 0, err
	}
	ct, err := k.Rewrap(in.Ciphertext, c, in.KeyVersion.N, h.e.Rand())
	if err != nil {
		return nil, 0, err
	}
	return encrypted(k, ct, in.KeyVersion)
}

// Rewrap is POST /v1/transit/rewrap/{name}.
func (h *Handlers) Rewrap(r handler.Request) (int, any, error) { return run(h, r, h.rewrap) }

type dataKeyRequest struct {
	Context string `json:"context"`
	Bits    Int    `json:"bits"`
	aeadOptions
}

// DataKey is POST /v1/transit/datakey/plaintext/{name} (wrapped false) and
// /v1/transit/datakey/wrapped/{name} (wrapped true: the plaintext key is
// not returned).
func (h *Handlers) DataKey(wrapped bool) handler.Func {
	return func(r handler.Request) (int, any, error) {
		_, k, err := h.load(r)
		if err != nil {
			return 0, nil, err
		}
		var in dataKeyRequest
		if err := r.Decode(&in); err != nil {
			return 0, nil, err
		}
		if err := in.check(); err != nil {
			return 0, nil, err
		}
		if in.Context != "" {
			if err := r.Hash("context", []byte(in.Context)); err != nil {
				return 0, nil, err
			}
		}
		c, err := contextOf(in.Context)
		if err != nil {
			return 0, nil, err
		}
		pt, ct, err := k.DataKey(in.Bits.N, c, h.e.Rand())
		if err != nil {
			return 0, nil, err
		}
		defer clear(pt)
		setVersion(r, k.Latest)
		out := result{"ciphertext": ct, "key_version": k.Latest}
		if !wrapped {
			out["plaintext"] = b64(pt)
		}
		return ok, envelope{Data: out}, nil
	}
}

// signatureOptions are the Vault fields of sign and verify beyond the
// input: only their defaults (and Warden's one scheme per key type) are
// supported.
type signatureOptions struct {
	SignatureAlgorithm  string `json:"signature_algorithm"`
	HashAlgorithm       string `json:"hash_algorithm"`
	Prehashed           Bool   `json:"prehashed"`
	MarshalingAlgorithm string `json:"marshaling_algorithm"`
	SaltLength          string `json:"salt_length"`
	Context             string `json:"context"`
}

// or fills the options o leaves unset from top; the context is data, never
// inherited.
func (o signatureOptions) or(top signatureOptions) signatureOptions {
	return signatureOptions{SignatureAlgorithm: or(o.SignatureAlgorithm, top.SignatureAlgorithm),
		HashAlgorithm: or(o.HashAlgorithm, top.HashAlgorithm), Prehashed: o.Prehashed.or(top.Prehashed),
		MarshalingAlgorithm: or(o.MarshalingAlgorithm, top.MarshalingAlgorithm), SaltLength: or(o.SaltLength, top.SaltLength),
		Context: o.Context}
}

func (o signatureOptions) check(k *transit.Key) (transit.SignOptions, error) {
	err := first(
		unsupported("hash_algorithm", o.HashAlgorithm != "" && o.HashAlgorithm != "sha2-256", `"sha2-256"`),
		unsupported("prehashed", o.Prehashed.B, "false"),
		unsupported("marshaling_algorithm", k.Type != transit.Ed25519 && o.MarshalingAlgorithm != "" && o.MarshalingAlgorithm != "asn1", `"asn1"`),
		unsupported("salt_length", o.SaltLength != "" && o.SaltLength != "auto" && o.SaltLength != "hash", `"auto" or "hash"`),
	)
	if err != nil {
		return transit.SignOptions{}, err
	}
	if o.Context != "" {
		if _, err := contextOf(o.Context); err != nil {
			return transit.SignOptions{}, err
		}
		return transit.SignOptions{}, invalid("context: not allowed, the key is not derived")
	}
	return transit.SignOptions{Algorithm: transit.SignatureAlgorithm(o.SignatureAlgorithm)}, nil
}

type signItem struct {
	Input      string `json:"input"`
	KeyVersion Int    `json:"key_version"`
	signatureOptions
	Reference string `json:"reference"`
}

func (it signItem) ref() string { return it.Reference }
func (it signItem) sensitive(f func(string, string)) {
	f("input", it.Input)
	f("context", it.Context)
}

func (it signItem) inherit(top signItem) signItem {
	it.KeyVersion = it.KeyVersion.or(top.KeyVersion)
	it.signatureOptions = it.signatureOptions.or(top.signatureOptions)
	return it
}

func (h *Handlers) sign(k *transit.Key, in signItem) (result, int, error) {
	opts, err := in.check(k)
	if err != nil {
		return nil, 0, err
	}
	input, err := decodeBase64("input", in.Input)
	if err != nil {
		return nil, 0, err
	}
	opts.Version = in.KeyVersion.N
	sig, err := k.Sign(input, opts, h.e.Rand())
	if err != nil {
		return nil, 0, err
	}
	v := versionOf(k, in.KeyVersion)
	return result{"signature": sig, "key_version": v}, v, nil
}

// Sign is POST /v1/transit/sign/{name}.
func (h *Handlers) Sign(r handler.Request) (int, any, error) { return run(h, r, h.sign) }

type verifyItem struct {
	Input     string `json:"input"`
	Signature string `json:"signature"`
	HMAC      string `json:"hmac"`
	Algorithm string `json:"algorithm"`
	signatureOptions
	Reference string `json:"reference"`
}

func (it verifyItem) ref() string { return it.Reference }
func (it verifyItem) sensitive(f func(string, string)) {
	f("input", it.Input)
	f("signature", it.Signature)
	f("hmac", it.HMAC)
	f("context", it.Context)
}

func (it verifyItem) inherit(top verifyItem) verifyItem {
	it.Algorithm = or(it.Algorithm, top.Algorithm)
	it.signatureOptions = it.signatureOptions.or(top.signatureOptions)
	return it
}

func (h *Handlers) verify(k *transit.Key, in verifyItem) (result, int, error) {
	if (in.Signature == "") == (in.HMAC == "") {
		return nil, 0, invalid("signature: give signature or hmac, exactly one")
	}
	input, err := decodeBase64("input", in.Input)
	if err != nil {
		return nil, 0, err
	}
	var valid bool
	field, value := "signature", in.Signature
	if in.HMAC != "" {
		field, value = "hmac", in.HMAC
		if err := first(unsupported("algorithm", in.Algorithm != "" && in.Algorithm != "sha2-256", `"sha2-256"`),
			unsupported("signature_algorithm", in.SignatureAlgorithm != "", ""),
			in.signatureOptions.contextOnly()); err != nil {
			return nil, 0, err
		}
		valid, err = k.VerifyHMAC(input, in.HMAC)
	} else {
		if err := unsupported("algorithm", in.Algorithm != "", ""); err != nil {
			return nil, 0, err
		}
		opts, err2 := in.check(k)
		if err2 != nil {
			return nil, 0, err2
		}
		valid, err = k.Verify(input, in.Signature, opts)
	}
	if err != nil {
		return nil, 0, err
	}
	p, err := transit.Parse(field, value)
	if err != nil {
		return nil, 0, err
	}
	return result{"valid": valid}, p.Version, nil
}

// contextOnly refuses a context (no key derives signatures or HMACs).
func (o signatureOptions) contextOnly() error {
	if o.Context != "" {
		return invalid("context: not allowed, the key is not derived")
	}
	return nil
}

// Verify is POST /v1/transit/verify/{name}: a signature, or an HMAC.
func (h *Handlers) Verify(r handler.Request) (int, any, error) { return run(h, r, h.verify) }

type hmacItem struct {
	Input      string `json:"input"`
	KeyVersion Int    `json:"key_version"`
	Algorithm  string `json:"algorithm"`
	Reference  string `json:"reference"`
}

func (it hmacItem) ref() string                      { return it.Reference }
func (it hmacItem) sensitive(f func(string, string)) { f("input", it.Input) }

func (it hmacItem) inherit(top hmacItem) hmacItem {
	it.KeyVersion = it.KeyVersion.or(top.KeyVersion)
	it.Algorithm = or(it.Algorithm, top.Algorithm)
	return it
}

func (h *Handlers) hmac(k *transit.Key, in hmacItem) (result, int, error) {
	if err := unsupported("algorithm", in.Algorithm != "" && in.Algorithm != "sha2-256", `"sha2-256"`); err != nil {
		return nil, 0, err
	}
	input, err := decodeBase64("input", in.Input)
	if err != nil {
		return nil, 0, err
	}
	mac, err := k.HMAC(input, in.KeyVersion.N)
	if err != nil {
		return nil, 0, err
	}
	v := versionOf(k, in.KeyVersion)
	return result{"hmac": mac, "key_version": v}, v, nil
}

// HMAC is POST /v1/transit/hmac/{name}.
func (h *Handlers) HMAC(r handler.Request) (int, any, error) { return run(h, r, h.hmac) }
