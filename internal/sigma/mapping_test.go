package sigma

import (
	"strings"
	"testing"
)

func TestMapping(t *testing.T) {
	m := DefaultMapping()
	tests := []struct {
		ls     Logsource
		want   string
		mapped bool
	}{
		{Logsource{Product: "linux", Service: "sshd"}, "sshd", true},
		{Logsource{Product: "linux"}, "journald,raw,sshd,syslog", true},
		{Logsource{Category: "webserver"}, "apache.access,nginx.access", true},
		{Logsource{Product: "nginx", Category: "webserver"}, "nginx.access", true},
		{Logsource{Product: "warden", Service: "server"}, "warden.server", true},
		{Logsource{Product: "linux", Category: "file_change"}, "fim", true},
		{Logsource{Product: "linux", Category: "process_creation"}, "linux.process_creation", false},
		{Logsource{Category: "proxy"}, "proxy", false},
		{Logsource{}, "", true},
	}
	for _, tc := range tests {
		ds, ok := m.datasets(tc.ls)
		if got := strings.Join(ds, ","); got != tc.want || ok != tc.mapped {
			t.Errorf("%+v: %q %v, want %q %v", tc.ls, got, ok, tc.want, tc.mapped)
		}
	}
	for sigmaName, ecs := range map[string]string{"c-ip": "source.ip", "cs-method": "http.request.method", "cs-uri-query": "url.original", "sc-status": "http.response.status_code", "cs-user-agent": "user_agent.original", "c-useragent": "user_agent.original", "Image": "process.executable", "CommandLine": "process.command_line", "ParentImage": "process.parent.executable", "User": "user.name", "TargetFilename": "file.path", "source.ip": "source.ip", "unknown": "unknown"} {
		if got := m.field(sigmaName); got != ecs {
			t.Errorf("field %s → %s, want %s", sigmaName, got, ecs)
		}
	}

	// An operator's extension replaces and adds entries; the default is unchanged.
	ext, err := ParseMapping("ops.yml", []byte("logsources:\n  - {product: linux, category: process_creation, datasets: [auditd]}\n  - {product: linux, service: sshd, datasets: [sshd, auth]}\nfields:\n  exe: process.executable\n  c-ip: client.ip\n"))
	if err != nil {
		t.Fatal(err)
	}
	merged := m.Merge(ext)
	if ds, ok := merged.datasets(Logsource{Product: "linux", Category: "process_creation"}); !ok || strings.Join(ds, ",") != "auditd" {
		t.Errorf("extension not applied: %v %v", ds, ok)
	}
	if ds, _ := merged.datasets(Logsource{Product: "linux", Service: "sshd"}); strings.Join(ds, ",") != "auth,sshd" {
		t.Errorf("replacement not applied: %v", ds)
	}
	if merged.field("exe") != "process.executable" || merged.field("c-ip") != "client.ip" {
		t.Error("field extension not applied")
	}
	merged.Logsources[0].Datasets[0] = "changed"
	if DefaultMapping().Logsources[0].Datasets[0] == "changed" || m.field("c-ip") != "source.ip" {
		t.Error("Merge modified its input or the default")
	}

	for _, bad := range []struct{ yaml, want string }{
		{"logsources:\n  - {product: a}\n", "m.yml:2: a logsource entry needs datasets"},
		{"logsources:\n  - {datasets: [x]}\n", "needs product, category or service"},
		{"fields:\n  a: b\n  a: c\n", `m.yml:3: field "a" is mapped twice`},
		{"colour: red\n", `m.yml:1: unknown key "colour"`},
		{"logsources:\n  - {product: a, datasets: [x], extra: 1}\n", `unknown key "extra"`},
		{"logsources:\n  - {product: a, datasets: [x]}\n  - {product: a, datasets: [y]}\n", "mapped twice"},
		{"", "empty mapping"},
		{"[1, 2]\n", "must be a YAML mapping"},
	} {
		if _, err := ParseMapping("m.yml", []byte(bad.yaml)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want %q", bad.yaml, err, bad.want)
		}
	}
}

// TestRuleSource: each rule's Source is its own YAML document, which
// parses to the same rule (the rules service stores it).
func TestRuleSource(t *testing.T) {
	rules, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		again, err := Parse(r.File, r.Source)
		if err != nil || len(again) != 1 || again[0].ID != r.ID || again[0].Title != r.Title {
			t.Errorf("%s: Source does not parse back to the rule: %v", r.ID, err)
		}
		if strings.Contains(string(r.Source), "\n---") {
			t.Errorf("%s: Source holds a document separator", r.ID)
		}
	}
}
