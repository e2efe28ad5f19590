package server_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/respond"
	"github.com/warden-sec/warden/internal/sigma"
)

// TestPlaybookNotifyRevokeOnce: on a real server, a playbook that revokes
// the alert's host and notifies does both in the alert's one commit (the
// node is revoked, a notification queued, the run recorded), once: not
// again when the responder looks again or the alert is updated, and not
// for alerts created before the playbook was put. (The responder's own
// loop runs too: the test checks what is stored, not who stored it.)
func TestPlaybookNotifyRevokeOnce(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	ctx := context.Background()
	h.want(h.do("POST", "/v1/notifiers", root, map[string]string{"name": "ops", "type": "webhook",
		"url": "http://127.0.0.1:9/hook", "secret": "0123456789abcdef0123"}), 200)
	h.want(h.do("POST", "/v1/nodes/tokens", root, map[string]string{"name": "web-7"}), 200)

	rule := &sigma.Rule{ID: "implant", Title: "Implant on a host", Level: "critical"}
	hit := func(key string) sigma.Hit {
		now := h.clk.Now()
		return sigma.Hit{Key: key, Rule: rule, Group: map[string]string{"host.name": "web-7"}, Count: 1, First: now, Last: now,
			Hosts: []string{"web-7"}, Events: []events.Event{{"host.name": "web-7", "message": "implant"}}}
	}
	old, err := h.srv.Alerts().Record(ctx, hit("implant|old"))
	if err != nil {
		t.Fatal(err)
	}
	h.clk.Add(time.Second)
	h.want(h.do("POST", "/v1/playbooks", root, map[string]string{"yaml": `name: contain
on: {rules: [implant], level: high, hosts: [web-*]}
actions:
  - revoke: {}
  - notify: {sink: ops}
`}), 200)
	outbox := func() int {
		t.Helper()
		n, err := h.srv.Notifiers().Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The old alert's own notification (critical ≥ the notifier's high) is queued.
	before := outbox()
	h.clk.Add(time.Second)
	al, err := h.srv.Alerts().Record(ctx, hit("implant|new"))
	if err != nil {
		t.Fatal(err)
	}
	before++ // the new alert's own notification
	step(t, h)
	if _, err := h.srv.Core().Get(ctx, "respond/playbooks-runs/"+old.ID); err == nil {
		t.Fatal("the playbook acted on an alert created before it")
	}
	r := run(t, h, al.ID)
	if a := r.Playbooks[0].Actions; len(a) != 2 || a[0].Outcome != respond.OutcomeDone || a[0].Target != "web-7" ||
		a[1].Outcome != respond.OutcomeDone || a[1].Target != "ops" {
		t.Fatalf("run: %+v", r)
	}
	node := h.want(h.do("GET", "/v1/nodes/web-7", root, nil), 200).json(t)
	if node["state"] != "revoked" {
		t.Fatalf("node: %v", node)
	}
	if n := outbox(); n != before+1 {
		t.Fatalf("outbox: %d, want %d", n, before+1)
	}

	// Again, and after an update: nothing more.
	if _, err := h.srv.Alerts().Record(ctx, func() sigma.Hit { x := hit("implant|new"); x.Count = 5; return x }()); err != nil {
		t.Fatal(err)
	}
	step(t, h)
	if n := outbox(); n != before+1 {
		t.Fatalf("outbox after an update: %d, want %d", n, before+1)
	}
	var cursor struct {
		After uint64 `json:"after"`
	}
	e, err := h.srv.Core().Get(ctx, "respond/playbooks-cursor")
	if err != nil || json.Unmarshal(e.Value, &cursor) != nil || cursor.After == 0 {
		t.Fatalf("cursor: %+v, %v", cursor, err)
	}
}

// step runs the responder over the alerts recorded so far: when it
// returns, every one of them was handled (by this step, or by the
// responder's own loop before it; steps run one at a time).
func step(t *testing.T, h *harness) {
	t.Helper()
	if _, err := h.srv.Responder().Step(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// run is the record of what the playbooks did for an alert.
func run(t *testing.T, h *harness, alertID string) respond.Run {
	t.Helper()
	e, err := h.srv.Core().Get(context.Background(), "respond/playbooks-runs/"+alertID)
	if err != nil {
		t.Fatalf("run of alert %s: %v", alertID, err)
	}
	var r respond.Run
	if err := json.Unmarshal(e.Value, &r); err != nil {
		t.Fatal(err)
	}
	return r
}
