package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPlaybookCLI(t *testing.T) {
	_, e := detectServer(t)
	out := mustJSON(t, runCLI(t, e, "", "playbook", "put", "--builtin", "--format", "json"), "name", "description", "mode", "enabled", "owner", "version", "created_time", "updated_time")
	if out["name"] != "ssh-brute-force" || out["mode"] != "enforce" {
		t.Fatalf("put --builtin: %v", out)
	}
	f := filepath.Join(t.TempDir(), "scan.yml")
	if err := os.WriteFile(f, []byte("name: scan\nmode: simulate\non: {level: high}\nactions:\n  - ban: {duration: 30m}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, e, "", "playbook", "put", f); r.code != 0 || !strings.Contains(r.stdout, "put playbook scan (version 1, mode simulate") {
		t.Fatalf("put FILE: %+v", r)
	}
	if r := runCLI(t, e, "", "playbook", "put", f); r.code != 0 || !strings.Contains(r.stdout, "version 2") {
		t.Fatalf("put FILE again: %+v", r)
	}
	list := mustJSON(t, runCLI(t, e, "", "playbook", "list", "--format", "json"), "playbooks")
	if ps := list["playbooks"].([]any); len(ps) != 2 || ps[0].(map[string]any)["name"] != "scan" {
		t.Fatalf("list: %v", list)
	}
	if r := runCLI(t, e, "", "playbook", "list"); r.code != 0 || !strings.Contains(r.stdout, "ssh-brute-force") || !strings.Contains(r.stdout, "simulate") {
		t.Fatalf("list table: %+v", r)
	}
	if r := runCLI(t, e, "", "playbook", "show", "scan"); r.code != 0 || !strings.Contains(r.stdout, "duration: 30m") {
		t.Fatalf("show: %+v", r)
	}
	// A bad playbook: exit 1, one line naming the file, the YAML line and the field.
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("name: bad\nactions:\n  - notify: {sink: nowhere}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, e, "", "playbook", "put", bad)
	if r.code != 1 || !strings.Contains(r.stderr, "bad.yml") || !strings.Contains(r.stderr, "line 3") ||
		!strings.Contains(r.stderr, "actions[0].notify.sink") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("bad playbook: %+v", r)
	}
	if r := runCLI(t, e, "", "playbook", "delete", "scan"); r.code != 0 {
		t.Fatalf("delete: %+v", r)
	}
	if r := runCLI(t, e, "", "playbook", "show", "scan"); r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Fatalf("show deleted: %+v", r)
	}
	for _, args := range [][]string{{"playbook", "put"}, {"playbook", "put", "--builtin", f}} {
		if r := runCLI(t, e, "", args...); r.code != 2 {
			t.Fatalf("%v: %+v", args, r)
		}
	}
}
