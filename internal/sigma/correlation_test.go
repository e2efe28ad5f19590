package sigma

import (
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/events"
)

// corrRules are two detection rules (a on event.action a, b on b) and
// the correlation under test.
func corrRules(t *testing.T, correlation string) *Set {
	t.Helper()
	src := `title: A
id: rule-a
name: rule_a
logsource: {product: test, service: unit}
detection:
  sel: {event.action: a}
  condition: sel
---
title: B
id: rule-b
name: rule_b
logsource: {product: test, service: unit}
detection:
  sel: {event.action: b}
  condition: sel
---
title: C
id: corr
` + correlation
	rules, err := Parse("c.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(rules, Config{Mapping: testMapping})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// act is an event of action a or b from ip at t0+sec.
func act(sec int, action, ip string, kv ...string) events.Event {
	e := events.Event{"@timestamp": events.FormatTime(t0.Add(time.Duration(sec) * time.Second)), "event.dataset": "test",
		"event.action": action, "source.ip": ip, "host.name": "h"}
	for i := 0; i+1 < len(kv); i += 2 {
		e[kv[i]] = kv[i+1]
	}
	return e
}

// TestCorrelationTypes: each correlation type and condition form, with
// sequences that raise it and sequences that do not.
func TestCorrelationTypes(t *testing.T) {
	tests := []struct {
		name  string
		corr  string
		evs   []events.Event
		keys  int
		count int64
		own   int // hits of rule-a and rule-b themselves
	}{
		{"event_count gte", "correlation: {type: event_count, rules: [rule_a], group-by: [source.ip], timespan: 10s, condition: {gte: 3}}\n",
			[]events.Event{act(0, "a", "x"), act(1, "a", "x"), act(2, "a", "x")}, 1, 3, 0},
		{"event_count per group", "correlation: {type: event_count, rules: [rule_a], group-by: [source.ip], timespan: 10s, condition: {gte: 3}}\n",
			[]events.Event{act(0, "a", "x"), act(1, "a", "y"), act(2, "a", "x")}, 0, 0, 0},
		{"event_count without group-by", "correlation: {type: event_count, rules: [rule_a], timespan: 10s, condition: {gte: 3}}\n",
			[]events.Event{act(0, "a", "x"), act(1, "a", "y"), act(2, "a", "z")}, 1, 3, 0},
		{"event_count window slides", "correlation: {type: event_count, rules: [rule_a], group-by: [source.ip], timespan: 10s, condition: {gte: 3}}\n",
			[]events.Event{act(0, "a", "x"), act(6, "a", "x"), act(12, "a", "x"), act(18, "a", "x")}, 0, 0, 0},
		{"event_count gt", "correlation: {type: event_count, rules: [rule_a], group-by: [source.ip], timespan: 10s, condition: {gt: 2}}\n",
			[]events.Event{act(0, "a", "x"), act(1, "a", "x")}, 0, 0, 0},
		{"event_count eq", "correlation: {type: event_count, rules: [rule_a], group-by: [source.ip], timespan: 10s, condition: {eq: 2}}\n",
			[]events.Event{act(0, "a", "x"), act(1, "a", "x")}, 1, 2, 0},
		{"event_count range", "correlation: {type: event_count, rules: [rule_a], group-by: [source.ip], timespan: 10s, condition: {gte: 2, lte: 3}}\n",
			[]events.Event{act(0, "a", "x"), act(1, "a", "x"), act(2, "a", "x"), act(3, "a", "x")}, 1, 4, 0},
		{"event_count over two rules", "correlation: {type: event_count, rules: [rule_a, rule_b], group-by: [source.ip], timespan: 10s, condition: {gte: 2}}\n",
			[]events.Event{act(0, "a", "x"), act(1, "b", "x")}, 1, 2, 0},
		{"event_count, generate", "correlation: {type: event_count, rules: [rule_a], group-by: [source.ip], timespan: 10s, condition: {gte: 2}, generate: true}\n",
			[]events.Event{act(0, "a", "x"), act(1, "a", "x")}, 1, 2, 2},
		{"event_count new alert after the window", "correlation: {type: event_count, rules: [rule_a], group-by: [source.ip], timespan: 10s, condition: {gte: 2}}\n",
			[]events.Event{act(0, "a", "x"), act(1, "a", "x"), act(20, "a", "x"), act(21, "a", "x")}, 2, 2, 0},
		{"value_count", "correlation: {type: value_count, rules: [rule_a], group-by: [source.ip], timespan: 10s, condition: {field: user.name, gte: 3}}\n",
			[]events.Event{act(0, "a", "x", "user.name", "u1"), act(1, "a", "x", "user.name", "u2"), act(2, "a", "x", "user.name", "u3")}, 1, 3, 0},
		{"value_count repeats", "correlation: {type: value_count, rules: [rule_a], group-by: [source.ip], timespan: 10s, condition: {field: user.name, gte: 3}}\n",
			[]events.Event{act(0, "a", "x", "user.name", "u1"), act(1, "a", "x", "user.name", "u2"), act(2, "a", "x", "user.name", "u1")}, 0, 0, 0},
		{"value_count field missing", "correlation: {type: value_count, rules: [rule_a], group-by: [source.ip], timespan: 10s, condition: {field: user.name, gte: 1}}\n",
			[]events.Event{act(0, "a", "x")}, 0, 0, 0},
		{"temporal", "correlation: {type: temporal, rules: [rule_a, rule_b], group-by: [source.ip], timespan: 10s}\n",
			[]events.Event{act(0, "b", "x"), act(5, "a", "x")}, 1, 2, 0},
		{"temporal too far apart", "correlation: {type: temporal, rules: [rule_a, rule_b], group-by: [source.ip], timespan: 10s}\n",
			[]events.Event{act(0, "b", "x"), act(15, "a", "x")}, 0, 0, 0},
		{"temporal other group", "correlation: {type: temporal, rules: [rule_a, rule_b], group-by: [source.ip], timespan: 10s}\n",
			[]events.Event{act(0, "b", "x"), act(5, "a", "y")}, 0, 0, 0},
		{"temporal_ordered", "correlation: {type: temporal_ordered, rules: [rule_a, rule_b], group-by: [source.ip], timespan: 10s}\n",
			[]events.Event{act(0, "a", "x"), act(5, "b", "x")}, 1, 2, 0},
		{"temporal_ordered wrong order", "correlation: {type: temporal_ordered, rules: [rule_a, rule_b], group-by: [source.ip], timespan: 10s}\n",
			[]events.Event{act(0, "b", "x"), act(5, "a", "x")}, 0, 0, 0},
		{"temporal_ordered too slow", "correlation: {type: temporal_ordered, rules: [rule_a, rule_b], group-by: [source.ip], timespan: 10s}\n",
			[]events.Event{act(0, "a", "x"), act(11, "b", "x")}, 0, 0, 0},
		{"by id", "correlation: {type: event_count, rules: [rule-a], group-by: [source.ip], timespan: 10s, condition: {gte: 1}}\n",
			[]events.Event{act(0, "a", "x")}, 1, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := corrRules(t, tc.corr)
			hits := run(t, s, tc.evs)
			keys, count, _ := byRule(hits, "corr")
			if keys != tc.keys || tc.keys > 0 && count != tc.count {
				t.Errorf("%d alerts (count %d), want %d (count %d): %v", keys, count, tc.keys, tc.count, hitSummary(hits))
			}
			own := 0
			for _, h := range hits {
				if h.Rule.Correlation == nil {
					own++
				}
			}
			if own != tc.own {
				t.Errorf("%d hits of the referenced rules, want %d", own, tc.own)
			}
		})
	}
}

func TestCorrelationRefused(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"chained with different group-by", `title: X
id: x
name: x
correlation: {type: event_count, rules: [rule_a], group-by: [source.ip], timespan: 10s, condition: {gte: 1}}
---
title: Y
id: y
correlation: {type: event_count, rules: [x], group-by: [user.name], timespan: 10s, condition: {gte: 1}}
`, "chained correlations with different group-by is not supported"},
		{"cycle", `title: X
id: x
correlation: {type: event_count, rules: [y], timespan: 10s, condition: {gte: 1}}
---
title: Y
id: y
correlation: {type: event_count, rules: [x], timespan: 10s, condition: {gte: 1}}
`, "reference cycle"},
		{"self", `title: X
id: x
correlation: {type: event_count, rules: [x], timespan: 10s, condition: {gte: 1}}
`, "refers to itself"},
		{"duplicate id", `title: X
id: rule-a
correlation: {type: event_count, rules: [rule_b], timespan: 10s, condition: {gte: 1}}
`, `rule id "rule-a" is used twice`},
		{"temporal with one rule", `title: X
id: x
correlation: {type: temporal, rules: [rule_a], timespan: 10s}
`, "needs at least two rules"},
		{"temporal with a condition", `title: X
id: x
correlation: {type: temporal, rules: [rule_a, rule_b], timespan: 10s, condition: {gte: 2}}
`, "condition in a temporal correlation is not supported"},
	}
	base := "title: A\nid: rule-a\nname: rule_a\nlogsource: {product: test, service: unit}\ndetection: {sel: {x: 1}, condition: sel}\n---\ntitle: B\nid: rule-b\nname: rule_b\nlogsource: {product: test, service: unit}\ndetection: {sel: {x: 2}, condition: sel}\n---\n"
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := Parse("c.yml", []byte(base+tc.src))
			if err == nil {
				_, err = Compile(rules, Config{Mapping: testMapping})
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
