package sigma

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/warden-sec/warden/internal/events"
)

// FuzzParse: the loader never panics; what it accepts compiles or fails
// with an *Error, and compiled rules can be matched.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("builtin/*.yml")
	more, _ := filepath.Glob("testdata/sigmahq/rules/web/*/*.yml")
	for _, p := range append(files, more...) {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(ruleYAML("  sel:\n    x|contains|all: [a, 'b*c?']\n  k: [x, y]\n  condition: sel or not 1 of k*\n")))
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := Parse("f.yml", data)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error is %T: %v", err, err)
			}
			return
		}
		s, err := Compile(rules, Config{Placeholders: map[string][]string{"p": {"a"}}})
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("compile error is %T: %v", err, err)
			}
			return
		}
		e := events.Event{"event.dataset": "sshd", "message": "a b c", "x": "abc", "source.ip": "10.0.0.1", "@timestamp": "2026-12-02T10:00:00Z"}
		c := NewCorrelator(s, nil, Limits{})
		c.Observe(e, s.Match(e, nil), 1)
	})
}

// FuzzCondition: the condition parser never panics and accepts only
// conditions over the given identifiers.
func FuzzCondition(f *testing.F) {
	for _, s := range []string{"a", "a and not b", "(a or b) and not 1 of c*", "all of them", "1 of them and not (b)", "a | count() > 5", "((((a))))", "not not a", "2 of a*", "a or"} {
		f.Add(s)
	}
	names := []string{"a", "b", "c1", "c2", "_x"}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCondition(s, names)
		if err != nil {
			var ce *condError
			if !errors.As(err, &ce) {
				t.Fatalf("error is %T", err)
			}
			return
		}
		var walk func(c cond)
		walk = func(c cond) {
			switch c := c.(type) {
			case *condIdent:
				found := false
				for _, n := range names {
					found = found || n == c.name
				}
				if !found {
					t.Fatalf("unknown identifier %q accepted", c.name)
				}
			case *condAnd:
				for _, x := range c.c {
					walk(x)
				}
			case *condOr:
				for _, x := range c.c {
					walk(x)
				}
			case *condNot:
				walk(c.c)
			}
		}
		walk(c)
	})
}

// FuzzMapping: ParseMapping never panics; what it accepts merges into the
// default mapping and answers look-ups.
func FuzzMapping(f *testing.F) {
	f.Add(defaultMappingYAML)
	f.Add([]byte("logsources:\n  - {product: p, service: s, datasets: [d]}\nfields:\n  a: b\n"))
	base := DefaultMapping()
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMapping("m.yml", data)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error is %T", err)
			}
			return
		}
		merged := base.Merge(m)
		for _, l := range m.Logsources {
			ds, ok := merged.datasets(Logsource{Product: l.Product, Category: l.Category, Service: l.Service})
			if !ok || len(ds) == 0 {
				t.Fatalf("entry %+v not found after merge", l)
			}
		}
		for k, v := range m.Fields {
			if merged.field(k) != v {
				t.Fatalf("field %q → %q, want %q", k, merged.field(k), v)
			}
		}
	})
}
