package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/warden-sec/warden/internal/audit"
)

func leafFor(i int) AuditLeaf {
	b := []byte(fmt.Sprintf(`{"n":%d}`, i))
	return AuditLeaf{Hash: audit.LeafHash(b), Value: b}
}

// TestAuditRidesWithTxn: a change and its audit leaves commit together or
// not at all, and the stored nodes serve proofs that verify.
func TestAuditRidesWithTxn(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	var leaves [][]byte
	for i := 0; i < 20; i++ {
		l := leafFor(i)
		if _, err := s.Txn(ctx, Txn{Ops: []Op{put(fmt.Sprint("k", i), "v")}, Audit: []AuditLeaf{l}}); err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, l.Value)
	}
	// A failed condition appends nothing.
	_, err := s.Txn(ctx, Txn{Conds: []Cond{{Key: "k1", Version: 0}}, Ops: []Op{put("k1", "x")}, Audit: []AuditLeaf{leafFor(99)}})
	if !errors.Is(err, ErrConflict) {
		t.Fatal(err)
	}
	// Audit-only batch (group-committed read records).
	batch := []AuditLeaf{leafFor(20), leafFor(21), leafFor(22)}
	if _, err := s.Txn(ctx, Txn{Audit: batch}); err != nil {
		t.Fatal(err)
	}
	for _, l := range batch {
		leaves = append(leaves, l.Value)
	}
	check := func(s *Store) {
		t.Helper()
		st, err := s.AuditState()
		if err != nil || st.Size != 23 {
			t.Fatalf("tree size %d: %v", st.Size, err)
		}
		root, _ := st.Root()
		if !bytes.Equal(root, audit.RootOf(leaves)) {
			t.Fatal("root over stored leaves differs")
		}
		got, err := s.AuditLeaves(0, 100)
		if err != nil || len(got) != 23 || !bytes.Equal(got[22].Value, leaves[22]) || got[0].RaftIndex == 0 {
			t.Fatalf("leaves: %d %v", len(got), err)
		}
		for i := uint64(0); i < 23; i++ {
			p, err := audit.InclusionProof(s.AuditNodes(), i, 23)
			if err != nil {
				t.Fatal(err)
			}
			if err := audit.VerifyInclusion(leaves[i], i, 23, root, p); err != nil {
				t.Fatalf("inclusion %d: %v", i, err)
			}
		}
		p, err := audit.ConsistencyProof(s.AuditNodes(), 5, 23)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.VerifyConsistency(5, 23, audit.RootOf(leaves[:5]), root, p); err != nil {
			t.Fatal(err)
		}
	}
	check(s)
	s.Close()
	check(open(t, dir)) // survives a restart
	if _, err := s.Txn(ctx, Txn{Audit: []AuditLeaf{{Hash: []byte("short")}}}); !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

func TestAuditLeafValidation(t *testing.T) {
	s := open(t, t.TempDir())
	if _, err := s.Txn(context.Background(), Txn{Audit: []AuditLeaf{{Hash: []byte("short")}}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short leaf hash: %v", err)
	}
}

// TestAuditPrune: OpPruneAudit removes the bodies of the leaves below its
// bound and keeps every node, so proofs still verify; a bound beyond the
// tree is refused with nothing applied; a lower bound changes nothing; the
// bound survives a restart.
func TestAuditPrune(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	var leaves [][]byte
	for i := 0; i < 10; i++ {
		l := leafFor(i)
		mustTxn(t, s, Txn{Audit: []AuditLeaf{l}})
		leaves = append(leaves, l.Value)
	}
	prune := func(before uint64) Txn {
		return Txn{Ops: []Op{{Type: OpPruneAudit, Key: PruneAuditKey, Value: binary.BigEndian.AppendUint64(nil, before)}}, Audit: []AuditLeaf{leafFor(100 + int(before))}}
	}
	if _, err := s.Txn(ctx, prune(12)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("prune beyond the tree: %v", err)
	}
	if _, err := s.Txn(ctx, Txn{Ops: []Op{{Type: OpPruneAudit, Key: "x", Value: make([]byte, 8)}}, Audit: []AuditLeaf{leafFor(1)}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("prune with another key: %v", err)
	}
	mustTxn(t, s, prune(6))
	leaves = append(leaves, leafFor(106).Value)
	mustTxn(t, s, prune(3)) // lower: nothing changes but its record
	leaves = append(leaves, leafFor(103).Value)
	check := func(s *Store) {
		t.Helper()
		err := s.ViewAudit(func(v AuditView) error {
			p, err := v.Pruned()
			if err != nil || p != 6 {
				t.Fatalf("pruned %d, %v; want 6", p, err)
			}
			got, err := v.Leaves(6, 100)
			if err != nil || len(got) != 6 || !bytes.Equal(got[0].Value, leaves[6]) {
				t.Fatalf("leaves from 6: %d, %v", len(got), err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		st, _ := s.AuditState()
		root, _ := st.Root()
		if st.Size != 12 || !bytes.Equal(root, audit.RootOf(leaves)) {
			t.Fatalf("size %d, root differs", st.Size)
		}
		for i := uint64(0); i < 12; i++ {
			p, err := audit.InclusionProof(s.AuditNodes(), i, 12)
			if err != nil {
				t.Fatal(err)
			}
			if err := audit.VerifyInclusion(leaves[i], i, 12, root, p); err != nil {
				t.Fatalf("inclusion %d after prune: %v", i, err)
			}
		}
	}
	check(s)
	s.Close()
	check(open(t, dir))
}
