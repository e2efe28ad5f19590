package core

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/errs"
)

func TestParseShare(t *testing.T) {
	share := bytes.Repeat([]byte{0xab}, 33)
	cases := []struct {
		name, in, msg string
	}{
		{"std", base64.StdEncoding.EncodeToString(share), ""},
		{"raw url", base64.RawURLEncoding.EncodeToString(share), ""},
		{"surrounding space", "  " + base64.StdEncoding.EncodeToString(share) + "\n", ""},
		{"empty", "", "required"},
		{"not base64", "%%%", "not valid base64"},
		{"short", base64.StdEncoding.EncodeToString(share[:32]), "is 32"},
		{"long", base64.StdEncoding.EncodeToString(append(share, 1)), "is 34"},
		{"huge", strings.Repeat("A", 4096), "too long"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseShare(tc.in)
			if tc.msg == "" {
				if err != nil || !bytes.Equal(got, share) {
					t.Fatalf("got %x, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.msg) || errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("error %v, want invalid containing %q", err, tc.msg)
			}
		})
	}
}

// FuzzParseShare: the unseal-share parser never panics, returns either a
// 33-byte share or an Invalid error, and never echoes its input.
func FuzzParseShare(f *testing.F) {
	f.Add(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 33)))
	f.Add("")
	f.Add("====")
	f.Add("AAAA\x00")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseShare(in)
		if err != nil {
			if errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("non-invalid error: %v", err)
			}
			if len(in) > 8 && strings.Contains(err.Error(), strings.TrimSpace(in)) {
				t.Fatalf("error echoes the input: %v", err)
			}
			return
		}
		if len(got) != 33 {
			t.Fatalf("share of %d bytes", len(got))
		}
	})
}
