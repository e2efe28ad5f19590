package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/warden-sec/warden/internal/errs"
)

// DecodeJSON strictly decodes one JSON object from body into v: unknown
// fields, member names that differ from the field's only in case, duplicate
// member names (at any depth), trailing data, wrong types, invalid UTF-8 and
// syntax errors are errs.Invalid with a message naming the field or the byte
// offset. An empty body is an error unless allowEmpty is set (then v is left
// as is).
//
// It decodes with github.com/go-json-experiment/json, whose member names
// match exactly and whose tokenizer refuses duplicates, so that
// {"key_shares":1,"KEY_SHARES":5} cannot mean 5 to one reader and 1 to
// another.
func DecodeJSON(body []byte, v any, allowEmpty bool) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		if allowEmpty {
			return nil
		}
		return errs.E(errs.Invalid, "request body: a JSON object is required")
	}
	if trimmed[0] != '{' {
		return errs.E(errs.Invalid, "request body: must be a JSON object")
	}
	if err := jsonv2.Unmarshal(trimmed, v, strictJSON); err != nil {
		return decodeError(err)
	}
	return nil
}

// strictJSON are the options of every request decoding. Exact name
// matching and refusing duplicate names are the package's defaults; they
// are spelled out so that no later default can loosen them.
var strictJSON = jsonv2.JoinOptions(
	jsonv2.RejectUnknownMembers(true),
	jsonv2.MatchCaseInsensitiveNames(false),
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
)

func decodeError(err error) error {
	var se *jsonv2.SemanticError
	var xe *jsontext.SyntacticError
	switch {
	case errors.As(err, &se) && se.Err == jsonv2.ErrUnknownName:
		name := se.JSONPointer.LastToken()
		if f := caseVariant(se.GoType, name); f != "" {
			return errs.E(errs.Invalid, "%s: unknown field %q (names are case-sensitive: use %q)", fieldOf(se.JSONPointer.Parent(), f), name, f)
		}
		return errs.E(errs.Invalid, "request body: unknown field %q", fieldOf(se.JSONPointer, ""))
	case errors.As(err, &xe) && errors.Is(xe.Err, jsontext.ErrDuplicateName):
		return errs.E(errs.Invalid, "%s: duplicate member name", fieldOf(xe.JSONPointer, ""))
	case errors.As(err, &xe) && (errors.Is(xe.Err, io.ErrUnexpectedEOF) || errors.Is(err, io.ErrUnexpectedEOF)):
		return errs.E(errs.Invalid, "request body: truncated JSON")
	case errors.As(err, &xe):
		if strings.Contains(xe.Error(), "after top-level value") {
			return errs.E(errs.Invalid, "request body: unexpected data after the JSON object")
		}
		return errs.E(errs.Invalid, "request body: malformed JSON at byte %d: %v", xe.ByteOffset, xe.Err)
	case errors.As(err, &se):
		want := "a valid value"
		if se.GoType != nil {
			want = se.GoType.String()
		}
		got := "value"
		if se.JSONKind != 0 {
			got = se.JSONKind.String()
		}
		return errs.E(errs.Invalid, "%s: expected %s, got JSON %s", fieldOf(se.JSONPointer, "(top level)"), want, got)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errs.E(errs.Invalid, "request body: truncated JSON")
	}
	return errs.E(errs.Invalid, "request body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// fieldOf names the member a JSON pointer points at as a dotted path
// ("hosts.0"), or def for the top level.
func fieldOf(p jsontext.Pointer, def string) string {
	var parts []string
	for tok := range p.Tokens() {
		parts = append(parts, tok)
	}
	if len(parts) == 0 {
		return def
	}
	if def != "" && def != "(top level)" {
		parts = append(parts, def)
	}
	return strings.Join(parts, ".")
}

// caseVariant returns the JSON name of t's field that name matches when
// case is ignored, or "" (t is the struct being decoded).
func caseVariant(t reflect.Type, name string) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return ""
	}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "" {
			tag = f.Name
		}
		if tag != name && strings.EqualFold(tag, name) {
			return tag
		}
	}
	return ""
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readBody reads the (size-limited) request body.
func (req *request) readBody() ([]byte, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if _, err := buf.ReadFrom(req.Body); err != nil {
		return nil, req.bodyError(err)
	}
	return bytes.Clone(buf.Bytes()), nil
}

// decode reads and strictly decodes the request body into v.
func (req *request) decode(v any, allowEmpty bool) error {
	body, err := req.readBody()
	if err != nil {
		return err
	}
	return DecodeJSON(body, v, allowEmpty)
}

// writeJSON writes body with status. A nil body with 204 writes nothing.
func writeJSON(w http.ResponseWriter, status int, body any) int {
	if status == http.StatusNoContent || body == nil {
		w.WriteHeader(status)
		return status
	}
	switch b := body.(type) {
	case derBody:
		return writeRaw(w, status, b.contentType, b.b)
	case pemText:
		return writeRaw(w, status, "application/x-pem-file", b)
	case rawText:
		return writeRaw(w, status, "text/plain; charset=utf-8", b)
	case fileBody:
		return writeFile(w, status, b)
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if err := json.NewEncoder(buf).Encode(body); err != nil {
		return writeError(w, http.StatusInternalServerError, "internal error: cannot encode response")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
	return status
}

type errorBody struct {
	Errors []string `json:"errors"`
}

func writeError(w http.ResponseWriter, status int, msg string) int {
	b, _ := json.Marshal(errorBody{Errors: []string{msg}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return status
}

// queryUint parses an optional unsigned query parameter.
func queryUint(r *http.Request, name string) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, errs.E(errs.Invalid, "%s: must be a non-negative integer, got %q", name, fmt.Sprint(v))
	}
	return n, nil
}

// fileBody is a response too large for memory: head, then the file's
// content. The file is already unlinked; writing closes it.
type fileBody struct {
	contentType string
	head        []byte
	f           *os.File
	size        int64
}

func writeFile(w http.ResponseWriter, status int, b fileBody) int {
	defer b.f.Close()
	w.Header().Set("Content-Type", b.contentType)
	w.Header().Set("Content-Length", strconv.FormatInt(int64(len(b.head))+b.size, 10))
	w.WriteHeader(status)
	if _, err := w.Write(b.head); err == nil {
		_, _ = io.Copy(w, b.f)
	}
	return status
}

// writeRaw writes a non-JSON body (a checkpoint note, PEM, DER).
func writeRaw(w http.ResponseWriter, status int, contentType string, b []byte) int {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return status
}
