package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-sec/warden/pkg/client"
)

// svidClient is a client of n that presents svid over mutual TLS.
func svidClient(t *testing.T, n *clusterNode, svid tls.Certificate) *client.Client {
	t.Helper()
	ca, err := os.ReadFile(n.srv.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{svid},
		MinVersion: tls.VersionTLS12}}}
	c, err := client.New(client.Config{Address: n.srv.Addr(), HTTPClient: hc, Timeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// runFollower runs a follower of clients until the test ends.
func runFollower(t *testing.T, cfg client.FollowerConfig) *client.Follower {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = failureLog(t).With("follower", cfg.Clients[0].Address())
	}
	f, err := client.NewFollower(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

// activeIDs returns the ids of the decisions a follower holds as active,
// sorted.
func activeIDs(st *client.DecisionState, now time.Time) []string {
	var ids []string
	for _, d := range st.Active(now) {
		ids = append(ids, d.ID)
	}
	return ids
}

// serverActive returns the ids of GET /v1/decisions?active=true, sorted.
func serverActive(ctx context.Context, c *client.Client) ([]string, error) {
	ds, err := c.DecisionList(ctx, true)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(ds))
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	slices.Sort(ids)
	return ids, nil
}

func banInput(ip, duration string) client.DecisionInput {
	return client.DecisionInput{Type: "ban", Target: client.DecisionTarget{IP: ip}, Duration: duration, Reason: "test"}
}

// TestDecisionFollowerDevServer: a follower with a node's SVID against a
// real server sees a ban added, a ban deleted, and lets a ban lapse at its
// expiry by its own clock; a change made while it is cut off reaches it
// when it resumes.
func TestDecisionFollowerDevServer(t *testing.T) {
	ctx := context.Background()
	nodes := []*clusterNode{{t: t, id: "n1", dir: t.TempDir(), clusterAddr: freeAddr(t)}}
	nodes[0].start()
	_, root := initJoin(ctx, t, nodes)
	admin := nodes[0].client(root)
	svid := enrollSVID(ctx, t, admin, nodes[0].client(""), "web-1")
	changes := make(chan *client.DecisionState, 64)
	f := runFollower(t, client.FollowerConfig{Clients: []*client.Client{svidClient(t, nodes[0], svid)},
		OnChange: func(st *client.DecisionState) { changes <- st }})
	waitState := func(what string, cond func(*client.DecisionState) bool) *client.DecisionState {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			if st := f.State(); cond(st) {
				return st
			}
			select {
			case <-changes:
			case <-timeout:
				t.Fatalf("timed out waiting for the follower to see %s; it has %+v", what, f.State())
			}
		}
	}
	select {
	case <-f.Synced():
	case <-time.After(20 * time.Second):
		t.Fatal("no sync from the server")
	}

	a, err := admin.DecisionAdd(ctx, banInput("203.0.113.7", "1h"))
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("203.0.113.7")
	st := waitState("the ban", func(st *client.DecisionState) bool { _, ok := st.BannedIP(ip, "", time.Now()); return ok })
	if st.Revision < a.Revision {
		t.Fatalf("synced at %d, before the decision's revision %d", st.Revision, a.Revision)
	}
	exp, err := time.Parse(time.RFC3339, a.ExpiresAt)
	if err != nil {
		t.Fatal(err)
	}
	// Expiry needs no server: at expires_at the ban is no longer in force.
	if _, ok := st.BannedIP(ip, "", exp); ok {
		t.Fatal("the ban is in force at its expiry")
	}
	if _, ok := st.BannedIP(ip, "", exp.Add(-time.Second)); !ok {
		t.Fatal("the ban is not in force a second before its expiry")
	}
	// A short ban lapses by the follower's clock.
	short, err := admin.DecisionAdd(ctx, banInput("203.0.113.8", "1s"))
	if err != nil {
		t.Fatal(err)
	}
	waitState("the short ban", func(st *client.DecisionState) bool { _, ok := st.Decisions[short.ID]; return ok })
	sexp, _ := time.Parse(time.RFC3339, short.ExpiresAt)
	if _, ok := f.State().BannedIP(netip.MustParseAddr("203.0.113.8"), "", sexp); ok {
		t.Fatal("the short ban is in force at its expiry")
	}

	// Deleted: lifted.
	if err := admin.DecisionDelete(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	waitState("the deletion", func(st *client.DecisionState) bool { _, ok := st.Decisions[a.ID]; return !ok })

	// Zones and simulation are the enforcer's to apply; both are streamed.
	z := banInput("198.51.100.9", "1h")
	z.Zone, z.Simulated = "dmz", true
	zd, err := admin.DecisionAdd(ctx, z)
	if err != nil {
		t.Fatal(err)
	}
	st = waitState("the simulated ban", func(st *client.DecisionState) bool { _, ok := st.Decisions[zd.ID]; return ok })
	if d := st.Decisions[zd.ID]; !d.Simulated || d.Zone != "dmz" {
		t.Fatalf("streamed as %+v", d)
	}
	if _, ok := st.BannedIP(netip.MustParseAddr("198.51.100.9"), "dmz", time.Now()); ok {
		t.Fatal("a simulated ban is enforced")
	}

	// The active set matches the server's.
	want, err := serverActive(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	waitState("the server's active set", func(st *client.DecisionState) bool {
		return slices.Equal(activeIDs(st, time.Now()), want)
	})
}

// TestDecisionStreamFailover is the issue's "server failover during a
// stream": three servers, ten followers each with its own node identity
// and mutual-TLS connection, all streaming from the leader; while bans
// are added and deleted through the cluster, the leader is stopped. Every
// follower resumes on another server and ends with exactly the active set
// of GET /v1/decisions?active=true.
func TestDecisionStreamFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("three servers")
	}
	ctx := context.Background()
	nodes, root, _ := startCluster(t, 0)
	var leader int
	waitFor(t, "a leader", func() bool {
		for i, n := range nodes {
			if n.srv.Store().IsLeader() {
				leader = i
				return true
			}
		}
		return false
	})
	admins := make([]*client.Client, 3)
	for i, n := range nodes {
		admins[i] = n.client(root)
	}
	// A few decisions before the followers start: they come in the reset.
	for i := range 5 {
		if _, err := admins[i%3].DecisionAdd(ctx, banInput(fmt.Sprintf("192.0.2.%d", i+1), "1h")); err != nil {
			t.Fatal(err)
		}
	}

	const followers = 10
	fs := make([]*client.Follower, followers)
	for i := range fs {
		svid := enrollSVID(ctx, t, admins[leader], nodes[(leader+1)%3].client(""), fmt.Sprint("agent-", i))
		// The leader first, then the two others.
		var cs []*client.Client
		for k := range 3 {
			cs = append(cs, svidClient(t, nodes[(leader+k)%3], svid))
		}
		fs[i] = runFollower(t, client.FollowerConfig{Clients: cs, Backoff: 50 * time.Millisecond, MaxBackoff: time.Second})
	}
	for i, f := range fs {
		select {
		case <-f.Synced():
		case <-time.After(30 * time.Second):
			t.Fatalf("follower %d: no sync", i)
		}
	}

	// The writer adds and deletes bans through the surviving servers,
	// retrying a write that fails while there is no leader; it keeps
	// going across the failover.
	var (
		mu      sync.Mutex
		live    = map[string]bool{} // acknowledged and not deleted
		stopW   = make(chan struct{})
		wdone   = make(chan struct{})
		written = make(chan int, 1000)
	)
	survivors := []*client.Client{admins[(leader+1)%3], admins[(leader+2)%3]}
	go func() {
		defer close(wdone)
		retry := func(op func(c *client.Client) error) bool {
			for k := 0; ; k++ {
				select {
				case <-stopW:
					return false
				default:
				}
				if err := op(survivors[k%2]); err == nil {
					return true
				} else if k > 600 {
					t.Errorf("a write failed 600 times: %v", err)
					return false
				}
				time.Sleep(50 * time.Millisecond) // no leader yet: try again, bounded by the count above
			}
		}
		for i := 0; ; i++ {
			var d client.DecisionRecord
			if !retry(func(c *client.Client) (err error) {
				d, err = c.DecisionAdd(ctx, banInput(fmt.Sprintf("198.51.100.%d", i%250+1), "1h"))
				return err
			}) {
				return
			}
			mu.Lock()
			live[d.ID] = true
			var victim string
			if i%3 == 2 { // delete one of the live ones now and then
				for id := range live {
					victim = id
					break
				}
			}
			mu.Unlock()
			if victim != "" && retry(func(c *client.Client) error {
				err := c.DecisionDelete(ctx, victim)
				if client.IsStatus(err, http.StatusNotFound) {
					return nil
				}
				return err
			}) {
				mu.Lock()
				delete(live, victim)
				mu.Unlock()
			}
			select {
			case written <- i:
			default:
			}
		}
	}()
	// Let some writes land, then stop the leader the followers stream
	// from, let more land once it is gone (on the new leader), then stop
	// writing.
	last := 0
	waitWrites := func(n int) {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for last < n {
			select {
			case last = <-written:
			case <-timeout:
				t.Fatalf("the writer did not reach %d writes", n)
			}
		}
	}
	waitWrites(10)
	nodes[leader].stop()
	for len(written) > 0 { // what was written before the stop returned
		last = <-written
	}
	waitWrites(last + 20)
	close(stopW)
	<-wdone

	want, err := serverActive(ctx, survivors[0])
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	acked := slices.Sorted(maps.Keys(live))
	mu.Unlock()
	for _, id := range acked {
		if _, ok := slices.BinarySearch(want, id); !ok {
			t.Fatalf("acknowledged decision %s is not active on the server", id)
		}
	}
	for i, f := range fs {
		deadline := time.Now().Add(60 * time.Second)
		for !slices.Equal(activeIDs(f.State(), time.Now()), want) {
			if time.Now().After(deadline) {
				got := activeIDs(f.State(), time.Now())
				t.Fatalf("follower %d holds %d active decisions at revision %d, the server %d:\n%s\nwant\n%s", i, len(got),
					f.State().Revision, len(want), strings.Join(got, " "), strings.Join(want, " "))
			}
			time.Sleep(20 * time.Millisecond) // polling the follower's state, bounded by the deadline
		}
	}
}
