package assess

import (
	"errors"
	"strings"
	"testing"
)

func TestParseBuiltin(t *testing.T) {
	p := builtin(t)
	if p.Name != "linux-baseline" || len(p.Checks) < 10 {
		t.Fatalf("%s: %d checks", p.Name, len(p.Checks))
	}
	for _, c := range p.Checks {
		if c.Description == "" || len(c.Controls) == 0 || c.Line == 0 {
			t.Errorf("%s: description %q, controls %v, line %d", c.ID, c.Description, c.Controls, c.Line)
		}
		iso := false
		for _, ctl := range c.Controls {
			iso = iso || strings.HasPrefix(ctl, "iso27001:")
		}
		if !iso {
			t.Errorf("%s maps to no ISO 27001 control", c.ID)
		}
	}
	b := Builtin()
	b[0] = 'X'
	if Builtin()[0] == 'X' {
		t.Fatal("Builtin returns the embedded bytes themselves")
	}
}

func TestParse(t *testing.T) {
	p := mustParse(t, `policy: custom-1
description: a test
checks:
  - id: a
    title: A
    severity: critical
    controls: [iso27001:5.15, "iec62443-3-3:SR 1.1 RE 2"]
    applies: {any_of: [{file_exists: /etc}, {sysctl: {key: a.b, equals: " 1  2 "}}]}
    no_world_writable: {paths: /usr}
  - id: b
    title: B
    severity: low
    file_mode: {path: /etc/x, max_mode: "600"}
`)
	if p.Name != "custom-1" || p.Description != "a test" || len(p.Checks) != 2 {
		t.Fatalf("%+v", p)
	}
	a, b := p.Checks[0], p.Checks[1]
	if a.ID != "a" || a.Line != 4 || a.Severity != SeverityCritical || len(a.Controls) != 2 || a.applies == nil ||
		a.rule.kind != kindNoWorldWritable || a.rule.maxFiles != defaultWalk || a.applies.sub[1].equals != "1 2" {
		t.Errorf("a: %+v %+v", a, a.rule)
	}
	if b.Line != 10 || b.rule.maxMode != 0o600 || !b.rule.hasMax {
		t.Errorf("b: %+v %+v", b, b.rule)
	}
}

// TestParseErrors: each bad policy is refused with the line and field.
func TestParseErrors(t *testing.T) {
	const head = "policy: p\nchecks:\n  - id: a\n    title: A\n    severity: low\n" // the check is on line 3; its next key on line 6
	cases := []struct {
		name, yaml, want string
	}{
		{"not yaml", "policy: [", "test:1: yaml: did not find expected node content"},
		{"two documents", "policy: p\n---\npolicy: q\n", "test:2: policy: one policy per file"},
		{"not a mapping", "- a\n", "test:1: policy: want a mapping"},
		{"empty", "", "test: yaml: EOF"},
		{"unknown top key", "policy: p\nversion: 2\n", "test:2: version: unknown key"},
		{"bad name", "policy: Linux\nchecks: []\n", `test:1: policy: "Linux": want 1 to 64`},
		{"no name", "checks: []\n", "test:1: policy: missing"},
		{"no checks", "policy: p\n", "test:1: checks: missing"},
		{"empty checks", "policy: p\nchecks: []\n", "test:2: checks: want a non-empty list"},
		{"repeated key", "policy: p\npolicy: q\n", "test:2: policy: repeated key"},
		{"alias", "policy: p\nchecks:\n  - &c {id: a, title: A, severity: low, file_exists: /x}\n  - *c\n", "test:4: checks[1]: aliases are not supported"},
		{"unknown check key", head + "    frobnicate: 1\n    file_exists: /x\n", "test:6: checks[0].frobnicate: unknown key"},
		{"no rule", head, "test:3: checks[0]: no rule"},
		{"two rules", head + "    file_exists: /x\n    sysctl: {key: a, equals: b}\n", "test:7: checks[0].sysctl: a check has exactly one rule; this one already has file_exists"},
		{"missing title", "policy: p\nchecks:\n  - id: a\n    severity: low\n    file_exists: /x\n", "test:3: checks[0].title: missing"},
		{"bad severity", "policy: p\nchecks:\n  - id: a\n    title: A\n    severity: urgent\n    file_exists: /x\n", `test:5: checks[0].severity: "urgent": want low, medium, high or critical`},
		{"bad id", head[:strings.Index(head, "a\n")] + "A_1\n    title: A\n    severity: low\n    file_exists: /x\n", `test:3: checks[0].id: "A_1"`},
		{"duplicate id", head + "    file_exists: /x\n  - id: a\n    title: B\n    severity: low\n    file_exists: /y\n", `test:7: checks[1].id: "a" is also the id of the check on line 3`},
		{"bad control", head + "    controls: [iso27001:8.5, \"iec62443-3-3:SR 1.1(1)\"]\n    file_exists: /x\n", `test:6: checks[0].controls: "iec62443-3-3:SR 1.1(1)": want`},
		{"nist control", head + "    controls: nist:AC-2\n    file_exists: /x\n", `test:6: checks[0].controls: "nist:AC-2"`},
		{"relative path", head + "    file_exists: etc/x\n", `test:6: checks[0].file_exists: "etc/x": want an absolute path`},
		{"dotdot path", head + "    file_exists: /etc/../../x\n", `test:6: checks[0].file_exists: "/etc/../../x": not clean (want "/x")`},
		{"trailing slash", head + "    file_mode: {path: /etc/, owner: root}\n", `test:6: checks[0].file_mode.path: "/etc/": not clean`},
		{"bad regexp", head + "    file_contains: {path: /x, pattern: 'a(b'}\n", "test:6: checks[0].file_contains.pattern: error parsing regexp: missing closing ): `a(b`"},
		{"pattern too complex", head + "    file_contains: {path: /x, pattern: '\\pL{900}'}\n", "test:6: checks[0].file_contains.pattern: too complex"},
		{"empty pattern", head + "    file_contains: {path: /x, pattern: ''}\n", "test:6: checks[0].file_contains.pattern: empty"},
		{"no pattern", head + "    file_contains: {path: /x}\n", "test:6: checks[0].file_contains.pattern: missing"},
		{"no path", head + "    file_contains: {pattern: x}\n", "test:6: checks[0].file_contains.path: missing (want path, include or both)"},
		{"unknown rule key", head + "    file_contains: {path: /x, pattern: x, regex: y}\n", "test:6: checks[0].file_contains.regex: unknown key (file_contains takes path, include, pattern, first_match, last_match)"},
		{"first and last", head + "    file_contains: {path: /x, pattern: x, first_match: true, last_match: true}\n", "test:6: checks[0].file_contains.last_match: first_match and last_match exclude each other"},
		{"first without path", head + "    file_contains: {include: [/x/*], pattern: x, first_match: true}\n", "test:6: checks[0].file_contains.path: first_match needs path"},
		{"first not bool", head + "    file_contains: {path: /x, pattern: x, first_match: yes please}\n", "test:6: checks[0].file_contains.first_match: want true or false"},
		{"glob in a directory", head + "    file_contains: {include: [/etc/*/x.conf], pattern: x}\n", `test:6: checks[0].file_contains.include: "/etc/*/x.conf": wildcards only in the last element`},
		{"bad glob", head + "    file_contains: {include: [\"/etc/[x\"], pattern: x}\n", `test:6: checks[0].file_contains.include: "/etc/[x": not a valid glob`},
		{"command expect", head + "    command: {run: [a], pattern: x, expect: maybe}\n", `test:6: checks[0].command.expect: "maybe": want match or no_match`},
		{"command no expect", head + "    command: {run: [a], pattern: x}\n", "test:6: checks[0].command.expect: missing"},
		{"command empty run", head + "    command: {run: [], pattern: x, expect: match}\n", "test:6: checks[0].command.run: want the program and its arguments"},
		{"mode not octal", head + "    file_mode: {path: /x, max_mode: \"0948\"}\n", `test:6: checks[0].file_mode.max_mode: "0948": want an octal mode`},
		{"mode nothing", head + "    file_mode: {path: /x}\n", "test:6: checks[0].file_mode: want at least one of max_mode, owner, group"},
		{"bad owner", head + "    file_mode: {path: /x, owner: \"ro ot\"}\n", `test:6: checks[0].file_mode.owner: "ro ot"`},
		{"sysctl dotdot", head + "    sysctl: {key: net..x, equals: '1'}\n", `test:6: checks[0].sysctl.key: "net..x"`},
		{"sysctl slash escape", head + "    sysctl: {key: ../../etc/shadow, equals: '1'}\n", `test:6: checks[0].sysctl.key: "../../etc/shadow"`},
		{"service state", head + "    service: {name: x, state: running}\n", `test:6: checks[0].service.state: "running": want enabled or active`},
		{"service name", head + "    service: {name: ../x, state: enabled}\n", `test:6: checks[0].service.name: "../x": want a systemd unit name`},
		{"max_files", head + "    no_world_writable: {paths: [/usr], max_files: 0}\n", "test:6: checks[0].no_world_writable.max_files: 0: want 1 to 1000000"},
		{"any_of empty", head + "    any_of: []\n", "test:6: checks[0].any_of: want a non-empty list of rules"},
		{"any_of two rules in one", head + "    any_of:\n      - {file_exists: /x, sysctl: {key: a, equals: b}}\n", "test:7: checks[0].any_of[0]: want a mapping with exactly one rule"},
		{"any_of unknown rule", head + "    any_of:\n      - {exists: /x}\n", "test:7: checks[0].any_of[0].exists: unknown rule"},
		{"any_of deep", head + "    any_of: [{all_of: [{any_of: [{all_of: [{any_of: [{file_exists: /x}]}]}]}]}]\n", "test:6: checks[0].any_of[0].all_of[0].any_of[0].all_of[0].any_of: nested more than 4 deep"},
		{"any_of bad member", head + "    any_of:\n      - file_exists: /x\n      - file_mode: {path: x, owner: root}\n", `test:8: checks[0].any_of[1].file_mode.path: "x": want an absolute path`},
		{"applies two rules", head + "    applies: {file_exists: /x, sysctl: {key: a, equals: b}}\n    file_exists: /x\n", "test:6: checks[0].applies: want a mapping with exactly one rule"},
		{"NUL", head + "    file_exists: \"/x\\0\"\n", "test:6: checks[0].file_exists: contains a NUL byte"},
		{"long title", "policy: p\nchecks:\n  - id: a\n    title: " + strings.Repeat("t", 300) + "\n    severity: low\n    file_exists: /x\n", "test:4: checks[0].title: more than 256 bytes"},
		{"too big", "policy: p\n#" + strings.Repeat("x", MaxPolicyBytes), "test: policy: 262155 bytes, more than 262144"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("test", []byte(c.yaml))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T), want a *ParseError", err, err)
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("got  %s\nwant %s…", err, c.want)
			}
		})
	}
}
