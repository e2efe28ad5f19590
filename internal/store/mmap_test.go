package store

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestSnapshotDoesNotStallTheState: a snapshot streams the state from a read
// transaction it holds for as long as the copy takes (seconds for a large
// state). bbolt must grow its memory map to let the state outgrow its
// mapped size, which waits for every read transaction to end and holds up
// every new one meanwhile; with the map sized at open, writes that grow the
// state, and reads (the cluster port checks a peer with one on every
// request), go on while the snapshot is held.
func TestSnapshotDoesNotStallTheState(t *testing.T) {
	s := openConfig(t, Config{Dir: t.TempDir(), SnapshotThreshold: 1 << 40, SnapshotInterval: time.Hour})
	snap, err := s.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	// A deadline only against a hang: without the fix the first write that
	// needs a larger map waits until Release.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	big := strings.Repeat("m", 256<<10)
	putN(ctx, t, s, "grow", 64, big) // 16 MiB: well past bbolt's first map sizes
	if _, err := s.GetStale("grow063"); err != nil {
		t.Fatalf("read while a snapshot is held: %v", err)
	}
}
