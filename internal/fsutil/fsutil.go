// Package fsutil holds the one file-writing discipline Warden uses for
// files that must never be seen half-written: write a temporary file in the
// same directory, fsync it, rename it over the target, fsync the directory.
package fsutil

import (
	"os"
	"path/filepath"
)

// WriteFileAtomic writes data to name with mode, so that after a crash name
// holds either the old or the new content.
func WriteFileAtomic(name string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return Rename(tmp, name)
}

// Rename renames a file the caller wrote and synced, then syncs the
// directory, so the new name survives a crash.
func Rename(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(to))
}

// SyncDir fsyncs a directory, so the names created or removed in it
// survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
