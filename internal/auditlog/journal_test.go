package auditlog_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store"
)

func testLeaf(i int) store.AuditLeaf {
	h := sha256.Sum256([]byte(strconv.Itoa(i)))
	return store.AuditLeaf{Hash: h[:], Value: []byte(fmt.Sprintf("value %d", i))}
}

func crcC(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

func openJournal(t *testing.T, dir string) *auditlog.Journal {
	t.Helper()
	j, err := auditlog.OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// unmerged returns every leaf of j not merged, checking their sequences
// run from first without gaps.
func unmerged(t *testing.T, j *auditlog.Journal, first uint64) []store.AuditLeaf {
	t.Helper()
	var out []store.AuditLeaf
	for i, r := range j.Unmerged(1<<30, 1<<30) {
		if r.Seq != first+uint64(i) {
			t.Fatalf("record %d has sequence %d, want %d", i, r.Seq, first+uint64(i))
		}
		out = append(out, r.Leaf)
	}
	return out
}

func sameLeaves(t *testing.T, got, want []store.AuditLeaf) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d leaves, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i].Hash, want[i].Hash) || !bytes.Equal(got[i].Value, want[i].Value) {
			t.Fatalf("leaf %d differs", i)
		}
	}
}

// TestJournalGroupCommit appends concurrently: every append gets its own
// sequence, and after a reopen the journal holds exactly what was
// acknowledged, in sequence order.
func TestJournalGroupCommit(t *testing.T) {
	dir := t.TempDir()
	j := openJournal(t, dir)
	const n = 200
	byseq := make([]store.AuditLeaf, n+1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq, err := j.Append(context.Background(), testLeaf(i))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seq == 0 || seq > n || byseq[seq].Hash != nil {
				t.Errorf("sequence %d given twice or out of range", seq)
				return
			}
			byseq[seq] = testLeaf(i)
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if backlog, durable := j.Backlog(); backlog != n || durable != n {
		t.Fatalf("backlog %d, durable %d; want %d, %d", backlog, durable, n, n)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j2 := openJournal(t, dir)
	if j2.ID() != j.ID() {
		t.Fatalf("id changed on reopen: %s, %s", j.ID(), j2.ID())
	}
	sameLeaves(t, unmerged(t, j2, 1), byseq[1:])
	fi, err := os.Stat(filepath.Join(dir, "00000000000000000001.wal"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("segment mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestJournalTornTail: whatever a crash leaves after the last complete
// record (it was never acknowledged) is discarded on open, and appends
// continue after the last complete record.
func TestJournalTornTail(t *testing.T) {
	rec := func(seq uint64, body []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint64(b, seq)
		return append(b, body...)
	}
	withCRC := func(b []byte) []byte {
		out := append([]byte(nil), b...)
		binary.BigEndian.PutUint32(out[4:], crcC(out[8:]))
		return out
	}
	good6 := withCRC(rec(6, append(testLeaf(6).Hash, testLeaf(6).Value...)))
	for _, tc := range []struct {
		name string
		tail []byte
	}{
		{"part of a header", []byte{0, 0, 0}},
		{"a header without its body", good6[:8]},
		{"a body cut short", good6[:len(good6)-3]},
		{"a bad checksum", rec(6, append(testLeaf(6).Hash, testLeaf(6).Value...))},
		{"zeros (a file extended, its data never written)", make([]byte, 4096)},
		{"a length beyond the limit", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}},
		{"a record out of sequence", withCRC(rec(9, append(testLeaf(9).Hash, testLeaf(9).Value...)))},
		{"a bad record followed by a good one", append(rec(6, append(testLeaf(6).Hash, 'x')), good6...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			j := openJournal(t, dir)
			var want []store.AuditLeaf
			for i := range 5 {
				if _, err := j.Append(context.Background(), testLeaf(i)); err != nil {
					t.Fatal(err)
				}
				want = append(want, testLeaf(i))
			}
			j.Close()
			seg := filepath.Join(dir, "00000000000000000001.wal")
			f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(tc.tail)
			f.Close()
			j = openJournal(t, dir)
			sameLeaves(t, unmerged(t, j, 1), want)
			seq, err := j.Append(context.Background(), testLeaf(5))
			if err != nil || seq != 6 {
				t.Fatalf("append after a torn tail: sequence %d, %v; want 6", seq, err)
			}
			j.Close()
			j = openJournal(t, dir)
			sameLeaves(t, unmerged(t, j, 1), append(want, testLeaf(5)))
		})
	}
}

// TestJournalRotation: segments whose records are all merged are removed;
// a reopen continues after the merged mark, and damage in a
// complete segment (not a torn tail) fails the open.
func TestJournalRotation(t *testing.T) {
	dir := t.TempDir()
	j := openJournal(t, dir)
	auditlog.SetSegmentBytes(j, 256) // a few records per segment
	var all []store.AuditLeaf
	for i := range 40 {
		if _, err := j.Append(context.Background(), testLeaf(i)); err != nil {
			t.Fatal(err)
		}
		all = append(all, testLeaf(i))
	}
	segs := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
		return m
	}
	before := len(segs())
	if before < 5 {
		t.Fatalf("%d segments, want several", before)
	}
	if err := j.Merged(30); err != nil {
		t.Fatal(err)
	}
	sameLeaves(t, unmerged(t, j, 31), all[30:])
	after := segs()
	if len(after) >= before {
		t.Fatalf("no segment removed after the merge: %d then %d", before, len(after))
	}
	j.Close()
	j = openJournal(t, dir)
	sameLeaves(t, unmerged(t, j, 31), all[30:])
	if seq, err := j.Append(context.Background(), testLeaf(40)); err != nil || seq != 41 {
		t.Fatalf("append after the reopen: %d, %v; want 41", seq, err)
	}
	j.Close()

	b, err := os.ReadFile(after[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	if err := os.WriteFile(after[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.OpenJournal(dir); !errors.Is(err, auditlog.ErrJournalDamaged) {
		t.Fatalf("open with a damaged complete segment: %v, want ErrJournalDamaged", err)
	}
}

// journalLog opens a store with an initialized audit log and a service
// writing records to the journal in jdir.
func journalLog(t *testing.T, dir, jdir string) (*store.Store, *auditlog.Service, *auditlog.Journal) {
	t.Helper()
	st, _ := openLog(t, dir)
	j, err := auditlog.OpenJournal(jdir)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := auditlog.New(newTestCore(t, st), st, auditlog.Options{Journal: j, NodeID: "n1", MaxMergeDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return st, svc, j
}

// leafCounts returns how many times each leaf hash is in the log.
func leafCounts(t *testing.T, svc *auditlog.Service) map[string]int {
	t.Helper()
	size, err := svc.Size()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for start := uint64(0); start < size; start += auditlog.MaxEntries {
		es, err := svc.Entries(start, auditlog.MaxEntries)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Altered != nil {
				t.Fatal(e.Altered)
			}
			out[string(audit.LeafHash(e.Leaf))]++
		}
	}
	return out
}

func readEntry(i int) *audit.Entry {
	return &audit.Entry{Action: "kv.read", Outcome: 200, Resource: fmt.Sprintf("Secret::\"r%d\"", i), Time: audit.FormatTime(time.Unix(int64(i), 0))}
}

// TestMergeExactlyOnce: journaled records reach the log once each, with
// the journal's cursor, whether the merge ran normally, took effect
// without this node learning it (its cursor check then fails and it reads
// the cursor again), or is replayed from the journal after a restart.
func TestMergeExactlyOnce(t *testing.T) {
	ctx := context.Background()
	dir, jdir := logDir(t, 1), t.TempDir()
	st, svc, j := journalLog(t, dir, jdir)
	for i := range 3 {
		if err := svc.Record(ctx, readEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := j.Backlog(); n != 0 {
		t.Fatalf("%d records left after a flush", n)
	}
	key := auditlog.JournalCursorKey("n1", j.ID())
	cur, err := newTestCore(t, st).GetStale(key)
	if err != nil || string(cur.Value) != "3" {
		t.Fatalf("cursor %q, %v; want 3", cur.Value, err)
	}

	// Records 4 to 7 are journaled; 4 and 5 are merged by a transaction
	// this service does not learn about (as when the leader changed before
	// the answer came back).
	for i := 3; i < 7; i++ {
		if err := svc.Record(ctx, readEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	recs := j.Unmerged(2, 1<<20)
	if _, err := newTestCore(t, st).Txn(ctx, store.Txn{
		Conds: []store.Cond{{Key: key, Version: cur.Version}},
		Ops:   []store.Op{{Type: store.OpPut, Key: key, Value: []byte("5")}},
		Audit: []store.AuditLeaf{recs[0].Leaf, recs[1].Leaf},
	}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(ctx); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("merge over a cursor that moved: %v, want a conflict", err)
	}
	if err := svc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for i := range 7 {
		l, _, err := svc.Leaf(readEntry(i))
		if err != nil {
			t.Fatal(err)
		}
		want[string(l.Hash)] = 1
	}
	check := func(svc *auditlog.Service, size uint64) {
		t.Helper()
		got := leafCounts(t, svc)
		for h, n := range want {
			if got[h] != n {
				t.Fatalf("a record is in the log %d times, want %d", got[h], n)
			}
		}
		if got, _ := svc.Size(); got != size {
			t.Fatalf("log size %d, want %d", got, size)
		}
	}
	check(svc, 8) // init's record and seven reads

	// A restart replays the journal, whose segment still holds every
	// record, from its merged mark: nothing is merged twice.
	svc.Close()
	st.Close()
	st, svc, j = journalLog(t, dir, jdir)
	if n, _ := j.Backlog(); n != 0 {
		t.Fatalf("reopened journal holds %d records past its merged mark, want 0", n)
	}
	check(svc, 8)

	// Without the mark (a crash between the merge and the mark's write),
	// the replicated cursor says the same.
	svc.Close()
	st.Close()
	if err := os.Remove(filepath.Join(jdir, "merged")); err != nil {
		t.Fatal(err)
	}
	st, svc, j = journalLog(t, dir, jdir)
	if n, _ := j.Backlog(); n != 7 {
		t.Fatalf("reopened journal without its mark holds %d records, want 7", n)
	}
	if err := svc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := j.Backlog(); n != 0 {
		t.Fatalf("%d records left after a flush", n)
	}
	check(svc, 8)

	// A cursor that went back (a snapshot restore puts the snapshot's
	// keys back, the log keeps its leaves): the mark keeps the journal
	// from merging again.
	cur, err = newTestCore(t, st).GetStale(key)
	if err != nil {
		t.Fatal(err)
	}
	extra, _, _ := svc.Leaf(readEntry(100))
	if _, err := newTestCore(t, st).Txn(ctx, store.Txn{
		Ops:   []store.Op{{Type: store.OpPut, Key: key, Value: []byte("3")}},
		Audit: []store.AuditLeaf{extra},
	}); err != nil {
		t.Fatal(err)
	}
	svc.Close()
	st.Close()
	_, svc, j = journalLog(t, dir, jdir)
	if err := svc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := j.Backlog(); n != 0 {
		t.Fatalf("%d records wait after the flush", n)
	}
	check(svc, 9)
}

// TestJournalLagRefuses: records are refused (Unavailable) once too many
// wait for the merge, so the journal stays bounded while merging is
// impossible.
func TestJournalLagRefuses(t *testing.T) {
	st, _ := openLog(t, logDir(t, 1))
	j, err := auditlog.OpenJournal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := auditlog.New(sealedCore{newTestCore(t, st)}, st, auditlog.Options{Journal: j, MaxJournalLag: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	for i := range 3 {
		if err := svc.Record(context.Background(), readEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.Record(context.Background(), readEntry(3)); !errs.Is(err, errs.Unavailable) {
		t.Fatalf("record over the lag: %v, want Unavailable", err)
	}
	if err := svc.Flush(context.Background()); !errs.Is(err, errs.Unavailable) {
		t.Fatalf("flush while sealed: %v, want Unavailable", err)
	}
}

// sealedCore encrypts (records can be made) but reports sealed, so the
// merger waits.
type sealedCore struct{ *testCore }

func (sealedCore) Sealed() bool { return true }

// BenchmarkRecord records reads concurrently (16 per CPU), on a real store,
// as a Raft command per batch (no journal) and through the journal.
func BenchmarkRecord(b *testing.B) {
	for _, journaled := range []bool{false, true} {
		name := "raft"
		if journaled {
			name = "journal"
		}
		b.Run(name, func(b *testing.B) {
			st, _ := openLog(b, logDir(b, 1))
			o := auditlog.Options{}
			if journaled {
				j, err := auditlog.OpenJournal(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				o = auditlog.Options{Journal: j}
			}
			svc, err := auditlog.New(newTestCore(b, st), st, o)
			if err != nil {
				b.Fatal(err)
			}
			defer svc.Close()
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					if err := svc.Record(context.Background(), readEntry(i)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if err := svc.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkMerge measures the merge of 2,000 journaled records into the
// log (four commands of 512 or fewer): the leader's leaf checks (openLog's,
// which decrypt and hash each leaf like core's), the Raft commits and the
// state machine's Merkle appends.
func BenchmarkMerge(b *testing.B) {
	st, _ := openLog(b, logDir(b, 1))
	j, err := auditlog.OpenJournal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	svc, err := auditlog.New(newTestCore(b, st), st, auditlog.Options{Journal: j, MaxMergeDelay: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var wg sync.WaitGroup
		for k := range 2000 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := svc.Record(ctx, readEntry(i*2000+k)); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		b.StartTimer()
		if err := svc.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
