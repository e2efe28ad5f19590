package store

import (
	"bytes"
	"encoding/binary"
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
	for i, l := range leaves {
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(l.Value)), raftIndex)
		if err := lb.Put(binary.BigEndian.AppendUint64(nil, st.Size+uint64(i)), append(v, l.Value...)); err != nil {
			return err
		}
	}
	nb := tx.Bucket(bucketAuditNodes)
	for _, n := range nodes {
		if err := nb.Put(nodeKey(n.Level, n.Index), n.Hash); err != nil {
			return err
		}
	}
	sb, _ := next.MarshalBinary()
	return meta.Put(keyAuditTree, sb)
}

func nodeKey(level uint, index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{byte(level)}, index)
}

// auditState returns the audit tree state.
func (f *fsm) auditState() (audit.TreeState, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var st audit.TreeState
	err := f.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta).Get(keyAuditTree); b != nil {
			return st.UnmarshalBinary(b)
		}
		return nil
	})
	return st, err
}

// GetNode implements audit.NodeStore over the local state.
func (f *fsm) GetNode(level uint, index uint64) ([]byte, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var h []byte
	err := f.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAuditNodes).Get(nodeKey(level, index))
		if v == nil {
			return fmt.Errorf("%w: audit node (%d, %d)", ErrNotFound, level, index)
		}
		h = bytes.Clone(v)
		return nil
	})
	return h, err
}

// auditLeaves returns up to count stored leaves from start.
func (f *fsm) auditLeaves(start uint64, count int) ([]StoredLeaf, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []StoredLeaf
	err := f.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAuditLeaves).Cursor()
		want := start
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, start)); k != nil && len(out) < count; k, v = c.Next() {
			if binary.BigEndian.Uint64(k) != want {
				return fmt.Errorf("store: audit leaf %d missing", want)
			}
			if len(v) < 8 {
				return fmt.Errorf("store: audit leaf %d malformed", want)
			}
			out = append(out, StoredLeaf{RaftIndex: binary.BigEndian.Uint64(v), Value: bytes.Clone(v[8:])})
			want++
		}
		return nil
	})
	return out, err
}
