package assess

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixture copies testdata/<name> into a temporary root (links as links)
// and adds what git cannot keep: modes, and /etc/passwd and /etc/group
// that name the test's own user and group (root, and shadow for the
// group), so that ownership checks read the same on any machine. setup,
// if not nil, then changes the copy.
func fixture(t testing.TB, name string, setup func(root string)) string {
	t.Helper()
	src := filepath.Join("testdata", name)
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	write(t, dst, "etc/passwd", fmt.Sprintf("root:x:%d:%d:root:/root:/bin/sh\n", uid, gid))
	write(t, dst, "etc/group", fmt.Sprintf("shadow:x:%d:\n", gid))
	if setup != nil {
		setup(dst)
	}
	return dst
}

func write(t testing.TB, root, rel, data string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func chmod(t testing.TB, root, rel string, mode fs.FileMode) {
	t.Helper()
	if err := os.Chmod(filepath.Join(root, rel), mode); err != nil {
		t.Fatal(err)
	}
}

func goodHost(t testing.TB) string {
	return fixture(t, "good-host", func(root string) {
		chmod(t, root, "etc/shadow", 0o640)
		// A sticky world-writable directory is allowed (like /tmp).
		if err := os.Mkdir(filepath.Join(root, "etc", "spool"), 0o755); err != nil {
			t.Fatal(err)
		}
		chmod(t, root, "etc/spool", 0o777|fs.ModeSticky)
	})
}

func badHost(t testing.TB) string {
	return fixture(t, "bad-host", func(root string) {
		chmod(t, root, "etc/shadow", 0o644)
		write(t, root, "usr/bin/tool", "#!/bin/sh\n")
		chmod(t, root, "usr/bin/tool", 0o777)
		if err := os.Mkdir(filepath.Join(root, "etc", "drop"), 0o755); err != nil {
			t.Fatal(err)
		}
		chmod(t, root, "etc/drop", 0o777)
	})
}

func builtin(t testing.TB) *Policy {
	t.Helper()
	p, err := Parse("linux-baseline", Builtin())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// want is the expected result of one check: its status, and text its
// evidence and message must contain.
type want struct {
	status   string
	evidence string
	message  string
}

func checkResults(t *testing.T, got []Result, p *Policy, wants map[string]want) {
	t.Helper()
	if len(got) != len(p.Checks) {
		t.Fatalf("%d results for %d checks", len(got), len(p.Checks))
	}
	for i, r := range got {
		if r.Check != p.Checks[i].ID || r.Title != p.Checks[i].Title || r.Severity != p.Checks[i].Severity {
			t.Errorf("result %d is %q/%q/%q, want check %q", i, r.Check, r.Title, r.Severity, p.Checks[i].ID)
		}
		w, ok := wants[r.Check]
		if !ok {
			t.Errorf("%s: no expectation for this check (got %s: %s)", r.Check, r.Status, r.Message)
			continue
		}
		delete(wants, r.Check)
		if r.Status != w.status || !strings.Contains(r.Evidence, w.evidence) || !strings.Contains(r.Message, w.message) {
			t.Errorf("%s:\n got  %s, evidence %q, message %q\n want %s, evidence ~%q, message ~%q",
				r.Check, r.Status, r.Evidence, r.Message, w.status, w.evidence, w.message)
		}
	}
	for id := range wants {
		t.Errorf("%s: expected but not in the policy", id)
	}
	if err := ValidateResults(got); err != nil {
		t.Errorf("ValidateResults: %v", err)
	}
}

// TestBuiltinGoodHost checks every result of the built-in policy against
// what the files of testdata/good-host say.
func TestBuiltinGoodHost(t *testing.T) {
	root := goodHost(t)
	p := builtin(t)
	got := Run(context.Background(), p, Env{Root: root})
	checkResults(t, got, p, map[string]want{
		// 10-hardening.conf (an absolute link to /usr/share/ssh, resolved
		// inside the root) comes first through the Include on line 2; the
		// "yes" of 20-later.conf and of sshd_config itself come later.
		"sshd-permit-root-login":       {StatusPass, "/etc/ssh/sshd_config.d/10-hardening.conf:2: PermitRootLogin no", ""},
		"sshd-password-authentication": {StatusPass, "/etc/ssh/sshd_config.d/10-hardening.conf:3: PasswordAuthentication=no", ""},
		"sshd-protocol-2":              {StatusPass, "", "no setting in effect"},
		// aes128-cbc is set only inside a Match block.
		"sshd-weak-ciphers": {StatusPass, "", "3 files"},
		// "MACs -hmac-sha1,hmac-md5" removes them.
		"sshd-weak-macs":                 {StatusPass, "", ""},
		"firewall-enabled":               {StatusPass, "/etc/systemd/system/multi-user.target.wants/nftables.service", "nftables.service is enabled"},
		"time-sync":                      {StatusPass, "/etc/systemd/system/multi-user.target.wants/chrony.service", ""},
		"persistent-logging":             {StatusPass, "/etc/systemd/journald.conf.d/50-persist.conf:2: Storage=persistent", ""},
		"no-world-writable-system-files": {StatusPass, "", "no world-writable entry"},
		"automatic-security-updates":     {StatusPass, `/etc/apt/apt.conf.d/20auto-upgrades:2: APT::Periodic::Unattended-Upgrade "1"; | /usr/bin/unattended-upgrade`, ""},
		"shadow-permissions":             {StatusPass, "/etc/shadow: mode 0640 owner root group shadow", ""},
		"sysctl-ip-forward":              {StatusPass, "net.ipv4.ip_forward = 0", ""},
		"sysctl-accept-redirects":        {StatusPass, "net.ipv4.conf.all.accept_redirects = 0", ""},
		"sysctl-syncookies":              {StatusPass, "net.ipv4.tcp_syncookies = 1", ""},
		"sysctl-aslr":                    {StatusPass, "kernel.randomize_va_space = 2", ""},
	})
}

// TestBuiltinBadHost checks every result against testdata/bad-host.
func TestBuiltinBadHost(t *testing.T) {
	root := badHost(t)
	p := builtin(t)
	got := Run(context.Background(), p, Env{Root: root})
	checkResults(t, got, p, map[string]want{
		// The relative Include brings 10-local.conf (yes) before the
		// main file's "no" and before 20-hardening.conf.
		"sshd-permit-root-login":       {StatusFail, "", "no setting in effect"},
		"sshd-password-authentication": {StatusFail, "", "no setting in effect"},
		"sshd-protocol-2":              {StatusFail, "/etc/ssh/sshd_config:4: Protocol 2,1", ""},
		"sshd-weak-ciphers":            {StatusFail, "/etc/ssh/sshd_config:5: Ciphers aes128-ctr,aes256-cbc", ""},
		"sshd-weak-macs":               {StatusFail, "/etc/ssh/sshd_config:6: MACs +hmac-md5", ""},
		// nftables is enabled but masked, the ruleset accepts everything,
		// and rules.v4 is a link out of the root: the check cannot tell,
		// so it is an error, not a failure and never a pass.
		"firewall-enabled": {StatusError, "", "/etc/iptables/rules.v4: symbolic link to \"../../../../../../../../etc/passwd\" leads out of the root"},
		"time-sync":        {StatusFail, "", "none of chrony.service"},
		// journald.conf says persistent, the drop-in volatile: the last wins.
		"persistent-logging": {StatusFail, "/etc/systemd/journald.conf.d/90-volatile.conf:2: Storage=volatile", ""},
		// /bin is a link to usr/bin: walked once.
		"no-world-writable-system-files": {StatusFail, "/usr/bin/tool (0777), /etc/drop (0777)", "2 world-writable entries"},
		"automatic-security-updates":     {StatusFail, "", "/etc/apt/apt.conf.d/* (2 files)"},
		"shadow-permissions":             {StatusFail, "/etc/shadow: mode 0644", "allows more than 0640 (0004)"},
		"sysctl-ip-forward":              {StatusFail, "net.ipv4.ip_forward = 1", `is "1", not "0"`},
		"sysctl-accept-redirects":        {StatusFail, "net.ipv4.conf.all.accept_redirects = 1", ""},
		"sysctl-syncookies":              {StatusFail, "net.ipv4.tcp_syncookies = 0", ""},
		"sysctl-aslr":                    {StatusError, "", "sysctl kernel.randomize_va_space: not found"},
	})
	for _, r := range got {
		if r.Check == "time-sync" && strings.Contains(r.Message, "masked") {
			t.Errorf("time-sync mentions a mask: %s", r.Message)
		}
		if r.Check == "firewall-enabled" && !strings.Contains(r.Message, "masked: nftables.service") {
			t.Errorf("firewall-enabled does not say nftables is masked: %s", r.Message)
		}
	}
}

// TestRunHost runs the built-in policy on this machine: one result per
// check, each with a known status and a message, nothing that could not
// be evaluated reported as a pass.
func TestRunHost(t *testing.T) {
	p := builtin(t)
	got := Run(context.Background(), p, Env{Root: "/"})
	if len(got) != len(p.Checks) {
		t.Fatalf("%d results for %d checks", len(got), len(p.Checks))
	}
	for i, r := range got {
		if r.Check != p.Checks[i].ID {
			t.Errorf("result %d is %s, want %s", i, r.Check, p.Checks[i].ID)
		}
		if r.Message == "" {
			t.Errorf("%s: %s with no message", r.Check, r.Status)
		}
		if r.Status == StatusPass && strings.Contains(r.Message, "error") {
			t.Errorf("%s passes with %q", r.Check, r.Message)
		}
		t.Logf("%-31s %-14s %s | %s", r.Check, r.Status, r.Message, r.Evidence)
	}
	if err := ValidateResults(got); err != nil {
		t.Fatal(err)
	}
}

func mustParse(t testing.TB, yaml string) *Policy {
	t.Helper()
	p, err := Parse("test", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// policyOf wraps rules, one check each, into a policy.
func policyOf(rules ...string) string {
	var b strings.Builder
	b.WriteString("policy: test\nchecks:\n")
	for i, r := range rules {
		fmt.Fprintf(&b, "  - id: c%d\n    title: t\n    severity: low\n    %s\n", i, r)
	}
	return b.String()
}

// TestRules runs single rules on the fixtures, for the cases the built-in
// policy does not reach.
func TestRules(t *testing.T) {
	good, bad := goodHost(t), badHost(t)
	write(t, good, "etc/loop-a", "")
	if err := os.Remove(filepath.Join(good, "etc/loop-a")); err != nil {
		t.Fatal(err)
	}
	for _, l := range [][2]string{
		{"loop-b", "loop-a"}, {"loop-a", "loop-b"}, // a loop
		{"up", "../../../../../.."},                   // out of the root
		{"inside", "../usr/share/ssh/hardening.conf"}, // .. that stays inside
		{"absolute-in", "/etc/passwd"},                // absolute: starts again at the root
		{"absolute-out", "/../etc/passwd"},            // and cannot climb above it
		{"dir-escape", "../.."},
	} {
		if err := os.Symlink(l[1], filepath.Join(good, "etc", l[0])); err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	fakeRun := func(ctx context.Context, argv []string) ([]byte, error) {
		calls++
		if _, ok := ctx.Deadline(); !ok {
			return nil, errors.New("no deadline")
		}
		switch strings.Join(argv, " ") {
		case "sshd -T":
			return []byte("port 22\npermitrootlogin no\npasswordauthentication no\n"), nil
		case "systemctl is-active chrony.service":
			return []byte("inactive\n"), errors.New("exit status 3")
		case "systemctl is-active systemd-timesyncd.service":
			return []byte("active\n"), nil
		}
		return nil, fmt.Errorf("exec: %q: executable file not found in $PATH", argv[0])
	}
	cases := []struct {
		name  string
		root  string
		run   func(context.Context, []string) ([]byte, error)
		rule  string
		want  string
		ev    string // evidence contains
		msg   string // message contains
		calls int
	}{
		{name: "exists", root: good, rule: "file_exists: /etc/ssh/sshd_config", want: StatusPass},
		{name: "missing", root: good, rule: "file_exists: /etc/nope", want: StatusFail},
		{name: "missing dir on the way", root: good, rule: "file_exists: /nope/nope/x", want: StatusFail},
		{name: "link loop", root: good, rule: "file_exists: /etc/loop-a", want: StatusError, msg: "more than 40 symbolic links"},
		{name: "link out of the root", root: good, rule: "file_exists: /etc/up/etc/passwd", want: StatusError, msg: "leads out of the root"},
		{name: "directory link out of the root", root: good, rule: "file_exists: /etc/dir-escape", want: StatusError, msg: "leads out of the root"},
		{name: "relative link inside", root: good, rule: "file_contains: {path: /etc/inside, pattern: 'PermitRootLogin no'}", want: StatusPass, ev: "/etc/inside:2: PermitRootLogin no"},
		{name: "absolute link inside", root: good, rule: "file_contains: {path: /etc/absolute-in, pattern: '^root:'}", want: StatusPass, ev: "/etc/absolute-in:1: root:x:"},
		{name: "absolute link above the root", root: good, rule: "file_exists: /etc/absolute-out", want: StatusError, msg: `/etc/absolute-out: symbolic link to "/../etc/passwd" leads out of the root`},
		{name: "contains: plain mode searches each file", root: good, rule: `file_contains: {path: /etc/ssh/sshd_config, include: ["/etc/ssh/sshd_config.d/*.conf"], pattern: '(?m)^PermitRootLogin yes'}`, want: StatusPass, ev: "/etc/ssh/sshd_config:6: PermitRootLogin yes"},
		{name: "not contains: plain mode finds the Match line", root: good, rule: `file_not_contains: {path: /etc/ssh/sshd_config, pattern: 'aes128-cbc'}`, want: StatusFail, ev: "/etc/ssh/sshd_config:11: \tCiphers aes128-cbc"},
		{name: "glob skips other names", root: good, rule: `file_contains: {include: ["/etc/ssh/sshd_config.d/*"], pattern: 'not \*\.conf'}`, want: StatusPass, ev: "30-ignored.txt:1"},
		{name: "include not listed", root: bad, rule: `file_contains: {path: /etc/ssh/sshd_config, include: ["/etc/ssh/other/*.conf"], first_match: true, pattern: x}`, want: StatusError, msg: "/etc/ssh/sshd_config:2: Include /etc/ssh/sshd_config.d/*.conf is not in the check's include list"},
		{name: "include through an escaping link", root: bad, rule: `file_contains: {include: ["/etc/iptables/*"], pattern: x}`, want: StatusError, msg: "leads out of the root"},
		{name: "contains: no file", root: good, rule: `file_contains: {path: /etc/none, pattern: x}`, want: StatusFail, msg: "no such file"},
		{name: "not contains: no file", root: good, rule: `file_not_contains: {path: /etc/none, pattern: x, last_match: true}`, want: StatusPass, msg: "no such file"},
		{name: "contains: a directory", root: good, rule: `file_contains: {path: /etc/ssh, pattern: x}`, want: StatusError, msg: "not a regular file"},
		{name: "Match all returns to global", root: good, rule: `file_contains: {path: /etc/m, first_match: true, pattern: '(?m)^Banner x'}`, want: StatusPass, ev: "/etc/m:4: Banner x"},
		{name: "file_mode owner by id", root: good, rule: fmt.Sprintf(`file_mode: {path: /etc/shadow, owner: "%d"}`, os.Getuid()), want: StatusPass},
		{name: "file_mode wrong owner", root: good, rule: "file_mode: {path: /etc/shadow, owner: nobody}", want: StatusFail, msg: "owned by root, not nobody"},
		{name: "file_mode wrong group", root: good, rule: "file_mode: {path: /etc/shadow, group: root}", want: StatusFail, msg: "has group shadow, not root"},
		{name: "file_mode missing", root: good, rule: `file_mode: {path: /etc/none, max_mode: "0600"}`, want: StatusFail, msg: "does not exist"},
		{name: "file_mode setuid", root: good, rule: `file_mode: {path: /usr/bin/suid, max_mode: "0755"}`, want: StatusFail, msg: "(4000)"},
		{name: "sysctl with slashes", root: good, rule: "sysctl: {key: net/ipv4/ip_forward, equals: '0'}", want: StatusPass},
		{name: "command off the host", root: good, rule: "command: {run: [sshd, -T], pattern: 'permitrootlogin no', expect: match}", want: StatusNotApplicable},
		{name: "command with Env.Run", root: good, run: fakeRun, rule: "command: {run: [sshd, -T], pattern: '(?m)^permitrootlogin no$', expect: match}", want: StatusPass, ev: "sshd -T:2: permitrootlogin no", calls: 1},
		{name: "command no_match fails", root: good, run: fakeRun, rule: "command: {run: [sshd, -T], pattern: 'port 22', expect: no_match}", want: StatusFail, ev: "sshd -T:1: port 22", calls: 1},
		{name: "command not found", root: good, run: fakeRun, rule: "command: {run: [nope], pattern: x, expect: no_match}", want: StatusError, msg: "nope: exec", calls: 1},
		{name: "service active", root: good, run: fakeRun, rule: "service: {name: [chrony, systemd-timesyncd], state: active}", want: StatusPass, ev: "systemd-timesyncd.service: active", calls: 2},
		{name: "service active off the host", root: good, rule: "service: {name: chrony, state: active}", want: StatusNotApplicable},
		{name: "service active fails", root: good, run: fakeRun, rule: "service: {name: chrony, state: active}", want: StatusFail, calls: 1},
		{name: "service active error", root: good, run: fakeRun, rule: "service: {name: nope, state: active}", want: StatusError, calls: 1},
		{name: "no_world_writable: nothing exists", root: good, rule: "no_world_writable: {paths: [/nope]}", want: StatusNotApplicable},
		{name: "no_world_writable: too many", root: good, rule: "no_world_writable: {paths: [/etc], max_files: 3}", want: StatusError, msg: "more than 3 entries"},
		{name: "applies error", root: good, rule: "applies: {file_exists: /etc/up/x}\n    file_exists: /etc", want: StatusError, msg: "applies: "},
		{name: "applies not met", root: good, rule: "applies: {file_exists: /etc/nope}\n    file_exists: /etc", want: StatusNotApplicable, msg: "does not apply"},
		{name: "applies command off the host", root: good, rule: "applies: {command: {run: [true], pattern: x, expect: no_match}}\n    file_exists: /etc", want: StatusNotApplicable},
		{name: "any_of error beats fail", root: good, rule: "any_of: [{file_exists: /nope}, {file_exists: /etc/up/x}]", want: StatusError},
		{name: "any_of pass beats error", root: good, rule: "any_of: [{file_exists: /etc/up/x}, {file_exists: /etc}]", want: StatusPass},
		{name: "any_of all n/a", root: good, rule: "any_of: [{command: {run: [x], pattern: x, expect: match}}]", want: StatusNotApplicable},
		{name: "all_of fail beats error", root: good, rule: "all_of: [{file_exists: /etc/up/x}, {file_exists: /nope}]", want: StatusFail},
		{name: "all_of error", root: good, rule: "all_of: [{file_exists: /etc}, {file_exists: /etc/up/x}]", want: StatusError},
		{name: "all_of skips n/a", root: good, rule: "all_of: [{file_exists: /etc}, {command: {run: [x], pattern: x, expect: match}}]", want: StatusPass},
	}
	write(t, good, "etc/m", "Match User x\n\tBanner y\nMatch all\nBanner x\n")
	write(t, good, "usr/bin/suid", "")
	chmod(t, good, "usr/bin/suid", 0o755|fs.ModeSetuid)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := mustParse(t, policyOf(c.rule))
			calls = 0
			r := Run(context.Background(), p, Env{Root: c.root, Run: c.run})[0]
			if r.Status != c.want || !strings.Contains(r.Evidence, c.ev) || !strings.Contains(r.Message, c.msg) {
				t.Errorf("got %s, evidence %q, message %q; want %s, evidence ~%q, message ~%q", r.Status, r.Evidence, r.Message, c.want, c.ev, c.msg)
			}
			if calls != c.calls {
				t.Errorf("%d commands run, want %d", calls, c.calls)
			}
		})
	}
}

// TestRunEnv: a root that cannot be used and a cancelled context make
// every check an error.
func TestRunEnv(t *testing.T) {
	p := builtin(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name string
		ctx  context.Context
		env  Env
		msg  string
	}{
		{"empty root", context.Background(), Env{}, "not an absolute path"},
		{"relative root", context.Background(), Env{Root: "testdata/good-host"}, "not an absolute path"},
		{"missing root", context.Background(), Env{Root: filepath.Join(t.TempDir(), "none")}, "assessment root"},
		{"cancelled", cancelled, Env{Root: goodHost(t)}, "context canceled"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Run(c.ctx, p, c.env)
			if len(got) != len(p.Checks) {
				t.Fatalf("%d results", len(got))
			}
			for _, r := range got {
				if r.Status != StatusError || !strings.Contains(r.Message, c.msg) {
					t.Errorf("%s: %s %q, want error ~%q", r.Check, r.Status, r.Message, c.msg)
				}
			}
		})
	}
}

// TestEvidenceBounded: a long matching line is cut to MaxEvidence bytes
// of valid UTF-8, control characters replaced.
func TestEvidenceBounded(t *testing.T) {
	root := goodHost(t)
	write(t, root, "etc/long", "key "+strings.Repeat("é", 600)+"\x01\n")
	p := mustParse(t, policyOf(`file_contains: {path: /etc/long, pattern: key}`))
	r := Run(context.Background(), p, Env{Root: root})[0]
	if r.Status != StatusPass || len(r.Evidence) > MaxEvidence || !strings.HasPrefix(r.Evidence, "/etc/long:1: key éé") || !strings.HasSuffix(r.Evidence, "…") {
		t.Fatalf("%s %d bytes %q", r.Status, len(r.Evidence), r.Evidence)
	}
	if err := ValidateResults([]Result{r}); err != nil {
		t.Fatal(err)
	}
}
