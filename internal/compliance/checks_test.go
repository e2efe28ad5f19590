package compliance

import (
	"fmt"
	"strings"
	"testing"
)

// TestHostAssessmentEveryNode: one node passing does not vouch for the
// others; a node of the scope without a result for the control, never
// assessed or running no check mapped to it, fails the check and is
// named like the failing ones, with evidence of kind node.
func TestHostAssessmentEveryNode(t *testing.T) {
	const ctl = "iso27001:8.17"
	timeSync := AssessmentResult{Check: "time-sync", Title: "Time synchronization runs", Severity: "medium",
		Controls: []string{ctl}, Status: StatusPass, Message: "chrony enabled"}
	other := AssessmentResult{Check: "sshd-permit-root-login", Severity: "high",
		Controls: []string{"iso27001:8.5"}, Status: StatusPass}
	na := timeSync
	na.Status = StatusNotApplicable
	run := func(nodes ...Node) outcome {
		s := newScope(&State{GeneratedAt: tnow(), Nodes: nodes}, ISO27001, "")
		s.control = ctl
		return hostAssessment(s)
	}
	node := func(name string, rs ...AssessmentResult) Node {
		return Node{Name: name, Zone: "z", State: "active", Assessment: rs}
	}
	nodeEvidence := func(o outcome, name string) (Evidence, bool) {
		for _, e := range o.evidence {
			if e.Kind == "node" && e.Ref == name {
				return e, true
			}
		}
		return Evidence{}, false
	}

	if o := run(node("a", timeSync), node("b", timeSync)); o.status != StatusPass {
		t.Errorf("every node passes: %+v", o)
	}
	if o := run(); o.status != StatusNotApplicable {
		t.Errorf("no node: %+v", o)
	}
	if o := run(node("a", na)); o.status != StatusNotApplicable {
		t.Errorf("every result not applicable: %+v", o)
	}

	o := run(node("a", timeSync), node("b", other), node("c"))
	if o.status != StatusFail || o.message != "nodes without a result: b, c" {
		t.Errorf("nodes without a result: %s %q", o.status, o.message)
	}
	if e, ok := nodeEvidence(o, "b"); !ok || e.Detail != "no assessment result for this control" {
		t.Errorf("b (runs no mapped check): %+v in %+v", e, o.evidence)
	}
	if e, ok := nodeEvidence(o, "c"); !ok || e.Detail != "not assessed" {
		t.Errorf("c (not assessed): %+v in %+v", e, o.evidence)
	}
	if _, ok := nodeEvidence(o, "a"); ok {
		t.Errorf("a has a result, yet is listed as a node without one: %+v", o.evidence)
	}

	failing := timeSync
	failing.Status = StatusError
	o = run(node("a", failing), node("b"))
	if want := "failing or erroring checks: a/time-sync; nodes without a result: b"; o.status != StatusFail || o.message != want {
		t.Errorf("both: %s %q, want %q", o.status, o.message, want)
	}

	// The names are capped at MaxListed, the evidence at MaxCheckEvidence.
	nodes := []Node{node("a-pass", timeSync)}
	n := MaxCheckEvidence + 5
	for i := range n {
		nodes = append(nodes, node(fmt.Sprintf("m-%03d", i)))
	}
	o = run(nodes...)
	var want []string
	for i := range MaxListed {
		want = append(want, fmt.Sprintf("m-%03d", i))
	}
	wantMsg := "nodes without a result: " + strings.Join(want, ", ") + fmt.Sprintf(", and %d more", n-MaxListed)
	if o.status != StatusFail || o.message != wantMsg {
		t.Errorf("capped: %s %q, want %q", o.status, o.message, wantMsg)
	}
	if len(o.evidence) != MaxCheckEvidence+1 || o.evidence[MaxCheckEvidence].Kind != "more" {
		t.Errorf("%d evidence items, want %d and one counting the rest", len(o.evidence), MaxCheckEvidence+1)
	}
}

// TestConduitsMTLSDeclared: the MTLS flag is the operator's declaration
// (conduit create --mtls), not an observation, and the check says so in
// what it tests and in every evidence item.
func TestConduitsMTLSDeclared(t *testing.T) {
	d := checkDefs()["conduits-mtls"]
	if !strings.Contains(d.Tests, "declared") {
		t.Errorf("conduits-mtls tests %q, without saying the flag is declared", d.Tests)
	}
	r, err := Evaluate(seededState(t), IEC62443, "")
	if err != nil {
		t.Fatal(err)
	}
	ch := check(t, control(t, r, "SR 3.1"), "conduits-mtls")
	if ch.Status != StatusFail || !strings.Contains(ch.Message, "declared mTLS") || ch.Tests != d.Tests {
		t.Errorf("SR 3.1 conduits-mtls: %+v", ch)
	}
	want := map[string]string{
		"internet->dmz:443/tcp":  "no declared mTLS",
		"dmz->plant:5432/tcp":    "declared mTLS",
		"plant->control:502/tcp": "declared mTLS",
		"corp->control:22/tcp":   "declared mTLS",
	}
	for _, e := range ch.Evidence {
		if e.Kind != "conduit" {
			continue
		}
		if e.Detail != want[e.Ref] {
			t.Errorf("conduit %s: detail %q, want %q", e.Ref, e.Detail, want[e.Ref])
		}
		delete(want, e.Ref)
	}
	if len(want) > 0 {
		t.Errorf("conduits without evidence: %v", want)
	}
}
