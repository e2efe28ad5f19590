// Package audit is the pure core of Warden's tamper-evident audit log: the
// entry format and its canonical encoding, an RFC 6962 Merkle tree kept as a
// compact range plus the perfect-subtree nodes needed for proofs, C2SP
// tlog-checkpoints signed as notes, and the verification a client or a third
// party runs.
//
// Entry encoding. The leaf bytes of an entry are its canonical JSON: the
// object's members appear in the fixed order of the Entry struct below
// (which is alphabetical), with no insignificant white space, strings in
// encoding/json's escaping, the time in RFC 3339 with nanoseconds in UTC,
// optional members ("error", "hashes") omitted when empty, and the "hashes"
// map with keys in sorted order. The same entry always encodes to the same
// bytes; DecodeEntry refuses any other encoding of it.
//
// audit does no I/O: no network, no files, no Raft. An entry never holds a
// secret: sensitive values appear only as HMACs under the cluster's audit key.
package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Entry is one audit record.
type Entry struct {
	Action     string            `json:"action"`
	AuthMethod string            `json:"auth_method"`
	Error      string            `json:"error,omitempty"`
	Hashes     map[string]string `json:"hashes,omitempty"` // name → "hmac-sha256:<hex>"
	Outcome    int               `json:"outcome"`          // HTTP status
	Principal  string            `json:"principal"`
	RaftIndex  uint64            `json:"raft_index"` // 0 when nothing changed
	RequestID  string            `json:"request_id"`
	Resource   string            `json:"resource"`
	SourceAddr string            `json:"source_addr"`
	Time       string            `json:"time"` // RFC 3339, nanoseconds, UTC
}

// FormatTime formats t as entries carry it.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// ErrNonCanonical: the bytes decode to an entry whose canonical encoding
// differs from them.
var ErrNonCanonical = errors.New("audit: entry is not canonically encoded")

// Canonical returns the entry's leaf bytes.
func (e Entry) Canonical() ([]byte, error) {
	if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil {
		return nil, fmt.Errorf("audit: time: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil { // encoding/json sorts map keys
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// DecodeEntry strictly decodes leaf bytes: unknown members, trailing data
// and non-canonical encodings are errors.
func DecodeEntry(b []byte) (Entry, error) {
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Entry{}, fmt.Errorf("audit: decode entry: %w", err)
	}
	again, err := e.Canonical()
	if err != nil {
		return Entry{}, err
	}
	if !bytes.Equal(again, b) {
		return Entry{}, ErrNonCanonical
	}
	return e, nil
}

// Hasher makes the HMACs that stand in an entry for sensitive values, so an
// auditor holding the audit key can check "was it this value?" while the log
// reveals nothing. Safe for concurrent use.
type Hasher struct{ key []byte }

// NewHasher returns a Hasher for a 32-byte audit key (copied).
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("audit: the audit key is 32 bytes, got %d", len(key))
	}
	return &Hasher{key: bytes.Clone(key)}, nil
}

// Sum returns "hmac-sha256:<hex>" of value.
func (h *Hasher) Sum(value []byte) string {
	m := hmac.New(sha256.New, h.key)
	m.Write(value)
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}

// Matches reports, in constant time, whether sum is the HMAC of value.
func (h *Hasher) Matches(sum string, value []byte) bool {
	return hmac.Equal([]byte(sum), []byte(h.Sum(value)))
}
