package fim

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/events"
)

// harness runs a FIM source and collects what it emits.
type harness struct {
	t      *testing.T
	f      *FIM
	evs    chan events.Event
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, f: f, evs: make(chan events.Event, 100), cancel: cancel, done: make(chan error, 1)}
	go func() {
		h.done <- f.Run(ctx, nil, func(ev events.Event, state []byte) error {
			if state != nil {
				t.Errorf("FIM emitted state %q", state)
			}
			select {
			case h.evs <- ev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	// The start scan is done once Scan answers.
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := f.Scan(sctx); err != nil {
		t.Fatalf("first scan: %v", err)
	}
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("Run: %v", err)
	}
	h.cancel = nil
}

// next waits for the next event (watcher-driven changes arrive after the
// debounce).
func (h *harness) next() events.Event {
	h.t.Helper()
	select {
	case ev := <-h.evs:
		return ev
	case <-time.After(10 * time.Second):
		h.t.Fatal("no event within 10s")
		return nil
	}
}

// want checks an event's action, path and the given fields.
func (h *harness) want(ev events.Event, act, path string, kv ...any) {
	h.t.Helper()
	if (act != "" && ev["event.action"] != act) || ev["file.path"] != path || ev["event.module"] != "fim" || ev["event.dataset"] != "fim" || ev["event.category"] != "file" {
		h.t.Fatalf("got %v, want %s of %s", ev, act, path)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if got := ev[kv[i].(string)]; got != kv[i+1] {
			h.t.Errorf("%s %s: %s = %v, want %v (event %v)", act, path, kv[i], got, kv[i+1], ev)
		}
	}
}

// until waits for the event of act on path with the given fields,
// passing over created or modified events of the same path on the way:
// a file caught between its writes (truncated, half-written) is a real
// intermediate state when the machine stalls for longer than Debounce.
func (h *harness) until(act, path string, kv ...any) events.Event {
	h.t.Helper()
	for {
		ev := h.next()
		match := ev["event.action"] == act && ev["file.path"] == path
		for i := 0; match && i+1 < len(kv); i += 2 {
			match = ev[kv[i].(string)] == kv[i+1]
		}
		if match {
			h.want(ev, act, path, kv...)
			return ev
		}
		if ev["file.path"] != path || (ev["event.action"] != "created" && ev["event.action"] != "modified") {
			h.t.Fatalf("got %v while waiting for %s of %s %v", ev, act, path, kv)
		}
	}
}

// created waits for the creation of path with content sum: a created
// event, followed by modified ones if it was seen before its last write.
func (h *harness) created(path, sum string) events.Event {
	h.t.Helper()
	ev := h.next()
	h.want(ev, "created", path)
	if ev["file.hash.sha256"] != sum {
		ev = h.until("modified", path, "file.hash.sha256", sum)
	}
	return ev
}

func (h *harness) none() {
	h.t.Helper()
	select {
	case ev := <-h.evs:
		h.t.Fatalf("unexpected event %v", ev)
	default:
	}
}

const (
	sumHello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" // "hello"
	sumWorld = "486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7" // "world"
)

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWatcher(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	write(t, filepath.Join(dir, "old"), "hello")
	h := start(t, Config{Paths: []string{dir}, StateDir: state, Exclude: []string{"*.swp"}, ScanInterval: -1, Debounce: 300 * time.Millisecond})
	h.none() // the first run records the baseline silently

	p := filepath.Join(dir, "a")
	write(t, p, "hello")
	h.want(h.created(p, sumHello), "", p, "file.size", int64(5), "file.mode", "0644", "file.type", "file")

	write(t, p, "world")
	h.until("modified", p, "file.hash.sha256", sumWorld)

	if err := os.Chmod(p, 0o750|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	h.want(h.next(), "attributes", p, "file.mode", "4750", "file.previous.mode", "0644", "file.hash.sha256", sumWorld)

	// A new directory is watched, and what was made in it at once found.
	sub := filepath.Join(dir, "sub", "deeper")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(sub, "x"), "hello")
	h.created(filepath.Join(sub, "x"), sumHello)
	write(t, filepath.Join(sub, "y.swp"), "excluded")
	write(t, filepath.Join(sub, "y"), "hello")
	h.created(filepath.Join(sub, "y"), sumHello)

	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	h.want(h.next(), "deleted", p, "file.hash.sha256", sumWorld)

	if err := os.RemoveAll(filepath.Join(dir, "sub")); err != nil {
		t.Fatal(err)
	}
	h.want(h.next(), "deleted", filepath.Join(sub, "x"))
	h.want(h.next(), "deleted", filepath.Join(sub, "y"))

	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	h.want(h.next(), "created", filepath.Join(dir, "link"), "file.type", "symlink", "file.target_path", "/etc/passwd")
	h.none()
}

// A change made while the agent was stopped is reported by the start
// scan, from the persisted baseline.
func TestStartScan(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	keep, mod, del := filepath.Join(dir, "keep"), filepath.Join(dir, "mod"), filepath.Join(dir, "del")
	write(t, keep, "hello")
	write(t, mod, "hello")
	write(t, del, "hello")
	cfg := Config{Paths: []string{dir}, StateDir: state, ScanInterval: -1}
	h := start(t, cfg)
	h.stop()
	fi, err := os.Stat(h.f.BaselinePath())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("baseline file: %v, %v (want mode 0600)", fi, err)
	}

	write(t, mod, "world")
	if err := os.Remove(del); err != nil {
		t.Fatal(err)
	}
	add := filepath.Join(dir, "new")
	write(t, add, "hello")

	h = start(t, cfg)
	got := map[string]string{}
	for i := 0; i < 3; i++ {
		ev := h.next()
		got[ev["file.path"].(string)] = ev["event.action"].(string)
	}
	want := map[string]string{mod: "modified", del: "deleted", add: "created"}
	for p, a := range want {
		if got[p] != a {
			t.Errorf("start scan: %s %q, want %q (all: %v)", p, got[p], a, got)
		}
	}
	h.none()
	h.stop()

	// Reported once: the baseline was persisted after the events.
	h = start(t, cfg)
	h.none()
}

// A write inotify does not see (through a hard link outside the watched
// tree) is found by a scan.
func TestScanCatchesMissed(t *testing.T) {
	dir, outside, state := t.TempDir(), t.TempDir(), t.TempDir()
	p := filepath.Join(dir, "f")
	write(t, p, "hello")
	h := start(t, Config{Paths: []string{dir}, StateDir: state, ScanInterval: -1})
	alias := filepath.Join(outside, "alias")
	if err := os.Link(p, alias); err != nil {
		t.Skipf("hard link: %v", err)
	}
	// Linking changed the file's ctime (link count): a scan now would say
	// nothing (same content); write through the alias.
	if err := h.f.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.none()
	f, err := os.OpenFile(alias, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("world"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := h.f.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.want(h.next(), "modified", p, "file.hash.sha256", sumWorld)
}

// A file root is watched through its parent; its siblings are ignored.
func TestFileRootAndLimits(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	p := filepath.Join(dir, "passwd")
	write(t, p, "hello")
	big := filepath.Join(dir, "big")
	write(t, big, "0123456789")
	var mu sync.Mutex
	var logs []string
	h := start(t, Config{Paths: []string{p, big}, StateDir: state, ScanInterval: -1, MaxHashBytes: 5,
		Logf: func(f string, a ...any) { mu.Lock(); logs = append(logs, f); mu.Unlock() }})
	write(t, filepath.Join(dir, "sibling"), "x")
	write(t, p, "world")
	h.until("modified", p, "file.hash.sha256", sumWorld)
	write(t, big, "01234567890")
	ev := h.until("modified", big, "file.size", int64(11))
	if _, ok := ev["file.hash.sha256"]; ok {
		t.Errorf("a file over MaxHashBytes was hashed: %v", ev)
	}
	h.none()
	h.stop()

	// MaxFiles bounds the baseline; what is cut is counted.
	dir2, state2 := t.TempDir(), t.TempDir()
	for _, n := range []string{"a", "b", "c"} {
		write(t, filepath.Join(dir2, n), n)
	}
	h = start(t, Config{Paths: []string{dir2}, StateDir: state2, ScanInterval: -1, MaxFiles: 2})
	if s := h.f.Stats(); s.Files != 2 || s.Skipped != 1 {
		t.Errorf("stats %+v, want 2 files and 1 skipped", s)
	}
}

func TestNewErrors(t *testing.T) {
	for _, cfg := range []Config{{StateDir: "x"}, {Paths: []string{"/etc"}}, {Paths: []string{"/etc"}, StateDir: "x", Exclude: []string{"["}}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	state := t.TempDir()
	f, err := New(Config{Paths: []string{t.TempDir()}, StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	write(t, f.BaselinePath(), "{not json")
	if err := f.Run(context.Background(), nil, nil); err == nil {
		t.Error("Run accepted a corrupt baseline")
	}
}

// A first run over an empty tree still writes a baseline, so a file
// added while the agent is down is reported.
func TestEmptyFirstBaseline(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	cfg := Config{Paths: []string{dir}, StateDir: state, ScanInterval: -1}
	h := start(t, cfg)
	h.stop()
	p := filepath.Join(dir, "later")
	write(t, p, "hello")
	h = start(t, cfg)
	h.want(h.next(), "created", p)
}

// A renamed directory: its files are deleted under the old name and
// created under the new one, and the moved tree is watched by its new name.
func TestRenameDir(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	old := filepath.Join(dir, "old")
	if err := os.Mkdir(old, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(old, "f"), "hello")
	h := start(t, Config{Paths: []string{dir}, StateDir: state, ScanInterval: -1})
	neu := filepath.Join(dir, "new")
	if err := os.Rename(old, neu); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for i := 0; i < 2; i++ {
		ev := h.next()
		got[ev["file.path"].(string)] = ev["event.action"].(string)
	}
	if got[filepath.Join(old, "f")] != "deleted" || got[filepath.Join(neu, "f")] != "created" {
		t.Fatalf("rename: %v", got)
	}
	write(t, filepath.Join(neu, "f"), "world")
	h.until("modified", filepath.Join(neu, "f"), "file.hash.sha256", sumWorld)
	h.none()
}

// A burst of writes is coalesced: fewer events than writes, the last
// with the final content.
func TestDebounce(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	p := filepath.Join(dir, "f")
	write(t, p, "hello")
	h := start(t, Config{Paths: []string{dir}, StateDir: state, ScanInterval: -1, Debounce: time.Second})
	const writes = 30
	for i := 0; i < writes-1; i++ {
		write(t, p, "world"[:i%5])
	}
	write(t, p, "world")
	n := 0
	for {
		ev := h.next()
		n++
		if ev["file.hash.sha256"] == sumWorld {
			break
		}
	}
	if n >= writes {
		t.Errorf("%d writes made %d events, want them coalesced", writes, n)
	}
}

// An excluded directory (an absolute path) leaves out what is under it,
// seen by the watcher or by a scan.
func TestExcludeTree(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	skip := filepath.Join(dir, "cache")
	if err := os.MkdirAll(filepath.Join(skip, "deep"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(skip, "deep", "a"), "hello")
	h := start(t, Config{Paths: []string{dir}, StateDir: state, ScanInterval: -1, Exclude: []string{skip}})
	write(t, filepath.Join(skip, "b"), "hello")
	write(t, filepath.Join(skip, "deep", "c"), "hello")
	write(t, filepath.Join(dir, "kept"), "hello")
	h.created(filepath.Join(dir, "kept"), sumHello)
	if err := h.f.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.none()
	if s := h.f.Stats(); s.Files != 1 {
		t.Errorf("stats %+v, want 1 file", s)
	}
	if h.f.Name() != "fim:"+dir {
		t.Errorf("Name %q", h.f.Name())
	}
}
