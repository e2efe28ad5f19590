package spool

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

func batch(seq uint64, events int, body string) Batch {
	return Batch{Seq: seq, Events: events, Body: []byte(body),
		States: map[string][]byte{"file:/a": []byte(fmt.Sprintf("a-%d", seq))}}
}

func drain(t *testing.T, s *Spool) []uint64 {
	t.Helper()
	var got []uint64
	for {
		b, ok, err := s.Oldest()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return got
		}
		if want := fmt.Sprintf("body-%d", b.Seq); string(b.Body) != want {
			t.Fatalf("seq %d: body %q, want %q", b.Seq, b.Body, want)
		}
		got = append(got, b.Seq)
		if err := s.Ack(b.Seq, 0); err != nil {
			t.Fatal(err)
		}
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	sort.Strings(m)
	return m
}

// TestReopenAndTornTail: batches survive a reopen; a record cut anywhere
// (a crash in the middle of a write) is detected by length or CRC and cut
// off, and appending continues after it.
func TestReopenAndTornTail(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  func(size int64) int64 // new size of the last segment
		flip bool                   // corrupt one byte of the last record instead
	}{
		{name: "clean"},
		{name: "half header", cut: func(n int64) int64 { return n - int64(len(encode(batch(3, 1, "body-3")))) + 4 }},
		{name: "half payload", cut: func(n int64) int64 { return n - 5 }},
		{name: "bad crc", flip: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, 0)
			if err != nil {
				t.Fatal(err)
			}
			for seq := uint64(1); seq <= 3; seq++ {
				if _, err := s.Append(batch(seq, 1, fmt.Sprintf("body-%d", seq))); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			seg := segFiles(t, dir)[0]
			fi, _ := os.Stat(seg)
			want := []uint64{1, 2, 3}
			if tc.cut != nil {
				if err := os.Truncate(seg, tc.cut(fi.Size())); err != nil {
					t.Fatal(err)
				}
				want = []uint64{1, 2}
			}
			if tc.flip {
				b, _ := os.ReadFile(seg)
				b[len(b)-2] ^= 0xff
				os.WriteFile(seg, b, 0o600)
				want = []uint64{1, 2}
			}
			s, err = Open(dir, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := s.LastSeq(); got != want[len(want)-1] {
				t.Fatalf("LastSeq %d, want %d", got, want[len(want)-1])
			}
			if st := s.States()["file:/a"]; string(st.State) != fmt.Sprintf("a-%d", st.Seq) || st.Seq != want[len(want)-1] {
				t.Fatalf("States %+v", st)
			}
			next := want[len(want)-1] + 1
			if _, err := s.Append(batch(next, 1, fmt.Sprintf("body-%d", next))); err != nil {
				t.Fatal(err)
			}
			want = append(want, next)
			if got := drain(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			if st, _ := os.Stat(seg); st.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v", st.Mode())
			}
		})
	}
}

// TestAckSurvivesReopen: acknowledged batches do not come back, and the
// sequence goes on after them even when the spool is empty.
func TestAckSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, MinMaxBytes)
	for seq := uint64(1); seq <= 50; seq++ {
		if _, err := s.Append(batch(seq, 2, fmt.Sprintf("body-%d", seq))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Ack(30, 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, _ = Open(dir, MinMaxBytes)
	got := drain(t, s)
	if len(got) != 20 || got[0] != 31 || got[19] != 50 {
		t.Fatalf("got %v", got)
	}
	s.Close()
	s, _ = Open(dir, MinMaxBytes)
	defer s.Close()
	if s.LastSeq() != 50 {
		t.Fatalf("LastSeq %d", s.LastSeq())
	}
	if b, e := s.Pending(); b != 0 || e != 0 {
		t.Fatalf("pending %d %d", b, e)
	}
}

// TestFullDropsOldest: a full spool drops its oldest batches, counts
// their events durably, and the count is reset by the report.
func TestFullDropsOldest(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, MinMaxBytes)
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 1000)
	var dropped int
	const n = 200
	for seq := uint64(1); seq <= n; seq++ {
		d, err := s.Append(Batch{Seq: seq, Events: 3, Body: body, States: map[string][]byte{"s": []byte(fmt.Sprint(seq))}})
		if err != nil {
			t.Fatal(err)
		}
		dropped += d
	}
	if s.Bytes() > MinMaxBytes {
		t.Fatalf("spool holds %d bytes, bound %d", s.Bytes(), MinMaxBytes)
	}
	batches, events := s.Pending()
	if dropped == 0 || uint64(dropped) != s.Dropped() || dropped+events != 3*n || batches*3 != events {
		t.Fatalf("dropped %d (spool says %d), pending %d batches %d events", dropped, s.Dropped(), batches, events)
	}
	b, _, _ := s.Oldest()
	if b.Seq != uint64(n-batches+1) {
		t.Fatalf("oldest seq %d, want %d", b.Seq, n-batches+1)
	}
	s.Close()
	s, _ = Open(dir, MinMaxBytes)
	defer s.Close()
	if s.Dropped() != uint64(dropped) {
		t.Fatalf("after reopen dropped %d, want %d", s.Dropped(), dropped)
	}
	if err := s.Ack(b.Seq, uint64(dropped)); err != nil {
		t.Fatal(err)
	}
	if s.Dropped() != 0 {
		t.Fatalf("dropped %d after the report", s.Dropped())
	}
	if _, err := s.Append(Batch{Seq: 1, Events: 1}); err == nil {
		t.Fatal("appended an old seq")
	}
	if _, err := s.Append(Batch{Seq: n + 1, Body: make([]byte, MinMaxBytes)}); err != ErrTooLarge {
		t.Fatalf("oversized batch: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(batch(7, 3, "body"))[headerLen:])
	f.Fuzz(func(t *testing.T, p []byte) {
		b, err := decode(p, true)
		if err != nil {
			return
		}
		if _, err := decode(encode(b)[headerLen:], true); err != nil {
			t.Fatal(err)
		}
	})
}
