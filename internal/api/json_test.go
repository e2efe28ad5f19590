package api

import (
	"encoding/json"
	"strings"
	"testing"

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
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b body
			err := DecodeJSON([]byte(tc.in), &b, tc.allowEmpty)
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

// FuzzDecodeJSON: request decoding never panics, and any error is an
// errs.Invalid error (a 400), never an internal one.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"data": {"a": "b"}, "cas": 1}`, `{"key": "abc"}`, `{"key_shares": 5, "key_threshold": 3}`,
		`{"ttl": "1h", "display_name": "x"}`, `[]`, `{`, `{"data": null}`, "{\"data\": \"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		targets := []any{new(kvPutRequest), new(unsealRequest), new(initRequest), new(tokenCreateRequest), new(tokenRef)}
		for _, v := range targets {
			if err := DecodeJSON(in, v, false); err != nil && errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("decode %T: non-400 error %v", v, err)
			}
		}
	})
}
