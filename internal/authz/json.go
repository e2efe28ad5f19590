package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// decodeObject strictly decodes one JSON object into its members' raw
// values: member names must be among allowed (matched exactly, unlike
// encoding/json's case-insensitive matching) and must not repeat, and
// nothing may follow the object. field names the object in errors.
func decodeObject(field string, data []byte, allowed ...string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fieldErr(field, "%s", jsonMessage(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fieldErr(field, "must be a JSON object")
	}
	members := make(map[string]json.RawMessage, len(allowed))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fieldErr(field, "%s", jsonMessage(err))
		}
		name, _ := tok.(string)
		if !slices.Contains(allowed, name) {
			return nil, fieldErr(field, "unknown field %q", name)
		}
		if _, dup := members[name]; dup {
			return nil, fieldErr(field, "duplicate field %q", name)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fieldErr(joinField(field, name), "%s", jsonMessage(err))
		}
		members[name] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, fieldErr(field, "%s", jsonMessage(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fieldErr(field, "unexpected data after the JSON object")
	}
	return members, nil
}

// decodeArray strictly decodes one JSON array of at most max elements into
// its elements' raw values.
func decodeArray(field string, data []byte, max int) ([]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fieldErr(field, "%s", jsonMessage(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fieldErr(field, "must be a JSON array")
	}
	var elems []json.RawMessage
	for dec.More() {
		if len(elems) == max {
			return nil, fieldErr(field, "more than %d elements", max)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fieldErr(fmt.Sprintf("%s[%d]", field, len(elems)), "%s", jsonMessage(err))
		}
		elems = append(elems, raw)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, fieldErr(field, "%s", jsonMessage(err))
	}
	if _, err := dec.Token(); err != io.EOF {
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
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "truncated JSON"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}
