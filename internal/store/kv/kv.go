// Package kv holds the plain types of Warden's replicated key/value store:
// a transaction (Txn) of preconditions (Cond) and changes (Op) with the
// audit leaves that ride in it (AuditLeaf), a stored key (Entry), a stored
// audit leaf (StoredLeaf), the limits on a transaction, and the sentinel
// errors the store returns.
//
// Services (identity, secrets, policy, authority, auditlog) build
// transactions and read entries through these types and the narrow storage
// interfaces they declare, so they depend neither on internal/store's
// implementation nor on Raft or bbolt: kv imports nothing but the standard
// library and the pure internal/audit, and internal/archtest holds the services to that. internal/store
// implements the store and re-exports these names for its own callers.
package kv

import (
	"errors"
	"fmt"

	"github.com/warden-sec/warden/internal/audit"
)

// OpType is the kind of change one Op makes.
type OpType uint8

const (
	// OpPut sets Key to Value, creating it if absent.
	OpPut OpType = 1
	// OpDelete removes Key; deleting an absent key is not an error.
	OpDelete OpType = 2
	// OpPruneAudit removes the stored bodies (the encrypted leaf bytes) of
	// the audit entries below the index in Value (8 bytes, big-endian),
	// keeping every Merkle node, and records that index as the log's
	// pruned bound (AuditView.Pruned). Key must be PruneAuditKey. A bound
	// at or below the current one changes nothing; one beyond the tree's
	// size refuses the transaction (ErrInvalid) before any op applies.
	// See docs/audit.md, "Lifecycle".
	OpPruneAudit OpType = 3
)

// PruneAuditKey is the Key of every OpPruneAudit: it names the operation,
// not a stored key.
const PruneAuditKey = "audit/pruned"

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
type Txn struct {
	Conds []Cond
	Ops   []Op
	Audit []AuditLeaf
}

// AuditLeaf is an audit entry riding in a transaction: its RFC 6962 leaf hash
// (computed by the caller over the entry's canonical bytes) and the bytes to
// store for it (the caller encrypts them; the store keeps them opaque).
type AuditLeaf struct {
	Hash  []byte // 32 bytes
	Value []byte
}

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

// StoredLeaf is a stored audit leaf with the index of the Raft command that
// appended it: for a record that rode with a change, the change's index
// (the version of every key it wrote).
type StoredLeaf struct {
	RaftIndex uint64
	Value     []byte
}

// AuditView is a consistent, read-only view of the local audit tree (one
// read transaction of the state machine's database), valid only inside the
// function it is given to.
type AuditView interface {
	// State returns the tree's size and compact range (the zero state for
	// an empty tree), or an error if the stored state does not decode.
	State() (audit.TreeState, error)
	// GetNode returns the stored hash of node (level, index), or an error
	// wrapping ErrNotFound.
	GetNode(level uint, index uint64) ([]byte, error)
	// Leaves returns up to count stored leaves from start, which must be
	// at or above Pruned.
	Leaves(start uint64, count int) ([]StoredLeaf, error)
	// Pruned returns the pruned bound: the entries below it were archived
	// and their bodies removed (OpPruneAudit); their Merkle nodes remain.
	// 0 when nothing was pruned.
	Pruned() (uint64, error)
}
