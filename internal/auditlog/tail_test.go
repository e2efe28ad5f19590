package auditlog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store"
)

// switchWriter fails while failing is set, and keeps what it accepted.
type switchWriter struct {
	failing atomic.Bool
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *switchWriter) Write(p []byte) (int, error) {
	if w.failing.Load() {
		return 0, errors.New("disk full")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *switchWriter) lines(t *testing.T) []uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return indexes(t, w.buf.Bytes())
}

// indexes decodes sink lines, checks each carries a canonical entry, and
// returns their indexes.
func indexes(t *testing.T, b []byte) []uint64 {
	t.Helper()
	var out []uint64
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var sl struct {
			Index uint64          `json:"index"`
			Entry json.RawMessage `json:"entry"`
		}
		if err := json.Unmarshal(l, &sl); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if _, err := audit.DecodeEntry(sl.Entry); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		out = append(out, sl.Index)
	}
	return out
}

func record(t *testing.T, svc *auditlog.Service, n int) {
	t.Helper()
	for range n {
		if err := svc.Record(context.Background(), &audit.Entry{Action: "kv.read", Outcome: 200, Time: audit.FormatTime(time.Unix(1, 0))}); err != nil {
			t.Fatal(err)
		}
	}
}

func openWith(t *testing.T, dir string, o auditlog.Options) *auditlog.Service {
	t.Helper()
	st, _ := openLog(t, dir)
	svc, err := auditlog.New(newTestCore(t, st), st, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// TestSinkFailsClosedAndCatchesUp: a required sink receives a record only
// after it committed; when its delivery fails, the record stays committed
// and audited requests are refused until the sink has caught up, with
// nothing lost.
func TestSinkFailsClosedAndCatchesUp(t *testing.T) {
	dir := logDir(t, 2)
	w := &switchWriter{}
	svc := openWith(t, dir, auditlog.Options{Sinks: []*auditlog.Sink{auditlog.WriterSink("mem", w, true)}, SinkRetry: time.Millisecond})
	ctx := context.Background()

	// A change's leaf that never commits reaches no sink.
	if _, err := svc.ChangeLeaf(&audit.Entry{Action: "kv.write", Outcome: 200, Time: audit.FormatTime(time.Unix(1, 0))}); err != nil {
		t.Fatal(err)
	}
	record(t, svc, 1)
	if err := svc.SinksSettled(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.lines(t); len(got) != 1 || got[0] != 2 {
		t.Fatalf("sink got %v, want [2] (the one committed record)", got)
	}

	w.failing.Store(true)
	record(t, svc, 1) // commits; its delivery fails
	if err := svc.SinksSettled(ctx); !errors.Is(err, auditlog.ErrSinkFailed) {
		t.Fatalf("settled with a failing sink: %v", err)
	}
	if err := svc.Healthy(); !errs.Is(err, errs.Unavailable) {
		t.Fatalf("Healthy with a failing required sink: %v", err)
	}
	if err := svc.Record(ctx, &audit.Entry{Action: "kv.read", Outcome: 200, Time: audit.FormatTime(time.Unix(1, 0))}); !errs.Is(err, errs.Unavailable) {
		t.Fatalf("record with a failing sink: %v", err)
	}
	if _, err := svc.ChangeLeaf(&audit.Entry{Action: "kv.write", Outcome: 200, Time: audit.FormatTime(time.Unix(1, 0))}); !errs.Is(err, errs.Unavailable) {
		t.Fatalf("change with a failing sink: %v", err)
	}

	w.failing.Store(false)
	if err := svc.SinksSettled(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.Healthy(); err != nil {
		t.Fatal(err)
	}
	if got := w.lines(t); len(got) != 2 || got[1] != 3 {
		t.Fatalf("sink got %v, want [2 3]", got)
	}
}

// TestSinkResumesFromCursor: a file sink's cursor survives a restart, so
// entries committed while the service was down are delivered after it,
// in order, none lost; the cursor file is 0600.
func TestSinkResumesFromCursor(t *testing.T) {
	dir := logDir(t, 3)
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	cursors := filepath.Join(t.TempDir(), "cursors")
	open := func() (*store.Store, *auditlog.Service) {
		st, _ := openLog(t, dir)
		k, err := auditlog.FileSink(file, true)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := auditlog.New(newTestCore(t, st), st, auditlog.Options{Sinks: []*auditlog.Sink{k}, SinkCursorDir: cursors})
		if err != nil {
			t.Fatal(err)
		}
		return st, svc
	}
	st, svc := open()
	record(t, svc, 2)
	if err := svc.SinksSettled(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Stop feeding the sink, then commit more while it is not running.
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	bare, err := auditlog.New(newTestCore(t, st), st, auditlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	record(t, bare, 2)
	st.Close()

	_, svc = open()
	defer svc.Close()
	record(t, svc, 1)
	if err := svc.SinksSettled(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	got := indexes(t, b)
	want := []uint64{3, 4, 5, 6, 7}
	if len(got) != len(want) {
		t.Fatalf("sink indexes %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sink indexes %v, want %v", got, want)
		}
	}
	ms, _ := filepath.Glob(filepath.Join(cursors, "*.cursor"))
	if len(ms) != 1 {
		t.Fatalf("cursor files %v", ms)
	}
	if fi, err := os.Stat(ms[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cursor file: %v %v", fi, err)
	}
}

// TestSinkLagBound: a required sink more than MaxSinkLag entries behind
// makes the log unhealthy even before a delivery failed.
func TestSinkLagBound(t *testing.T) {
	dir := logDir(t, 0)
	w := &switchWriter{}
	blocked := make(chan struct{})
	defer close(blocked)
	k := auditlog.WriterSink("slow", writerFunc(func(p []byte) (int, error) {
		<-blocked
		return w.Write(p)
	}), true)
	svc := openWith(t, dir, auditlog.Options{Sinks: []*auditlog.Sink{k}, MaxSinkLag: 2})
	record(t, svc, 3)
	if err := svc.Healthy(); !errors.Is(err, auditlog.ErrSinkLagging) {
		t.Fatalf("Healthy 3 entries behind with a bound of 2: %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
