package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/warden-sec/warden/internal/fsutil"
)

// compactMinFree is the least free space, in bytes, for which Open
// rewrites a database (compactFile).
const compactMinFree = 16 << 20

// compactFile rewrites the bbolt database at path without its free pages
// when they are more than half of the file and at least compactMinFree,
// and reports whether it did. bbolt never returns space to the file
// system: a database keeps the size of its fullest moment (the Raft log
// before a snapshot, the state while a snapshot's read held its pages),
// so Open, before anything else opens the file, gives the space back.
//
// Crash safety: the copy is written to path+".compact" (bbolt syncs every
// transaction of the copy) and renamed over path only when complete, then
// the directory is synced; the original is never modified. A copy a crash
// interrupted is removed at the next Open and the original, intact, is
// used (and compacted again).
func compactFile(path string) (bool, error) {
	tmp := path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if fi.Size() < 2*compactMinFree {
		return false, nil
	}
	src, err := bolt.Open(path, 0o600, boltOptions())
	if errors.Is(err, berrors.ErrTimeout) {
		return false, fmt.Errorf("%s is in use by another process", path)
	}
	if err != nil {
		return false, err
	}
	defer src.Close()
	st := src.Stats()
	free := int64(st.FreePageN+st.PendingPageN) * int64(src.Info().PageSize)
	if free < compactMinFree || 2*free < fi.Size() {
		return false, nil
	}
	dst, err := bolt.Open(tmp, 0o600, boltOptions())
	if err != nil {
		return false, err
	}
	err = bolt.Compact(dst, src, 64<<20)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = src.Close()
	}
	if err == nil {
		err = fsutil.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("compact %s: %w", filepath.Base(path), err)
	}
	return true, nil
}
