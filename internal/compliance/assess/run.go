package assess

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Statuses of a Result.
const (
	StatusPass          = "pass"
	StatusFail          = "fail"
	StatusError         = "error"
	StatusNotApplicable = "not_applicable"
)

// Bounds of a Result.
const (
	MaxEvidence = 512
	MaxMessage  = 1024
)

// CommandTimeout bounds one command a check runs.
const CommandTimeout = 10 * time.Second

// maxOutput bounds the output of a command a check reads.
const maxOutput = 1 << 20

// Env is where a policy runs.
type Env struct {
	// Root is the directory the host's files are read under: "/" on the
	// host itself, a fixture directory in tests. It must be absolute;
	// anything else makes every check an error.
	Root string
	// Now is the clock. No rule reads it today; it is here so that
	// future rules (a file's age) do not read a global one.
	Now func() time.Time
	// Run runs a command (argv[0] looked up in PATH, no shell) and
	// returns its standard output; an exit status other than zero is an
	// error. nil: commands run with os/exec when Root is "/" and are not
	// applicable otherwise. Each call gets a context with CommandTimeout.
	Run func(ctx context.Context, argv []string) ([]byte, error)
}

// Result is the outcome of one check.
type Result struct {
	Check    string   `json:"check"`
	Title    string   `json:"title"`
	Severity string   `json:"severity"`
	Controls []string `json:"controls"`
	Status   string   `json:"status"`             // StatusPass …
	Message  string   `json:"message"`            // why, in words; for an error, the error
	Evidence string   `json:"evidence,omitempty"` // what was seen, e.g. "/etc/ssh/sshd_config:14: PermitRootLogin no"
}

// outcome is what a rule evaluated to.
type outcome struct {
	status, msg, evidence string
}

func pass(evidence, format string, args ...any) outcome {
	return outcome{StatusPass, fmt.Sprintf(format, args...), evidence}
}
func fail(evidence, format string, args ...any) outcome {
	return outcome{StatusFail, fmt.Sprintf(format, args...), evidence}
}
func notApplicable(format string, args ...any) outcome {
	return outcome{StatusNotApplicable, fmt.Sprintf(format, args...), ""}
}
func errOutcome(err error) outcome { return outcome{StatusError, err.Error(), ""} }

// evaluator runs the rules of one Run.
type evaluator struct {
	fs     *hostFS
	onHost bool // Root is "/"
	run    func(ctx context.Context, argv []string) ([]byte, error)
}

// Run evaluates every check of p under env and returns one Result per
// check, in the policy's order. A check whose applies rule does not hold
// is not_applicable; a check that cannot be evaluated (unreadable file,
// link out of the root, failing command, cancelled context) is an error
// with the reason, never a pass. Run does not modify p and is safe to
// call concurrently.
func Run(ctx context.Context, p *Policy, env Env) []Result {
	out := make([]Result, 0, len(p.Checks))
	ev, setupErr := newEvaluator(env)
	if ev != nil {
		defer ev.fs.r.Close()
	}
	for i := range p.Checks {
		c := &p.Checks[i]
		var o outcome
		switch {
		case setupErr != nil:
			o = errOutcome(setupErr)
		case ctx.Err() != nil:
			o = errOutcome(fmt.Errorf("not run: %w", context.Cause(ctx)))
		default:
			o = ev.check(ctx, c)
		}
		out = append(out, Result{
			Check:    c.ID,
			Title:    c.Title,
			Severity: c.Severity,
			Controls: append([]string{}, c.Controls...),
			Status:   o.status,
			Message:  bound(o.msg, MaxMessage),
			Evidence: bound(o.evidence, MaxEvidence),
		})
	}
	return out
}

func newEvaluator(env Env) (*evaluator, error) {
	if env.Root == "" || !strings.HasPrefix(env.Root, "/") {
		return nil, fmt.Errorf("assessment root %q is not an absolute path", env.Root)
	}
	r, err := os.OpenRoot(env.Root)
	if err != nil {
		return nil, fmt.Errorf("assessment root: %w", err)
	}
	ev := &evaluator{fs: &hostFS{r: r}, onHost: path.Clean(env.Root) == "/", run: env.Run}
	if ev.run == nil && ev.onHost {
		ev.run = execRun
	}
	return ev, nil
}

// check evaluates one check; a panic in a rule (a bug) is an error
// result, not the end of the agent.
func (ev *evaluator) check(ctx context.Context, c *Check) (o outcome) {
	defer func() {
		if r := recover(); r != nil {
			o = outcome{StatusError, fmt.Sprintf("internal error (a bug in the assessment): %v", r), ""}
		}
	}()
	if c.applies != nil {
		a := ev.eval(ctx, c.applies)
		switch a.status {
		case StatusError:
			return outcome{StatusError, "applies: " + a.msg, a.evidence}
		case StatusFail, StatusNotApplicable:
			return outcome{StatusNotApplicable, "does not apply: " + a.msg, ""}
		}
	}
	return ev.eval(ctx, c.rule)
}

func (ev *evaluator) eval(ctx context.Context, r *rule) outcome {
	if err := ctx.Err(); err != nil {
		return errOutcome(fmt.Errorf("not run: %w", context.Cause(ctx)))
	}
	switch r.kind {
	case kindFileExists:
		return ev.fileExists(r)
	case kindFileContains, kindFileNotContains:
		return ev.fileContains(r)
	case kindCommand:
		return ev.command(ctx, r)
	case kindFileMode:
		return ev.fileMode(r)
	case kindSysctl:
		return ev.sysctl(r)
	case kindService:
		return ev.service(ctx, r)
	case kindNoWorldWritable:
		return ev.noWorldWritable(ctx, r)
	case kindAnyOf:
		return ev.anyOf(ctx, r)
	case kindAllOf:
		return ev.allOf(ctx, r)
	}
	return outcome{StatusError, "unknown rule " + r.kind, ""}
}

// anyOf passes when one member passes. Otherwise (with the evidence of
// the first such member that has some) it is an error if a
// member could not be evaluated (it might have passed), a failure if a
// member failed, and not applicable if every member was.
func (ev *evaluator) anyOf(ctx context.Context, r *rule) outcome {
	var firstErr, firstFail *outcome
	var msgs []string
	for _, s := range r.sub {
		o := ev.eval(ctx, s)
		switch o.status {
		case StatusPass:
			return o
		case StatusError:
			if firstErr == nil || (firstErr.evidence == "" && o.evidence != "") {
				firstErr = &o
			}
		case StatusFail:
			if firstFail == nil || (firstFail.evidence == "" && o.evidence != "") {
				firstFail = &o
			}
		}
		msgs = append(msgs, o.msg)
	}
	msg := "none holds: " + strings.Join(msgs, "; ")
	switch {
	case firstErr != nil:
		return outcome{StatusError, msg, firstErr.evidence}
	case firstFail != nil:
		return outcome{StatusFail, msg, firstFail.evidence}
	}
	return outcome{StatusNotApplicable, msg, ""}
}

// allOf fails when a member fails. Otherwise it is an error if a member
// could not be evaluated, a pass if at least one member passed (members
// that do not apply are left out), and not applicable if none applied.
func (ev *evaluator) allOf(ctx context.Context, r *rule) outcome {
	var firstErr *outcome
	var msgs, evidence []string
	passed := false
	for _, s := range r.sub {
		o := ev.eval(ctx, s)
		switch o.status {
		case StatusFail:
			return o
		case StatusError:
			if firstErr == nil {
				firstErr = &o
			}
		case StatusPass:
			passed = true
			if o.evidence != "" {
				evidence = append(evidence, o.evidence)
			}
		}
		msgs = append(msgs, o.msg)
	}
	msg := strings.Join(msgs, "; ")
	switch {
	case firstErr != nil:
		return outcome{StatusError, firstErr.msg, firstErr.evidence}
	case passed:
		return outcome{StatusPass, msg, strings.Join(evidence, " | ")}
	}
	return outcome{StatusNotApplicable, msg, ""}
}

func (ev *evaluator) fileExists(r *rule) outcome {
	_, err := ev.fs.stat(r.path)
	switch {
	case err == nil:
		return pass(r.path, "%s exists", r.path)
	case errors.Is(err, fs.ErrNotExist):
		return fail("", "%s does not exist", r.path)
	}
	return errOutcome(err)
}

// srcLine is a line of a file, with where it came from.
type srcLine struct {
	file string
	n    int
	text string
}

func (l srcLine) String() string { return fmt.Sprintf("%s:%d: %s", l.file, l.n, l.text) }

// fileContains evaluates file_contains and file_not_contains.
//
// Without first_match or last_match the pattern is matched against the
// whole content of each file in turn: path, then each include glob's
// files in name order. With either option the files are read as
// keyword-style configuration (the keyword is a line's first word, before
// whitespace or "="; blank lines and lines starting with # or ; are
// skipped), only the line that takes effect for each keyword is kept, and
// the pattern is matched against those lines joined by newlines:
//   - first_match (sshd_config): the first line for a keyword wins. An
//     "Include" line is replaced, where it stands, by the files its globs
//     name (relative globs are relative to the directory of path); a glob
//     that is not in the rule's include list is an error, since the check
//     cannot say what that file sets. Lines from a "Match" line up to
//     "Match all" or the end of the file are conditional and ignored.
//   - last_match (systemd drop-ins, apt.conf.d): path then the include
//     files in name order, and the last line for a keyword wins.
//     Section headers ("[Journal]") are skipped.
func (ev *evaluator) fileContains(r *rule) outcome {
	want := r.kind == kindFileContains
	var lines []srcLine // effective lines (keyword mode)
	var files []string  // files read
	var err error
	if r.first || r.last {
		lines, files, err = ev.keywordLines(r)
		if err != nil {
			return errOutcome(err)
		}
	}
	where := describe(r)
	if r.first || r.last {
		if len(files) == 0 {
			return absent(want, where)
		}
		if l, ok := matchLines(lines, r); ok {
			if want {
				return pass(l.String(), "the setting in effect matches %s", r.re)
			}
			return fail(l.String(), "the setting in effect matches %s", r.re)
		}
		if want {
			return fail("", "no setting in effect in %s (%d files) matches %s", where, len(files), r.re)
		}
		return pass("", "no setting in effect in %s (%d files) matches %s", where, len(files), r.re)
	}
	files, err = ev.ruleFiles(r)
	if err != nil {
		return errOutcome(err)
	}
	if len(files) == 0 {
		return absent(want, where)
	}
	for _, f := range files {
		data, err := ev.fs.readFile(f, maxFileBytes)
		if err != nil {
			return errOutcome(err)
		}
		loc := r.re.FindIndex(data)
		if loc == nil {
			continue
		}
		line := lineAt(f, data, loc[0]).String()
		if want {
			return pass(line, "%s matches %s", f, r.re)
		}
		return fail(line, "%s matches %s", f, r.re)
	}
	if want {
		return fail("", "nothing in %s (%d files) matches %s", where, len(files), r.re)
	}
	return pass("", "nothing in %s (%d files) matches %s", where, len(files), r.re)
}

func absent(want bool, where string) outcome {
	if want {
		return fail("", "%s: no such file", where)
	}
	return pass("", "%s: no such file, so nothing matches", where)
}

func describe(r *rule) string {
	parts := r.include
	if r.path != "" {
		parts = append([]string{r.path}, r.include...)
	}
	return strings.Join(parts, ", ")
}

// ruleFiles lists the files a rule reads: path if it exists, then each
// include glob's matches.
func (ev *evaluator) ruleFiles(r *rule) ([]string, error) {
	var files []string
	if r.path != "" {
		if _, err := ev.fs.stat(r.path); err == nil {
			files = append(files, r.path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	for _, g := range r.include {
		m, err := ev.fs.glob(g)
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	return files, nil
}

// maxIncludeDepth bounds nested Include lines (first_match).
const maxIncludeDepth = 8

// keywordLines returns the lines in effect, one per keyword, in the order
// the keywords first appear, and the files read.
func (ev *evaluator) keywordLines(r *rule) ([]srcLine, []string, error) {
	var lines []srcLine
	var files []string
	index := map[string]int{} // keyword → position in lines
	add := func(kw string, l srcLine) {
		if i, ok := index[kw]; ok {
			if r.last {
				lines[i] = l
			}
			return
		}
		index[kw] = len(lines)
		lines = append(lines, l)
	}
	var read func(file string, depth int) error
	read = func(file string, depth int) error {
		data, err := ev.fs.readFile(file, maxFileBytes)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && depth == 0 {
				return nil
			}
			return err
		}
		files = append(files, file)
		conditional := false
		for i, text := range strings.Split(string(data), "\n") {
			t := strings.TrimSpace(text)
			if t == "" || t[0] == '#' || t[0] == ';' || (r.last && t[0] == '[') {
				continue
			}
			kw, rest := keyword(t)
			if r.first && kw == "match" {
				conditional = !strings.EqualFold(rest, "all")
				continue
			}
			if conditional {
				continue
			}
			if r.first && kw == "include" {
				if depth+1 > maxIncludeDepth {
					return fmt.Errorf("%s:%d: Include nested more than %d deep", file, i+1, maxIncludeDepth)
				}
				for _, g := range strings.Fields(rest) {
					if !strings.HasPrefix(g, "/") {
						g = path.Join(path.Dir(r.path), g)
					}
					if !contains(r.include, g) {
						return fmt.Errorf("%s:%d: Include %s is not in the check's include list, so what it sets is unknown", file, i+1, g)
					}
					m, err := ev.fs.glob(g)
					if err != nil {
						return err
					}
					for _, f := range m {
						if err := read(f, depth+1); err != nil {
							return err
						}
					}
				}
				continue
			}
			add(kw, srcLine{file: file, n: i + 1, text: strings.TrimRight(text, "\r")})
		}
		return nil
	}
	if r.first {
		err := read(r.path, 0)
		return lines, files, err
	}
	list, err := ev.ruleFiles(r)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range list {
		if err := read(f, 0); err != nil {
			return nil, nil, err
		}
	}
	return lines, files, nil
}

// keyword splits a configuration line into its lower-cased keyword (up
// to whitespace or "=") and the rest.
func keyword(t string) (string, string) {
	i := strings.IndexAny(t, " \t=")
	if i < 0 {
		return strings.ToLower(t), ""
	}
	rest := strings.TrimLeft(t[i:], " \t")
	rest = strings.TrimSpace(strings.TrimPrefix(rest, "="))
	return strings.ToLower(t[:i]), rest
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// matchLines matches r's pattern against lines joined by newlines and
// returns the line the match starts in.
func matchLines(lines []srcLine, r *rule) (srcLine, bool) {
	var b strings.Builder
	starts := make([]int, len(lines))
	for i, l := range lines {
		starts[i] = b.Len()
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	loc := r.re.FindStringIndex(b.String())
	if loc == nil || len(lines) == 0 {
		return srcLine{}, false
	}
	i := sort.Search(len(starts), func(i int) bool { return starts[i] > loc[0] }) - 1
	return lines[max(i, 0)], true
}

// lineAt returns the line of data holding byte offset off.
func lineAt(file string, data []byte, off int) srcLine {
	start := bytes.LastIndexByte(data[:off], '\n') + 1
	end := bytes.IndexByte(data[off:], '\n')
	if end < 0 {
		end = len(data)
	} else {
		end += off
	}
	return srcLine{file: file, n: bytes.Count(data[:start], []byte("\n")) + 1, text: strings.TrimRight(string(data[start:end]), "\r")}
}

func (ev *evaluator) command(ctx context.Context, r *rule) outcome {
	if ev.run == nil {
		return notApplicable("commands run only on the host itself (root /)")
	}
	cmd := strings.Join(r.argv, " ")
	out, err := ev.runCommand(ctx, r.argv)
	if err != nil {
		return errOutcome(fmt.Errorf("%s: %w", cmd, err))
	}
	loc := r.re.FindIndex(out)
	switch {
	case loc != nil && r.expectMatch:
		return pass(lineAt(cmd, out, loc[0]).String(), "the output of %s matches %s", cmd, r.re)
	case loc != nil:
		return fail(lineAt(cmd, out, loc[0]).String(), "the output of %s matches %s", cmd, r.re)
	case r.expectMatch:
		return fail("", "the output of %s does not match %s", cmd, r.re)
	}
	return pass("", "the output of %s does not match %s", cmd, r.re)
}

func (ev *evaluator) runCommand(ctx context.Context, argv []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	return ev.run(ctx, argv)
}

// execRun runs argv without a shell, with a fixed PATH and the C locale,
// and returns at most maxOutput bytes of its standard output.
func execRun(ctx context.Context, argv []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	cmd.Dir = "/"
	var stdout, stderr limitedBuffer
	stdout.limit, stderr.limit = maxOutput, 512
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err != nil {
		if msg := strings.TrimSpace(stderr.b.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, firstLine(msg))
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, context.Cause(ctx))
		}
		return stdout.b.Bytes(), err
	}
	return stdout.b.Bytes(), nil
}

// limitedBuffer keeps the first limit bytes written to it and discards
// the rest (so that a chatty command cannot exhaust memory).
type limitedBuffer struct {
	b     bytes.Buffer
	limit int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.limit - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func (ev *evaluator) fileMode(r *rule) outcome {
	fi, err := ev.fs.stat(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return fail("", "%s does not exist", r.path)
	}
	if err != nil {
		return errOutcome(err)
	}
	mode := unixMode(fi.Mode())
	uid, gid, ok := owner(fi)
	if !ok && (r.owners != nil || r.groups != nil) {
		return errOutcome(fmt.Errorf("%s: the owner of a file is not known on this system", r.path))
	}
	user := ev.idName("/etc/passwd", uid)
	group := ev.idName("/etc/group", gid)
	evidence := fmt.Sprintf("%s: mode %04o owner %s group %s", r.path, mode, user, group)
	if r.hasMax {
		if extra := mode &^ r.maxMode; extra != 0 {
			return fail(evidence, "%s has mode %04o, which allows more than %04o (%04o)", r.path, mode, r.maxMode, extra)
		}
	}
	if r.owners != nil && !idMatches(r.owners, uid, user) {
		return fail(evidence, "%s is owned by %s, not %s", r.path, user, strings.Join(r.owners, " or "))
	}
	if r.groups != nil && !idMatches(r.groups, gid, group) {
		return fail(evidence, "%s has group %s, not %s", r.path, group, strings.Join(r.groups, " or "))
	}
	return pass(evidence, "%s has the expected mode and ownership", r.path)
}

// unixMode returns the permission bits of m with setuid, setgid and
// sticky in their Unix places.
func unixMode(m fs.FileMode) fs.FileMode {
	u := m.Perm()
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

func idMatches(want []string, id int, name string) bool {
	for _, w := range want {
		if w == name || w == strconv.Itoa(id) {
			return true
		}
	}
	return false
}

// idName returns the name of a user or group id in the root's own
// /etc/passwd or /etc/group (not the agent's), or the number.
func (ev *evaluator) idName(file string, id int) string {
	data, err := ev.fs.readFile(file, maxFileBytes)
	if err == nil {
		want := strconv.Itoa(id)
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Split(line, ":")
			if len(f) >= 3 && f[2] == want && f[0] != "" {
				return f[0]
			}
		}
	}
	return strconv.Itoa(id)
}

func (ev *evaluator) sysctl(r *rule) outcome {
	p := r.key
	if !strings.Contains(p, "/") {
		p = strings.ReplaceAll(p, ".", "/")
	}
	p = "/proc/sys/" + p
	data, err := ev.fs.readFile(p, maxProcBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return errOutcome(fmt.Errorf("sysctl %s: not found (%s)", r.key, p))
	}
	if err != nil {
		return errOutcome(err)
	}
	got := strings.Join(strings.Fields(string(data)), " ")
	evidence := fmt.Sprintf("%s = %s", r.key, got)
	if got != r.equals {
		return fail(evidence, "%s is %q, not %q", r.key, got, r.equals)
	}
	return pass(evidence, "%s is %q", r.key, got)
}

// unitDirs are where systemd keeps enablement links.
func unitDirs() []string {
	return []string{"/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}
}

func unitName(n string) string {
	if !strings.Contains(n, ".") {
		return n + ".service"
	}
	return n
}

func (ev *evaluator) service(ctx context.Context, r *rule) outcome {
	names := make([]string, len(r.names))
	for i, n := range r.names {
		names[i] = unitName(n)
	}
	if r.active {
		if ev.run == nil {
			return notApplicable("whether a service is active is known only on the host itself (root /)")
		}
		for _, u := range names {
			out, err := ev.runCommand(ctx, []string{"systemctl", "is-active", u})
			state := strings.TrimSpace(firstLine(string(out)))
			if err != nil && state == "" {
				return errOutcome(fmt.Errorf("systemctl is-active %s: %w", u, err))
			}
			if state == "active" {
				return pass(fmt.Sprintf("systemctl is-active %s: active", u), "%s is active", u)
			}
		}
		return fail("", "none of %s is active", strings.Join(names, ", "))
	}
	var masked []string
	for _, u := range names {
		if target, err := ev.readlink("/etc/systemd/system/" + u); err == nil && target == "/dev/null" {
			masked = append(masked, u)
			continue
		}
		link, err := ev.wantsLink(u)
		if err != nil {
			return errOutcome(err)
		}
		if link != "" {
			return pass(link, "%s is enabled", u)
		}
	}
	msg := fmt.Sprintf("none of %s is enabled (no *.wants link)", strings.Join(names, ", "))
	if masked != nil {
		msg += "; masked: " + strings.Join(masked, ", ")
	}
	return fail("", "%s", msg)
}

func (ev *evaluator) readlink(p string) (string, error) {
	rel, err := ev.fs.resolve(p, false)
	if err != nil {
		return "", err
	}
	return ev.fs.r.Readlink(rel)
}

// wantsLink returns the first <dir>/<target>.wants/<unit> entry that
// exists, or "".
func (ev *evaluator) wantsLink(unit string) (string, error) {
	for _, dir := range unitDirs() {
		ents, err := ev.fs.readDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		for _, e := range ents {
			if !e.IsDir() || !strings.HasSuffix(e.Name(), ".wants") {
				continue
			}
			link := path.Join(dir, e.Name(), unit)
			rel, err := ev.fs.resolve(link, false)
			if err != nil {
				return "", err
			}
			if _, err := ev.fs.r.Lstat(rel); err == nil {
				return link, nil
			} else if !errors.Is(err, fs.ErrNotExist) {
				return "", hostErr(link, err)
			}
		}
	}
	return "", nil
}

// maxListed bounds the offending files named in evidence.
const maxListed = 5

// noWorldWritable walks the paths (links to directories are not
// followed; a path that is itself a link is resolved, and a directory
// reached twice is walked once) and fails on any file or directory that
// every user may write, except directories with the sticky bit.
func (ev *evaluator) noWorldWritable(ctx context.Context, r *rule) outcome {
	seen := map[string]bool{}
	var bad []string
	count, walked := 0, 0
	for _, p := range r.paths {
		rel, err := ev.fs.resolve(p, true)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return errOutcome(err)
		}
		if seen[rel] {
			continue
		}
		seen[rel] = true
		if _, err := ev.fs.r.Lstat(rel); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		walked++
		err = fs.WalkDir(ev.fs.r.FS(), rel, func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return hostErr(hostPath(name), err)
			}
			if count++; count > r.maxFiles {
				return fmt.Errorf("more than %d entries under %s (raise max_files)", r.maxFiles, strings.Join(r.paths, ", "))
			}
			if count%1024 == 0 && ctx.Err() != nil {
				return fmt.Errorf("stopped: %w", context.Cause(ctx))
			}
			if d.Type()&fs.ModeSymlink != 0 {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return hostErr(hostPath(name), err)
			}
			m := fi.Mode()
			if m.Perm()&0o002 != 0 && !(m.IsDir() && m&fs.ModeSticky != 0) {
				bad = append(bad, fmt.Sprintf("%s (%04o)", hostPath(name), unixMode(m)))
			}
			return nil
		})
		if err != nil {
			return errOutcome(err)
		}
	}
	if walked == 0 {
		return notApplicable("none of %s exists", strings.Join(r.paths, ", "))
	}
	if len(bad) > 0 {
		listed := bad[:min(len(bad), maxListed)]
		return fail(strings.Join(listed, ", "), "%d world-writable entries under %s", len(bad), strings.Join(r.paths, ", "))
	}
	return pass("", "no world-writable entry among %d under %s", count, strings.Join(r.paths, ", "))
}

func hostPath(rel string) string {
	if rel == "." {
		return "/"
	}
	return "/" + rel
}

// bound cuts s to at most n bytes of valid UTF-8, replacing control
// characters other than tab and invalid bytes.
func bound(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || (r < 0x20 && r != '\t') || r == 0x7f {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
