package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/warden-sec/warden/internal/audit"
)

// keyRestoreLeaf, in the meta bucket of a database built by Restore, is the
// tree index of the restore's own audit leaf: its Raft index is known only
// when Raft installs the database, which fills it in (see settleRestore).
var keyRestoreLeaf = []byte("restore_leaf")

// Restore replaces the cluster's state with the snapshot's, except the
// audit log, which keeps growing: the database installed is the snapshot's
// keys plus the current audit log (leaves, nodes, tree state) with leaf,
// the record of the restore, appended. The restore and its record are one
// change, installed by one Raft operation; a restore cannot shrink or fork
// the audit tree. Keys named in keep keep their current value instead of
// the snapshot's (core keeps the keyring: it only ever gains terms, and
// records written since the snapshot may be under its newer ones).
//
// Restore must run on the leader. It pauses proposals through this node
// (transactions wait), waits until every command before it is applied,
// builds the database and has Raft install it; followers install it from
// the leader. It returns the index the state was installed at, which is
// the Raft index stored with the restore's leaf.
func (s *Store) Restore(ctx context.Context, f *SnapshotFile, leaf AuditLeaf, keep ...string) (uint64, error) {
	if err := validate(Txn{Audit: []AuditLeaf{leaf}}); err != nil {
		return 0, err
	}
	for _, k := range keep {
		if err := validKey(k); err != nil {
			return 0, err
		}
	}
	if s.raft.State() != raft.Leader {
		return 0, fmt.Errorf("%w: restore a snapshot on the leader", ErrNotLeader)
	}
	timeout := 5 * time.Minute
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := s.checkLeaves([]AuditLeaf{leaf}); err != nil {
		return 0, raftErr(err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// Every command proposed before the pause is applied: the audit log
	// read next is the whole committed log.
	if err := s.raft.Barrier(timeout).Error(); err != nil {
		return 0, fmt.Errorf("store: restore: %w", raftErr(err))
	}
	path, size, err := s.fsm.restoreFile(f.path, leaf, keep)
	if err != nil {
		return 0, fmt.Errorf("store: restore: %w", err)
	}
	defer os.Remove(path)
	in, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return 0, raftErr(err)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: size,
		Configuration: cf.Configuration(), ConfigurationIndex: cf.Index()}
	if err := s.raft.Restore(meta, in, timeout); err != nil {
		return 0, fmt.Errorf("store: restore: %w", raftErr(err))
	}
	return s.AppliedIndex(), nil
}

// restoreFile builds the database a restore installs, in a temporary file
// next to the state's: a copy of the snapshot at src whose audit buckets
// and tree state are replaced by the current ones, and whose keys in keep
// by their current entries; then leaf is appended to the tree, its Raft
// index left for settleRestore. It returns the file's path and size.
func (f *fsm) restoreFile(src string, leaf AuditLeaf, keep []string) (path string, size int64, err error) {
	out, err := os.CreateTemp(filepath.Dir(f.path), "restore-*.db")
	if err != nil {
		return "", 0, err
	}
	path = out.Name()
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	in, err := os.Open(src)
	if err != nil {
		out.Close()
		return "", 0, err
	}
	_, err = io.Copy(out, in)
	in.Close()
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	db, err := bolt.Open(path, 0o600, boltOptions())
	if err != nil {
		return "", 0, err
	}
	f.mu.RLock()
	err = f.db.View(func(cur *bolt.Tx) error {
		return db.Update(func(tx *bolt.Tx) error { return graftAudit(tx, cur, leaf, keep) })
	})
	f.mu.RUnlock()
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", 0, err
	}
	return path, fi.Size(), nil
}

// graftAudit puts the audit log of cur, and the keys in keep, into tx (a
// snapshot's database), then appends leaf and marks it for settleRestore.
// Values read from cur stay valid while cur is open, which outlasts tx.
func graftAudit(tx, cur *bolt.Tx, leaf AuditLeaf, keep []string) error {
	for _, name := range [][]byte{bucketAuditNodes, bucketAuditLeaves} {
		if err := tx.DeleteBucket(name); err != nil {
			return err
		}
		b, err := tx.CreateBucket(name)
		if err != nil {
			return err
		}
		b.FillPercent = 1 // keys arrive in order
		if err := cur.Bucket(name).ForEach(b.Put); err != nil {
			return err
		}
	}
	meta, kv := tx.Bucket(bucketMeta), tx.Bucket(bucketKV)
	st := cur.Bucket(bucketMeta).Get(keyAuditTree)
	if err := putOrDelete(meta, keyAuditTree, st); err != nil {
		return err
	}
	// The pruned bound goes with the leaves it describes.
	if err := putOrDelete(meta, keyAuditPruned, cur.Bucket(bucketMeta).Get(keyAuditPruned)); err != nil {
		return err
	}
	for _, k := range keep {
		if err := putOrDelete(kv, []byte(k), cur.Bucket(bucketKV).Get([]byte(k))); err != nil {
			return err
		}
	}
	var before audit.TreeState
	if st != nil {
		if err := before.UnmarshalBinary(st); err != nil {
			return fmt.Errorf("store: audit tree state: %w", err)
		}
	}
	if err := appendAudit(tx, []AuditLeaf{leaf}, 0); err != nil {
		return err
	}
	return meta.Put(keyRestoreLeaf, binary.BigEndian.AppendUint64(nil, before.Size))
}

func putOrDelete(b *bolt.Bucket, k, v []byte) error {
	if v == nil {
		return b.Delete(k)
	}
	return b.Put(k, v)
}

// settleRestore finishes a database Raft installed: it records applied as
// the applied index and, if the database was built by Restore, stores
// applied as the Raft index of the restore's leaf. Every node installs the
// same database at the same index, so every node settles it alike.
func settleRestore(tx *bolt.Tx, applied uint64) error {
	meta := tx.Bucket(bucketMeta)
	if err := meta.Put(keyApplied, binary.BigEndian.AppendUint64(nil, applied)); err != nil {
		return err
	}
	at := meta.Get(keyRestoreLeaf)
	if at == nil {
		return nil
	}
	if len(at) != 8 {
		return fmt.Errorf("store: restore leaf marker of %d bytes", len(at))
	}
	lk := bytes.Clone(at)
	lb := tx.Bucket(bucketAuditLeaves)
	v := lb.Get(lk)
	if len(v) < 8 {
		return fmt.Errorf("store: restore leaf %d missing", binary.BigEndian.Uint64(lk))
	}
	nv := binary.BigEndian.AppendUint64(make([]byte, 0, len(v)), applied)
	nv = append(nv, v[8:]...)
	if err := lb.Put(lk, nv); err != nil {
		return err
	}
	return meta.Delete(keyRestoreLeaf)
}
