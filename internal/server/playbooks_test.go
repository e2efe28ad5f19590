package server_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/detect"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/respond"
	"github.com/warden-sec/warden/internal/sigma"
	"github.com/warden-sec/warden/pkg/client"
)

// playbookHit is a hit of rule grouped by the source address ip, seen on
// host.
func playbookHit(rule *sigma.Rule, ip, host string, t0 time.Time) sigma.Hit {
	ev := events.Event{"@timestamp": t0.UTC().Format(time.RFC3339), "host.name": host, "source.ip": ip, "event.action": "ssh_login"}
	return sigma.Hit{Key: rule.ID + "|" + ip + "|" + host, Rule: rule, Group: map[string]string{"source.ip": ip}, Count: 10,
		First: t0, Last: t0.Add(30 * time.Second), Hosts: []string{host}, Events: []events.Event{ev}}
}

func decisions(t *testing.T, h *harness, root, query string) []client.DecisionRecord {
	t.Helper()
	var out struct {
		Decisions []client.DecisionRecord `json:"decisions"`
	}
	if err := json.Unmarshal(h.want(h.do("GET", "/v1/decisions"+query, root, nil), 200).body, &out); err != nil {
		t.Fatal(err)
	}
	return out.Decisions
}

func putPlaybook(t *testing.T, h *harness, token, yaml string) map[string]any {
	t.Helper()
	return h.want(h.do("POST", "/v1/playbooks", token, map[string]string{"yaml": yaml}), 200).json(t)
}

// TestPlaybookBuiltinBansAndOpensIncident: the built-in playbook acts on
// an alert of the built-in SSH brute-force rule: a ban of the alert's
// source (origin, alert and owner recorded) and an incident holding the
// alert and the decision, committed once however often the responder
// looks and however often the alert is updated.
func TestPlaybookBuiltinBansAndOpensIncident(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	ctx := context.Background()

	pb := h.want(h.do("POST", "/v1/playbooks?builtin=true", root, nil), 200).json(t)
	if pb["name"] != "ssh-brute-force" || pb["owner"] != `Root::"root"` && !strings.HasPrefix(pb["owner"].(string), "Root::") {
		t.Fatalf("put --builtin: %v", pb)
	}
	list := h.want(h.do("GET", "/v1/playbooks", root, nil), 200).json(t)
	if ps := list["playbooks"].([]any); len(ps) != 1 || ps[0].(map[string]any)["yaml"] != nil {
		t.Fatalf("list: %v", list)
	}
	got := h.want(h.do("GET", "/v1/playbooks/ssh-brute-force", root, nil), 200).json(t)
	if !strings.Contains(got["yaml"].(string), "67e88380-c782-4d9f-9009-8d61f90288c7") {
		t.Fatalf("show: %v", got)
	}

	rules, err := sigma.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var brute *sigma.Rule
	for _, r := range rules {
		if r.ID == "67e88380-c782-4d9f-9009-8d61f90288c7" {
			brute = r
		}
	}
	hit := playbookHit(brute, "203.0.113.7", "web-1", h.clk.Now())
	al, err := h.srv.Alerts().Record(ctx, hit)
	if err != nil {
		t.Fatal(err)
	}
	// An alert of another rule is left alone.
	other := &sigma.Rule{ID: "web-scan", Title: "Web scanning", Level: "high"}
	if _, err := h.srv.Alerts().Record(ctx, playbookHit(other, "198.51.100.1", "web-1", h.clk.Now())); err != nil {
		t.Fatal(err)
	}
	step(t, h)
	ds := decisions(t, h, root, "?active=true")
	if len(ds) != 1 {
		t.Fatalf("decisions: %+v", ds)
	}
	d := ds[0]
	if d.Type != "ban" || d.Target.IP != "203.0.113.7" || d.Origin != "playbook:ssh-brute-force" || d.AlertID != al.ID ||
		d.Simulated || d.PendingApproval || d.Duration != "1h0m0s" || d.CreatedBy != pb["owner"] {
		t.Fatalf("decision: %+v", d)
	}
	var incs struct {
		Incidents []respond.Incident `json:"incidents"`
	}
	if err := json.Unmarshal(h.want(h.do("GET", "/v1/incidents", root, nil), 200).body, &incs); err != nil {
		t.Fatal(err)
	}
	if len(incs.Incidents) != 1 || !slices.Contains(incs.Incidents[0].Alerts, al.ID) || !slices.Contains(incs.Incidents[0].Decisions, d.ID) {
		t.Fatalf("incidents: %+v", incs.Incidents)
	}
	r := run(t, h, al.ID)
	if len(r.Playbooks) != 1 || r.Playbooks[0].Actions[0].DecisionID != d.ID || r.Playbooks[0].Actions[1].Target != incs.Incidents[0].ID {
		t.Fatalf("run: %+v", r)
	}

	// Again, and after the alert is updated by more attempts: nothing new.
	step(t, h)
	hit.Count, hit.Last = 25, hit.Last.Add(10*time.Second)
	if _, err := h.srv.Alerts().Record(ctx, hit); err != nil {
		t.Fatal(err)
	}
	step(t, h)
	if ds := decisions(t, h, root, ""); len(ds) != 1 {
		t.Fatalf("decisions after an update: %+v", ds)
	}

	h.want(h.do("DELETE", "/v1/playbooks/ssh-brute-force", root, nil), 204)
	h.want(h.do("GET", "/v1/playbooks/ssh-brute-force", root, nil), 404)
}

// TestPlaybookModesApprovalLimits: simulate makes simulated decisions;
// approval: required makes a pending decision that only another principal
// can approve; beyond actions_per_hour a playbook only notifies; a ban
// the never-block list refuses is recorded, not retried.
func TestPlaybookModesApprovalLimits(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	ctx := context.Background()
	h.want(h.do("POST", "/v1/notifiers", root, map[string]string{"name": "ops", "type": "webhook",
		"url": "http://127.0.0.1:9/hook", "secret": "0123456789abcdef0123"}), 200)

	// A notify action naming a notifier that does not exist: 400 with the line.
	r := h.want(h.do("POST", "/v1/playbooks", root, map[string]string{"yaml": "name: bad\nactions:\n  - notify: {sink: nowhere}\n"}), 400)
	if !strings.Contains(string(r.body), "line 3") || !strings.Contains(string(r.body), "actions[0].notify.sink") {
		t.Fatalf("unknown sink: %s", r.body)
	}
	h.want(h.do("GET", "/v1/playbooks/bad", root, nil), 404)

	putPlaybook(t, h, root, "name: sim\nmode: simulate\non: {rules: [sim-rule]}\nactions:\n  - ban: {duration: 1h}\n")
	putPlaybook(t, h, root, "name: appr\non: {rules: [appr-rule]}\nactions:\n  - ban: {duration: 2h, approval: required}\n")
	putPlaybook(t, h, root, "name: lim\non: {rules: [lim-rule]}\nactions:\n  - ban: {duration: 1h}\n  - notify: {sink: ops}\nlimits: {actions_per_hour: 1}\n")
	h.want(h.do("POST", "/v1/decisions/allow", root, map[string]string{"cidr": "192.0.2.0/24", "reason": "office"}), 200)

	rule := func(id string) *sigma.Rule { return &sigma.Rule{ID: id, Title: id, Level: "high"} }
	record := func(r *sigma.Rule, ip string) detect.Alert {
		t.Helper()
		al, err := h.srv.Alerts().Record(ctx, playbookHit(r, ip, "web-1", h.clk.Now()))
		if err != nil {
			t.Fatal(err)
		}
		return al
	}
	simAl := record(rule("sim-rule"), "198.51.100.9")
	apprAl := record(rule("appr-rule"), "198.51.100.10")
	lim1 := record(rule("lim-rule"), "198.51.100.11")
	lim2 := record(rule("lim-rule"), "198.51.100.12")
	refused := record(rule("sim-rule"), "192.0.2.55")
	step(t, h)
	byAlert := map[string]client.DecisionRecord{}
	for _, d := range decisions(t, h, root, "") {
		byAlert[d.AlertID] = d
	}
	if d := byAlert[simAl.ID]; !d.Simulated || d.Origin != "playbook:sim" {
		t.Fatalf("simulate: %+v", d)
	}
	if rr := run(t, h, refused.ID); rr.Playbooks[0].Actions[0].Outcome != respond.OutcomeRefused ||
		!strings.Contains(rr.Playbooks[0].Actions[0].Note, "192.0.2.0/24") {
		t.Fatalf("refused ban: %+v", rr)
	}
	if _, ok := byAlert[refused.ID]; ok {
		t.Fatal("a ban the never-block list refuses was stored")
	}

	// The limit: the first alert's ban, then only notifications.
	if _, ok := byAlert[lim1.ID]; !ok {
		t.Fatal("no ban for the first alert of lim")
	}
	if _, ok := byAlert[lim2.ID]; ok {
		t.Fatal("lim banned beyond its limit")
	}
	r2 := run(t, h, lim2.ID)
	if a := r2.Playbooks[0].Actions; a[0].Outcome != respond.OutcomeLimited || a[1].Outcome != respond.OutcomeDone {
		t.Fatalf("beyond the limit: %+v", a)
	}
	if n, err := h.srv.Notifiers().Pending(ctx); err != nil || n < 1 {
		t.Fatalf("notifications queued: %d, %v", n, err)
	}

	// Approval: pending, not active; the owner cannot approve; another can, once.
	pending := byAlert[apprAl.ID]
	if !pending.PendingApproval || pending.ApprovedBy != "" {
		t.Fatalf("approval required: %+v", pending)
	}
	for _, d := range decisions(t, h, root, "?active=true") {
		if d.ID == pending.ID {
			t.Fatal("a pending decision is active")
		}
	}
	r = h.want(h.do("POST", "/v1/decisions/"+pending.ID+"/approve", root, nil), 403)
	if !strings.Contains(string(r.body), "cannot approve") {
		t.Fatalf("owner's approval: %s", r.body)
	}
	h.want(h.writePolicy(root, "warden", "approvers", `permit (principal == User::"alice", action == Action::"decisions.approve", resource);`), 200)
	alice := h.token(root, "alice")
	h.clk.Add(time.Minute)
	var approved client.DecisionRecord
	if err := json.Unmarshal(h.want(h.do("POST", "/v1/decisions/"+pending.ID+"/approve", alice, nil), 200).body, &approved); err != nil {
		t.Fatal(err)
	}
	wantExp := h.clk.Now().Add(2 * time.Hour)
	exp, err := time.Parse(time.RFC3339Nano, approved.ExpiresAt)
	if approved.PendingApproval || approved.ApprovedBy != `User::"alice"` || err != nil || !exp.Equal(wantExp) {
		t.Fatalf("approved: %+v (want expiry %s)", approved, wantExp)
	}
	active := decisions(t, h, root, "?active=true")
	if !slices.ContainsFunc(active, func(d client.DecisionRecord) bool { return d.ID == pending.ID }) {
		t.Fatalf("approved decision not active: %+v", active)
	}
	r = h.want(h.do("POST", "/v1/decisions/"+pending.ID+"/approve", alice, nil), 409)
	if !strings.Contains(string(r.body), "alice") {
		t.Fatalf("second approval: %s", r.body)
	}
}

// TestPlaybookOwnerAuthority: playbooks.write alone does not let its
// holder automate what it may not do by hand; each action kind needs its
// own permission, named in the 403, and nothing is stored.
func TestPlaybookOwnerAuthority(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.want(h.writePolicy(root, "warden", "bob-playbooks",
		`permit (principal == User::"bob", action in [Action::"playbooks.write", Action::"playbooks.read", Action::"incidents.write"], resource);`), 200)
	bob := h.token(root, "bob")
	ban := map[string]string{"yaml": "name: b\non: {rules: [r]}\nactions:\n  - incident: {open: true}\n  - ban: {duration: 1h}\n"}
	r := h.want(h.do("POST", "/v1/playbooks", bob, ban), 403)
	if body := string(r.body); !strings.Contains(body, "line 5") || !strings.Contains(body, "decisions.write") {
		t.Fatalf("a ban by an owner without decisions.write: %s", r.body)
	}
	h.want(h.do("GET", "/v1/playbooks/b", root, nil), 404)
	r = h.want(h.do("POST", "/v1/playbooks", bob, map[string]string{"yaml": "name: v\non: {rules: [r]}\nactions:\n  - revoke: {}\n"}), 403)
	if !strings.Contains(string(r.body), "node.revoke") {
		t.Fatalf("a revoke by an owner without node.revoke: %s", r.body)
	}
	// What bob may do by hand, his playbook may do.
	h.want(h.do("POST", "/v1/playbooks", bob, map[string]string{"yaml": "name: i\non: {rules: [r]}\nactions:\n  - incident: {open: true}\n"}), 200)
	h.want(h.writePolicy(root, "warden", "bob-decisions", `permit (principal == User::"bob", action == Action::"decisions.write", resource);`), 200)
	h.want(h.do("POST", "/v1/playbooks", bob, ban), 200)
}
