package transitapi

import (
	"testing"

	"github.com/warden-sec/warden/internal/api/handler"
	"github.com/warden-sec/warden/internal/errs"
)

// FuzzDecodeBatch: batch decoding never panics, refuses with a 400 only,
// and never accepts more than MaxBatch items.
func FuzzDecodeBatch(f *testing.F) {
	for _, s := range []string{`[{"plaintext":"aGk="}]`, `[{"ciphertext":"wdn:v1:AAAA","context":"eA==","reference":"r"}]`,
		`[{"input":"aGk=","key_version":"2"},{"input":"","signature_algorithm":"pss"}]`, `[]`, `[1]`, `[{"a":1},{"a":1}]`,
		`[{"plaintext":"a","plaintext":"b"}]`, `{"batch_input":[]}`, `[`, `[{"key_version":1e3}]`, `[null]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		check := func(n int, err error) {
			if err != nil {
				if errs.CodeOf(err) != errs.Invalid {
					t.Fatalf("non-400 error %v", err)
				}
				return
			}
			if n < 1 || n > MaxBatch {
				t.Fatalf("accepted %d items", n)
			}
		}
		e, err := DecodeBatch[encryptItem](in)
		check(len(e), err)
		d, err := DecodeBatch[decryptItem](in)
		check(len(d), err)
		s, err := DecodeBatch[signItem](in)
		check(len(s), err)
		v, err := DecodeBatch[verifyItem](in)
		check(len(v), err)
		hm, err := DecodeBatch[hmacItem](in)
		check(len(hm), err)
	})
}

// FuzzDecodeRequests: every transit request body decodes without a panic,
// and any refusal is a 400.
func FuzzDecodeRequests(f *testing.F) {
	for _, s := range []string{`{"plaintext":"aGk=","key_version":"2"}`, `{"type":"ed25519","exportable":"true","auto_rotate_period":"720h"}`,
		`{"min_decryption_version":2,"auto_retire_after":3600}`, `{"min_available_version":"3"}`, `{"bits":"512","context":"eA=="}`,
		`{"batch_input":[{"plaintext":"aGk="}],"partial_failure_response_code":200}`, `{"auto_rotate_period":-1}`, `null`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		targets := []any{new(request[encryptItem]), new(request[decryptItem]), new(request[rewrapItem]), new(request[signItem]),
			new(request[verifyItem]), new(request[hmacItem]), new(createRequest), new(configRequest), new(trimRequest), new(dataKeyRequest)}
		for _, v := range targets {
			if err := handler.DecodeJSON(in, v, true); err != nil && errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("decode %T: non-400 error %v", v, err)
			}
		}
	})
}
