package auditlog

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/errs"
	store "github.com/warden-sec/warden/internal/store/kv"
)

// scrubPage bounds the leaves or nodes checked in one read transaction.
const scrubPage = 512

// maxReported bounds the damage one scrub pass logs.
const maxReported = 16

// DefaultScrubInterval is how often Run checks the stored tree again.
const DefaultScrubInterval = 10 * time.Minute

// Damaged returns the first damage found in the stored log (a *audit.Damage,
// errors.Is(err, audit.ErrDamaged)), or nil. Once damaged, the log stays
// so until the process restarts or a snapshot is restored (see
// AfterRestore): both check the tree again.
func (s *Service) Damaged() error {
	if d := s.damage.Load(); d != nil {
		return d
	}
	return nil
}

// markDamaged records d unless damage was recorded already, and logs it
// at ERROR if it was the first: damage found while serving (entries,
// proofs) is not logged again on every request.
func (s *Service) markDamaged(d *audit.Damage) {
	if s.damage.CompareAndSwap(nil, d) {
		s.log.Error("audit log damaged: " + d.Error())
		if s.onDamaged != nil {
			s.onDamaged(d)
		}
	}
}

// publicText is what a caller is told of d: the engine's page-check
// detail (which can quote stored keys) stays in the server log.
func publicText(d *audit.Damage) string {
	if d.Kind == audit.DamagedDatabase {
		return "database page check failed; the server log has the details"
	}
	return d.Error()
}

// refuseDamaged turns damage found while serving into a marked log and an
// Unavailable error naming it; other errors pass through.
func (s *Service) refuseDamaged(err error) error {
	var d *audit.Damage
	if !errors.As(err, &d) {
		return err
	}
	s.markDamaged(d)
	return errs.Wrap(errs.Unavailable, d, "the audit log of this server is damaged (%s); it signs no checkpoint and serves no proof until it is repaired", publicText(d))
}

// AfterRestore forgets the damage found so far and asks for a full check
// before the next checkpoint: a restored snapshot replaced the stored tree.
// It waits for a pass under way, whose findings it then clears too.
func (s *Service) AfterRestore() {
	s.scrubMu.Lock()
	defer s.scrubMu.Unlock()
	s.checked.Store(false)
	s.dbChecked.Store(false)
	s.damage.Store(nil)
}

// readable refuses reads of the stored tree once the database failed its
// page check (reading a damaged page can fail in any way), running that
// check first if no scrub has passed it yet in this process.
func (s *Service) readable() error {
	if d := s.damage.Load(); d != nil && d.Kind == audit.DamagedDatabase {
		return s.refuseDamaged(d)
	}
	if s.dbChecked.Load() {
		return nil
	}
	if err := s.tree.CheckDatabase(); err != nil {
		return s.refuseDamaged(&audit.Damage{Kind: audit.DamagedDatabase, Detail: err.Error()})
	}
	s.dbChecked.Store(true)
	return nil
}

// ensureChecked runs a full Scrub unless one has completed since start.
func (s *Service) ensureChecked(ctx context.Context) error {
	if d := s.damage.Load(); d != nil {
		return s.refuseDamaged(d)
	}
	if s.checked.Load() {
		return nil // never wait for a background pass once checked
	}
	s.scrubMu.Lock()
	defer s.scrubMu.Unlock()
	if s.checked.Load() { // a pass completed while this one waited
		return nil
	}
	return s.refuseDamaged(s.scrubLocked(ctx))
}

// Scrub checks the stored log once, in full: the database's own page check,
// then, a page at a time (one read transaction each, against the tree
// state read first), every level-0 node against its leaf (which must open
// under that hash, decode as a canonical entry and hash to it), every
// interior node against its two children, and the stored compact range
// (what checkpoints are signed over) against the stored nodes. Nodes and
// leaves appended meanwhile are left to the next pass.
//
// Damage marks the log damaged, is logged at ERROR, and the first found is
// returned (a *audit.Damage). Leaves can be read only while unsealed: a
// sealed server checks everything else, and the pass does not count as
// complete. Other errors (sealed, ctx ended) are returned as they are.
// Passes are serialized.
func (s *Service) Scrub(ctx context.Context) error {
	s.scrubMu.Lock()
	defer s.scrubMu.Unlock()
	return s.scrubLocked(ctx)
}

// scrubLocked is Scrub with scrubMu held.
func (s *Service) scrubLocked(ctx context.Context) error {
	var found []*audit.Damage
	// Each pass logs what it finds (at most maxReported), so damage
	// that stays is logged again every interval.
	report := func(d *audit.Damage) {
		if len(found) < maxReported {
			s.log.Error("audit log damaged: " + d.Error())
		}
		if s.damage.CompareAndSwap(nil, d) && s.onDamaged != nil {
			s.onDamaged(d)
		}
		found = append(found, d)
	}
	if err := s.tree.CheckDatabase(); err != nil {
		report(&audit.Damage{Kind: audit.DamagedDatabase, Detail: err.Error()})
		// Reading a database that failed its page check can fail or
		// mislead in any way; the tree is not read further.
		return found[0]
	}
	s.dbChecked.Store(true)
	var st audit.TreeState
	if err := s.tree.ViewAudit(func(v store.AuditView) (err error) {
		st, err = v.State()
		return err
	}); err != nil {
		report(&audit.Damage{Kind: audit.DamagedState, Detail: err.Error()})
		return found[0]
	}
	// blamed holds the nodes found altered at the level below the one
	// being checked: their parents do not match them, and are not blamed.
	blamed := map[uint64]bool{}
	leavesChecked, err := s.scrubLeaves(ctx, st, blamed, report)
	if err != nil {
		return err
	}
	for level := uint(1); st.Size>>level > 0; level++ {
		next := map[uint64]bool{}
		n := st.Size >> level
		for first := uint64(0); first < n; first += scrubPage {
			if err := ctx.Err(); err != nil {
				return err
			}
			err := s.tree.ViewAudit(func(v store.AuditView) error {
				for i := first; i < min(n, first+scrubPage); i++ {
					err := audit.CheckInterior(v, level, i)
					var d *audit.Damage
					if !errors.As(err, &d) {
						if err != nil {
							return err
						}
						continue
					}
					if blamed[2*i] || blamed[2*i+1] {
						next[i] = true // a child's damage, reported already
						continue
					}
					next[i] = true
					report(d)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		blamed = next
	}
	if err := s.tree.ViewAudit(func(v store.AuditView) error { return audit.CheckRange(v, st) }); err != nil {
		var d *audit.Damage
		if !errors.As(err, &d) {
			return err
		}
		if len(found) == 0 {
			report(d)
		}
	}
	if len(found) > 0 {
		return found[0]
	}
	if leavesChecked {
		s.checked.Store(true)
		now := time.Now()
		s.lastScrub.Store(&now)
	}
	return nil
}

// LastScrub is when a scrub last checked the whole stored log and found
// no damage (zero: not since this process started).
func (s *Service) LastScrub() time.Time {
	if t := s.lastScrub.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// scrubLeaves checks every level-0 node of the tree st against its leaf. A
// leaf that fails while its level-0 node agrees with its parent (or, for a
// last leaf without a sibling, with the compact range) is an altered
// entry; otherwise the level-0 node is the altered part, blamed so that
// its parent is not. It reports false, without error, when the server is
// sealed (leaves cannot be opened).
func (s *Service) scrubLeaves(ctx context.Context, st audit.TreeState, blamed map[uint64]bool, report func(*audit.Damage)) (bool, error) {
	// The leaves below the pruned bound were archived and their bodies
	// removed: there is nothing to open, and their level-0 nodes are
	// checked against their parents like every node.
	var from uint64
	if err := s.tree.ViewAudit(func(v store.AuditView) (err error) {
		from, err = v.Pruned()
		return err
	}); err != nil {
		report(&audit.Damage{Kind: audit.DamagedState, Detail: err.Error()})
		return false, nil
	}
	for first := from; first < st.Size; first += scrubPage {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		n := min(scrubPage, st.Size-first)
		err := s.tree.ViewAudit(func(v store.AuditView) error {
			raw, err := v.Leaves(first, int(n))
			if err != nil {
				return err
			}
			for i := range n {
				idx := first + i
				var e StoredEntry
				if i < uint64(len(raw)) {
					if e, err = s.openLeaf(v, idx, raw[i]); err != nil {
						return err
					}
				} else {
					e.Altered = &audit.Damage{Kind: audit.DamagedEntry, Index: idx, Detail: "it is missing"}
				}
				if e.Altered == nil {
					continue
				}
				if levelZeroAltered(v, st, idx) {
					blamed[idx] = true
					report(&audit.Damage{Kind: audit.DamagedNode, Level: 0, Index: idx, Detail: "its leaf does not open under it and its parent does not match it"})
					continue
				}
				report(e.Altered)
			}
			return nil
		})
		var d *audit.Damage
		switch {
		case errs.Is(err, errs.Unavailable):
			return false, nil // sealed: leaves cannot be opened now
		case errors.As(err, &d):
			report(d) // a leaf missing or malformed: the rest of the page is not read
		case err != nil:
			return false, err
		}
	}
	return true, nil
}

// levelZeroAltered reports whether the stored level-0 node idx, rather than
// its leaf, disagrees with the rest of the tree: its parent is not the hash
// of it and its sibling, or, without a sibling, it is not the last hash of
// the compact range.
func levelZeroAltered(v store.AuditView, st audit.TreeState, idx uint64) bool {
	h, err := v.GetNode(0, idx)
	if err != nil {
		return true
	}
	if idx^1 < st.Size {
		var d *audit.Damage
		return errors.As(audit.CheckInterior(v, 1, idx/2), &d)
	}
	return len(st.Range) == 0 || !bytes.Equal(st.Range[len(st.Range)-1], h)
}

// unsealPoll is how often Run looks whether a sealed server was unsealed,
// to check the leaves as soon as it can.
const unsealPoll = time.Second

// Run checks the stored log at once and then every interval (0:
// DefaultScrubInterval), until ctx ends. A pass while sealed checks all
// but the leaves; Run then looks every second whether the server was
// unsealed and runs the full pass as soon as it is (the check before the
// first checkpoint runs it too, if it comes first).
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultScrubInterval
	}
	for {
		sealed := s.core.Sealed()
		if err := s.Scrub(ctx); err != nil && !errors.Is(err, audit.ErrDamaged) && ctx.Err() == nil {
			s.log.Warn("audit scrub did not complete", "err", err)
		}
		if !s.wait(ctx, interval, sealed && !s.checked.Load() && s.damage.Load() == nil) {
			return
		}
	}
}

// wait waits for the interval, or, awaiting the unseal, until the server
// is unsealed, whichever comes first. It reports false when ctx ended.
func (s *Service) wait(ctx context.Context, interval time.Duration, awaitUnseal bool) bool {
	tick := interval
	if awaitUnseal {
		tick = min(unsealPoll, interval)
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for waited := time.Duration(0); ; {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		waited += tick
		if waited >= interval || !s.core.Sealed() {
			return true
		}
	}
}
