package kv

import (
	"context"
	"sync"
	"sync/atomic"
)

// PendingAudit is the audit record of a change about to be committed. Put
// it in the request's context with WithPendingAudit: the first transaction
// that commits through core carries it, in the same Raft command as the
// change, so the change and its record commit together or not at all. It
// lives here, beside the transaction types, so services can hand a record
// to core without depending on it.
type PendingAudit struct {
	build     func() (AuditLeaf, error)
	committed atomic.Bool

	mu    sync.Mutex
	leaf  AuditLeaf
	built bool
}

// NewPendingAudit returns a pending record; build makes its leaf when a
// transaction is about to commit (so fields set by the handler until then
// are included).
func NewPendingAudit(build func() (AuditLeaf, error)) *PendingAudit {
	return &PendingAudit{build: build}
}

// Leaf builds the leaf once: retries of a conflicting transaction carry the
// same record (and write it to the sinks only once).
func (p *PendingAudit) Leaf() (AuditLeaf, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.built {
		leaf, err := p.build()
		if err != nil {
			return AuditLeaf{}, err
		}
		p.leaf, p.built = leaf, true
	}
	return p.leaf, nil
}

// MarkCommitted records that a transaction carried the record.
func (p *PendingAudit) MarkCommitted() { p.committed.Store(true) }

// Committed reports whether a transaction carried the record.
func (p *PendingAudit) Committed() bool { return p.committed.Load() }

type pendingKey struct{}

// WithPendingAudit returns ctx carrying p.
func WithPendingAudit(ctx context.Context, p *PendingAudit) context.Context {
	return context.WithValue(ctx, pendingKey{}, p)
}

// PendingFrom returns the pending record ctx carries, or nil.
func PendingFrom(ctx context.Context) *PendingAudit {
	p, _ := ctx.Value(pendingKey{}).(*PendingAudit)
	return p
}
