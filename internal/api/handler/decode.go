package handler

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"

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

// DecodeValue strictly decodes one JSON value (of any kind) into v, as
// DecodeJSON does, its errors naming members below field (a plain name,
// "batch_input": "batch_input.3.plaintext: ..."). A handler uses it for a
// member it kept raw (jsontext.Value) to hash or bound before decoding.
func DecodeValue(field string, data []byte, v any) error {
	err := jsonv2.Unmarshal(bytes.TrimSpace(data), v, strictJSON)
	if err == nil {
		return nil
	}
	prefix := jsontext.Pointer("/" + field)
	var se *jsonv2.SemanticError
	var xe *jsontext.SyntacticError
	switch {
	case errors.As(err, &se):
		se.JSONPointer = prefix + se.JSONPointer
	case errors.As(err, &xe):
		xe.JSONPointer = prefix + xe.JSONPointer
	}
	return decodeError(err)
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
	case errors.As(err, &se) && errs.CodeOf(se.Err) == errs.Invalid:
		// A type's own UnmarshalJSON refused the value, saying why.
		return errs.E(errs.Invalid, "%s: %s", fieldOf(se.JSONPointer, "(top level)"), se.Err.Error())
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
