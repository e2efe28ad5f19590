package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// decodeObject strictly decodes one JSON object into its members' raw
// values: member names must be among allowed (matched exactly, unlike
// encoding/json's case-insensitive matching) and must not repeat, and
// nothing may follow the object. field names the object in errors. It uses
// the jsontext tokenizer, which validates UTF-8 and syntax as it goes and is
// several times faster than encoding/json's Token API on this hot path.
func decodeObject(field string, data []byte, allowed ...string) (map[string]json.RawMessage, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(data), jsontext.AllowDuplicateNames(true))
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, fieldErr(field, "%s", jsonMessage(err))
	}
	if tok.Kind() != '{' {
		return nil, fieldErr(field, "must be a JSON object")
	}
	members := make(map[string]json.RawMessage, len(allowed))
	for dec.PeekKind() == '"' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, fieldErr(field, "%s", jsonMessage(err))
		}
		name := tok.String()
		if !slices.Contains(allowed, name) {
			return nil, fieldErr(field, "unknown field %q", name)
		}
		if _, dup := members[name]; dup {
			return nil, fieldErr(field, "duplicate field %q", name)
		}
		raw, err := dec.ReadValue()
		if err != nil {
			return nil, fieldErr(joinField(field, name), "%s", jsonMessage(err))
		}
		members[name] = json.RawMessage(bytes.Clone(raw))
	}
	if _, err := dec.ReadToken(); err != nil { // the closing '}'
		return nil, fieldErr(field, "%s", jsonMessage(err))
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, fieldErr(field, "unexpected data after the JSON object")
	}
	return members, nil
}

// decodeArray strictly decodes one JSON array of at most max elements into
// its elements' raw values.
func decodeArray(field string, data []byte, max int) ([]json.RawMessage, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(data), jsontext.AllowDuplicateNames(true))
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, fieldErr(field, "%s", jsonMessage(err))
	}
	if tok.Kind() != '[' {
		return nil, fieldErr(field, "must be a JSON array")
	}
	var elems []json.RawMessage
	for k := dec.PeekKind(); k != ']' && k != 0; k = dec.PeekKind() {
		if len(elems) == max {
			return nil, fieldErr(field, "more than %d elements", max)
		}
		raw, err := dec.ReadValue()
		if err != nil {
			return nil, fieldErr(fmt.Sprintf("%s[%d]", field, len(elems)), "%s", jsonMessage(err))
		}
		elems = append(elems, json.RawMessage(bytes.Clone(raw)))
	}
	if _, err := dec.ReadToken(); err != nil { // the closing ']'
		return nil, fieldErr(field, "%s", jsonMessage(err))
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, fieldErr(field, "unexpected data after the JSON array")
	}
	return elems, nil
}

func joinField(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// jsonMessage makes an encoding/json error readable without its "json: "
// prefix.
func jsonMessage(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, se.Error())
	}
	var xe *jsontext.SyntacticError
	if errors.As(err, &xe) {
		if errors.Is(xe.Err, io.ErrUnexpectedEOF) {
			return "truncated JSON"
		}
		return fmt.Sprintf("malformed JSON at byte %d: %v", xe.ByteOffset, xe.Err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "truncated JSON"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}
