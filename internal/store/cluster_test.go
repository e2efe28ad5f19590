package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
)

// waitApplied blocks until s has applied idx.
func waitApplied(t *testing.T, s *Store, idx uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitApplied(ctx, idx); err != nil {
		t.Fatalf("node did not apply index %d (at %d): %v", idx, s.AppliedIndex(), err)
	}
}

// TestFiveNodesSurviveTwoLosses: with two of five nodes gone, writes through
// any survivor commit, linearizable reads on every survivor see them, and no
// write acknowledged before the losses is missing.
func TestFiveNodesSurviveTwoLosses(t *testing.T) {
	c := newFaultCluster(t, 5)
	ctx := context.Background()
	if err := c.node(0).WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	acked := map[string]string{}
	for i := range 20 {
		k, v := fmt.Sprint("before-", i), fmt.Sprint("v", i)
		mustTxn(t, c.node(i%5), rec(Txn{Ops: []Op{put(k, v)}}))
		acked[k] = v
	}
	// Lose the leader and one follower.
	lead := c.leaderIndex()
	other := (lead + 1) % 5
	c.node(lead).Close()
	c.node(other).Close()
	var live []*Store
	for i := range 5 {
		if i != lead && i != other {
			live = append(live, c.node(i))
		}
	}
	for i, s := range live {
		k := fmt.Sprint("after-", i)
		mustTxn(t, s, rec(Txn{Ops: []Op{put(k, "x")}}))
		acked[k] = "x"
	}
	for _, s := range live {
		for k, v := range acked {
			e, err := s.Get(ctx, k)
			if err != nil || string(e.Value) != v {
				t.Fatalf("%s: %s = %q, %v; want %q", s.NodeID(), k, e.Value, err, v)
			}
		}
	}
}

// TestSnapshotRestoreRollsBackEveryNode: a snapshot saved through the API
// of the store and restored later puts every node back to its state.
func TestSnapshotRestoreRollsBackEveryNode(t *testing.T) {
	c := newFaultCluster(t, 3)
	ctx := context.Background()
	if err := c.node(0).WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	lead := c.node(c.leaderIndex())
	if _, err := lead.Txn(ctx, rec(Txn{Ops: []Op{put("k", "saved"), put("keep", "1")}})); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := lead.SaveSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := lead.Txn(ctx, rec(Txn{Ops: []Op{put("k", "later"), put("new", "1"), put("keep", "2")}})); err != nil {
		t.Fatal(err)
	}
	before, err := lead.AuditState()
	if err != nil {
		t.Fatal(err)
	}
	// A file that is not a snapshot is refused and changes nothing.
	if _, err := lead.OpenSnapshotFile(strings.NewReader("not a database"), ok); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("garbage snapshot: %v", err)
	}
	refused := errors.New("refused")
	if _, err := lead.OpenSnapshotFile(bytes.NewReader(buf.Bytes()), func() error { return refused }); err != refused {
		t.Fatalf("verify is not applied: %v", err)
	}
	f, err := lead.OpenSnapshotFile(bytes.NewReader(buf.Bytes()), ok)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := f.Get("k"); err != nil || string(e.Value) != "saved" {
		t.Fatalf("snapshot content: %q %v", e.Value, err)
	}
	if _, err := lead.Restore(ctx, f, AuditLeaf{Hash: make([]byte, 32), Value: []byte("x")}); !errors.Is(err, ErrBadLeaf) {
		t.Fatalf("a restore whose record does not check: %v", err)
	}
	record := leafFor(7)
	idx, err := lead.Restore(ctx, f, record, "keep")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		s := c.node(i)
		waitApplied(t, s, idx)
		e, err := s.Get(ctx, "k")
		if err != nil || string(e.Value) != "saved" {
			t.Fatalf("%s after restore: k = %q, %v", s.NodeID(), e.Value, err)
		}
		if _, err := s.Get(ctx, "new"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s after restore: a later key survived: %v", s.NodeID(), err)
		}
		if e := mustGet(t, s, "keep"); string(e.Value) != "2" {
			t.Fatalf("%s after restore: a kept key is %q", s.NodeID(), e.Value)
		}
		// The audit log was not rewound: it grew by the restore's record,
		// stored with the index the restore was installed at, and the
		// tree before the restore is a prefix of the tree after.
		after, err := s.AuditState()
		if err != nil || after.Size != before.Size+1 {
			t.Fatalf("%s after restore: audit tree of %d leaves (%v), want %d", s.NodeID(), after.Size, err, before.Size+1)
		}
		ls, err := s.AuditLeaves(before.Size, 1)
		if err != nil || len(ls) != 1 || ls[0].RaftIndex != idx || !bytes.Equal(ls[0].Value, record.Value) {
			t.Fatalf("%s after restore: the restore's leaf is %+v (%v), want index %d", s.NodeID(), ls, err, idx)
		}
		oldRoot, _ := before.Root()
		newRoot, _ := after.Root()
		p, err := audit.ConsistencyProof(s.AuditNodes(), before.Size, after.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.VerifyConsistency(before.Size, after.Size, oldRoot, newRoot, p); err != nil {
			t.Fatalf("%s after restore: the log before is not a prefix of the log after: %v", s.NodeID(), err)
		}
	}
	// Writes continue after the restore, with versions above it.
	v, err := c.node(1).Txn(ctx, rec(Txn{Ops: []Op{put("k", "after")}}))
	if err != nil || v <= idx {
		t.Fatalf("write after restore: %d %v", v, err)
	}
}

func ok() error { return nil }

// TestCompactedFollowerCatchesUpFromSnapshot: with small snapshot
// thresholds the leader compacts its log while a follower is down; the
// follower comes back, installs the leader's snapshot and then the rest of
// the log, and serves linearizable reads of everything.
func TestCompactedFollowerCatchesUpFromSnapshot(t *testing.T) {
	c := newFaultCluster(t, 3, func(cfg *Config) {
		cfg.SnapshotThreshold, cfg.SnapshotInterval, cfg.TrailingLogs = 20, 50*time.Millisecond, 5
	})
	ctx := context.Background()
	if err := c.node(0).WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	lead := c.leaderIndex()
	down := (lead + 1) % 3
	c.node(down).Close()
	for i := range 200 {
		mustTxn(t, c.node(lead), rec(Txn{Ops: []Op{put(fmt.Sprint("k", i), fmt.Sprint("v", i))}}))
	}
	// Wait (bounded) until the leader has compacted past what the follower has.
	deadline := time.Now().Add(20 * time.Second)
	for {
		first, err := c.node(lead).logs.FirstIndex()
		if err != nil {
			t.Fatal(err)
		}
		if first > c.node(down).AppliedIndex()+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader did not compact its log (first index %d)", first)
		}
		time.Sleep(20 * time.Millisecond) // polling the leader's log, bounded by the deadline
	}
	last := mustTxn(t, c.node(lead), rec(Txn{Ops: []Op{put("last", "1")}}))
	c.restart(down)
	s := c.node(down)
	// The leader retries a peer that was down with exponential backoff, so
	// catching up can take seconds: wait for it (bounded), then read.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.WaitApplied(wctx, last); err != nil {
		t.Fatalf("the restarted follower did not catch up (at %d, want %d): %v", s.AppliedIndex(), last, err)
	}
	for i := range 200 {
		e, err := s.Get(ctx, fmt.Sprint("k", i))
		if err != nil || string(e.Value) != fmt.Sprint("v", i) {
			t.Fatalf("k%d on the restarted follower: %q %v", i, e.Value, err)
		}
	}
	// And it keeps following.
	waitApplied(t, s, mustTxn(t, c.node(lead), rec(Txn{Ops: []Op{put("after", "1")}})))
}

// mustTxn applies an idempotent t through s, retrying when leadership moved
// under it (the outcome of such an attempt is unknown, and applying t again
// is harmless). The tests using it are about data, not availability.
func mustTxn(t *testing.T, s *Store, tx Txn) uint64 {
	t.Helper()
	var err error
	for range 10 {
		var idx uint64
		if idx, err = s.Txn(context.Background(), tx); err == nil {
			return idx
		}
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrNoLeader) {
			break
		}
	}
	t.Fatalf("txn through %s: %v", s.NodeID(), err)
	return 0
}
