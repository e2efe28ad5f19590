package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/sigma"
	"github.com/warden-sec/warden/pkg/client"
)

// TestDetectOnFollower: a follower serves the detection routes and the
// alert stream, records alerts (its writes are forwarded to the leader with
// their audit record) and learns of rule changes made elsewhere.
func TestDetectOnFollower(t *testing.T) {
	ctx := context.Background()
	nodes := make([]*clusterNode, 2)
	for i := range nodes {
		nodes[i] = &clusterNode{t: t, id: fmt.Sprint("n", i+1), dir: t.TempDir(), clusterAddr: freeAddr(t)}
		nodes[i].start()
	}
	init, err := nodes[0].client("").Init(ctx, client.InitRequest{KeyShares: 1, KeyThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	keys, root := init.UnsealKeys, init.RootToken
	nodes[0].unseal(ctx, keys)
	bundle, err := os.ReadFile(filepath.Join(nodes[0].dir, "cluster", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].client(root).RaftJoin(ctx, nodes[0].srv.Addr(), bundle); err != nil {
		t.Fatalf("join: %v", err)
	}
	nodes[1].unseal(ctx, keys)
	leader, follower := nodes[0], nodes[1]
	if !leader.srv.Store().IsLeader() {
		leader, follower = follower, leader
	}

	// A rule put on the leader reaches the follower's watch.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seen := make(chan uint64, 16)
	go follower.srv.Rules().Watch(wctx, 20*time.Millisecond, func(v uint64) { seen <- v })
	if _, err := leader.client(root).RulePut(ctx, "failed-login", []byte(ruleFailedLogin)); err != nil {
		t.Fatal(err)
	}
	for v := uint64(0); v != 1; {
		select {
		case v = <-seen:
		case <-time.After(15 * time.Second):
			t.Fatal("the follower did not learn of the rule")
		}
	}

	// The follower streams an alert it records itself.
	fc := follower.client(root)
	got := make(chan client.Alert, 4)
	go fc.AlertWatch(wctx, 0, func(a client.Alert, _ uint64) error { got <- a; return nil })
	rule := &sigma.Rule{ID: "failed-login", Title: "Failed SSH login", Level: "low"}
	now := time.Now()
	var a client.Alert
	for i := int64(1); a.ID == ""; i++ {
		// The stream starts at the follower's index when it opens: record
		// (the same alert, a growing count) until one arrives.
		if _, err := follower.srv.Alerts().Record(ctx, testHit(rule, "failed-login|n", i, now, now, "web-1")); err != nil {
			t.Fatal(err)
		}
		select {
		case a = <-got:
		case <-time.After(500 * time.Millisecond):
			if i > 30 {
				t.Fatal("the follower's stream sent nothing")
			}
		}
	}
	list, _, err := leader.client(root).AlertList(ctx, client.AlertFilter{Rule: "failed-login"})
	if err != nil || len(list) != 1 || list[0].ID != a.ID {
		t.Fatalf("leader's list: %+v, %v", list, err)
	}
	if _, err := fc.AlertClose(ctx, a.ID, "seen from the follower"); err != nil {
		t.Fatal(err)
	}
}
