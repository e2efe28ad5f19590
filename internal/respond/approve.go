package respond

import (
	"context"
	"fmt"
	"time"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store/kv"
)

// Approve activates decision id, which a playbook action marked
// "approval: required" left pending, on behalf of by: it sets approved_by,
// clears pending_approval and restarts the decision's duration from now.
// A playbook's decision is created by the playbook's owner (created_by),
// and only another principal may approve it (errs.Denied). errs.NotFound
// for no such decision (or a deleted one), errs.Conflict for one that is
// not pending.
func (s *Playbooks) Approve(ctx context.Context, id, by string) (Decision, error) {
	if err := checkDecisionID(id); err != nil {
		return Decision{}, err
	}
	for attempt := 0; ; attempt++ {
		e, err := s.st.Get(ctx, prefixDecisions+id)
		if errs.Is(err, errs.NotFound) {
			return Decision{}, errs.E(errs.NotFound, "decision %s not found", id)
		}
		if err != nil {
			return Decision{}, err
		}
		d, err := decodeDecision(e)
		if err != nil {
			return Decision{}, err
		}
		switch {
		case d.Deleted:
			return Decision{}, errs.E(errs.NotFound, "decision %s not found (deleted)", id)
		case !d.PendingApproval:
			if d.ApprovedBy != "" {
				return Decision{}, errs.E(errs.Conflict, "decision %s is not pending approval: %s approved it", id, d.ApprovedBy)
			}
			return Decision{}, errs.E(errs.Conflict, "decision %s is not pending approval", id)
		case by == d.CreatedBy:
			return Decision{}, errs.E(errs.Denied, "decision %s: %s owns %s, which made it, and cannot approve it; another principal must",
				id, by, d.Origin)
		}
		dur, err := time.ParseDuration(d.Duration)
		if err != nil || dur <= 0 {
			return Decision{}, fmt.Errorf("respond: decision %s has no valid duration (%q)", id, d.Duration)
		}
		d.PendingApproval, d.ApprovedBy = false, by
		d.ExpiresAt = rfc3339(s.now().Add(dur))
		d.Revision = 0 // the change's index, set below (stored decisions carry none: decodeDecision sets it)
		rev, err := s.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: prefixDecisions + id, Version: e.Version}},
			Ops: []kv.Op{{Type: kv.OpPut, Key: prefixDecisions + id, Value: playbookJSON(d)}}})
		if err == nil {
			d.Revision = rev
			return d, nil
		}
		if !errs.Is(err, errs.Conflict) || attempt >= maxPutRetries {
			return Decision{}, err
		}
	}
}
