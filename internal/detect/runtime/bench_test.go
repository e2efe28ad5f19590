package runtime

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/sigma"
)

// sigmaHQDir holds SigmaHQ's rules/linux and rules/web (package sigma's
// test data).
const sigmaHQDir = "../../sigma/testdata/sigmahq/rules"

// benchRules is the built-in pack plus up to n SigmaHQ rules that compile
// (sorted by path, so every run uses the same ones).
func benchRules(tb testing.TB, n int) []*sigma.Rule {
	tb.Helper()
	rules, err := sigma.Builtin()
	if err != nil {
		tb.Fatal(err)
	}
	var files []string
	_ = filepath.WalkDir(sigmaHQDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".yml") {
			files = append(files, path)
		}
		return nil
	})
	slices.Sort(files)
	added := 0
	for _, f := range files {
		if added == n {
			break
		}
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		rs, err := sigma.Parse(f, data)
		if err != nil {
			continue
		}
		for _, r := range rs {
			if added == n || r.Correlation != nil {
				continue
			}
			if _, err := sigma.Compile(append(slices.Clone(rules), r), sigma.Config{}); err != nil {
				continue
			}
			rules = append(rules, r)
			added++
		}
	}
	if added < n {
		tb.Logf("only %d SigmaHQ rules found under %s (want %d)", added, sigmaHQDir, n)
	}
	return rules
}

// benchEvents makes a mix of sshd (failures and successes from 2,000
// addresses, so brute forces happen), nginx access and syslog events.
func benchEvents(n int, rng *rand.Rand) []events.Event {
	paths := []string{"/", "/index.html", "/login", "/api/v1/items?id=42", "/static/app.js", "/admin", "/../../etc/passwd", "/search?q=1' OR '1'='1"}
	out := make([]events.Event, n)
	for i := range out {
		ts := events.FormatTime(t0.Add(time.Duration(i) * time.Millisecond))
		ip := fmt.Sprintf("10.%d.%d.%d", rng.IntN(4), rng.IntN(20), rng.IntN(25))
		host := fmt.Sprintf("web-%d", rng.IntN(50))
		switch k := rng.IntN(10); {
		case k < 4:
			outcome := "failure"
			if rng.IntN(5) == 0 {
				outcome = "success"
			}
			out[i] = events.Event{events.FieldTimestamp: ts, events.FieldModule: "sshd", events.FieldDataset: "sshd",
				events.FieldCategory: "authentication", events.FieldAction: "ssh_login", events.FieldOutcome: outcome,
				events.FieldSourceIP: ip, events.FieldUserName: fmt.Sprintf("user%d", rng.IntN(30)), events.FieldHostName: host,
				events.FieldMessage: "Failed password for user from " + ip + " port 52211 ssh2", events.FieldFilePath: "/var/log/auth.log"}
		case k < 8:
			out[i] = events.Event{events.FieldTimestamp: ts, events.FieldModule: "nginx", events.FieldDataset: "nginx.access",
				events.FieldSourceIP: ip, "http.request.method": "GET", "url.original": paths[rng.IntN(len(paths))],
				"http.response.status_code": float64([]int{200, 200, 200, 304, 404, 403}[rng.IntN(6)]),
				"user_agent.original":       "Mozilla/5.0", events.FieldHostName: host, events.FieldMessage: ip + ` - - "GET / HTTP/1.1" 200 512`,
				events.FieldFilePath: "/var/log/nginx/access.log"}
		default:
			out[i] = events.Event{events.FieldTimestamp: ts, events.FieldModule: "syslog", events.FieldDataset: "syslog",
				"process.name": "cron", events.FieldHostName: host, events.FieldMessage: "(root) CMD (run-parts /etc/cron.hourly)",
				events.FieldFilePath: "/var/log/syslog"}
		}
	}
	return out
}

// BenchmarkRuntime pushes b.N events (batches of 100) through one
// server's runtime: a real NATS stream, sigma with the built-in pack and
// 100 SigmaHQ rules, 16 partitions, checkpoints and alert recording. The
// events are stored first; the time is from the runtime's start until
// every partition applied the last batch.
//
//	go test ./internal/detect/runtime -run '^$' -bench Runtime -benchtime 200000x
func BenchmarkRuntime(b *testing.B) {
	const perBatch = 100
	rules := benchRules(b, 100)
	nodes := startNATS(b, 1)
	plane := openPlane(b, nodes[0], 1)
	evs := benchEvents(b.N, rand.New(rand.NewPCG(1, 2)))
	var last uint64
	ctx := context.Background()
	for i := 0; i < len(evs); i += perBatch {
		last = appendBatch(b, plane, "bench", uint64(i/perBatch+1), evs[i:min(i+perBatch, len(evs))])
	}

	var applied [DefaultPartitions]atomic.Uint64
	sink := newMemSink()
	kv := openKV(b, plane)
	rt, err := New(Config{
		Node: "bench", Stream: plane, KV: kv,
		Rules:  RulesFunc(func(context.Context) ([]*sigma.Rule, uint64, error) { return rules, 1, nil }),
		Alerts: sink, Logger: quietLogger(b),
		applied: func(p int, seq uint64) { applied[p].Store(seq) },
	})
	if err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { done <- rt.Run(rctx) }()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		all := true
		for i := range applied {
			if applied[i].Load() < last {
				all = false
				break
			}
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("not every partition applied the last batch")
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(len(rules)), "rules")
	b.ReportMetric(float64(len(sink.snapshot())), "alerts")
}
