// Package fim is file integrity monitoring, an agent source: configured
// files and directory trees get a baseline (SHA-256, mode, owner, size,
// mtime), and every change to it becomes an event (event.category
// "file", event.action created|modified|deleted|attributes).
//
// Changes are seen through inotify (fsnotify), debounced per path so a
// burst of writes is hashed once the file settles, and confirmed by a full
// scan at start (so what changed while the agent was down is reported)
// and every ScanInterval (so what inotify missed — an overflowed queue, a
// write through a hard link elsewhere, a filesystem without inotify — is
// found). The baseline lives in a file under StateDir and is updated only
// after emit returned for the change, so events are at-least-once across
// a crash: a change emitted but not yet persisted is reported again by
// the next start scan.
//
// What it does not do: follow symlinks (a symlink is recorded as such,
// with its target), record directories themselves (only the files under
// them), hash files over MaxHashBytes (their size and mtime stand in), or
// track more than MaxFiles files (the rest are counted in Stats and
// logged).
package fim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/warden-sec/warden/internal/agent/source"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/fsutil"
)

// Defaults of Config's zero fields.
const (
	DefaultScanInterval = 10 * time.Minute
	DefaultMaxFiles     = 100_000
	DefaultMaxHashBytes = 64 << 20
	DefaultDebounce     = 100 * time.Millisecond
	// persistDelay bounds how often watcher-driven changes rewrite the
	// baseline file (a scan writes it when it ends).
	persistDelay = time.Second
)

// Event fields FIM sets beyond ECS file.* (previous values of a changed
// file, which ECS has no names for).
const (
	FieldPath           = "file.path"
	FieldType           = "file.type" // "file" or "symlink"
	FieldTarget         = "file.target_path"
	FieldSHA256         = "file.hash.sha256"
	FieldMode           = "file.mode" // octal string, "0644"
	FieldUID            = "file.uid"  // decimal string (ECS keyword)
	FieldGID            = "file.gid"
	FieldSize           = "file.size"
	FieldMtime          = "file.mtime" // RFC 3339
	FieldPreviousPrefix = "file.previous."
)

// Config configures one FIM source.
type Config struct {
	// Name distinguishes this source from other FIM sources ("fim:" +
	// Name); empty means Paths, as given, joined with ",".
	Name string
	// Paths are files or directories (watched recursively); relative paths
	// are made absolute.
	Paths []string
	// Exclude holds filepath.Match globs, matched against a path and
	// against its base name; an excluded directory is not descended
	// (an absolute path with no metacharacter excludes itself and what is
	// under it).
	Exclude []string
	// StateDir holds the baseline file (created 0700 if absent).
	StateDir string
	// ScanInterval between full scans; 0 means DefaultScanInterval, < 0
	// disables periodic scans (the start scan still runs).
	ScanInterval time.Duration
	// MaxFiles bounds the baseline; 0 means DefaultMaxFiles.
	MaxFiles int
	// MaxHashBytes: larger files are not hashed; 0 means DefaultMaxHashBytes.
	MaxHashBytes int64
	// Debounce is how long a path must be quiet before it is examined;
	// 0 means DefaultDebounce. A path written continuously is examined
	// after 20 × Debounce anyway.
	Debounce time.Duration
	// Now is the clock for @timestamp; nil means time.Now.
	Now func() time.Time
	// Logf reports what does not stop the source (unreadable files, the
	// file limit, inotify errors); nil discards.
	Logf func(format string, args ...any)
}

// Stats are a FIM source's counters.
type Stats struct {
	Files    int   // files in the baseline
	Skipped  int64 // files not tracked because of MaxFiles (last scan)
	Unhashed int64 // files over MaxHashBytes, tracked by size and mtime
	Scans    int64 // full scans done
	Events   int64 // events emitted
}

// FIM is a file integrity monitoring source. Run may be called once at a
// time; Scan and Stats may be called concurrently with it.
type FIM struct {
	cfg       Config
	name      string
	roots     []string
	statePath string
	scanReq   chan chan error

	mu    sync.Mutex
	stats Stats
}

var _ source.Source = (*FIM)(nil)

// New checks cfg and returns the source.
func New(cfg Config) (*FIM, error) {
	if len(cfg.Paths) == 0 {
		return nil, errors.New("fim: no paths")
	}
	if cfg.StateDir == "" {
		return nil, errors.New("fim: no state directory")
	}
	for _, g := range cfg.Exclude {
		if _, err := filepath.Match(g, ""); err != nil {
			return nil, fmt.Errorf("fim: exclude %q: %w", g, err)
		}
	}
	f := &FIM{cfg: cfg, scanReq: make(chan chan error)}
	for _, p := range cfg.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("fim: path %q: %w", p, err)
		}
		f.roots = append(f.roots, abs)
	}
	if f.cfg.ScanInterval == 0 {
		f.cfg.ScanInterval = DefaultScanInterval
	}
	if f.cfg.MaxFiles <= 0 {
		f.cfg.MaxFiles = DefaultMaxFiles
	}
	if f.cfg.MaxHashBytes <= 0 {
		f.cfg.MaxHashBytes = DefaultMaxHashBytes
	}
	if f.cfg.Debounce <= 0 {
		f.cfg.Debounce = DefaultDebounce
	}
	if f.cfg.Now == nil {
		f.cfg.Now = time.Now
	}
	if f.cfg.Logf == nil {
		f.cfg.Logf = func(string, ...any) {}
	}
	n := cfg.Name
	if n == "" {
		n = strings.Join(cfg.Paths, ",") // as configured: the agent config names sources so
	}
	f.name = "fim:" + n
	sum := sha256.Sum256([]byte(f.name))
	f.statePath = filepath.Join(cfg.StateDir, "fim-"+hex.EncodeToString(sum[:8])+".json")
	return f, nil
}

// Name is "fim:" and the configured name or paths ("fim:/etc,/usr/local/bin").
func (f *FIM) Name() string { return f.name }

// BaselinePath is the file holding the baseline.
func (f *FIM) BaselinePath() string { return f.statePath }

// Stats returns the counters.
func (f *FIM) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Scan asks the running source for a full scan now and waits for it to
// end (its events emitted). It blocks until Run is running or ctx ends.
func (f *FIM) Scan(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case f.scanReq <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// entry is one file of the baseline.
type entry struct {
	Type    string `json:"type"` // "file" | "symlink"
	SHA256  string `json:"sha256,omitempty"`
	Target  string `json:"target,omitempty"`
	Mode    uint32 `json:"mode"` // permission and setuid/setgid/sticky bits, as chmod takes them
	UID     uint32 `json:"uid"`
	GID     uint32 `json:"gid"`
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	CtimeNs int64  `json:"ctime_ns"`
	Ino     uint64 `json:"ino"`
}

type baselineFile struct {
	Version int               `json:"version"`
	Files   map[string]*entry `json:"files"`
}

// Run keeps the baseline and emits changes until ctx ends. state is
// unused (FIM keeps its baseline in its own file) and events carry none.
// The first run (no baseline file) records the baseline without events.
func (f *FIM) Run(ctx context.Context, _ []byte, emit source.Emit) error {
	if err := os.MkdirAll(f.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("fim: state directory: %w", err)
	}
	r := &runner{f: f, emit: emit, base: map[string]*entry{}, watched: map[string]bool{}, pending: map[string]pend{}}
	first, err := r.load()
	if err != nil {
		return err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		f.cfg.Logf("fim: inotify unavailable, changes are found by scans only: %v", err)
	} else {
		r.w = w
		defer w.Close()
	}
	r.timer = time.NewTimer(time.Hour)
	r.timer.Stop()
	r.persistTimer = time.NewTimer(time.Hour)
	r.persistTimer.Stop()
	defer func() {
		if r.dirty {
			if err := r.persist(); err != nil {
				f.cfg.Logf("%v", err)
			}
		}
	}()
	// An error once ctx ended is the stop itself, not a failure.
	stopped := func(err error) error {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	r.silent = first
	r.dirty = first // a first baseline is written even when empty
	if err := r.scan(ctx); err != nil {
		return stopped(err)
	}
	r.silent = false
	var tick <-chan time.Time
	if f.cfg.ScanInterval > 0 {
		t := time.NewTicker(f.cfg.ScanInterval)
		defer t.Stop()
		tick = t.C
	}
	var wev <-chan fsnotify.Event
	var werr <-chan error
	if r.w != nil {
		wev, werr = r.w.Events, r.w.Errors
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-wev:
			if !ok {
				wev = nil
				continue
			}
			if e.Has(fsnotify.Remove) || e.Has(fsnotify.Rename) {
				r.unwatch(filepath.Clean(e.Name))
			}
			r.schedule(e.Name)
		case err, ok := <-werr:
			if !ok {
				werr = nil
				continue
			}
			f.cfg.Logf("fim: inotify: %v (a full scan follows)", err)
			if err := r.scan(ctx); err != nil {
				return stopped(err)
			}
		case <-r.timer.C:
			r.armed = false
			if err := r.flush(ctx); err != nil {
				return stopped(err)
			}
		case <-r.persistTimer.C:
			r.persistArmed = false
			if err := r.persist(); err != nil {
				return err
			}
		case <-tick:
			if err := r.scan(ctx); err != nil {
				return stopped(err)
			}
		case done := <-f.scanReq:
			err := r.scan(ctx)
			done <- err
			if err != nil {
				return stopped(err)
			}
		}
	}
}

type pend struct{ first, last time.Time }

// runner is one Run's state, owned by its goroutine.
type runner struct {
	f       *FIM
	emit    source.Emit
	base    map[string]*entry
	w       *fsnotify.Watcher
	watched map[string]bool
	pending map[string]pend
	timer   *time.Timer
	armed   bool
	silent  bool // the first scan records without emitting
	dirty   bool
	skipped int64

	persistTimer *time.Timer
	persistArmed bool
}

func (r *runner) load() (first bool, err error) {
	b, err := os.ReadFile(r.f.statePath)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("fim: baseline: %w", err)
	}
	var bf baselineFile
	if err := json.Unmarshal(b, &bf); err != nil || bf.Version != 1 {
		return false, fmt.Errorf("fim: baseline %s is not a version 1 baseline (remove it to start a new one): %v", r.f.statePath, err)
	}
	if bf.Files != nil {
		r.base = bf.Files
	}
	r.f.setFiles(len(r.base))
	return false, nil
}

func (r *runner) persist() error {
	b, err := json.Marshal(baselineFile{Version: 1, Files: r.base})
	if err != nil {
		return fmt.Errorf("fim: baseline: %w", err)
	}
	if err := fsutil.WriteFileAtomic(r.f.statePath, b, 0o600); err != nil {
		return fmt.Errorf("fim: baseline: %w", err)
	}
	r.dirty = false
	if r.persistArmed {
		r.persistTimer.Stop()
		r.persistArmed = false
	}
	return nil
}

// markDirty notes a baseline change made after its event was emitted
// and schedules a write.
func (r *runner) markDirty() {
	r.dirty = true
	if !r.persistArmed {
		r.persistTimer.Reset(persistDelay)
		r.persistArmed = true
	}
}

func (f *FIM) setFiles(n int) {
	f.mu.Lock()
	f.stats.Files = n
	f.mu.Unlock()
}

func (f *FIM) inRoots(p string) bool {
	for _, r := range f.roots {
		if p == r || strings.HasPrefix(p, r+string(filepath.Separator)) || r == "/" {
			return true
		}
	}
	return false
}

// excluded reports whether p, or a directory above it within the roots,
// matches an exclude glob.
func (f *FIM) excluded(p string) bool {
	for q := p; ; {
		if f.excludedName(q) {
			return true
		}
		up := filepath.Dir(q)
		if up == q || !f.inRoots(up) {
			return false
		}
		q = up
	}
}

func (f *FIM) excludedName(p string) bool {
	b := filepath.Base(p)
	for _, g := range f.cfg.Exclude {
		if ok, _ := filepath.Match(g, p); ok {
			return true
		}
		if ok, _ := filepath.Match(g, b); ok {
			return true
		}
	}
	return false
}

// schedule notes a watcher event on p; it is examined once quiet.
func (r *runner) schedule(p string) {
	p = filepath.Clean(p)
	if !r.f.inRoots(p) || r.f.excluded(p) {
		return
	}
	now := time.Now()
	pd, ok := r.pending[p]
	if !ok {
		pd.first = now
	}
	pd.last = now
	r.pending[p] = pd
	if !r.armed {
		r.timer.Reset(r.f.cfg.Debounce)
		r.armed = true
	}
}

// flush examines the pending paths that have been quiet for Debounce (or
// pending for 20 × Debounce) and re-arms the timer for the rest.
func (r *runner) flush(ctx context.Context) error {
	now := time.Now()
	d := r.f.cfg.Debounce
	var due []string
	next := time.Duration(-1)
	for p, pd := range r.pending {
		wait := pd.last.Add(d).Sub(now)
		if cap := pd.first.Add(20 * d).Sub(now); cap < wait {
			wait = cap
		}
		if wait <= 0 {
			due = append(due, p)
		} else if next < 0 || wait < next {
			next = wait
		}
	}
	sort.Strings(due)
	for _, p := range due {
		delete(r.pending, p)
		if err := r.check(ctx, p); err != nil {
			return err
		}
	}
	if next >= 0 {
		r.timer.Reset(next)
		r.armed = true
	}
	return nil
}

// check examines one path a watcher event named.
func (r *runner) check(ctx context.Context, p string) error {
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.unwatch(p)
		return r.removed(p)
	case err != nil:
		r.f.cfg.Logf("fim: %s: %v", p, err)
		return nil
	case fi.IsDir():
		if old := r.base[p]; old != nil {
			if err := r.change(p, old, nil); err != nil {
				return err
			}
		}
		if !r.watched[p] {
			// A new directory: watch it and take in what was created in
			// it before the watch was added.
			return r.walk(ctx, p, nil, nil)
		}
		return nil
	default:
		return r.update(p, fi)
	}
}

// removed emits deleted events for p and every file under it.
func (r *runner) removed(p string) error {
	var gone []string
	for q := range r.base {
		if q == p || strings.HasPrefix(q, p+"/") {
			gone = append(gone, q)
		}
	}
	sort.Strings(gone)
	for _, q := range gone {
		if err := r.change(q, r.base[q], nil); err != nil {
			return err
		}
	}
	return nil
}

// scan walks every root, emitting what differs from the baseline, and
// deletes what is gone; then it writes the baseline.
func (r *runner) scan(ctx context.Context) error {
	seen := map[string]bool{}
	var failed []string
	r.skipped = 0
	for _, root := range r.f.roots {
		if err := r.walk(ctx, root, seen, &failed); err != nil {
			return err
		}
	}
	var gone []string
	for p := range r.base {
		if seen[p] {
			continue
		}
		if !r.f.inRoots(p) || r.f.excluded(p) {
			// No longer configured: forgotten, not reported deleted.
			delete(r.base, p)
			r.markDirty()
			continue
		}
		under := false
		for _, fd := range failed {
			if p == fd || strings.HasPrefix(p, fd+"/") {
				under = true
			}
		}
		if !under {
			gone = append(gone, p)
		}
	}
	sort.Strings(gone)
	for _, p := range gone {
		if err := r.change(p, r.base[p], nil); err != nil {
			return err
		}
	}
	if r.skipped > 0 {
		r.f.cfg.Logf("fim: %d files not tracked: the baseline holds its maximum of %d", r.skipped, r.f.cfg.MaxFiles)
	}
	r.f.mu.Lock()
	r.f.stats.Scans++
	r.f.stats.Skipped = r.skipped
	r.f.stats.Files = len(r.base)
	r.f.mu.Unlock()
	if r.dirty {
		return r.persist()
	}
	return nil
}

// walk takes in the tree at root: watches its directories and updates
// its files. seen and failed (nil outside a full scan) collect the files
// found and the directories that could not be read.
func (r *runner) walk(ctx context.Context, root string, seen map[string]bool, failed *[]string) error {
	// A root that is a file is watched through its parent directory.
	if fi, err := os.Lstat(root); err == nil && !fi.IsDir() {
		r.watch(filepath.Dir(root))
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				r.f.cfg.Logf("fim: %s: %v", p, err)
				if failed != nil {
					*failed = append(*failed, p)
				}
			}
			return nil
		}
		if p != root && r.f.excludedName(p) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			r.watch(p)
			return nil
		}
		if !d.Type().IsRegular() && d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				r.f.cfg.Logf("fim: %s: %v", p, err)
				if failed != nil {
					*failed = append(*failed, p)
				}
			}
			return nil
		}
		if seen != nil {
			seen[p] = true
		}
		return r.update(p, fi)
	})
}

func (r *runner) watch(dir string) {
	if r.w == nil || r.watched[dir] {
		return
	}
	if err := r.w.Add(dir); err != nil {
		r.f.cfg.Logf("fim: watch %s: %v (changes there are found by scans)", dir, err)
		return
	}
	r.watched[dir] = true
}

// unwatch forgets the watches on p and under it: p was removed, or
// renamed (inotify would go on reporting a moved directory under its old
// name), so a directory made again there is watched afresh.
func (r *runner) unwatch(p string) {
	for w := range r.watched {
		if w == p || strings.HasPrefix(w, p+"/") {
			if r.w != nil {
				_ = r.w.Remove(w) // fails when inotify already dropped it
			}
			delete(r.watched, w)
		}
	}
}

// update compares the file at p (fi from Lstat) with the baseline.
func (r *runner) update(p string, fi os.FileInfo) error {
	old := r.base[p]
	if old == nil && len(r.base) >= r.f.cfg.MaxFiles {
		r.skipped++
		return nil
	}
	cur, err := r.stat(p, fi, old)
	if errors.Is(err, fs.ErrNotExist) {
		return r.removed(p)
	}
	if err != nil {
		r.f.cfg.Logf("fim: %s: %v", p, err)
		return nil
	}
	if cur == nil {
		return nil // neither a regular file nor a symlink any more
	}
	return r.change(p, old, cur)
}

// stat makes the baseline entry of p, reusing old's hash when the inode,
// size, mtime and ctime are unchanged (ctime cannot be set back).
func (r *runner) stat(p string, fi os.FileInfo, old *entry) (*entry, error) {
	si := sysStat(fi)
	e := &entry{Mode: unixMode(fi.Mode()), UID: si.uid, GID: si.gid, Size: fi.Size(),
		MtimeNs: fi.ModTime().UnixNano(), CtimeNs: si.ctimeNs, Ino: si.ino}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		e.Type = "symlink"
		t, err := os.Readlink(p)
		if err != nil {
			return nil, err
		}
		e.Target = t
		return e, nil
	case !fi.Mode().IsRegular():
		return nil, nil
	}
	e.Type = "file"
	if old != nil && old.Type == "file" && old.Ino == e.Ino && old.Size == e.Size && old.MtimeNs == e.MtimeNs && old.CtimeNs == e.CtimeNs {
		e.SHA256 = old.SHA256
		return e, nil
	}
	if e.Size > r.f.cfg.MaxHashBytes {
		r.f.mu.Lock()
		r.f.stats.Unhashed++
		r.f.mu.Unlock()
		return e, nil
	}
	fh, err := openRegular(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	// Describe what was hashed: the opened file, not the name examined.
	if fi, err = fh.Stat(); err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil
	}
	si = sysStat(fi)
	e.Mode, e.UID, e.GID, e.Size, e.MtimeNs, e.CtimeNs, e.Ino = unixMode(fi.Mode()), si.uid, si.gid, fi.Size(), fi.ModTime().UnixNano(), si.ctimeNs, si.ino
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(fh, r.f.cfg.MaxHashBytes+1)); err != nil {
		return nil, err
	}
	e.SHA256 = hex.EncodeToString(h.Sum(nil))
	return e, nil
}

func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// action names what differs between old and cur ("" if nothing an event
// reports: a touch that changed only mtime, say).
func action(old, cur *entry) string {
	switch {
	case old == nil && cur == nil:
		return ""
	case old == nil:
		return "created"
	case cur == nil:
		return "deleted"
	case old.Type != cur.Type || old.SHA256 != cur.SHA256 || old.Target != cur.Target,
		cur.Type == "file" && cur.SHA256 == "" && (old.Size != cur.Size || old.MtimeNs != cur.MtimeNs):
		return "modified"
	case old.Mode != cur.Mode || old.UID != cur.UID || old.GID != cur.GID:
		return "attributes"
	}
	return ""
}

// change emits the event for p going from old to cur (nil: absent), then
// updates the baseline. During the first scan it records silently.
func (r *runner) change(p string, old, cur *entry) error {
	act := action(old, cur)
	if act != "" && !r.silent {
		if err := r.emit(r.event(p, act, old, cur), nil); err != nil {
			return err
		}
		r.f.mu.Lock()
		r.f.stats.Events++
		r.f.mu.Unlock()
	}
	if cur == nil {
		if old == nil {
			return nil
		}
		delete(r.base, p)
	} else if old != nil && *old == *cur {
		return nil
	} else {
		if old == nil && len(r.base) >= r.f.cfg.MaxFiles {
			r.skipped++
			return nil
		}
		r.base[p] = cur
	}
	r.markDirty()
	return nil
}

func (r *runner) event(p, act string, old, cur *entry) events.Event {
	ev := events.Event{
		events.FieldTimestamp: events.FormatTime(r.f.cfg.Now()),
		events.FieldModule:    "fim",
		events.FieldDataset:   "fim",
		events.FieldCategory:  "file",
		events.FieldAction:    act,
		FieldPath:             p,
	}
	show := cur
	if cur == nil {
		show = old // what was deleted
	}
	fields(ev, "file.", show)
	ev[events.FieldMessage] = "file " + act + ": " + p
	if old != nil && cur != nil {
		prev := events.Event{}
		fields(prev, FieldPreviousPrefix, old)
		for k, v := range prev {
			if ev["file."+strings.TrimPrefix(k, FieldPreviousPrefix)] != v {
				ev[k] = v
			}
		}
	}
	return ev
}

// fields writes e's values under prefix ("file." or "file.previous.").
func fields(ev events.Event, prefix string, e *entry) {
	ev[prefix+"type"] = e.Type
	if e.SHA256 != "" {
		ev[prefix+"hash.sha256"] = e.SHA256
	}
	if e.Target != "" {
		ev[prefix+"target_path"] = e.Target
	}
	ev[prefix+"mode"] = fmt.Sprintf("%04o", e.Mode)
	ev[prefix+"uid"] = strconv.FormatUint(uint64(e.UID), 10)
	ev[prefix+"gid"] = strconv.FormatUint(uint64(e.GID), 10)
	ev[prefix+"size"] = e.Size
	ev[prefix+"mtime"] = events.FormatTime(time.Unix(0, e.MtimeNs))
}
