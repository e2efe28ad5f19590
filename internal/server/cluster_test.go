package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/pkg/client"
)

// clusterNode is one in-process server in cluster mode.
type clusterNode struct {
	t           *testing.T
	id, dir     string
	clusterAddr string
	certTTL     time.Duration // server certificates' lifetime; 0: the default
	// natsAddr and natsRoutes: the embedded NATS server's route port and
	// the others' ("": no event cluster, the node's NATS runs alone).
	natsAddr   string
	natsRoutes []string
	srv        *server.Server
	log        *slog.Logger
	// witnessInterval is server.Config.WitnessInterval (0: the default).
	witnessInterval time.Duration
}

// failureLog returns a logger that keeps what the servers of t log and
// prints it only if t fails, so a failure in CI says what the cluster did.
// The lines are kept in memory (the last 4 MiB), not written to t
// directly: a server goroutine may log after t has completed.
func failureLog(t *testing.T) *slog.Logger {
	lw := &tailWriter{max: 4 << 20}
	t.Cleanup(func() {
		if t.Failed() {
			lw.mu.Lock()
			t.Logf("server logs:\n%s", lw.buf)
			lw.mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tailWriter struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	return len(p), nil
}

func (n *clusterNode) start() {
	n.t.Helper()
	if n.log == nil {
		n.log = failureLog(n.t).With("node", n.id)
	}
	srv, err := server.New(server.Config{DataDir: n.dir, Listen: "127.0.0.1:0", RateLimit: -1, Logger: n.log,
		NodeID: n.id, ClusterListen: n.clusterAddr, ElectionTimeout: 300 * time.Millisecond, ServerCertTTL: n.certTTL,
		EventsNATSClusterListen: n.natsAddr, EventsNATSRoutes: n.natsRoutes, WitnessInterval: n.witnessInterval})
	if err != nil {
		n.t.Fatalf("%s: %v", n.id, err)
	}
	if err := srv.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.srv = srv
	n.t.Cleanup(func() { n.stop() })
}

func (n *clusterNode) stop() {
	if n.srv != nil {
		n.srv.Close()
		n.srv = nil
	}
}

// client talks to this node with token, trusting the CA file the node
// names for clients (bootstrap CA plus, once known, the cluster's bundle).
func (n *clusterNode) client(token string) *client.Client {
	n.t.Helper()
	// The client's default timeout (60 s), as the CLI has it: a join waits
	// for the promotion to voter for up to api.JoinTimeout (55 s), which
	// under -race with every package's tests running takes more than 15 s.
	c, err := client.New(client.Config{Address: n.srv.Addr(), CACertFile: n.srv.CAFile(), Token: token, Timeout: 60 * time.Second})
	if err != nil {
		n.t.Fatal(err)
	}
	return c
}

func (n *clusterNode) unseal(ctx context.Context, keys []string) {
	n.t.Helper()
	c := n.client("")
	for _, k := range keys {
		st, err := c.Unseal(ctx, k)
		if err != nil {
			n.t.Fatalf("%s: unseal: %v", n.id, err)
		}
		if !st.Sealed {
			return
		}
	}
	n.t.Fatalf("%s: still sealed", n.id)
}

// waitRole polls the node's health until its role is one of roles.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling the cluster state, bounded by the deadline
	}
}

// TestThreeNodeCluster runs the scenario on real servers: init one
// node, join two over the API, write through a follower and read on the
// other, kill the leader, keep writing, restart it, unseal it and see it
// catch up; then save a snapshot and restore it.
func TestThreeNodeCluster(t *testing.T) {
	ctx := context.Background()
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		nodes[i] = &clusterNode{t: t, id: fmt.Sprint("n", i+1), dir: t.TempDir(), clusterAddr: freeAddr(t)}
		nodes[i].start()
	}
	init, err := nodes[0].client("").Init(ctx, client.InitRequest{KeyShares: 3, KeyThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	keys, root := init.UnsealKeys, init.RootToken
	nodes[0].unseal(ctx, keys[:2])
	// n1 now serves its cluster certificate; its CA file trusts it.
	bundle, err := os.ReadFile(filepath.Join(nodes[0].dir, "cluster", "ca.pem"))
	if err != nil {
		t.Fatalf("cluster bundle: %v", err)
	}
	leaderCA := filepath.Join(t.TempDir(), "leader-ca.pem")
	os.WriteFile(leaderCA, bundle, 0o644)

	// A join without a token, or with a token the cluster refuses, fails
	// and leaves the node free to join.
	if err := nodes[1].client("").RaftJoin(ctx, nodes[0].srv.Addr(), bundle); !client.IsStatus(err, 401) {
		t.Fatalf("join without a token: %v", err)
	}
	if err := nodes[1].client("wdn_"+string(bytes.Repeat([]byte("A"), 43))).RaftJoin(ctx, nodes[0].srv.Addr(), bundle); !client.IsStatus(err, 401) {
		t.Fatalf("join with a bad token: %v", err)
	}
	for _, n := range nodes[1:] {
		if err := n.client(root).RaftJoin(ctx, nodes[0].srv.Addr(), bundle); err != nil {
			t.Fatalf("%s: join: %v", n.id, err)
		}
		n.unseal(ctx, keys[1:])
	}
	peers, err := nodes[2].client(root).RaftPeers(ctx)
	if err != nil || len(peers) != 3 {
		t.Fatalf("peers: %+v %v", peers, err)
	}
	for _, p := range peers {
		if !p.Voter {
			t.Fatalf("%s is not a voter: %+v", p.ID, peers)
		}
	}
	if !peers[0].Leader || peers[0].ID != "n1" {
		t.Fatalf("leader: %+v", peers)
	}

	// Health and metrics: the leader reports each follower's replication
	// lag (asked of the follower at scrape time), every node its indexes.
	if h, err := nodes[1].client("").Health(ctx); err != nil || h.Role != "follower" {
		t.Fatalf("follower health: %+v %v", h, err)
	}
	metrics := func(n *clusterNode) string {
		roots := x509.NewCertPool()
		ca, _ := os.ReadFile(n.srv.CAFile())
		roots.AppendCertsFromPEM(ca)
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
		mreq, _ := http.NewRequest("GET", n.srv.Addr()+"/metrics", nil)
		mreq.Header.Set("Authorization", "Bearer "+root) // metrics.read; the root token may do anything
		res, err := hc.Do(mreq)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	m := metrics(nodes[0])
	for _, want := range []string{`warden_raft_replication_lag_entries{peer="n2"}`, `warden_raft_replication_lag_entries{peer="n3"}`,
		"warden_raft_is_leader 1", "warden_raft_elections_total", "warden_raft_leader_changes_total", "warden_raft_apply_duration_seconds_count"} {
		if !strings.Contains(m, want) {
			t.Fatalf("leader metrics lack %s", want)
		}
	}
	if strings.Contains(m, `warden_raft_replication_lag_entries{peer="n2"} -1`) {
		t.Fatal("the leader could not reach n2 for its lag")
	}
	if !strings.Contains(metrics(nodes[2]), "warden_raft_is_leader 0") {
		t.Fatal("follower metrics")
	}

	// The cluster port accepts only server certificates of this cluster: a
	// node's SVID from the same CA is refused during the handshake.
	svid := enrollSVID(ctx, t, nodes[0].client(root), nodes[1].client(""), "web-1")
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	for _, proto := range []string{"warden-raft", "warden-rpc"} {
		conn, err := tls.Dial("tcp", nodes[0].clusterAddr, &tls.Config{Certificates: []tls.Certificate{svid}, RootCAs: roots,
			NextProtos: []string{proto}, MinVersion: tls.VersionTLS12})
		if err == nil {
			// TLS 1.3 reports a refused client certificate on the first read.
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "tls") {
			t.Fatalf("a node certificate was accepted on the cluster port (%s): %v", proto, err)
		}
	}

	// A token created through one node works at once on the others.
	for i := range 10 {
		tok, err := nodes[i%3].client(root).TokenCreate(ctx, client.TokenCreateRequest{User: fmt.Sprint("u", i)})
		if err != nil {
			t.Fatal(err)
		}
		// Every user may look up their own token (builtin/user-self); an
		// unknown token gets 401.
		if self, err := nodes[(i+1)%3].client(tok.Token).TokenLookupSelf(ctx); err != nil || self.User != fmt.Sprint("u", i) {
			t.Fatalf("new token on another node: %+v, %v", self, err)
		}
	}

	// A write through a follower is readable on the other follower.
	if _, err := nodes[1].client(root).KVPut(ctx, "app/db", map[string]any{"password": "s1"}, nil); err != nil {
		t.Fatalf("write through follower n2: %v", err)
	}
	sec, err := nodes[2].client(root).KVGet(ctx, "app/db", 0)
	if err != nil || sec.Data["password"] != "s1" {
		t.Fatalf("read on follower n3: %+v %v", sec, err)
	}
	// Acknowledged writes, spread over the nodes.
	acked := map[string]string{}
	for i := range 30 {
		p, v := fmt.Sprint("acked/", i), fmt.Sprint("v", i)
		if _, err := nodes[i%3].client(root).KVPut(ctx, p, map[string]any{"v": v}, nil); err != nil {
			t.Fatal(err)
		}
		acked[p] = v
	}

	// Double spending through every node at once: clients spend 7 from one
	// balance with check-and-set retries; the balance ends at the start
	// minus the successful spends, never below zero.
	if _, err := nodes[0].client(root).KVPut(ctx, "bank/acct", map[string]any{"balance": 100}, nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	spent := 0
	var wg sync.WaitGroup
	for w := range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := nodes[w%3].client(root)
			for {
				s, err := c.KVGet(ctx, "bank/acct", 0)
				if err != nil {
					t.Error(err)
					return
				}
				bal, _ := strconv.Atoi(fmt.Sprint(s.Data["balance"]))
				if bal < 7 {
					return
				}
				v := s.Version
				_, err = c.KVPut(ctx, "bank/acct", map[string]any{"balance": bal - 7}, &v)
				if client.IsStatus(err, 409) {
					continue // someone else spent first: read again
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				spent++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	s, err := nodes[2].client(root).KVGet(ctx, "bank/acct", 0)
	if err != nil {
		t.Fatal(err)
	}
	if bal, _ := strconv.Atoi(fmt.Sprint(s.Data["balance"])); bal != 100-7*spent || bal < 0 || spent != 14 {
		t.Fatalf("balance %d after %d spends of 7 from 100", bal, spent)
	}

	// Kill the leader: one of the others takes over and accepts writes.
	nodes[0].stop()
	var next *clusterNode
	waitFor(t, "a new leader", func() bool {
		for _, n := range nodes[1:] {
			if n.srv.Store().IsLeader() {
				next = n
				return true
			}
		}
		return false
	})
	if _, err := nodes[1].client(root).KVPut(ctx, "after/failover", map[string]any{"v": "x"}, nil); err != nil {
		t.Fatalf("write after failover: %v", err)
	}
	acked["after/failover"] = "x"
	_ = next

	// The killed node restarts, is sealed, unseals with the same keys and
	// catches up.
	nodes[0].start()
	nodes[0].unseal(ctx, keys[:2])
	for p, v := range acked {
		s, err := nodes[0].client(root).KVGet(ctx, p, 0)
		if err != nil || s.Data["v"] != v {
			t.Fatalf("restarted n1: %s = %+v, %v", p, s.Data, err)
		}
	}
	// A stale read answers from local state.
	hc := nodes[0].client(root)
	if _, err := hc.Health(ctx); err != nil {
		t.Fatal(err)
	}

	// Snapshot: save, change, restore on the leader, every node rolls back.
	var snap bytes.Buffer
	if _, err := nodes[2].client(root).RaftSnapshotSave(ctx, &snap); err != nil {
		t.Fatalf("snapshot save: %v", err)
	}
	if _, err := nodes[1].client(root).KVPut(ctx, "app/db", map[string]any{"password": "changed"}, nil); err != nil {
		t.Fatal(err)
	}
	var lead *clusterNode
	waitFor(t, "a leader", func() bool {
		for _, n := range nodes {
			if n.srv.Store().IsLeader() {
				lead = n
				return true
			}
		}
		return false
	})
	for _, n := range nodes {
		if n != lead {
			if _, err := n.client(root).RaftSnapshotRestore(ctx, bytes.NewReader(snap.Bytes())); !client.IsStatus(err, 400) {
				t.Fatalf("restore on a follower: %v", err)
			}
			break
		}
	}
	// Garbage, an altered snapshot and a truncated one are refused before
	// anything opens them, and change nothing.
	altered := bytes.Clone(snap.Bytes())
	altered[len(altered)-100] ^= 1
	for name, b := range map[string][]byte{"garbage": []byte("not a snapshot"), "altered": altered,
		"truncated": snap.Bytes()[:snap.Len()/2]} {
		if _, err := lead.client(root).RaftSnapshotRestore(ctx, bytes.NewReader(b)); !client.IsStatus(err, 400) {
			t.Fatalf("restore of a %s snapshot: %v", name, err)
		}
	}
	if s, err := lead.client(root).KVGet(ctx, "app/db", 0); err != nil || s.Data["password"] != "changed" {
		t.Fatalf("a refused restore changed state: %+v %v", s.Data, err)
	}
	// A restore the leader refuses for want of quorum (an election after
	// the restarts above, on a loaded machine) did nothing: ask the leader
	// of the moment again.
	waitFor(t, "the restore", func() bool {
		_, err := lead.client(root).RaftSnapshotRestore(ctx, bytes.NewReader(snap.Bytes()))
		if client.IsStatus(err, 503) {
			for _, n := range nodes {
				if n.srv.Store().IsLeader() {
					lead = n
				}
			}
			return false
		}
		if err != nil {
			t.Fatalf("restore: %v", err)
		}
		return true
	})
	for _, n := range nodes {
		s, err := n.client(root).KVGet(ctx, "app/db", 0)
		if err != nil || s.Data["password"] != "s1" {
			t.Fatalf("%s after restore: %+v %v", n.id, s.Data, err)
		}
	}
	// The restore is in the (restored) audit log.
	ents, err := lead.client(root).AuditEntries(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range ents {
		found = found || bytes.Contains([]byte(fmt.Sprint(e)), []byte("raft.snapshot.restore"))
	}
	if !found {
		t.Fatal("the restore is not in the audit log")
	}

	// remove-peer takes a member out of the configuration.
	if err := lead.client(root).RaftRemovePeer(ctx, "n9"); !client.IsStatus(err, 404) {
		t.Fatalf("remove unknown peer: %v", err)
	}
	var gone *clusterNode
	for _, n := range nodes {
		if n != lead {
			gone = n
			break
		}
	}
	if err := lead.client(root).RaftRemovePeer(ctx, gone.id); err != nil {
		t.Fatalf("remove %s: %v", gone.id, err)
	}
	peers, err = lead.client(root).RaftPeers(ctx)
	if err != nil || len(peers) != 2 {
		t.Fatalf("peers after remove: %+v %v", peers, err)
	}
}

// TestRetryJoin: a node started with --retry-join keeps asking until the
// cluster admits it (here: refused until a policy allows its token
// raft.join), then unseals with the cluster's keys.
func TestRetryJoin(t *testing.T) {
	ctx := context.Background()
	n1 := &clusterNode{t: t, id: "n1", dir: t.TempDir(), clusterAddr: freeAddr(t)}
	n1.start()
	init, err := n1.client("").Init(ctx, client.InitRequest{KeyShares: 1, KeyThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	n1.unseal(ctx, init.UnsealKeys)
	root := n1.client(init.RootToken)
	tok, err := root.TokenCreate(ctx, client.TokenCreateRequest{User: "joiner", TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := os.ReadFile(filepath.Join(n1.dir, "cluster", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}

	n2 := &clusterNode{t: t, id: "n2", dir: t.TempDir(), clusterAddr: freeAddr(t)}
	srv, err := server.New(server.Config{DataDir: n2.dir, Listen: "127.0.0.1:0", RateLimit: -1, NodeID: n2.id,
		ClusterListen: n2.clusterAddr, ElectionTimeout: 300 * time.Millisecond,
		RetryJoin: []string{n1.srv.Addr()}, RetryJoinToken: tok.Token, RetryJoinCA: bundle})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	n2.srv = srv
	t.Cleanup(func() { n2.stop() })

	// Refused (403, in the audit log) until a policy lets the token join.
	waitFor(t, "a refused join in the audit log", func() bool {
		ents, err := root.AuditEntries(ctx, 0, 1000)
		if err != nil {
			return false
		}
		for _, e := range ents {
			if e.Entry["action"] == "raft.join" && fmt.Sprint(e.Entry["outcome"]) == "403" {
				return true
			}
		}
		return false
	})
	if ps, _ := root.RaftPeers(ctx); len(ps) != 1 {
		t.Fatalf("a refused node was added: %+v", ps)
	}
	if _, err := root.PolicyWrite(ctx, "warden", "joiner",
		`permit (principal == User::"joiner", action == Action::"raft.join", resource);`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n2 to join as a voter", func() bool {
		ps, err := root.RaftPeers(ctx)
		if err != nil {
			return false
		}
		for _, p := range ps {
			if p.ID == "n2" && p.Voter {
				return true
			}
		}
		return false
	})
	n2.unseal(ctx, init.UnsealKeys)
	if _, err := root.KVPut(ctx, "app/x", map[string]any{"v": "1"}, nil); err != nil {
		t.Fatal(err)
	}
	if s, err := n2.client(init.RootToken).KVGet(ctx, "app/x", 0); err != nil || s.Data["v"] != "1" {
		t.Fatalf("read on the joined node: %+v %v", s.Data, err)
	}
}
