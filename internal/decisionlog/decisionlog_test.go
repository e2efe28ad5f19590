package decisionlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func entry(i int, allow bool) Entry {
	e := Entry{
		Time:      time.Date(2026, 12, 2, 11, 0, i, 0, time.UTC),
		Store:     "shop",
		Principal: types.NewEntityUID("User", "bob"),
		Action:    types.NewEntityUID("Action", "refund"),
		Resource:  types.NewEntityUID("Order", types.String(`4"2`)),
		Allow:     allow,
		RequestID: "r-" + string(rune('a'+i)),
	}
	if allow {
		e.Reasons = []string{"refunds#0"}
	}
	return e
}

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestLogWritesJSONLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	if err := os.WriteFile(path, nil, 0o644); err != nil { // an existing file is made private
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	l, err := Open(path, Options{Sample: 1, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(entry(0, true))
	l.Log(entry(1, false))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode(), err)
	}
	lines := readLines(t, path)
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	want := map[string]any{
		"time": "2026-12-02T11:00:00Z", "store": "shop", "principal": `User::"bob"`, "action": `Action::"refund"`,
		"resource": `Order::"4\"2"`, "decision": "allow", "policies": []any{"refunds#0"}, "request_id": "r-a",
	}
	for k, v := range want {
		if got, _ := json.Marshal(lines[0][k]); string(got) != string(must(json.Marshal(v))) {
			t.Errorf("%s = %s, want %v", k, got, v)
		}
	}
	if len(lines[0]) != len(want) {
		t.Errorf("line has fields %v, want exactly %v", lines[0], want)
	}
	if lines[1]["decision"] != "deny" || len(lines[1]["policies"].([]any)) != 0 {
		t.Errorf("deny line %v", lines[1])
	}
	if n := counterValue(l.written); n != 2 {
		t.Errorf("written = %v", n)
	}

	// Reopening appends.
	l, err = Open(path, Options{Sample: 1})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(entry(2, true))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if lines := readLines(t, path); len(lines) != 3 {
		t.Errorf("%d lines after reopening, want 3", len(lines))
	}
}

func TestSampling(t *testing.T) {
	draws := []float64{0.1, 0.9, 0.49, 0.5}
	var w lockedBuffer
	l, err := newLogger(&w, Options{Sample: 0.5, Rand: func() float64 { d := draws[0]; draws = draws[1:]; return d }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		l.Log(entry(i, true))
	}
	l.Close()
	if n := bytes.Count(w.bytes(), []byte("\n")); n != 2 {
		t.Errorf("sample 0.5 with draws 0.1 0.9 0.49 0.5 logged %d, want 2", n)
	}

	var none lockedBuffer
	l, err = newLogger(&none, Options{Sample: 0, Rand: func() float64 { t.Fatal("drew for sample 0"); return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(entry(0, true))
	l.Close()
	if none.bytes() != nil {
		t.Errorf("sample 0 logged %q", none.bytes())
	}
	for _, bad := range []float64{-0.1, 1.5} {
		if _, err := Open(filepath.Join(t.TempDir(), "x"), Options{Sample: bad}); err == nil {
			t.Errorf("sample %v accepted", bad)
		}
	}
	var nilLogger *Logger
	nilLogger.Log(entry(0, true)) // does nothing
	if err := nilLogger.Close(); err != nil {
		t.Error(err)
	}
}

// TestFullBufferDrops holds the writer inside a write, fills the buffer,
// and checks that a further entry is dropped and counted at once.
func TestFullBufferDrops(t *testing.T) {
	w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	l, err := newLogger(w, Options{Sample: 1, Buffer: 1})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(entry(0, true))
	<-w.entered // the writer holds entry 0 and waits
	l.Log(entry(1, true))
	l.Log(entry(2, true)) // the buffer of 1 is full: dropped
	if n := counterValue(l.dropped); n != 1 {
		t.Errorf("dropped = %v, want 1", n)
	}
	close(w.release)
	l.Close()
	if n := bytes.Count(w.buf.bytes(), []byte("\n")); n != 2 {
		t.Errorf("%d lines written, want 2", n)
	}
	if n := counterValue(l.written); n != 2 {
		t.Errorf("written = %v, want 2", n)
	}
}

func TestWriteErrorsAreCounted(t *testing.T) {
	var got []error
	var mu sync.Mutex
	l, err := newLogger(failingWriter{}, Options{Sample: 1, OnError: func(err error) { mu.Lock(); got = append(got, err); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(entry(0, true))
	l.Close()
	if n := counterValue(l.failed); n != 1 || len(got) != 1 {
		t.Errorf("failed = %v, errors %v", n, got)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	return len(p), nil
}
func (w *lockedBuffer) Close() error { return nil }
func (w *lockedBuffer) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b
}

type blockingWriter struct {
	buf              lockedBuffer
	once             sync.Once
	entered, release chan struct{}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered); <-w.release })
	return w.buf.Write(p)
}
func (w *blockingWriter) Close() error { return nil }

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }
func (failingWriter) Close() error              { return nil }

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// TestLogAfterClose: a request still running when its server closed the
// log neither panics nor blocks; its entry is not written.
func TestLogAfterClose(t *testing.T) {
	var w lockedBuffer
	l, err := newLogger(&w, Options{Sample: 1, Buffer: 2})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(entry(0, true))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 { // more than the buffer: the rest are dropped
		l.Log(entry(i, true))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(w.bytes(), []byte("\n")); n != 1 {
		t.Errorf("%d lines, want the one logged before Close", n)
	}
	if n := counterValue(l.dropped); n != 3 {
		t.Errorf("dropped = %v, want 3", n)
	}
}
