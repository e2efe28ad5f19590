package auditlog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/errs"
	store "github.com/warden-sec/warden/internal/store/kv"
)

const (
	// DefaultMaxMergeDelay is the log's maximum merge delay: a record
	// acknowledged from the journal is in the replicated Merkle log within
	// it, while the node is unsealed and the cluster has a leader.
	DefaultMaxMergeDelay = time.Second
	// DefaultMaxJournalLag is how many journaled records may wait for the
	// merge before audited requests are refused (503): it bounds the
	// journal, and the records held in memory, while merging is impossible
	// (sealed, no leader).
	DefaultMaxJournalLag = 50_000
	// mergeLeaves and mergeBytes bound one merge transaction (below the
	// store's MaxTxnOps and MaxTxnBytes). Linearizable reads wait for the
	// state machine to apply what committed before them, so a merge is
	// what a read can wait behind: 512 leaves keep that to one command of
	// 11-14 ms on the 2-core test machine under load (BenchmarkMerge: 2,000
	// leaves as one command 16-27 ms, as four 43-54 ms), and still merge
	// some 40,000 records a second.
	mergeLeaves = 512
	mergeBytes  = 1 << 20
	// cursorPrefix holds one merge cursor per journal.
	cursorPrefix = "audit/journal/"
)

// JournalCursorKey is the replicated key holding the last sequence of the
// journal id of node that was merged into the log.
func JournalCursorKey(node, id string) string { return cursorPrefix + node + "/" + id }

// cursor is the merge cursor as this node last saw it in the store.
type cursor struct {
	known   bool
	seq     uint64
	version uint64 // 0: the key does not exist yet
}

// merger moves journaled records into the replicated log (see runMerge).
type merger struct {
	j        *Journal
	key      string
	interval time.Duration
	maxLag   int
	cur      cursor // only the merge goroutine uses it
	kick     chan struct{}
	flush    chan chan error
	ctx      context.Context // ends on stop: a merge in flight gives up
	stop     context.CancelFunc
	stopped  sync.Once
	done     chan struct{}
}

// startMerge starts the merge goroutine over o.Journal.
func (s *Service) startMerge(o Options) {
	node := o.NodeID
	if node == "" {
		node = "local"
	}
	d := o.MaxMergeDelay
	if d <= 0 {
		d = DefaultMaxMergeDelay
	}
	m := &merger{j: o.Journal, key: JournalCursorKey(node, o.Journal.ID()), interval: d / 4,
		maxLag: o.MaxJournalLag, kick: make(chan struct{}, 1), flush: make(chan chan error),
		done: make(chan struct{})}
	m.ctx, m.stop = context.WithCancel(context.Background())
	if m.maxLag <= 0 {
		m.maxLag = DefaultMaxJournalLag
	}
	s.merge = m
	go s.runMerge()
}

// runMerge merges every interval (a quarter of the maximum merge delay,
// leaving the rest for the commit and retries), whenever a full batch
// waits, and on Flush.
func (s *Service) runMerge() {
	m := s.merge
	defer close(m.done)
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		var waiting []chan error
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
		case r := <-m.flush:
			waiting = append(waiting, r)
		}
		err := s.mergeAll()
		if err != nil && len(waiting) == 0 && !errors.Is(err, errMergeSealed) {
			s.log.Warn("audit journal: merge failed; retrying", "err", err)
		}
		for _, r := range waiting {
			r <- err
		}
	}
}

var errMergeSealed = errs.E(errs.Unavailable, "sealed: journaled audit records are merged after unseal")

// mergeAll merges the records on disk when it starts, in batches.
func (s *Service) mergeAll() error {
	m := s.merge
	if s.core.Sealed() {
		return errMergeSealed
	}
	_, target := m.j.Backlog()
	for {
		if err := s.readCursor(); err != nil {
			return err
		}
		recs := m.j.Unmerged(mergeLeaves, mergeBytes)
		if len(recs) == 0 || recs[0].Seq > target {
			return nil
		}
		if err := s.mergeBatch(recs); err != nil {
			return err
		}
	}
}

// readCursor reads the cursor from this node's state when it is not known
// (at start, and after a merge whose outcome is unknown) and drops the
// records it covers. A stale read (a follower behind) only makes the next
// merge fail its check and read again.
func (s *Service) readCursor() error {
	m := s.merge
	if m.cur.known {
		return nil
	}
	e, err := s.core.GetStale(m.key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		m.cur = cursor{known: true}
	case err != nil:
		return fmt.Errorf("audit journal: read cursor: %w", err)
	default:
		seq, perr := strconv.ParseUint(string(e.Value), 10, 64)
		if perr != nil {
			return fmt.Errorf("audit journal: cursor %s: %w", m.key, perr)
		}
		m.cur = cursor{known: true, seq: seq, version: e.Version}
	}
	return m.j.Merged(m.cur.seq)
}

// mergeBatch commits recs, the cursor's advance to the last of them and a
// check that the cursor still has the version this node read, in one
// transaction: a merge whose outcome is unknown (the leader changed, the
// commit timed out) fails its check if it took effect, so no record is
// merged twice; the cursor is then read again.
func (s *Service) mergeBatch(recs []JournaledLeaf) error {
	m := s.merge
	if recs[0].Seq <= m.cur.seq {
		return fmt.Errorf("audit journal: record %d is at or below the cursor %d", recs[0].Seq, m.cur.seq)
	}
	last := recs[len(recs)-1].Seq
	leaves := make([]store.AuditLeaf, len(recs))
	for i, r := range recs {
		leaves[i] = r.Leaf
	}
	t := store.Txn{
		Conds: []store.Cond{{Key: m.key, Version: m.cur.version}},
		Ops:   []store.Op{{Type: store.OpPut, Key: m.key, Value: []byte(strconv.FormatUint(last, 10))}},
		Audit: leaves,
	}
	idx, err := s.core.Txn(m.ctx, t)
	if err != nil {
		m.cur.known = false
		return fmt.Errorf("audit journal: merge of records %d to %d: %w", recs[0].Seq, last, err)
	}
	m.cur = cursor{known: true, seq: last, version: idx}
	return m.j.Merged(last)
}

// Flush merges every record on disk when it is called and returns when
// that is done, or with the error of the attempt.
func (s *Service) Flush(ctx context.Context) error {
	if s.merge == nil {
		return nil
	}
	r := make(chan error, 1)
	select {
	case s.merge.flush <- r:
	case <-s.merge.done:
		return errs.E(errs.Unavailable, "the audit journal is closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flushForRead merges this node's journal before a read of the log, so a
// reader sees every record this node acknowledged before the read. A
// failed merge is logged and the read goes on with what is merged.
func (s *Service) flushForRead(ctx context.Context) {
	if s.merge == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 4*s.merge.interval+5*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		s.log.Warn("audit journal: merge before a read of the log failed", "err", err)
	}
}

// journal writes a record's leaf to the journal (Record's path when the
// service has one), refusing while too many records wait for the merge.
func (s *Service) journal(ctx context.Context, leaf store.AuditLeaf) error {
	m := s.merge
	n, _ := m.j.Backlog()
	if n >= m.maxLag {
		return errs.E(errs.Unavailable, "the audit log is unavailable: %d journaled records wait to be merged (is the node sealed, or the cluster without a leader?)", n)
	}
	if _, err := m.j.Append(ctx, leaf); err != nil {
		return err
	}
	if n+1 >= mergeLeaves {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Unmerged returns how many records wait in the journal for the merge (0
// without a journal).
func (s *Service) Unmerged() int {
	if s.merge == nil {
		return 0
	}
	n, _ := s.merge.j.Backlog()
	return n
}

// stopMerge stops the merge goroutine; records not merged stay in the
// journal for the next start.
func (s *Service) stopMerge() error {
	if s.merge == nil {
		return nil
	}
	var err error
	s.merge.stopped.Do(func() {
		s.merge.stop()
		<-s.merge.done
		err = s.merge.j.Close()
	})
	return err
}
