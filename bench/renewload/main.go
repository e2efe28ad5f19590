// Command renewload is a closed-loop load generator for Warden's certificate
// issuance over the API: C enrolled nodes each renew their certificate again
// and again over mutual TLS (POST /v1/pki/renew, one kept-alive HTTP/1.1
// connection per node) for a fixed duration, as BenchmarkRenewTLS does in
// process. wrk cannot present client certificates, hence this tool.
//
// Setup (not timed): C join tokens (POST /v1/nodes/tokens, needs a token
// allowed node.create, e.g. the --dev root token), C P-256 keys, C
// enrollments (POST /v1/pki/enroll). Timed: renewals only; every renewal is
// a CSR parsed and checked, a certificate signed, and the node record, the
// certificate record and the audit record committed in one Raft command.
//
// It prints its result in wrk's format (Latency Distribution, Requests/sec,
// Non-2xx) so that bench/peers/run.sh reads both alike. It only talks to a
// loopback address and stops by itself after -d (at most 10 minutes).
//
// Usage:
//
//	WARDEN_ADDR=https://127.0.0.1:8200 WARDEN_CACERT=... WARDEN_TOKEN=<root> \
//	  go run ./bench/renewload -c 32 -d 20s
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/warden-sec/warden/bench/internal/loadnode"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "renewload:", err)
		os.Exit(1)
	}
}

func run() error {
	conns := flag.Int("c", 32, "concurrent nodes (one connection each)")
	dur := flag.Duration("d", 20*time.Second, "duration of the timed run (at most 10m)")
	addr := flag.String("addr", os.Getenv("WARDEN_ADDR"), "server API address (loopback only); default $WARDEN_ADDR")
	caFile := flag.String("cacert", os.Getenv("WARDEN_CACERT"), "server TLS CA (PEM); default $WARDEN_CACERT")
	prefix := flag.String("prefix", fmt.Sprintf("renewload-%d", time.Now().UnixNano()), "node name prefix")
	flag.Parse()
	token := os.Getenv("WARDEN_TOKEN")
	switch {
	case *conns < 1 || *conns > 1024:
		return errors.New("-c must be 1..1024")
	case *dur <= 0 || *dur > 10*time.Minute:
		return errors.New("-d must be in (0, 10m]")
	case token == "":
		return errors.New("WARDEN_TOKEN (allowed node.create) is not set")
	}
	target, err := loadnode.NewTarget(*addr, *caFile)
	if err != nil {
		return err
	}
	clients := make([]*http.Client, *conns)
	bodies := make([][]byte, *conns)
	for i := range clients {
		n, err := target.Enroll(token, fmt.Sprintf("%s-%d", *prefix, i))
		if err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		body, err := json.Marshal(map[string]string{"csr": n.CSR})
		if err != nil {
			return err
		}
		clients[i], bodies[i] = n.Client, body
	}

	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	type result struct {
		lat            []time.Duration
		non2xx, errors int
	}
	results := make([]result, *conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := &results[i]
			for ctx.Err() == nil {
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, "POST", *addr+"/v1/pki/renew", bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				res, err := clients[i].Do(req)
				if err != nil {
					if ctx.Err() == nil {
						r.errors++
					}
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				if res.StatusCode/100 != 2 {
					r.non2xx++
				}
				r.lat = append(r.lat, time.Since(t0))
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)

	var all []time.Duration
	non2xx, errs := 0, 0
	for _, r := range results {
		all = append(all, r.lat...)
		non2xx += r.non2xx
		errs += r.errors
	}
	if len(all) == 0 {
		return fmt.Errorf("no request completed (%d errors)", errs)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(p/100*float64(len(all))))] }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
	fmt.Printf("renewload: %d nodes renewing over mutual TLS for %s against %s\n", *conns, *dur, *addr)
	fmt.Printf("  Latency Distribution\n")
	for _, p := range []float64{50, 75, 90, 99} {
		fmt.Printf("  %4.0f%%  %s\n", p, ms(pct(p)))
	}
	fmt.Printf("  %d requests in %.2fs\n", len(all), elapsed.Seconds())
	if errs > 0 {
		fmt.Printf("  Socket errors: connect 0, read %d, write 0, timeout 0\n", errs)
	}
	if non2xx > 0 {
		fmt.Printf("  Non-2xx or 3xx responses: %d\n", non2xx)
	}
	fmt.Printf("Requests/sec: %.2f\n", float64(len(all))/elapsed.Seconds())
	return nil
}
