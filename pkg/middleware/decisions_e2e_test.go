package middleware_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/pkg/client"
	"github.com/warden-sec/warden/pkg/middleware"
)

// from makes p connect from the loopback address src.
func (p *peer) from(src string) *peer {
	tr := p.hc.Transport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext
	return &peer{hc: &http.Client{Transport: tr, Timeout: p.hc.Timeout}}
}

// TestDecisionsEndToEnd runs the middleware with a follower of a real
// server's decision stream (docs/response.md, "Enforcement in services"):
// a ban of one source address refuses it (403) while another source is
// served, without a refresh; quarantine refuses the node (403); a
// revocation arrives on the stream (401) before any CRL refresh; a
// deleted ban is lifted; and with the server gone the last state still
// decides.
func TestDecisionsEndToEnd(t *testing.T) {
	w := startWarden(t)
	ctx := context.Background()
	for _, z := range []string{"dmz", "plant"} {
		if _, err := w.root.ZoneCreate(ctx, z, 2); err != nil {
			t.Fatal(err)
		}
	}
	svc := w.enrollAgent(t, "api-1", "plant")
	if _, err := w.root.PolicyWrite(ctx, "warden", "svc-api-1", servicePolicy); err != nil {
		t.Fatal(err)
	}
	if _, err := w.root.PolicyWrite(ctx, "warden", "open", `permit (principal, action == Action::"conduit.connect", resource);`); err != nil {
		t.Fatal(err)
	}
	gw1, gw2, gw3 := w.enroll(t, "gw-1", "dmz"), w.enroll(t, "gw-2", "dmz"), w.enroll(t, "gw-3", "dmz")

	logs := &syncBuffer{}
	changes := make(chan *client.DecisionState, 64)
	f, err := client.NewFollower(client.FollowerConfig{Clients: []*client.Client{w.serviceClient(t, svc)},
		CacheFile: filepath.Join(t.TempDir(), "decisions.json"), Logger: slog.New(slog.NewTextHandler(logs, nil)),
		OnChange: func(st *client.DecisionState) { changes <- st }})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); f.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	waitState := func(what string, cond func(*client.DecisionState) bool) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for !cond(f.State()) {
			select {
			case <-changes:
			case <-timeout:
				t.Fatalf("timed out waiting for the follower to see %s", what)
			}
		}
	}
	a, err := middleware.New(middleware.Config{Client: w.serviceClient(t, svc), TrustDomain: "warden.local", Self: "api-1",
		Decisions: f, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	addr, _ := serve(t, a, svc, hello)
	attacker := newPeer(t, w, gw1, "api-1").from("127.0.0.2")
	other := newPeer(t, w, gw1, "api-1").from("127.0.0.1")
	if got := attacker.get(t, addr); got.status != 200 {
		t.Fatalf("attacker before the ban: %+v", got)
	}

	// Ban the attacker's address: refused at once, the other source served.
	ban, err := w.root.DecisionAdd(ctx, client.DecisionInput{Type: "ban", Target: client.DecisionTarget{IP: "127.0.0.2"},
		Duration: "1h", Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	banned := func(st *client.DecisionState) bool {
		_, ok := st.BannedIP(netip.MustParseAddr("127.0.0.2"), "plant", time.Now())
		return ok
	}
	waitState("the ban", banned)
	if got := attacker.get(t, addr); got.status != 403 || !strings.Contains(got.body, "source address is banned") {
		t.Fatalf("banned source: %+v", got)
	}
	if got := other.get(t, addr); got.status != 200 {
		t.Fatalf("another source: %+v", got)
	}

	// Quarantine of a node: refused wherever it connects from.
	q, err := w.root.DecisionAdd(ctx, client.DecisionInput{Type: "quarantine", Target: client.DecisionTarget{Node: "gw-2"},
		Duration: "1h", Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	waitState("the quarantine", func(st *client.DecisionState) bool { _, ok := st.Quarantined("gw-2", time.Now()); return ok })
	quarantined := newPeer(t, w, gw2, "api-1")
	if got := quarantined.get(t, addr); got.status != 403 || !strings.Contains(got.body, "quarantined") {
		t.Fatalf("quarantined node: %+v", got)
	}

	// A revocation comes with the stream: refused before any CRL refresh.
	if got := newPeer(t, w, gw3, "api-1").get(t, addr); got.status != 200 {
		t.Fatalf("gw-3 before the revocation: %+v", got)
	}
	if err := w.root.NodeRevoke(ctx, "gw-3"); err != nil {
		t.Fatal(err)
	}
	waitState("the revocation", func(st *client.DecisionState) bool { return st.RevokedSerial(gw3.Leaf.SerialNumber.Text(16)) })
	if got := newPeer(t, w, gw3, "api-1").get(t, addr); got.status != 401 || !strings.Contains(got.body, "revoked") {
		t.Fatalf("revoked gw-3: %+v", got)
	}

	// Deleted: lifted.
	if err := w.root.DecisionDelete(ctx, ban.ID); err != nil {
		t.Fatal(err)
	}
	waitState("the deletion", func(st *client.DecisionState) bool { return !banned(st) })
	if got := attacker.get(t, addr); got.status != 200 {
		t.Fatalf("after the deletion: %+v", got)
	}

	// Banned again, then the cluster goes away: the last state decides.
	if _, err := w.root.DecisionAdd(ctx, client.DecisionInput{Type: "ban", Target: client.DecisionTarget{IP: "127.0.0.2"},
		Duration: "1h", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	waitState("the second ban", banned)
	w.close()
	if got := attacker.get(t, addr); got.status != 403 {
		t.Fatalf("cluster down: banned source: %+v", got)
	}
	if got := other.get(t, addr); got.status != 200 {
		t.Fatalf("cluster down: another source: %+v", got)
	}
	if got := quarantined.get(t, addr); got.status != 403 {
		t.Fatalf("cluster down: quarantined node: %+v", got)
	}
	for _, want := range []string{"decision=" + ban.ID, "decision=" + q.ID} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(logs.String(), w.token) {
		t.Fatal("a credential reached the log")
	}
}
