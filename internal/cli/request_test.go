package cli

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRequestFlow: with dual control on from "operator init --dual-control",
// a command the default rule covers prints "approval required" and exits
// 0; approvers approve with "warden request approve", the requester's own
// approval is refused, and "warden request run" runs it once; a snapshot
// restore runs by sending the command again with --approved-request.
func TestRequestFlow(t *testing.T) {
	addr, ca := realServer(t)
	e := env{"WARDEN_ADDR": addr, "WARDEN_CACERT": ca}
	in := mustJSON(t, runCLI(t, e, "", "operator", "init", "--key-shares", "1", "--key-threshold", "1", "--dual-control", "--format", "json"),
		"unseal_keys", "root_token")
	if r := runCLI(t, e, "", "operator", "unseal", in["unseal_keys"].([]any)[0].(string)); r.code != 0 {
		t.Fatalf("unseal: %+v", r)
	}
	root := env{"WARDEN_ADDR": addr, "WARDEN_CACERT": ca, "WARDEN_TOKEN": in["root_token"].(string)}
	as := func(user string, groups ...string) env {
		t.Helper()
		argv := []string{"token", "create", "--user", user, "--ttl", "1h", "--format", "json"}
		for _, g := range groups {
			argv = append(argv, "--group", g)
		}
		r := runCLI(t, root, "", argv...)
		var tok struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &tok); r.code != 0 || err != nil || tok.Token == "" {
			t.Fatalf("token create: %+v", r)
		}
		return env{"WARDEN_ADDR": addr, "WARDEN_CACERT": ca, "WARDEN_TOKEN": tok.Token}
	}
	alice, bob := as("alice", "security"), as("bob", "security")
	heldRE := regexp.MustCompile(`^approval required: request (req-[0-9a-f]{20}) \(0 of 2 approvals\), expires \S+\n$`)

	r := runCLI(t, root, "", "operator", "rotate")
	m := heldRE.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("a held rotate: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	id := m[1]
	if l := runCLI(t, alice, "", "request", "list", "--pending"); l.code != 0 || !strings.Contains(l.stdout, id) || !strings.Contains(l.stdout, "0/2") {
		t.Fatalf("request list: %+v", l)
	}
	checkErr(t, runCLI(t, root, "", "request", "approve", id), 1, "the requester cannot approve its own request")
	if a := runCLI(t, alice, "", "request", "approve", id, "--comment", "planned rotation"); a.code != 0 || !strings.Contains(a.stdout, "1 of 2") {
		t.Fatalf("approve: %+v", a)
	}
	checkErr(t, runCLI(t, alice, "", "request", "approve", id), 1, "already approved")
	checkErr(t, runCLI(t, root, "", "request", "run", id), 1, "1 of 2 approvals")
	runCLI(t, bob, "", "request", "approve", id)
	show := mustJSON(t, runCLI(t, alice, "", "request", "show", id, "--format", "json"), "id", "status", "requester", "accessor",
		"action", "resource", "method", "path", "body_sha256", "body_size", "body_stored", "rules", "required", "approvals",
		"denials", "created_at", "expires_at")
	if show["status"] != "approved" {
		t.Fatalf("show: %v", show)
	}
	if run := runCLI(t, root, "", "request", "run", id); run.code != 0 || !strings.Contains(run.stdout, `"term": 2`) {
		t.Fatalf("run: %+v", run)
	}
	checkErr(t, runCLI(t, root, "", "request", "run", id), 1, "already run")

	// A snapshot restore: sent again with --approved-request once approved.
	snap := filepath.Join(t.TempDir(), "state.snap")
	if r := runCLI(t, root, "", "operator", "raft", "snapshot", "save", snap); r.code != 0 {
		t.Fatalf("snapshot save: %+v", r)
	}
	r = runCLI(t, root, "", "operator", "raft", "snapshot", "restore", snap)
	m = heldRE.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("a held restore: %+v", r)
	}
	runCLI(t, alice, "", "request", "approve", m[1])
	runCLI(t, bob, "", "request", "approve", m[1])
	if r := runCLI(t, root, "", "operator", "raft", "snapshot", "restore", snap, "--approved-request", m[1]); r.code != 0 || strings.Contains(r.stdout, "approval required") {
		t.Fatalf("the approved restore: %+v", r)
	}

	// Turning dual control off is held too.
	if r := runCLI(t, root, "", "operator", "dual-control", "off"); r.code != 0 || !heldRE.MatchString(r.stdout) {
		t.Fatalf("dual-control off: %+v", r)
	}
	checkErr(t, runCLI(t, root, "", "operator", "dual-control", "maybe"), 2, "want on or off")
}
