package assess

import (
	"errors"
	"strings"
	"testing"
)

func okResult() Result {
	return Result{Check: "a", Title: "A", Severity: SeverityHigh, Controls: []string{"iso27001:8.5"}, Status: StatusPass, Message: "fine", Evidence: "/etc/x:1: y"}
}

func TestValidateResults(t *testing.T) {
	if err := ValidateResults(nil); err != nil {
		t.Fatal(err)
	}
	if err := ValidateResults([]Result{okResult()}); err != nil {
		t.Fatal(err)
	}
	many := make([]Result, MaxResults+1)
	cases := []struct {
		name string
		rs   []Result
		want string
	}{
		{"too many", many, "results: 1001 results, more than 1000"},
		{"status", []Result{okResult(), func() Result { r := okResult(); r.Check = "b"; r.Status = "passed"; return r }()}, `results[1].status: "passed": want pass, fail, error or not_applicable`},
		{"severity", []Result{func() Result { r := okResult(); r.Severity = ""; return r }()}, `results[0].severity: "": want`},
		{"check id", []Result{func() Result { r := okResult(); r.Check = "A B"; return r }()}, `results[0].check: "A B"`},
		{"duplicate", []Result{okResult(), okResult()}, `results[1].check: "a" repeats results[0]`},
		{"no title", []Result{func() Result { r := okResult(); r.Title = ""; return r }()}, "results[0].title: empty"},
		{"long message", []Result{func() Result { r := okResult(); r.Message = strings.Repeat("m", MaxMessage+1); return r }()}, "results[0].message: 1025 bytes, more than 1024"},
		{"long evidence", []Result{func() Result { r := okResult(); r.Evidence = strings.Repeat("e", MaxEvidence+1); return r }()}, "results[0].evidence: 513 bytes, more than 512"},
		{"invalid utf-8", []Result{func() Result { r := okResult(); r.Evidence = "a\xffb"; return r }()}, "results[0].evidence: not valid UTF-8"},
		{"control char", []Result{func() Result { r := okResult(); r.Message = "a\x1b[31mb"; return r }()}, "results[0].message: control character U+001B"},
		{"bad control", []Result{func() Result { r := okResult(); r.Controls = []string{"iso27001:8.5", "pci:1"}; return r }()}, `results[0].controls[1]: "pci:1"`},
		{"too many controls", []Result{func() Result { r := okResult(); r.Controls = make([]string, 65); return r }()}, "results[0].controls: 65 controls, more than 64"},
	}
	for i := range many {
		many[i] = okResult()
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateResults(c.rs)
			var re *ResultError
			if !errors.As(err, &re) || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("got %v, want %s…", err, c.want)
			}
		})
	}
}
