package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key.pem")
	for _, content := range []string{"one", "two"} {
		if err := WriteFileAtomic(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		fi, _ := os.Stat(p)
		if err != nil || string(b) != content || fi.Mode().Perm() != 0o600 {
			t.Fatalf("content %q mode %v: %v", b, fi.Mode(), err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %d entries", len(entries))
	}
}

// TestWriteFileNew: the file is created with its mode, an existing one is
// never replaced, and no temporary file is left behind.
func TestWriteFileNew(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "archive.json")
	if err := WriteFileNew(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileNew(p, []byte("two"), 0o600); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second write: %v", err)
	}
	b, err := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if err != nil || string(b) != "one" || fi.Mode().Perm() != 0o600 {
		t.Fatalf("content %q mode %v: %v", b, fi.Mode(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temporary files left behind: %d entries", len(entries))
	}
}
