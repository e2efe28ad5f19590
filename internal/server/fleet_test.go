package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/agent/inventory"
)

// fleetInventory is a small valid inventory whose oldest pending update
// is 45 days old at now: patch age 45 days, basis pending_updates.
func fleetInventory(host string, now time.Time) *inventory.Inventory {
	return &inventory.Inventory{CollectedAt: now.UTC(), Hostname: host, Kernel: "6.12.0", Arch: "amd64", AgentVersion: "1.4.2",
		OS:             inventory.OS{ID: "debian", Name: "Debian GNU/Linux", Version: "13 (trixie)", VersionID: "13", PrettyName: "Debian GNU/Linux 13 (trixie)"},
		PackageManager: "dpkg", Packages: []inventory.Package{{Name: "openssl", Version: "3.5.1-1", Arch: "amd64"}},
		PendingKnown: true, Pending: []inventory.Update{{Name: "openssl", Installed: "3.5.1-1", Available: "3.5.1-2", Since: now.Add(-45 * 24 * time.Hour)}}}
}

// TestFleetBatchRoutes: GET /v1/inventory/summaries answers the named
// nodes' summaries only (a node without an inventory, or unknown, absent),
// asks the policies about Node::"*" and then each name (a forbid on one
// node denies the batch, naming it), refuses bad input naming the field,
// and records the read; GET /v1/compliance/risk answers empty maps and no
// evaluated_at before the leader's first evaluation, then the stored
// scores of the named nodes and of every zone, equal to the evaluation's.
func TestFleetBatchRoutes(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.want(h.do("POST", "/v1/zones", root, map[string]any{"name": "dmz", "level": 2}), 200)
	web1 := h.enrollZone(root, "web-1", "dmz")
	h.enrollZone(root, "web-2", "dmz")
	h.want(h.do("POST", "/v1/nodes/tokens", root, map[string]string{"name": "db-1", "zone": "dmz"}), 200) // pending
	h.want(h.nodeDo(web1, "POST", "/v1/inventory", fleetInventory("web-1", h.clk.Now())), 200)

	type summary struct {
		AgentVersion string `json:"agent_version"`
		PatchAgeDays int    `json:"patch_age_days"`
		PatchBasis   string `json:"patch_basis"`
		Pending      int    `json:"pending_updates"`
	}
	summaries := func(token, names string) map[string]summary {
		t.Helper()
		r := h.want(h.do("GET", "/v1/inventory/summaries?names="+names, token, nil), 200)
		var out struct {
			Summaries map[string]summary `json:"summaries"`
		}
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Fatal(err)
		}
		return out.Summaries
	}
	size0, err := h.srv.Audit().Size()
	if err != nil {
		t.Fatal(err)
	}
	got := summaries(root, "web-1,web-2,db-1,nope")
	if len(got) != 1 || got["web-1"] != (summary{AgentVersion: "1.4.2", PatchAgeDays: 45, PatchBasis: "pending_updates", Pending: 1}) {
		t.Fatalf("summaries of web-1, web-2, db-1, nope: %+v", got)
	}
	recorded := false
	for _, e := range h.entriesSince(size0) {
		if e.Action == "inventory.read" && e.Resource == `Node::"web-1", Node::"web-2", Node::"db-1", Node::"nope"` && e.Outcome == 200 {
			recorded = true
		}
	}
	if !recorded {
		t.Error("no audit record of the batch read")
	}

	// Bad input: 400 naming the field, for either route.
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("n-%d", i)
	}
	for _, tc := range []struct{ path, want string }{
		{"/v1/inventory/summaries", "names: required"},
		{"/v1/inventory/summaries?names=", "names: empty"},
		{"/v1/inventory/summaries?names=" + strings.Join(many, ","), "names: 101 names, at most 100"},
		{"/v1/inventory/summaries?names=web-1,Web-2", `names[1]: "Web-2" is not a canonical node name`},
		{"/v1/inventory/summaries?names=web-1,web-1", `names[1]: "web-1" is repeated`},
		{"/v1/inventory/summaries?names=web-1&names=web-2", "names: given 2 times"},
		{"/v1/inventory/summaries?names=web-1&limit=5", `query parameter "limit": unknown`},
		{"/v1/compliance/risk?names=web-1,,web-2", "names[1]"},
		{"/v1/compliance/risk?zone=dmz", `query parameter "zone": unknown`},
	} {
		h.wantError(h.do("GET", tc.path, root, nil), 400, tc.want)
	}

	// Per node: ops may read every node's inventory but web-2's.
	h.want(h.writePolicy(root, "warden", "ops", `permit (principal in Group::"ops", action == Action::"inventory.read", resource);
forbid (principal in Group::"ops", action == Action::"inventory.read", resource == Node::"web-2");`), 200)
	ops := h.token(root, "olga", "ops")
	if got := summaries(ops, "web-1,db-1"); len(got) != 1 || got["web-1"].AgentVersion != "1.4.2" {
		t.Fatalf("ops, web-1 and db-1: %+v", got)
	}
	h.wantError(h.do("GET", "/v1/inventory/summaries?names=web-1,web-2", ops, nil), 403, `Node::"web-2"`)
	// A policy for one node alone does not grant the batch, a read across
	// the fleet (Node::"*").
	h.want(h.writePolicy(root, "warden", "one", `permit (principal == User::"uma", action == Action::"inventory.read", resource == Node::"web-1");`), 200)
	h.want(h.do("GET", "/v1/nodes/web-1/inventory", h.token(root, "uma"), nil), 200)
	h.wantError(h.do("GET", "/v1/inventory/summaries?names=web-1", h.token(root, "uma"), nil), 403, `Node::"*"`)

	// Risk: nothing before the first evaluation.
	r := h.want(h.do("GET", "/v1/compliance/risk?names=web-1", root, nil), 200)
	if strings.TrimSpace(string(r.body)) != `{"nodes":{},"zones":{}}` {
		t.Fatalf("risk before any evaluation: %s", r.body)
	}
	if err := h.srv.EvaluateCompliance(context.Background()); err != nil {
		t.Fatal(err)
	}
	type risk struct {
		EvaluatedAt time.Time      `json:"evaluated_at"`
		Nodes       map[string]int `json:"nodes"`
		Zones       map[string]int `json:"zones"`
	}
	var rk risk
	if err := json.Unmarshal(h.want(h.do("GET", "/v1/compliance/risk?names=web-1,web-2,db-1", root, nil), 200).body, &rk); err != nil {
		t.Fatal(err)
	}
	// web-1: patch age 45 days, 15 points; web-2: no inventory, 10; db-1
	// is pending, not evaluated; the zone: its highest node.
	want := risk{EvaluatedAt: h.clk.Now().UTC().Truncate(time.Second), Nodes: map[string]int{"web-1": 15, "web-2": 10}, Zones: map[string]int{"dmz": 15}}
	if !rk.EvaluatedAt.Equal(want.EvaluatedAt) || fmt.Sprint(rk.Nodes) != fmt.Sprint(want.Nodes) || fmt.Sprint(rk.Zones) != fmt.Sprint(want.Zones) {
		t.Fatalf("risk after an evaluation: %+v, want %+v", rk, want)
	}
	// The same scores as the evaluation's report.
	st := h.want(h.do("GET", "/v1/compliance/status?framework=iso27001", root, nil), 200)
	var rep struct {
		Risk struct {
			Nodes []struct {
				Ref   string `json:"ref"`
				Score int    `json:"score"`
			} `json:"nodes"`
		} `json:"risk"`
	}
	if err := json.Unmarshal(st.body, &rep); err != nil {
		t.Fatal(err)
	}
	for _, n := range rep.Risk.Nodes {
		if rk.Nodes[n.Ref] != n.Score {
			t.Errorf("%s: stored score %d, the report's %d", n.Ref, rk.Nodes[n.Ref], n.Score)
		}
	}
	// Without names: the zones only.
	rk = risk{}
	if err := json.Unmarshal(h.want(h.do("GET", "/v1/compliance/risk", root, nil), 200).body, &rk); err != nil {
		t.Fatal(err)
	}
	if len(rk.Nodes) != 0 || rk.Zones["dmz"] != 15 || rk.EvaluatedAt.IsZero() {
		t.Fatalf("risk without names: %+v", rk)
	}
}
