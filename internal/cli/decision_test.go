package cli

import (
	"strings"
	"testing"
)

// TestDecisionCommands runs warden decision against a real server: add,
// list (the JSON contract {"decisions": [...]}), show, delete, the
// never-block list, and refusals as one-line errors.
func TestDecisionCommands(t *testing.T) {
	e := unsealedServer(t)
	ok := func(argv ...string) result {
		t.Helper()
		r := runCLI(t, e, "", argv...)
		if r.code != 0 {
			t.Fatalf("warden %s: exit %d, stderr %q", strings.Join(argv, " "), r.code, r.stderr)
		}
		return r
	}
	fail := func(want string, argv ...string) {
		t.Helper()
		r := runCLI(t, e, "", argv...)
		if r.code == 0 || !strings.Contains(r.stderr, want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Fatalf("warden %s: exit %d, stderr %q; want one line with %q", strings.Join(argv, " "), r.code, r.stderr, want)
		}
	}
	d := mustJSON(t, ok("decision", "add", "ban", "--ip", "::ffff:203.0.113.7", "--duration", "4h", "--reason", "ssh brute force", "--format", "json"),
		"id", "revision", "type", "target", "zone", "reason", "origin", "alert_id", "created_by", "created_time", "expires_at", "simulated", "duration")
	id := d["id"].(string)
	if d["target"].(map[string]any)["ip"] != "203.0.113.7" {
		t.Fatalf("added: %v", d)
	}
	l := mustJSON(t, ok("decision", "list", "--active", "--format", "json"), "decisions")
	if ds := l["decisions"].([]any); len(ds) != 1 || ds[0].(map[string]any)["id"] != id {
		t.Fatalf("list: %v", l)
	}
	if r := ok("decision", "show", id); !strings.Contains(r.stdout, "ip 203.0.113.7") || !strings.Contains(r.stdout, "ssh brute force") {
		t.Fatalf("show: %s", r.stdout)
	}
	if r := ok("decision", "list"); !strings.Contains(r.stdout, id) {
		t.Fatalf("list table: %s", r.stdout)
	}
	fail("target.cidr", "decision", "add", "ban", "--cidr", "10.0.0.0/8", "--duration", "1h")
	fail("duration", "decision", "add", "ban", "--ip", "203.0.113.8", "--duration", "-1h")
	fail("target.node", "decision", "add", "quarantine", "--node", "web-9", "--duration", "1h")
	fail("exactly one", "decision", "add", "ban", "--ip", "203.0.113.8", "--user", "x", "--duration", "1h")
	fail("--duration", "decision", "add", "ban", "--ip", "203.0.113.8")

	a := mustJSON(t, ok("decision", "allow", "add", "192.0.2.0/24", "--reason", "office", "--format", "json"),
		"id", "revision", "cidr", "reason", "created_by", "created_time")
	fail(a["id"].(string), "decision", "add", "ban", "--ip", "192.0.2.9", "--duration", "1h")
	if al := mustJSON(t, ok("decision", "allow", "list", "--format", "json"), "entries"); len(al["entries"].([]any)) != 1 {
		t.Fatalf("allow list: %v", al)
	}
	ok("decision", "allow", "delete", a["id"].(string))
	ok("decision", "delete", id)
	fail("not found", "decision", "show", id)
	if l := mustJSON(t, ok("decision", "list", "--format", "json"), "decisions"); len(l["decisions"].([]any)) != 0 {
		t.Fatalf("after delete: %v", l)
	}
}
