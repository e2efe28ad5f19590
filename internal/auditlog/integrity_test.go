package auditlog_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store"
	"github.com/warden-sec/warden/internal/store/kv"
)

// testCore is the part of internal/core the service uses: AES-GCM under a
// fixed key with the storage key as additional data, over a real store.
type testCore struct {
	st   *store.Store
	aead cipher.AEAD
}

func newTestCore(t testing.TB, st *store.Store) *testCore {
	b, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return &testCore{st: st, aead: a}
}

var nonce atomic.Uint64

func (c *testCore) Encrypt(aad string, pt []byte) ([]byte, error) {
	n := binary.BigEndian.AppendUint64(make([]byte, 4), nonce.Add(1))
	return c.aead.Seal(n, n, pt, []byte(aad)), nil
}

func (c *testCore) Decrypt(aad string, ct []byte) ([]byte, error) {
	if len(ct) < 12 {
		return nil, errors.New("short")
	}
	return c.aead.Open(nil, ct[:12], ct[12:], []byte(aad))
}

func (c *testCore) GetStale(key string) (store.Entry, error) {
	e, err := c.st.GetStale(key)
	if err != nil {
		return e, err
	}
	e.Value, err = c.Decrypt(key, e.Value)
	return e, err
}

func (c *testCore) Get(ctx context.Context, key string) (store.Entry, error) {
	e, err := c.st.Get(ctx, key)
	if err != nil {
		return e, err
	}
	e.Value, err = c.Decrypt(key, e.Value)
	return e, err
}

func (c *testCore) Sealed() bool { return false }

func (c *testCore) AppendAudit(ctx context.Context, leaves []store.AuditLeaf) error {
	_, err := c.st.Txn(ctx, store.Txn{Audit: leaves})
	return err
}

func (c *testCore) Txn(ctx context.Context, t store.Txn) (uint64, error) {
	ops := make([]store.Op, len(t.Ops))
	for i, op := range t.Ops {
		ops[i] = op
		if op.Type == store.OpPut {
			ops[i].Value, _ = c.Encrypt(op.Key, op.Value)
		}
	}
	t.Ops = ops
	// Like core: the first transaction carries the pending record of ctx.
	if p := kv.PendingFrom(ctx); p != nil && !p.Committed() {
		leaf, err := p.Leaf()
		if err != nil {
			return 0, err
		}
		t.Audit = append(t.Audit, leaf)
		idx, err := c.st.Txn(ctx, t)
		if err == nil {
			p.MarkCommitted()
		}
		return idx, err
	}
	return c.st.Txn(ctx, t)
}

// logDir holds a store whose audit log has n entries (init's record and
// n-1 writes) and the audit keys.
func logDir(t testing.TB, n int) string {
	dir := t.TempDir()
	st, svc := openLog(t, dir)
	ops, err := auditlog.Bootstrap(newTestCore(t, st), "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	init, err := svc.InitLeaf(newTestCore(t, st), &audit.Entry{Action: "sys.init", Outcome: 200, Time: audit.FormatTime(time.Unix(0, 0))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Txn(ctx, store.Txn{Ops: ops, Audit: []store.AuditLeaf{init}}); err != nil {
		t.Fatal(err)
	}
	for i := range n - 1 {
		e := &audit.Entry{Action: "kv.write", Outcome: 200, Resource: fmt.Sprintf("Secret::\"k%d\"", i), Time: audit.FormatTime(time.Unix(int64(i), 0))}
		if err := svc.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func openLog(t testing.TB, dir string) (*store.Store, *auditlog.Service) {
	t.Helper()
	st, err := store.Open(store.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tc := newTestCore(t, st)
	st.SetLeafCheck(func(l store.AuditLeaf) error {
		pt, err := tc.Decrypt(audit.LeafAAD(l.Hash), l.Value)
		if err != nil {
			return err
		}
		if pt, err = audit.UnpackLeaf(pt); err != nil {
			return err
		}
		if !bytes.Equal(audit.LeafHash(pt), l.Hash) {
			return errors.New("leaf does not hash to its hash")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := st.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	svc, err := auditlog.New(newTestCore(t, st), st, auditlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st, svc
}

// corrupt rewrites one value of a bucket of the stopped store's database.
func corrupt(t *testing.T, dir, bucket string, key []byte, edit func([]byte) []byte) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "fsm.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		v := b.Get(key)
		if v == nil {
			return fmt.Errorf("%s %x not stored", bucket, key)
		}
		return b.Put(key, edit(append([]byte(nil), v...)))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func nodeKey(level byte, index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{level}, index)
}

func flip(b []byte) []byte { b[len(b)-1] ^= 1; return b }

// TestScrubNamesDamage: each kind of alteration of a stopped server's
// stored tree is found by one scrub pass and named, the log is marked
// damaged, and no checkpoint is signed afterwards.
func TestScrubNamesDamage(t *testing.T) {
	tests := []struct {
		name   string
		bucket string
		key    []byte
		edit   func([]byte) []byte
		want   string
	}{
		{"interior node", "audit_nodes", nodeKey(1, 2), flip, "stored Merkle node (1, 2) altered"},
		{"high interior node", "audit_nodes", nodeKey(3, 1), flip, "stored Merkle node (3, 1) altered"},
		{"leaf", "audit_leaves", binary.BigEndian.AppendUint64(nil, 5), flip, "entry 5 was altered"},
		{"leaf's raft index", "audit_leaves", binary.BigEndian.AppendUint64(nil, 5), func(b []byte) []byte { return b[:4] }, "entry 5 was altered"},
		{"level-0 node", "audit_nodes", nodeKey(0, 9), flip, "stored Merkle node (0, 9) altered"},
		{"last leaf's level-0 node", "audit_nodes", nodeKey(0, 20), flip, "stored Merkle node (0, 20) altered"},
		{"tree state", "meta", []byte("audit_tree"), flip, "stored tree state altered"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := logDir(t, 21)
			corrupt(t, dir, tc.bucket, tc.key, tc.edit)
			st, _ := openLog(t, dir)
			var logs bytes.Buffer
			svc, err := auditlog.New(newTestCore(t, st), st, auditlog.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			err = svc.Scrub(context.Background())
			if !errors.Is(err, audit.ErrDamaged) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("scrub: %v, want %q", err, tc.want)
			}
			if d := svc.Damaged(); d == nil || !strings.Contains(d.Error(), tc.want) {
				t.Fatalf("Damaged() = %v", d)
			}
			if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, tc.want) {
				t.Fatalf("no ERROR log naming the damage:\n%s", l)
			}
			_, err = svc.Checkpoint(context.Background())
			if !errs.Is(err, errs.Unavailable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("checkpoint over a damaged log: %v", err)
			}
		})
	}
}

// TestScrubHealthyLog: a pass over an untouched log finds nothing, and
// checkpoints, entries and proofs are served.
func TestScrubHealthyLog(t *testing.T) {
	dir := logDir(t, 21)
	_, svc := openLog(t, dir)
	if err := svc.Scrub(context.Background()); err != nil {
		t.Fatal(err)
	}
	note, err := svc.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, vkey, err := svc.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	cp, err := audit.Open(note, vkey)
	if err != nil || cp.Size != 21 {
		t.Fatalf("checkpoint %+v: %v", cp, err)
	}
	es, err := svc.Entries(0, 100)
	if err != nil || len(es) != 21 {
		t.Fatalf("%d entries: %v", len(es), err)
	}
	for i, e := range es {
		if e.Altered != nil {
			t.Fatalf("entry %d: %v", i, e.Altered)
		}
		p, err := svc.InclusionProof(uint64(i), 21)
		if err != nil {
			t.Fatal(err)
		}
		if err := cp.VerifyInclusion(e.Leaf, uint64(i), p); err != nil {
			t.Fatal(err)
		}
	}
	for old := uint64(1); old <= 21; old++ {
		if _, err := svc.ConsistencyProof(old, 21); err != nil {
			t.Fatalf("consistency %d..21: %v", old, err)
		}
	}
}

// TestProofOverCorruptedNodeRefused: a proof that would carry an altered
// stored node is refused (and marks the log damaged) instead of served,
// while no check has run yet; a proof that does not touch it is served.
func TestProofOverCorruptedNodeRefused(t *testing.T) {
	dir := logDir(t, 16)
	corrupt(t, dir, "audit_nodes", nodeKey(1, 2), flip) // covers entries 4 and 5
	_, svc := openLog(t, dir)
	if _, err := svc.InclusionProof(0, 16); err != nil {
		t.Fatalf("a proof that does not use the altered node: %v", err)
	}
	if svc.Damaged() != nil {
		t.Fatal("marked damaged before anything altered was read")
	}
	p, err := svc.InclusionProof(6, 16) // its path holds node (1, 2)
	if !errs.Is(err, errs.Unavailable) || !strings.Contains(err.Error(), "does not verify") || p != nil {
		t.Fatalf("proof over an altered node: %v %v", p, err)
	}
	if svc.Damaged() == nil {
		t.Fatal("not marked damaged")
	}
	if _, err := svc.InclusionProof(0, 16); !errs.Is(err, errs.Unavailable) {
		t.Fatalf("proof from a damaged log: %v", err)
	}
}

// TestConsistencyProofOverCorruptedNodeRefused: the same for consistency
// proofs, through the root of the older size.
func TestConsistencyProofOverCorruptedNodeRefused(t *testing.T) {
	dir := logDir(t, 16)
	corrupt(t, dir, "audit_nodes", nodeKey(2, 0), flip) // the root of size 4
	_, svc := openLog(t, dir)
	if _, err := svc.ConsistencyProof(4, 16); !errs.Is(err, errs.Unavailable) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("consistency proof over an altered node: %v", err)
	}
}

// TestLegacyLeavesOpen: leaves sealed under the one fixed additional data
// of earlier releases still open, and still have to hash to the tree's
// hash at their index: one copied to another index is altered.
func TestLegacyLeavesOpen(t *testing.T) {
	dir := logDir(t, 6)
	tc := newTestCore(t, nil)
	var legacy []byte
	db, err := bolt.Open(filepath.Join(dir, "fsm.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		leaves := tx.Bucket([]byte("audit_leaves"))
		key := binary.BigEndian.AppendUint64(nil, 3)
		v := leaves.Get(key)
		h := tx.Bucket([]byte("audit_nodes")).Get(nodeKey(0, 3))
		pt, err := tc.Decrypt(audit.LeafAAD(h), v[8:])
		if err != nil {
			return err
		}
		ct, _ := tc.Encrypt("audit/leaf", pt)
		legacy = append(append([]byte(nil), v[:8]...), ct...)
		return leaves.Put(key, legacy)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	st, svc := openLog(t, dir)
	if err := svc.Scrub(context.Background()); err != nil {
		t.Fatalf("scrub of a log with a legacy leaf: %v", err)
	}
	es, err := svc.Entries(3, 1)
	if err != nil || len(es) != 1 || es[0].Altered != nil || es[0].Entry.Action != "kv.write" {
		t.Fatalf("legacy entry 3: %+v, %v", es, err)
	}
	st.Close()

	corrupt(t, dir, "audit_leaves", binary.BigEndian.AppendUint64(nil, 4), func([]byte) []byte { return legacy })
	_, svc = openLog(t, dir)
	if err := svc.Scrub(context.Background()); !errors.Is(err, audit.ErrDamaged) || !strings.Contains(err.Error(), "entry 4 was altered") {
		t.Fatalf("a legacy leaf copied to index 4: %v", err)
	}
}

// rewriteLeaf replaces the stored value of leaf idx of a stopped store with
// edit's result, given the leaf's hash and its decrypted at-rest form, and
// encrypts it again under the leaf's own additional data.
func rewriteLeaf(t *testing.T, dir string, idx uint64, edit func(h, pt []byte) []byte) {
	t.Helper()
	tc := newTestCore(t, nil)
	db, err := bolt.Open(filepath.Join(dir, "fsm.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		leaves := tx.Bucket([]byte("audit_leaves"))
		key := binary.BigEndian.AppendUint64(nil, idx)
		v := leaves.Get(key)
		h := tx.Bucket([]byte("audit_nodes")).Get(nodeKey(0, idx))
		pt, err := tc.Decrypt(audit.LeafAAD(h), v[8:])
		if err != nil {
			return err
		}
		ct, _ := tc.Encrypt(audit.LeafAAD(h), edit(h, pt))
		return leaves.Put(key, append(append([]byte(nil), v[:8]...), ct...))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUnpackedLeavesOpen: leaves stored before packing (issue 11), whose
// encrypted value is the canonical bytes themselves, still open, pass the
// scrub and read back as the same entry; a packed form that does not
// unpack is named altered.
func TestUnpackedLeavesOpen(t *testing.T) {
	dir := logDir(t, 6)
	var want []byte
	rewriteLeaf(t, dir, 3, func(_, pt []byte) []byte {
		if pt[0] == '{' {
			t.Fatal("leaf 3 was stored unpacked")
		}
		b, err := audit.UnpackLeaf(pt)
		if err != nil {
			t.Fatal(err)
		}
		want = b
		return b
	})
	st, svc := openLog(t, dir)
	if err := svc.Scrub(context.Background()); err != nil {
		t.Fatalf("scrub of a log with an unpacked leaf: %v", err)
	}
	es, err := svc.Entries(2, 3)
	if err != nil || len(es) != 3 {
		t.Fatalf("entries: %+v, %v", es, err)
	}
	for _, e := range es {
		if e.Altered != nil || e.Entry.Action != "kv.write" {
			t.Fatalf("entry %d: %+v", e.Index, e)
		}
	}
	if !bytes.Equal(es[1].Leaf, want) {
		t.Fatalf("unpacked entry 3 reads back as %q, want %q", es[1].Leaf, want)
	}
	// New records are packed, and the log with both forms verifies.
	if err := svc.Record(context.Background(), &audit.Entry{Action: "kv.read", Outcome: 200, Time: audit.FormatTime(time.Unix(99, 0))}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Checkpoint(context.Background()); err != nil {
		t.Fatalf("checkpoint over both forms: %v", err)
	}
	st.Close()

	rewriteLeaf(t, dir, 4, func(_, pt []byte) []byte { return append([]byte{pt[0]}, 0xff, 0xff, 0xff) })
	_, svc = openLog(t, dir)
	if err := svc.Scrub(context.Background()); !errors.Is(err, audit.ErrDamaged) || !strings.Contains(err.Error(), "entry 4 was altered") {
		t.Fatalf("a packed leaf that does not unpack: %v", err)
	}
}
