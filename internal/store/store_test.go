package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/warden-sec/warden/internal/audit"
)

// plainLeafCheck is the tests' LeafCheck: their leaves are stored in the
// clear, so a leaf's value must hash to its leaf hash.
func plainLeafCheck(l AuditLeaf) error {
	if !bytes.Equal(audit.LeafHash(l.Value), l.Hash) {
		return errors.New("value does not hash to the leaf hash")
	}
	return nil
}

// rec gives a change its audit record, as every change must have.
func rec(t Txn) Txn {
	t.Audit = append(t.Audit, leafFor(-1))
	return t
}

func open(t testing.TB, dir string) *Store {
	t.Helper()
	return openConfig(t, Config{Dir: dir})
}

// openConfig opens a store with cfg, checking leaves with plainLeafCheck,
// and waits until it leads; the store is closed when the test ends.
func openConfig(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.SetLeafCheck(plainLeafCheck)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(k, v string) Op { return Op{Type: OpPut, Key: k, Value: []byte(v)} }

func mustGet(t *testing.T, s *Store, k string) Entry {
	t.Helper()
	e, err := s.Get(context.Background(), k)
	if err != nil {
		t.Fatalf("get %q: %v", k, err)
	}
	return e
}

func TestTxnAllOrNothing(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	idx, err := s.Txn(ctx, rec(Txn{Ops: []Op{put("a", "1"), put("b", "2")}}))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := mustGet(t, s, "a"), mustGet(t, s, "b"); a.Version != idx || b.Version != idx || string(b.Value) != "2" {
		t.Fatalf("versions %d %d, want %d", a.Version, b.Version, idx)
	}
	// One failing condition among several: nothing changes.
	_, err = s.Txn(ctx, rec(Txn{
		Conds: []Cond{{Key: "a", Version: idx}, {Key: "b", Version: idx + 100}},
		Ops:   []Op{put("a", "x"), put("c", "x"), {Type: OpDelete, Key: "b"}},
	}))
	var ce *ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, ErrConflict) || ce.Key != "b" || ce.Have != idx {
		t.Fatalf("err %v", err)
	}
	if a := mustGet(t, s, "a"); string(a.Value) != "1" || a.Version != idx {
		t.Fatalf("a changed: %+v", a)
	}
	if _, err := s.Get(ctx, "c"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("c: %v", err)
	}
	mustGet(t, s, "b")
}

func TestConditions(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	cases := []struct {
		name string
		txn  func(v uint64) Txn
		ok   bool
	}{
		{"must not exist: absent", func(uint64) Txn { return Txn{Conds: []Cond{{Key: "k", Version: 0}}, Ops: []Op{put("k", "1")}} }, true},
		{"must not exist: present", func(uint64) Txn { return Txn{Conds: []Cond{{Key: "k", Version: 0}}, Ops: []Op{put("k", "2")}} }, false},
		{"right version", func(v uint64) Txn { return Txn{Conds: []Cond{{Key: "k", Version: v}}, Ops: []Op{put("k", "3")}} }, true},
		{"stale version", func(v uint64) Txn { return Txn{Conds: []Cond{{Key: "k", Version: v - 1}}, Ops: []Op{put("k", "4")}} }, false},
		{"delete", func(v uint64) Txn {
			return Txn{Conds: []Cond{{Key: "k", Version: v}}, Ops: []Op{{Type: OpDelete, Key: "k"}}}
		}, true},
		{"absent after delete", func(uint64) Txn { return Txn{Conds: []Cond{{Key: "k", Version: 0}}, Ops: []Op{put("k", "5")}} }, true},
	}
	var v uint64
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			idx, err := s.Txn(ctx, rec(tc.txn(v)))
			if tc.ok != (err == nil) {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if err == nil {
				v = idx
			} else if !errors.Is(err, ErrConflict) {
				t.Fatalf("not a conflict: %v", err)
			}
		})
	}
	if e := mustGet(t, s, "k"); string(e.Value) != "5" {
		t.Fatalf("final %q", e.Value)
	}
}

func TestConcurrentCAS(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	if _, err := s.Txn(ctx, rec(Txn{Ops: []Op{put("n", "0")}})); err != nil {
		t.Fatal(err)
	}
	// One round: every writer reads the same version; exactly one wins.
	start := mustGet(t, s, "n")
	const writers = 32
	var wins atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.Txn(ctx, rec(Txn{Conds: []Cond{{Key: "n", Version: start.Version}}, Ops: []Op{put("n", fmt.Sprint(i))}}))
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, ErrConflict):
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d writers won one round", wins.Load())
	}
	// A counter incremented with CAS retries ends at the number of successes.
	if _, err := s.Txn(ctx, rec(Txn{Ops: []Op{put("c", "0")}})); err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int64
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				for {
					e, err := s.Get(ctx, "c")
					if err != nil {
						t.Error(err)
						return
					}
					var n int
					fmt.Sscan(string(e.Value), &n)
					_, err = s.Txn(ctx, rec(Txn{Conds: []Cond{{Key: "c", Version: e.Version}}, Ops: []Op{put("c", fmt.Sprint(n+1))}}))
					if err == nil {
						ok.Add(1)
						break
					}
					if !errors.Is(err, ErrConflict) {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if e := mustGet(t, s, "c"); string(e.Value) != fmt.Sprint(ok.Load()) || ok.Load() != writers*5 {
		t.Fatalf("counter %s, successes %d", e.Value, ok.Load())
	}
}

func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	var last uint64
	for i := 0; i < 20; i++ {
		idx, err := s.Txn(ctx, rec(Txn{Ops: []Op{put(fmt.Sprintf("k%02d", i), fmt.Sprint(i))}}))
		if err != nil {
			t.Fatal(err)
		}
		last = idx
	}
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	for i := 20; i < 30; i++ { // logs after the snapshot are replayed on restart
		if last, _ = s.Txn(ctx, rec(Txn{Ops: []Op{put(fmt.Sprintf("k%02d", i), fmt.Sprint(i))}})); last == 0 {
			t.Fatal("txn failed")
		}
	}
	// Delete after the snapshot: a replay that re-applied older puts would resurrect it.
	if _, err := s.Txn(ctx, rec(Txn{Ops: []Op{{Type: OpDelete, Key: "k05"}}})); err != nil {
		t.Fatal(err)
	}
	before, _ := s.List(ctx, "k", 0)
	s.Close()

	s2 := open(t, dir)
	after, err := s2.List(ctx, "k", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 29 || len(before) != 29 {
		t.Fatalf("%d keys before, %d after", len(before), len(after))
	}
	for i := range after {
		if after[i].Key != before[i].Key || after[i].Version != before[i].Version || !bytes.Equal(after[i].Value, before[i].Value) {
			t.Fatalf("entry %d: %+v != %+v", i, after[i], before[i])
		}
	}
	idx, err := s2.Txn(ctx, rec(Txn{Ops: []Op{put("new", "x")}}))
	if err != nil || idx <= last {
		t.Fatalf("new write index %d (last %d): %v", idx, last, err)
	}
}

func TestApplyIsIdempotent(t *testing.T) {
	f, err := newFSM(t.TempDir() + "/fsm.db")
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	logs := []*raft.Log{
		{Index: 1, Type: raft.LogCommand, Data: encodeTxn(Txn{Ops: []Op{put("a", "1")}})},
		{Index: 2, Type: raft.LogNoop},
		{Index: 3, Type: raft.LogCommand, Data: encodeTxn(Txn{Conds: []Cond{{Key: "a", Version: 1}}, Ops: []Op{put("a", "2")}})},
	}
	res := f.ApplyBatch(logs)
	if res[0] != uint64(1) || res[2] != uint64(3) {
		t.Fatalf("results %v", res)
	}
	// A replay of the same logs changes nothing (the condition would fail).
	f.ApplyBatch(logs)
	if e, _ := f.get("a"); string(e.Value) != "2" || e.Version != 3 || f.applied.Load() != 3 {
		t.Fatalf("after replay: %+v applied %d", e, f.applied.Load())
	}
	// A failing txn in a batch does not affect its neighbours.
	res = f.ApplyBatch([]*raft.Log{
		{Index: 4, Type: raft.LogCommand, Data: encodeTxn(Txn{Conds: []Cond{{Key: "a", Version: 99}}, Ops: []Op{put("b", "x")}})},
		{Index: 5, Type: raft.LogCommand, Data: encodeTxn(Txn{Ops: []Op{put("c", "y")}})},
		{Index: 6, Type: raft.LogCommand, Data: []byte{9, 9}},
	})
	if !errors.Is(res[0].(error), ErrConflict) || res[1] != uint64(5) || res[2] == nil {
		t.Fatalf("batch results %v", res)
	}
	if _, err := f.get("b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("b: %v", err)
	}
}

type bufSink struct {
	bytes.Buffer
	cancelled bool
}

func (b *bufSink) ID() string    { return "test" }
func (b *bufSink) Cancel() error { b.cancelled = true; return nil }
func (b *bufSink) Close() error  { return nil }

func TestSnapshotRestore(t *testing.T) {
	src, err := newFSM(t.TempDir() + "/fsm.db")
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	src.ApplyBatch([]*raft.Log{{Index: 7, Type: raft.LogCommand, Data: encodeTxn(Txn{Ops: []Op{put("x", "1"), put("y", "2")}})}})
	// A snapshot of its own state writes no data: opening it streams the
	// live database (liveSnapshots).
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var empty bufSink
	if err := snap.Persist(&empty); err != nil || empty.Len() != 0 {
		t.Fatalf("a snapshot wrote %d bytes (%v)", empty.Len(), err)
	}
	snap.Release()
	rc, size, err := src.stream()
	if err != nil {
		t.Fatal(err)
	}
	var sink bufSink
	if n, err := io.Copy(&sink, rc); err != nil || n != size {
		t.Fatalf("streamed %d bytes of %d: %v", n, size, err)
	}
	rc.Close()
	dst, err := newFSM(t.TempDir() + "/fsm.db")
	if err != nil {
		t.Fatal(err)
	}
	defer dst.close()
	dst.ApplyBatch([]*raft.Log{{Index: 1, Type: raft.LogCommand, Data: encodeTxn(Txn{Ops: []Op{put("old", "gone")}})}})
	if err := dst.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	es, _ := dst.list("", 0)
	if len(es) != 2 || es[0].Key != "x" || es[1].Version != 7 || dst.applied.Load() != 7 {
		t.Fatalf("restored %+v applied %d", es, dst.applied.Load())
	}
}

func TestListAndValidation(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	if _, err := s.Txn(ctx, rec(Txn{Ops: []Op{put("p/b", "2"), put("p/a", "1"), put("p/c", "3"), put("q", "x")}})); err != nil {
		t.Fatal(err)
	}
	es, _ := s.List(ctx, "p/", 0)
	if len(es) != 3 || es[0].Key != "p/a" || es[2].Key != "p/c" {
		t.Fatalf("list %+v", es)
	}
	if es, _ := s.ListStale("p/", 2); len(es) != 2 {
		t.Fatalf("limit: %d", len(es))
	}
	if _, err := s.GetStale("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	before := s.AppliedIndex()
	for _, tc := range []struct {
		name string
		txn  Txn
		msg  string
	}{
		{"no ops", Txn{}, "no operations"},
		{"empty key", Txn{Ops: []Op{put("", "x")}}, "empty key"},
		{"long key", Txn{Ops: []Op{put(strings.Repeat("k", MaxKeyLen+1), "x")}}, "longer than"},
		{"bad op", Txn{Ops: []Op{{Type: 9, Key: "k"}}}, "unknown op type"},
		{"too large", Txn{Ops: []Op{put("k", strings.Repeat("v", MaxTxnBytes))}}, "exceeds"},
		{"too many", Txn{Ops: make([]Op, MaxTxnOps+1)}, "more than"},
		{"change without a record", Txn{Ops: []Op{put("k", "x")}}, "without its audit record"},
		{"leaf not of its value", Txn{Ops: []Op{put("k", "x")}, Audit: []AuditLeaf{{Hash: leafFor(1).Hash, Value: []byte("other")}}}, "audit leaf refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Txn(ctx, tc.txn)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want ErrInvalid with %q", err, tc.msg)
			}
		})
	}
	if s.AppliedIndex() != before {
		t.Fatal("an invalid txn reached the log")
	}
}

// TestGetMany: the entries of the keys that exist, in the order asked,
// with their versions; absent keys left out.
func TestGetMany(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	idx, err := s.Txn(ctx, rec(Txn{Ops: []Op{put("p/a", "1"), put("p/b", "2"), put("p/c", "3")}}))
	if err != nil {
		t.Fatal(err)
	}
	es, err := s.GetMany(ctx, []string{"p/c", "nope", "p/a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Key != "p/c" || string(es[0].Value) != "3" || es[1].Key != "p/a" || string(es[1].Value) != "1" ||
		es[0].Version != idx || es[1].Version != idx {
		t.Fatalf("GetMany: %+v (version want %d)", es, idx)
	}
	if es, err := s.GetMany(ctx, nil); err != nil || len(es) != 0 {
		t.Fatalf("no keys: %+v %v", es, err)
	}
}

func TestSecondOpenFails(t *testing.T) {
	dir := t.TempDir()
	open(t, dir)
	if _, err := Open(Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
}

func FuzzDecodeTxn(f *testing.F) {
	f.Add(encodeTxn(Txn{Conds: []Cond{{Key: "a", Version: 3}}, Ops: []Op{put("a", "v"), {Type: OpDelete, Key: "b"}}}))
	f.Add([]byte{1, 0, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(encodeTxn(Txn{Ops: []Op{put("a", "v")}, Audit: []AuditLeaf{{Hash: make([]byte, 32), Value: []byte("x")}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		txn, err := decodeTxn(b)
		if err != nil {
			return
		}
		if again := encodeTxn(txn); !bytes.Equal(again, b) {
			t.Fatalf("decode/encode not canonical: %x -> %x", b, again)
		}
	})
}

func BenchmarkTxnSingle(b *testing.B) {
	s := open(b, b.TempDir())
	v := bytes.Repeat([]byte{1}, 1024)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := s.Txn(ctx, rec(Txn{Ops: []Op{{Type: OpPut, Key: fmt.Sprintf("k%d", i%1000), Value: v}}})); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTxnParallel(b *testing.B) {
	s := open(b, b.TempDir())
	v := bytes.Repeat([]byte{1}, 1024)
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Txn(ctx, rec(Txn{Ops: []Op{{Type: OpPut, Key: fmt.Sprintf("k%d", n.Add(1)%1000), Value: v}}})); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchStore(b *testing.B) *Store {
	s := open(b, b.TempDir())
	if _, err := s.Txn(context.Background(), rec(Txn{Ops: []Op{{Type: OpPut, Key: "k", Value: make([]byte, 1024)}}})); err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkGet(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(ctx, "k"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetParallel(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Get(ctx, "k"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkGetStale(b *testing.B) {
	s := benchStore(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetStale("k"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSnapshotDirPrivate: the snapshots directory is the owner's alone,
// also when an older version made it 0755.
func TestSnapshotDirPrivate(t *testing.T) {
	dir := t.TempDir()
	snaps := filepath.Join(dir, "raft", "snapshots")
	if err := os.MkdirAll(snaps, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(snaps, 0o755); err != nil {
		t.Fatal(err)
	}
	open(t, dir)
	fi, err := os.Stat(snaps)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Fatalf("snapshots directory mode %o, want 700", perm)
	}
}
