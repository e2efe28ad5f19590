package secrets

import (
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/errs"
)

func TestValidatePath(t *testing.T) {
	for _, tc := range []struct {
		path, msg string // msg "" means valid
	}{
		{"app/db", ""},
		{"a.b_c-d/E9", ""},
		{strings.Repeat("a/", 31) + "a", ""},
		{"", "required"},
		{"/app", "segment 1: empty"},
		{"app/", "segment 2: empty"},
		{"a//b", "segment 2: empty"},
		{"a/../b", `segment 2: ".." is not allowed`},
		{"./a", `segment 1: "." is not allowed`},
		{"a b", `character " " (U+0020 SPACE) at position 2 is not allowed`},
		{"wеb", `segment 1: character "е" (U+0435 CYRILLIC SMALL LETTER IE) at position 2 is not allowed`}, // a Cyrillic е
		{"ok/aéb", `segment 2: character "é" (U+00E9 LATIN SMALL LETTER E WITH ACUTE) at position 2`},
		{"a/ü/é", `segment 2: character "ü" (U+00FC LATIN SMALL LETTER U WITH DIAERESIS) at position 1`},
		{"ab\xd0", "invalid UTF-8 at position 3"},
		{strings.Repeat("a/", 32) + "a", "more than 32 segments"},
		{strings.Repeat("a", 256), "longer than 255"},
		{"a#1", `character "#" (U+0023 NUMBER SIGN)`},
	} {
		t.Run(tc.path, func(t *testing.T) {
			err := ValidatePath(tc.path)
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.msg) || errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("error %v, want invalid containing %q", err, tc.msg)
			}
		})
	}
}

// FuzzValidatePath: a path that validates can never reach another secret's
// keys: it has no '#' (the version separator), no empty, "." or ".."
// segment, and only the allowed bytes.
func FuzzValidatePath(f *testing.F) {
	for _, s := range []string{"app/db", "a/../b", "", "a#1", "x/y/z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if ValidatePath(p) != nil {
			return
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted segment %q in %q", seg, p)
			}
		}
		if strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/") != "" {
			t.Fatalf("accepted a byte outside the alphabet: %q", p)
		}
	})
}
