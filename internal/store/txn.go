package store

import (
	"errors"
	"fmt"

	"github.com/warden-sec/warden/internal/store/kv"
)

// The plain types of a transaction, its limits and the store's sentinel
// errors are defined in internal/store/kv, which services import without
// depending on Raft or bbolt; these aliases keep the store's own callers
// (core, api, server, raftnet) and its implementation compiling unchanged.
// The errors are the same values, so errors.Is matches either name.

type (
	// OpType is kv.OpType.
	OpType = kv.OpType
	// Op is kv.Op.
	Op = kv.Op
	// Cond is kv.Cond.
	Cond = kv.Cond
	// Txn is kv.Txn.
	Txn = kv.Txn
	// AuditLeaf is kv.AuditLeaf.
	AuditLeaf = kv.AuditLeaf
	// Entry is kv.Entry.
	Entry = kv.Entry
	// StoredLeaf is kv.StoredLeaf.
	StoredLeaf = kv.StoredLeaf
	// ConflictError is kv.ConflictError.
	ConflictError = kv.ConflictError
	// AuditView is kv.AuditView.
	AuditView = kv.AuditView
)

// Op types and transaction limits (kv's).
const (
	OpPut    = kv.OpPut
	OpDelete = kv.OpDelete
	// OpPruneAudit is kv.OpPruneAudit.
	OpPruneAudit = kv.OpPruneAudit

	MaxKeyLen   = kv.MaxKeyLen
	MaxTxnBytes = kv.MaxTxnBytes
	MaxTxnOps   = kv.MaxTxnOps
)

// PruneAuditKey is kv.PruneAuditKey.
const PruneAuditKey = kv.PruneAuditKey

// Sentinel errors (kv's, the same values).
var (
	ErrNotFound  = kv.ErrNotFound
	ErrConflict  = kv.ErrConflict
	ErrNotLeader = kv.ErrNotLeader
	ErrNoLeader  = kv.ErrNoLeader
	ErrClosed    = kv.ErrClosed
	ErrInvalid   = kv.ErrInvalid

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

// LeafCheck checks, on the leader, that a leaf's Value holds an entry whose
// leaf hash is Hash (it opens Value and hashes what it finds); a non-nil
// error refuses the transaction. It is called concurrently and must not
// call back into the Store.
//
// A Txn that changes state (has Ops) must carry at least one Audit leaf, its
// record: the command applied by the state machine is the unit "change and
// record", so no change commits without its record (ErrUnaudited).
type LeafCheck func(AuditLeaf) error
