package cli

import (
	"strings"
	"testing"
)

// TestPolicyVersion checks that policy write and read report the policy's
// own version (1 for the first write, one more for each rewrite), not the
// Raft index of the command that stored it, which other writes move on.
func TestPolicyVersion(t *testing.T) {
	e := unsealedServer(t)
	file := tempFile(t, "p.cedar", `permit (principal == User::"a", action, resource);`)
	version := func(r result) any {
		t.Helper()
		return mustJSON(t, r, "store", "name", "policy", "created_time", "updated_time", "version")["version"]
	}
	write := func(name string) any {
		t.Helper()
		return version(runCLI(t, e, "", "policy", "write", "--format", "json", name, file))
	}
	read := func(name string) any {
		t.Helper()
		return version(runCLI(t, e, "", "policy", "read", "--format", "json", name))
	}
	// Other writes between the policy's own move the Raft index on.
	for range 3 {
		runCLI(t, e, "", "kv", "put", "app/x", "k=v")
	}
	if v := write("p"); v != 1.0 {
		t.Fatalf("first write: version %v, want 1", v)
	}
	runCLI(t, e, "", "kv", "put", "app/x", "k=v")
	if v := write("q"); v != 1.0 {
		t.Fatalf("another policy's first write: version %v, want 1", v)
	}
	if v := write("p"); v != 2.0 {
		t.Fatalf("rewrite: version %v, want 2", v)
	}
	if v := read("p"); v != 2.0 {
		t.Fatalf("read: version %v, want 2", v)
	}
	if r := runCLI(t, e, "", "policy", "write", "p", file); r.code != 0 || r.stdout == "" {
		t.Fatalf("table write: %+v", r)
	} else if want := "Version   3"; !strings.Contains(r.stdout, want) {
		t.Fatalf("table write printed %q, want a line %q", r.stdout, want)
	}
	if r := runCLI(t, e, "", "policy", "delete", "p"); r.code != 0 {
		t.Fatalf("delete: %+v", r)
	}
	if v := write("p"); v != 1.0 {
		t.Fatalf("write after delete: version %v, want 1", v)
	}
}
