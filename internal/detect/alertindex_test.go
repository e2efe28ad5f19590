package detect_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/core"
	"github.com/warden-sec/warden/internal/detect"
	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/internal/server/servertest"
	"github.com/warden-sec/warden/internal/store/kv"
)

// TestAlertIndex: pages and counts served from the index agree with a
// full read of the stored alerts after every round of creations, status
// changes and deletions, for several filters and page sizes.
func TestAlertIndex(t *testing.T) {
	srv := servertest.Dev(t)
	ctx := context.Background()
	a := srv.Alerts()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	levels := []string{"low", "medium", "high", "critical"}
	statuses := []string{detect.StatusOpen, detect.StatusAcknowledged, detect.StatusClosed}
	// audited is a context with the pending audit record a change needs
	// (the API's pipeline makes one per request).
	audited := func() context.Context {
		rctx, _ := srv.Audit().Pending(ctx, auditlog.SystemEntry(t0, "test", "alert.record", `Alert::"test"`))
		return rctx
	}
	put := func(ops ...kv.Op) {
		t.Helper()
		if _, err := srv.Core().Txn(audited(), kv.Txn{Ops: ops}); err != nil {
			t.Fatal(err)
		}
	}
	alert := func(i int) detect.Alert {
		// Several alerts share a created time, so the id breaks ties.
		return detect.Alert{ID: detect.AlertID(fmt.Sprint("k", i)), RuleID: fmt.Sprint("r", rng.IntN(3)), Level: levels[rng.IntN(4)],
			Status: statuses[rng.IntN(3)], Hosts: []string{fmt.Sprint("h", rng.IntN(4))},
			Created:  t0.Add(time.Duration(rng.IntN(40)) * time.Second).Format(time.RFC3339Nano),
			LastSeen: t0.Add(time.Duration(rng.IntN(80)) * time.Second).Format(time.RFC3339Nano)}
	}
	var ids []string
	n := 0
	for round := 0; round < 6; round++ {
		var ops []kv.Op
		for range 30 {
			al := alert(n)
			n++
			ids = append(ids, al.ID)
			b, _ := json.Marshal(al)
			ops = append(ops, kv.Op{Type: kv.OpPut, Key: "detect/alerts/" + al.ID, Value: b})
		}
		put(ops...)
		if round > 0 {
			// Change some statuses through the service, delete one.
			for range 5 {
				id := ids[rng.IntN(len(ids))]
				if _, err := a.Ack(audited(), id, "test", "seen"); err != nil && !strings.Contains(err.Error(), "cannot be acknowledged") {
					t.Fatal(err)
				}
				id = ids[rng.IntN(len(ids))]
				if _, err := a.Close(audited(), id, "test", "done"); err != nil {
					t.Fatal(err)
				}
			}
			gone := rng.IntN(len(ids))
			put(kv.Op{Type: kv.OpDelete, Key: "detect/alerts/" + ids[gone]})
			ids = slices.Delete(ids, gone, gone+1)
		}
		stored := storedAlerts(t, srv)
		if len(stored) != len(ids) {
			t.Fatalf("round %d: %d stored, want %d", round, len(stored), len(ids))
		}
		c, err := a.Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]map[string]int{}
		for _, s := range statuses {
			want[s] = map[string]int{}
		}
		for _, al := range stored {
			want[al.Status][al.Level]++
		}
		if c.Total != len(stored) || fmt.Sprint(c.Counts) != fmt.Sprint(want) {
			t.Fatalf("round %d: counts %d %v, want %d %v", round, c.Total, c.Counts, len(stored), want)
		}
		for _, f := range []detect.Filter{
			{Limit: 7}, {Status: "open", Limit: 5}, {Status: "open,acknowledged", Level: "high,critical", Limit: 3},
			{Host: "h1", Limit: 1000}, {Rule: "r2", Limit: 4},
			{Since: t0.Add(40 * time.Second), Limit: 9},
		} {
			got := listAll(t, a, f)
			var exp []string
			for _, al := range stored {
				if matches(f, al) {
					exp = append(exp, al.ID)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(exp) {
				t.Fatalf("round %d, filter %+v:\n got %v\nwant %v", round, f, got, exp)
			}
		}
	}
}

// storedAlerts reads every stored alert, newest first (created, then id).
func storedAlerts(t *testing.T, srv *server.Server) []detect.Alert {
	t.Helper()
	es, err := srv.Core().List(context.Background(), "detect/alerts/", 0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]detect.Alert, len(es))
	for i, e := range es {
		if err := json.Unmarshal(e.Value, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Created != out[j].Created {
			return out[i].Created > out[j].Created
		}
		return out[i].ID > out[j].ID
	})
	return out
}

// listAll follows List's cursors to the end and returns the ids in order.
func listAll(t *testing.T, a *detect.Alerts, f detect.Filter) []string {
	t.Helper()
	var ids []string
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("List's cursors do not end")
		}
		als, next, err := a.List(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		if len(als) > f.Limit {
			t.Fatalf("%d alerts in a page of %d", len(als), f.Limit)
		}
		for _, al := range als {
			ids = append(ids, al.ID)
		}
		if next == "" {
			return ids
		}
		f.Cursor = next
	}
}

// matches is the filter's meaning, written out for the test.
func matches(f detect.Filter, al detect.Alert) bool {
	in := func(list, v string) bool { return list == "" || slices.Contains(strings.Split(list, ","), v) }
	if !in(f.Status, al.Status) || !in(f.Level, al.Level) || (f.Rule != "" && al.RuleID != f.Rule) {
		return false
	}
	if f.Host != "" && !slices.Contains(al.Hosts, f.Host) {
		return false
	}
	if !f.Since.IsZero() {
		ls, err := time.Parse(time.RFC3339Nano, al.LastSeen)
		if err != nil || ls.Before(f.Since) {
			return false
		}
	}
	return true
}

// changingStore is the server's storage, with a hook run once, just before
// the first read of a page's alerts: it changes alerts between the index's
// state and the page's read.
type changingStore struct {
	*core.Core
	hook func()
}

func (s *changingStore) GetManyStale(keys []string) ([]kv.Entry, error) {
	if h := s.hook; h != nil {
		s.hook = nil
		h()
	}
	return s.Core.GetManyStale(keys)
}

// TestAlertPageIsOneState: alert A goes from closed to open, then B from
// open to acknowledged, after the index selected the page of open alerts
// and before the page's alerts are read. Every state of the store has one
// open alert; the page must show one (A), not the mix of an index that
// selected B and a read that finds B acknowledged.
func TestAlertPageIsOneState(t *testing.T) {
	srv := servertest.Dev(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	put := func(id, status string, minute int) {
		t.Helper()
		al := detect.Alert{ID: id, RuleID: "r", Level: "high", Status: status, Created: t0.Add(time.Duration(minute) * time.Minute).Format(time.RFC3339Nano)}
		b, _ := json.Marshal(al)
		rctx, _ := srv.Audit().Pending(ctx, auditlog.SystemEntry(t0, "test", "alert.record", `Alert::"`+id+`"`))
		if _, err := srv.Core().Txn(rctx, kv.Txn{Ops: []kv.Op{{Type: kv.OpPut, Key: "detect/alerts/" + id, Value: b}}}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := detect.AlertID("a"), detect.AlertID("b")
	put(a, detect.StatusClosed, 1)
	put(b, detect.StatusOpen, 2)
	st := &changingStore{Core: srv.Core()}
	alerts := detect.NewAlerts(st, srv.Audit(), "test", nil)
	if got, _, err := alerts.List(ctx, detect.Filter{Status: "open"}); err != nil || len(got) != 1 || got[0].ID != b {
		t.Fatalf("before: %+v, %v", got, err)
	}
	st.hook = func() {
		put(a, detect.StatusOpen, 1)
		put(b, detect.StatusAcknowledged, 2)
	}
	got, next, err := alerts.List(ctx, detect.Filter{Status: "open"})
	if err != nil || len(got) != 1 || got[0].ID != a || got[0].Status != detect.StatusOpen || next != "" {
		t.Fatalf("open alerts after the changes: %+v, next %q, %v", got, next, err)
	}
	if st.hook != nil {
		t.Fatal("the hook did not run: the test changed nothing between the index and the read")
	}
}
