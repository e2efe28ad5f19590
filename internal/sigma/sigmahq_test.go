package sigma

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestSigmaHQ loads every rule under rules/linux and rules/web of the
// SigmaHQ repository (testdata/sigmahq, see its README): each compiles,
// or is refused with an *Error naming an unsupported feature. At least
// 95% must compile (the bar).
func TestSigmaHQ(t *testing.T) {
	files := sigmaHQFiles(t)
	if len(files) < 200 {
		t.Fatalf("only %d rule files under testdata/sigmahq/rules", len(files))
	}
	cfg := Config{Placeholders: map[string][]string{}}
	compiled, refused := 0, 0
	features := map[string]int{}
	var all []*Rule
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rules, err := Parse(f, data)
		if err == nil {
			_, err = Compile(rules, cfg)
		}
		var se *Error
		switch {
		case err == nil:
			compiled++
			all = append(all, rules...)
		case errors.As(err, &se) && se.Unsupported():
			refused++
			features[se.Feature]++
			if !strings.Contains(se.Error(), se.Feature) || se.Line == 0 {
				t.Errorf("%s: error does not name the feature and line: %v", f, err)
			}
			t.Logf("refused: %v", err)
		default:
			t.Errorf("%s: neither compiles nor names an unsupported feature: %v", f, err)
		}
	}
	// All the compiled rules together, as an operator would load them.
	set, err := Compile(all, cfg)
	if err != nil {
		t.Fatalf("compiling all: %v", err)
	}
	for _, w := range set.Warnings() {
		t.Logf("warning: %s", w)
	}
	total := compiled + refused
	rate := float64(compiled) / float64(len(files))
	t.Logf("SigmaHQ rules/linux + rules/web: %d files, %d compile (%.1f%%), %d refused; refused features: %v", len(files), compiled, 100*rate, refused, features)
	if total != len(files) {
		t.Errorf("%d files, %d accounted for", len(files), total)
	}
	if rate < 0.95 {
		t.Errorf("compile rate %.1f%% < 95%%", 100*rate)
	}
}

// sigmaHQFiles lists the .yml files of the SigmaHQ test data, sorted.
func sigmaHQFiles(tb testing.TB) []string {
	tb.Helper()
	var files []string
	err := filepath.WalkDir("testdata/sigmahq/rules", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".yml") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	sort.Strings(files)
	return files
}
