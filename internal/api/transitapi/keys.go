package transitapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/warden-sec/warden/internal/api/handler"
	"github.com/warden-sec/warden/internal/transit"
	"github.com/warden-sec/warden/internal/transit/engine"
)

// keyView is a key as Vault's GET transit/keys/NAME shows it, without
// material.
type keyView struct {
	Name                 string         `json:"name"`
	Type                 transit.Type   `json:"type"`
	Keys                 map[string]any `json:"keys"`
	LatestVersion        int            `json:"latest_version"`
	MinAvailableVersion  int            `json:"min_available_version"`
	MinDecryptionVersion int            `json:"min_decryption_version"`
	MinEncryptionVersion int            `json:"min_encryption_version"`
	DeletionAllowed      bool           `json:"deletion_allowed"`
	Exportable           bool           `json:"exportable"`
	Derived              bool           `json:"derived"`
	SupportsEncryption   bool           `json:"supports_encryption"`
	SupportsDecryption   bool           `json:"supports_decryption"`
	SupportsDerivation   bool           `json:"supports_derivation"`
	SupportsSigning      bool           `json:"supports_signing"`
	AutoRotatePeriod     int64          `json:"auto_rotate_period"`
	AutoRetireAfter      int64          `json:"auto_retire_after"`
	AllowPlaintextBackup bool           `json:"allow_plaintext_backup"`
	KDF                  string         `json:"kdf,omitempty"`
	ImportedKey          bool           `json:"imported_key"`
}

// signingVersion is a version of a signing key as Vault shows it.
type signingVersion struct {
	CreationTime string       `json:"creation_time"`
	Name         transit.Type `json:"name"`
	PublicKey    string       `json:"public_key"`
}

func view(k *transit.Key) (keyView, error) {
	encrypts := k.Type == transit.AES256GCM96 || k.Type == transit.ChaCha20Poly1305
	signs := k.Type == transit.Ed25519 || k.Type == transit.ECDSAP256 || k.Type == transit.RSA3072
	v := keyView{Name: k.Name, Type: k.Type, Keys: make(map[string]any, len(k.Versions)),
		LatestVersion: k.Latest, MinAvailableVersion: k.MinAvailableVersion(),
		MinDecryptionVersion: k.MinDecryptionVersion, MinEncryptionVersion: k.MinEncryptionVersion,
		DeletionAllowed: k.DeletionAllowed, Exportable: k.Exportable, Derived: k.Derived,
		SupportsEncryption: encrypts, SupportsDecryption: encrypts, SupportsDerivation: encrypts, SupportsSigning: signs,
		AutoRotatePeriod: seconds(k.AutoRotatePeriod), AutoRetireAfter: seconds(k.AutoRetireAfter)}
	if k.Derived {
		v.KDF = "hkdf_sha256"
	}
	var pubs map[string]string
	if signs {
		var err error
		if pubs, err = k.Export(transit.ExportPublicKey, 0); err != nil {
			return keyView{}, err
		}
	}
	for _, ver := range k.Versions {
		n := strconv.Itoa(ver.Number)
		if signs {
			v.Keys[n] = signingVersion{CreationTime: ver.Created.UTC().Format(time.RFC3339Nano), Name: k.Type, PublicKey: pubs[n]}
		} else {
			v.Keys[n] = ver.Created.Unix()
		}
	}
	return v, nil
}

// viewed answers a key's view.
func viewed(k *transit.Key, err error) (int, any, error) {
	if err != nil {
		return 0, nil, err
	}
	v, err := view(k)
	if err != nil {
		return 0, nil, err
	}
	return ok, envelope{Data: v}, nil
}

type createRequest struct {
	Type                 string   `json:"type"`
	Exportable           Bool     `json:"exportable"`
	Derived              Bool     `json:"derived"`
	DeletionAllowed      Bool     `json:"deletion_allowed"`
	AutoRotatePeriod     Duration `json:"auto_rotate_period"`
	AutoRetireAfter      Duration `json:"auto_retire_after"`
	AllowPlaintextBackup Bool     `json:"allow_plaintext_backup"`
	ConvergentEncryption Bool     `json:"convergent_encryption"`
}

// CreateKey is POST /v1/transit/keys/{name}. A key that exists is
// answered unchanged, as Vault does.
func (h *Handlers) CreateKey(r handler.Request) (int, any, error) {
	var in createRequest
	eng, name, err := h.named(r, &in)
	if err != nil {
		return 0, nil, err
	}
	if in.AllowPlaintextBackup.B {
		return 0, nil, invalid("allow_plaintext_backup: not supported (false only)")
	}
	if in.ConvergentEncryption.B {
		return 0, nil, invalid("convergent_encryption: not supported (false only)")
	}
	typ, err := transit.ParseType(in.Type)
	if err != nil {
		return 0, nil, err
	}
	k, _, err := eng.Create(engine.WithRecord(r.Context(), r.Entry()), name, typ, transit.Options{Derived: in.Derived.B, Exportable: in.Exportable.B,
		DeletionAllowed: in.DeletionAllowed.B, AutoRotatePeriod: in.AutoRotatePeriod.D, AutoRetireAfter: in.AutoRetireAfter.D})
	return viewed(k, err)
}

// ReadKey is GET /v1/transit/keys/{name}.
func (h *Handlers) ReadKey(r handler.Request) (int, any, error) {
	_, k, err := h.load(r)
	return viewed(k, err)
}

// ListKeys is LIST /v1/transit/keys and GET /v1/transit/keys?list=true.
func (h *Handlers) ListKeys(r handler.Request) (int, any, error) {
	eng, err := h.engine()
	if err != nil {
		return 0, nil, err
	}
	if r.Query().Get("list") != "true" && r.Query().Get("list") != "" {
		return 0, nil, invalid("list: must be true")
	}
	names, err := eng.List(r.Context())
	if err != nil {
		return 0, nil, err
	}
	if names == nil {
		names = []string{}
	}
	return ok, envelope{Data: map[string][]string{"keys": names}}, nil
}

// DeleteKey is DELETE /v1/transit/keys/{name}: only a key whose
// deletion_allowed is set.
func (h *Handlers) DeleteKey(r handler.Request) (int, any, error) {
	eng, name, err := h.named(r, nil)
	if err != nil {
		return 0, nil, err
	}
	if err := eng.Delete(r.Context(), name); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// RotateKey is POST /v1/transit/keys/{name}/rotate.
func (h *Handlers) RotateKey(r handler.Request) (int, any, error) {
	eng, k, err := h.load(r)
	if err != nil {
		return 0, nil, err
	}
	if err := r.Decode(&struct{}{}); err != nil {
		return 0, nil, err
	}
	// The record commits with the rotation and names the version it made.
	return viewed(eng.Rotate(engine.WithRecord(r.Context(), r.Entry()), k.Name))
}

type configRequest struct {
	MinDecryptionVersion Int      `json:"min_decryption_version"`
	MinEncryptionVersion Int      `json:"min_encryption_version"`
	DeletionAllowed      Bool     `json:"deletion_allowed"`
	Exportable           Bool     `json:"exportable"`
	AutoRotatePeriod     Duration `json:"auto_rotate_period"`
	AutoRetireAfter      Duration `json:"auto_retire_after"`
	AllowPlaintextBackup Bool     `json:"allow_plaintext_backup"`
}

// ConfigKey is POST /v1/transit/keys/{name}/config.
func (h *Handlers) ConfigKey(r handler.Request) (int, any, error) {
	var in configRequest
	eng, name, err := h.named(r, &in)
	if err != nil {
		return 0, nil, err
	}
	if in.AllowPlaintextBackup.B {
		return 0, nil, invalid("allow_plaintext_backup: not supported (false only)")
	}
	var c transit.Config
	if in.MinDecryptionVersion.Set {
		c.MinDecryptionVersion = &in.MinDecryptionVersion.N
	}
	if in.MinEncryptionVersion.Set {
		c.MinEncryptionVersion = &in.MinEncryptionVersion.N
	}
	if in.DeletionAllowed.Set {
		c.DeletionAllowed = &in.DeletionAllowed.B
	}
	if in.Exportable.Set {
		c.Exportable = &in.Exportable.B
	}
	if in.AutoRotatePeriod.Set {
		c.AutoRotatePeriod = &in.AutoRotatePeriod.D
	}
	if in.AutoRetireAfter.Set {
		c.AutoRetireAfter = &in.AutoRetireAfter.D
	}
	return viewed(eng.Configure(engine.WithRecord(r.Context(), r.Entry()), name, c))
}

type trimRequest struct {
	MinAvailableVersion Int `json:"min_available_version"`
}

// TrimKey is POST /v1/transit/keys/{name}/trim.
func (h *Handlers) TrimKey(r handler.Request) (int, any, error) {
	var in trimRequest
	eng, name, err := h.named(r, &in)
	if err != nil {
		return 0, nil, err
	}
	if !in.MinAvailableVersion.Set {
		return 0, nil, invalid("min_available_version: required")
	}
	return viewed(eng.Trim(engine.WithRecord(r.Context(), r.Entry()), name, in.MinAvailableVersion.N))
}

// Export is GET /v1/transit/export/{type}/{name}[/{version}]: only a key
// created exportable (public keys of any signing key). What it answers is
// secret; it is not hashed into the record.
func (h *Handlers) Export(r handler.Request) (int, any, error) {
	_, k, err := h.load(r)
	if err != nil {
		return 0, nil, err
	}
	n := 0
	switch s := r.PathValue("version"); s {
	case "":
	case "latest":
		n = k.Latest
	default:
		v, err := strconv.ParseInt(s, 10, 32)
		if err != nil || v < 1 {
			return 0, nil, invalid("version: must be a positive integer or \"latest\"")
		}
		n = int(v)
	}
	keys, err := k.Export(transit.ExportKind(r.PathValue("type")), n)
	if err != nil {
		return 0, nil, err
	}
	if n == 0 {
		n = k.Latest
	}
	setVersion(r, n)
	return ok, envelope{Data: map[string]any{"name": k.Name, "type": k.Type, "keys": keys}}, nil
}
