package transitapi

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/api/handler"
	"github.com/warden-sec/warden/internal/errs"
)

// decodeRequest decodes a body as the pipeline's Request.Decode does.
func decodeRequest[T item[T]](body string) (request[T], error) {
	var in request[T]
	err := handler.DecodeJSON([]byte(body), &in, true)
	return in, err
}

func TestDecodeRequest(t *testing.T) {
	cases := []struct {
		name, body string
		want       encryptItem
		batch      bool
		msg        string // "" means success
	}{
		{"plaintext", `{"plaintext":"aGk="}`, encryptItem{Plaintext: "aGk="}, false, ""},
		{"key_version number", `{"plaintext":"aGk=","key_version":2}`, encryptItem{Plaintext: "aGk=", KeyVersion: Int{2, true}}, false, ""},
		{"key_version string", `{"key_version":"2"}`, encryptItem{KeyVersion: Int{2, true}}, false, ""},
		{"key_version empty string", `{"key_version":""}`, encryptItem{}, false, ""},
		{"key_version null", `{"key_version":null}`, encryptItem{}, false, ""},
		{"key_version fraction", `{"key_version":1.5}`, encryptItem{}, false, "key_version: must be an integer"},
		{"key_version word", `{"key_version":"two"}`, encryptItem{}, false, "key_version: must be an integer"},
		{"key_version bool", `{"key_version":true}`, encryptItem{}, false, "key_version: must be an integer"},
		{"key_version huge", `{"key_version":99999999999}`, encryptItem{}, false, "key_version: must be an integer"},
		{"unknown field", `{"plaintext":"aGk=","plain":"x"}`, encryptItem{}, false, `unknown field "plain"`},
		{"case variant", `{"Plaintext":"aGk="}`, encryptItem{}, false, `unknown field "Plaintext"`},
		{"plaintext number", `{"plaintext":5}`, encryptItem{}, false, "plaintext: expected string"},
		{"batch", `{"batch_input":[{"plaintext":"aGk="}]}`, encryptItem{}, true, ""},
		{"batch null", `{"batch_input":null}`, encryptItem{}, false, ""},
		{"partial code", `{"batch_input":[],"partial_failure_response_code":"207"}`, encryptItem{}, true, ""},
		{"convergent string", `{"convergent_encryption":"true"}`, encryptItem{ConvergentEncryption: Bool{true, true}}, false, ""},
		{"convergent word", `{"convergent_encryption":"yes"}`, encryptItem{}, false, "convergent_encryption: must be true or false"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in, err := decodeRequest[encryptItem](tc.body)
			if tc.msg != "" {
				if err == nil || errs.CodeOf(err) != errs.Invalid || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("error %v, want a 400 containing %q", err, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if in.Item != tc.want || in.batched() != tc.batch {
				t.Fatalf("decoded %+v (batched %v), want %+v (%v)", in.Item, in.batched(), tc.want, tc.batch)
			}
		})
	}
}

func TestDecodeSignOptionsInline(t *testing.T) {
	in, err := decodeRequest[signItem](`{"input":"aGk=","signature_algorithm":"pkcs1v15","prehashed":"false","reference":"r1"}`)
	if err != nil {
		t.Fatal(err)
	}
	if in.Item.SignatureAlgorithm != "pkcs1v15" || !in.Item.Prehashed.Set || in.Item.Reference != "r1" {
		t.Fatalf("decoded %+v", in.Item)
	}
}

func TestDecodeDuration(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		msg  string
	}{
		{`"720h"`, 720 * time.Hour, ""},
		{`3600`, time.Hour, ""},
		{`"3600"`, time.Hour, ""},
		{`0`, 0, ""},
		{`"1h30m"`, 90 * time.Minute, ""},
		{`-1`, 0, "non-negative"},
		{`"-1h"`, 0, "must not be negative"},
		{`"soon"`, 0, "Go duration"},
		{`1.5`, 0, "Go duration"},
		{`true`, 0, "Go duration"},
		{`99999999999999999`, 0, "non-negative number of seconds"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			var in createRequest
			err := handler.DecodeJSON([]byte(`{"auto_rotate_period":`+tc.in+`}`), &in, false)
			if tc.msg != "" {
				if err == nil || !strings.Contains(err.Error(), "auto_rotate_period: ") || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("error %v, want one naming auto_rotate_period containing %q", err, tc.msg)
				}
				return
			}
			if err != nil || in.AutoRotatePeriod.D != tc.want || !in.AutoRotatePeriod.Set {
				t.Fatalf("decoded %+v, %v; want %s", in.AutoRotatePeriod, err, tc.want)
			}
		})
	}
}

func TestDecodeBatch(t *testing.T) {
	items := func(n int) string {
		var b strings.Builder
		b.WriteString("[")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"plaintext":"aGk=","reference":"%d"}`, i)
		}
		return b.String() + "]"
	}
	cases := []struct {
		name, in string
		n        int
		msg      string
	}{
		{"one", items(1), 1, ""},
		{"the most", items(MaxBatch), MaxBatch, ""},
		{"one too many", items(MaxBatch + 1), 0, "batch_input: more than 1000 items"},
		{"one too many, the last malformed", strings.TrimSuffix(items(MaxBatch+1), "]") + `,{"x"`, 0, "batch_input: more than 1000 items"},
		{"empty", `[]`, 0, "batch_input: empty"},
		{"object", `{"plaintext":"aGk="}`, 0, "batch_input: must be a JSON array"},
		{"string item", `["aGk="]`, 0, "batch_input.0: expected"},
		{"unknown member", `[{"plaintext":"aGk="},{"plain":"x"}]`, 0, `unknown field "batch_input.1.plain"`},
		{"bad key_version", `[{"key_version":"x"}]`, 0, "batch_input.0.key_version: must be an integer"},
		{"duplicate member", `[{"plaintext":"a","plaintext":"b"}]`, 0, "batch_input.0.plaintext: duplicate member name"},
		{"truncated", `[{"plaintext":"a"}`, 0, "truncated JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeBatch[encryptItem]([]byte(tc.in))
			if tc.msg != "" {
				if err == nil || errs.CodeOf(err) != errs.Invalid || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("error %v, want a 400 containing %q", err, tc.msg)
				}
				return
			}
			if err != nil || len(got) != tc.n || got[tc.n-1].Reference != fmt.Sprint(tc.n-1) {
				t.Fatalf("decoded %d items, %v; want %d", len(got), err, tc.n)
			}
		})
	}
}
