package respond

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/authority"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store/kv"
)

// memStorage is an in-memory Storage whose versions are the index of the
// write, as the store's are; it checks conditions like the store. It is
// enough for the feed, which only reads.
type memStorage struct {
	mu    sync.Mutex
	index uint64
	m     map[string]kv.Entry
}

func newMem() *memStorage { return &memStorage{m: map[string]kv.Entry{}} }

func (s *memStorage) Get(_ context.Context, key string) (kv.Entry, error) { return s.GetStale(key) }

func (s *memStorage) GetStale(key string) (kv.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok {
		return kv.Entry{}, errs.E(errs.NotFound, "%s not found", key)
	}
	return e, nil
}

func (s *memStorage) List(_ context.Context, prefix string, _ int) ([]kv.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []kv.Entry
	for k, e := range s.m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *memStorage) ListKeys(ctx context.Context, prefix string, limit int) ([]kv.Entry, error) {
	es, err := s.List(ctx, prefix, limit)
	for i := range es {
		es[i].Value = nil
	}
	return es, err
}

func (s *memStorage) Txn(_ context.Context, t kv.Txn) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range t.Conds {
		if s.m[c.Key].Version != c.Version {
			return 0, errs.E(errs.Conflict, "%s changed", c.Key)
		}
	}
	s.index++
	for _, op := range t.Ops {
		if op.Type == kv.OpDelete {
			delete(s.m, op.Key)
			continue
		}
		s.m[op.Key] = kv.Entry{Key: op.Key, Value: op.Value, Version: s.index}
	}
	return s.index, nil
}

func (s *memStorage) Barrier(context.Context) error { return nil }

func (s *memStorage) AppliedIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index
}

func (s *memStorage) put(t *testing.T, key string, v any) uint64 {
	t.Helper()
	b, _ := json.Marshal(v)
	i, err := s.Txn(context.Background(), kv.Txn{Ops: []kv.Op{{Type: kv.OpPut, Key: key, Value: b}}})
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func poll(t *testing.T, f *Feed) {
	t.Helper()
	if err := f.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestFeed: the feed's snapshot and resumption, its in-memory lookups, and
// the cut-off of a subscriber that falls behind.
func TestFeed(t *testing.T) {
	now := time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC)
	st := newMem()
	f := NewFeed(st, func() time.Time { return now }, nil)
	if _, err := f.Subscribe(0); !errs.Is(err, errs.Unavailable) {
		t.Fatalf("subscribe before the first poll: %v", err)
	}
	q := Decision{ID: "dec-0000000000000001", Type: TypeQuarantine, Target: Target{Node: "web-1"}, ExpiresAt: rfc3339(now.Add(time.Hour))}
	u := Decision{ID: "dec-0000000000000002", Type: TypeBan, Target: Target{User: "mallory"}, ExpiresAt: rfc3339(now.Add(time.Hour)), Simulated: true}
	old := Decision{ID: "dec-0000000000000003", Type: TypeBan, Target: Target{IP: "192.0.2.1"}, ExpiresAt: rfc3339(now.Add(-time.Hour))}
	rq := st.put(t, prefixDecisions+q.ID, q)
	st.put(t, prefixDecisions+u.ID, u)
	st.put(t, prefixDecisions+old.ID, old)
	st.put(t, prefixRevoked+"0a1b", authority.Revocation{Serial: "0a1b", RevokedAt: now, ExpiresAt: now.Add(time.Hour)})
	poll(t, f)

	if d, ok := f.Quarantined("web-1"); !ok || d.ID != q.ID {
		t.Fatalf("quarantined: %+v %v", d, ok)
	}
	if _, ok := f.BannedUser("mallory"); ok {
		t.Fatal("a simulated ban is enforced")
	}
	if !f.RevokedSerial("0a1b") || f.RevokedSerial("0a1c") {
		t.Fatal("revoked serials")
	}
	s0, err := f.Subscribe(0)
	if err != nil {
		t.Fatal(err)
	}
	defer s0.Close()
	if !s0.First.Reset || len(s0.First.Items) != 3 || s0.First.Revision != st.AppliedIndex() { // the expired ban is not live
		t.Fatalf("reset: %+v", s0.First)
	}
	s1, err := f.Subscribe(rq)
	if err != nil {
		t.Fatal(err)
	}
	if s1.First.Reset || len(s1.First.Items) != 3 || s1.First.Items[0].Revision != rq+1 {
		t.Fatalf("resume: %+v", s1.First)
	}
	s1.Close()

	// A change reaches the subscriber; a tombstone lifts the quarantine.
	q.Deleted = true
	rt := st.put(t, prefixDecisions+q.ID, q)
	poll(t, f)
	b := <-s0.C
	if b.Reset || len(b.Items) != 1 || b.Items[0].Revision != rt || b.Revision != rt {
		t.Fatalf("batch: %+v", b)
	}
	if _, ok := f.Quarantined("web-1"); ok {
		t.Fatal("a tombstone still quarantines")
	}
	// Collected keys are forgotten; with the horizon above since, a
	// resumption is a reset.
	if _, err := st.Txn(context.Background(), kv.Txn{Ops: []kv.Op{{Type: kv.OpDelete, Key: prefixDecisions + q.ID}}}); err != nil {
		t.Fatal(err)
	}
	st.put(t, keyHorizon, horizon{Revision: rt})
	poll(t, f)
	s2, err := f.Subscribe(rq)
	if err != nil {
		t.Fatal(err)
	}
	if !s2.First.Reset || len(s2.First.Items) != 2 {
		t.Fatalf("below the horizon: %+v", s2.First)
	}
	s2.Close()

	// A subscriber that does not read is cut off after SubscriberBuffer
	// batches; the others go on.
	for i := 0; i <= SubscriberBuffer; i++ {
		st.put(t, prefixAllow+"allow-000000000000000a", AllowEntry{ID: "allow-000000000000000a", CIDR: "10.0.0.0/8", Reason: strings.Repeat("x", i)})
		poll(t, f)
	}
	n := 0
	for range s0.C {
		n++
	}
	if n != SubscriberBuffer || f.Subscribers() != 0 {
		t.Fatalf("%d batches before the cut, %d subscribers", n, f.Subscribers())
	}
	s0.Close() // closing a cut subscription is harmless

	// A restored snapshot (a key's version goes down) cuts every
	// subscriber off and makes every resumption a reset.
	s3, err := f.Subscribe(st.AppliedIndex())
	if err != nil || s3.First.Reset {
		t.Fatalf("subscribe: %+v %v", s3, err)
	}
	rev := st.AppliedIndex()
	st.mu.Lock()
	st.index++
	e := st.m[prefixDecisions+u.ID]
	e.Version = 1
	st.m[prefixDecisions+u.ID] = e
	st.mu.Unlock()
	poll(t, f)
	if _, open := <-s3.C; open {
		t.Fatal("a subscriber outlived a restore")
	}
	if s4, err := f.Subscribe(rev); err != nil || !s4.First.Reset {
		t.Fatalf("resumption after a restore: %+v %v", s4, err)
	}
}

func (s *memStorage) ScanStale(prefix string, values func(string, uint64) bool) ([]kv.Entry, error) {
	return scanOf(s.List(context.Background(), prefix, 0))(values)
}

func (s *memStorage) GetManyStale(keys []string) ([]kv.Entry, error) {
	return getManyOf(s.GetStale, keys)
}

// scanOf keeps the values of a listing's entries that values selects.
func scanOf(es []kv.Entry, err error) func(func(string, uint64) bool) ([]kv.Entry, error) {
	return func(values func(string, uint64) bool) ([]kv.Entry, error) {
		for i := range es {
			if values == nil || !values(es[i].Key, es[i].Version) {
				es[i].Value = nil
			}
		}
		return es, err
	}
}

// getManyOf reads keys one by one with get, leaving out absent ones.
func getManyOf(get func(string) (kv.Entry, error), keys []string) ([]kv.Entry, error) {
	var out []kv.Entry
	for _, k := range keys {
		e, err := get(k)
		if errs.Is(err, errs.NotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
