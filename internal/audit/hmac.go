package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
)

// AuditKeySize is the size of the per-cluster audit key, in bytes.
const AuditKeySize = 32

// Hasher makes the HMAC-SHA256 values that stand in an entry for sensitive
// values (secret data, tokens, keys, unseal shares), so an auditor holding
// the audit key can check "was it this value?" while the log reveals
// nothing. It holds a copy of the key; it prints redacted. Safe for
// concurrent use. The zero Hasher has no key: its methods panic.
type Hasher struct{ key []byte }

// NewHasher returns a Hasher for the cluster's audit key, which must be
// AuditKeySize bytes. The key is copied.
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) != AuditKeySize {
		return nil, fmt.Errorf("audit: the audit key is %d bytes, got %d", AuditKeySize, len(key))
	}
	return &Hasher{key: bytes.Clone(key)}, nil
}

// Sum returns "hmac-sha256:" followed by the lower-case hex HMAC-SHA256 of
// value under the audit key: the form an entry's Hashes hold.
func (h *Hasher) Sum(value []byte) string {
	if len(h.key) == 0 {
		panic("audit: Sum on a Hasher without a key")
	}
	m := hmac.New(sha256.New, h.key)
	m.Write(value)
	return hmacPrefix + hex.EncodeToString(m.Sum(nil))
}

// Matches reports whether sum is the HMAC of value under the audit key,
// comparing in constant time.
func (h *Hasher) Matches(sum string, value []byte) bool {
	return hmac.Equal([]byte(sum), []byte(h.Sum(value)))
}

// String returns a redacted form: a Hasher holds the audit key.
func (Hasher) String() string { return "audit.Hasher(REDACTED)" }

// GoString returns a redacted form, for %#v.
func (h Hasher) GoString() string { return h.String() }

// LogValue implements slog.LogValuer with a redacted form.
func (h Hasher) LogValue() slog.Value { return slog.StringValue(h.String()) }
