package store

import (
	"errors"
	"fmt"
)

// OpType is the kind of change one Op makes.
type OpType uint8

const (
	// OpPut sets Key to Value, creating it if absent.
	OpPut OpType = 1
	// OpDelete removes Key; deleting an absent key is not an error.
	OpDelete OpType = 2
)

// Op is one change inside a transaction.
type Op struct {
	Type  OpType
	Key   string
	Value []byte // only for OpPut; the store keeps it as given (callers encrypt first)
}

// Cond is a precondition on one key: its current version must equal Version.
// Version 0 means "the key must not exist".
type Cond struct {
	Key     string
	Version uint64
}

// Txn is the unit of change: every Cond must hold, then every Op applies, and
// every Audit leaf is appended to the audit Merkle log, all in one Raft
// command. If any Cond fails, nothing changes (no leaf is appended either)
// and Txn returns a *ConflictError.
//
// A Txn that changes state (has Ops) must carry at least one Audit leaf, its
// record: the command applied by the state machine is the unit "change and
// record", so no change commits without its record (ErrUnaudited). A Txn of
// leaves alone records what changed nothing (reads, denies, failures).
type Txn struct {
	Conds []Cond
	Ops   []Op
	Audit []AuditLeaf
}

// AuditLeaf is an audit entry riding in a transaction: its RFC 6962 leaf hash
// (computed by the caller over the entry's canonical bytes) and the bytes to
// store for it (the caller encrypts them; the store keeps them opaque). The
// leader checks every leaf with its LeafCheck before proposing it, so the
// hash the tree takes is the hash of the entry stored.
type AuditLeaf struct {
	Hash  []byte // 32 bytes
	Value []byte
}

// LeafCheck checks, on the leader, that a leaf's Value holds an entry whose
// leaf hash is Hash (it opens Value and hashes what it finds); a non-nil
// error refuses the transaction. It is called concurrently and must not
// call back into the Store.
type LeafCheck func(AuditLeaf) error

// Entry is a stored key with its value and version. The version is the Raft
// index of the command that last changed the key, so it only ever grows.
type Entry struct {
	Key     string
	Value   []byte
	Version uint64
}

// Limits on what one transaction may carry. They keep a single Raft entry
// small enough to replicate quickly.
const (
	MaxKeyLen   = 1024
	MaxTxnBytes = 2 << 20
	MaxTxnOps   = 4096
)

var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("store: key not found")
	// ErrConflict: a transaction precondition did not hold; nothing changed.
	ErrConflict = errors.New("store: version conflict")
	// ErrNotLeader: this node cannot serve a linearizable read or a write
	// because it is not the leader (or has lost contact with a quorum).
	ErrNotLeader = errors.New("store: not the leader")
	// ErrNoLeader: no leader is known within the wait bound.
	ErrNoLeader = errors.New("store: no leader")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrInvalid: the transaction is malformed (empty key, too large, ...).
	ErrInvalid = errors.New("store: invalid transaction")
	// ErrUnaudited: the transaction changes state without an audit leaf.
	// Such errors also match ErrInvalid.
	ErrUnaudited = errors.New("store: a change without its audit record")
	// ErrBadLeaf: the leader's LeafCheck refused an audit leaf (its value
	// does not open, or does not hash to the leaf hash it came with). Such
	// errors also match ErrInvalid.
	ErrBadLeaf = errors.New("store: audit leaf refused")
	// ErrLeaderSealed: the leader has no LeafCheck (it is sealed), so it
	// cannot check audit leaves and takes no transaction. It matches
	// ErrNoLeader: no leader can take the write now.
	ErrLeaderSealed = fmt.Errorf("%w: the leader is sealed and cannot check audit records", ErrNoLeader)
)

// ConflictError says which precondition failed. It matches ErrConflict with
// errors.Is.
type ConflictError struct {
	Key  string
	Want uint64 // the version the caller required (0: must not exist)
	Have uint64 // the version found (0: absent)
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("store: version conflict on %q: want %d, have %d", e.Key, e.Want, e.Have)
}

// Is reports ErrConflict so callers can test with errors.Is.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
