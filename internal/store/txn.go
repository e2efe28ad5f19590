package store

import "github.com/warden-sec/warden/internal/store/kv"

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
)

// Op types and transaction limits (kv's).
const (
	OpPut    = kv.OpPut
	OpDelete = kv.OpDelete

	MaxKeyLen   = kv.MaxKeyLen
	MaxTxnBytes = kv.MaxTxnBytes
	MaxTxnOps   = kv.MaxTxnOps
)

// Sentinel errors (kv's, the same values).
var (
	ErrNotFound  = kv.ErrNotFound
	ErrConflict  = kv.ErrConflict
	ErrNotLeader = kv.ErrNotLeader
	ErrNoLeader  = kv.ErrNoLeader
	ErrClosed    = kv.ErrClosed
	ErrInvalid   = kv.ErrInvalid
)
