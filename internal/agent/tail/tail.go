// Package tail is the agent's file source: it follows one file by path,
// line by line, across rotation by rename, rotation by copytruncate and
// restarts of the agent, and turns each line into an event through a
// parser. It does not batch, spool or send: it hands events and its
// position to a source.Emit.
//
// Position (the state given to Emit with every event, and taken back by
// Run) is the file's identity and the offset after the event's line:
// device and inode, a fingerprint (SHA-256 of the first bytes, up to 1 KiB,
// with their count) and the offset. Identity is dev+inode AND fingerprint:
// an inode number reused by a new file does not match.
//
// Rotation:
//   - by rename (logrotate's default): when the path names another file,
//     the old one is read to its end, and kept being read while it still
//     grows (a writer that has not reopened yet), until it has been idle
//     for a grace period (two poll intervals); then the new file is read
//     from offset 0;
//   - by copytruncate: when the file is shorter than the offset, or its
//     first bytes changed, the copy (same directory, name starting with
//     the file's, the same first bytes, at least as long as what was read)
//     is finished from the offset first, so lines not yet read when the
//     file was copied are not lost; then the file is read again from 0. If
//     no copy is found it is read again from 0 at once. (Lines written
//     between the copy and the truncation are lost: a limit of
//     copytruncate.)
//   - across a restart: if the file at the path is still the one of the
//     state, reading resumes at the offset; if it is not, the rotated file
//     (same directory, name starting with the file's, such as auth.log.1 or
//     auth.log-20261202, matched by dev+inode+fingerprint, or else a
//     copytruncate copy as above) is finished first, then the new file is
//     read from 0.
//
// Lines: a line ends with "\n" (a trailing "\r" is removed); a blank line
// (empty or only white space) is counted and skipped. A partial last
// line is not emitted until its newline arrives, except when its file is
// finished (rotated away, or truncated), where it is emitted as it is.
// A line longer than MaxLineBytes is cut: the first MaxLineBytes bytes are
// emitted with "warden.truncated": true and the rest of the line is skipped.
//
// Changes are seen through fsnotify on the file's directory, with a poll
// every Config.Poll as a fallback (and as the only way when inotify is not
// available).
package tail

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/warden-sec/warden/internal/agent/source"
	"github.com/warden-sec/warden/internal/events"
)

// MaxLineBytes bounds a line; longer lines are cut and marked.
const MaxLineBytes = 64 << 10

// FingerprintBytes is how many first bytes of a file identify it.
const FingerprintBytes = 1024

// FieldTruncated marks an event whose line was cut at MaxLineBytes.
const FieldTruncated = "warden.truncated"

// DefaultPoll is the poll interval when Config.Poll is zero.
const DefaultPoll = 250 * time.Millisecond

// Parser turns one line into fields of ev. It must not keep line after it
// returns. An error means the line did not parse; the tail then makes a raw
// event of it (RawFunc) and counts it.
//
// It is the shape of internal/events/parse's Parser.
type Parser interface {
	Parse(line []byte, ev events.Event) error
}

// RawFunc fills ev (emptied first) as a raw event for a line that did not
// parse, recording err in error.message. It is the shape of parse.Raw.
type RawFunc func(line []byte, err error, ev events.Event)

// Config configures one tailed file.
type Config struct {
	Path    string           // the file, absolute
	Parser  Parser           // nil: every line becomes a raw event
	Raw     RawFunc          // nil: a stand-in that sets message, raw module and dataset, error.message
	Dataset string           // when set, overrides event.dataset
	Exclude []*regexp.Regexp // lines matching any are skipped (counted, not emitted)
	Poll    time.Duration    // poll interval; zero: DefaultPoll
	Logger  *slog.Logger     // nil: discard
	Now     func() time.Time
}

// Stats are a tail's counters since it was made.
type Stats struct {
	Lines       uint64 // lines read (including excluded and unparsed ones)
	ParseErrors uint64 // lines that became raw events with error.message
	Excluded    uint64 // lines skipped by Exclude
	Blank       uint64 // empty or all-blank lines, skipped
	Truncated   uint64 // lines cut at MaxLineBytes
	Rotations   uint64 // rotations and truncations followed
}

// Tail is a source.Source for one file. Its methods are safe for
// concurrent use; Run is meant to be called by one goroutine at a time.
type Tail struct {
	cfg                                                           Config
	nLines, nParseErrs, nExcluded, nBlank, nTruncated, nRotations atomic.Uint64
}

var _ source.Source = (*Tail)(nil)

// New returns a tail for cfg.
func New(cfg Config) (*Tail, error) {
	if cfg.Path == "" || !filepath.IsAbs(cfg.Path) {
		return nil, fmt.Errorf("tail: path %q must be absolute", cfg.Path)
	}
	cfg.Path = filepath.Clean(cfg.Path)
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Raw == nil {
		cfg.Raw = rawStandIn
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Tail{cfg: cfg}, nil
}

// rawStandIn is used until the caller gives parse.Raw.
func rawStandIn(line []byte, err error, ev events.Event) {
	ev[events.FieldMessage] = string(line)
	ev[events.FieldModule] = "raw"
	ev[events.FieldDataset] = "raw"
	if err != nil {
		ev[events.FieldError] = err.Error()
	}
}

// Name is "file:" and the path.
func (t *Tail) Name() string { return "file:" + t.cfg.Path }

// Stats returns the tail's counters.
func (t *Tail) Stats() Stats {
	return Stats{Lines: t.nLines.Load(), ParseErrors: t.nParseErrs.Load(), Excluded: t.nExcluded.Load(), Blank: t.nBlank.Load(),
		Truncated: t.nTruncated.Load(), Rotations: t.nRotations.Load()}
}

// State is a tail's position, JSON-encoded as the source state.
type State struct {
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	FP     string `json:"fp"`             // hex SHA-256 of the first FPLen bytes
	FPLen  int    `json:"fp_len"`         // up to FingerprintBytes
	Offset int64  `json:"offset"`         // after the last line emitted
	Skip   bool   `json:"skip,omitempty"` // in the middle of a cut line: skip to its newline
}

// file is an open file being read.
type file struct {
	f        *os.File
	dev, ino uint64
	fp       string
	fpLen    int
	off      int64  // file offset of pending[0]: after the last complete line
	pending  []byte // bytes read after off, no newline among them
	scanned  int    // how much of pending is known to hold no newline
	skip     bool
	retiring time.Time // when the path was first seen naming another file
	idleAt   int64     // size when retiring was last extended
}

func fileID(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino) //nolint:unconvert // Dev is not uint64 everywhere
	}
	return 0, 0
}

// fingerprint hashes the first n (at most FingerprintBytes) bytes of f.
func fingerprint(f *os.File, n int) (string, int, error) {
	buf := make([]byte, FingerprintBytes)
	if n >= 0 && n < FingerprintBytes {
		buf = buf[:n]
	}
	got, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", 0, err
	}
	sum := sha256.Sum256(buf[:got])
	return hex.EncodeToString(sum[:]), got, nil
}

func open(path string) (*file, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	fl := &file{f: f}
	fl.dev, fl.ino = fileID(fi)
	if fl.fp, fl.fpLen, err = fingerprint(f, -1); err != nil {
		f.Close()
		return nil, err
	}
	return fl, nil
}

// matches reports whether fl is the file st describes.
func (fl *file) matches(st State) bool {
	if fl.dev != st.Dev || fl.ino != st.Ino || fl.fpLen < st.FPLen {
		return false
	}
	fp, n, err := fingerprint(fl.f, st.FPLen)
	return err == nil && n == st.FPLen && fp == st.FP
}

func (fl *file) seek(off int64) error {
	if _, err := fl.f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	fl.off, fl.pending, fl.scanned = off, fl.pending[:0], 0
	return nil
}

func (fl *file) state() []byte {
	b, _ := json.Marshal(State{Dev: fl.dev, Ino: fl.ino, FP: fl.fp, FPLen: fl.fpLen, Offset: fl.off, Skip: fl.skip})
	return b
}

// Run follows the file from state (nil: from offset 0 of the file at the
// path, waiting for it to appear) until ctx ends (it then returns nil) or
// emit fails (it returns that error).
func (t *Tail) Run(ctx context.Context, state []byte, emit source.Emit) error {
	log := t.cfg.Logger.With("source", t.Name())
	wake := make(chan struct{}, 1)  // the file was written
	check := make(chan struct{}, 1) // names changed in the directory
	nudge := func(c chan struct{}) {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	if w, err := fsnotify.NewWatcher(); err != nil {
		log.Warn("no file notifications; polling only", "err", err)
	} else {
		defer w.Close()
		if err := w.Add(filepath.Dir(t.cfg.Path)); err != nil {
			log.Warn("no file notifications; polling only", "err", err)
		}
		go func() {
			for {
				select {
				case ev, ok := <-w.Events:
					if !ok {
						return
					}
					if !strings.HasPrefix(ev.Name, t.cfg.Path) {
						continue
					}
					if ev.Op == fsnotify.Write && ev.Name == t.cfg.Path {
						nudge(wake)
					} else {
						nudge(check)
					}
				case _, ok := <-w.Errors:
					if !ok {
						return
					}
					nudge(check)
				}
			}
		}()
	}
	tick := time.NewTicker(t.cfg.Poll)
	defer tick.Stop()

	var cur, next *file // next: the file at the path, once cur is being finished
	defer func() {
		for _, fl := range []*file{cur, next} {
			if fl != nil {
				fl.f.Close()
			}
		}
	}()
	var err error
	if cur, next, err = t.resume(state, log); err != nil {
		return err
	}
	rbuf := make([]byte, 64<<10)
	for {
		if cur == nil {
			if cur, err = open(t.cfg.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				log.Warn("cannot open the file; retrying", "err", err)
			}
		}
		checkNow := false
		if cur != nil {
			if cur, next, err = t.truncated(ctx, cur, next, emit, log); err != nil {
				return err
			}
			if err := t.read(ctx, cur, rbuf, emit); err != nil {
				return err
			}
			select {
			case <-check:
				checkNow = true
			default:
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-check:
			checkNow = true
		case <-tick.C:
			checkNow = true
		}
		if checkNow && cur != nil {
			if cur, next, err = t.rotate(ctx, cur, next, rbuf, emit, log); err != nil {
				return err
			}
		}
	}
}

// resume opens what state points to: the file at the path if it is the
// same, else the rotated file (returned as cur, with the path's file as
// next), else the path's file from 0.
func (t *Tail) resume(state []byte, log *slog.Logger) (cur, next *file, err error) {
	if len(state) == 0 {
		return nil, nil, nil
	}
	var st State
	if err := json.Unmarshal(state, &st); err != nil {
		log.Warn("saved position does not decode; reading the file from the start", "err", err)
		return nil, nil, nil
	}
	atPath, err := open(t.cfg.Path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("tail: %w", err)
	}
	if atPath != nil && atPath.matches(st) {
		return atPath, nil, t.resumeAt(atPath, st, log)
	}
	if old := t.findRotated(st); old != nil {
		log.Info("the file was rotated while the agent was stopped; finishing the rotated file first", "rotated", old.f.Name())
		t.nRotations.Add(1)
		return old, atPath, t.resumeAt(old, st, log)
	}
	if cp := t.findCopy(st); cp != nil {
		log.Info("the file was truncated while the agent was stopped; finishing its copy first", "copy", cp.f.Name())
		t.nRotations.Add(1)
		return cp, atPath, t.resumeAt(cp, st, log)
	}
	if atPath != nil {
		log.Warn("the file read before the restart is gone; reading the new file from the start")
	}
	return atPath, nil, nil
}

func (t *Tail) resumeAt(fl *file, st State, log *slog.Logger) error {
	fi, err := fl.f.Stat()
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	if fi.Size() < st.Offset {
		log.Warn("the file is shorter than the saved offset (truncated); reading it from the start")
		return nil
	}
	fl.skip = st.Skip
	if err := fl.seek(st.Offset); err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	return nil
}

// findRotated looks in the directory for the file st identifies under
// another name that starts with the path's base name.
func (t *Tail) findRotated(st State) *file {
	dir, base := filepath.Split(t.cfg.Path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range ents {
		if e.Name() == base || !strings.HasPrefix(e.Name(), base) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if dev, ino := fileID(fi); dev != st.Dev || ino != st.Ino {
			continue
		}
		fl, err := open(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if fl.matches(st) {
			return fl
		}
		fl.f.Close()
	}
	return nil
}

// findCopy looks for the copy copytruncate made of the file st describes:
// in the same directory, a name starting with the file's, another inode,
// at least st.Offset bytes, and the same first st.FPLen bytes. The newest
// such file is returned, open; nil if none.
func (t *Tail) findCopy(st State) *file {
	if st.Offset == 0 || st.FPLen == 0 {
		return nil
	}
	dir, base := filepath.Split(t.cfg.Path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var best *file
	var bestTime time.Time
	for _, e := range ents {
		if e.Name() == base || !strings.HasPrefix(e.Name(), base) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.Size() < st.Offset {
			continue
		}
		if dev, ino := fileID(fi); dev == st.Dev && ino == st.Ino {
			continue
		}
		fl, err := open(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		fp, n, err := fingerprint(fl.f, st.FPLen)
		if err != nil || n != st.FPLen || fp != st.FP || (best != nil && !fi.ModTime().After(bestTime)) {
			fl.f.Close()
			continue
		}
		if best != nil {
			best.f.Close()
		}
		best, bestTime = fl, fi.ModTime()
	}
	return best
}

// read reads fl to its current end, emitting every complete line.
func (t *Tail) read(ctx context.Context, fl *file, rbuf []byte, emit source.Emit) error {
	for {
		n, err := fl.f.Read(rbuf)
		if n > 0 {
			fl.pending = append(fl.pending, rbuf[:n]...)
			if fl.fpLen < FingerprintBytes {
				if fl.fp, fl.fpLen, err = fingerprint(fl.f, -1); err != nil {
					return fmt.Errorf("tail: %w", err)
				}
			}
			if err := t.lines(ctx, fl, emit); err != nil {
				return err
			}
		}
		if err != nil || n == 0 {
			return nil // EOF, or a read error retried at the next wake
		}
	}
}

// lines emits the complete lines in fl.pending.
func (t *Tail) lines(ctx context.Context, fl *file, emit source.Emit) error {
	p := fl.pending
	from := fl.scanned // pending[:scanned] is known to hold no newline
	fl.scanned = 0
	for len(p) > 0 {
		i := bytes.IndexByte(p[from:], '\n')
		if i >= 0 {
			i += from
		}
		from = 0
		if fl.skip {
			if i < 0 {
				fl.off += int64(len(p))
				p = p[len(p):]
				break
			}
			fl.off += int64(i + 1)
			p = p[i+1:]
			fl.skip = false
			continue
		}
		if i < 0 {
			if len(p) <= MaxLineBytes {
				fl.scanned = len(p)
				break
			}
			fl.off += MaxLineBytes
			fl.skip = true
			t.nTruncated.Add(1)
			if err := t.emit(ctx, fl, p[:MaxLineBytes], true, emit); err != nil {
				return err
			}
			p = p[MaxLineBytes:]
			continue
		}
		line := p[:i]
		fl.off += int64(i + 1)
		p = p[i+1:]
		cut := len(line) > MaxLineBytes
		if cut {
			line = line[:MaxLineBytes]
			t.nTruncated.Add(1)
		}
		if err := t.emit(ctx, fl, line, cut, emit); err != nil {
			return err
		}
	}
	if len(p) != len(fl.pending) {
		fl.pending = append(fl.pending[:0], p...)
	}
	return nil
}

// finish emits fl's partial last line, if any: its file will not grow.
func (t *Tail) finish(ctx context.Context, fl *file, emit source.Emit) error {
	if len(fl.pending) == 0 || fl.skip {
		return nil
	}
	line := fl.pending
	fl.off += int64(len(line))
	fl.pending, fl.scanned = fl.pending[:0], 0
	return t.emit(ctx, fl, line, false, emit)
}

func (t *Tail) emit(ctx context.Context, fl *file, line []byte, cut bool, emit source.Emit) error {
	t.nLines.Add(1)
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(bytes.TrimSpace(line)) == 0 {
		t.nBlank.Add(1) // nothing to ship; counted
		return nil
	}
	for _, re := range t.cfg.Exclude {
		if re.Match(line) {
			t.nExcluded.Add(1)
			return nil
		}
	}
	ev := events.Event{}
	if t.cfg.Parser == nil {
		t.cfg.Raw(line, nil, ev)
	} else if err := t.cfg.Parser.Parse(line, ev); err != nil {
		t.nParseErrs.Add(1)
		clear(ev)
		t.cfg.Raw(line, err, ev)
	}
	ev[events.FieldFilePath] = t.cfg.Path
	if t.cfg.Dataset != "" {
		ev[events.FieldDataset] = t.cfg.Dataset
	}
	if _, ok := ev[events.FieldTimestamp]; !ok {
		ev[events.FieldTimestamp] = events.FormatTime(t.cfg.Now())
	}
	if _, ok := ev[events.FieldMessage]; !ok {
		ev[events.FieldMessage] = string(line)
	}
	if cut {
		ev[FieldTruncated] = true
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return emit(ev, fl.state())
}

// truncated checks whether cur was truncated (copytruncate): it is shorter
// than what was read, or its first bytes changed. If so, and the copy
// logrotate made is found (findCopy), the copy becomes the file being
// finished from where cur was (so lines written before the copy and not
// yet read are not lost) and cur, from 0, the next; else cur is read again
// from 0, after its partial last line is emitted.
func (t *Tail) truncated(ctx context.Context, cur, next *file, emit source.Emit, log *slog.Logger) (*file, *file, error) {
	fi, err := cur.f.Stat()
	if err != nil {
		return cur, next, nil
	}
	readTo := cur.off + int64(len(cur.pending))
	if fi.Size() >= readTo {
		if readTo == 0 {
			return cur, next, nil
		}
		fp, n, err := fingerprint(cur.f, cur.fpLen)
		if err != nil || n == cur.fpLen && fp == cur.fp {
			return cur, next, nil
		}
	}
	if next == nil && readTo > 0 {
		st := State{Dev: cur.dev, Ino: cur.ino, FP: cur.fp, FPLen: cur.fpLen, Offset: readTo}
		if cp := t.findCopy(st); cp != nil {
			if _, err := cp.f.Seek(readTo, io.SeekStart); err == nil {
				log.Info("the file was truncated; finishing its copy first", "copy", cp.f.Name())
				cp.off, cp.pending, cp.skip, cp.scanned = cur.off, append(cp.pending[:0], cur.pending...), cur.skip, cur.scanned
				if err := cur.seek(0); err != nil {
					return cur, next, fmt.Errorf("tail: %w", err)
				}
				cur.skip = false
				cur.fp, cur.fpLen, _ = fingerprint(cur.f, -1)
				return cp, cur, nil
			}
			cp.f.Close()
		}
	}
	log.Info("the file was truncated; reading it from the start")
	t.nRotations.Add(1)
	if err := t.finish(ctx, cur, emit); err != nil {
		return cur, next, err
	}
	cur.skip = false
	if err := cur.seek(0); err != nil {
		return cur, next, fmt.Errorf("tail: %w", err)
	}
	cur.fp, cur.fpLen, _ = fingerprint(cur.f, -1)
	return cur, next, nil
}

// rotate checks whether the path still names cur, and moves to the next
// file once cur is finished.
func (t *Tail) rotate(ctx context.Context, cur, next *file, rbuf []byte, emit source.Emit, log *slog.Logger) (*file, *file, error) {
	fi, err := cur.f.Stat()
	if err != nil {
		return cur, next, nil
	}
	if next == nil {
		pfi, err := os.Stat(t.cfg.Path)
		if err != nil {
			return cur, nil, nil // renamed away, nothing at the path yet: keep reading the old file
		}
		if dev, ino := fileID(pfi); dev == cur.dev && ino == cur.ino {
			return cur, nil, nil
		}
		if next, err = open(t.cfg.Path); err != nil {
			return cur, nil, nil // raced with another rotation: look again later
		}
	}
	// cur was rotated away; finish it once it has stopped growing.
	now := t.cfg.Now()
	if cur.retiring.IsZero() || fi.Size() != cur.idleAt {
		cur.retiring, cur.idleAt = now, fi.Size()
		if err := t.read(ctx, cur, rbuf, emit); err != nil {
			return cur, next, err
		}
		return cur, next, nil
	}
	if now.Sub(cur.retiring) < 2*t.cfg.Poll {
		return cur, next, nil
	}
	if err := t.read(ctx, cur, rbuf, emit); err != nil {
		return cur, next, err
	}
	if err := t.finish(ctx, cur, emit); err != nil {
		return cur, next, err
	}
	log.Info("the file was rotated; reading the new file")
	t.nRotations.Add(1)
	cur.f.Close()
	return next, nil, nil
}
