package server_test

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// The filters by node of GET /v1/pki/certs and GET /v1/decisions (the
// console's node page asks for one node's, never for the whole fleet's).

// badNodeQueries are values of ?node= refused with 400 naming node.
var badNodeQueries = []string{
	"node=",
	"node=Web-1",            // canonical-able, not canonical
	"node=w%D0%B5b-1",       // a Cyrillic е
	"node=web_1",            // not a name
	"node=web-1&node=web-2", // given twice
	"node=" + strings.Repeat("a", 300),
}

// TestCertListByNode: ?node=NAME lists that node's certificates only, with
// the state filters as before; an unknown node is 404, a bad name 400.
func TestCertListByNode(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	a := h.enrollWith(root, "web-1", []string{"192.0.2.10"})
	b := h.enroll(root, "web-2", "1h")
	// A second certificate for web-1.
	r := h.nodeDo(a, "POST", "/v1/pki/renew", map[string]any{"csr": csrFor(t, a.key)})
	if r.status != 200 {
		t.Fatalf("renew: %d %s", r.status, r.body)
	}
	renewed := r.json(t)["serial"]
	h.want(h.do("POST", "/v1/nodes/web-2/revoke", root, nil), 204)

	serials := func(query string) []string {
		t.Helper()
		var out []string
		for _, c := range h.want(h.do("GET", "/v1/pki/certs?"+query, root, nil), 200).json(t)["certificates"].([]any) {
			out = append(out, c.(map[string]any)["serial"].(string))
		}
		slices.Sort(out)
		return out
	}
	sorted := func(s ...string) []string { slices.Sort(s); return s }
	web1 := sorted(serialHex(a.leaf), renewed.(string))
	cases := []struct {
		query string
		want  []string
	}{
		{"", sorted(append(web1, serialHex(b.leaf))...)},
		{"node=web-1", web1},
		{"node=web-1&state=issued", web1},
		{"node=web-1&state=expiring&within=2h", web1},
		{"node=web-1&state=expiring&within=1m", nil},
		{"node=web-1&state=revoked", nil},
		{"node=web-2", []string{serialHex(b.leaf)}},
		{"node=web-2&state=revoked", []string{serialHex(b.leaf)}},
		{"node=web-2&state=expiring", nil},
		{"state=revoked", []string{serialHex(b.leaf)}},
	}
	for _, c := range cases {
		if got := serials(c.query); !slices.Equal(got, c.want) {
			t.Errorf("?%s: %v, want %v", c.query, got, c.want)
		}
	}
	for _, c := range h.want(h.do("GET", "/v1/pki/certs?node=web-1", root, nil), 200).json(t)["certificates"].([]any) {
		if m := c.(map[string]any); m["name"] != "web-1" || m["state"] != "valid" {
			t.Errorf("web-1's certificate: %v", m)
		}
	}
	// A pending node has none; an unknown one is not found.
	h.want(h.do("POST", "/v1/nodes/tokens", root, map[string]any{"name": "db-1"}), 200)
	if got := serials("node=db-1"); len(got) != 0 {
		t.Errorf("pending node: %v", got)
	}
	if e := h.want(h.do("GET", "/v1/pki/certs?node=nope", root, nil), 404).errorText(t); !strings.Contains(e, `"nope"`) {
		t.Errorf("unknown node: %s", e)
	}
	for _, q := range append(badNodeQueries, "node=web-1&state=bogus", "node=web-1&within=1h") {
		r := h.want(h.do("GET", "/v1/pki/certs?"+q, root, nil), 400)
		field := "node"
		if strings.Contains(q, "state=") {
			field = "state"
		} else if strings.Contains(q, "within=") {
			field = "within"
		}
		if e := r.errorText(t); !strings.HasPrefix(e, field+":") {
			t.Errorf("?%s: %q does not name %s", q, e, field)
		}
	}
}

// TestDecisionListByNode: ?node=NAME lists the decisions about the node:
// its quarantine, and the bans of one of its reported addresses, exactly or
// in a range; not those of other nodes or addresses; ?active=true as
// before. The filter reads the node, so it needs node.read on it.
func TestDecisionListByNode(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.enrollWith(root, "web-1", []string{"::ffff:192.0.2.10", "2001:db8::10"})
	h.enrollWith(root, "web-2", []string{"198.51.100.20"})
	third := h.enrollWith(root, "web-3", []string{"203.0.113.30"})

	add := func(body map[string]any) string {
		t.Helper()
		if body["duration"] == nil {
			body["duration"] = "4h"
		}
		return h.want(h.do("POST", "/v1/decisions", root, body), 200).json(t)["id"].(string)
	}
	quarantine := add(map[string]any{"type": "quarantine", "target": map[string]any{"node": "web-1"}})
	exact := add(map[string]any{"type": "ban", "target": map[string]any{"ip": "192.0.2.10"}})
	mapped := add(map[string]any{"type": "ban", "target": map[string]any{"ip": "::ffff:192.0.2.10"}})
	rng := add(map[string]any{"type": "ban", "target": map[string]any{"cidr": "192.0.2.0/24"}})
	rng6 := add(map[string]any{"type": "ban", "target": map[string]any{"cidr": "2001:db8::/64"}})
	short := add(map[string]any{"type": "ban", "target": map[string]any{"cidr": "192.0.2.0/28"}, "duration": "10m"})
	lifted := add(map[string]any{"type": "ban", "target": map[string]any{"ip": "2001:db8::10"}})
	h.want(h.do("DELETE", "/v1/decisions/"+lifted, root, nil), 204)
	// Not about web-1.
	otherQ := add(map[string]any{"type": "quarantine", "target": map[string]any{"node": "web-2"}})
	otherBan := add(map[string]any{"type": "ban", "target": map[string]any{"ip": "198.51.100.20"}})
	add(map[string]any{"type": "ban", "target": map[string]any{"ip": "192.0.2.11"}})
	add(map[string]any{"type": "ban", "target": map[string]any{"cidr": "192.0.2.16/28"}})
	add(map[string]any{"type": "ban", "target": map[string]any{"cidr": "2001:db8:1::/48"}})
	add(map[string]any{"type": "ban", "target": map[string]any{"user": "web-1"}})
	h.clk.Add(30 * time.Minute) // the short ban has expired

	sorted := func(s ...string) []string { slices.Sort(s); return s }
	cases := []struct {
		query string
		want  []string
	}{
		{"node=web-1", sorted(quarantine, exact, mapped, rng, rng6, short)},
		{"node=web-1&active=false", sorted(quarantine, exact, mapped, rng, rng6, short)},
		{"node=web-1&active=true", sorted(quarantine, exact, mapped, rng, rng6)},
		{"active=true&node=web-2", sorted(otherQ, otherBan)},
		{"node=web-3", nil},
	}
	for _, c := range cases {
		if got := decisionIDs(h, root, c.query); !slices.Equal(got, c.want) {
			t.Errorf("?%s: %v, want %v", c.query, got, c.want)
		}
	}
	// Newest first, as without the filter.
	ds := h.listDecisions(root, "?node=web-1")
	for i := 1; i < len(ds); i++ {
		if ds[i-1].CreatedTime < ds[i].CreatedTime {
			t.Errorf("not newest first: %s before %s", ds[i-1].CreatedTime, ds[i].CreatedTime)
		}
	}
	if len(h.listDecisions(root, "")) != 12 {
		t.Errorf("unfiltered: want every stored decision")
	}

	if e := h.want(h.do("GET", "/v1/decisions?node=nope", root, nil), 404).errorText(t); !strings.Contains(e, `"nope"`) {
		t.Errorf("unknown node: %s", e)
	}
	for _, q := range append(badNodeQueries, "node=web-1&active=yes") {
		e := h.want(h.do("GET", "/v1/decisions?"+q, root, nil), 400).errorText(t)
		field := "node:"
		if strings.Contains(q, "active=") {
			field = "active:"
		}
		if !strings.HasPrefix(e, field) {
			t.Errorf("?%s: %q does not name %s", q, e, field)
		}
	}

	// decisions.read alone lists decisions, but not a node's: that reads
	// the node (node.read on it), and says which permission is missing
	// before saying whether the node exists.
	h.want(h.writePolicy(root, "warden", "decisions-readers",
		`permit (principal in Group::"soc", action == Action::"decisions.read", resource);`), 200)
	soc := h.token(root, "ana", "soc")
	h.want(h.do("GET", "/v1/decisions", soc, nil), 200)
	for _, n := range []string{"web-1", "nope"} {
		e := h.want(h.do("GET", "/v1/decisions?node="+url.QueryEscape(n), soc, nil), 403).errorText(t)
		if !strings.Contains(e, `node.read on Node::"`+n+`"`) {
			t.Errorf("without node.read: %s", e)
		}
	}
	h.want(h.writePolicy(root, "warden", "node-readers",
		`permit (principal in Group::"soc", action == Action::"node.read", resource == Node::"web-1");`), 200)
	if got := decisionIDs(h, soc, "node=web-1&active=true"); !slices.Equal(got, sorted(quarantine, exact, mapped, rng, rng6)) {
		t.Errorf("with node.read: %v", got)
	}
	h.want(h.do("GET", "/v1/decisions?node=web-2", soc, nil), 403)
	// A node follows every decision (decisions.read) but reads no other
	// node's record.
	if r := h.nodeDo(third, "GET", "/v1/decisions?node=web-1", nil); r.status != 403 || !strings.Contains(r.errorText(t), "node.read") {
		t.Errorf("a node asking for another's decisions: %d %s", r.status, r.body)
	}
}

// decisionIDs lists the ids of GET /v1/decisions?query with token, sorted.
func decisionIDs(h *harness, token, query string) []string {
	h.t.Helper()
	var out []string
	for _, d := range h.listDecisions(token, "?"+query) {
		out = append(out, d.ID)
	}
	slices.Sort(out)
	return out
}
