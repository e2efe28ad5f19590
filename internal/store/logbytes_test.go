package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	s := openBounded(t, dir, 64<<10, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	value := strings.Repeat("v", 4<<10)
	const n = 64 // 256 KiB of commands: four times the bound
	putN(ctx, t, s, "k", n, value)
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

// TestOpenCompactsSparseDatabases: after a burst that the state and the log
// no longer hold (values deleted, log compacted into a snapshot), Open
// gives the free space back, and every acknowledged write is still there.
// A copy a crash left behind is discarded, and the original used.
func TestOpenCompactsSparseDatabases(t *testing.T) {
	dir := t.TempDir()
	// No bound fires: the burst stays in the log until the snapshot below.
	s := openBounded(t, dir, 1<<40, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 48 // 48 MiB through the log and the state
	putN(ctx, t, s, "big", n, strings.Repeat("b", 1<<20))
	for i := range n {
		if _, err := s.Txn(ctx, rec(Txn{Ops: []Op{{Type: OpDelete, Key: fmt.Sprintf("big%03d", i)}}})); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Txn(ctx, rec(Txn{Ops: []Op{put("kept", "yes")}})); err != nil {
		t.Fatal(err)
	}
	// Compact the log now.
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fsmPath, raftPath := filepath.Join(dir, "fsm.db"), filepath.Join(dir, "raft", "raft.db")
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	fsmBefore, raftBefore := size(fsmPath), size(raftPath)
	if fsmBefore < 32<<20 || raftBefore < 32<<20 {
		t.Fatalf("the burst left fsm.db %d and raft.db %d bytes: too small to test", fsmBefore, raftBefore)
	}
	// A compaction a crash interrupted left a partial copy.
	if err := os.WriteFile(fsmPath+".compact", []byte("partial copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, dir)
	if got := size(fsmPath); got*2 > fsmBefore {
		t.Errorf("fsm.db: %d bytes after Open, was %d", got, fsmBefore)
	}
	if got := size(raftPath); got*2 > raftBefore {
		t.Errorf("raft.db: %d bytes after Open, was %d", got, raftBefore)
	}
	if _, err := os.Stat(fsmPath + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the partial copy is still there: %v", err)
	}
	if e := mustGet(t, s2, "kept"); string(e.Value) != "yes" {
		t.Fatalf("kept: %q", e.Value)
	}
	if _, err := s2.Get(ctx, "big000"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("big000 after compaction: %v", err)
	}
	if _, err := s2.Txn(ctx, rec(Txn{Ops: []Op{put("after", "x")}})); err != nil {
		t.Fatal(err)
	}
	if e := mustGet(t, s2, "after"); string(e.Value) != "x" {
		t.Fatalf("after: %q", e.Value)
	}
}

// openBounded opens a store whose log only the byte bound compacts
// (Raft's own threshold never fires), keeping trailing logs.
func openBounded(t *testing.T, dir string, logBytes, trailing uint64) *Store {
	return openConfig(t, Config{Dir: dir, LogBytes: logBytes, TrailingLogs: trailing,
		SnapshotThreshold: 1 << 40, SnapshotInterval: time.Hour})
}

// putN writes keys prefix000 to prefix<n-1>, each with value.
func putN(ctx context.Context, t *testing.T, s *Store, prefix string, n int, value string) {
	t.Helper()
	for i := range n {
		if _, err := s.Txn(ctx, rec(Txn{Ops: []Op{put(fmt.Sprintf("%s%03d", prefix, i), value)}})); err != nil {
			t.Fatal(err)
		}
	}
}
