package core

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store"
)

// TestChangesCarryTheirRecord runs core over a real store: init commits
// its own record; while unsealed a change commits only with a record (the
// request's pending one, for rotation too); sealed, the store takes no
// transaction at all.
func TestChangesCarryTheirRecord(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	c := New(Config{Store: st})
	leafOf := func(enc Encrypter, b string) store.AuditLeaf {
		h := audit.LeafHash([]byte(b))
		ct, err := enc.Encrypt(audit.LeafAAD(h), []byte(b))
		if err != nil {
			t.Fatal(err)
		}
		return store.AuditLeaf{Hash: h, Value: ct}
	}
	pending := func(what string) (context.Context, *PendingAudit) {
		p := NewPendingAudit(func() (store.AuditLeaf, error) { return leafOf(c, what), nil })
		return WithPendingAudit(ctx, p), p
	}
	treeSize := func() uint64 {
		ts, err := st.AuditState()
		if err != nil {
			t.Fatal(err)
		}
		return ts.Size
	}

	res, err := c.Init(ctx, 1, 1, func(enc Encrypter, _ string) ([]store.Op, store.AuditLeaf, error) {
		return nil, leafOf(enc, "init"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := treeSize(); n != 1 {
		t.Fatalf("init left %d records, want its own", n)
	}
	// Sealed, no leaf is checked, so none is taken (the check fails first).
	raw := store.AuditLeaf{Hash: audit.LeafHash([]byte("x")), Value: []byte("x")}
	if _, err := st.Txn(ctx, store.Txn{Audit: []store.AuditLeaf{raw}}); !errors.Is(err, store.ErrLeaderSealed) {
		t.Fatalf("a sealed leader took a record after init: %v", err)
	}
	if err := c.UnsealWithRoot(res.RootKey); err != nil {
		t.Fatal(err)
	}

	put := store.Op{Type: store.OpPut, Key: "k", Value: []byte("v")}
	if _, err := c.Txn(ctx, store.Txn{Ops: []store.Op{put}}); !errors.Is(err, store.ErrUnaudited) || !errs.Is(err, errs.Internal) {
		t.Fatalf("a change without its record: %v", err)
	}
	wctx, p := pending("write")
	idx, err := c.Txn(wctx, store.Txn{Ops: []store.Op{put}})
	if err != nil || !p.Committed() {
		t.Fatalf("a change with its record: %v (committed %v)", err, p.Committed())
	}
	ls, err := st.AuditLeaves(treeSize()-1, 1)
	if err != nil || ls[0].RaftIndex != idx {
		t.Fatalf("the record is not in the change's command: %+v %v, want index %d", ls, err, idx)
	}

	if _, err := c.Rotate(ctx); !errors.Is(err, store.ErrUnaudited) {
		t.Fatalf("a rotation without its record: %v", err)
	}
	if ks, _ := c.KeyStatus(); ks.Term != 1 {
		t.Fatalf("a refused rotation changed the term to %d", ks.Term)
	}
	rctx, p := pending("rotate")
	ks, err := c.Rotate(rctx)
	if err != nil || ks.Term != 2 || !p.Committed() {
		t.Fatalf("rotate: %+v %v (committed %v)", ks, err, p.Committed())
	}
	kr, err := st.GetStale(keyKeyring)
	if err != nil {
		t.Fatal(err)
	}
	if ls, err := st.AuditLeaves(treeSize()-1, 1); err != nil || ls[0].RaftIndex != kr.Version {
		t.Fatalf("the rotation's record is not in its command: %+v %v, keyring at %d", ls, err, kr.Version)
	}

	c.Seal()
	if _, err := st.Txn(ctx, store.Txn{Audit: []store.AuditLeaf{raw}}); !errors.Is(err, store.ErrLeaderSealed) {
		t.Fatalf("a sealed leader took a record: %v", err)
	}
}
