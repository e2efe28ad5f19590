package transitapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/warden-sec/warden/internal/api/handler"
	"github.com/warden-sec/warden/internal/errs"
)

// MaxBatch is the most items a batch_input may hold.
const MaxBatch = 1000

func invalid(format string, args ...any) error { return errs.E(errs.Invalid, format, args...) }

// scalar returns the text of a JSON scalar: a string's content, or the
// value itself (a number, true, false). unset is true for null and "".
func scalar(b []byte) (text string, quoted, unset bool, err error) {
	if string(b) == "null" {
		return "", false, true, nil
	}
	if len(b) == 0 || b[0] != '"' {
		return string(b), false, false, nil
	}
	if err := json.Unmarshal(b, &text); err != nil {
		return "", true, false, invalid("not a valid JSON string")
	}
	return text, true, text == "", nil
}

// Int is an optional integer that arrives as a JSON number or a decimal
// string (Vault's CLI sends strings). Set tells "absent or null" from 0.
type Int struct {
	N   int
	Set bool
}

// UnmarshalJSON decodes a JSON number or decimal string; null leaves it unset.
func (i *Int) UnmarshalJSON(b []byte) error {
	s, _, unset, err := scalar(b)
	if err != nil || unset {
		*i = Int{}
		return err
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return invalid("must be an integer (a JSON number or a decimal string)")
	}
	*i = Int{N: int(n), Set: true}
	return nil
}

// or is i, or top when i is unset.
func (i Int) or(top Int) Int {
	if i.Set {
		return i
	}
	return top
}

// Bool is an optional boolean that arrives as JSON true or false, or as
// the string "true" or "false".
type Bool struct {
	B   bool
	Set bool
}

// UnmarshalJSON decodes true, false, "true" or "false"; null leaves it unset.
func (v *Bool) UnmarshalJSON(b []byte) error {
	s, _, unset, err := scalar(b)
	if err != nil || unset {
		*v = Bool{}
		return err
	}
	switch s {
	case "true":
		*v = Bool{B: true, Set: true}
	case "false":
		*v = Bool{B: false, Set: true}
	default:
		return invalid("must be true or false")
	}
	return nil
}

// or is v, or top when v is unset.
func (v Bool) or(top Bool) Bool {
	if v.Set {
		return v
	}
	return top
}

// or is s, or top when s is empty.
func or(s, top string) string {
	if s != "" {
		return s
	}
	return top
}

// Duration is an optional duration that arrives as a Go duration string
// ("720h") or as integer seconds (a JSON number or a decimal string). It is
// never negative.
type Duration struct {
	D   time.Duration
	Set bool
}

// maxSeconds keeps a duration in seconds within time.Duration.
const maxSeconds = int64(1<<63-1) / int64(time.Second)

// UnmarshalJSON decodes a duration; null leaves it unset.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s, quoted, unset, err := scalar(b)
	if err != nil || unset {
		*d = Duration{}
		return err
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > maxSeconds {
			return invalid("must be a non-negative number of seconds")
		}
		*d = Duration{D: time.Duration(n) * time.Second, Set: true}
		return nil
	}
	if !quoted {
		return invalid("must be a Go duration (\"720h\") or integer seconds")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return invalid("must be a Go duration (\"720h\") or integer seconds")
	}
	if v < 0 {
		return invalid("must not be negative")
	}
	*d = Duration{D: v, Set: true}
	return nil
}

// seconds is a duration in whole seconds, as Vault shows periods.
func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// decodeBase64 decodes a base64 field (standard, padded, as Vault's).
func decodeBase64(field, s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || strings.ContainsAny(s, "\r\n") {
		return nil, invalid("%s: not base64", field)
	}
	return b, nil
}

// batchFields are the members every operation that takes a batch has
// besides its item's.
type batchFields struct {
	// BatchInput is kept raw: its size is checked and its hash taken
	// before its items are decoded.
	BatchInput                 jsontext.Value `json:"batch_input"`
	PartialFailureResponseCode Int            `json:"partial_failure_response_code"`
}

// batched reports whether a batch was given (null is none).
func (b *batchFields) batched() bool {
	v := bytes.TrimSpace(b.BatchInput)
	return len(v) > 0 && !bytes.Equal(v, []byte("null"))
}

// partialCode is the status of a batch with failures and successes when
// the caller set partial_failure_response_code (200 or 4xx), or 0.
func (b *batchFields) partialCode() (int, error) {
	c := b.PartialFailureResponseCode
	if !c.Set {
		return 0, nil
	}
	if c.N != 200 && (c.N < 400 || c.N > 499) {
		return 0, invalid("partial_failure_response_code: must be 200 or a 4xx status")
	}
	return c.N, nil
}

// DecodeBatch decodes batch_input: a JSON array of at most MaxBatch
// objects, each decoded strictly into a T. The count is checked first,
// before any item is decoded.
func DecodeBatch[T any](raw []byte) ([]T, error) {
	raw = bytes.TrimSpace(raw)
	dec := jsontext.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.ReadToken()
	if err != nil || tok.Kind() != '[' {
		return nil, invalid("batch_input: must be a JSON array of objects")
	}
	var items []T
	n := 0
	for dec.PeekKind() != ']' {
		if n++; n > MaxBatch {
			return nil, invalid("batch_input: more than %d items", MaxBatch)
		}
		if err := dec.SkipValue(); err != nil {
			// At most MaxBatch items precede the error: the decoder
			// names it precisely (a duplicate member, a syntax error).
			if err := handler.DecodeValue("batch_input", raw, &items); err != nil {
				return nil, err
			}
			return nil, invalid("batch_input: malformed JSON")
		}
	}
	if n == 0 {
		return nil, invalid("batch_input: empty")
	}
	items = make([]T, 0, n)
	if err := handler.DecodeValue("batch_input", raw, &items); err != nil {
		return nil, err
	}
	return items, nil
}
