package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/warden-sec/warden/internal/audit"
)

// authFailures counts requests that fail before their caller is
// authenticated (a 401 on a guarded route; any failure of enrollment,
// renewal and re-enrollment, whose credential is checked by the handler).
// Such a caller chooses everything about the request, so it must not be
// able to make the cluster store anything per request: instead of one
// replicated record each, failures are summed per (address, reason) and
// committed as one record per row and window, with a count and no
// principal (the caller's claim is not evidence of anything).
//
// It also keeps each address's failure budget, a token bucket: while an
// address's is empty, its requests that fail authentication answer 429
// without further work. Valid credentials never consult the budget.
//
// Memory is bounded: at most max rows per window and max budgets; beyond
// them, addresses share the row and the budget of otherAddr. Safe for
// concurrent use.
type authFailures struct {
	rate  rate.Limit
	burst int
	max   int

	mu      sync.Mutex
	rows    map[failKey]*failRow
	budgets map[string]*rate.Limiter
	done    chan struct{}
	stopped bool
}

// otherAddr stands for every address beyond the table's bound.
const otherAddr = "other"

// failKey is one row of the table: a source address and a reason (the
// route's name, or "authenticate" for a guarded route's 401).
type failKey struct{ addr, reason string }

type failRow struct {
	count  uint64
	first  time.Time
	status int // the status of the last failure
}

func newAuthFailures(r float64, burst, max int) *authFailures {
	return &authFailures{rate: rate.Limit(r), burst: burst, max: max,
		rows: make(map[failKey]*failRow), budgets: make(map[string]*rate.Limiter), done: make(chan struct{})}
}

// budget returns addr's failure budget. Called with mu held.
func (f *authFailures) budget(addr string) *rate.Limiter {
	b, ok := f.budgets[addr]
	if !ok {
		if len(f.budgets) >= f.max {
			addr = otherAddr
			if b, ok = f.budgets[addr]; ok {
				return b
			}
		}
		b = rate.NewLimiter(f.rate, f.burst)
		f.budgets[addr] = b
	}
	return b
}

// exhausted reports whether addr's budget is empty and, if so, after how
// many whole seconds one more failure fits. It takes nothing, and an
// address that has not failed has no bucket yet (beyond the bound, the
// shared one's state counts).
func (f *authFailures) exhausted(addr string, now time.Time) (bool, int) {
	f.mu.Lock()
	b, ok := f.budgets[addr]
	if !ok && len(f.budgets) >= f.max {
		b, ok = f.budgets[otherAddr]
	}
	f.mu.Unlock()
	if !ok {
		return false, 0
	}
	if tok := b.TokensAt(now); tok < 1 {
		return true, retryAfter(tok, f.rate)
	}
	return false, 0
}

// add counts one failure of addr for reason, answered with status, and
// takes one token from addr's budget. It reports whether the budget was
// already empty (the caller then answers 429) and the seconds to wait.
func (f *authFailures) add(addr, reason string, status int, now time.Time) (throttled bool, wait int) {
	f.mu.Lock()
	k := failKey{addr, reason}
	row, ok := f.rows[k]
	if !ok {
		if len(f.rows) >= f.max {
			k.addr = otherAddr
			row, ok = f.rows[k]
		}
		if !ok {
			row = &failRow{first: now}
			f.rows[k] = row
		}
	}
	b := f.budget(addr)
	if !b.AllowN(now, 1) {
		throttled, wait = true, retryAfter(b.TokensAt(now), f.rate)
		status = 429
	}
	row.count++
	row.status = status
	f.mu.Unlock()
	return throttled, wait
}

// spend takes one token from addr's budget for a request that is no
// failure but makes the server work on an unauthenticated caller's word
// (an OpenID Connect device start makes it call the provider): such
// requests are bounded per address like failures, and an address out of
// budget makes none. It reports whether the budget had a token, and else
// the seconds until it has one. Nothing is counted or recorded as a
// failure.
func (f *authFailures) spend(addr string, now time.Time) (ok bool, wait int) {
	f.mu.Lock()
	b := f.budget(addr)
	f.mu.Unlock()
	if b.AllowN(now, 1) {
		return true, 0
	}
	return false, retryAfter(b.TokensAt(now), f.rate)
}

// retryAfter is the whole seconds until a bucket holding tok tokens and
// filling at r per second holds one.
func retryAfter(tok float64, r rate.Limit) int {
	return max(1, int(math.Ceil((1-tok)/float64(r))))
}

// take empties the table and forgets the budgets that are full again.
func (f *authFailures) take(now time.Time) map[failKey]*failRow {
	f.mu.Lock()
	defer f.mu.Unlock()
	rows := f.rows
	f.rows = make(map[failKey]*failRow)
	for a, b := range f.budgets {
		if b.TokensAt(now) >= float64(f.burst) {
			delete(f.budgets, a)
		}
	}
	return rows
}

func (f *authFailures) pending() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.rows) > 0
}

// stop ends the flusher; it reports whether this call stopped it.
func (f *authFailures) stop() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false
	}
	f.stopped = true
	close(f.done)
	return true
}

// failureAction is the action of aggregated failure records.
const failureAction = "auth.failed"

// FlushAuthFailures commits one audit record per (address, reason) row of
// the failures counted since the last flush, through the audit log's group
// commit (concurrent records share Raft commands). Records that cannot be
// committed (sealed, no leader) are dropped, counted and logged: the
// failures stay in the metrics.
func (s *Server) FlushAuthFailures(ctx context.Context) error {
	if s.cfg.Audit == nil {
		return errors.New("api: no audit log to flush failure records to")
	}
	rows := s.fails.take(s.now())
	if len(rows) == 0 {
		return nil
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	dropped := 0
	for k, row := range rows {
		e := &audit.Entry{Action: failureAction, Count: row.count, Outcome: row.status, Resource: k.reason,
			SourceAddr: k.addr, Time: audit.FormatTime(row.first),
			Error: fmt.Sprintf("%d requests failed before authentication (%s)", row.count, k.reason)}
		wg.Go(func() {
			if err := s.cfg.Audit.Record(ctx, e); err != nil {
				mu.Lock()
				dropped++
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		s.metrics.failureRecordsDropped.Add(float64(dropped))
		s.log.Warn("aggregated records of failed unauthenticated requests not confirmed committed; the counts remain in the metrics",
			"records", dropped, "err", first)
	}
	return first
}

// flushFailuresEvery flushes the failure table every window until Close.
func (s *Server) flushFailuresEvery(window time.Duration) {
	t := time.NewTicker(window)
	defer t.Stop()
	for {
		select {
		case <-s.fails.done:
			return
		case <-t.C:
			if !s.fails.pending() || s.cfg.Core == nil || s.cfg.Core.Sealed() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), window)
			_ = s.FlushAuthFailures(ctx)
			cancel()
		}
	}
}
