package names

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	for _, tc := range []struct {
		in, want, msg string
	}{
		{"web-1", "web-1", ""},
		{"Web-1.Example", "web-1.example", ""},
		{"e\u0301", "", `"é" (U+00E9 LATIN SMALL LETTER E WITH ACUTE) at position 1`}, // NFD input, refused after NFC
		{"wеb-1", "", `character "е" (U+0435 CYRILLIC SMALL LETTER IE) at position 2`},
		{"a_b", "", `"_" (U+005F LOW LINE) at position 2`},
		{"a b", "", "position 2"},
		{"", "", "is empty"},
		{".a", "", "label 1 is empty"},
		{"a..b", "", "label 2 is empty"},
		{"-a", "", "starts or ends with '-'"},
		{"a-", "", "starts or ends with '-'"},
		{strings.Repeat("a", 63), strings.Repeat("a", 63), ""},
		{strings.Repeat("a", 64), "", "longer than 63"},
		{strings.Repeat("a.", 127) + "a", "", "longer than 253"},
		{"\xff", "", "not valid UTF-8"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Canonical(tc.in)
			if tc.msg == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %q, %v", got, err)
				}
				return
			}
			var ne *NameError
			if !errors.As(err, &ne) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want one containing %q", err, tc.msg)
			}
		})
	}
}

func TestSPIFFE(t *testing.T) {
	id, err := SPIFFEID("warden.local", KindNode, "Web-1")
	if err != nil || id != "spiffe://warden.local/node/web-1" {
		t.Fatalf("%q %v", id, err)
	}
	td, k, n, err := ParseSPIFFEID(id)
	if err != nil || td != "warden.local" || k != KindNode || n != "web-1" {
		t.Fatalf("parse: %v", err)
	}
	for _, bad := range []string{"http://x/node/a", "spiffe://x/node", "spiffe://x/host/a", "spiffe://X/node/a",
		"spiffe://x/node/Web", "spiffe://x/node/a/b", "spiffe://x/node/wеb"} {
		if _, _, _, err := ParseSPIFFEID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := SPIFFEID("warden.local", "host", "a"); err == nil {
		t.Fatal("bad kind accepted")
	}
}

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"web-1", "wеb-1", "A.B", "e\u0301", "..", "-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Canonical(s)
		if err != nil {
			return
		}
		if again, err := Canonical(out); err != nil || again != out {
			t.Fatalf("not idempotent: %q → %q → %q, %v", s, out, again, err)
		}
		if strings.Trim(out, "abcdefghijklmnopqrstuvwxyz0123456789-.") != "" {
			t.Fatalf("output %q has a byte outside the alphabet", out)
		}
	})
}

func FuzzParseSPIFFEID(f *testing.F) {
	f.Add("spiffe://warden.local/node/web-1")
	f.Fuzz(func(t *testing.T, s string) {
		td, k, n, err := ParseSPIFFEID(s)
		if err != nil {
			return
		}
		if id, err := SPIFFEID(td, k, n); err != nil || id != s {
			t.Fatalf("round trip %q → %q, %v", s, id, err)
		}
	})
}
