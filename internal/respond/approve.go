package respond

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store/kv"
)

// prefixDecision is where decisions are stored (design: respond/decisions/<id>).
const prefixDecision = "respond/decisions/"

func validDecisionID(id string) error {
	hex, ok := strings.CutPrefix(id, "dec-")
	if !ok || len(hex) != 16 || strings.Trim(hex, "0123456789abcdef") != "" {
		return errs.E(errs.Invalid, "decision id %q: want dec- and 16 lower-case hex digits", id)
	}
	return nil
}

// Approve activates decision id, which a playbook action marked
// "approval: required" left pending, on behalf of by: it sets approved_by,
// clears pending_approval and restarts the decision's duration from now.
// A playbook's decision is created by the playbook's owner (created_by),
// and only another principal may approve it (errs.Denied). errs.NotFound
// for no such decision (or a deleted one), errs.Conflict for one that is
// not pending.
func (s *Playbooks) Approve(ctx context.Context, id, by string) (Decision, error) {
	if err := validDecisionID(id); err != nil {
		return Decision{}, err
	}
	for attempt := 0; ; attempt++ {
		e, err := s.st.Get(ctx, prefixDecision+id)
		if errs.Is(err, errs.NotFound) {
			return Decision{}, errs.E(errs.NotFound, "decision %s not found", id)
		}
		if err != nil {
			return Decision{}, err
		}
		var d Decision
		if err := json.Unmarshal(e.Value, &d); err != nil {
			return Decision{}, fmt.Errorf("respond: decode decision %s: %w", id, err)
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
		d.ExpiresAt = s.now().UTC().Add(dur).Format(time.RFC3339)
		d.Revision = 0 // the change's index, set below
		rev, err := s.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: prefixDecision + id, Version: e.Version}},
			Ops: []kv.Op{{Type: kv.OpPut, Key: prefixDecision + id, Value: playbookJSON(d)}}})
		if err == nil {
			d.Revision = rev
			return d, nil
		}
		if !errs.Is(err, errs.Conflict) || attempt >= maxPutRetries {
			return Decision{}, err
		}
	}
}
