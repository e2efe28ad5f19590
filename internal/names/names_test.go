package names

import (
	"errors"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCanonical(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		pos            int    // expected NameError.Pos
		r              rune   // expected NameError.Rune
		msg            string // substring of the error; "" means success
	}{
		{name: "plain", in: "web-1", want: "web-1"},
		{name: "ascii capitals lowered", in: "Web-1.Example", want: "web-1.example"},
		{name: "digits only", in: "42", want: "42"},
		{name: "kelvin sign is K under NFC", in: "\u212Aube", want: "kube"},
		{name: "63-char label", in: strings.Repeat("a", 63), want: strings.Repeat("a", 63)},
		{name: "253 chars", in: strings.Repeat(strings.Repeat("a", 62)+".", 4) + "a", want: strings.Repeat(strings.Repeat("a", 62)+".", 4) + "a"},

		{name: "cyrillic ie", in: "wеb-1", pos: 2, r: 'е',
			msg: `name "wеb-1": character "е" (U+0435 CYRILLIC SMALL LETTER IE) at position 2 is not allowed; use a-z, 0-9, '-' and '.'`},
		{name: "NFD input refused after NFC", in: "e\u0301", pos: 1, r: 'é',
			msg: `"é" (U+00E9 LATIN SMALL LETTER E WITH ACUTE) at position 1`},
		{name: "combining mark alone", in: "a\u0338b", pos: 2, r: '\u0338', msg: "U+0338 COMBINING LONG SOLIDUS OVERLAY"},
		{name: "non-ASCII capital", in: "É", pos: 1, r: 'É', msg: "U+00C9"},
		{name: "fullwidth letter", in: "ａ", pos: 1, r: 'ａ', msg: "U+FF41 FULLWIDTH LATIN SMALL LETTER A"},
		{name: "underscore", in: "a_b", pos: 2, r: '_', msg: `"_" (U+005F LOW LINE) at position 2`},
		{name: "space", in: "a b", pos: 2, r: ' ', msg: "(U+0020 SPACE) at position 2"},
		{name: "control has no name", in: "a\x00", pos: 2, r: 0, msg: `"\x00" (U+0000) at position 2`},
		{name: "C1 control has no name", in: "a\u0085", pos: 2, r: 0x85, msg: `(U+0085) at position 2`},
		{name: "zero width joiner", in: "a\u200db", pos: 2, r: 0x200d, msg: "U+200D ZERO WIDTH JOINER"},
		{name: "invalid UTF-8", in: "ab\xff", pos: 3, r: utf8.RuneError, msg: "invalid UTF-8 at position 3"},
		{name: "empty", in: "", msg: "is empty"},
		{name: "leading dot", in: ".a", pos: 1, r: '.', msg: "label 1 is empty"},
		{name: "double dot", in: "a..b", pos: 3, r: '.', msg: "label 2 is empty"},
		{name: "trailing dot", in: "a.", pos: 3, r: '.', msg: "label 2 is empty"},
		{name: "leading hyphen", in: "-a", pos: 1, r: '-', msg: "label 1 starts with '-' (position 1)"},
		{name: "trailing hyphen", in: "ab.c-", pos: 5, r: '-', msg: "label 2 ends with '-' (position 5)"},
		{name: "64-char label", in: "x." + strings.Repeat("a", 64), pos: 66, r: 'a', msg: "label 2 is longer than 63"},
		{name: "254 chars", in: strings.Repeat("a.", 127) + "a", msg: "longer than 253"},
		{name: "huge input refused before normalizing", in: strings.Repeat("a", 1<<20), msg: "longer than 253"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Canonical(tc.in)
			if tc.msg == "" {
				if err != nil || got != tc.want {
					t.Fatalf("Canonical(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
				}
				return
			}
			var ne *NameError
			if !errors.As(err, &ne) {
				t.Fatalf("Canonical(%q) = %q, %v; want a *NameError", tc.in, got, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
			if ne.Input != tc.in || ne.Pos != tc.pos || ne.Rune != tc.r {
				t.Errorf("NameError{Input: %q, Pos: %d, Rune: %U}, want Pos %d Rune %U", ne.Input, ne.Pos, ne.Rune, tc.pos, tc.r)
			}
		})
	}
}

func TestIsCanonical(t *testing.T) {
	for in, want := range map[string]bool{"web-1": true, "Web-1": false, "wеb-1": false, "": false} {
		if got := IsCanonical(in); got != want {
			t.Errorf("IsCanonical(%q) = %v", in, got)
		}
	}
}

func TestValidateTrustDomain(t *testing.T) {
	for _, td := range []string{"warden.local", "a", "my_td-1.example", strings.Repeat("a", 255)} {
		if err := ValidateTrustDomain(td); err != nil {
			t.Errorf("%q: %v", td, err)
		}
	}
	for _, td := range []string{"", "Warden.local", "a:8080", "a/b", "user@a", "wаrden", strings.Repeat("a", 256)} {
		if err := ValidateTrustDomain(td); !errors.Is(err, ErrTrustDomain) {
			t.Errorf("%q: %v, want ErrTrustDomain", td, err)
		}
	}
}

func TestSPIFFEID(t *testing.T) {
	id, err := SPIFFEID("warden.local", KindNode, "Web-1")
	if err != nil || id != "spiffe://warden.local/node/web-1" {
		t.Fatalf("SPIFFEID = %q, %v", id, err)
	}
	td, k, n, err := ParseSPIFFEID(id)
	if err != nil || td != "warden.local" || k != KindNode || n != "web-1" {
		t.Fatalf("ParseSPIFFEID = %q %q %q %v", td, k, n, err)
	}
	for _, k := range []Kind{KindService, KindUser} {
		id, err := SPIFFEID("w", k, "a")
		if err != nil || id != "spiffe://w/"+string(k)+"/a" {
			t.Errorf("%s: %q %v", k, id, err)
		}
	}
	if _, err := SPIFFEID("warden.local", "host", "a"); !errors.Is(err, ErrKind) {
		t.Errorf("bad kind: %v", err)
	}
	if _, err := SPIFFEID("Warden", KindNode, "a"); !errors.Is(err, ErrTrustDomain) {
		t.Errorf("bad trust domain: %v", err)
	}
	var ne *NameError
	if _, err := SPIFFEID("w", KindNode, "wеb"); !errors.Is(err, ErrSPIFFEID) || !errors.As(err, &ne) || ne.Rune != 'е' {
		t.Errorf("confusable name: %v", err)
	}
}

func TestParseSPIFFEIDRefuses(t *testing.T) {
	for _, tc := range []struct{ name, id string }{
		{"other scheme", "http://x/node/a"},
		{"scheme case", "SPIFFE://x/node/a"},
		{"no name", "spiffe://x/node"},
		{"empty name", "spiffe://x/node/"},
		{"unknown kind", "spiffe://x/host/a"},
		{"trust domain case", "spiffe://X/node/a"},
		{"port", "spiffe://x:443/node/a"},
		{"user info", "spiffe://u@x/node/a"},
		{"not canonical", "spiffe://x/node/Web"},
		{"extra segment", "spiffe://x/node/a/b"},
		{"trailing slash", "spiffe://x/node/a/"},
		{"query", "spiffe://x/node/a?b"},
		{"fragment", "spiffe://x/node/a#b"},
		{"percent", "spiffe://x/node/w%65b"},
		{"confusable", "spiffe://x/node/wеb"},
		{"no trust domain", "spiffe:///node/a"},
		{"too long", "spiffe://x/node/" + strings.Repeat("a", 2048)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, _, err := ParseSPIFFEID(tc.id); !errors.Is(err, ErrSPIFFEID) {
				t.Fatalf("ParseSPIFFEID(%q) = %v, want ErrSPIFFEID", tc.id, err)
			}
		})
	}
}

// TestPure checks the package comment's promise: names does no I/O.
func TestPure(t *testing.T) {
	forbidden := map[string]bool{"os": true, "net": true, "net/http": true, "io/fs": true, "os/exec": true, "syscall": true}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), e.Name(), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); forbidden[p] || strings.HasPrefix(p, "github.com/warden-sec/warden/") {
				t.Errorf("%s imports %s", e.Name(), p)
			}
		}
	}
}

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"web-1", "wеb-1", "A.B", "e\u0301", "..", "-", "\u212Aube", "a\xff", strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Canonical(s)
		if err != nil {
			var ne *NameError
			if !errors.As(err, &ne) || ne.Input != s {
				t.Fatalf("Canonical(%q): error %v is not a *NameError about the input", s, err)
			}
			return
		}
		if again, err := Canonical(out); err != nil || again != out {
			t.Fatalf("not idempotent: %q → %q → %q, %v", s, out, again, err)
		}
		if out == "" || len(out) > MaxName || strings.Trim(out, "abcdefghijklmnopqrstuvwxyz0123456789-.") != "" {
			t.Fatalf("output %q is empty, too long or has a byte outside the alphabet", out)
		}
	})
}

func FuzzParseSPIFFEID(f *testing.F) {
	f.Add("spiffe://warden.local/node/web-1")
	f.Add("spiffe://a_b/svc/x.y")
	f.Add("spiffe://w/user/wеb")
	f.Fuzz(func(t *testing.T, s string) {
		td, k, n, err := ParseSPIFFEID(s)
		if err != nil {
			if !errors.Is(err, ErrSPIFFEID) {
				t.Fatalf("ParseSPIFFEID(%q): %v does not wrap ErrSPIFFEID", s, err)
			}
			return
		}
		if id, err := SPIFFEID(td, k, n); err != nil || id != s {
			t.Fatalf("round trip %q → %q, %v", s, id, err)
		}
	})
}

func TestBadChar(t *testing.T) {
	lower := func(_ int, r rune) bool { return r >= 'a' && r <= 'z' }
	for _, tc := range []struct{ name, in, want string }{
		{"all allowed", "abc", ""},
		{"empty", "", ""},
		{"Cyrillic look-alike", "wеb", `character "е" (U+0435 CYRILLIC SMALL LETTER IE) at position 2`},
		{"position counts characters, not bytes", "ééa1", `character "é" (U+00E9 LATIN SMALL LETTER E WITH ACUTE) at position 1`},
		{"after multi-byte characters", "ab\u00e9", `character "é" (U+00E9 LATIN SMALL LETTER E WITH ACUTE) at position 3`},
		{"four-byte character", "a\U0001F600", `character "😀" (U+1F600 GRINNING FACE) at position 2`},
		{"invisible", "a\u200bb", `character "\u200b" (U+200B ZERO WIDTH SPACE) at position 2`},
		{"control", "a\x01", `character "\x01" (U+0001) at position 2`},
		{"invalid UTF-8", "ab\xd0", "invalid UTF-8 at position 3"},
		{"encoded U+FFFD is a character", "a\uFFFD", `character "�" (U+FFFD REPLACEMENT CHARACTER) at position 2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := BadChar(tc.in, lower); got != tc.want {
				t.Errorf("BadChar(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	// ok sees character indexes, so rules can depend on the position.
	first := func(i int, r rune) bool { return i > 0 || r >= 'a' && r <= 'z' }
	if got, want := BadChar("é1", first), `character "é" (U+00E9 LATIN SMALL LETTER E WITH ACUTE) at position 1`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := BadChar("a1é", first); got != "" {
		t.Errorf("got %q", got)
	}
}

func TestTrustDomainErrorNamesTheCharacter(t *testing.T) {
	err := ValidateTrustDomain("wаrden.local")
	want := `trust domain "wаrden.local": character "а" (U+0430 CYRILLIC SMALL LETTER A) at position 2 is not allowed`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v, want prefix %q", err, want)
	}
}
