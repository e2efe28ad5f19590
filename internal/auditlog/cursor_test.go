package auditlog

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// FuzzReadCursor: a cursor file holds one decimal index and a newline;
// anything else is refused without a panic, and what writeCursor writes
// reads back.
func FuzzReadCursor(f *testing.F) {
	f.Add([]byte("42\n"))
	f.Add([]byte(""))
	f.Add([]byte("-1\n"))
	f.Add([]byte("18446744073709551616\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "c.cursor")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		n, ok, err := readCursor(p)
		if err != nil {
			return
		}
		if !ok {
			t.Fatal("an existing cursor file read as missing")
		}
		if err := writeCursor(p, n); err != nil {
			t.Fatal(err)
		}
		m, ok, err := readCursor(p)
		if err != nil || !ok || m != n {
			t.Fatalf("round trip of %d: %d %v %v", n, m, ok, err)
		}
		got, _ := os.ReadFile(p)
		if string(got) != strconv.FormatUint(n, 10)+"\n" {
			t.Fatalf("cursor file %q", got)
		}
	})
}

func TestCursorFileNames(t *testing.T) {
	a, b := cursorFile("d", "file:/var/log/a.jsonl"), cursorFile("d", "file:/var/log/a_jsonl")
	if a == b {
		t.Fatalf("two sinks share %s", a)
	}
	if filepath.Dir(a) != "d" {
		t.Fatalf("cursor file %s is not in its directory", a)
	}
}
