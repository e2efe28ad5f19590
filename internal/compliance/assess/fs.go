package assess

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// Bounds of what a check reads.
const (
	maxFileBytes = 4 << 20 // a file a pattern is matched against
	maxProcBytes = 64 << 10
	maxLinks     = 40  // symbolic links followed while resolving one path
	maxGlobFiles = 256 // files one include glob may add
)

// errEscape is the cause of an error for a link that leads above the root.
type escapeError struct{ link, target string }

func (e *escapeError) Error() string {
	return fmt.Sprintf("%s: symbolic link to %q leads out of the root; not followed", e.link, e.target)
}

// hostFS reads files under a root directory as the host at that root sees
// them. Every path is absolute and clean (Parse checked) and names
// <root>/<path>.
//
// Paths are resolved one element at a time with Lstat and Readlink: a
// link with an absolute target starts again at the root (as in a
// chroot), a relative one continues from its directory, and a ".." that
// would climb above the root is an escapeError. The resolved path, free
// of links, is then opened through an os.Root, which refuses to leave the
// root even if a link is swapped in between.
type hostFS struct {
	r *os.Root
}

// split returns the non-empty elements of a slash path.
func split(p string) []string {
	var out []string
	for _, e := range strings.Split(p, "/") {
		if e != "" {
			out = append(out, e)
		}
	}
	return out
}

// resolve returns the root-relative path of p with every link resolved
// (the last element's too when follow is true). The result may name a
// file that does not exist only in its last element; a missing directory
// on the way is an error satisfying errors.Is(err, fs.ErrNotExist).
func (h *hostFS) resolve(p string, follow bool) (string, error) {
	todo := split(p)
	var done []string
	links := 0
	var lastLink, lastTarget string // the link being followed, for errors
	for len(todo) > 0 {
		e := todo[0]
		todo = todo[1:]
		switch e {
		case ".":
			continue
		case "..":
			if len(done) == 0 {
				if lastLink == "" {
					return "", fmt.Errorf("%s: climbs above the root", p)
				}
				return "", &escapeError{link: lastLink, target: lastTarget}
			}
			done = done[:len(done)-1]
			continue
		}
		cand := strings.Join(append(slices.Clip(done), e), "/")
		if len(todo) == 0 && !follow {
			done = append(done, e)
			break
		}
		fi, err := h.r.Lstat(cand)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && len(todo) == 0 {
				done = append(done, e)
				break
			}
			return "", hostErr("/"+cand, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, e)
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("%s: more than %d symbolic links", p, maxLinks)
		}
		target, err := h.r.Readlink(cand)
		if err != nil {
			return "", hostErr("/"+cand, err)
		}
		lastLink, lastTarget = "/"+cand, target
		if strings.HasPrefix(target, "/") {
			done = done[:0]
		} else {
			// A relative target climbing above the root is refused here,
			// where the link is known, rather than at the "..".
			depth := len(done)
			for _, t := range split(target) {
				switch t {
				case "..":
					depth--
				case ".":
				default:
					depth++
				}
				if depth < 0 {
					return "", &escapeError{link: "/" + cand, target: target}
				}
			}
		}
		todo = append(split(target), todo...)
	}
	if len(done) == 0 {
		return ".", nil
	}
	return strings.Join(done, "/"), nil
}

// hostErr rewrites an error about a root-relative path so that it names
// the host path instead.
func hostErr(hostPath string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return &fs.PathError{Op: pe.Op, Path: hostPath, Err: pe.Err}
	}
	return fmt.Errorf("%s: %w", hostPath, err)
}

// stat returns the information of the file p names, following links.
func (h *hostFS) stat(p string) (fs.FileInfo, error) {
	rel, err := h.resolve(p, true)
	if err != nil {
		return nil, err
	}
	fi, err := h.r.Lstat(rel)
	if err != nil {
		return nil, hostErr(p, err)
	}
	return fi, nil
}

// readFile reads the regular file p names, at most limit bytes.
func (h *hostFS) readFile(p string, limit int64) ([]byte, error) {
	rel, err := h.resolve(p, true)
	if err != nil {
		return nil, err
	}
	f, err := h.r.Open(rel)
	if err != nil {
		return nil, hostErr(p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, hostErr(p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", p, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, hostErr(p, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, limit)
	}
	return data, nil
}

// readDir lists the directory p names, sorted by name. A directory that
// does not exist is an error satisfying errors.Is(err, fs.ErrNotExist).
func (h *hostFS) readDir(p string) ([]fs.DirEntry, error) {
	rel, err := h.resolve(p, true)
	if err != nil {
		return nil, err
	}
	f, err := h.r.Open(rel)
	if err != nil {
		return nil, hostErr(p, err)
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, hostErr(p, err)
	}
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return ents, nil
}

// glob expands an absolute glob whose wildcards are in its last element
// (Parse checked), like glob(3): sorted, and a leading dot matched only
// by a leading dot. A missing directory matches nothing.
func (h *hostFS) glob(g string) ([]string, error) {
	dir, base := path.Split(g)
	dir = path.Clean(dir)
	if !strings.ContainsAny(base, `*?[\`) {
		if _, err := h.stat(g); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		return []string{g}, nil
	}
	ents, err := h.readDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") && !strings.HasPrefix(base, ".") {
			continue
		}
		if ok, _ := path.Match(base, name); ok {
			if len(out) == maxGlobFiles {
				return nil, fmt.Errorf("%s: more than %d files match", g, maxGlobFiles)
			}
			out = append(out, path.Join(dir, name))
		}
	}
	return out, nil
}
