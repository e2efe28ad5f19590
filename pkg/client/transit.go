package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The transit methods speak the Vault-shaped API under /v1/transit/
// (docs/api.md): every answer is the envelope {"data": {...}}, which they
// unwrap. Byte inputs (plaintext, input, context) travel as standard padded
// base64. Ciphertexts, signatures and HMACs are strings "wdn:v<N>:...",
// passed through unchanged. Errors are *APIError; a 400 names the field.
// What these methods return may be secret (plaintexts, data keys, exported
// keys): the caller must not log it.

// DurationSeconds is a duration that travels as whole seconds (JSON number),
// as the key view's auto_rotate_period and auto_retire_after do.
type DurationSeconds time.Duration

// MarshalJSON encodes d as whole seconds.
func (d DurationSeconds) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, int64(time.Duration(d)/time.Second), 10), nil
}

// UnmarshalJSON accepts whole seconds as a JSON number or decimal string,
// or a Go duration string.
func (d *DurationSeconds) UnmarshalJSON(b []byte) error {
	s := string(b)
	if u, err := strconv.Unquote(s); err == nil {
		if pd, err := time.ParseDuration(u); err == nil {
			*d = DurationSeconds(pd)
			return nil
		}
		s = u
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("duration: want whole seconds, got %.40s", b)
	}
	*d = DurationSeconds(time.Duration(n) * time.Second)
	return nil
}

// String returns the duration in Go's notation ("720h0m0s"; "0s" when off).
func (d DurationSeconds) String() string { return time.Duration(d).String() }

// TransitKeyVersion is one version of a transit key in the key view. For
// encryption and HMAC keys the API sends only the creation time (Unix
// seconds); for signing keys an object that also carries the public key.
type TransitKeyVersion struct {
	CreationTime time.Time
	Name         string // signing keys: the key type; "" otherwise
	PublicKey    string // signing keys: PEM (ecdsa-p256, rsa-3072) or base64 (ed25519)
}

type transitKeyVersionObject struct {
	CreationTime time.Time `json:"creation_time"`
	Name         string    `json:"name"`
	PublicKey    string    `json:"public_key"`
}

// MarshalJSON encodes v in the form the API sends: Unix seconds when it
// has no public key, otherwise the object.
func (v TransitKeyVersion) MarshalJSON() ([]byte, error) {
	if v.Name == "" && v.PublicKey == "" {
		return strconv.AppendInt(nil, v.CreationTime.Unix(), 10), nil
	}
	return json.Marshal(transitKeyVersionObject(v))
}

// UnmarshalJSON accepts either form MarshalJSON writes.
func (v *TransitKeyVersion) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var o transitKeyVersionObject
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*v = TransitKeyVersion(o)
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("key version: want Unix seconds or an object, got %.40s", b)
	}
	*v = TransitKeyVersion{CreationTime: time.Unix(n, 0).UTC()}
	return nil
}

// TransitKey is the key view (Vault's fields): a key's configuration and
// versions, never its material.
type TransitKey struct {
	Name                 string                       `json:"name"`
	Type                 string                       `json:"type"`
	Keys                 map[string]TransitKeyVersion `json:"keys"` // by decimal version number
	LatestVersion        int                          `json:"latest_version"`
	MinAvailableVersion  int                          `json:"min_available_version"`
	MinDecryptionVersion int                          `json:"min_decryption_version"`
	MinEncryptionVersion int                          `json:"min_encryption_version"` // 0: the latest
	DeletionAllowed      bool                         `json:"deletion_allowed"`
	Exportable           bool                         `json:"exportable"`
	Derived              bool                         `json:"derived"`
	SupportsEncryption   bool                         `json:"supports_encryption"`
	SupportsDecryption   bool                         `json:"supports_decryption"`
	SupportsDerivation   bool                         `json:"supports_derivation"`
	SupportsSigning      bool                         `json:"supports_signing"`
	AutoRotatePeriod     DurationSeconds              `json:"auto_rotate_period"` // 0: off
	AutoRetireAfter      DurationSeconds              `json:"auto_retire_after"`  // 0: off (Warden's)
	AllowPlaintextBackup bool                         `json:"allow_plaintext_backup"`
	KDF                  string                       `json:"kdf,omitempty"` // "hkdf_sha256" when derived
	ImportedKey          bool                         `json:"imported_key"`
}

// TransitKeyOptions are the choices made when a key is created. The zero
// value is an aes256-gcm96 key that is neither exportable, derived nor
// deletable, and never rotates by itself.
type TransitKeyOptions struct {
	Type            string        // "" is aes256-gcm96; see docs/transit.md for the types
	Exportable      bool          // can never be turned on later
	Derived         bool          // every operation then needs a context
	DeletionAllowed bool          //
	AutoRotate      time.Duration // 0: off; at least 1h
	AutoRetire      time.Duration // 0: off
}

func (o TransitKeyOptions) wire() map[string]any {
	m := map[string]any{}
	if o.Type != "" {
		m["type"] = o.Type
	}
	for k, v := range map[string]bool{"exportable": o.Exportable, "derived": o.Derived, "deletion_allowed": o.DeletionAllowed} {
		if v {
			m[k] = true
		}
	}
	if o.AutoRotate != 0 {
		m["auto_rotate_period"] = o.AutoRotate.String()
	}
	if o.AutoRetire != 0 {
		m["auto_retire_after"] = o.AutoRetire.String()
	}
	return m
}

// TransitConfig changes a key's configuration: only the fields that are
// not nil are sent, so the others keep their values.
type TransitConfig struct {
	MinDecryptionVersion *int
	MinEncryptionVersion *int // 0: always the latest
	DeletionAllowed      *bool
	Exportable           *bool // false is for good: a key that is not exportable never becomes so
	AutoRotate           *time.Duration
	AutoRetire           *time.Duration
}

// Empty reports whether c changes nothing.
func (c TransitConfig) Empty() bool { return len(c.wire()) == 0 }

func (c TransitConfig) wire() map[string]any {
	m := map[string]any{}
	if c.MinDecryptionVersion != nil {
		m["min_decryption_version"] = *c.MinDecryptionVersion
	}
	if c.MinEncryptionVersion != nil {
		m["min_encryption_version"] = *c.MinEncryptionVersion
	}
	if c.DeletionAllowed != nil {
		m["deletion_allowed"] = *c.DeletionAllowed
	}
	if c.Exportable != nil {
		m["exportable"] = *c.Exportable
	}
	if c.AutoRotate != nil {
		m["auto_rotate_period"] = c.AutoRotate.String()
	}
	if c.AutoRetire != nil {
		m["auto_retire_after"] = c.AutoRetire.String()
	}
	return m
}

// TransitCiphertext is the data of encrypt and rewrap.
type TransitCiphertext struct {
	Ciphertext string `json:"ciphertext"`
	KeyVersion int    `json:"key_version"`
}

// TransitPlaintext is the data of decrypt. Plaintext is secret.
type TransitPlaintext struct {
	Plaintext  []byte `json:"plaintext"` // base64 on the wire
	KeyVersion int    `json:"key_version,omitempty"`
}

// TransitDataKey is the data of datakey: a new random key, wrapped by the
// named key (Ciphertext) and, unless only the wrapped form was asked for,
// in plain (Plaintext, secret).
type TransitDataKey struct {
	Plaintext  []byte `json:"plaintext,omitempty"` // base64 on the wire
	Ciphertext string `json:"ciphertext"`
	KeyVersion int    `json:"key_version"`
}

// TransitSignature is the data of sign.
type TransitSignature struct {
	Signature  string `json:"signature"`
	KeyVersion int    `json:"key_version"`
}

// TransitHMACResult is the data of hmac.
type TransitHMACResult struct {
	HMAC       string `json:"hmac"`
	KeyVersion int    `json:"key_version"`
}

// TransitVerification is the data of verify.
type TransitVerification struct {
	Valid bool `json:"valid"`
}

// TransitExported is the data of export: material (or public keys) by
// decimal version number. Everything but a public key is secret.
type TransitExported struct {
	Name string            `json:"name"`
	Type string            `json:"type"`
	Keys map[string]string `json:"keys"`
}

// The export kinds of TransitExport, named as in Vault.
const (
	TransitExportEncryptionKey = "encryption-key"
	TransitExportSigningKey    = "signing-key"
	TransitExportHMACKey       = "hmac-key"
	TransitExportPublicKey     = "public-key"
)

// transitDo sends a transit request and unwraps the data envelope.
func transitDo[T any](ctx context.Context, c *Client, method, path string, in any) (T, error) {
	var env struct {
		Data T `json:"data"`
	}
	_, err := c.do(ctx, method, "/v1/transit/"+path, in, &env)
	return env.Data, err
}

// withContext returns in with the context field added, base64, when
// context is not empty: a key that is not derived refuses any context.
func withContext(in map[string]any, context []byte) map[string]any {
	if len(context) > 0 {
		in["context"] = base64.StdEncoding.EncodeToString(context)
	}
	return in
}

func keyPath(name string) string { return "keys/" + url.PathEscape(name) }

// TransitCreateKey creates key name (action transit.key.create). A key that
// exists already is returned unchanged, as Vault answers.
func (c *Client) TransitCreateKey(ctx context.Context, name string, opts TransitKeyOptions) (TransitKey, error) {
	return transitDo[TransitKey](ctx, c, http.MethodPost, keyPath(name), opts.wire())
}

// TransitKey returns the key view of name (transit.key.read); 404 if none.
func (c *Client) TransitKey(ctx context.Context, name string) (TransitKey, error) {
	return transitDo[TransitKey](ctx, c, http.MethodGet, keyPath(name), nil)
}

// TransitListKeys returns the names of the keys, sorted
// (transit.key.read on Key::"*"). No keys is an empty list, not an error.
func (c *Client) TransitListKeys(ctx context.Context) ([]string, error) {
	out, err := transitDo[struct {
		Keys []string `json:"keys"`
	}](ctx, c, http.MethodGet, "keys?list=true", nil)
	if IsStatus(err, http.StatusNotFound) { // Vault answers an empty list so
		return []string{}, nil
	}
	if out.Keys == nil {
		out.Keys = []string{}
	}
	return out.Keys, err
}

// TransitRotate adds a version to key name and returns the key view.
func (c *Client) TransitRotate(ctx context.Context, name string) (TransitKey, error) {
	return transitDo[TransitKey](ctx, c, http.MethodPost, keyPath(name)+"/rotate", nil)
}

// TransitConfig changes the fields of cfg that are set (transit.key.config)
// and returns the key view. A refused change changes nothing.
func (c *Client) TransitConfig(ctx context.Context, name string, cfg TransitConfig) (TransitKey, error) {
	return transitDo[TransitKey](ctx, c, http.MethodPost, keyPath(name)+"/config", cfg.wire())
}

// TransitTrim deletes the versions below minAvailable for good
// (transit.key.config); minAvailable may not exceed min_decryption_version.
func (c *Client) TransitTrim(ctx context.Context, name string, minAvailable int) (TransitKey, error) {
	return transitDo[TransitKey](ctx, c, http.MethodPost, keyPath(name)+"/trim",
		map[string]any{"min_available_version": minAvailable})
}

// TransitDeleteKey deletes key name (transit.key.delete): a 400 unless its
// deletion_allowed is set.
func (c *Client) TransitDeleteKey(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/transit/"+keyPath(name), nil, nil)
	return err
}

// TransitEncrypt encrypts plaintext with the latest usable version of key
// name; context is required for a derived key and refused otherwise.
func (c *Client) TransitEncrypt(ctx context.Context, name string, plaintext, context []byte) (ciphertext string, version int, err error) {
	out, err := transitDo[TransitCiphertext](ctx, c, http.MethodPost, "encrypt/"+url.PathEscape(name), withContext(map[string]any{
		"plaintext": base64.StdEncoding.EncodeToString(plaintext),
	}, context))
	return out.Ciphertext, out.KeyVersion, err
}

// TransitDecrypt decrypts a ciphertext of key name. Every failure to
// decrypt reads "cannot decrypt", whatever its cause. The plaintext is
// secret; version is the key version used when the server reports it.
func (c *Client) TransitDecrypt(ctx context.Context, name, ciphertext string, context []byte) (plaintext []byte, version int, err error) {
	out, err := transitDo[TransitPlaintext](ctx, c, http.MethodPost, "decrypt/"+url.PathEscape(name), withContext(map[string]any{"ciphertext": ciphertext}, context))
	return out.Plaintext, out.KeyVersion, err
}

// TransitRewrap decrypts ciphertext and encrypts it again with the latest
// version of key name, the plaintext never leaving the server.
func (c *Client) TransitRewrap(ctx context.Context, name, ciphertext string, context []byte) (string, int, error) {
	out, err := transitDo[TransitCiphertext](ctx, c, http.MethodPost, "rewrap/"+url.PathEscape(name), withContext(map[string]any{"ciphertext": ciphertext}, context))
	return out.Ciphertext, out.KeyVersion, err
}

// TransitDataKey makes a random key of bits bits (0: 256) wrapped by key
// name; with wrappedOnly the server does not send the plaintext.
func (c *Client) TransitDataKey(ctx context.Context, name string, wrappedOnly bool, bits int, context []byte) (TransitDataKey, error) {
	kind := "plaintext"
	if wrappedOnly {
		kind = "wrapped"
	}
	in := withContext(map[string]any{}, context)
	if bits != 0 {
		in["bits"] = bits
	}
	return transitDo[TransitDataKey](ctx, c, http.MethodPost, "datakey/"+kind+"/"+url.PathEscape(name), in)
}

// TransitSignOptions are the choices of TransitSign.
type TransitSignOptions struct {
	KeyVersion int    // 0: the latest
	Algorithm  string // rsa-3072 only: "pss" (the default) or "pkcs1v15"
}

// TransitSign signs input with key name (a signing type).
func (c *Client) TransitSign(ctx context.Context, name string, input []byte, opts TransitSignOptions) (signature string, version int, err error) {
	in := map[string]any{"input": base64.StdEncoding.EncodeToString(input)}
	if opts.KeyVersion != 0 {
		in["key_version"] = opts.KeyVersion
	}
	if opts.Algorithm != "" {
		in["signature_algorithm"] = opts.Algorithm
	}
	out, err := transitDo[TransitSignature](ctx, c, http.MethodPost, "sign/"+url.PathEscape(name), in)
	return out.Signature, out.KeyVersion, err
}

// TransitVerify reports whether signature is key name's signature of
// input; algorithm as in TransitSignOptions.
func (c *Client) TransitVerify(ctx context.Context, name string, input []byte, signature, algorithm string) (bool, error) {
	in := map[string]any{"input": base64.StdEncoding.EncodeToString(input), "signature": signature}
	if algorithm != "" {
		in["signature_algorithm"] = algorithm
	}
	return c.transitVerify(ctx, name, in)
}

// TransitVerifyHMAC reports whether hmac is key name's HMAC of input.
func (c *Client) TransitVerifyHMAC(ctx context.Context, name string, input []byte, hmac string) (bool, error) {
	return c.transitVerify(ctx, name, map[string]any{"input": base64.StdEncoding.EncodeToString(input), "hmac": hmac})
}

func (c *Client) transitVerify(ctx context.Context, name string, in map[string]any) (bool, error) {
	out, err := transitDo[TransitVerification](ctx, c, http.MethodPost, "verify/"+url.PathEscape(name), in)
	return out.Valid, err
}

// TransitHMAC returns the HMAC-SHA-256 of input under key name's latest
// version.
func (c *Client) TransitHMAC(ctx context.Context, name string, input []byte) (hmac string, version int, err error) {
	out, err := transitDo[TransitHMACResult](ctx, c, http.MethodPost, "hmac/"+url.PathEscape(name),
		map[string]any{"input": base64.StdEncoding.EncodeToString(input)})
	return out.HMAC, out.KeyVersion, err
}

// TransitExport returns version (0: every version) of key name as kind,
// one of the TransitExport* constants (action transit.key.export).
// Everything but public-key needs an exportable key (else a 400).
func (c *Client) TransitExport(ctx context.Context, name, kind string, version int) (TransitExported, error) {
	p := "export/" + url.PathEscape(kind) + "/" + url.PathEscape(name)
	if version != 0 {
		p += "/" + strconv.Itoa(version)
	}
	return transitDo[TransitExported](ctx, c, http.MethodGet, p, nil)
}

// TransitBatchResult is one item's answer in a batch, in the order of the
// items: the fields of its operation, or Error (the item's message naming
// the field; "cannot decrypt" for any decryption failure).
type TransitBatchResult struct {
	Ciphertext string `json:"ciphertext,omitempty"`
	Plaintext  []byte `json:"plaintext,omitempty"` // base64 on the wire; secret
	KeyVersion int    `json:"key_version,omitempty"`
	Error      string `json:"error,omitempty"`
}

// TransitEncryptItem is one plaintext of TransitEncryptBatch.
type TransitEncryptItem struct {
	Plaintext []byte
	Context   []byte // derived keys only
}

// TransitDecryptItem is one ciphertext of TransitDecryptBatch.
type TransitDecryptItem struct {
	Ciphertext string
	Context    []byte // derived keys only
}

// MaxTransitBatch is the most items one batch may hold.
const MaxTransitBatch = 1000

// TransitEncryptBatch encrypts up to MaxTransitBatch plaintexts in one
// request. Items fail on their own (their Error is set) without failing the
// call; the call fails only when the server refused the whole batch.
func (c *Client) TransitEncryptBatch(ctx context.Context, name string, items []TransitEncryptItem) ([]TransitBatchResult, error) {
	in := make([]map[string]any, len(items))
	for i, it := range items {
		in[i] = withContext(map[string]any{"plaintext": base64.StdEncoding.EncodeToString(it.Plaintext)}, it.Context)
	}
	return c.transitBatch(ctx, "encrypt/"+url.PathEscape(name), in)
}

// TransitDecryptBatch decrypts up to MaxTransitBatch ciphertexts in one
// request, as TransitEncryptBatch encrypts.
func (c *Client) TransitDecryptBatch(ctx context.Context, name string, items []TransitDecryptItem) ([]TransitBatchResult, error) {
	in := make([]map[string]any, len(items))
	for i, it := range items {
		in[i] = withContext(map[string]any{"ciphertext": it.Ciphertext}, it.Context)
	}
	return c.transitBatch(ctx, "decrypt/"+url.PathEscape(name), in)
}

// transitBatch sends batch_input. The server answers 400 with the data
// envelope when some item failed; a 400 without batch_results (the batch
// itself refused) is an *APIError.
func (c *Client) transitBatch(ctx context.Context, path string, items []map[string]any) ([]TransitBatchResult, error) {
	if len(items) == 0 {
		return []TransitBatchResult{}, nil
	}
	var out struct {
		Data struct {
			BatchResults []TransitBatchResult `json:"batch_results"`
		} `json:"data"`
		Errors []string `json:"errors"`
	}
	status, err := c.do(ctx, http.MethodPost, "/v1/transit/"+path, map[string]any{"batch_input": items}, &out, http.StatusBadRequest)
	if err != nil {
		return nil, err
	}
	if status == http.StatusBadRequest && out.Data.BatchResults == nil {
		b, _ := json.Marshal(map[string][]string{"errors": out.Errors})
		return nil, apiError(status, b, c.Token())
	}
	if len(out.Data.BatchResults) != len(items) {
		return nil, fmt.Errorf("warden: POST /v1/transit/%s: %d batch results for %d items", path, len(out.Data.BatchResults), len(items))
	}
	return out.Data.BatchResults, nil
}
