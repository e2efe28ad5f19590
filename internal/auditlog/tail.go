package auditlog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/errs"
)

const (
	// DefaultMaxSinkLag is how many committed entries a required sink may
	// have yet to receive before audited requests are refused.
	DefaultMaxSinkLag = 10_000
	// DefaultSinkRetry is how long a tailer waits after a failed delivery
	// (or while sealed) before it tries again.
	DefaultSinkRetry = time.Second
	// tailPage bounds the entries one delivery carries.
	tailPage = 256
)

// ErrSinkLagging: a required sink is too far behind the committed log.
var ErrSinkLagging = errors.New("auditlog: a required audit sink is not keeping up")

// tailer feeds one sink with the committed entries of the local state
// machine, in order, from its cursor: the index of the next entry to
// deliver, kept in a file so that a restart resumes where it stopped. A
// delivery is recorded only after the sink accepted it, so an entry may be
// delivered twice (after a crash or a timed-out write) but never skipped:
// each line carries its index for readers to drop repeats.
type tailer struct {
	s    *Service
	sink *Sink
	path string // cursor file; "" keeps the cursor in memory only

	mu       sync.Mutex
	cursor   uint64
	err      error  // the last delivery's error; nil after a success
	attempts uint64 // deliveries tried, successful or not
}

// sinkLine is what a sink receives for one entry: its index in the log,
// the Raft command that committed it, and its exact leaf bytes; or, for
// a stored entry found altered, the damage instead of the entry.
type sinkLine struct {
	Index     uint64          `json:"index"`
	RaftIndex uint64          `json:"raft_index"`
	Entry     json.RawMessage `json:"entry,omitempty"`
	Altered   string          `json:"altered,omitempty"`
	// Archived: the entry was archived and pruned before this sink
	// received it (only a sink that lagged behind a prune elsewhere sees
	// this; see docs/audit.md, "Lifecycle").
	Archived bool `json:"archived,omitempty"`
}

// cursorFile names the cursor file of a sink in dir: a readable form of
// the sink's name and a hash of it, so distinct sinks never share one.
func cursorFile(dir, name string) string {
	sum := sha256.Sum256([]byte(name))
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, name)
	if len(clean) > 64 {
		clean = clean[:64]
	}
	return filepath.Join(dir, clean+"-"+hex.EncodeToString(sum[:6])+".cursor")
}

// readCursor returns the stored cursor, or ok false if there is none.
func readCursor(path string) (uint64, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("audit sink cursor %s: %w", path, err)
	}
	return n, true, nil
}

// writeCursor replaces the cursor file (0600) atomically and durably.
func writeCursor(path string, n uint64) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.FormatUint(n, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// startTailers starts one tailer per sink. A sink without a cursor file
// starts at the current end of the log: it receives what commits from now
// on, not the history.
func (s *Service) startTailers(dir string) error {
	if len(s.sinks) == 0 {
		return nil
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("audit sink cursors: %w", err)
		}
	}
	size, err := s.Size()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopTail = cancel
	for _, k := range s.sinks {
		t := &tailer{s: s, sink: k, cursor: size}
		if dir != "" {
			t.path = cursorFile(dir, k.Name)
			n, ok, err := readCursor(t.path)
			if err != nil {
				cancel()
				return err
			}
			if ok {
				t.cursor = n
			} else if err := writeCursor(t.path, size); err != nil {
				cancel()
				return fmt.Errorf("audit sink cursor: %w", err)
			}
		}
		s.tailers = append(s.tailers, t)
		s.tailWG.Add(1)
		go func() {
			defer s.tailWG.Done()
			t.run(ctx)
		}()
	}
	return nil
}

// run delivers until ctx ends.
func (t *tailer) run(ctx context.Context) {
	s := t.s
	for ctx.Err() == nil {
		applied := s.tree.AppliedIndex() // before the size: no apply after it goes unseen
		size, err := s.Size()
		if err != nil {
			t.wait(ctx, s.sinkRetry)
			continue
		}
		t.mu.Lock()
		if t.cursor > size {
			// The log is shorter than what was delivered: the state was
			// replaced (a restore, another data directory). Deliver what
			// the log holds from its end on, rather than skip entries.
			s.log.Warn("audit sink cursor is beyond the end of the log; resuming at the end", "sink", t.sink.Name, "cursor", t.cursor, "size", size)
			t.cursor = size
		}
		cursor := t.cursor
		t.mu.Unlock()
		if cursor >= size {
			if err := s.tree.WaitApplied(ctx, applied+1); err != nil && ctx.Err() == nil {
				t.wait(ctx, s.sinkRetry) // the store is closing
			}
			continue
		}
		if !t.deliver(cursor, min(size-cursor, tailPage)) {
			t.wait(ctx, s.sinkRetry)
		}
	}
}

func (t *tailer) wait(ctx context.Context, d time.Duration) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
	case <-tm.C:
	}
}

// deliver writes the n entries from cursor to the sink and moves the
// cursor past them; it reports whether it did.
func (t *tailer) deliver(cursor, n uint64) bool {
	s := t.s
	lines, err := s.sinkLines(cursor, n)
	if errs.Is(err, errs.Unavailable) {
		return false // sealed: nothing can be read; not the sink's failure
	}
	if err == nil {
		err = t.sink.Write(lines)
	}
	if err == nil && t.path != "" {
		if err = writeCursor(t.path, cursor+uint64(len(lines))); err != nil {
			err = fmt.Errorf("cursor: %w", err)
		}
	}
	t.mu.Lock()
	t.attempts++
	t.err = err
	if err == nil {
		t.cursor = cursor + uint64(len(lines))
	}
	t.mu.Unlock()
	s.tailProgress()
	if err != nil {
		s.log.Error("audit sink write failed", "sink", t.sink.Name, "required", t.sink.Required, "from_index", cursor, "err", err)
		if s.onSinkFailure != nil {
			s.onSinkFailure(t.sink.Name)
		}
		return false
	}
	return true
}

// sinkLines reads and formats the committed entries [start, start+n).
func (s *Service) sinkLines(start, n uint64) ([][]byte, error) {
	es, err := s.entries(start, int(n))
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, fmt.Errorf("auditlog: no entry at %d", start)
	}
	lines := make([][]byte, len(es))
	for i, e := range es {
		l := sinkLine{Index: e.Index, RaftIndex: e.RaftIndex, Entry: e.Leaf}
		if e.Altered != nil {
			l.Entry, l.Altered = nil, e.Altered.Error()
		}
		if e.Archived {
			l.Archived = true
		}
		if lines[i], err = json.Marshal(l); err != nil {
			return nil, err
		}
	}
	return lines, nil
}

// tailProgress wakes SinksSettled callers.
func (s *Service) tailProgress() {
	s.tmu.Lock()
	close(s.tailCh)
	s.tailCh = make(chan struct{})
	s.tmu.Unlock()
}

// Healthy reports whether audited requests may proceed: nil, or an
// Unavailable error naming the reason: a required sink whose last delivery
// failed or that lags the committed log by more than the bound, or a
// database that failed its page check. Record and ChangeLeaf call it.
func (s *Service) Healthy() error {
	if d := s.damage.Load(); d != nil && d.Kind == audit.DamagedDatabase {
		return errs.Wrap(errs.Unavailable, d, "the audit log is unavailable (%s); the request was refused", publicText(d))
	}
	var size uint64
	sized := false
	for _, t := range s.tailers {
		if !t.sink.Required {
			continue
		}
		t.mu.Lock()
		cursor, err := t.cursor, t.err
		t.mu.Unlock()
		if !sized {
			var serr error
			if size, serr = s.Size(); serr != nil {
				return serr
			}
			sized = true
		}
		if size > cursor && size-cursor > s.maxSinkLag {
			return errs.Wrap(errs.Unavailable, fmt.Errorf("%w: %s is %d entries behind", ErrSinkLagging, t.sink.Name, size-cursor), "the audit log is unavailable (a required audit sink is %d entries behind); the request was refused", size-cursor)
		}
		if err != nil {
			return errs.Wrap(errs.Unavailable, fmt.Errorf("%w: %s: %v", ErrSinkFailed, t.sink.Name, err), "the audit log is unavailable (a required audit sink is failing); the request was refused")
		}
	}
	return nil
}

// SinksSettled waits until every sink has received every entry committed
// when it was called, or one has failed a delivery it tried after the
// call; it returns nil, the first such failure, or ctx's error. It is for
// tests and for an orderly stop.
func (s *Service) SinksSettled(ctx context.Context) error {
	size, err := s.Size()
	if err != nil {
		return err
	}
	since := make([]uint64, len(s.tailers))
	for i, t := range s.tailers {
		t.mu.Lock()
		since[i] = t.attempts
		t.mu.Unlock()
	}
	for {
		s.tmu.Lock()
		ch := s.tailCh
		s.tmu.Unlock()
		done := true
		for i, t := range s.tailers {
			t.mu.Lock()
			cursor, err, attempts := t.cursor, t.err, t.attempts
			t.mu.Unlock()
			if cursor >= size {
				continue
			}
			if err != nil && attempts > since[i] {
				return fmt.Errorf("%w: %s: %v", ErrSinkFailed, t.sink.Name, err)
			}
			done = false
		}
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
