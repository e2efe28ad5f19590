package tail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/events"
)

// collector records what a tail emits.
type collector struct {
	mu    sync.Mutex
	evs   []events.Event
	state []byte
}

func (c *collector) emit(ev events.Event, state []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evs = append(c.evs, ev)
	c.state = state
	return nil
}

func (c *collector) messages() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.evs))
	for i, ev := range c.evs {
		out[i] = ev.String(events.FieldMessage)
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type run struct {
	stop func()
	done chan error
}

func start(t *testing.T, tl *Tail, state []byte, c *collector) *run {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- tl.Run(ctx, state, c.emit) }()
	t.Cleanup(func() { r.halt(t) })
	return r
}

func (r *run) halt(t *testing.T) {
	t.Helper()
	r.stop()
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	r.done <- nil // for a second halt
}

func appendLines(t *testing.T, path string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
}

func want(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("line %d", i))
	}
	return out
}

func newTail(t *testing.T, path string, p Parser) *Tail {
	t.Helper()
	tl, err := New(Config{Path: path, Parser: p, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %d lines %q\nwant %d lines %q", len(got), got, len(want), want)
	}
}

// TestRotation: every line arrives once, in order, across rotation by
// rename (with a writer that keeps writing to the old file for a while,
// and a partial last line in it) and by copytruncate.
func TestRotation(t *testing.T) {
	for _, tc := range []string{"rename", "copytruncate"} {
		t.Run(tc, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "auth.log")
			appendLines(t, path, 1, 100)
			var c collector
			tl := newTail(t, path, nil)
			start(t, tl, nil, &c)
			waitFor(t, "100 lines", func() bool { return len(c.messages()) == 100 })
			exp := want(1, 100)
			switch tc {
			case "rename":
				old, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(path, path+".1"); err != nil {
					t.Fatal(err)
				}
				// The writer has not reopened yet: it writes to the
				// renamed file, ending with a partial line.
				old.WriteString("line 101\nline 102\nline 1")
				old.WriteString("03")
				old.Close()
				appendLines(t, path, 201, 300) // the new file
				exp = append(append(exp, want(101, 103)...), want(201, 300)...)
			case "copytruncate":
				// Lines written just before the copy may not have been
				// read when the file is truncated: they are read from
				// the copy.
				appendLines(t, path, 101, 110)
				b, _ := os.ReadFile(path)
				os.WriteFile(path+".1", b, 0o644)
				if err := os.Truncate(path, 0); err != nil {
					t.Fatal(err)
				}
				appendLines(t, path, 201, 230)
				exp = append(append(exp, want(101, 110)...), want(201, 230)...)
			}
			waitFor(t, fmt.Sprintf("%d lines", len(exp)), func() bool { return len(c.messages()) >= len(exp) })
			appendLines(t, path, 301, 302)
			exp = append(exp, want(301, 302)...)
			waitFor(t, "the last lines", func() bool { return len(c.messages()) >= len(exp) })
			equal(t, c.messages(), exp)
			if tl.Stats().Rotations != 1 {
				t.Fatalf("rotations %d", tl.Stats().Rotations)
			}
			for _, ev := range c.evs {
				if ev[events.FieldFilePath] != path || ev[events.FieldDataset] != "raw" || ev[events.FieldTimestamp] == nil {
					t.Fatalf("event %v", ev)
				}
			}
		})
	}
}

// TestRestart: a tail restarted with the state of the last event it
// emitted goes on after it, whether the file only grew, was rotated by
// rename while the tail was stopped (the rotated file is finished first),
// was truncated, or is gone.
func TestRestart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		between func(t *testing.T, path string)
		want    []string
	}{
		{"grew", func(t *testing.T, path string) { appendLines(t, path, 51, 60) }, want(51, 60)},
		{"rotated", func(t *testing.T, path string) {
			appendLines(t, path, 51, 60)
			os.Rename(path, path+"-20261202")
			appendLines(t, path, 1001, 1010)
		}, append(want(51, 60), want(1001, 1010)...)},
		{"rotated and gone", func(t *testing.T, path string) {
			os.Remove(path)
			appendLines(t, path, 1001, 1010)
		}, want(1001, 1010)},
		{"copytruncated", func(t *testing.T, path string) {
			appendLines(t, path, 51, 60)
			b, _ := os.ReadFile(path)
			os.WriteFile(path+".1", b, 0o644)
			os.Truncate(path, 0)
			appendLines(t, path, 1001, 1010)
		}, append(want(51, 60), want(1001, 1010)...)},
		{"truncated", func(t *testing.T, path string) {
			os.Truncate(path, 0)
			appendLines(t, path, 1001, 1003)
		}, want(1001, 1003)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.log")
			appendLines(t, path, 1, 50)
			var c collector
			r := start(t, newTail(t, path, nil), nil, &c)
			waitFor(t, "50 lines", func() bool { return len(c.messages()) == 50 })
			r.halt(t)
			state := c.state
			tc.between(t, path)
			var c2 collector
			start(t, newTail(t, path, nil), state, &c2)
			waitFor(t, "the lines after the restart", func() bool { return len(c2.messages()) >= len(tc.want) })
			appendLines(t, path, 2001, 2001)
			waitFor(t, "one more line", func() bool { return len(c2.messages()) >= len(tc.want)+1 })
			equal(t, c2.messages(), append(tc.want, "line 2001"))
		})
	}
}

// TestPartialAndLongLines: a line is emitted only once its newline is
// written; a line over MaxLineBytes is cut, marked, and the rest of it
// skipped, also across a restart in the middle of it.
func TestPartialAndLongLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	os.WriteFile(path, []byte("\n  \nfirst\r\nsec"), 0o644)
	var c collector
	r := start(t, newTail(t, path, nil), nil, &c)
	waitFor(t, "first", func() bool { return len(c.messages()) == 1 })
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	defer f.Close()
	f.WriteString("ond\n")
	waitFor(t, "second", func() bool { return len(c.messages()) == 2 })
	long := strings.Repeat("x", MaxLineBytes+100)
	f.WriteString(long[:MaxLineBytes+10]) // cut, and the rest not there yet
	waitFor(t, "the cut line", func() bool { return len(c.messages()) == 3 })
	r.halt(t)
	state := c.state
	f.WriteString(long[MaxLineBytes+10:] + "\nthird\n")
	start(t, newTail(t, path, nil), state, &c)
	waitFor(t, "third", func() bool { return len(c.messages()) == 4 })
	equal(t, c.messages(), []string{"first", "second", long[:MaxLineBytes], "third"})
	if c.evs[2][FieldTruncated] != true || c.evs[3][FieldTruncated] != nil {
		t.Fatalf("truncation marks: %v %v", c.evs[2][FieldTruncated], c.evs[3][FieldTruncated])
	}
}

type failing struct{}

func (failing) Parse(line []byte, ev events.Event) error {
	if bytes.Contains(line, []byte("bad")) {
		ev["junk"] = "x"
		return errors.New("no sshd line")
	}
	ev[events.FieldMessage] = string(line)
	ev[events.FieldDataset] = "sshd"
	return nil
}

// TestParseErrors: a line that does not parse becomes a raw event with
// error.message, is counted, and the tail goes on.
func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	os.WriteFile(path, []byte("good 1\nbad 2\ngood 3\n"), 0o644)
	var c collector
	tl := newTail(t, path, failing{})
	start(t, tl, nil, &c)
	waitFor(t, "3 lines", func() bool { return len(c.messages()) == 3 })
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.evs[0][events.FieldDataset] != "sshd" || c.evs[1][events.FieldDataset] != "raw" ||
		c.evs[1][events.FieldError] != "no sshd line" || c.evs[1]["junk"] != nil || c.evs[1][events.FieldMessage] != "bad 2" {
		t.Fatalf("events %v", c.evs)
	}
	if st := tl.Stats(); st.ParseErrors != 1 || st.Lines != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// TestWaitsForFile: a path that does not exist yet is read once it does.
func TestWaitsForFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "later.log")
	var c collector
	start(t, newTail(t, path, nil), nil, &c)
	appendLines(t, path, 1, 3)
	waitFor(t, "3 lines", func() bool { return len(c.messages()) == 3 })
	equal(t, c.messages(), want(1, 3))
}

// FuzzLines: whatever the bytes and however they arrive in chunks, the
// lines emitted are the content split at "\n" (a trailing "\r" removed,
// lines cut at MaxLineBytes), and the offset ends after the last newline.
func FuzzLines(f *testing.F) {
	f.Add([]byte("a\nbb\r\nccc"), uint8(2))
	f.Add(append(bytes.Repeat([]byte("x"), MaxLineBytes+3), "\ny\n"...), uint8(200))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		tl, _ := New(Config{Path: "/fuzz.log", Now: func() time.Time { return time.Unix(0, 0) }})
		var c collector
		fl := &file{}
		step := int(chunk) + 1
		for i := 0; i < len(data); i += step {
			fl.pending = append(fl.pending, data[i:min(i+step, len(data))]...)
			if err := tl.lines(context.Background(), fl, c.emit); err != nil {
				t.Fatal(err)
			}
		}
		var want []string
		keep := func(p []byte) {
			if p = bytes.TrimSuffix(p, []byte("\r")); len(bytes.TrimSpace(p)) > 0 {
				want = append(want, string(p))
			}
		}
		parts := bytes.Split(data, []byte("\n"))
		for _, p := range parts[:len(parts)-1] {
			keep(p[:min(len(p), MaxLineBytes)])
		}
		last := parts[len(parts)-1]
		if len(last) > MaxLineBytes {
			keep(last[:MaxLineBytes])
		}
		if got := c.messages(); strings.Join(got, "\x00") != strings.Join(want, "\x00") || len(got) != len(want) {
			t.Fatalf("got %d lines, want %d", len(got), len(want))
		}
		if nl := bytes.LastIndexByte(data, '\n'); len(last) <= MaxLineBytes && fl.off != int64(nl+1) {
			t.Fatalf("offset %d, want %d", fl.off, nl+1)
		}
	})
}
