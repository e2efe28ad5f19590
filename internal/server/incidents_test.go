package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/respond"
	"github.com/warden-sec/warden/pkg/client"
)

// TestIncidentReportRoundTrip runs an incident through a real server:
// created by hand with an alert, commented, triaged and assigned, a
// decision attached by the server (as the playbook responder does), then
// its report, JSON and Markdown, verifies against the audit log's verifier
// key; one byte changed anywhere fails, and so does another key. Bad input
// is 400 naming the field, and commits nothing but its record.
func TestIncidentReportRoundTrip(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	inc := h.want(h.do("POST", "/v1/incidents", root, map[string]any{
		"title": "SSH brute force on web-1", "severity": "high", "alerts": []string{"0123456789abcdef0123456789abcdef"},
	}), 200).json(t)
	id := inc["id"].(string)
	if inc["status"] != "new" || len(inc["timeline"].([]any)) != 2 {
		t.Fatalf("created %v", inc)
	}
	h.want(h.do("POST", "/v1/incidents/"+id+"/comments", root, map[string]string{"comment": "looking"}), 200)
	up := h.want(h.do("POST", "/v1/incidents/"+id, root, map[string]string{"status": "triaged", "assignee": "alice", "comment": "real"}), 200).json(t)
	if up["status"] != "triaged" || up["assignee"] != "alice" {
		t.Fatalf("updated %v", up)
	}
	if _, err := h.srv.Incidents().Record(context.Background(), respond.Attach{IncidentID: id, DecisionID: "dec-3f9a0c1b2e4d5f67"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path  string
		body  any
		field string
	}{
		{"/v1/incidents", map[string]string{"severity": "high"}, "title"},
		{"/v1/incidents", map[string]string{"title": "t", "severity": "urgent"}, "severity"},
		{"/v1/incidents", map[string]string{"title": "t", "colour": "red"}, "colour"},
		{"/v1/incidents/" + id, map[string]string{"status": "done"}, "status"},
		{"/v1/incidents/inc-nothex", map[string]string{"status": "new"}, "incident id"},
	} {
		r := h.want(h.do("POST", tc.path, root, tc.body), 400)
		if !strings.Contains(r.errorText(t), tc.field) {
			t.Errorf("POST %s %v: %q does not name %s", tc.path, tc.body, r.errorText(t), tc.field)
		}
	}
	list := h.want(h.do("GET", "/v1/incidents?status=triaged", root, nil), 200).json(t)
	if n := len(list["incidents"].([]any)); n != 1 {
		t.Fatalf("%d triaged incidents, want 1", n)
	}
	h.want(h.do("GET", "/v1/incidents?severity=urgent", root, nil), 400)

	ver := h.want(h.do("GET", "/v1/audit/verifier", root, nil), 200).json(t)
	vkey := ver["verifier_key"].(string)
	js := h.want(h.do("GET", "/v1/incidents/"+id+"/report", root, nil), 200)
	if ct := js.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	v, err := respond.VerifyReport(js.body, vkey)
	if err != nil {
		t.Fatalf("%v\n%s", err, js.body)
	}
	if v.Incident != id || v.Items != 6 {
		t.Fatalf("verified %+v", v)
	}
	var rep respond.Report
	if err := json.Unmarshal(js.body, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Incident.Timeline[5].Actor != `Server::"`+h.srv.Store().NodeID()+`"` || rep.Incident.Decisions[0] != "dec-3f9a0c1b2e4d5f67" {
		t.Fatalf("the server's item: %+v", rep.Incident.Timeline[5])
	}
	md := h.want(h.do("GET", "/v1/incidents/"+id+"/report?format=md", root, nil), 200)
	if _, err := respond.VerifyReport(md.body, vkey); err != nil {
		t.Fatalf("markdown: %v\n%s", err, md.body)
	}
	h.want(h.do("GET", "/v1/incidents/"+id+"/report?format=pdf", root, nil), 400)
	for _, doc := range [][]byte{js.body, md.body} {
		for _, pos := range []int{0, 1, len(doc) / 7, len(doc) / 3, len(doc) / 2, 2 * len(doc) / 3, len(doc) - 40, len(doc) - 2, len(doc) - 1} {
			b := bytes.Clone(doc)
			b[pos] ^= 0x04
			if _, err := respond.VerifyReport(b, vkey); err == nil {
				t.Errorf("byte %d changed (%q): the report still verifies", pos, doc[pos])
			}
		}
	}
	other := h2vkey(t)
	if _, err := respond.VerifyReport(js.body, other); err == nil || !strings.Contains(err.Error(), "checkpoint") {
		t.Fatalf("another log's key: %v", err)
	}
}

// h2vkey is the verifier key of another cluster's audit log.
func h2vkey(t *testing.T) string {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	return h.want(h.do("GET", "/v1/audit/verifier", root, nil), 200).json(t)["verifier_key"].(string)
}

// TestIncidentReportFromFollowers: in a three-node cluster, changes made
// through followers (forwarded to the leader) and by the leader's own
// service land in one timeline, and a follower writes a report of it
// that verifies with the cluster's key (it waits until it has applied the
// items' commands before it looks for their records).
func TestIncidentReportFromFollowers(t *testing.T) {
	nodes, root, _ := startCluster(t, time.Hour)
	ctx := context.Background()
	c2, c3 := nodes[1].client(root), nodes[2].client(root)
	inc, err := c2.IncidentCreate(ctx, client.IncidentCreate{Title: "lateral movement", Severity: "critical"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c3.IncidentComment(ctx, inc.ID, "from the third node"); err != nil {
		t.Fatal(err)
	}
	var leader *clusterNode
	for _, n := range nodes {
		if n.srv.Store().IsLeader() {
			leader = n
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	if _, err := leader.srv.Incidents().Record(ctx, respond.Attach{IncidentID: inc.ID, AlertID: "fedcba9876543210fedcba9876543210", Host: "db-1"}); err != nil {
		t.Fatal(err)
	}
	v, err := c2.AuditVerifierKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Client{c2, c3} {
		b, err := c.IncidentReport(ctx, inc.ID, "json")
		if err != nil {
			t.Fatal(err)
		}
		got, err := respond.VerifyReport(b, v.VerifierKey)
		if err != nil {
			t.Fatalf("%s: %v", c.Address(), err)
		}
		if got.Items != 3 {
			t.Fatalf("%s: %+v", c.Address(), got)
		}
	}
}
