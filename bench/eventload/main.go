// Command eventload is a load generator for Warden's event plane: A
// simulated agents (each a node enrolled over the API, presenting its own
// certificate over mutual TLS) post batches of normalized events to
// POST /v1/events as fast as the server takes them, for a fixed duration.
//
// The events are what the agent's parsers make of an sshd auth log and an
// nginx access log: failed and accepted SSH logins from a few thousand
// addresses (some of them brute-forcing), web requests with 2xx, 3xx and 4xx
// answers, and now and then a scanner or an SQL injection. Batches are
// compressed before the timed run, so the client spends its CPU on TLS and
// HTTP, as a real agent's would be spread over the fleet.
//
// It prints events/s accepted, batches/s, batch latency percentiles, and the
// 429s (the server's backpressure). It only talks to a loopback address and
// stops by itself after -d (at most 10 minutes).
//
// Usage:
//
//	WARDEN_ADDR=https://127.0.0.1:8200 WARDEN_CACERT=... WARDEN_TOKEN=<root> \
//	  go run ./bench/eventload -agents 16 -batch 500 -d 20s [-rate 20000]
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/warden-sec/warden/bench/internal/loadnode"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "eventload:", err)
		os.Exit(1)
	}
}

func run() error {
	agents := flag.Int("agents", 16, "simulated agents (one enrolled node and one connection each)")
	batch := flag.Int("batch", 500, "events per batch")
	dur := flag.Duration("d", 20*time.Second, "duration of the timed run (at most 10m)")
	addr := flag.String("addr", os.Getenv("WARDEN_ADDR"), "server API address (loopback only); default $WARDEN_ADDR")
	caFile := flag.String("cacert", os.Getenv("WARDEN_CACERT"), "server TLS CA (PEM); default $WARDEN_CACERT")
	rate := flag.Int("rate", 0, "events per second, all agents together (0: as fast as the server takes them)")
	prefix := flag.String("prefix", fmt.Sprintf("eventload-%d", time.Now().UnixNano()), "node name prefix")
	flag.Parse()
	token := os.Getenv("WARDEN_TOKEN")
	switch {
	case *agents < 1 || *agents > 1024:
		return errors.New("-agents must be 1..1024")
	case *batch < 1 || *batch > 5000:
		return errors.New("-batch must be 1..5000")
	case *dur <= 0 || *dur > 10*time.Minute:
		return errors.New("-d must be in (0, 10m]")
	case *rate < 0:
		return errors.New("-rate must be 0 or more")
	case token == "":
		return errors.New("WARDEN_TOKEN (allowed node.create) is not set")
	}
	target, err := loadnode.NewTarget(*addr, *caFile)
	if err != nil {
		return err
	}
	nodes := make([]*loadnode.Node, *agents)
	for i := range nodes {
		if nodes[i], err = target.Enroll(token, fmt.Sprintf("%s-%d", *prefix, i)); err != nil {
			return fmt.Errorf("agent %d: %w", i, err)
		}
	}
	// A pool of compressed batches, made before the timed run.
	rng := mrand.New(mrand.NewPCG(1, 2))
	pool := make([][]byte, 64)
	for i := range pool {
		if pool[i], err = makeBatch(rng, *batch); err != nil {
			return err
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	type result struct {
		lat                     []time.Duration
		events, limited, non2xx int
		errors                  int
		lastErr                 string
	}
	results := make([]result, *agents)
	var wg sync.WaitGroup
	start := time.Now()
	for i, n := range nodes {
		wg.Add(1)
		go func(i int, n *loadnode.Node) {
			defer wg.Done()
			r := &results[i]
			epoch := randomEpoch()
			// At -rate, each agent sends a batch every agents×batch/rate
			// seconds (open loop: a slow answer does not lower the rate
			// asked for, it shows as latency).
			var tick <-chan time.Time
			if *rate > 0 {
				t := time.NewTicker(time.Duration(float64(time.Second) * float64(*agents**batch) / float64(*rate)))
				defer t.Stop()
				tick = t.C
			}
			for seq := uint64(1); ctx.Err() == nil; {
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						continue
					}
				}
				body := pool[(i+int(seq))%len(pool)]
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, "POST", target.Addr+"/v1/events", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/x-ndjson")
				req.Header.Set("Content-Encoding", "gzip")
				req.Header.Set("Warden-Batch-Epoch", epoch)
				req.Header.Set("Warden-Batch-Seq", strconv.FormatUint(seq, 10))
				res, err := n.Client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						r.errors++
						r.lastErr = err.Error()
					}
					continue
				}
				msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
				_ = res.Body.Close()
				switch {
				case res.StatusCode == http.StatusOK:
					r.events += *batch
					r.lat = append(r.lat, time.Since(t0))
					seq++
				case res.StatusCode == http.StatusTooManyRequests:
					r.limited++
					wait, _ := strconv.Atoi(res.Header.Get("Retry-After"))
					select {
					case <-ctx.Done():
					case <-time.After(time.Duration(max(wait, 0))*time.Second + 50*time.Millisecond):
					}
				default:
					r.non2xx++
					r.lastErr = fmt.Sprintf("%s: %s", res.Status, bytes.TrimSpace(msg))
				}
			}
		}(i, n)
	}
	wg.Wait()
	elapsed := time.Since(start)

	var all []time.Duration
	var events, limited, non2xx, errs int
	var lastErr string
	for _, r := range results {
		all = append(all, r.lat...)
		events += r.events
		limited += r.limited
		non2xx += r.non2xx
		errs += r.errors
		if r.lastErr != "" {
			lastErr = r.lastErr
		}
	}
	if len(all) == 0 {
		return fmt.Errorf("no batch was accepted (%d errors, %d non-2xx; last: %s)", errs, non2xx, lastErr)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(p/100*float64(len(all))))] }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
	fmt.Printf("eventload: %d agents, %d events a batch, for %s against %s\n", *agents, *batch, *dur, target.Addr)
	fmt.Printf("  batch latency  p50 %s  p90 %s  p99 %s\n", ms(pct(50)), ms(pct(90)), ms(pct(99)))
	fmt.Printf("  %d batches, %d events in %.2fs; 429: %d, other non-2xx: %d, errors: %d\n", len(all), events, elapsed.Seconds(), limited, non2xx, errs)
	if lastErr != "" {
		fmt.Printf("  last error: %s\n", lastErr)
	}
	fmt.Printf("Events/sec: %.0f\n", float64(events)/elapsed.Seconds())
	return nil
}

func randomEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// makeBatch returns n events as gzip-compressed JSON lines.
func makeBatch(rng *mrand.Rand, n int) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	enc := json.NewEncoder(zw)
	now := time.Now().UTC()
	for i := 0; i < n; i++ {
		ts := now.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)
		if err := enc.Encode(makeEvent(rng, ts)); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var (
	users = []string{"root", "admin", "ubuntu", "deploy", "git", "postgres", "oracle", "test", "alice", "bob"}
	paths = []string{"/", "/index.html", "/api/v1/items", "/login", "/static/app.js", "/favicon.ico", "/api/v1/users/42"}
	bad   = []string{"/wp-login.php", "/.env", "/admin/config.php", "/../../etc/passwd", "/item?id=1%27%20OR%201=1--", "/phpmyadmin/"}
	uas   = []string{"Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", "curl/8.5.0", "Go-http-client/2.0", "sqlmap/1.8"}
)

func addr(rng *mrand.Rand) string {
	return fmt.Sprintf("198.51.%d.%d", rng.IntN(8), 1+rng.IntN(254))
}

// makeEvent returns one event as the agent's sshd or nginx parser makes it.
func makeEvent(rng *mrand.Rand, ts string) map[string]any {
	if rng.IntN(10) < 4 {
		ip, user := addr(rng), users[rng.IntN(len(users))]
		outcome, verb := "failure", "Failed"
		if rng.IntN(10) == 0 {
			outcome, verb = "success", "Accepted"
		}
		port := 30000 + rng.IntN(30000)
		return map[string]any{
			"@timestamp": ts, "event.module": "sshd", "event.dataset": "sshd",
			"event.category": "authentication", "event.action": "ssh_login", "event.outcome": outcome,
			"source.ip": ip, "source.port": port, "user.name": user, "log.file.path": "/var/log/auth.log",
			"message": fmt.Sprintf("Dec  2 10:00:00 web-1 sshd[%d]: %s password for %s from %s port %d ssh2", 1000+rng.IntN(9000), verb, user, ip, port),
		}
	}
	ip, path, status := addr(rng), paths[rng.IntN(len(paths))], 200
	switch rng.IntN(20) {
	case 0, 1:
		path, status = bad[rng.IntN(len(bad))], 404
	case 2:
		status = 304
	case 3:
		status = 403
	}
	ua := uas[rng.IntN(len(uas))]
	return map[string]any{
		"@timestamp": ts, "event.module": "nginx", "event.dataset": "nginx.access", "event.category": "web",
		"source.ip": ip, "http.request.method": "GET", "url.original": path, "http.response.status_code": status,
		"http.response.body.bytes": 512 + rng.IntN(4096), "user_agent.original": ua, "log.file.path": "/var/log/nginx/access.log",
		"message": fmt.Sprintf(`%s - - [02/Dec/2026:10:00:00 +0000] "GET %s HTTP/1.1" %d 1234 "-" "%s"`, ip, path, status, ua),
	}
}
