package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	bucketKV          = []byte("kv")
	bucketMeta        = []byte("meta")
	bucketAuditNodes  = []byte("audit_nodes")  // level (1 byte) | index (8) → hash
	bucketAuditLeaves = []byte("audit_leaves") // index (8) → Raft index of the command (8) | stored leaf bytes
	keyApplied        = []byte("applied_index")
	keyAuditTree      = []byte("audit_tree")   // audit.TreeState, binary
	keyAuditPruned    = []byte("audit_pruned") // 8 bytes: the leaves below it were pruned (kv.OpPruneAudit)
)

// fsm is the replicated state machine: a bbolt database holding every key
// with its version, and the index of the last applied log, updated in the same
// bolt transaction as the data so a restart resumes exactly where it stopped.
type fsm struct {
	path string

	mu      sync.RWMutex // held exclusively only while Restore swaps the file
	db      *bolt.DB
	applied atomic.Uint64
	failed  atomic.Pointer[error] // set when a bolt write fails: no more writes

	notify chan struct{} // closed and replaced after every apply (wakes readers)
	nmu    sync.Mutex

	restoredIndex func() uint64 // the Raft index of the snapshot being restored
	onRestore     func()

	// sinceSnapshot counts the command bytes applied since the last
	// snapshot began; past logBytes every apply signals overBytes
	// (without blocking), which Store.boundLog reads.
	sinceSnapshot atomic.Uint64
	logBytes      uint64
	overBytes     chan struct{}
}

var _ raft.BatchingFSM = (*fsm)(nil)

func openBolt(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, boltOptions())
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("store: %s is in use by another process", path)
	}
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketKV, bucketMeta, bucketAuditNodes, bucketAuditLeaves} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func newFSM(path string) (*fsm, error) {
	db, err := openBolt(path)
	if err != nil {
		return nil, err
	}
	f := &fsm{path: path, db: db, notify: make(chan struct{}), overBytes: make(chan struct{}, 1)}
	f.applied.Store(readApplied(db))
	return f, nil
}

func readApplied(db *bolt.DB) uint64 {
	var idx uint64
	_ = db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyApplied); len(v) == 8 {
			idx = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return idx
}

func (f *fsm) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.db.Close()
}

// waitCh returns a channel closed at the next apply.
func (f *fsm) waitCh() <-chan struct{} {
	f.nmu.Lock()
	defer f.nmu.Unlock()
	return f.notify
}

func (f *fsm) wake() {
	f.nmu.Lock()
	close(f.notify)
	f.notify = make(chan struct{})
	f.nmu.Unlock()
}

// Apply applies one log.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies logs in one bolt transaction: one fsync per batch. Each
// txn is all-or-nothing on its own; a failed precondition affects only its
// own log. Logs at or below the persisted applied index are skipped, so a
// replay after restart is harmless.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	if p := f.failed.Load(); p != nil {
		for i := range out {
			out[i] = *p
		}
		return out
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	applied := f.applied.Load()
	last := applied
	var size uint64
	err := f.db.Update(func(tx *bolt.Tx) error {
		for i, l := range logs {
			if l.Index <= applied {
				continue
			}
			last = l.Index
			size += uint64(len(l.Data))
			if l.Type != raft.LogCommand {
				continue
			}
			t, err := decodeTxn(l.Data)
			if err != nil {
				out[i] = err
				continue
			}
			res := applyTxn(tx, t, l.Index)
			if fe, ok := res.(fatalError); ok {
				return fe.err // roll the whole batch back; the store refuses writes from now on
			}
			out[i] = res
		}
		if last == applied {
			return nil
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], last)
		return tx.Bucket(bucketMeta).Put(keyApplied, b[:])
	})
	if err != nil {
		ferr := fmt.Errorf("store: state machine write failed, refusing further writes: %w", err)
		f.failed.Store(&ferr)
		for i := range out {
			out[i] = ferr
		}
		return out
	}
	f.applied.Store(last)
	f.wake()
	if f.sinceSnapshot.Add(size) >= f.logBytes && f.logBytes > 0 {
		select {
		case f.overBytes <- struct{}{}:
		default:
		}
	}
	return out
}

// applyTxn checks every condition, then applies every op and appends the
// audit leaves. It returns the index on success or a *ConflictError.
func applyTxn(tx *bolt.Tx, t Txn, index uint64) any {
	kv := tx.Bucket(bucketKV)
	for _, c := range t.Conds {
		have := version(kv.Get([]byte(c.Key)))
		if have != c.Version {
			return &ConflictError{Key: c.Key, Want: c.Version, Have: have}
		}
	}
	// A prune beyond the tree is refused before anything applies, so the
	// txn stays all-or-nothing.
	for _, op := range t.Ops {
		if op.Type == OpPruneAudit {
			if err := checkPrune(tx, op.Value); err != nil {
				return err
			}
		}
	}
	for _, op := range t.Ops {
		var err error
		switch op.Type {
		case OpPut:
			v := make([]byte, 8+len(op.Value))
			binary.BigEndian.PutUint64(v, index)
			copy(v[8:], op.Value)
			err = kv.Put([]byte(op.Key), v)
		case OpDelete:
			err = kv.Delete([]byte(op.Key))
		case OpPruneAudit:
			err = pruneAudit(tx, binary.BigEndian.Uint64(op.Value))
		}
		if err != nil {
			return fatalError{fmt.Errorf("store: apply %q: %w", op.Key, err)}
		}
	}
	if len(t.Audit) > 0 {
		if err := appendAudit(tx, t.Audit, index); err != nil {
			return fatalError{err}
		}
	}
	return index
}

// fatalError is a failure in the middle of applying a txn (a write error of
// the state machine's database, damaged audit state): the batch must not
// commit, or the txn would be half applied.
type fatalError struct{ err error }

func version(v []byte) uint64 {
	if len(v) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (f *fsm) get(key string) (Entry, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var e Entry
	err := f.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketKV).Get([]byte(key))
		if v == nil {
			return ErrNotFound
		}
		e = Entry{Key: key, Version: version(v), Value: bytes.Clone(v[8:])}
		return nil
	})
	return e, err
}

func (f *fsm) getMany(keys []string) ([]Entry, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []Entry
	err := f.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		for _, key := range keys {
			if v := b.Get([]byte(key)); v != nil {
				out = append(out, Entry{Key: key, Version: version(v), Value: bytes.Clone(v[8:])})
			}
		}
		return nil
	})
	return out, err
}

func (f *fsm) list(prefix string, limit int) ([]Entry, error) {
	return f.scan(prefix, limit, allValues)
}

// listKeys is list without the values (Value is nil): it copies no value.
func (f *fsm) listKeys(prefix string, limit int) ([]Entry, error) {
	return f.scan(prefix, limit, nil)
}

func allValues(string, uint64) bool { return true }

// scan returns the entries under prefix in key order, at most limit (0:
// all), from one read transaction, with a copy of the value of those for
// which values(key, version) is true (values nil: none).
func (f *fsm) scan(prefix string, limit int, values func(key string, version uint64) bool) ([]Entry, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []Entry
	err := f.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketKV).Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			e := Entry{Key: string(k), Version: version(v)}
			if values != nil && values(e.Key, e.Version) {
				e.Value = bytes.Clone(v[8:])
			}
			out = append(out, e)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	return out, err
}

// Snapshot marks the applied index a snapshot is taken at. The state it
// stands for is the database itself, durable up to that index (every
// applied batch is synced before the next is applied): the snapshot writes
// no data, and opening it streams the live database (liveSnapshots).
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	// Raft calls Snapshot between applies: what this snapshot stands for
	// is what was applied, and the log up to it can go.
	f.sinceSnapshot.Store(0)
	return snapshot{}, nil
}

type snapshot struct{}

func (snapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }

func (snapshot) Release() {}

// Restore replaces the state with a snapshot: written to a temp file, synced,
// renamed over the database, reopened.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	tmp := f.path + ".restore"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, rc); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.db.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(f.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	db, err := openBolt(f.path)
	if err != nil {
		return err
	}
	// An operator's snapshot carries the index it was taken at; Raft
	// installs it at a later one. Record that, so reads know the state is
	// current up to it, and give a restore's own audit leaf that index.
	applied := readApplied(db)
	if f.restoredIndex != nil {
		applied = max(applied, f.restoredIndex())
	}
	if err := db.Update(func(tx *bolt.Tx) error { return settleRestore(tx, applied) }); err != nil {
		db.Close()
		return err
	}
	f.db = db
	f.applied.Store(applied)
	f.wake()
	if f.onRestore != nil {
		go f.onRestore()
	}
	return nil
}

func boltOptions() *bolt.Options {
	return &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType, InitialMmapSize: initialMmap}
}

// initialMmap is the size of the memory map a database is opened with
// (address space, not memory: pages are read in as used). bbolt remaps to
// let a database outgrow its map, and a remap waits for every open read
// transaction and holds up every new one: with a snapshot streaming the
// state from its read transaction for seconds, every write that grew the
// state, and every read behind it (the cluster port's peer check included),
// stalled until the snapshot ended, long enough for followers to stop
// hearing the leader. A map this large is only outgrown by a state this
// large. (etcd maps its backend the same way.)
const initialMmap = 8 << 30 * (strconv.IntSize / 64) // 8 GiB; 0 (grow as needed) on 32-bit
