package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/warden-sec/warden/internal/api/handler"
	"github.com/warden-sec/warden/internal/errs"
)

func TestDecodeJSON(t *testing.T) {
	type body struct {
		Data json.RawMessage `json:"data"`
		CAS  *uint64         `json:"cas"`
	}
	cases := []struct {
		name, in   string
		allowEmpty bool
		msg        string // "" means success
	}{
		{"ok", `{"data": {"a": 1}, "cas": 3}`, false, ""},
		{"empty allowed", ``, true, ""},
		{"empty refused", `  `, false, "a JSON object is required"},
		{"array", `[1]`, false, "must be a JSON object"},
		{"unknown field", `{"datum": 1}`, false, `unknown field "datum"`},
		{"wrong type", `{"cas": -1}`, false, "cas: expected uint64"},
		{"syntax", `{"data": }`, false, "malformed JSON at byte"},
		{"truncated", `{"data": {"a": 1}`, false, "truncated"},
		{"trailing object", `{} {}`, false, "after the JSON object"},
		{"trailing garbage", `{}x`, false, "after the JSON object"},
		{"duplicate member", `{"cas": 1, "cas": 5}`, false, "cas: duplicate member name"},
		{"duplicate nested member", `{"data": {"a": 1, "a": 2}}`, false, "data.a: duplicate member name"},
		{"case variant after the field", `{"cas": 1, "CAS": 5}`, false, `unknown field "CAS" (names are case-sensitive: use "cas")`},
		{"case variant alone", `{"Data": {}}`, false, `unknown field "Data" (names are case-sensitive: use "data")`},
		{"case variants in values are data", `{"data": {"a": 1, "A": 2}}`, false, ""},
		{"invalid UTF-8", "{\"data\": \"\xff\"}", false, "malformed JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b body
			err := handler.DecodeJSON([]byte(tc.in), &b, tc.allowEmpty)
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.msg) || errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("error %v (code %s), want invalid containing %q", err, errs.CodeOf(err), tc.msg)
			}
		})
	}
}

// TestDecodeJSONInitVector is the case of the issue: one reader must not
// see 1 shares where another sees 5.
func TestDecodeJSONInitVector(t *testing.T) {
	var in initRequest
	err := handler.DecodeJSON([]byte(`{"key_shares":1,"KEY_SHARES":5}`), &in, false)
	if err == nil || errs.CodeOf(err) != errs.Invalid || !strings.Contains(err.Error(), "KEY_SHARES") {
		t.Fatalf("decoded %+v, %v; want a 400 naming KEY_SHARES", in, err)
	}
	err = handler.DecodeJSON([]byte(`{"key_shares":1,"key_shares":5}`), &in, false)
	if err == nil || !strings.Contains(err.Error(), "key_shares: duplicate") {
		t.Fatalf("duplicate: %v", err)
	}
}

// FuzzDecodeJSON: request decoding never panics, any error is an
// errs.Invalid error (a 400), never an internal one, and what it accepts
// has no duplicate member names at any depth and no top-level name that is
// not exactly a field's.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"data": {"a": "b"}, "cas": 1}`, `{"key": "abc"}`, `{"key_shares": 5, "key_threshold": 3}`,
		`{"ttl": "1h", "display_name": "x"}`, `{"key_shares":1,"KEY_SHARES":5}`, `{"data": {"a": 1, "a": 2}}`, `[]`, `{`, `{"data": null}`, "{\"data\": \"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		targets := []any{new(kvPutRequest), new(unsealRequest), new(initRequest), new(tokenCreateRequest), new(tokenRef)}
		for _, v := range targets {
			err := handler.DecodeJSON(in, v, false)
			if err != nil {
				if errs.CodeOf(err) != errs.Invalid {
					t.Fatalf("decode %T: non-400 error %v", v, err)
				}
				continue
			}
			if dup := jsontext.NewDecoder(bytes.NewReader(in)); dup.SkipValue() != nil {
				t.Fatalf("decode %T accepted %q, which has duplicate names or bad syntax", v, in)
			}
			var top map[string]jsontext.Value
			if jsonv2.Unmarshal(bytes.TrimSpace(in), &top) == nil {
				for name := range top {
					if !hasJSONField(reflect.TypeOf(v).Elem(), name) {
						t.Fatalf("decode %T accepted member %q", v, name)
					}
				}
			}
		}
	})
}

func hasJSONField(t reflect.Type, name string) bool {
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); tag == name {
			return true
		}
	}
	return false
}
