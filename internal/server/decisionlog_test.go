package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/warden-sec/warden/internal/server"
)

// TestDecisionLog checks --decision-log end to end: every decision of the
// decision API (check and check-batch) is a line with the fields of
// docs/authorization.md, the file is private, and no context or entity
// data reaches it.
func TestDecisionLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	h := start(t, t.TempDir(), func(c *server.Config) { c.DecisionLog, c.DecisionLogSample = path, 1 })
	_, root := h.initUnseal(1, 1)
	h.want(h.do("POST", "/v1/authz/stores", root, map[string]string{"name": "shop"}), 204)
	h.want(h.writePolicy(root, "shop", "refunds", `permit (principal in Group::"support", action == Action::"refund", resource is Order)
when { context.amount < 100 };`), 200)
	allow := `{"principal": "User::\"bob\"", "action": "Action::\"refund\"", "resource": "Order::\"42\"", "context": {"amount": 50, "card": "4111-secret"},
	  "entities": [{"uid": {"type": "User", "id": "bob"}, "attrs": {"ssn": "078-05-1120"}, "parents": [{"type": "Group", "id": "support"}]}]}`
	deny := `{"principal": "User::\"eve\"", "action": "Action::\"refund\"", "resource": "Order::\"43\"", "context": {"amount": 50}}`
	h.want(h.do("POST", "/v1/authz/stores/shop/check", root, allow), 200)
	h.want(h.do("POST", "/v1/authz/stores/shop/check-batch", root, `{"requests": [`+deny+`,`+allow+`]}`), 200)
	h.want(h.do("POST", "/v1/authz/stores/shop/check", root, `{"principal": 1}`), 400) // no decision, no line
	h.stop()                                                                           // Close writes what is buffered

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v", fi.Mode(), err)
	}
	for _, secret := range []string{"4111", "078-05", "ssn", "card", root} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the decision log holds %q", secret)
		}
	}
	type line struct {
		Time, Store, Principal, Action, Resource, Decision string
		Policies                                           []string
		RequestID                                          string `json:"request_id"`
	}
	var lines []line
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var l line
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %s: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), raw)
	}
	want := []struct{ principal, resource, decision string }{
		{`User::"bob"`, `Order::"42"`, "allow"}, {`User::"eve"`, `Order::"43"`, "deny"}, {`User::"bob"`, `Order::"42"`, "allow"},
	}
	for i, w := range want {
		l := lines[i]
		if l.Store != "shop" || l.Principal != w.principal || l.Action != `Action::"refund"` || l.Resource != w.resource ||
			l.Decision != w.decision || l.Time == "" || l.RequestID == "" {
			t.Errorf("line %d: %+v, want %+v", i, l, w)
		}
		if (w.decision == "allow") != (len(l.Policies) == 1 && l.Policies[0] == "refunds") {
			t.Errorf("line %d: policies %v", i, l.Policies)
		}
	}
	if lines[1].RequestID != lines[2].RequestID || lines[0].RequestID == lines[1].RequestID {
		t.Errorf("request ids %q %q %q: a batch's decisions share its request's id", lines[0].RequestID, lines[1].RequestID, lines[2].RequestID)
	}
}
