// Command decisionload measures how fast a decision reaches the services
// and agents that follow the decision stream (GET /v1/decisions/stream),
// and what a subscribed stream costs the server.
//
// Every follower is a client.Follower, as an agent or pkg/middleware runs
// it, with its own mutual-TLS connection: -nodes nodes are enrolled over
// the API (a join token, a fresh P-256 key, a certificate) and the
// followers share their identities round-robin, each on its own
// connection. Once every follower has synced, -decisions bans (addresses
// of 198.18.0.0/15, the benchmarking range, for 10 minutes) are added one
// at a time with POST /v1/decisions; for each the time runs from the
// POST's acknowledgement (its 200) to the moment the follower's OnChange
// sees the ban, and the next decision waits until every follower has it.
// The ban is deleted at the end.
//
// It prints, over the decisions, the percentiles of "applied on all" (the
// last follower) and of every single delivery, both from the
// acknowledgement and from the POST's send. With -streams it reports the
// server's resident memory and Go heap (from GET /metrics) before the
// streams are opened and once they are all synced, per stream.
//
// It only talks to a loopback server and stops by itself (-timeout per
// decision, -deadline overall). Opening 10,000 streams needs as many file
// descriptors in this process and in the server's: `ulimit -n 20000` in
// both shells (Go raises the soft limit to the hard one by itself).
//
// Usage (a server, e.g. `warden server --dev`, and its root token):
//
//	WARDEN_ADDR=https://127.0.0.1:8200 WARDEN_CACERT=... WARDEN_TOKEN=<root> \
//	  go run ./bench/decisionload -followers 100 -decisions 100
//	  go run ./bench/decisionload -followers 10000 -nodes 100 -decisions 20
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warden-sec/warden/bench/internal/loadnode"
	"github.com/warden-sec/warden/pkg/client"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "decisionload:", err)
		os.Exit(1)
	}
}

func run() error {
	followers := flag.Int("followers", 100, "followers, each with its own mutual-TLS connection (at most 20,000)")
	nodes := flag.Int("nodes", 0, "enrolled node identities the followers share (default: one per follower, at most 1,000)")
	decisions := flag.Int("decisions", 100, "decisions added one at a time (at most 10,000)")
	open := flag.Int("open", 200, "streams opened at once")
	timeout := flag.Duration("timeout", 30*time.Second, "give up on one decision after this")
	deadline := flag.Duration("deadline", 10*time.Minute, "stop after this in any case")
	addr := flag.String("addr", os.Getenv("WARDEN_ADDR"), "server API address (loopback only); default $WARDEN_ADDR")
	caFile := flag.String("cacert", os.Getenv("WARDEN_CACERT"), "server TLS CA (PEM); default $WARDEN_CACERT")
	prefix := flag.String("prefix", fmt.Sprintf("decisionload-%d", time.Now().UnixNano()), "node name prefix")
	flag.Parse()
	token := os.Getenv("WARDEN_TOKEN")
	if *nodes == 0 {
		*nodes = min(*followers, 1000)
	}
	switch {
	case *followers < 1 || *followers > 20000:
		return errors.New("-followers must be 1..20000")
	case *nodes < 1 || *nodes > 1000 || *nodes > *followers:
		return errors.New("-nodes must be 1..1000 and at most -followers")
	case *decisions < 1 || *decisions > 10000:
		return errors.New("-decisions must be 1..10000")
	case *open < 1:
		return errors.New("-open must be positive")
	case token == "":
		return errors.New("WARDEN_TOKEN (allowed node.create, decisions.write, metrics.read) is not set")
	}
	target, err := loadnode.NewTarget(*addr, *caFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *deadline)
	defer cancel()

	// Setup, not timed: the identities.
	ids := make([]*loadnode.Node, *nodes)
	for i := range ids {
		if ids[i], err = target.Enroll(token, fmt.Sprintf("%s-%d", *prefix, i)); err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
	}
	memBefore, err := serverMemory(ctx, target, token)
	if err != nil {
		return fmt.Errorf("GET /metrics: %w", err)
	}

	// The followers, opened -open at a time, each waited for until synced.
	w := &watch{}
	fs := make([]*client.Follower, *followers)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var running sync.WaitGroup
	defer running.Wait()
	defer stop()
	openStart := time.Now()
	sem := make(chan struct{}, *open)
	errc := make(chan error, 1)
	for i := range fs {
		tr := ids[i%len(ids)].Client.Transport.(*http.Transport).Clone() // a connection of its own
		tr.MaxIdleConnsPerHost = 1
		c, err := client.New(client.Config{Address: target.Addr, HTTPClient: &http.Client{Transport: tr}})
		if err != nil {
			return err
		}
		f, err := client.NewFollower(client.FollowerConfig{Clients: []*client.Client{c}, OnChange: func(st *client.DecisionState) { w.changed(i, st) },
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		fs[i] = f
		running.Add(1)
		go func() { defer running.Done(); f.Run(runCtx) }() //nolint:errcheck // ends with runCtx
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			select {
			case <-f.Synced():
			case <-ctx.Done():
				select {
				case errc <- fmt.Errorf("follower %d did not sync: %w", i, ctx.Err()):
				default:
				}
			}
		}()
	}
	for range *open {
		sem <- struct{}{}
	}
	select {
	case err := <-errc:
		return err
	default:
	}
	openTime := time.Since(openStart)
	memAfter, err := serverMemory(ctx, target, token)
	if err != nil {
		return fmt.Errorf("GET /metrics: %w", err)
	}
	fmt.Printf("followers: %d synced (%d identities) in %v\n", *followers, *nodes, openTime.Round(time.Millisecond))
	fmt.Printf("server memory: RSS %s -> %s (%s per stream), Go heap in use %s -> %s (%s per stream)\n",
		mib(memBefore.rss), mib(memAfter.rss), kib((memAfter.rss-memBefore.rss)/float64(*followers)),
		mib(memBefore.heap), mib(memAfter.heap), kib((memAfter.heap-memBefore.heap)/float64(*followers)))

	// Timed: one decision at a time.
	var allAck, allSend, oneAck []time.Duration
	var made []string
	defer func() {
		for _, id := range made {
			_ = del(target, token, id)
		}
	}()
	for i := range *decisions {
		ip := fmt.Sprintf("198.18.%d.%d", (i/250)%256, i%250+1)
		r := w.start(ip, *followers)
		sent := time.Now()
		var d client.DecisionRecord
		if err := target.Call(target.Addr+"/v1/decisions", token, map[string]any{"type": "ban", "target": map[string]string{"ip": ip},
			"duration": "10m", "reason": "decisionload"}, &d); err != nil {
			return fmt.Errorf("decision %d: %w", i, err)
		}
		acked := time.Now()
		made = append(made, d.ID)
		select {
		case <-r.done:
		case <-time.After(*timeout):
			return fmt.Errorf("decision %d (%s): %d of %d followers did not apply it within %v", i, ip, r.left.Load(), *followers, *timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
		last := time.Time{}
		for j := range r.seen {
			at := time.Unix(0, r.seen[j].Load())
			oneAck = append(oneAck, max(0, at.Sub(acked)))
			if at.After(last) {
				last = at
			}
		}
		allAck = append(allAck, max(0, last.Sub(acked)))
		allSend = append(allSend, last.Sub(sent))
	}
	fmt.Printf("decisions: %d, one at a time, to %d followers\n", *decisions, *followers)
	fmt.Printf("applied on all, from the POST's acknowledgement: %s\n", pct(allAck))
	fmt.Printf("applied on all, from the POST's send:            %s\n", pct(allSend))
	fmt.Printf("each delivery, from the acknowledgement:         %s\n", pct(oneAck))
	return nil
}

// watch tells which followers have applied the current round's ban.
type watch struct {
	cur atomic.Pointer[round]
}

type round struct {
	ip   string
	seen []atomic.Int64 // per follower: unix nanoseconds of the OnChange that had it; 0: not yet
	left atomic.Int64
	done chan struct{}
}

func (w *watch) start(ip string, n int) *round {
	r := &round{ip: ip, seen: make([]atomic.Int64, n), done: make(chan struct{})}
	r.left.Store(int64(n))
	w.cur.Store(r)
	return r
}

func (w *watch) changed(i int, st *client.DecisionState) {
	now := time.Now().UnixNano()
	r := w.cur.Load()
	if r == nil || r.seen[i].Load() != 0 {
		return
	}
	for _, d := range st.Decisions {
		if d.Target.IP == r.ip {
			if r.seen[i].CompareAndSwap(0, now) && r.left.Add(-1) == 0 {
				close(r.done)
			}
			return
		}
	}
}

type memory struct{ rss, heap float64 }

// serverMemory reads process_resident_memory_bytes and
// go_memstats_heap_inuse_bytes from the server's /metrics.
func serverMemory(ctx context.Context, t *loadnode.Target, token string) (memory, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", t.Addr+"/metrics", nil)
	if err != nil {
		return memory{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := t.Setup.Do(req)
	if err != nil {
		return memory{}, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return memory{}, fmt.Errorf("%s", res.Status)
	}
	var m memory
	sc := bufio.NewScanner(io.LimitReader(res.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "process_resident_memory_bytes":
			m.rss = v
		case "go_memstats_heap_inuse_bytes":
			m.heap = v
		}
	}
	return m, sc.Err()
}

// del deletes decision id (DELETE /v1/decisions/{id}).
func del(t *loadnode.Target, token, id string) error {
	req, err := http.NewRequest("DELETE", t.Addr+"/v1/decisions/"+id, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := t.Setup.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("DELETE %s: %s: %s", id, res.Status, bytes.TrimSpace(b))
	}
	return nil
}

func pct(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("p50 %v  p90 %v  p99 %v  max %v  (n=%d)", at(0.50).Round(10*time.Microsecond),
		at(0.90).Round(10*time.Microsecond), at(0.99).Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond), len(s))
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/(1<<10)) }
