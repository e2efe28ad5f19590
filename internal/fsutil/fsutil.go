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
	tmp, err := writeTemp(name, data, mode)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return Rename(tmp, name)
}

// WriteFileNew creates name with data and mode, never replacing a file (an
// existing name is an error, os.ErrExist): the synced temporary file is
// linked to name, then the directory synced. After a crash name is either
// absent or complete.
func WriteFileNew(name string, data []byte, mode os.FileMode) error {
	tmp, err := writeTemp(name, data, mode)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, name); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(name))
}

// writeTemp writes data to a new temporary file beside name, with mode,
// and syncs it. The caller removes it.
func writeTemp(name string, data []byte, mode os.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
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
