package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// fullLoad runs wrk with bench/kv-put.lua (32 connections, as in
// docs/BENCHMARKS.md) against the leader for d, kills nothing, and reports
// the elections and leader changes every node counted meanwhile, and the
// leader it polled once a second.
func fullLoad(ctx context.Context, bin string, nodes []*node, root string, d time.Duration) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("-load needs wrk in PATH")
	}
	lead, err := findLeader(ctx, nodes)
	if err != nil {
		return err
	}
	l := nodes[lead]
	env := append(os.Environ(), "WARDEN_ADDR=https://"+l.api,
		"WARDEN_CACERT="+filepath.Join(l.dir, "tls", "api-ca.pem"), "WARDEN_TOKEN="+root)
	pol := exec.CommandContext(ctx, bin, "policy", "write", "bench", "-")
	pol.Env, pol.Stdin, pol.Stderr = env, strings.NewReader(
		`permit (principal in Group::"bench", action in [Action::"kv.read", Action::"kv.write", Action::"authz.check"], resource);`+"\n"), os.Stderr
	if err := pol.Run(); err != nil {
		return fmt.Errorf("policy write: %w", err)
	}
	tc := exec.CommandContext(ctx, bin, "token", "create", "--user", "bench", "--group", "bench", "--ttl", "24h", "--format", "json")
	tc.Env, tc.Stderr = env, os.Stderr
	out, err := tc.Output()
	if err != nil {
		return fmt.Errorf("token create: %w", err)
	}
	var tok struct{ Token string }
	if err := json.Unmarshal(out, &tok); err != nil || tok.Token == "" {
		return fmt.Errorf("token create: no token in %q", out)
	}

	before := make([]raftCounters, len(nodes))
	for i, n := range nodes {
		if before[i], err = n.counters(ctx); err != nil {
			return err
		}
	}
	// The leader, polled once a second while wrk runs.
	pctx, stopPoll := context.WithCancel(ctx)
	polled := make(chan []string, 1)
	go func() {
		var seen []string
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-pctx.Done():
				polled <- seen
				return
			case <-tick.C:
			}
			for _, n := range nodes {
				hctx, cancel := context.WithTimeout(pctx, time.Second)
				h, err := n.client("").Health(hctx)
				cancel()
				if err == nil && h.Role == "leader" && (len(seen) == 0 || seen[len(seen)-1] != n.id) {
					seen = append(seen, n.id)
				}
			}
		}
	}()
	fmt.Fprintf(os.Stderr, "wrk -t2 -c32 -d%s --latency -s bench/kv-put.lua against %s (leader %s)\n", d, l.api, l.id)
	w := exec.CommandContext(ctx, "wrk", "-t2", "-c32", fmt.Sprintf("-d%ds", int(d.Seconds())), "--latency",
		"-s", "bench/kv-put.lua", "https://"+l.api)
	w.Env = append(os.Environ(), "WARDEN_TOKEN="+tok.Token)
	w.Stdout, w.Stderr = os.Stdout, os.Stderr
	werr := w.Run()
	stopPoll()
	leaders := <-polled
	if werr != nil {
		return fmt.Errorf("wrk: %w", werr)
	}
	var elections, changes, terms float64
	for i, n := range nodes {
		after, err := n.counters(ctx)
		if err != nil {
			return err
		}
		role := "follower"
		if i == lead {
			role = "leader"
		}
		fmt.Printf("%s (%s): term %v -> %v, elections started %v, leader changes seen %v; CPU %.1f s, %.0f µs per committed Raft entry (%v)\n",
			n.id, role, before[i].term, after.term, after.elections-before[i].elections, after.leaderChanges-before[i].leaderChanges,
			after.cpu-before[i].cpu, (after.cpu-before[i].cpu)/(after.commit-before[i].commit)*1e6, after.commit-before[i].commit)
		elections += after.elections - before[i].elections
		changes += after.leaderChanges - before[i].leaderChanges
		terms = max(terms, after.term-before[i].term)
	}
	fmt.Printf("full load for %s on %d nodes: %v elections started (all nodes), term raised by %v, %v leader changes seen (all nodes); leader polled each second: %s\n",
		d, len(nodes), elections, terms, changes, strings.Join(leaders, " -> "))
	return nil
}
