package assess

import (
	"fmt"
	"unicode/utf8"
)

// MaxResults bounds the results of one report.
const MaxResults = 1000

// ResultError is a result a server refuses: Field names the result and
// its field, e.g. "results[3].status".
type ResultError struct {
	Field string
	Msg   string
}

func (e *ResultError) Error() string { return e.Field + ": " + e.Msg }

// ValidateResults checks results an agent sent before a server stores
// them: at most MaxResults, every field bounded and valid UTF-8 without
// control characters, check ids well formed and unique, severity and
// status in their sets, controls in the documented form. It says nothing
// about whether the results are true. The error is a *ResultError.
func ValidateResults(rs []Result) error {
	if len(rs) > MaxResults {
		return &ResultError{Field: "results", Msg: fmt.Sprintf("%d results, more than %d", len(rs), MaxResults)}
	}
	seen := make(map[string]int, len(rs))
	for i, r := range rs {
		bad := func(field, format string, args ...any) error {
			return &ResultError{Field: fmt.Sprintf("results[%d].%s", i, field), Msg: fmt.Sprintf(format, args...)}
		}
		for _, f := range []struct {
			name, v string
			max     int
		}{
			{"check", r.Check, 64}, {"title", r.Title, maxTitle}, {"severity", r.Severity, 16},
			{"status", r.Status, 16}, {"message", r.Message, MaxMessage}, {"evidence", r.Evidence, MaxEvidence},
		} {
			if len(f.v) > f.max {
				return bad(f.name, "%d bytes, more than %d", len(f.v), f.max)
			}
			if err := textOK(f.v); err != "" {
				return bad(f.name, "%s", err)
			}
		}
		if !validName.MatchString(r.Check) {
			return bad("check", "%q: want 1 to 64 of a-z 0-9 -", r.Check)
		}
		if j, dup := seen[r.Check]; dup {
			return bad("check", "%q repeats results[%d]", r.Check, j)
		}
		seen[r.Check] = i
		if r.Title == "" {
			return bad("title", "empty")
		}
		switch r.Severity {
		case SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical:
		default:
			return bad("severity", "%q: want low, medium, high or critical", r.Severity)
		}
		switch r.Status {
		case StatusPass, StatusFail, StatusError, StatusNotApplicable:
		default:
			return bad("status", "%q: want pass, fail, error or not_applicable", r.Status)
		}
		if len(r.Controls) > maxList {
			return bad("controls", "%d controls, more than %d", len(r.Controls), maxList)
		}
		for j, c := range r.Controls {
			if len(c) > 64 || !validControl.MatchString(c) {
				return bad(fmt.Sprintf("controls[%d]", j), "%q: want iso27001:<n>.<n> or iec62443-3-3:SR <n>.<n>[ RE <n>]", trunc(c))
			}
		}
	}
	return nil
}

// textOK returns why s is not acceptable text, or "".
func textOK(s string) string {
	if !utf8.ValidString(s) {
		return "not valid UTF-8"
	}
	for _, r := range s {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return fmt.Sprintf("control character %U", r)
		}
	}
	return ""
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
