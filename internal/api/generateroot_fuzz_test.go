package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/errs"
)

// FuzzParseGenerateRoot: the decoders of root generation requests never
// panic, refuse only with bad input (400), never echo a key they refuse,
// and accept only what core would take the form of: a canonical X25519 key,
// a nonce of 32 hex digits, a well-formed unseal key; a cancel has exactly
// one of nonce and key.
func FuzzParseGenerateRoot(f *testing.F) {
	share := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 33))
	f.Add([]byte(`{"public_key": "9w8iQmBG1Pm6Wm7f4lvjQ5K0vJXbZc4Xq1mNnY3PZ2E="}`))
	f.Add([]byte(`{"nonce": "0123456789abcdef0123456789abcdef", "key": "` + share + `"}`))
	f.Add([]byte(`{"nonce": "0123456789abcdef0123456789abcdef"}`))
	f.Add([]byte(`{"key": "` + share + `"}`))
	f.Add([]byte(`{"nonce": "", "key": ""}`))
	f.Add([]byte(`{"public_key": null}`))
	f.Add([]byte(`{"nonce": 1}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		invalid := func(what string, err error) {
			t.Helper()
			if errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("%s: error of code %s: %v", what, errs.CodeOf(err), err)
			}
		}
		if pk, err := parseGenerateRootInit(body); err != nil {
			invalid("init", err)
		} else {
			var loose generateRootInitRequest
			if err := json.Unmarshal(body, &loose); err != nil || loose.PublicKey != base64.StdEncoding.EncodeToString(pk.Bytes()) {
				t.Fatalf("init: accepted a key that is not the body's in canonical form: %q", body)
			}
		}
		for _, update := range []bool{true, false} {
			in, err := parseGenerateRootKey(body, update)
			if err != nil {
				invalid("key request", err)
				if in != (generateRootKeyRequest{}) {
					t.Fatal("a result with an error")
				}
				var loose struct{ Key string }
				if json.Unmarshal(body, &loose) == nil {
					if k := strings.TrimSpace(loose.Key); len(k) > 8 && strings.Contains(err.Error(), k) {
						t.Fatalf("error echoes the key: %v", err)
					}
				}
				continue
			}
			if update && (in.Nonce == "" || in.Key == "") {
				t.Fatalf("update accepted without nonce and key: %+v", in)
			}
			if !update && (in.Nonce == "") == (in.Key == "") {
				t.Fatalf("cancel accepted with both or neither: %+v", in)
			}
			if in.Nonce != "" && (len(in.Nonce) != 32 || strings.Trim(in.Nonce, "0123456789abcdef") != "") {
				t.Fatalf("accepted nonce %q", in.Nonce)
			}
		}
	})
}
