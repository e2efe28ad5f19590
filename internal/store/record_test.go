package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestLeaderChecksEveryRecord: the leader refuses, before anything reaches
// the log, a change without its record and a record whose value does not
// hash to its leaf hash, whether the transaction is its own or forwarded
// by a follower (or sent as a raw command); and a sealed leader (no check)
// refuses every transaction.
func TestLeaderChecksEveryRecord(t *testing.T) {
	c := newFaultCluster(t, 3)
	ctx := context.Background()
	if err := c.node(0).WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	li := c.leaderIndex()
	lead, fol := c.node(li), c.node((li+1)%3)
	mustTxn(t, lead, rec(Txn{Ops: []Op{put("k", "v")}}))
	before := lead.raft.LastIndex()
	forged := Txn{Ops: []Op{put("k", "forged")}, Audit: []AuditLeaf{{Hash: leafFor(1).Hash, Value: []byte("another entry")}}}
	for _, tc := range []struct {
		name string
		via  *Store
		txn  Txn
		want error
	}{
		{"unaudited, on the leader", lead, Txn{Ops: []Op{put("k", "x")}}, ErrUnaudited},
		{"unaudited, forwarded", fol, Txn{Ops: []Op{put("k", "x")}}, ErrUnaudited},
		{"forged record, on the leader", lead, forged, ErrBadLeaf},
		{"forged record, forwarded", fol, forged, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.via.Txn(ctx, tc.txn); !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	// A follower's raw command skips the follower's own checks.
	for name, cmd := range map[string][]byte{
		"raw unaudited": encodeTxn(Txn{Ops: []Op{put("k", "raw")}}),
		"raw forged":    encodeTxn(forged),
	} {
		if r := lead.HandlePeer(ctx, fol.NodeID(), &PeerRequest{Op: PeerApply, Cmd: cmd}); !errors.Is(r.err(), ErrInvalid) {
			t.Fatalf("%s: %+v", name, r)
		}
	}
	lead.SetLeafCheck(nil)
	if _, err := lead.Txn(ctx, rec(Txn{Ops: []Op{put("k", "sealed")}})); !errors.Is(err, ErrLeaderSealed) || !errors.Is(err, ErrNoLeader) {
		t.Fatalf("a sealed leader took a write: %v", err)
	}
	if got := lead.raft.LastIndex(); got != before {
		t.Fatalf("refused transactions reached the log: last index %d, was %d", got, before)
	}
	if e := mustGet(t, lead, "k"); string(e.Value) != "v" {
		t.Fatalf("k = %q", e.Value)
	}
}

// TestRestoreLosesNoRecord: transactions acknowledged while a restore runs
// keep their audit records. The restore pauses proposals while it reads the
// audit log, so none commits between that read and the install (it would
// be acknowledged, then erased).
func TestRestoreLosesNoRecord(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	mustTxn(t, s, rec(Txn{Ops: []Op{put("k", "saved")}}))
	var buf bytes.Buffer
	if _, err := s.SaveSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := s.OpenSnapshotFile(bytes.NewReader(buf.Bytes()), ok)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const writers, each = 4, 50
	acked := make(chan []byte, writers*each)
	started := make(chan struct{}, writers)
	done := make(chan struct{})
	for w := range writers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range each {
				if i == 1 {
					started <- struct{}{}
				}
				l := leafFor(1000*(w+1) + i)
				if _, err := s.Txn(ctx, Txn{Ops: []Op{put(fmt.Sprint("w", w), fmt.Sprint(i))}, Audit: []AuditLeaf{l}}); err == nil {
					acked <- l.Value
				}
			}
		}()
	}
	for range writers {
		<-started
	}
	if _, err := s.Restore(ctx, f, leafFor(7)); err != nil {
		t.Fatal(err)
	}
	for range writers {
		<-done
	}
	close(acked)
	st, err := s.AuditState()
	if err != nil {
		t.Fatal(err)
	}
	ls, err := s.AuditLeaves(0, int(st.Size))
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, l := range ls {
		stored[string(l.Value)] = true
	}
	n := 0
	for v := range acked {
		n++
		if !stored[string(v)] {
			t.Errorf("an acknowledged record is gone after the restore: %s", v)
		}
	}
	if !stored[string(leafFor(7).Value)] {
		t.Error("the restore's own record is missing")
	}
	t.Logf("%d records acknowledged around the restore, tree of %d", n, st.Size)
}
