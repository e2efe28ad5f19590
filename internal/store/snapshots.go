package store

import (
	"io"

	"github.com/hashicorp/raft"
)

// liveSnapshots is the store's Raft snapshot store. The state machine's
// database is itself durable (every applied batch is committed and synced,
// and a restart resumes from it), so a snapshot the node takes of its own
// state writes only its metadata: its data is the database. When Raft, or
// an operator's save, opens such a snapshot, it streams a consistent read
// transaction of the live database instead: a state at the snapshot's index
// or later, which the receiver handles as it handles any replay (a restored
// state records the index it is current to, and applies skip what it
// already holds). Snapshots with data (installed from a leader, or restored
// by an operator) are stored and opened as they are.
//
// Before, every snapshot was a full copy of the database on disk, written
// again at each snapshot: as large as the state, for nothing a restart used.
type liveSnapshots struct {
	*raft.FileSnapshotStore
	fsm *fsm
}

var _ raft.SnapshotStore = (*liveSnapshots)(nil)

// Open opens snapshot id: its stored data, or, for one of this node's own
// (no stored data), the live database, with the size of what it streams.
func (l *liveSnapshots) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := l.FileSnapshotStore.Open(id)
	if err != nil || meta.Size > 0 {
		return meta, rc, err
	}
	rc.Close()
	live, size, err := l.fsm.stream()
	if err != nil {
		return nil, nil, err
	}
	m := *meta
	m.Size = size
	return &m, live, nil
}

// stream returns the database as of now, as one consistent read
// transaction written through a pipe, and the exact number of bytes it
// will write. Closing the reader early ends the transaction.
func (f *fsm) stream() (io.ReadCloser, int64, error) {
	f.mu.RLock()
	tx, err := f.db.Begin(false)
	f.mu.RUnlock()
	if err != nil {
		return nil, 0, err
	}
	size := tx.Size()
	pr, pw := io.Pipe()
	go func() {
		_, err := tx.WriteTo(pw)
		tx.Rollback() //nolint:errcheck // a read transaction
		pw.CloseWithError(err)
	}()
	return pr, size, nil
}
