package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/warden-sec/warden/internal/audit"
	bolt "go.etcd.io/bbolt"
)

// appendAudit appends leaves to the audit Merkle tree, storing the leaf
// bytes, every node the append completes, and the new tree state.
func appendAudit(tx *bolt.Tx, leaves []AuditLeaf, raftIndex uint64) error {
	meta := tx.Bucket(bucketMeta)
	var st audit.TreeState
	if b := meta.Get(keyAuditTree); b != nil {
		if err := st.UnmarshalBinary(b); err != nil {
			return fmt.Errorf("store: audit tree state: %w", err)
		}
	}
	hashes := make([][]byte, len(leaves))
	for i, l := range leaves {
		hashes[i] = l.Hash
	}
	next, nodes, err := audit.Append(st, hashes)
	if err != nil {
		return fmt.Errorf("store: audit append: %w", err)
	}
	lb := tx.Bucket(bucketAuditLeaves)
	// Leaves and nodes are only ever appended (at the end of the leaves,
	// at the end of each level's nodes): pages split full rather than
	// half full (bbolt's default, for random inserts), which halves the
	// pages they take.
	lb.FillPercent = appendFill
	for i, l := range leaves {
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(l.Value)), raftIndex)
		if err := lb.Put(binary.BigEndian.AppendUint64(nil, st.Size+uint64(i)), append(v, l.Value...)); err != nil {
			return err
		}
	}
	nb := tx.Bucket(bucketAuditNodes)
	nb.FillPercent = appendFill
	for _, n := range nodes {
		if err := nb.Put(nodeKey(n.Level, n.Index), n.Hash); err != nil {
			return err
		}
	}
	sb, _ := next.MarshalBinary()
	return meta.Put(keyAuditTree, sb)
}

// pruned returns the pruned bound stored in meta (0: nothing pruned).
func pruned(meta *bolt.Bucket) (uint64, error) {
	b := meta.Get(keyAuditPruned)
	if b == nil {
		return 0, nil
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: pruned bound of %d bytes", audit.ErrCorrupt, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// checkPrune refuses a prune bound (8 bytes, big-endian) beyond the tree.
func checkPrune(tx *bolt.Tx, value []byte) error {
	if len(value) != 8 {
		return fmt.Errorf("%w: audit prune bound of %d bytes", ErrInvalid, len(value))
	}
	var st audit.TreeState
	if b := tx.Bucket(bucketMeta).Get(keyAuditTree); b != nil {
		if err := st.UnmarshalBinary(b); err != nil {
			return fmt.Errorf("store: audit tree state: %w", err)
		}
	}
	if before := binary.BigEndian.Uint64(value); before > st.Size {
		return fmt.Errorf("%w: audit prune bound %d beyond the tree's size %d", ErrInvalid, before, st.Size)
	}
	return nil
}

// pruneAudit deletes the stored leaves from the current pruned bound up to
// before and records before as the bound; the Merkle nodes stay (every
// proof and the integrity check of the nodes need them; they are 32 bytes
// a node). A bound at or below the current one changes nothing.
func pruneAudit(tx *bolt.Tx, before uint64) error {
	meta := tx.Bucket(bucketMeta)
	from, err := pruned(meta)
	if err != nil {
		return err
	}
	if before <= from {
		return nil
	}
	c := tx.Bucket(bucketAuditLeaves).Cursor()
	end := binary.BigEndian.AppendUint64(nil, before)
	for k, _ := c.Seek(binary.BigEndian.AppendUint64(nil, from)); k != nil && bytes.Compare(k, end) < 0; k, _ = c.Seek(binary.BigEndian.AppendUint64(nil, from)) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return meta.Put(keyAuditPruned, end)
}

// appendFill is the fill of the pages of the append-only audit buckets
// when they split.
const appendFill = 0.95

func nodeKey(level uint, index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{byte(level)}, index)
}

// auditState returns the audit tree state.
func (f *fsm) auditState() (st audit.TreeState, err error) {
	err = f.viewAudit(func(v AuditView) error {
		st, err = v.State()
		return err
	})
	return st, err
}

// GetNode implements audit.NodeStore over the local state.
func (f *fsm) GetNode(level uint, index uint64) (h []byte, err error) {
	err = f.viewAudit(func(v AuditView) error {
		h, err = v.GetNode(level, index)
		return err
	})
	return h, err
}

// auditLeaves returns up to count stored leaves from start.
func (f *fsm) auditLeaves(start uint64, count int) (out []StoredLeaf, err error) {
	err = f.viewAudit(func(v AuditView) error {
		out, err = v.Leaves(start, count)
		return err
	})
	return out, err
}

// viewAudit runs fn in one read transaction of the state machine.
func (f *fsm) viewAudit(fn func(AuditView) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.db.View(func(tx *bolt.Tx) error { return fn(auditView{tx: tx}) })
}

// AuditView is a consistent, read-only view of the local audit tree (one
// read transaction of the state machine's database): the tree state, the
// stored nodes and the stored leaves all belong to the same applied index.
// It is valid only inside the function given to [Store.ViewAudit]; what
// its methods return is copied and may be kept. It implements
// audit.NodeStore.
type auditView struct{ tx *bolt.Tx }

var _ AuditView = auditView{}

// State returns the tree's size and compact range (the zero state for an
// empty tree), or audit.ErrCorrupt if the stored state does not decode.
func (v auditView) State() (audit.TreeState, error) {
	var st audit.TreeState
	if b := v.tx.Bucket(bucketMeta).Get(keyAuditTree); b != nil {
		if err := st.UnmarshalBinary(b); err != nil {
			return audit.TreeState{}, err
		}
	}
	return st, nil
}

// GetNode returns the stored hash of node (level, index), or an error
// wrapping ErrNotFound.
func (v auditView) GetNode(level uint, index uint64) ([]byte, error) {
	h := v.tx.Bucket(bucketAuditNodes).Get(nodeKey(level, index))
	if h == nil {
		return nil, fmt.Errorf("%w: audit node (%d, %d)", ErrNotFound, level, index)
	}
	return bytes.Clone(h), nil
}

// Pruned returns the pruned bound (see kv.AuditView).
func (v auditView) Pruned() (uint64, error) { return pruned(v.tx.Bucket(bucketMeta)) }

// Leaves returns up to count stored leaves from index start, fewer at the
// end of the log. A gap in the stored indexes, or a value too short to
// hold its Raft index, is an *audit.Damage naming the entry.
func (v auditView) Leaves(start uint64, count int) ([]StoredLeaf, error) {
	var out []StoredLeaf
	c := v.tx.Bucket(bucketAuditLeaves).Cursor()
	want := start
	for k, val := c.Seek(binary.BigEndian.AppendUint64(nil, start)); k != nil && len(out) < count; k, val = c.Next() {
		if binary.BigEndian.Uint64(k) != want {
			return nil, &audit.Damage{Kind: audit.DamagedEntry, Index: want, Detail: "it is missing"}
		}
		if len(val) < 8 {
			return nil, &audit.Damage{Kind: audit.DamagedEntry, Index: want, Detail: "it is malformed"}
		}
		out = append(out, StoredLeaf{RaftIndex: binary.BigEndian.Uint64(val), Value: bytes.Clone(val[8:])})
		want++
	}
	return out, nil
}

// ViewAudit runs fn with a consistent view of the local audit tree. Keep
// fn short: a long read transaction holds back the database's page reuse
// and growth; read a large tree in pages, one ViewAudit each.
func (s *Store) ViewAudit(fn func(AuditView) error) error { return s.fsm.viewAudit(fn) }

// maxCheckErrors bounds the page-check errors reported by CheckDatabase.
const maxCheckErrors = 8

// CheckDatabase runs the database engine's own consistency check (bbolt's
// page check: every page reachable once or free, page types, key order)
// over the state machine's database. It returns nil or an error listing up
// to a few of the problems found. The check runs in a write transaction
// that is rolled back (bbolt's check reads the free list, which only a
// writer may do while other writers run), so applies wait for it: call it
// at start and from a background scrub, not per request.
func (s *Store) CheckDatabase() error {
	f := s.fsm
	f.mu.RLock()
	defer f.mu.RUnlock()
	tx, err := f.db.Begin(true)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var found []error
	for err := range tx.Check() {
		if len(found) < maxCheckErrors {
			found = append(found, err)
		}
	}
	return errors.Join(found...)
}
