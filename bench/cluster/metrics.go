package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// raftCounters are a node's Raft metrics (see docs/operations.md).
type raftCounters struct {
	term, elections, leaderChanges float64
	cpu, commit                    float64 // process CPU seconds, commit index
}

// counters reads the node's Raft metrics from /metrics (the harness starts
// every node with --metrics-public).
func (n *node) counters(ctx context.Context) (raftCounters, error) {
	pem, err := os.ReadFile(filepath.Join(n.dir, "tls", "api-ca.pem"))
	if err != nil {
		return raftCounters{}, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, "GET", "https://"+n.api+"/metrics", nil)
	if err != nil {
		return raftCounters{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return raftCounters{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return raftCounters{}, fmt.Errorf("%s: /metrics: %s", n.id, resp.Status)
	}
	var c raftCounters
	found := 0 // warden_raft_term is newer than the others: a binary may lack it
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "warden_raft_term":
			dst = &c.term
		case "warden_raft_elections_total":
			dst = &c.elections
		case "warden_raft_leader_changes_total":
			dst = &c.leaderChanges
		case "process_cpu_seconds_total":
			dst = &c.cpu
		case "warden_raft_commit_index":
			dst = &c.commit
		default:
			continue
		}
		if *dst, err = strconv.ParseFloat(val, 64); err != nil {
			return raftCounters{}, fmt.Errorf("%s: %s: %w", n.id, name, err)
		}
		if dst == &c.elections || dst == &c.leaderChanges {
			found++
		}
	}
	if found != 2 {
		return raftCounters{}, fmt.Errorf("%s: /metrics lacks the Raft metrics", n.id)
	}
	return c, sc.Err()
}

// maxTerm is the highest Raft term the nodes report (0 if none does).
func maxTerm(ctx context.Context, nodes []*node) float64 {
	var t float64
	for _, n := range nodes {
		if c, err := n.counters(ctx); err == nil {
			t = max(t, c.term)
		}
	}
	return t
}
