package sigma

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/events"
)

// sigmaHQRules parses the SigmaHQ test data (every file compiles, see
// TestSigmaHQ).
func sigmaHQRules(tb testing.TB) []*Rule {
	tb.Helper()
	var out []*Rule
	for _, p := range sigmaHQFiles(tb) {
		data, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		rules, err := Parse(p, data)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, rules...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// benchRules returns n realistic rules: the built-in pack, then the
// SigmaHQ linux and web rules, then variants of those with their own ids
// and log sources (product "<product>_vK"), as a fleet with many kinds of
// logs has. For n = 10 it takes the built-in SSH and web rules.
func benchRules(tb testing.TB, n int) []*Rule {
	tb.Helper()
	builtin, err := Builtin()
	if err != nil {
		tb.Fatal(err)
	}
	hq := sigmaHQRules(tb)
	var out []*Rule
	if n < len(builtin) {
		// The SSH and web rules of the pack: 10 rules, 4 of them correlations.
		for _, r := range builtin {
			if strings.HasPrefix(r.File, "builtin/ssh") || strings.HasPrefix(r.File, "builtin/web") {
				out = append(out, r)
			}
		}
		if len(out) > n {
			out = out[:n]
		}
		return out
	}
	out = append(out, builtin...)
	for k := 0; len(out) < n; k++ {
		for _, r := range hq {
			if len(out) == n {
				break
			}
			if k == 0 {
				out = append(out, r)
				continue
			}
			v := *r
			v.ID = fmt.Sprintf("%s-v%d", r.ID, k)
			v.Name = ""
			if v.Logsource.Product == "" {
				v.Logsource.Product = "generic"
			}
			v.Logsource.Product = fmt.Sprintf("%s_v%d", v.Logsource.Product, k)
			out = append(out, &v)
		}
	}
	return out
}

// benchStream is the event mix of a Linux fleet: sshd, web access logs,
// syslog, process events, FIM and Warden's own, with ascending times.
func benchStream(n int) []events.Event {
	evs := randomStream(n, 7)
	for i, e := range evs {
		switch i % 10 {
		case 3:
			e["event.dataset"], e["event.module"] = "syslog", "syslog"
			e["message"] = "Dec  2 10:00:00 node-1 CRON[1234]: (root) CMD (run-parts /etc/cron.hourly)"
			delete(e, "event.outcome")
		case 7:
			e["event.dataset"] = "linux.process_creation"
			e["process.executable"] = "/usr/bin/curl"
			e["process.command_line"] = "curl -s https://example.com/install.sh -o /tmp/install.sh"
			e["process.parent.executable"] = "/bin/bash"
		}
	}
	// times strictly ascending so no event is late however often it is fed
	for i, e := range evs {
		e["@timestamp"] = events.FormatTime(t0.Add(time.Duration(i) * 50 * time.Millisecond))
	}
	return evs
}

// BenchmarkEngine is Set.Match and Correlator.Observe per event with 10,
// 100 and 1,000 rules. Run:
//
//	go test ./internal/sigma -run XXX -bench Engine -benchmem -cpu 1
func BenchmarkEngine(b *testing.B) {
	evs := benchStream(100000)
	for _, n := range []int{10, 100, 1000} {
		rules := benchRules(b, n)
		s, err := Compile(rules, Config{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("rules=%d", len(rules)), func(b *testing.B) {
			c := NewCorrelator(s, nil, Limits{})
			var m []*Rule
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				j := i % len(evs)
				if j == 0 && i > 0 {
					b.StopTimer()
					c = NewCorrelator(s, nil, Limits{})
					b.StartTimer()
				}
				m = s.Match(evs[j], m)
				c.Observe(evs[j], m, uint64(i))
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkMatch is Set.Match alone (no allocation expected).
func BenchmarkMatch(b *testing.B) {
	evs := benchStream(10000)
	for _, n := range []int{10, 100, 1000} {
		s, err := Compile(benchRules(b, n), Config{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			var m []*Rule
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				m = s.Match(evs[i%len(evs)], m)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
