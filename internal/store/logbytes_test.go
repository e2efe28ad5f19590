package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestLogBytesBoundsTheLog checks that the Raft log is compacted once the
// commands applied since the last snapshot reach Config.LogBytes, without
// Raft's own threshold (in entries, checked every SnapshotInterval) ever
// firing, and that every acknowledged write is still there after a restart
// from the compacted log.
func TestLogBytesBoundsTheLog(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, LogBytes: 64 << 10, TrailingLogs: 8,
		SnapshotThreshold: 1 << 40, SnapshotInterval: time.Hour}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.SetLeafCheck(plainLeafCheck)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	value := strings.Repeat("v", 4<<10)
	const n = 64 // 256 KiB of commands: four times the bound
	for i := range n {
		if _, err := s.Txn(ctx, rec(Txn{Ops: []Op{put(fmt.Sprintf("k%03d", i), value)}})); err != nil {
			t.Fatal(err)
		}
	}
	// The snapshot runs in the background: wait (bounded by ctx) until the
	// log's first index moved past the start.
	for {
		first, err := s.logs.FirstIndex()
		if err != nil {
			t.Fatal(err)
		}
		if first > 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the log was not compacted: first index %d after %d KiB of commands", first, n*4)
		case <-s.fsm.waitCh():
		case <-time.After(10 * time.Millisecond):
		}
	}
	metas, err := s.snaps.List()
	if err != nil || len(metas) != 1 {
		t.Fatalf("snapshots: %d (%v), want exactly 1 retained", len(metas), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, dir)
	for i := range n {
		if e := mustGet(t, s2, fmt.Sprintf("k%03d", i)); string(e.Value) != value {
			t.Fatalf("k%03d: wrong value after restart", i)
		}
	}
	// The log kept going from where it was compacted.
	if _, err := s2.Txn(ctx, rec(Txn{Ops: []Op{put("after", "x")}})); err != nil {
		t.Fatal(err)
	}
}
