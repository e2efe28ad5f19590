package sigma_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/events/parse"
	"github.com/warden-sec/warden/internal/sigma"
)

// TestBuiltinOnParsedLines: the built-in pack raises its alerts on the
// events the agent's parsers make of real log lines.
func TestBuiltinOnParsedLines(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC) }
	opts := parse.Options{Location: time.UTC, Now: now}
	sshd, err := parse.New("sshd", opts)
	if err != nil {
		t.Fatal(err)
	}
	nginx, err := parse.New("nginx", opts)
	if err != nil {
		t.Fatal(err)
	}
	var evs []events.Event
	add := func(p parse.Parser, line string) {
		ev := events.Event{}
		if err := p.Parse([]byte(line), ev); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		ev["host.name"] = "web-1"
		evs = append(evs, ev)
	}
	// 6 attempts on invalid users (two failure lines each) and 4 on root:
	// 10 attempts, 16 failure lines.
	for i := 0; i < 6; i++ {
		add(sshd, fmt.Sprintf("Dec  2 10:00:%02d web-1 sshd[100]: Invalid user u%d from 203.0.113.7 port 5221%d", 2*i, i, i))
		add(sshd, fmt.Sprintf("Dec  2 10:00:%02d web-1 sshd[100]: Failed password for invalid user u%d from 203.0.113.7 port 5221%d ssh2", 2*i, i, i))
	}
	for i := 0; i < 4; i++ {
		add(sshd, fmt.Sprintf("Dec  2 10:00:%02d web-1 sshd[100]: Failed password for root from 203.0.113.7 port 5230%d ssh2", 20+i, i))
	}
	add(sshd, "Dec  2 10:00:40 web-1 sshd[100]: Accepted password for root from 203.0.113.7 port 53000 ssh2")
	add(nginx, `198.51.100.9 - - [02/Dec/2026:10:01:00 +0000] "GET /item.php?id=1%27%20UNION%20SELECT%20password%20FROM%20users-- HTTP/1.1" 200 512 "-" "sqlmap/1.7"`)
	add(nginx, `198.51.100.9 - - [02/Dec/2026:10:01:01 +0000] "GET /static/../../../../etc/passwd HTTP/1.1" 400 150 "-" "curl/8"`)

	rules, err := sigma.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	set, err := sigma.Compile(rules, sigma.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := sigma.NewCorrelator(set, nil, sigma.Limits{})
	last := map[string]sigma.Hit{}
	keys := map[string]map[string]bool{}
	var m []*sigma.Rule
	for i, ev := range evs {
		m = set.Match(ev, m)
		for _, h := range c.Observe(ev, m, uint64(i+1)) {
			last[h.Rule.Title] = h
			if keys[h.Rule.Title] == nil {
				keys[h.Rule.Title] = map[string]bool{}
			}
			keys[h.Rule.Title][h.Key] = true
		}
	}
	want := map[string]int64{
		"SSH brute force":                  10, // attempts, not lines
		"SSH password spraying":            10,
		"SSH login success after failures": 0,
		"SQL injection attempt in URL":     1,
		"Path traversal attempt in URL":    1,
	}
	for title, count := range want {
		h, ok := last[title]
		if !ok {
			t.Errorf("no %q alert (alerts: %v)", title, keys)
			continue
		}
		if len(keys[title]) != 1 {
			t.Errorf("%q: %d alerts, want 1", title, len(keys[title]))
		}
		if count > 0 && h.Count != count {
			t.Errorf("%q: count %d, want %d", title, h.Count, count)
		}
	}
	if h := last["SSH brute force"]; h.Group["source.ip"] != "203.0.113.7" {
		t.Errorf("brute force group %v", h.Group)
	}
	if len(last) != len(want) {
		t.Errorf("alerts %v, want exactly %v", keys, want)
	}
}
