package respond

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/detect"
	"github.com/warden-sec/warden/internal/sigma"
)

func sinks(names ...string) func(string) bool {
	return func(n string) bool {
		for _, x := range names {
			if x == n {
				return true
			}
		}
		return false
	}
}

func TestParseFull(t *testing.T) {
	src := `name: ssh-brute-force
description: Ban SSH brute-force sources.
mode: simulate
on:
  rules: [ssh-brute-force]
  tags: [attack.t1110]
  level: medium
  hosts: [web-*]
  zones: [dmz]
actions:
  - ban: {duration: 1h}
  - quarantine: {duration: 4h, approval: required}
  - revoke: {}
  - notify: {sink: ops-webhook}
  - incident: {open: true, severity: high, window: 1h}
limits:
  actions_per_hour: 20
`
	p, err := Parse([]byte(src), sinks("ops-webhook"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "ssh-brute-force" || p.Mode != ModeSimulate || !p.Enabled || p.ActionsPerHour != 20 {
		t.Fatalf("playbook: %+v", p)
	}
	want := []Action{
		{Kind: ActionBan, Duration: time.Hour, Line: 11},
		{Kind: ActionQuarantine, Duration: 4 * time.Hour, Approval: true, Line: 12},
		{Kind: ActionRevoke, Line: 13},
		{Kind: ActionNotify, Sink: "ops-webhook", Line: 14},
		{Kind: ActionIncident, Severity: "high", Window: time.Hour, Line: 15},
	}
	if len(p.Actions) != len(want) {
		t.Fatalf("actions: %+v", p.Actions)
	}
	for i := range want {
		if p.Actions[i] != want[i] {
			t.Errorf("action %d: %+v, want %+v", i, p.Actions[i], want[i])
		}
	}
	if got := strings.Join(p.On.Hosts, ","); got != "web-*" || p.On.Level != "medium" || p.On.Zones[0] != "dmz" {
		t.Errorf("on: %+v", p.On)
	}
}

func TestParseErrors(t *testing.T) {
	const head = "name: p\n"
	cases := []struct {
		name, src string
		line      int
		field     string
	}{
		{"unknown top key", head + "actions:\n  - revoke: {}\nextra: 1\n", 4, "extra"},
		{"no name", "actions:\n  - revoke: {}\n", 1, "name"},
		{"no actions", head + "mode: enforce\n", 1, "actions"},
		{"empty actions", head + "actions: []\n", 1, "actions"},
		{"bad mode", head + "mode: maybe\nactions:\n  - revoke: {}\n", 2, "mode"},
		{"unknown action", head + "actions:\n  - explode: {}\n", 3, "actions[0].explode"},
		{"unknown action key", head + "actions:\n  - ban: {duration: 1h, forever: true}\n", 3, "actions[0].ban.forever"},
		{"zero duration", head + "actions:\n  - ban: {duration: 0s}\n", 3, "actions[0].ban.duration"},
		{"negative duration", head + "actions:\n  - ban:\n      duration: -1h\n", 4, "actions[0].ban.duration"},
		{"bad duration", head + "actions:\n  - quarantine: {duration: soon}\n", 3, "actions[0].quarantine.duration"},
		{"no duration", head + "actions:\n  - ban: {}\n", 3, "actions[0].ban.duration"},
		{"bad approval", head + "actions:\n  - ban: {duration: 1h, approval: maybe}\n", 3, "actions[0].ban.approval"},
		{"unknown sink", head + "actions:\n  - revoke: {}\n  - notify:\n      sink: nowhere\n", 5, "actions[1].notify.sink"},
		{"no sink", head + "actions:\n  - notify: {}\n", 3, "actions[0].notify.sink"},
		{"incident open false", head + "actions:\n  - incident: {open: false}\n", 3, "actions[0].incident.open"},
		{"bad severity", head + "actions:\n  - incident: {severity: awful}\n", 3, "actions[0].incident.severity"},
		{"bad level", head + "on:\n  level: loud\nactions:\n  - revoke: {}\n", 3, "on.level"},
		{"unknown on key", head + "on:\n  rule: [x]\nactions:\n  - revoke: {}\n", 3, "on.rule"},
		{"bad glob", head + "on:\n  hosts: ['web-[']\nactions:\n  - revoke: {}\n", 3, "on.hosts"},
		{"limits zero", head + "actions:\n  - revoke: {}\nlimits:\n  actions_per_hour: 0\n", 5, "limits.actions_per_hour"},
		{"limits unknown", head + "actions:\n  - revoke: {}\nlimits:\n  per_day: 3\n", 5, "limits.per_day"},
		{"repeated key", head + "name: q\nactions:\n  - revoke: {}\n", 2, "name"},
		{"two keys in an action", head + "actions:\n  - {ban: {duration: 1h}, revoke: {}}\n", 3, "actions[0]"},
		{"syntax", head + "actions: [\n", 2, "yaml"},
		{"bad name", "name: 'a b'\nactions:\n  - revoke: {}\n", 1, "name"},
		{"two documents", head + "actions:\n  - revoke: {}\n---\nname: q\n", 4, "playbook"},
		{"alias", head + "x: &a 1\nactions:\n  - revoke: *a\n", 2, "x"},
		{"enabled not bool", head + "enabled: yes please\nactions:\n  - revoke: {}\n", 2, "enabled"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.src), sinks("ops"))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
			if pe.Line != c.line || pe.Field != c.field {
				t.Fatalf("err = %q (line %d, field %q), want line %d field %q", err, pe.Line, pe.Field, c.line, c.field)
			}
			if !strings.Contains(err.Error(), "line") && c.line > 0 {
				t.Fatalf("message %q does not name the line", err)
			}
		})
	}
}

// TestBuiltinMatchesSigmaRule: the built-in playbook names the built-in
// Sigma rule that detects SSH brute force, and parses.
func TestBuiltinMatchesSigmaRule(t *testing.T) {
	p, err := Parse(Builtin(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := sigma.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var brute *sigma.Rule
	for _, r := range rules {
		if r.Title == "SSH brute force" {
			brute = r
		}
	}
	if brute == nil {
		t.Fatal("no built-in Sigma rule titled SSH brute force")
	}
	al := &detect.Alert{RuleID: brute.ID, Level: brute.Level, Tags: brute.Tags, Hosts: []string{"web-1"}}
	if !p.On.Matches(al, nil) {
		t.Fatalf("the built-in playbook does not match an alert of rule %s", brute.ID)
	}
	if p.Mode != ModeEnforce || len(p.Actions) != 2 || p.Actions[0].Kind != ActionBan || p.Actions[0].Duration != time.Hour ||
		p.Actions[1].Kind != ActionIncident {
		t.Fatalf("built-in playbook: %+v", p)
	}
}

func TestMatch(t *testing.T) {
	al := &detect.Alert{RuleID: "r1", Level: "high", Tags: []string{"attack.t1110"}, Hosts: []string{"db-1", "web-2"}}
	zones := map[string]string{"web-2": "dmz"}
	zoneOf := func(h string) string { return zones[h] }
	cases := []struct {
		name string
		m    Match
		want bool
	}{
		{"empty", Match{}, true},
		{"rule", Match{Rules: []string{"r0", "r1"}}, true},
		{"other rule", Match{Rules: []string{"r0"}}, false},
		{"tag", Match{Tags: []string{"x", "attack.t1110"}}, true},
		{"other tag", Match{Tags: []string{"attack.t1078"}}, false},
		{"level below", Match{Level: "medium"}, true},
		{"level equal", Match{Level: "high"}, true},
		{"level above", Match{Level: "critical"}, false},
		{"host glob", Match{Hosts: []string{"web-*"}}, true},
		{"host glob miss", Match{Hosts: []string{"app-*"}}, false},
		{"zone", Match{Zones: []string{"dmz"}}, true},
		{"zone miss", Match{Zones: []string{"core"}}, false},
		{"all", Match{Rules: []string{"r1"}, Tags: []string{"attack.t1110"}, Level: "low", Hosts: []string{"db-?"}, Zones: []string{"dmz"}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.m.Matches(al, zoneOf); got != c.want {
				t.Fatalf("Matches = %v, want %v", got, c.want)
			}
		})
	}
}

func FuzzParsePlaybook(f *testing.F) {
	f.Add(Builtin())
	f.Add([]byte("name: p\nactions:\n  - notify: {sink: ops}\n  - ban: {duration: 1h, approval: required}\n"))
	f.Add([]byte("name: p\non: {hosts: ['[']}\nactions: [{revoke: ~}]\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse(src, sinks("ops"))
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		if p.Name == "" || len(p.Actions) == 0 || p.ActionsPerHour < 1 || (p.Mode != ModeEnforce && p.Mode != ModeSimulate) {
			t.Fatalf("accepted an incomplete playbook: %+v", p)
		}
		for _, a := range p.Actions {
			if (a.Kind == ActionBan || a.Kind == ActionQuarantine) && a.Duration <= 0 {
				t.Fatalf("accepted a non-positive duration: %+v", a)
			}
			if a.Kind == ActionNotify && a.Sink != "ops" {
				t.Fatalf("accepted an unknown sink: %+v", a)
			}
		}
	})
}
