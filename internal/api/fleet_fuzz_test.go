package api

import (
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/names"
)

// FuzzParseNameList: whatever ?names= is accepted is 1 to MaxBatchNames
// canonical names, none repeated, that join back to the input exactly;
// anything else is refused as invalid input, naming the field.
func FuzzParseNameList(f *testing.F) {
	for _, s := range []string{"web-1", "web-1,db-1", "", ",", "web-1,", "web-1,web-1", "Web-1", "wеb-1", "a..b", "-a",
		strings.Repeat("n,", MaxBatchNames) + "n", "web-1,\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		list, err := parseNameList(s)
		if err != nil {
			if !errs.Is(err, errs.Invalid) || !strings.HasPrefix(err.Error(), "names") {
				t.Fatalf("%q: error %v does not name the field as invalid input", s, err)
			}
			return
		}
		if len(list) == 0 || len(list) > MaxBatchNames || strings.Join(list, ",") != s {
			t.Fatalf("%q accepted as %d names %q", s, len(list), list)
		}
		seen := map[string]bool{}
		for _, n := range list {
			if !names.IsCanonical(n) || seen[n] {
				t.Fatalf("%q accepted with name %q (not canonical, or repeated)", s, n)
			}
			seen[n] = true
		}
	})
}

// TestParseNameList: the refusals name the field and the index.
func TestParseNameList(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "names: empty"},
		{"web-1,,db-1", "names[1]:"},
		{"web-1,Web-2", `names[1]: "Web-2" is not a canonical node name`},
		{"web-1,web-1", `names[1]: "web-1" is repeated`},
		{strings.Repeat("n,", MaxBatchNames) + "n", "names: 101 names, at most 100"},
	} {
		if _, err := parseNameList(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.want)
		}
	}
	if l, err := parseNameList("web-1,db-1"); err != nil || len(l) != 2 {
		t.Errorf("web-1,db-1: %q %v", l, err)
	}
}
