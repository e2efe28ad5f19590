package transit

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/errs"
)

// Type is a key type, named as in Vault's transit engine.
type Type string

// The key types.
const (
	AES256GCM96      Type = "aes256-gcm96" // the default
	ChaCha20Poly1305 Type = "chacha20-poly1305"
	Ed25519          Type = "ed25519"
	ECDSAP256        Type = "ecdsa-p256"
	RSA3072          Type = "rsa-3072"
	HMAC             Type = "hmac" // HMAC-SHA-256
)

// Types lists every key type, the default first.
func Types() []Type {
	return []Type{AES256GCM96, ChaCha20Poly1305, Ed25519, ECDSAP256, RSA3072, HMAC}
}

func (t Type) valid() bool {
	for _, u := range Types() {
		if t == u {
			return true
		}
	}
	return false
}

// encrypts reports whether keys of type t encrypt (and make data keys).
func (t Type) encrypts() bool { return t == AES256GCM96 || t == ChaCha20Poly1305 }

// signs reports whether keys of type t sign.
func (t Type) signs() bool { return t == Ed25519 || t == ECDSAP256 || t == RSA3072 }

// Limits.
const (
	MaxNameLen = 128 // bytes of a key name
	// MinAutoRotatePeriod is the shortest auto_rotate_period, as in Vault.
	MinAutoRotatePeriod = time.Hour
)

// Material is a key version's secret: 32 bytes for aes256-gcm96,
// chacha20-poly1305 and hmac; the 32-byte seed for ed25519; the 32-byte
// big-endian scalar for ecdsa-p256; PKCS #1 DER for rsa-3072. It shows as
// "[redacted]" in every fmt verb, in slog and in json.Marshal; only the
// stored form of [Key.Marshal] carries the bytes.
type Material []byte

const redacted = "[redacted]"

func (Material) String() string { return redacted }

// GoString keeps %#v from printing the bytes.
func (Material) GoString() string { return redacted }

// Format prints "[redacted]" for every verb: fmt calls String only for
// %v, %s, %x, %X and %q, and would print the bytes for %d or %o.
func (Material) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue keeps slog from printing the bytes.
func (Material) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON writes "[redacted]", so a Key or Version marshalled for a
// log line or a response shows no material; [Key.Marshal] writes the
// stored form.
func (m Material) MarshalJSON() ([]byte, error) {
	if m == nil {
		return []byte("null"), nil
	}
	return []byte(`"` + redacted + `"`), nil
}

// UnmarshalJSON refuses: material is read only by [Unmarshal].
func (*Material) UnmarshalJSON([]byte) error {
	return errors.New("transit: key material is read only by transit.Unmarshal")
}

// Format prints String for every verb.
func (v Version) Format(f fmt.State, _ rune) { io.WriteString(f, v.String()) }

// LogValue keeps slog (whose JSON handler would marshal the material)
// from printing the bytes.
func (v Version) LogValue() slog.Value { return slog.StringValue(v.String()) }

// Version is one version of a key.
type Version struct {
	Number   int       `json:"number"`
	Created  time.Time `json:"created"`
	Material Material  `json:"material"`
	// HMACKey is the 32-byte HMAC-SHA-256 key of a version of a key of
	// any type but hmac (whose Material is its HMAC key): as in Vault,
	// every key computes HMACs, with a key of their own.
	HMACKey Material `json:"hmac_key,omitempty"`
}

// String prints the version without its material.
func (v Version) String() string {
	return fmt.Sprintf("v%d (created %s)", v.Number, v.Created.UTC().Format(time.RFC3339))
}

// Key is a named key. The zero value is not a key: make one with [New] or
// [Unmarshal]. Its exported fields are for reading (the service shows them
// without material); change them only through the methods, which keep the
// invariants:
//
//	1 <= Versions[0].Number = min_available <= MinDecryptionVersion <= Latest
//	Versions are contiguous, ascending, and the last is Latest
//	MinEncryptionVersion = 0 (latest) or MinDecryptionVersion <= it <= Latest
type Key struct {
	Name                 string        `json:"name"`
	Type                 Type          `json:"type"`
	Versions             []Version     `json:"versions"`
	Latest               int           `json:"latest_version"`
	MinDecryptionVersion int           `json:"min_decryption_version"`
	MinEncryptionVersion int           `json:"min_encryption_version"` // 0: the latest
	DeletionAllowed      bool          `json:"deletion_allowed"`
	Exportable           bool          `json:"exportable"`
	AutoRotatePeriod     time.Duration `json:"auto_rotate_period"` // 0: off
	AutoRetireAfter      time.Duration `json:"auto_retire_after"`  // 0: off
	Derived              bool          `json:"derived"`

	// signers caches each version's parsed private key (nil: no cache).
	signers *signerCache
}

// signerCache holds the private keys Sign parsed, by version: making an
// Ed25519 or ECDSA key from its stored scalar (a scalar multiplication)
// or checking an RSA key costs more than the signature itself. A
// version's material never changes, so an entry is never stale.
type signerCache struct {
	mu sync.Mutex
	m  map[int]crypto.Signer
}

// String describes the key without material. It and Format, GoString and
// LogValue take a Key value, so a Key printed by value is redacted too.
func (k Key) String() string {
	return fmt.Sprintf("transit key %q (%s, latest v%d, min_decryption_version %d)", k.Name, k.Type, k.Latest, k.MinDecryptionVersion)
}

// GoString keeps %#v from printing material.
func (k Key) GoString() string { return k.String() }

// Format prints String for every verb.
func (k Key) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue keeps slog from printing material.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MinAvailableVersion is the oldest version the key still holds (versions
// below it were trimmed).
func (k *Key) MinAvailableVersion() int { return k.Versions[0].Number }

// Options are the choices made when a key is created.
type Options struct {
	Derived          bool          // derive a key per request from a context (encryption types only)
	Exportable       bool          // the key may be exported; cannot be turned on later
	DeletionAllowed  bool          // the key may be deleted
	AutoRotatePeriod time.Duration // 0 (off) or at least MinAutoRotatePeriod
	AutoRetireAfter  time.Duration // 0 (off) or positive
}

func invalid(format string, args ...any) error { return errs.E(errs.Invalid, format, args...) }

// ValidName checks a key name: 1 to MaxNameLen bytes of A-Z a-z 0-9 . _ -,
// not starting with a dot.
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return invalid("name: must be 1 to %d characters", MaxNameLen)
	}
	if name[0] == '.' {
		return invalid("name: must not start with a dot")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return invalid("name: only letters, digits, '.', '_' and '-' are allowed")
		}
	}
	return nil
}

// ParseType parses a key type; "" is the default, aes256-gcm96.
func ParseType(s string) (Type, error) {
	if s == "" {
		return AES256GCM96, nil
	}
	if t := Type(s); t.valid() {
		return t, nil
	}
	return "", invalid("type: unknown key type %q", s)
}

func checkDurations(rotate, retire time.Duration) error {
	if rotate != 0 && rotate < MinAutoRotatePeriod {
		return invalid("auto_rotate_period: must be 0 (off) or at least %s", MinAutoRotatePeriod)
	}
	if retire < 0 {
		return invalid("auto_retire_after: must be 0 (off) or positive")
	}
	return nil
}

// New returns a key with one version, created at now, its material read
// from rand. typ "" is aes256-gcm96.
func New(name string, typ Type, opts Options, now time.Time, rand io.Reader) (*Key, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	typ, err := ParseType(string(typ))
	if err != nil {
		return nil, err
	}
	if opts.Derived && !typ.encrypts() {
		return nil, invalid("derived: only %s and %s keys can be derived", AES256GCM96, ChaCha20Poly1305)
	}
	if err := checkDurations(opts.AutoRotatePeriod, opts.AutoRetireAfter); err != nil {
		return nil, err
	}
	v, err := newVersion(typ, 1, now, rand)
	if err != nil {
		return nil, err
	}
	return &Key{
		Name:                 name,
		Type:                 typ,
		Versions:             []Version{v},
		Latest:               1,
		MinDecryptionVersion: 1,
		DeletionAllowed:      opts.DeletionAllowed,
		Exportable:           opts.Exportable,
		AutoRotatePeriod:     opts.AutoRotatePeriod,
		AutoRetireAfter:      opts.AutoRetireAfter,
		Derived:              opts.Derived,
		signers:              new(signerCache),
	}, nil
}

// newVersion makes version n of a key of type t: its material and, unless
// t is hmac, its HMAC key.
func newVersion(t Type, n int, now time.Time, rand io.Reader) (Version, error) {
	m, err := generate(t, rand)
	if err != nil {
		return Version{}, err
	}
	v := Version{Number: n, Created: now.UTC(), Material: m}
	if t != HMAC {
		if v.HMACKey, err = generate(HMAC, rand); err != nil {
			return Version{}, err
		}
	}
	return v, nil
}

// generate makes new material of type t.
func generate(t Type, rand io.Reader) (Material, error) {
	if rand == nil {
		return nil, fmt.Errorf("transit: no entropy source")
	}
	switch t {
	case AES256GCM96, ChaCha20Poly1305, HMAC, Ed25519:
		m := make(Material, 32)
		if _, err := io.ReadFull(rand, m); err != nil {
			return nil, fmt.Errorf("transit: generating a key: %w", err)
		}
		return m, nil
	case ECDSAP256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand)
		if err != nil {
			return nil, fmt.Errorf("transit: generating a key: %w", err)
		}
		b, err := priv.Bytes()
		if err != nil {
			return nil, fmt.Errorf("transit: generating a key: %w", err)
		}
		return b, nil
	case RSA3072:
		priv, err := rsa.GenerateKey(rand, 3072)
		if err != nil {
			return nil, fmt.Errorf("transit: generating a key: %w", err)
		}
		return x509.MarshalPKCS1PrivateKey(priv), nil
	}
	return nil, invalid("type: unknown key type %q", t)
}

// checkMaterial checks that m is well-formed material of type t.
func checkMaterial(t Type, m Material) error {
	switch t {
	case AES256GCM96, ChaCha20Poly1305, HMAC, Ed25519:
		if len(m) != 32 {
			return fmt.Errorf("want 32 bytes, have %d", len(m))
		}
		return nil
	case ECDSAP256:
		_, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), m)
		return err
	case RSA3072:
		priv, err := x509.ParsePKCS1PrivateKey(m)
		if err != nil {
			return err
		}
		if priv.N.BitLen() != 3072 {
			return fmt.Errorf("want a 3072-bit modulus, have %d bits", priv.N.BitLen())
		}
		return nil
	}
	return fmt.Errorf("unknown key type %q", t)
}

// Clone returns a deep copy of k, which the caller may change while k is
// still in use.
func (k *Key) Clone() *Key {
	c := *k
	c.signers = new(signerCache)
	c.Versions = make([]Version, len(k.Versions))
	for i, v := range k.Versions {
		v.Material = bytes.Clone(v.Material)
		v.HMACKey = bytes.Clone(v.HMACKey)
		c.Versions[i] = v
	}
	return &c
}

// version returns version n, or nil if the key does not hold it.
func (k *Key) version(n int) *Version {
	i := n - k.Versions[0].Number
	if i < 0 || i >= len(k.Versions) {
		return nil
	}
	return &k.Versions[i]
}

// LatestCreated is when the latest version was created.
func (k *Key) LatestCreated() time.Time { return k.Versions[len(k.Versions)-1].Created }

// Rotate adds a version, created at now with material from rand, and makes
// it the latest. It returns the new version's number.
func (k *Key) Rotate(now time.Time, rand io.Reader) (int, error) {
	if k.Latest >= math.MaxInt32 {
		return 0, invalid("latest_version: the key has reached the last version")
	}
	v, err := newVersion(k.Type, k.Latest+1, now, rand)
	if err != nil {
		return 0, err
	}
	k.Latest++
	k.Versions = append(k.Versions, v)
	return k.Latest, nil
}

// Trim deletes the versions below minAvailable, for good. As in Vault,
// minAvailable must be at least the current min_available_version and at
// most min_decryption_version and min_encryption_version (when that is not
// 0), so no version that may still decrypt is lost. Trimming to the current
// min_available_version changes nothing.
func (k *Key) Trim(minAvailable int) error {
	switch {
	case minAvailable < k.MinAvailableVersion():
		return invalid("min_available_version: must be at least the current %d", k.MinAvailableVersion())
	case minAvailable > k.MinDecryptionVersion:
		return invalid("min_available_version: must not be above min_decryption_version (%d)", k.MinDecryptionVersion)
	case k.MinEncryptionVersion != 0 && minAvailable > k.MinEncryptionVersion:
		return invalid("min_available_version: must not be above min_encryption_version (%d)", k.MinEncryptionVersion)
	}
	drop := minAvailable - k.MinAvailableVersion()
	k.Versions = append([]Version(nil), k.Versions[drop:]...)
	return nil
}

// Config is a change to a key's configuration; nil fields stay as they are.
type Config struct {
	MinDecryptionVersion *int
	MinEncryptionVersion *int // 0: the latest
	DeletionAllowed      *bool
	Exportable           *bool // may become false, never true
	AutoRotatePeriod     *time.Duration
	AutoRetireAfter      *time.Duration
}

// Configure applies c, or nothing if any part of it is invalid; the error
// names the field.
func (k *Key) Configure(c Config) error {
	minDec, minEnc := k.MinDecryptionVersion, k.MinEncryptionVersion
	if c.MinDecryptionVersion != nil {
		minDec = *c.MinDecryptionVersion
		if minDec < k.MinAvailableVersion() || minDec > k.Latest {
			return invalid("min_decryption_version: must be between min_available_version %d and the latest version %d", k.MinAvailableVersion(), k.Latest)
		}
	}
	if c.MinEncryptionVersion != nil {
		minEnc = *c.MinEncryptionVersion
		if minEnc < 0 || minEnc > k.Latest {
			return invalid("min_encryption_version: must be 0 (the latest) or at most the latest version %d", k.Latest)
		}
	}
	if minEnc != 0 && minEnc < minDec {
		return invalid("min_encryption_version: must be 0 or at least min_decryption_version (%d)", minDec)
	}
	if c.Exportable != nil && *c.Exportable && !k.Exportable {
		return invalid("exportable: a key that is not exportable can never become exportable")
	}
	rotate, retire := k.AutoRotatePeriod, k.AutoRetireAfter
	if c.AutoRotatePeriod != nil {
		rotate = *c.AutoRotatePeriod
	}
	if c.AutoRetireAfter != nil {
		retire = *c.AutoRetireAfter
	}
	if err := checkDurations(rotate, retire); err != nil {
		return err
	}
	k.MinDecryptionVersion, k.MinEncryptionVersion = minDec, minEnc
	k.AutoRotatePeriod, k.AutoRetireAfter = rotate, retire
	if c.DeletionAllowed != nil {
		k.DeletionAllowed = *c.DeletionAllowed
	}
	if c.Exportable != nil {
		k.Exportable = *c.Exportable
	}
	return nil
}

// AutoRotateDue reports whether auto_rotate_period is set and the latest
// version is at least that old at now.
func (k *Key) AutoRotateDue(now time.Time) bool {
	return k.AutoRotatePeriod > 0 && !now.Before(k.LatestCreated().Add(k.AutoRotatePeriod))
}

// AutoRetire advances min_decryption_version when auto_retire_after is set:
// a version is retired once a newer version has been current for at least
// auto_retire_after at now (and so the version itself is at least that
// old). The latest version is never retired. min_encryption_version, when
// set and below the new minimum, follows it. It reports whether the key
// changed.
func (k *Key) AutoRetire(now time.Time) bool {
	if k.AutoRetireAfter <= 0 {
		return false
	}
	cutoff := now.Add(-k.AutoRetireAfter)
	newMin := k.MinDecryptionVersion
	for _, v := range k.Versions {
		if v.Number > newMin && !v.Created.After(cutoff) {
			newMin = v.Number
		}
	}
	if newMin == k.MinDecryptionVersion {
		return false
	}
	k.MinDecryptionVersion = newMin
	if k.MinEncryptionVersion != 0 && k.MinEncryptionVersion < newMin {
		k.MinEncryptionVersion = newMin
	}
	return true
}

// plainKey is Key without its methods, for its stored form.
type plainKey Key

// storedVersion is a Version in the stored form, material included.
type storedVersion struct {
	Number   int       `json:"number"`
	Created  time.Time `json:"created"`
	Material []byte    `json:"material"`
	HMACKey  []byte    `json:"hmac_key,omitempty"`
}

// stored is the stored form of a Key: its Versions shadow the Key's, whose
// Material would marshal as "[redacted]".
type stored struct {
	plainKey
	Versions []storedVersion `json:"versions"`
}

// Marshal returns the key's stored form, JSON with the material in base64:
// encrypt it before storing it anywhere. (json.Marshal of a Key, or of a
// Version, shows "[redacted]" in place of material: that is its log and
// display form, and it cannot be read back.)
func (k *Key) Marshal() ([]byte, error) {
	s := stored{plainKey: plainKey(*k), Versions: make([]storedVersion, len(k.Versions))}
	s.plainKey.Versions = nil
	for i, v := range k.Versions {
		s.Versions[i] = storedVersion{Number: v.Number, Created: v.Created, Material: v.Material, HMACKey: v.HMACKey}
	}
	return json.Marshal(s)
}

// Unmarshal parses what Marshal returned, strictly (unknown fields are
// errors), and checks every invariant of a Key.
func Unmarshal(data []byte) (*Key, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	var s stored
	if err := d.Decode(&s); err != nil {
		return nil, fmt.Errorf("transit: decoding a key: %w", err)
	}
	if d.More() {
		return nil, fmt.Errorf("transit: decoding a key: data after the key")
	}
	k := Key(s.plainKey)
	k.signers = new(signerCache)
	k.Versions = make([]Version, len(s.Versions))
	for i, v := range s.Versions {
		k.Versions[i] = Version{Number: v.Number, Created: v.Created, Material: v.Material, HMACKey: v.HMACKey}
	}
	if err := k.check(); err != nil {
		return nil, fmt.Errorf("transit: decoding key %q: %w", k.Name, err)
	}
	return &k, nil
}

func (k *Key) check() error {
	if err := ValidName(k.Name); err != nil {
		return err
	}
	if !k.Type.valid() {
		return fmt.Errorf("type: unknown key type %q", k.Type)
	}
	if k.Derived && !k.Type.encrypts() {
		return fmt.Errorf("derived: not for a %s key", k.Type)
	}
	if len(k.Versions) == 0 {
		return fmt.Errorf("versions: none")
	}
	first := k.Versions[0].Number
	if first < 1 {
		return fmt.Errorf("versions: version %d", first)
	}
	for i, v := range k.Versions {
		if v.Number != first+i {
			return fmt.Errorf("versions: not contiguous at version %d", v.Number)
		}
		if err := checkMaterial(k.Type, v.Material); err != nil {
			return fmt.Errorf("versions: material of version %d: %w", v.Number, err)
		}
		if k.Type == HMAC && v.HMACKey != nil {
			return fmt.Errorf("versions: version %d of an hmac key has a separate hmac_key", v.Number)
		}
		if k.Type != HMAC && len(v.HMACKey) != 32 {
			return fmt.Errorf("versions: hmac_key of version %d: want 32 bytes, have %d", v.Number, len(v.HMACKey))
		}
	}
	if k.Latest != k.Versions[len(k.Versions)-1].Number {
		return fmt.Errorf("latest_version: %d is not the last version", k.Latest)
	}
	if k.MinDecryptionVersion < first || k.MinDecryptionVersion > k.Latest {
		return fmt.Errorf("min_decryption_version: %d out of range", k.MinDecryptionVersion)
	}
	if k.MinEncryptionVersion != 0 && (k.MinEncryptionVersion < k.MinDecryptionVersion || k.MinEncryptionVersion > k.Latest) {
		return fmt.Errorf("min_encryption_version: %d out of range", k.MinEncryptionVersion)
	}
	return checkDurations(k.AutoRotatePeriod, k.AutoRetireAfter)
}

// formatVersioned returns "wdn:v<n>:<base64 of b>".
func formatVersioned(n int, b []byte) string {
	return Prefix + "v" + strconv.Itoa(n) + ":" + b64.EncodeToString(b)
}
