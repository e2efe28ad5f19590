package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxEntrySize is the largest canonical encoding of an entry, in bytes.
// Canonical refuses to produce more and DecodeEntry to read more.
const MaxEntrySize = 64 << 10

// Entry is one audit record. Its leaf bytes are [Entry.Canonical]; the
// package documentation gives the exact encoding. The zero Entry is not
// valid: Action and Time must be set.
//
// An Entry never carries a secret: a sensitive value goes into Hashes as
// its HMAC under the audit key ([Hasher.Sum]).
type Entry struct {
	// Fields are declared in the order of their JSON names, which is the
	// order of the canonical encoding.

	// Accessor is the accessor of the caller's token (never the token),
	// empty when the caller did not authenticate with a token; omitted
	// from the encoding when empty.
	Accessor string `json:"accessor,omitempty"`
	// Action is the Warden action (kv.read, token.create, ...).
	Action string `json:"action"`
	// AuthMethod is how the principal authenticated (token, mtls, ...).
	AuthMethod string `json:"auth_method"`
	// Count is how many requests an aggregated record stands for (failed
	// unauthenticated requests from one address in one window); omitted
	// from the encoding when 0, which means one request.
	Count uint64 `json:"count,omitempty"`
	// Error is the error shown to the caller when the request failed;
	// omitted from the encoding when empty.
	Error string `json:"error,omitempty"`
	// Hashes maps a name (for example "data") to "hmac-sha256:<hex>"
	// (an HMAC under the audit key, [Hasher.Sum]) or "sha256:<hex>" (a
	// plain SHA-256 of a public document, such as an incident's timeline
	// item, that anyone holding the document can check); omitted from the
	// encoding when empty.
	Hashes map[string]string `json:"hashes,omitempty"`
	// KeyVersion is the version of the transit key an operation used
	// (the newest one when a batch used several); omitted from the
	// encoding when 0.
	KeyVersion uint64 `json:"key_version,omitempty"`
	// Note says what else a reader must know about the request, in a few
	// words: that it was held for approval ("approval requested: request
	// ID"), ran as an approved request ("approved request ID"), or ran
	// without approval by break glass ("break glass: ..."); omitted from
	// the encoding when empty.
	Note string `json:"note,omitempty"`
	// Outcome is the HTTP status of the request, 100 to 599.
	Outcome int `json:"outcome"`
	// Principal is the authenticated caller, empty when authentication
	// failed.
	Principal string `json:"principal"`
	// RaftIndex is the Raft index of the change, 0 when none is known.
	RaftIndex uint64 `json:"raft_index"`
	// RequestID identifies the request in responses and server logs.
	RequestID string `json:"request_id"`
	// Resource is what the action applied to.
	Resource string `json:"resource"`
	// SourceAddr is the caller's network address.
	SourceAddr string `json:"source_addr"`
	// Time is when the request was received, as [FormatTime] writes it.
	Time string `json:"time"`
}

// FormatTime formats t as an entry's Time: RFC 3339 in UTC with up to
// nine digits of fraction, trailing zeros removed.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

var (
	// ErrInvalidEntry: an entry breaks a rule of the encoding (a field out
	// of range, invalid UTF-8, a malformed hash, too large). The error
	// names the field.
	ErrInvalidEntry = errors.New("audit: invalid entry")
	// ErrNonCanonical: bytes decode to an entry whose canonical encoding
	// is different bytes. The error gives the offset of the first
	// difference.
	ErrNonCanonical = errors.New("audit: non-canonical entry encoding")
)

const (
	hmacPrefix   = "hmac-sha256:"
	sha256Prefix = "sha256:"
)

// Canonical returns the entry's leaf bytes, or an error wrapping
// ErrInvalidEntry if the entry breaks a rule of the encoding.
func (e Entry) Canonical() ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 256)
	b = append(b, '{')
	if e.Accessor != "" {
		b = append(b, `"accessor":`...)
		b = appendString(b, e.Accessor)
		b = append(b, ',')
	}
	b = append(b, `"action":`...)
	b = appendString(b, e.Action)
	b = append(b, `,"auth_method":`...)
	b = appendString(b, e.AuthMethod)
	if e.Count != 0 {
		b = append(b, `,"count":`...)
		b = strconv.AppendUint(b, e.Count, 10)
	}
	if e.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, e.Error)
	}
	if len(e.Hashes) > 0 {
		b = append(b, `,"hashes":{`...)
		for i, k := range slices.Sorted(maps.Keys(e.Hashes)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, e.Hashes[k])
		}
		b = append(b, '}')
	}
	if e.KeyVersion != 0 {
		b = append(b, `,"key_version":`...)
		b = strconv.AppendUint(b, e.KeyVersion, 10)
	}
	if e.Note != "" {
		b = append(b, `,"note":`...)
		b = appendString(b, e.Note)
	}
	b = append(b, `,"outcome":`...)
	b = strconv.AppendInt(b, int64(e.Outcome), 10)
	b = append(b, `,"principal":`...)
	b = appendString(b, e.Principal)
	b = append(b, `,"raft_index":`...)
	b = strconv.AppendUint(b, e.RaftIndex, 10)
	b = append(b, `,"request_id":`...)
	b = appendString(b, e.RequestID)
	b = append(b, `,"resource":`...)
	b = appendString(b, e.Resource)
	b = append(b, `,"source_addr":`...)
	b = appendString(b, e.SourceAddr)
	b = append(b, `,"time":`...)
	b = appendString(b, e.Time)
	b = append(b, '}')
	if len(b) > MaxEntrySize {
		return nil, fmt.Errorf("%w: encodes to %d bytes, more than %d", ErrInvalidEntry, len(b), MaxEntrySize)
	}
	return b, nil
}

// DecodeEntry decodes leaf bytes. It is strict: unknown members, duplicate
// members, trailing data and any encoding other than the canonical one are
// errors (ErrNonCanonical), as are entries Canonical refuses
// (ErrInvalidEntry).
func DecodeEntry(b []byte) (Entry, error) {
	if len(b) > MaxEntrySize {
		return Entry{}, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidEntry, len(b), MaxEntrySize)
	}
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Entry{}, fmt.Errorf("audit: decode entry: %w", err)
	}
	// Whatever encoding/json tolerates (white space, member order, case of
	// names, duplicates, escapes, trailing data, replaced invalid UTF-8)
	// shows up as different bytes here.
	again, err := e.Canonical()
	if err != nil {
		return Entry{}, err
	}
	if !bytes.Equal(again, b) {
		i := 0
		for i < len(b) && i < len(again) && b[i] == again[i] {
			i++
		}
		return Entry{}, fmt.Errorf("%w: differs at byte %d", ErrNonCanonical, i)
	}
	return e, nil
}

func (e Entry) validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidEntry, field, fmt.Sprintf(format, args...))
	}
	for _, f := range []struct{ name, v string }{
		{"accessor", e.Accessor}, {"action", e.Action}, {"auth_method", e.AuthMethod}, {"error", e.Error},
		{"note", e.Note}, {"principal", e.Principal}, {"request_id", e.RequestID}, {"resource", e.Resource},
		{"source_addr", e.SourceAddr}, {"time", e.Time},
	} {
		if !utf8.ValidString(f.v) {
			return bad(f.name, "not valid UTF-8")
		}
	}
	if e.Action == "" {
		return bad("action", "empty")
	}
	if e.Outcome < 100 || e.Outcome > 599 {
		return bad("outcome", "%d is not an HTTP status", e.Outcome)
	}
	t, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil {
		return bad("time", "%q is not RFC 3339", e.Time)
	}
	if FormatTime(t) != e.Time {
		return bad("time", "%q is not in the canonical form %q", e.Time, FormatTime(t))
	}
	for k, v := range e.Hashes {
		if !validHashName(k) {
			return bad("hashes", "name %q does not match [a-z0-9_.-]{1,64}", k)
		}
		if !validHash(v) {
			return bad("hashes", "%s is not %s or %s followed by 64 lower-case hex digits", k, hmacPrefix, sha256Prefix)
		}
	}
	return nil
}

func validHashName(k string) bool {
	if len(k) == 0 || len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// validHash reports whether v is one of the two hash forms: an HMAC under
// the audit key or a plain SHA-256, each as 64 lower-case hex digits.
func validHash(v string) bool {
	hex, ok := strings.CutPrefix(v, hmacPrefix)
	if !ok {
		hex, ok = strings.CutPrefix(v, sha256Prefix)
	}
	if !ok || len(hex) != 64 {
		return false
	}
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// appendString appends s, which must be valid UTF-8, as a JSON string
// escaped by the rules of RFC 8785 section 3.2.2.2.
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue // multi-byte UTF-8 sequences are copied as they are
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\f':
			b = append(b, '\\', 'f')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendJSONString appends s, which must be valid UTF-8, as a JSON string
// escaped exactly as entries escape theirs (RFC 8785 section 3.2.2.2), so
// that other documents the log vouches for by hash (an incident's timeline
// items) share the entry's canonical rules.
func AppendJSONString(b []byte, s string) []byte { return appendString(b, s) }
