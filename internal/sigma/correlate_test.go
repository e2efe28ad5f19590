package sigma

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/events"
)

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func at(d time.Duration, kv ...any) events.Event {
	e := events.Event{"@timestamp": events.FormatTime(t0.Add(d)), "host.name": "node-1"}
	for i := 0; i+1 < len(kv); i += 2 {
		e[kv[i].(string)] = kv[i+1]
	}
	return e
}

func sshFail(d time.Duration, ip, user string) events.Event {
	return at(d, "event.module", "sshd", "event.dataset", "sshd", "event.category", "authentication",
		"event.action", "ssh_login", "event.outcome", "failure", "source.ip", ip, "user.name", user)
}

func sshOK(d time.Duration, ip, user string) events.Event {
	e := sshFail(d, ip, user)
	e["event.outcome"] = "success"
	return e
}

func web(d time.Duration, ip, url string, status float64) events.Event {
	return at(d, "event.module", "nginx", "event.dataset", "nginx.access", "source.ip", ip,
		"http.request.method", "GET", "url.original", url, "http.response.status_code", status)
}

func wardenEv(d time.Duration, action, ip string) events.Event {
	return at(d, "event.module", "warden", "event.dataset", "warden.server", "event.action", action, "source.ip", ip)
}

func fim(d time.Duration, path, action string) events.Event {
	return at(d, "event.module", "fim", "event.dataset", "fim", "event.category", "file", "event.action", action, "file.path", path)
}

func repeat(n int, step time.Duration, f func(i int, d time.Duration) events.Event) []events.Event {
	var out []events.Event
	for i := 0; i < n; i++ {
		out = append(out, f(i, time.Duration(i)*step))
	}
	return out
}

// run feeds evs through Match and a fresh Correlator and returns every hit.
func run(t testing.TB, s *Set, evs []events.Event) []Hit {
	t.Helper()
	c := NewCorrelator(s, nil, Limits{})
	var hits []Hit
	var m []*Rule
	for i, e := range evs {
		m = s.Match(e, m)
		hits = append(hits, c.Observe(e, m, uint64(i+1))...)
	}
	return hits
}

// byRule summarizes hits of one rule: distinct keys and the last count.
func byRule(hits []Hit, id string) (keys int, count int64, last Hit) {
	seen := map[string]bool{}
	for _, h := range hits {
		if h.Rule.ID == id {
			if !seen[h.Key] {
				seen[h.Key] = true
				keys++
			}
			count, last = h.Count, h
		}
	}
	return
}

func builtinSet(t testing.TB) *Set {
	t.Helper()
	rules, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(rules, Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const (
	idBrute    = "67e88380-c782-4d9f-9009-8d61f90288c7"
	idSpray    = "6673402e-c106-4a70-ab7d-d5ced4777426"
	idAfter    = "90836041-094d-47dd-874f-92d166bbda0b"
	idScan     = "0e0ed1bf-e2b2-4c49-99d5-8eca036fe420"
	idSQLi     = "89159db8-8424-48bb-9764-751b1af2a110"
	idTraverse = "310cb876-3f17-4a1d-ae89-d28d2e8216a9"
	idRevoked  = "38e93df8-3f51-4783-8066-41515a9d020e"
	idRoot     = "16b090b1-51a6-4134-9291-749eee0ee27c"
	idAudit    = "d9236f1c-eeae-4c2d-964a-5568919b102a"
	idFlood    = "adebeef2-1509-44b4-a004-78962b358f58"
	idFIM      = "83e7a7b9-9a47-40ea-8d36-41f2cda4267e"
)

// TestBuiltin: each rule of the built-in pack with events that must raise
// it (one alert, with its count) and events that must not.
func TestBuiltin(t *testing.T) {
	s := builtinSet(t)
	ip := "203.0.113.7"
	tests := []struct {
		name  string
		rule  string
		evs   []events.Event
		keys  int
		count int64
		group string // expected source.ip group, if any
	}{
		{"brute force: 10 failures in 1m", idBrute, repeat(10, 5*time.Second, func(i int, d time.Duration) events.Event { return sshFail(d, ip, "root") }), 1, 10, ip},
		{"brute force: 15 failures in 1m update one alert", idBrute, repeat(15, 3*time.Second, func(i int, d time.Duration) events.Event { return sshFail(d, ip, "root") }), 1, 15, ip},
		{"brute force: 9 failures", idBrute, repeat(9, 5*time.Second, func(i int, d time.Duration) events.Event { return sshFail(d, ip, "root") }), 0, 0, ""},
		{"brute force: 10 failures over 3m", idBrute, repeat(10, 20*time.Second, func(i int, d time.Duration) events.Event { return sshFail(d, ip, "root") }), 0, 0, ""},
		{"brute force: 10 sources", idBrute, repeat(10, time.Second, func(i int, d time.Duration) events.Event { return sshFail(d, fmt.Sprintf("198.51.100.%d", i), "root") }), 0, 0, ""},
		{"brute force: 10 successes", idBrute, repeat(10, time.Second, func(i int, d time.Duration) events.Event { return sshOK(d, ip, "root") }), 0, 0, ""},
		{"spraying: 5 users in 5m", idSpray, repeat(5, 50*time.Second, func(i int, d time.Duration) events.Event { return sshFail(d, ip, fmt.Sprint("user", i)) }), 1, 5, ip},
		{"spraying: 4 users", idSpray, repeat(8, 10*time.Second, func(i int, d time.Duration) events.Event { return sshFail(d, ip, fmt.Sprint("user", i%4)) }), 0, 0, ""},
		{"spraying: 5 users over 10m", idSpray, repeat(5, 2*time.Minute, func(i int, d time.Duration) events.Event { return sshFail(d, ip, fmt.Sprint("user", i)) }), 0, 0, ""},
		{"success after failures", idAfter, append(repeat(3, 10*time.Second, func(i int, d time.Duration) events.Event { return sshFail(d, ip, "root") }), sshOK(time.Minute, ip, "root")), 1, 0, ip},
		{"success after 2 failures", idAfter, append(repeat(2, 10*time.Second, func(i int, d time.Duration) events.Event { return sshFail(d, ip, "root") }), sshOK(time.Minute, ip, "root")), 0, 0, ""},
		{"success before failures", idAfter, append([]events.Event{sshOK(0, ip, "root")}, repeat(3, 10*time.Second, func(i int, d time.Duration) events.Event { return sshFail(d+time.Second, ip, "root") })...), 0, 0, ""},
		{"success from another source", idAfter, append(repeat(3, 10*time.Second, func(i int, d time.Duration) events.Event { return sshFail(d, ip, "root") }), sshOK(time.Minute, "192.0.2.1", "root")), 0, 0, ""},
		{"success 10m after failures", idAfter, append(repeat(3, 10*time.Second, func(i int, d time.Duration) events.Event { return sshFail(d, ip, "root") }), sshOK(10*time.Minute, ip, "root")), 0, 0, ""},
		{"web scanning: 50 404s in 1m", idScan, repeat(50, time.Second, func(i int, d time.Duration) events.Event { return web(d, ip, fmt.Sprintf("/x%d", i), 404) }), 1, 50, ip},
		{"web scanning: apache too", idScan, repeat(50, time.Second, func(i int, d time.Duration) events.Event {
			e := web(d, ip, "/", 403)
			e["event.dataset"] = "apache.access"
			return e
		}), 1, 50, ip},
		{"web scanning: 49 404s", idScan, repeat(49, time.Second, func(i int, d time.Duration) events.Event { return web(d, ip, "/", 404) }), 0, 0, ""},
		{"web scanning: 50 200s", idScan, repeat(50, time.Second, func(i int, d time.Duration) events.Event { return web(d, ip, "/", 200) }), 0, 0, ""},
		{"web scanning: 50 500s", idScan, repeat(50, time.Second, func(i int, d time.Duration) events.Event { return web(d, ip, "/", 500) }), 0, 0, ""},
		{"sql injection", idSQLi, []events.Event{web(0, ip, "/item?id=1%20UNION%20SELECT%20password%20FROM%20users", 200), web(time.Second, ip, "/login?u=admin'--", 200)}, 1, 2, ""},
		{"sql injection: benign", idSQLi, []events.Event{web(0, ip, "/search?q=selection+of+unions", 200)}, 0, 0, ""},
		{"path traversal", idTraverse, []events.Event{web(0, ip, "/static/../../../etc/passwd", 400), web(time.Second, ip, "/x?f=..%2F..%2Fetc", 400)}, 1, 2, ""},
		{"path traversal: benign", idTraverse, []events.Event{web(0, ip, "/static/app.js", 200)}, 0, 0, ""},
		{"revoked certificate", idRevoked, []events.Event{wardenEv(0, "revoked_certificate", ip)}, 1, 1, ""},
		{"revoked certificate: other action", idRevoked, []events.Event{wardenEv(0, "root_token", ip)}, 0, 0, ""},
		{"revoked certificate: agent dataset", idRevoked, []events.Event{func() events.Event {
			e := wardenEv(0, "revoked_certificate", ip)
			e["event.dataset"] = "warden.agent"
			return e
		}()}, 0, 0, ""},
		{"root token", idRoot, []events.Event{wardenEv(0, "root_token", ip)}, 1, 1, ""},
		{"root token: other action", idRoot, []events.Event{wardenEv(0, "rate_limited", ip)}, 0, 0, ""},
		{"audit verification", idAudit, []events.Event{wardenEv(0, "audit_verification_failed", "")}, 1, 1, ""},
		{"audit verification: other action", idAudit, []events.Event{wardenEv(0, "root_token", "")}, 0, 0, ""},
		{"request flood", idFlood, repeat(10, time.Second, func(i int, d time.Duration) events.Event { return wardenEv(d, "rate_limited", ip) }), 1, 10, ip},
		{"request flood: 9 seconds", idFlood, repeat(9, time.Second, func(i int, d time.Duration) events.Event { return wardenEv(d, "rate_limited", ip) }), 0, 0, ""},
		{"fim /etc", idFIM, []events.Event{fim(0, "/etc/passwd", "modified"), fim(time.Second, "/etc/ssh/sshd_config", "created")}, 1, 2, ""},
		{"fim outside /etc", idFIM, []events.Event{fim(0, "/usr/local/bin/x", "modified"), fim(0, "/etcetera", "modified")}, 0, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hits := run(t, s, tc.evs)
			keys, count, last := byRule(hits, tc.rule)
			if keys != tc.keys {
				t.Fatalf("%d alerts, want %d (hits: %v)", keys, tc.keys, hitSummary(hits))
			}
			if tc.count > 0 && count != tc.count {
				t.Errorf("count %d, want %d", count, tc.count)
			}
			if tc.group != "" && last.Group["source.ip"] != tc.group {
				t.Errorf("group %v, want source.ip %s", last.Group, tc.group)
			}
			if keys > 0 && (len(last.Events) == 0 || len(last.Events) > MaxHitEvents || len(last.Refs) == 0) {
				t.Errorf("hit carries %d events, %d refs", len(last.Events), len(last.Refs))
			}
			// Referenced detection rules make no alerts of their own.
			for _, h := range hits {
				if h.Rule.Name != "" && h.Rule.Correlation == nil {
					t.Errorf("referenced rule %q made a hit", h.Rule.Title)
				}
			}
		})
	}
}

func hitSummary(hits []Hit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, fmt.Sprintf("%s count=%d", h.Key, h.Count))
	}
	return out
}

// TestDetectionDedup: one hit per rule, host and dedup window.
func TestDetectionDedup(t *testing.T) {
	s := builtinSet(t)
	ev := func(d time.Duration, host string) events.Event {
		e := wardenEv(d, "root_token", "192.0.2.1")
		e["host.name"] = host
		return e
	}
	hits := run(t, s, []events.Event{ev(0, "a"), ev(time.Minute, "a"), ev(2*time.Minute, "b"), ev(11*time.Minute, "a")})
	var keys []string
	for _, h := range hits {
		keys = append(keys, fmt.Sprintf("%s %d", h.Key, h.Count))
	}
	want := []string{
		idRoot + "|host.name=a|2026-12-02T10:00:00Z 1",
		idRoot + "|host.name=a|2026-12-02T10:00:00Z 2",
		idRoot + "|host.name=b|2026-12-02T10:00:00Z 1",
		idRoot + "|host.name=a|2026-12-02T10:10:00Z 1",
	}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Errorf("hits\n%v\nwant\n%v", keys, want)
	}
}

// TestLateness: correlation windows follow event time. A replay of
// yesterday's log is detected; a burst of lines older than the watermark
// is counted as late and does not make a brute force.
func TestLateness(t *testing.T) {
	s := builtinSet(t)
	ip := "203.0.113.9"
	yesterday := repeat(10, time.Second, func(i int, d time.Duration) events.Event { return sshFail(d-24*time.Hour, ip, "root") })
	if keys, _, _ := byRule(run(t, s, yesterday), idBrute); keys != 1 {
		t.Errorf("replay of yesterday: %d alerts, want 1", keys)
	}

	c := NewCorrelator(s, nil, Limits{})
	var m []*Rule
	var hits []Hit
	feed := func(e events.Event) {
		m = s.Match(e, m)
		hits = append(hits, c.Observe(e, m, 1)...)
	}
	feed(sshOK(time.Hour, "192.0.2.50", "alice")) // now is 11:00
	for _, e := range repeat(10, time.Second, func(i int, d time.Duration) events.Event { return sshFail(d, ip, "root") }) {
		feed(e) // 10:00, an hour late
	}
	if keys, _, _ := byRule(hits, idBrute); keys != 0 {
		t.Errorf("late burst made %d alerts", keys)
	}
	if st := c.Stats(); st.Late != 10 {
		t.Errorf("late = %d, want 10", st.Late)
	}
	// Each host has its own watermark: a host replaying an hour-old log
	// while another sends today's events is judged by its own clock.
	c = NewCorrelator(s, nil, Limits{})
	hits = nil
	for _, e := range repeat(10, time.Second, func(i int, d time.Duration) events.Event { return sshFail(d, ip, "root") }) {
		e["host.name"] = "node-2" // 10:00, replayed
		feed(sshOK(time.Hour+time.Duration(len(hits))*time.Second, "192.0.2.50", "alice"))
		feed(e)
	}
	if keys, count, _ := byRule(hits, idBrute); keys != 1 || count != 10 {
		t.Errorf("replay beside a current host: %d alerts, count %d; want 1, 10", keys, count)
	}
	if st := c.Stats(); st.Late != 0 {
		t.Errorf("replay beside a current host: late = %d, want 0", st.Late)
	}
	// Within the allowed lateness (1m), out of order events still count.
	c = NewCorrelator(s, nil, Limits{})
	hits = nil
	evs := repeat(10, time.Second, func(i int, d time.Duration) events.Event { return sshFail(d, ip, "root") })
	evs[0], evs[9] = evs[9], evs[0]
	for _, e := range evs {
		feed(e)
	}
	if keys, count, _ := byRule(hits, idBrute); keys != 1 || count != 10 {
		t.Errorf("out of order within lateness: %d alerts, count %d", keys, count)
	}
}

// TestLimits: state is bounded and what is cut is counted.
func TestLimits(t *testing.T) {
	s := builtinSet(t)
	tests := []struct {
		name string
		lim  Limits
		ip   func(i int) string
		cut  func(Stats) uint64
	}{
		{"groups", Limits{MaxGroups: 3}, func(i int) string { return fmt.Sprintf("198.51.100.%d", i%5) }, func(s Stats) uint64 { return s.GroupsEvicted }},
		{"values", Limits{MaxValuesPerGroup: 2}, func(int) string { return "198.51.100.1" }, func(s Stats) uint64 { return s.ValuesCut }},
		{"events", Limits{MaxEventsPerGroup: 4}, func(int) string { return "198.51.100.1" }, func(s Stats) uint64 { return s.EventsCut }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCorrelator(s, nil, tc.lim)
			var m []*Rule
			for i := 0; i < 10; i++ {
				e := sshFail(time.Duration(i)*time.Second, tc.ip(i), fmt.Sprint("u", i))
				m = s.Match(e, m)
				c.Observe(e, m, uint64(i))
			}
			if st := c.Stats(); tc.cut(st) == 0 {
				t.Errorf("stats %+v: nothing cut", st)
			}
			for _, g := range c.st.Groups {
				if tc.lim.MaxGroups > 0 && len(g) > tc.lim.MaxGroups {
					t.Errorf("%d groups held, limit %d", len(g), tc.lim.MaxGroups)
				}
				for _, st := range g {
					if tc.lim.MaxValuesPerGroup > 0 && len(st.Values) > tc.lim.MaxValuesPerGroup {
						t.Errorf("%d values held", len(st.Values))
					}
					if tc.lim.MaxEventsPerGroup > 0 && len(st.Times)-st.Head > tc.lim.MaxEventsPerGroup {
						t.Errorf("%d times held", len(st.Times)-st.Head)
					}
				}
			}
		})
	}
}

// TestOwns: a Correlator handles only the partition keys it owns.
func TestOwns(t *testing.T) {
	s := builtinSet(t)
	ip := "203.0.113.7"
	evs := repeat(10, time.Second, func(i int, d time.Duration) events.Event { return sshFail(d, ip, "root") })
	none := NewCorrelator(s, func(string) bool { return false }, Limits{})
	var m []*Rule
	for _, e := range evs {
		m = s.Match(e, m)
		if h := none.Observe(e, m, 1); len(h) != 0 {
			t.Fatalf("a correlator that owns nothing made %d hits", len(h))
		}
	}
	rules, _ := Builtin()
	var brute *Rule
	for _, r := range rules {
		if r.ID == idBrute {
			brute = r
		}
	}
	want := PartitionKey(brute, evs[0])
	one := NewCorrelator(s, func(k string) bool { return k == want }, Limits{})
	var hits []Hit
	for _, e := range evs {
		m = s.Match(e, m)
		hits = append(hits, one.Observe(e, m, 1)...)
	}
	if keys, _, _ := byRule(hits, idBrute); keys != 1 {
		t.Errorf("owner of %q: %d alerts", want, keys)
	}
}

// randomStream is a seeded mix of the events the built-in pack and the
// SigmaHQ rules look at.
func randomStream(n int, seed int64) []events.Event {
	r := rand.New(rand.NewSource(seed))
	ips := []string{"203.0.113.1", "203.0.113.2", "203.0.113.3", "198.51.100.4"}
	var out []events.Event
	d := time.Duration(0)
	for i := 0; i < n; i++ {
		d += time.Duration(r.Intn(3000)) * time.Millisecond
		ip := ips[r.Intn(len(ips))]
		var e events.Event
		switch r.Intn(6) {
		case 0, 1:
			e = sshFail(d, ip, fmt.Sprint("user", r.Intn(8)))
		case 2:
			e = sshOK(d, ip, "root")
		case 3:
			e = web(d, ip, []string{"/", "/../etc/passwd", "/?id=1 union select 1", "/wp-login.php"}[r.Intn(4)], float64([]int{200, 404, 403}[r.Intn(3)]))
		case 4:
			e = wardenEv(d, []string{"rate_limited", "root_token", "revoked_certificate"}[r.Intn(3)], ip)
		default:
			e = fim(d, []string{"/etc/passwd", "/tmp/x"}[r.Intn(2)], "modified")
		}
		if r.Intn(20) == 0 { // a little disorder, some of it beyond the lateness
			e["@timestamp"] = events.FormatTime(t0.Add(d - time.Duration(r.Intn(120))*time.Second))
		}
		e["host.name"] = fmt.Sprint("node-", r.Intn(3))
		out = append(out, e)
	}
	return out
}

func hitLines(hits []Hit) string {
	var b bytes.Buffer
	for _, h := range hits {
		fmt.Fprintf(&b, "%s count=%d first=%s last=%s hosts=%v refs=%v events=%d\n", h.Key, h.Count, h.First.Format(time.RFC3339), h.Last.Format(time.RFC3339), h.Hosts, h.Refs, len(h.Events))
	}
	return b.String()
}

// TestDeterministic: the same events in the same order give the same hits
// and keys, also when the state is marshalled and restored midway (a
// checkpoint and a failover).
func TestDeterministic(t *testing.T) {
	s := builtinSet(t)
	evs := randomStream(3000, 1)
	a := hitLines(run(t, s, evs))
	b := hitLines(run(t, s, evs))
	if a != b {
		t.Fatal("two runs differ")
	}
	if len(a) == 0 {
		t.Fatal("no hits at all")
	}
	for _, cut := range []int{1, 500, 1500, 2999} {
		c := NewCorrelator(s, nil, Limits{})
		var hits []Hit
		var m []*Rule
		for i, e := range evs {
			if i == cut {
				state, err := c.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				s2 := builtinSet(t) // a new server compiles the rules afresh
				c = NewCorrelator(s2, nil, Limits{})
				if err := c.UnmarshalBinary(state); err != nil {
					t.Fatal(err)
				}
				s = s2
			}
			m = s.Match(e, m)
			hits = append(hits, c.Observe(e, m, uint64(i+1))...)
		}
		if got := hitLines(hits); got != a {
			t.Errorf("restored at %d: hits differ", cut)
		}
	}
	// The state itself is deterministic.
	c1, c2 := NewCorrelator(s, nil, Limits{}), NewCorrelator(s, nil, Limits{})
	var m []*Rule
	for i, e := range evs[:1000] {
		m = s.Match(e, m)
		c1.Observe(e, m, uint64(i))
		c2.Observe(e, m, uint64(i))
	}
	b1, _ := c1.MarshalBinary()
	b2, _ := c2.MarshalBinary()
	if !bytes.Equal(b1, b2) {
		t.Error("same input, different state")
	}
	if err := c1.UnmarshalBinary([]byte(`{"version":9}`)); err == nil {
		t.Error("unknown state version accepted")
	}
	var probe map[string]any
	if err := json.Unmarshal(b1, &probe); err != nil {
		t.Error(err)
	}
}

// TestStateAcrossRuleChange: state restored into a Correlator of a new
// Set keeps the rules that remain and drops the others.
func TestStateAcrossRuleChange(t *testing.T) {
	s := builtinSet(t)
	c := NewCorrelator(s, nil, Limits{})
	var m []*Rule
	for _, e := range repeat(9, time.Second, func(i int, d time.Duration) events.Event { return sshFail(d, "203.0.113.7", "root") }) {
		m = s.Match(e, m)
		c.Observe(e, m, 1)
	}
	state, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// The new set lacks the password spraying rule.
	rules, _ := Builtin()
	var kept []*Rule
	for _, r := range rules {
		if r.ID != idSpray {
			kept = append(kept, r)
		}
	}
	s2, err := Compile(kept, Config{})
	if err != nil {
		t.Fatal(err)
	}
	c2 := NewCorrelator(s2, nil, Limits{})
	if err := c2.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	if _, ok := c2.st.Groups[idSpray]; ok {
		t.Error("state of a removed rule kept")
	}
	e := sshFail(10*time.Second, "203.0.113.7", "root")
	m = s2.Match(e, m)
	if keys, count, _ := byRule(c2.Observe(e, m, 2), idBrute); keys != 1 || count != 10 {
		t.Errorf("brute force after the rule change: %d alerts, count %d", keys, count)
	}
	if err := c2.UnmarshalBinary([]byte("not json")); err == nil {
		t.Error("garbage state accepted")
	}
}
