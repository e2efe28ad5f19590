package api

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestStreamSlot: long-lived streams are bounded per server; a release
// frees a slot.
func TestStreamSlot(t *testing.T) {
	var n atomic.Int64
	var releases []func()
	for i := 0; i < 2; i++ {
		rel, ok := streamSlot(httptest.NewRecorder(), &n, 2, "tails")
		if !ok {
			t.Fatalf("slot %d refused", i)
		}
		releases = append(releases, rel)
	}
	w := httptest.NewRecorder()
	if _, ok := streamSlot(w, &n, 2, "tails"); ok {
		t.Fatal("a third stream was taken with a limit of 2")
	}
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("refusal: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	releases[0]()
	if _, ok := streamSlot(httptest.NewRecorder(), &n, 2, "tails"); !ok {
		t.Fatal("a released slot was not free again")
	}
	if got := n.Load(); got != 2 {
		t.Fatalf("count %d, want 2", got)
	}
}
