package server_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/agent/inventory"
	"github.com/warden-sec/warden/internal/api"
	"github.com/warden-sec/warden/internal/compliance"
	"github.com/warden-sec/warden/internal/compliance/assess"
	"github.com/warden-sec/warden/internal/compliance/signed"
	"github.com/warden-sec/warden/internal/events"
)

// caPool is the cluster CA the server serves (GET /v1/pki/ca).
func (h *harness) caPool() *x509.CertPool {
	h.t.Helper()
	r := h.want(h.do("GET", "/v1/pki/ca", "", nil), 200)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(r.body) {
		h.t.Fatalf("no certificate in the CA bundle: %q", r.body)
	}
	return pool
}

// TestComplianceFromNodes: a node reports its real inventory (this host's
// dpkg database) and the results of the check policy the server signed
// for it, run on a fixture host; both are stored, readable by an operator
// and refused to a token; an unchanged report stores nothing; reports are
// rate-limited per node.
func TestComplianceFromNodes(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.want(h.do("POST", "/v1/zones", root, map[string]any{"name": "plant", "level": 2}), 200)
	n := h.enrollZone(root, "plc-gw", "plant")

	inv, err := inventory.Collect(context.Background(), inventory.Options{Root: "/", AgentVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) == 0 || inv.PackageManager != "dpkg" {
		t.Fatalf("this Debian host's inventory: %d packages by %q", len(inv.Packages), inv.PackageManager)
	}
	r := h.want(h.nodeDo(n, "POST", "/v1/inventory", inv), 200).json(t)
	if r["stored"] != true || r["fingerprint"] != inv.Fingerprint() {
		t.Fatalf("first inventory: %v", r)
	}
	// Within the minute: refused with Retry-After, nothing stored.
	if r := h.nodeDo(n, "POST", "/v1/inventory", inv); r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("second inventory within a minute: %d %s", r.status, r.body)
	}
	h.clk.Add(api.NodeReportInterval)
	if r := h.want(h.nodeDo(n, "POST", "/v1/inventory", inv), 200).json(t); r["stored"] != false {
		t.Fatalf("unchanged inventory: %v", r)
	}
	// A bad inventory: 400 naming the field, nothing stored.
	h.clk.Add(api.NodeReportInterval)
	bad := *inv
	bad.Packages = append([]inventory.Package{{Name: "bad\x01name", Version: "1"}}, inv.Packages...)
	if r := h.nodeDo(n, "POST", "/v1/inventory", bad); r.status != 400 || !strings.Contains(string(r.body), "packages[0].name") {
		t.Fatalf("bad inventory: %d %s", r.status, r.body)
	}
	// A token cannot report for a node.
	h.wantError(h.do("POST", "/v1/inventory", root, inv), 403, "client certificate")

	got := h.want(h.do("GET", "/v1/nodes/plc-gw/inventory", root, nil), 200).json(t)
	stored := got["inventory"].(map[string]any)
	if len(stored["packages"].([]any)) != len(inv.Packages) {
		t.Fatalf("stored %d packages, sent %d", len(stored["packages"].([]any)), len(inv.Packages))
	}
	hist := h.want(h.do("GET", "/v1/nodes/plc-gw/inventory/history", root, nil), 200).json(t)
	if len(hist["changes"].([]any)) != 1 {
		t.Fatalf("history: %v", hist)
	}

	// The check policies, signed for the node.
	b := h.want(h.nodeDo(n, "GET", "/v1/compliance/assessment", nil), 200)
	var bundle api.SignedBundle
	if err := json.Unmarshal(b.body, &bundle); err != nil {
		t.Fatal(err)
	}
	if _, err := signed.Verify(bundle.Payload, bundle.Signature, h.caPool(), signed.ServerSigner); err != nil {
		t.Fatalf("the bundle's signature: %v", err)
	}
	var payload api.BundlePayload
	if err := json.Unmarshal(bundle.Payload, &payload); err != nil {
		t.Fatal(err)
	}
	if len(payload.Policies) != 1 || payload.Policies[0].Name != api.BuiltinPolicyName {
		t.Fatalf("policies: %+v", payload.Policies)
	}
	p, err := assess.Parse(payload.Policies[0].Name, []byte(payload.Policies[0].YAML))
	if err != nil {
		t.Fatal(err)
	}
	fixture, err := filepath.Abs("../compliance/assess/testdata/bad-host")
	if err != nil {
		t.Fatal(err)
	}
	results := assess.Run(context.Background(), p, assess.Env{Root: fixture})
	// Results of a policy the servers do not send, of a check the policy
	// does not have, or dated in the future: refused, naming why.
	ranAt := h.clk.Now().UTC().Format(time.RFC3339)
	for want, body := range map[string]map[string]any{
		"is not a check policy": {"policy": "made-up", "ran_at": ranAt, "results": results},
		"results[0].check":      {"policy": p.Name, "ran_at": ranAt, "results": []assess.Result{{Check: "made-up", Title: "x", Severity: "low", Status: "pass"}}},
		"ran_at":                {"policy": p.Name, "ran_at": h.clk.Now().Add(time.Hour).UTC().Format(time.RFC3339), "results": results},
	} {
		if r := h.nodeDo(n, "POST", "/v1/compliance/results", body); r.status != 400 || !strings.Contains(string(r.body), want) {
			t.Errorf("results refused for %q: %d %s", want, r.status, r.body)
		}
	}
	h.clk.Add(api.NodeReportInterval) // a refused report still used the node's minute
	// A node cannot map a check to other controls: the policy's stand.
	claimed := slices.Clone(results)
	claimed[0].Controls = []string{"iso27001:5.15"}
	body := map[string]any{"policy": p.Name, "ran_at": ranAt, "results": claimed}
	if r := h.want(h.nodeDo(n, "POST", "/v1/compliance/results", body), 200).json(t); r["stored"] != true {
		t.Fatalf("results: %v", r)
	}
	as := h.want(h.do("GET", "/v1/nodes/plc-gw/assessment", root, nil), 200).json(t)
	rs := as["results"].([]any)
	if len(rs) != 1 || len(rs[0].(map[string]any)["results"].([]any)) != len(results) {
		t.Fatalf("assessment read back: %v", as)
	}
	first := rs[0].(map[string]any)["results"].([]any)[0].(map[string]any)
	if fmt.Sprint(first["controls"]) != fmt.Sprint(results[0].Controls) {
		t.Fatalf("stored controls %v, want the policy's %v", first["controls"], results[0].Controls)
	}
	failed := 0
	for _, r := range results {
		if r.Status == assess.StatusFail {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("the bad host fixture failed no check")
	}

	// The evaluation sees both: the node's patch age and failed checks.
	st := h.want(h.do("GET", "/v1/compliance/status?framework=iso27001", root, nil), 200)
	var rep compliance.Report
	if err := json.Unmarshal(st.body, &rep); err != nil {
		t.Fatal(err)
	}
	var risk *compliance.RiskScore
	for i := range rep.Risk.Nodes {
		if rep.Risk.Nodes[i].Ref == "plc-gw" {
			risk = &rep.Risk.Nodes[i]
		}
	}
	if risk == nil || risk.Score == 0 || !hasItem(risk.Items, "check") {
		t.Fatalf("the node's risk: %+v", risk)
	}
}

func hasItem(items []compliance.RiskItem, kind string) bool {
	for _, it := range items {
		if it.Kind == kind {
			return true
		}
	}
	return false
}

// TestCheckPoliciesAndAttestations: a malformed check policy is refused
// naming its line and changes nothing; a good one is stored and sent to
// agents; attestations take manual controls only, with an owner and an
// expiry, and are recorded.
func TestCheckPoliciesAndAttestations(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)

	bad := "policy: site\nchecks:\n  - id: x\n    title: t\n    severity: urgent\n    file_contains: {path: /etc/x, pattern: y}\n"
	r := h.do("PUT", "/v1/compliance/policies/site", root, map[string]string{"yaml": bad})
	if r.status != 400 || !strings.Contains(string(r.body), "site:5") {
		t.Fatalf("bad policy: %d %s", r.status, r.body)
	}
	good := "policy: site\nchecks:\n  - id: motd\n    title: a login banner exists\n    severity: low\n    controls: [\"iso27001:5.15\"]\n    file_contains: {path: /etc/motd, pattern: 'Authorized'}\n"
	if r := h.do("PUT", "/v1/compliance/policies/other", root, map[string]string{"yaml": good}); r.status != 400 {
		t.Fatalf("a policy under another name: %d %s", r.status, r.body)
	}
	h.want(h.do("PUT", "/v1/compliance/policies/site", root, map[string]string{"yaml": good}), 200)
	ls := h.want(h.do("GET", "/v1/compliance/policies", root, nil), 200).json(t)
	if ps := ls["policies"].([]any); len(ps) != 2 {
		t.Fatalf("policies: %v", ls)
	}

	for body, want := range map[string]string{
		`{"control":"iso27001:8.5","text":"x","expires":"90d"}`:    "checked automatically",
		`{"control":"iso27001:99.1","text":"x","expires":"90d"}`:   "not a control",
		`{"control":"iso27001:5.24","text":"","expires":"90d"}`:    "text",
		`{"control":"iso27001:5.24","text":"x","expires":"-1d"}`:   "expires",
		`{"control":"iso27001:5.24","text":"x","expires":"5000d"}`: "3 years",
	} {
		r := h.do("POST", "/v1/compliance/attestations", root, body)
		if r.status != 400 || !strings.Contains(string(r.body), want) {
			t.Errorf("%s: %d %s, want 400 naming %q", body, r.status, r.body, want)
		}
	}
	manual := ""
	var before compliance.Report
	if err := json.Unmarshal(h.want(h.do("GET", "/v1/compliance/status?framework=iso27001", root, nil), 200).body, &before); err != nil {
		t.Fatal(err)
	}
	for _, c := range before.Controls {
		if c.Manual && c.Status == "manual" {
			manual = compliance.Qualified(compliance.ISO27001, c.ID)
			break
		}
	}
	if manual == "" {
		t.Fatal("no ISO control waits for an attestation")
	}
	size0, err := h.srv.Audit().Size()
	if err != nil {
		t.Fatal(err)
	}
	a := h.want(h.do("POST", "/v1/compliance/attestations", root, map[string]string{"control": manual, "text": "incident plan v3, tested 2026-11", "expires": "90d"}), 200).json(t)
	recorded := false
	for _, e := range h.entriesSince(size0) {
		recorded = recorded || (e.Action == "compliance.attest" && e.Hashes["attestation"] == "sha256:"+a["sha256"].(string))
	}
	if !recorded {
		t.Fatal("no audit record carries the attestation's SHA-256")
	}
	if a["owner"] != `Root::"root"` || a["sha256"] == "" {
		t.Fatalf("attestation: %v", a)
	}
	st := h.want(h.do("GET", "/v1/compliance/status?framework=iso27001", root, nil), 200)
	var rep compliance.Report
	if err := json.Unmarshal(st.body, &rep); err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Controls {
		if compliance.Qualified(compliance.ISO27001, c.ID) == manual && c.Status != "attested" {
			t.Fatalf("%s: %s after its attestation", manual, c.Status)
		}
	}
	// Withdrawn, the control waits for an attestation again.
	h.want(h.do("DELETE", "/v1/compliance/attestations/"+a["id"].(string), root, nil), 204)
	h.want(h.do("DELETE", "/v1/compliance/attestations/"+a["id"].(string), root, nil), 404)
	var after compliance.Report
	if err := json.Unmarshal(h.want(h.do("GET", "/v1/compliance/status?framework=iso27001", root, nil), 200).body, &after); err != nil {
		t.Fatal(err)
	}
	for _, c := range after.Controls {
		if compliance.Qualified(compliance.ISO27001, c.ID) == manual && c.Status != "manual" {
			t.Fatalf("%s: %s after its attestation was withdrawn", manual, c.Status)
		}
	}
	// An unknown zone is 404, a bad framework 400.
	h.want(h.do("GET", "/v1/compliance/status?framework=iso27001&zone=nowhere", root, nil), 404)
	h.want(h.do("GET", "/v1/compliance/status?framework=pci", root, nil), 400)
}

// TestComplianceReportSigned: a report is signed by the server, verifies
// offline against the CA with every inclusion proof, carries the
// attestation's audit record as evidence, and its SHA-256 is in the
// request's audit record; HTML embeds the same signed document; a changed
// byte fails verification.
func TestComplianceReportSigned(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.want(h.do("POST", "/v1/zones", root, map[string]any{"name": "plant", "level": 3}), 200)
	h.want(h.do("POST", "/v1/zones", root, map[string]any{"name": "office", "level": 1}), 200)
	h.want(h.do("POST", "/v1/conduits", root, map[string]any{"from": "office", "to": "plant", "port": 4840, "mtls": true}), 200)
	size0, err := h.srv.Audit().Size()
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"json", "html"} {
		r := h.want(h.do("POST", "/v1/compliance/reports", root, map[string]string{"framework": "iec62443-3-3", "format": format}), 200)
		rep, steps, err := compliance.VerifyDocument(r.body, h.caPool())
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if len(rep.Zones) != 2 || len(steps) == 0 {
			t.Fatalf("%s: %d zones, steps %v", format, len(rep.Zones), steps)
		}
		if len(rep.Evidence) == 0 {
			t.Fatalf("%s: no audit records as evidence", format)
		}
		if format == "html" && !strings.Contains(r.header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Fatalf("html CSP: %q", r.header.Get("Content-Security-Policy"))
		}
		sum := sha256.Sum256(r.body)
		found := false
		var seen []string
		for _, e := range h.entriesSince(size0) {
			if e.Action == "compliance.read" && e.Hashes["report"] == "sha256:"+hex.EncodeToString(sum[:]) {
				found = true
			}
			seen = append(seen, e.Action+" "+e.Hashes["report"])
		}
		if !found {
			t.Fatalf("%s: no audit record carries the report's hash sha256:%x; records: %q", format, sum, seen)
		}
		// One changed byte in the document.
		i := strings.Index(string(r.body), `"plant"`)
		tampered := []byte(strings.Replace(string(r.body), `"plant"`, `"plank"`, 1))
		if i < 0 {
			t.Fatalf("%s: no zone name in the report", format)
		}
		if _, _, err := compliance.VerifyDocument(tampered, h.caPool()); err == nil {
			t.Fatalf("%s: a changed report verified", format)
		}
	}
	for _, body := range []string{`{"framework":"pci"}`, `{"framework":"iso27001","format":"pdf"}`, `{"framework":"iso27001","zone":"Plant"}`} {
		if r := h.do("POST", "/v1/compliance/reports", root, body); r.status != 400 {
			t.Errorf("%s: %d %s", body, r.status, r.body)
		}
	}
}

// waitAnyServerEvent waits for a server event with action whose field
// key is value.
func waitAnyServerEvent(t *testing.T, p *events.Plane, action, key, value string) events.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, b := range storedBatches(t, p) {
			for _, ev := range b.Events {
				if ev.String("event.action") == action && ev.String(key) == value {
					return ev
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s server event with %s %s", action, key, value)
		}
		time.Sleep(100 * time.Millisecond) // polling the stream, bounded by the deadline
	}
}

// TestComplianceRegressionAlerts: a control that passed at the last
// evaluation and fails now is a compliance_regression server event, which
// the built-in rule warden_compliance_regression matches at level high;
// a host check that went from pass to fail is an assessment_changed event
// matched by warden_assessment_regression.
func TestComplianceRegressionAlerts(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	p := waitPlane(t, h.srv)
	ctx := context.Background()

	// ISO 27001 5.15 passes while an explicit policy grants access.
	h.want(h.writePolicy(root, "warden", "ops", `permit (principal in Group::"ops", action == Action::"node.read", resource);`), 200)
	if err := h.srv.EvaluateCompliance(ctx); err != nil {
		t.Fatal(err)
	}
	h.want(h.do("DELETE", "/v1/authz/stores/warden/policies/ops", root, nil), 204)
	if err := h.srv.EvaluateCompliance(ctx); err != nil {
		t.Fatal(err)
	}
	ev := waitAnyServerEvent(t, p, events.ActionComplianceRegression, "warden.control", "5.15")
	if ev.String("warden.framework") != "iso27001" {
		t.Fatalf("regression event %v", ev)
	}
	if m := builtinMatches(t, ev); len(m) != 1 || m[0].Name != "warden_compliance_regression" || m[0].Level != "high" {
		t.Fatalf("the event matches %v", m)
	}

	// A host check that regresses.
	n := h.enrollZone(root, "gw-1", "")
	pass := assess.Result{Check: "time-sync", Title: "t", Severity: "medium", Controls: []string{"iso27001:8.17"}, Status: assess.StatusPass}
	post := func(r assess.Result) {
		t.Helper()
		body := map[string]any{"policy": "linux-baseline", "ran_at": h.clk.Now().UTC().Format(time.RFC3339), "results": []assess.Result{r}}
		h.want(h.nodeDo(n, "POST", "/v1/compliance/results", body), 200)
		h.clk.Add(api.NodeReportInterval)
	}
	post(pass)
	failed := pass
	failed.Status, failed.Message = assess.StatusFail, "no time service enabled"
	post(failed)
	ev = waitAnyServerEvent(t, p, events.ActionAssessmentChanged, "warden.check", "time-sync")
	if ev.String("warden.node") != "gw-1" || ev.String("warden.previous_status") != "pass" || ev.String("warden.status") != "fail" {
		t.Fatalf("assessment event %v", ev)
	}
	if m := builtinMatches(t, ev); len(m) != 1 || m[0].Name != "warden_assessment_regression" {
		t.Fatalf("the event matches %v", m)
	}
}

// TestComplianceSummary: before the leader's first evaluation the summary
// has no counts and no changed_at; after one, each framework's counts are
// those of a live evaluation of the same state.
func TestComplianceSummary(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	type fwSummary struct {
		Framework string             `json:"framework"`
		ChangedAt *time.Time         `json:"changed_at"`
		Summary   compliance.Summary `json:"summary"`
	}
	summary := func() map[string]fwSummary {
		t.Helper()
		var out struct {
			Frameworks []fwSummary `json:"frameworks"`
		}
		if err := json.Unmarshal(h.want(h.do("GET", "/v1/compliance/summary", root, nil), 200).body, &out); err != nil {
			t.Fatal(err)
		}
		m := map[string]fwSummary{}
		for _, f := range out.Frameworks {
			m[f.Framework] = f
		}
		if len(m) != 2 {
			t.Fatalf("summary of %d frameworks: %+v", len(m), out)
		}
		return m
	}
	for fw, s := range summary() {
		if s.ChangedAt != nil || s.Summary != (compliance.Summary{}) {
			t.Fatalf("%s before any evaluation: %+v", fw, s)
		}
	}
	h.want(h.do("GET", "/v1/compliance/summary?framework=iso27001", root, nil), 400)
	h.want(h.do("GET", "/v1/compliance/evaluations/iso27001", root, nil), 404)
	h.want(h.do("GET", "/v1/compliance/evaluations/soc2", root, nil), 400)
	if err := h.srv.EvaluateCompliance(context.Background()); err != nil {
		t.Fatal(err)
	}
	for fw, s := range summary() {
		var live compliance.Report
		if err := json.Unmarshal(h.want(h.do("GET", "/v1/compliance/status?framework="+fw, root, nil), 200).body, &live); err != nil {
			t.Fatal(err)
		}
		if s.ChangedAt == nil || s.Summary != live.Summary || s.Summary.Controls == 0 {
			t.Fatalf("%s: summary %+v, live evaluation %+v", fw, s, live.Summary)
		}
		var last compliance.Report
		if err := json.Unmarshal(h.want(h.do("GET", "/v1/compliance/evaluations/"+fw, root, nil), 200).body, &last); err != nil {
			t.Fatal(err)
		}
		if last.Summary != live.Summary || len(last.Controls) != len(live.Controls) || last.Evidence != nil || len(last.Risk.Nodes) > 20 {
			t.Fatalf("%s: the stored evaluation %+v (%d controls, %d evidence records, %d nodes' risk), live %+v",
				fw, last.Summary, len(last.Controls), len(last.Evidence), len(last.Risk.Nodes), live.Summary)
		}
	}
}
