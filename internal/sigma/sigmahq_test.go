package sigma

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/events"
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

// TestSigmaHQRulesFire: SigmaHQ rules, compiled with the default mapping,
// match the events Warden's parsers make (and not others).
func TestSigmaHQRulesFire(t *testing.T) {
	rules := sigmaHQRules(t)
	s, err := Compile(rules, Config{})
	if err != nil {
		t.Fatal(err)
	}
	nginx := func(url string) events.Event {
		return events.Event{"event.dataset": "nginx.access", "url.original": url, "http.request.method": "GET", "message": "GET " + url}
	}
	tests := []struct {
		name string
		id   string
		ev   events.Event
		want bool
	}{
		{"path traversal", "7745c2ea-24a5-4290-b680-04359cb84b35", nginx("/download?file=../../../etc/passwd"), true},
		{"path traversal: benign", "7745c2ea-24a5-4290-b680-04359cb84b35", nginx("/download?file=report.pdf"), false},
		{"JNDI exploit keywords", "412d55bc-7737-4d25-9542-5b396867ce55", nginx("/x/Basic/ReverseShell/10.0.0.1"), true},
		{"JNDI exploit: apache too", "412d55bc-7737-4d25-9542-5b396867ce55", events.Event{"event.dataset": "apache.access", "message": "GET /TomcatBypass/Command/x"}, true},
		{"JNDI exploit: not a web log", "412d55bc-7737-4d25-9542-5b396867ce55", events.Event{"event.dataset": "syslog", "message": "GET /TomcatBypass/Command/x"}, false},
		{"buffer overflow keywords in syslog", "18b042f0-2ecd-4b6e-9f8d-aa7a7e7de781", events.Event{"event.dataset": "syslog", "message": "kernel: *** stack smashing detected ***: terminated"}, true},
		{"buffer overflow keywords in journald", "18b042f0-2ecd-4b6e-9f8d-aa7a7e7de781", events.Event{"event.dataset": "journald", "message": "Stack Smashing Detected"}, true},
		{"buffer overflow: other line", "18b042f0-2ecd-4b6e-9f8d-aa7a7e7de781", events.Event{"event.dataset": "syslog", "message": "kernel: eth0 up"}, false},
		{"base64 decode process", "e2072cab-8c9a-459b-b63c-40ae79e27031", events.Event{"event.dataset": "linux.process_creation", "process.executable": "/usr/bin/base64", "process.command_line": "base64 -d /tmp/x"}, true},
		{"base64 encode process", "e2072cab-8c9a-459b-b63c-40ae79e27031", events.Event{"event.dataset": "linux.process_creation", "process.executable": "/usr/bin/base64", "process.command_line": "base64 /tmp/x"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := false
			for _, r := range s.Match(tc.ev, nil) {
				got = got || r.ID == tc.id
			}
			if got != tc.want {
				t.Errorf("matched %v, want %v", got, tc.want)
			}
		})
	}
}
