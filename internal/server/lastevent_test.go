package server

import (
	"testing"
	"time"
)

// TestLastEventCache: a time read less than LastEventReuse ago is reused;
// an older one, or one from the future of a clock set back, is read again
// and pruned.
func TestLastEventCache(t *testing.T) {
	var c lastEventCache
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	last := t0.Add(-time.Hour)
	if _, ok := c.get("web-1", t0); ok {
		t.Fatal("a time never read is reused")
	}
	c.put("web-1", last, t0)
	if got, ok := c.get("web-1", t0.Add(LastEventReuse-time.Second)); !ok || !got.Equal(last) {
		t.Fatalf("within the reuse window: %v %v", got, ok)
	}
	if _, ok := c.get("web-1", t0.Add(LastEventReuse)); ok {
		t.Fatal("reused after the window")
	}
	if _, ok := c.get("web-1", t0.Add(-time.Second)); ok {
		t.Fatal("reused before it was read (clock set back)")
	}
	c.put("db-1", last, t0.Add(LastEventReuse))
	c.prune(t0.Add(LastEventReuse))
	if len(c.m) != 1 || c.m["db-1"][0] != last {
		t.Fatalf("after pruning: %v", c.m)
	}
}
