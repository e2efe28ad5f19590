package records_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/compliance/records"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/internal/server/servertest"
)

type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

type env struct {
	srv   *server.Server
	clock *clock
	svc   *records.Service
}

func newEnv(t *testing.T) *env {
	srv := servertest.Dev(t)
	c := &clock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	return &env{srv: srv, clock: c, svc: records.New(srv.Core(), c.Now)}
}

// rec is a context carrying a pending audit record, as the API gives a
// change.
func (v *env) rec(action string) context.Context {
	ctx, _ := v.srv.Audit().Pending(context.Background(), auditlog.SystemEntry(v.clock.Now(), "test", action, `System::"warden"`))
	return ctx
}

func TestInventoryStoredOnChangeOnly(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	if _, err := v.svc.Inventory(ctx, "web-1"); !errs.Is(err, errs.NotFound) {
		t.Fatalf("no inventory yet: %v", err)
	}
	put := func(fp string) bool {
		t.Helper()
		inv := json.RawMessage(fmt.Sprintf(`{"fp":%q}`, fp))
		stored, err := v.svc.PutInventory(v.rec("inventory.write"), "web-1", fp, inv,
			records.Summary{OS: "Debian 13", Packages: 3, PatchAgeDays: 4, PatchBasis: "pending_updates"}, json.RawMessage(`{"added":["x 1"]}`))
		if err != nil {
			t.Fatal(err)
		}
		return stored
	}
	if !put("a") {
		t.Fatal("first inventory not stored")
	}
	if put("a") {
		t.Fatal("unchanged inventory stored again")
	}
	for i := range records.HistoryKeep + 5 {
		v.clock.t = v.clock.t.Add(time.Minute)
		if !put(fmt.Sprint("v", i)) {
			t.Fatalf("changed inventory %d not stored", i)
		}
	}
	inv, err := v.svc.Inventory(ctx, "web-1")
	if err != nil || inv.Fingerprint != fmt.Sprint("v", records.HistoryKeep+4) {
		t.Fatalf("latest: %+v %v", inv, err)
	}
	h, err := v.svc.History(ctx, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != records.HistoryKeep || h[0].Fingerprint != inv.Fingerprint {
		t.Fatalf("history: %d entries, newest %q", len(h), h[0].Fingerprint)
	}
	sums, err := v.svc.Summaries(ctx)
	if err != nil || sums["web-1"].PatchAgeDays != 4 || sums["web-1"].Node != "web-1" {
		t.Fatalf("summaries: %+v %v", sums, err)
	}
}

func TestResultsStoredWhenStatusesChangeOrStale(t *testing.T) {
	v := newEnv(t)
	put := func(digest string) (bool, *records.Results) {
		t.Helper()
		stored, prev, err := v.svc.PutResults(v.rec("inventory.write"), "web-1", "linux-baseline", v.clock.Now(), digest, json.RawMessage(`[]`))
		if err != nil {
			t.Fatal(err)
		}
		return stored, prev
	}
	if ok, prev := put("d1"); !ok || prev != nil {
		t.Fatal("first results")
	}
	if ok, prev := put("d1"); ok || prev == nil || prev.Statuses != "d1" {
		t.Fatal("unchanged results stored again")
	}
	if ok, prev := put("d2"); !ok || prev.Statuses != "d1" {
		t.Fatal("changed results not stored")
	}
	v.clock.t = v.clock.t.Add(records.ResultsRefresh)
	if ok, _ := put("d2"); !ok {
		t.Fatal("stale results not refreshed")
	}
	all, err := v.svc.AllResults(context.Background())
	if err != nil || len(all) != 1 || all[0].Statuses != "d2" {
		t.Fatalf("all results: %+v %v", all, err)
	}
}

func TestPoliciesAttestationsControls(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	p, err := v.svc.PutPolicy(v.rec("compliance.write"), "site", "policy: site\n", nil)
	if err != nil || p.Version != 1 {
		t.Fatalf("put: %+v %v", p, err)
	}
	stale := uint64(0)
	if _, err := v.svc.PutPolicy(v.rec("compliance.write"), "site", "policy: site\n", &stale); !errs.Is(err, errs.Conflict) {
		t.Fatalf("cas 0 on an existing policy: %v", err)
	}
	one := uint64(1)
	if p, err = v.svc.PutPolicy(v.rec("compliance.write"), "site", "policy: site\nchecks: []\n", &one); err != nil || p.Version != 2 {
		t.Fatalf("cas 1: %+v %v", p, err)
	}
	if err := v.svc.DeletePolicy(v.rec("compliance.write"), "site"); err != nil {
		t.Fatal(err)
	}
	if ps, _ := v.svc.Policies(ctx); len(ps) != 0 {
		t.Fatalf("after delete: %+v", ps)
	}

	a, err := v.svc.Attest(v.rec("compliance.attest"), records.Attestation{Control: "iso27001:5.24", Owner: `User::"alice"`, Text: "plan", SHA256: "x",
		Expires: v.clock.Now().Add(90 * 24 * time.Hour)})
	if err != nil || a.ID == "" {
		t.Fatalf("attest: %+v %v", a, err)
	}
	as, err := v.svc.Attestations(ctx, "iso27001:5.24")
	if err != nil || len(as) != 1 || as[0].Owner != `User::"alice"` {
		t.Fatalf("attestations: %+v %v", as, err)
	}

	cs, ver, err := v.svc.ControlStates(ctx, "iso27001")
	if err != nil || ver != 0 || len(cs.Statuses) != 0 {
		t.Fatalf("no states yet: %+v %d %v", cs, ver, err)
	}
	cs.Statuses = map[string]string{"8.5": "pass"}
	if err := v.svc.PutControlStates(v.rec("compliance.evaluate"), cs, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.svc.PutControlStates(v.rec("compliance.evaluate"), cs, 0); !errs.Is(err, errs.Conflict) {
		t.Fatalf("a second writer from the same version: %v", err)
	}
}

// TestSummariesOf: only the named nodes' summaries, a node without one
// absent; more than MaxSummaryNames names refused.
func TestSummariesOf(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	for i, node := range []string{"web-1", "web-2", "db-1"} {
		if _, err := v.svc.PutInventory(v.rec("inventory.write"), node, node, json.RawMessage(`{}`),
			records.Summary{AgentVersion: "1.2." + fmt.Sprint(i), PatchAgeDays: i, PatchBasis: "pending_updates"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	got, err := v.svc.SummariesOf(ctx, []string{"db-1", "web-2", "nope"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["db-1"].AgentVersion != "1.2.2" || got["web-2"].PatchAgeDays != 1 || got["web-2"].Node != "web-2" {
		t.Fatalf("summaries of db-1, web-2, nope: %+v", got)
	}
	if got, err := v.svc.SummariesOf(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("no names: %+v %v", got, err)
	}
	many := make([]string, records.MaxSummaryNames+1)
	for i := range many {
		many[i] = fmt.Sprint("n", i)
	}
	if _, err := v.svc.SummariesOf(ctx, many); !errs.Is(err, errs.Invalid) {
		t.Fatalf("%d names: %v", len(many), err)
	}
}

// TestRiskScores: none before an evaluation; the stored scores after; an
// older evaluation does not replace a newer one.
func TestRiskScores(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	if r, ok, err := v.svc.Risk(ctx); err != nil || ok || len(r.Nodes) != 0 {
		t.Fatalf("before any evaluation: %+v %v %v", r, ok, err)
	}
	t1 := v.clock.Now()
	r1 := records.RiskScores{EvaluatedAt: t1, Nodes: map[string]int{"web-1": 12}, Zones: map[string]int{"dmz": 40}}
	if err := v.svc.PutRisk(v.rec("compliance.evaluate"), r1); err != nil {
		t.Fatal(err)
	}
	old := records.RiskScores{EvaluatedAt: t1.Add(-time.Hour), Nodes: map[string]int{"web-1": 99}, Zones: map[string]int{}}
	if err := v.svc.PutRisk(v.rec("compliance.evaluate"), old); err != nil {
		t.Fatal(err)
	}
	r, ok, err := v.svc.Risk(ctx)
	if err != nil || !ok || !r.EvaluatedAt.Equal(t1) || r.Nodes["web-1"] != 12 || r.Zones["dmz"] != 40 {
		t.Fatalf("stored: %+v %v %v", r, ok, err)
	}
}
