package inventory

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// maxLine bounds one line of a package database; a longer one is an error
// (the file is not what it claims to be).
const maxLine = 4 << 20

// collectPackages fills PackageManager, Packages, PendingKnown and Pending
// from the first package database found: dpkg, then apk, then rpm (which
// is asked through its command, so only on the live host).
func collectPackages(ctx context.Context, o Options, inv *Inventory) error {
	if f, err := os.Open(o.path("var/lib/dpkg/status")); err == nil {
		defer f.Close()
		pkgs, err := parseDpkgStatus(f)
		if err != nil {
			return nil // an unreadable database is an unknown one
		}
		inv.PackageManager = "dpkg"
		for i := range pkgs {
			pkgs[i].InstalledAt = dpkgInstallTime(o, pkgs[i])
		}
		inv.Packages = pkgs
		pending, known, err := aptPending(ctx, o, pkgs)
		if err != nil {
			return err
		}
		inv.PendingKnown, inv.Pending = known, pending
		return nil
	}
	if f, err := os.Open(o.path("lib/apk/db/installed")); err == nil {
		defer f.Close()
		pkgs, err := parseApkInstalled(f)
		if err != nil {
			return nil
		}
		inv.PackageManager = "apk"
		inv.Packages = pkgs
		return nil
	}
	if o.live() {
		if rpm, err := exec.LookPath("rpm"); err == nil {
			pkgs, err := rpmPackages(ctx, rpm)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return nil
			}
			inv.PackageManager = "rpm"
			inv.Packages = pkgs
		}
	}
	return nil
}

// debFields are the fields of one paragraph of a Debian control file that
// the inventory uses.
type debFields struct {
	Package, Version, Architecture, Status string
}

// scanDeb calls fn for every paragraph of a Debian control-format file
// (dpkg's status, apt's Packages lists). When skip is not nil and says
// true for a paragraph's Package (the first field in these files), the
// rest of that paragraph is not parsed. Field names are matched without
// regard to case, as deb822(5) says; continuation lines are ignored.
func scanDeb(r io.Reader, skip func(name string) bool, fn func(debFields)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var cur debFields
	skipping, seen := false, false
	flush := func() {
		if seen && !skipping {
			fn(cur)
		}
		cur, skipping, seen = debFields{}, false, false
	}
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			flush()
			continue
		}
		if skipping || b[0] == ' ' || b[0] == '\t' || b[0] == '#' {
			continue
		}
		colon := bytes.IndexByte(b, ':')
		if colon <= 0 {
			return fmt.Errorf("line %d: not a field", line)
		}
		seen = true
		name, value := b[:colon], string(bytes.TrimSpace(b[colon+1:]))
		switch {
		case bytes.EqualFold(name, []byte("Package")):
			cur.Package = value
			if skip != nil && skip(value) {
				skipping = true
			}
		case bytes.EqualFold(name, []byte("Version")):
			cur.Version = value
		case bytes.EqualFold(name, []byte("Architecture")):
			cur.Architecture = value
		case bytes.EqualFold(name, []byte("Status")):
			cur.Status = value
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", line+1, err)
	}
	flush()
	return nil
}

// parseDpkgStatus lists the installed packages of a dpkg status file: the
// paragraphs whose Status has the flag "ok" and the state "installed"
// (whatever the selection: a held package is installed too).
func parseDpkgStatus(r io.Reader) ([]Package, error) {
	var out []Package
	err := scanDeb(r, nil, func(f debFields) {
		st := strings.Fields(f.Status)
		if f.Package == "" || len(st) != 3 || st[1] != "ok" || st[2] != "installed" {
			return
		}
		out = append(out, Package{Name: f.Package, Version: f.Version, Arch: f.Architecture})
	})
	if err != nil {
		return nil, fmt.Errorf("dpkg status: %w", err)
	}
	return out, nil
}

// dpkgInstallTime is the modification time of the package's file list,
// which dpkg writes when it unpacks the package: <name>:<arch>.list for
// packages that may be installed for several architectures, else
// <name>.list.
func dpkgInstallTime(o Options, p Package) time.Time {
	for _, n := range []string{p.Name + ":" + p.Arch + ".list", p.Name + ".list"} {
		if strings.ContainsAny(n, "/\x00") {
			return time.Time{}
		}
		if fi, err := os.Stat(o.path("var/lib/dpkg/info", n)); err == nil {
			return fi.ModTime().UTC()
		}
	}
	return time.Time{}
}

// aptPending compares the installed packages with the versions apt's
// lists offer (<root>/var/lib/apt/lists/*_Packages, plain, gzip or lz4).
// known is false when no list could be read. Since of an update is the
// earliest modification time of the list files offering a newer version
// than the installed one.
func aptPending(ctx context.Context, o Options, installed []Package) (pending []Update, known bool, err error) {
	files, _ := filepath.Glob(o.path("var/lib/apt/lists/*_Packages*"))
	type cand struct {
		best  string
		since time.Time
	}
	byName := map[string][]int{}
	for i, p := range installed {
		byName[p.Name] = append(byName[p.Name], i)
	}
	cands := make([]cand, len(installed))
	for _, path := range files {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		r, closer, err := openList(path)
		if err != nil {
			continue
		}
		fi, statErr := os.Stat(path)
		var mtime time.Time
		if statErr == nil {
			mtime = fi.ModTime().UTC()
		}
		skip := func(name string) bool { return byName[name] == nil }
		err = scanDeb(r, skip, func(f debFields) {
			for _, i := range byName[f.Package] {
				p := installed[i]
				if f.Architecture != p.Arch || CompareVersions(f.Version, p.Version) <= 0 {
					continue
				}
				c := &cands[i]
				if c.best == "" || CompareVersions(f.Version, c.best) > 0 {
					c.best = f.Version
				}
				if !mtime.IsZero() && (c.since.IsZero() || mtime.Before(c.since)) {
					c.since = mtime
				}
			}
		})
		closer()
		if err != nil {
			continue
		}
		known = true
	}
	for i, c := range cands {
		if c.best != "" {
			pending = append(pending, Update{Name: installed[i].Name, Installed: installed[i].Version, Available: c.best, Since: c.since})
		}
	}
	return pending, known, nil
}

// openList opens an apt list, decompressing it by its name's suffix.
// Compressions the standard library cannot read (xz, zstd) are an error:
// that list is not counted.
func openList(path string) (io.Reader, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	closeF := func() { f.Close() }
	switch {
	case strings.HasSuffix(path, "_Packages"):
		return bufio.NewReaderSize(f, 256<<10), closeF, nil
	case strings.HasSuffix(path, "_Packages.gz"):
		z, err := gzip.NewReader(bufio.NewReader(f))
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		return z, closeF, nil
	case strings.HasSuffix(path, "_Packages.lz4"):
		return newLZ4Reader(bufio.NewReaderSize(f, 256<<10)), closeF, nil
	}
	f.Close()
	return nil, nil, errors.New("unsupported list compression")
}

// parseApkInstalled lists the packages of apk's installed database
// (<root>/lib/apk/db/installed): paragraphs of "K:value" lines, P the
// name, V the version, A the architecture. The database records no
// install time.
func parseApkInstalled(r io.Reader) ([]Package, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var out []Package
	var cur Package
	flush := func() {
		if cur.Name != "" {
			out = append(out, cur)
		}
		cur = Package{}
	}
	line := 0
	for sc.Scan() {
		line++
		b := sc.Text()
		if strings.TrimSpace(b) == "" {
			flush()
			continue
		}
		if len(b) < 2 || b[1] != ':' {
			return nil, fmt.Errorf("apk installed: line %d: not a K:value line", line)
		}
		switch b[0] {
		case 'P':
			cur.Name = b[2:]
		case 'V':
			cur.Version = b[2:]
		case 'A':
			cur.Arch = b[2:]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("apk installed: line %d: %w", line+1, err)
	}
	flush()
	return out, nil
}

// rpmQueryFormat prints one package a line: name, [epoch:]version-release,
// arch, install time (Unix seconds), tab-separated.
const rpmQueryFormat = `%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\t%{INSTALLTIME}\n`

func rpmPackages(ctx context.Context, rpm string) ([]Package, error) {
	out, err := exec.CommandContext(ctx, rpm, "-qa", "--queryformat", rpmQueryFormat).Output()
	if err != nil {
		return nil, fmt.Errorf("rpm -qa: %w", err)
	}
	return parseRPM(out), nil
}

func parseRPM(out []byte) []Package {
	var pkgs []Package
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 || f[0] == "" {
			continue
		}
		p := Package{Name: f[0], Version: f[1], Arch: f[2]}
		if f[2] == "(none)" {
			p.Arch = ""
		}
		if s, err := strconv.ParseInt(f[3], 10, 64); err == nil && s > 0 {
			p.InstalledAt = time.Unix(s, 0).UTC()
		}
		pkgs = append(pkgs, p)
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	return pkgs
}
