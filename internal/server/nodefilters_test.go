package server_test

import (
	"slices"
	"strings"
	"testing"
)

// The filters by node of GET /v1/pki/certs (the console's node page asks
// for one node's, never for the whole fleet's).

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
