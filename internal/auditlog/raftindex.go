package auditlog

import (
	"context"
	"sort"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/errs"
	store "github.com/warden-sec/warden/internal/store/kv"
)

// maxLeavesPerCommand bounds what EntriesAt returns: the leaves one Raft
// command appended (appendAudit puts at most 512 records in one).
const maxLeavesPerCommand = 1024

// EntriesAt returns the entries that the Raft command at raftIndex
// appended to the log, in log order: the record of a change that
// committed at that index, or none (an empty slice, no error) when the
// command carried no record. It first waits until this node has applied
// raftIndex, so a change the caller saw commit is found here.
//
// Leaves are stored in log order with the index of the command that
// appended them, so their Raft indexes never decrease: a binary search
// finds the first. Entries below the pruned bound (archived, their bodies
// removed) are errs.NotFound naming the archive; damaged ones are returned
// marked Altered, as Entries returns them.
func (s *Service) EntriesAt(ctx context.Context, raftIndex uint64) ([]StoredEntry, error) {
	if raftIndex == 0 {
		return nil, errs.E(errs.Invalid, "raft_index: must be at least 1")
	}
	if err := s.readable(); err != nil {
		return nil, err
	}
	if err := s.tree.WaitApplied(ctx, raftIndex); err != nil {
		return nil, err
	}
	out := []StoredEntry{}
	err := s.tree.ViewAudit(func(v store.AuditView) error {
		st, err := v.State()
		if err != nil {
			return &audit.Damage{Kind: audit.DamagedState, Detail: err.Error()}
		}
		pruned, err := v.Pruned()
		if err != nil {
			return &audit.Damage{Kind: audit.DamagedState, Detail: err.Error()}
		}
		if pruned >= st.Size {
			if pruned > 0 {
				return errs.E(errs.NotFound, "the audit entries of Raft index %d were archived and pruned (see warden audit archive)", raftIndex)
			}
			return nil
		}
		var serr error
		raftAt := func(i uint64) uint64 {
			ls, err := v.Leaves(i, 1)
			if err != nil || len(ls) != 1 {
				if serr == nil {
					serr = err
					if err == nil {
						serr = &audit.Damage{Kind: audit.DamagedEntry, Index: i, Detail: "it is missing"}
					}
				}
				return 0
			}
			return ls[0].RaftIndex
		}
		n := st.Size - pruned
		first := pruned + uint64(sort.Search(int(n), func(i int) bool { return raftAt(pruned+uint64(i)) >= raftIndex }))
		if serr != nil {
			return serr
		}
		if first == pruned && pruned > 0 && raftAt(pruned) > raftIndex {
			// The command's leaves may lie below the pruned bound.
			return errs.E(errs.NotFound, "the audit entries of Raft index %d were archived and pruned (see warden audit archive)", raftIndex)
		}
		if first >= st.Size {
			return nil
		}
		raw, err := v.Leaves(first, int(min(st.Size-first, maxLeavesPerCommand)))
		if err != nil {
			return err
		}
		for i, sl := range raw {
			if sl.RaftIndex != raftIndex {
				break
			}
			e, err := s.openLeaf(v, first+uint64(i), sl)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return s.opened(out, err)
}
