package auditlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/errs"
	store "github.com/warden-sec/warden/internal/store/kv"
)

// keyArchived holds the end of the latest archive made (decimal): the
// highest index below which entries may be pruned. It is written, with the
// archive request's own record, when an archive is made.
const keyArchived = "audit/archived"

// maxArchiveLeafBytes bounds the leaf bytes one archive carries, so an
// archive of large entries stays a size a server builds in memory and a
// client reads in one response (with base64 and the per-entry members,
// under pkg/client.MaxResponseBytes even at audit.MaxArchiveEntries).
const maxArchiveLeafBytes = 16 << 20

// ArchiveRange says which entries to archive: those from the first live
// entry (the pruned bound) up to Before (0: no bound) that are older than
// Cutoff (zero: no cutoff). The archive stops at the first entry at or
// after Cutoff, at the current tree size, and at audit.MaxArchiveEntries
// entries.
type ArchiveRange struct {
	Before uint64
	Cutoff time.Time
}

// Archive exports the entries of r as a sealed archive: their exact leaf
// bytes, the checkpoint signed for the archive's end, and the compact
// range at its start; it checks the archive (audit.Archive.Verify) before
// it returns it, and records its end as the bound below which Prune may
// remove entries (a change, committed with the record of ctx). It reads
// only what this server vouches for: it refuses while the log is damaged,
// and an entry found altered is damage, never archived.
func (s *Service) Archive(ctx context.Context, r ArchiveRange) (*audit.Archive, error) {
	_, sk, vkey, err := s.keys()
	if err != nil {
		return nil, err
	}
	if err := s.ensureChecked(ctx); err != nil {
		return nil, err
	}
	// A linearizable read first: this node's state then includes every
	// prune acknowledged before, so the archive starts at the live log.
	if _, _, err := s.archived(ctx); err != nil {
		return nil, err
	}
	origin, _, _ := strings.Cut(vkey, "+")
	var start, limit uint64
	err = s.tree.ViewAudit(func(v store.AuditView) error {
		st, err := v.State()
		if err != nil {
			return &audit.Damage{Kind: audit.DamagedState, Detail: err.Error()}
		}
		if start, err = v.Pruned(); err != nil {
			return &audit.Damage{Kind: audit.DamagedState, Detail: err.Error()}
		}
		limit = min(st.Size, start+audit.MaxArchiveEntries)
		if r.Before > 0 {
			if r.Before < start {
				return errs.E(errs.Invalid, "before: %d is below the first live entry %d (the entries below it are archived already)", r.Before, start)
			}
			limit = min(limit, r.Before)
		}
		return nil
	})
	if err != nil {
		return nil, s.refuseDamaged(err)
	}
	var leaves [][]byte
	var raftIdx []uint64
	var size int
	end := start
read:
	for end < limit {
		es, err := s.entries(end, int(min(limit-end, MaxEntries)))
		if err != nil {
			return nil, err
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if e.Altered != nil {
				return nil, s.refuseDamaged(e.Altered)
			}
			if e.Archived {
				return nil, errs.E(errs.Conflict, "entry %d was pruned while the archive was made; try again", e.Index)
			}
			if !r.Cutoff.IsZero() {
				t, err := time.Parse(time.RFC3339Nano, e.Entry.Time)
				if err != nil || !t.Before(r.Cutoff) {
					break read
				}
			}
			if size += len(e.Leaf); size > maxArchiveLeafBytes && len(leaves) > 0 {
				break read
			}
			leaves, raftIdx = append(leaves, e.Leaf), append(raftIdx, e.RaftIndex)
			end++
		}
	}
	if end == start {
		why := "the log has no live entry"
		switch {
		case !r.Cutoff.IsZero() && start < limit:
			why = "entry " + strconv.FormatUint(start, 10) + ", the first live one, is not older than " + r.Cutoff.UTC().Format(time.RFC3339)
		case r.Before > 0:
			why = "no live entry is below " + strconv.FormatUint(r.Before, 10) + " (the first live entry is " + strconv.FormatUint(start, 10) + ")"
		}
		return nil, errs.E(errs.Invalid, "nothing to archive: %s", why)
	}
	var startRange [][]byte
	var root []byte
	err = s.tree.ViewAudit(func(v store.AuditView) error {
		if startRange, err = audit.RangeAt(v, start); err != nil {
			return proofErr(err)
		}
		_, root, err = s.trustedRoot(v, end)
		return err
	})
	if err != nil {
		return nil, s.refuseDamaged(err)
	}
	cp, err := audit.Sign(sk, end, root)
	if err != nil {
		return nil, err
	}
	a := audit.NewArchive(origin, vkey, start, startRange, cp, leaves, raftIdx)
	if _, err := a.Verify(vkey); err != nil {
		// The entries opened and hashed to their stored hashes, so the
		// stored nodes disagree with them: damage.
		return nil, s.refuseDamaged(&audit.Damage{Kind: audit.DamagedNode, Detail: "the archive of entries " + strconv.FormatUint(start, 10) + " to " + strconv.FormatUint(end-1, 10) + " does not verify: " + err.Error()})
	}
	if err := s.recordArchived(ctx, end); err != nil {
		return nil, err
	}
	return a, nil
}

// archived returns the recorded archive bound and the version of its key
// (0, 0 when no archive was made), read linearizably: this node's state
// then includes every archive and prune acknowledged before.
func (s *Service) archived(ctx context.Context) (uint64, uint64, error) {
	e, err := s.core.Get(ctx, keyArchived)
	if errors.Is(err, store.ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	n, err := strconv.ParseUint(string(e.Value), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("auditlog: %s: %w", keyArchived, err)
	}
	return n, e.Version, nil
}

// recordArchived raises the recorded archive bound to end, with the record
// of ctx; a bound already as high changes nothing. The version check makes
// concurrent archives raise it in turn, never lower it.
func (s *Service) recordArchived(ctx context.Context, end uint64) error {
	have, ver, err := s.archived(ctx)
	if err != nil {
		return err
	}
	if have >= end {
		return nil
	}
	_, err = s.core.Txn(ctx, store.Txn{Conds: []store.Cond{{Key: keyArchived, Version: ver}},
		Ops: []store.Op{{Type: store.OpPut, Key: keyArchived, Value: []byte(strconv.FormatUint(end, 10))}}})
	return err
}

// Prune removes the bodies of the entries below before from every node's
// store, in one Raft command with the record of ctx, keeping every Merkle
// node (proofs and checkpoints are unaffected). It refuses a bound beyond
// the recorded archive bound (Precondition: archive first), and beyond
// what a sink of this server has received (Precondition: the sink would
// never receive them). A bound at or below the pruned one changes nothing.
// It returns the pruned bound.
func (s *Service) Prune(ctx context.Context, before uint64) (uint64, error) {
	have, ver, err := s.archived(ctx)
	if err != nil {
		return 0, err
	}
	if before > have {
		return 0, errs.E(errs.Precondition, "before: %d is beyond the archived entries (below %d); run warden audit archive first", before, have)
	}
	for _, t := range s.tailers {
		t.mu.Lock()
		cursor := t.cursor
		t.mu.Unlock()
		if before > cursor {
			return 0, errs.E(errs.Precondition, "before: audit sink %q has received the entries below %d only", t.sink.Name, cursor)
		}
	}
	var pruned uint64
	if err := s.tree.ViewAudit(func(v store.AuditView) (err error) {
		pruned, err = v.Pruned()
		return err
	}); err != nil {
		return 0, err
	}
	if before <= pruned {
		return pruned, nil
	}
	_, err = s.core.Txn(ctx, store.Txn{Conds: []store.Cond{{Key: keyArchived, Version: ver}},
		Ops: []store.Op{{Type: store.OpPruneAudit, Key: store.PruneAuditKey, Value: binary.BigEndian.AppendUint64(nil, before)}}})
	if errors.Is(err, store.ErrConflict) {
		return 0, errs.Wrap(errs.Conflict, err, "an archive was made meanwhile; try again")
	}
	if err != nil {
		return 0, err
	}
	return before, nil
}
