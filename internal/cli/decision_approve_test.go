package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/sigma"
)

// TestDecisionApproveCLI: a playbook's decision pending approval is
// approved with warden decision approve by another principal, not by the
// playbook's owner.
func TestDecisionApproveCLI(t *testing.T) {
	srv, e := detectServer(t)
	pb := tempFile(t, "appr.yml", "name: appr\non: {rules: [cli-appr]}\nactions:\n  - ban: {duration: 1h, approval: required}\n")
	if r := runCLI(t, e, "", "playbook", "put", pb); r.code != 0 {
		t.Fatalf("put: %+v", r)
	}
	now := time.Now()
	rule := &sigma.Rule{ID: "cli-appr", Title: "approval test", Level: "high"}
	if _, err := srv.Alerts().Record(context.Background(), sigma.Hit{Key: "cli-appr|203.0.113.9", Rule: rule,
		Group: map[string]string{"source.ip": "203.0.113.9"}, Count: 1, First: now, Last: now, Hosts: []string{"web-1"},
		Events: []events.Event{{"source.ip": "203.0.113.9"}}}); err != nil {
		t.Fatal(err)
	}
	// When a step returns, the alert was handled (by it or the responder's loop).
	if _, err := srv.Responder().Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	list := anyJSON(t, runCLI(t, e, "", "decision", "list", "--format", "json"))
	ds := list["decisions"].([]any)
	if len(ds) != 1 || ds[0].(map[string]any)["pending_approval"] != true {
		t.Fatalf("decisions: %v", list)
	}
	id := ds[0].(map[string]any)["id"].(string)

	r := runCLI(t, e, "", "decision", "approve", id)
	if r.code != 1 || !strings.Contains(r.stderr, "403") || !strings.Contains(r.stderr, "cannot approve") {
		t.Fatalf("the owner's approval: %+v", r)
	}
	policy := tempFile(t, "approve.cedar", `permit (principal == User::"alice", action == Action::"decisions.approve", resource);`)
	if r := runCLI(t, e, "", "policy", "write", "approvers", policy); r.code != 0 {
		t.Fatalf("policy: %+v", r)
	}
	tok := anyJSON(t, runCLI(t, e, "", "token", "create", "--user", "alice", "--ttl", "1h", "--format", "json"))
	alice := env{}
	for k, v := range e {
		alice[k] = v
	}
	alice["WARDEN_TOKEN"] = tok["token"].(string)
	out := anyJSON(t, runCLI(t, alice, "", "decision", "approve", id, "--format", "json"))
	if out["approved_by"] != `User::"alice"` || out["pending_approval"] != nil {
		t.Fatalf("approved: %v", out)
	}
	if r := runCLI(t, alice, "", "decision", "approve", id); r.code != 1 || !strings.Contains(r.stderr, "409") {
		t.Fatalf("a second approval: %+v", r)
	}
}

// anyJSON is the JSON object a successful run printed.
func anyJSON(t *testing.T, r result) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); r.code != 0 || err != nil {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	return m
}
