package server_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/api"
	"github.com/warden-sec/warden/internal/pki"
	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/pkg/client"
)

func decodeDecision(t testing.TB, b []byte) client.DecisionRecord {
	t.Helper()
	var d client.DecisionRecord
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("not a decision: %q: %v", b, err)
	}
	return d
}

func (h *harness) listDecisions(root, query string) []client.DecisionRecord {
	h.t.Helper()
	var out struct {
		Decisions []client.DecisionRecord `json:"decisions"`
	}
	if err := json.Unmarshal(h.want(h.do("GET", "/v1/decisions"+query, root, nil), 200).body, &out); err != nil {
		h.t.Fatal(err)
	}
	return out.Decisions
}

// openDecisionStream opens GET /v1/decisions/stream?since=since with cl
// (and the token, if any) and sends its events on a channel until the
// test ends.
func openDecisionStream(t *testing.T, h *harness, cl *http.Client, token string, since uint64) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", h.srv.Addr()+"/v1/decisions/stream?since="+strconv.FormatUint(since, 10), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d", res.StatusCode)
	}
	return readSSE(ctx, res)
}

// readSSE sends the server-sent events of res on a channel, closed when
// the stream ends, until ctx ends.
func readSSE(ctx context.Context, res *http.Response) <-chan sseEvent {
	ch := make(chan sseEvent, 64)
	go func() {
		defer res.Body.Close()
		defer close(ch)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 1<<20)
		var ev sseEvent
		for sc.Scan() {
			l := sc.Text()
			switch {
			case l == "":
				if ev.event != "" {
					select {
					case ch <- ev:
					case <-ctx.Done():
						return
					}
				}
				ev = sseEvent{}
			case strings.HasPrefix(l, "event: "):
				ev.event = l[len("event: "):]
			case strings.HasPrefix(l, "id: "):
				ev.id = l[len("id: "):]
			case strings.HasPrefix(l, "data: "):
				ev.data = l[len("data: "):]
			}
		}
	}()
	return ch
}

// next returns the stream's next event (the deadline only guards against
// a test that would otherwise hang).
func next(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no event")
	}
	return sseEvent{}
}

// untilSync reads events up to the next sync, returning those before it
// and the sync's revision.
func untilSync(t *testing.T, ch <-chan sseEvent) ([]sseEvent, uint64) {
	t.Helper()
	var out []sseEvent
	for {
		ev := next(t, ch)
		if ev.event == "sync" {
			rev, err := strconv.ParseUint(ev.id, 10, 64)
			if err != nil {
				t.Fatalf("sync id %q", ev.id)
			}
			return out, rev
		}
		out = append(out, ev)
	}
}

// untilDecision reads events until the decision id (or its tombstone).
func untilDecision(t *testing.T, ch <-chan sseEvent, id string) client.DecisionRecord {
	t.Helper()
	for {
		ev := next(t, ch)
		if ev.event == "decision" {
			if d := decodeDecision(t, []byte(ev.data)); d.ID == id {
				return d
			}
		}
	}
}

// TestDecisionsAPI: adding, listing, showing and deleting decisions; bad
// input is a 400 naming the field and stores nothing; the never-block
// list and the server's own address are refused with 409 naming what they
// hit; repeat offenders are banned longer.
func TestDecisionsAPI(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) { c.EscalationMax = 3 * time.Hour })
	_, root := h.initUnseal(1, 1)

	d := decodeDecision(t, h.want(h.do("POST", "/v1/decisions", root, map[string]any{"type": "ban",
		"target": map[string]string{"ip": "::ffff:203.0.113.7"}, "duration": "4h", "reason": "ssh brute force"}), 200).body)
	if d.Target.IP != "203.0.113.7" || !strings.HasPrefix(d.ID, "dec-") || len(d.ID) != 20 || d.Revision == 0 ||
		d.Origin != "manual" || d.CreatedBy != `Root::"root"` || d.Duration != "4h0m0s" || d.Escalation != 0 {
		t.Fatalf("decision: %+v", d)
	}
	if exp, _ := time.Parse(time.RFC3339Nano, d.ExpiresAt); !exp.Equal(h.clk.Now().Add(4 * time.Hour).Truncate(time.Nanosecond)) {
		t.Fatalf("expires_at %s", d.ExpiresAt)
	}

	for _, c := range []struct {
		name  string
		body  any
		field string
	}{
		{"bad ip", `{"type":"ban","target":{"ip":"203.0.113.300"},"duration":"1h"}`, "target.ip"},
		{"zoned ip", `{"type":"ban","target":{"ip":"fe80::1%eth0"},"duration":"1h"}`, "target.ip"},
		{"slash 0", `{"type":"ban","target":{"cidr":"0.0.0.0/0"},"duration":"1h"}`, "target.cidr"},
		{"too wide", `{"type":"ban","target":{"cidr":"10.0.0.0/8"},"duration":"1h"}`, "target.cidr"},
		{"too wide v6", `{"type":"ban","target":{"cidr":"2001:db8::/32"},"duration":"1h"}`, "target.cidr"},
		{"zero duration", `{"type":"ban","target":{"ip":"203.0.113.8"},"duration":"0s"}`, "duration"},
		{"negative duration", `{"type":"ban","target":{"ip":"203.0.113.8"},"duration":"-4h"}`, "duration"},
		{"unknown node", `{"type":"quarantine","target":{"node":"web-9"},"duration":"1h"}`, "target.node"},
		{"unknown field", `{"type":"ban","target":{"ip":"203.0.113.8"},"duration":"1h","ttl":"1h"}`, ""},
		{"unknown target field", `{"type":"ban","target":{"host":"x"},"duration":"1h"}`, ""},
	} {
		r := h.want(h.do("POST", "/v1/decisions", root, c.body), 400)
		if msg := r.errorText(t); !strings.Contains(msg, c.field) {
			t.Errorf("%s: %q does not name %s", c.name, msg, c.field)
		}
	}
	if ds := h.listDecisions(root, ""); len(ds) != 1 {
		t.Fatalf("bad input stored something: %+v", ds)
	}

	// The server's own address.
	msg := h.want(h.do("POST", "/v1/decisions", root, map[string]any{"type": "ban",
		"target": map[string]string{"ip": "127.0.0.1"}, "duration": "1h"}), 409).errorText(t)
	if !strings.Contains(msg, "127.0.0.1 hits the address of server") {
		t.Fatalf("server address: %q", msg)
	}
	// The never-block list: a range overlapping an entry is refused,
	// naming it; once the entry is deleted, the ban is taken.
	e := h.want(h.do("POST", "/v1/decisions/allow", root, map[string]string{"cidr": "10.0.0.7/8", "reason": "office"}), 200).json(t)
	if e["cidr"] != "10.0.0.0/8" || !strings.HasPrefix(e["id"].(string), "allow-") {
		t.Fatalf("allow entry: %v", e)
	}
	for _, target := range []map[string]string{{"ip": "10.1.2.3"}, {"cidr": "10.5.0.0/16"}, {"ip": "::ffff:10.9.9.9"}} {
		msg := h.want(h.do("POST", "/v1/decisions", root, map[string]any{"type": "ban", "target": target, "duration": "1h"}), 409).errorText(t)
		if !strings.Contains(msg, e["id"].(string)) || !strings.Contains(msg, "10.0.0.0/8") || !strings.Contains(msg, `"office"`) {
			t.Fatalf("never-block refusal %q does not name the entry", msg)
		}
	}
	h.want(h.do("POST", "/v1/decisions/allow", root, map[string]string{"cidr": "0.0.0.0/0"}), 400)
	h.want(h.do("POST", "/v1/decisions/allow", root, map[string]string{"cidr": "10.0.0.0/8", "node": "web-1"}), 400)
	if l := h.want(h.do("GET", "/v1/decisions/allow", root, nil), 200).json(t)["entries"].([]any); len(l) != 1 {
		t.Fatalf("allow list: %v", l)
	}
	h.want(h.do("DELETE", "/v1/decisions/allow/"+e["id"].(string), root, nil), 204)
	h.want(h.do("DELETE", "/v1/decisions/allow/"+e["id"].(string), root, nil), 404)
	lifted := decodeDecision(t, h.want(h.do("POST", "/v1/decisions", root, map[string]any{"type": "ban",
		"target": map[string]string{"ip": "10.1.2.3"}, "duration": "1h"}), 200).body)

	// Show, list, delete.
	if got := decodeDecision(t, h.want(h.do("GET", "/v1/decisions/"+d.ID, root, nil), 200).body); got.ID != d.ID || got.Revision != d.Revision {
		t.Fatalf("show: %+v", got)
	}
	h.want(h.do("GET", "/v1/decisions/dec-0000000000000000", root, nil), 404)
	h.want(h.do("GET", "/v1/decisions/nope", root, nil), 400)
	if ds := h.listDecisions(root, "?active=true"); len(ds) != 2 || ds[0].ID != lifted.ID {
		t.Fatalf("active list (newest first): %+v", ds)
	}
	h.want(h.do("DELETE", "/v1/decisions/"+lifted.ID, root, nil), 204)
	h.want(h.do("GET", "/v1/decisions/"+lifted.ID, root, nil), 404)
	h.want(h.do("DELETE", "/v1/decisions/"+lifted.ID, root, nil), 404)
	if ds := h.listDecisions(root, ""); len(ds) != 1 || ds[0].ID != d.ID {
		t.Fatalf("list after delete: %+v", ds)
	}
	h.want(h.do("GET", "/v1/decisions?active=maybe", root, nil), 400)

	// Repeat offenders: 1h, then 2h, then the 3h cap; after the window,
	// 1h again. A simulated ban neither escalates nor counts.
	ban := func(sim bool) client.DecisionRecord {
		return decodeDecision(t, h.want(h.do("POST", "/v1/decisions", root, map[string]any{"type": "ban",
			"target": map[string]string{"ip": "198.51.100.9"}, "duration": "1h", "simulated": sim}), 200).body)
	}
	for i, want := range []string{"1h0m0s", "2h0m0s", "3h0m0s"} {
		if b := ban(false); b.Duration != want || b.Escalation != i {
			t.Fatalf("ban %d: duration %s escalation %d, want %s %d", i, b.Duration, b.Escalation, want, i)
		}
	}
	if b := ban(true); b.Duration != "1h0m0s" || b.Escalation != 0 || !b.Simulated {
		t.Fatalf("simulated ban: %+v", b)
	}
	h.clk.Add(25 * time.Hour)
	if b := ban(false); b.Duration != "1h0m0s" || b.Escalation != 0 {
		t.Fatalf("after the window: %+v", b)
	}
}

// enrollWith enrolls node name reporting addrs.
func (h *harness) enrollWith(root, name string, addrs []string) enrolled {
	h.t.Helper()
	tok := h.want(h.do("POST", "/v1/nodes/tokens", root, map[string]any{"name": name, "cert_ttl": "1h"}), 200).json(h.t)["token"]
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	// Bad addresses are refused naming the field, and the token stays
	// usable.
	r := h.want(h.do("POST", "/v1/pki/enroll", "", map[string]any{"token": tok, "csr": csrFor(h.t, key), "addresses": []string{"fe80::1%eth0"}}), 400)
	if !strings.HasPrefix(r.errorText(h.t), "addresses") {
		h.t.Fatalf("bad addresses: %s", r.body)
	}
	en := h.want(h.do("POST", "/v1/pki/enroll", "", map[string]any{"token": tok, "csr": csrFor(h.t, key), "addresses": addrs}), 200).json(h.t)
	chain := en["certificate"].(string)
	leaf, err := pki.ParseLeaf([]byte(chain))
	if err != nil {
		h.t.Fatal(err)
	}
	return enrolled{name: name, key: key, chain: chain, leaf: leaf}
}

// TestDecisionQuarantine: a node reports its addresses; quarantined, its
// requests are refused with 403 naming the decision (its renewal too),
// but its events and its decision stream are not; the quarantine carries
// its addresses; a banned user is refused; the never-block list protects
// a node and its addresses.
func TestDecisionQuarantine(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	node := h.enrollWith(root, "web-1", []string{"::ffff:192.0.2.10", "2001:db8::10"})
	other := h.enrollWith(root, "web-2", []string{"192.0.2.20"})
	if a := h.want(h.do("GET", "/v1/nodes/web-1", root, nil), 200).json(t)["addresses"]; len(a.([]any)) != 2 || a.([]any)[0] != "192.0.2.10" {
		t.Fatalf("node addresses: %v", a)
	}
	// Renewal replaces them.
	if r := h.nodeDo(node, "POST", "/v1/pki/renew", map[string]any{"csr": csrFor(t, node.key), "addresses": []string{"192.0.2.11"}}); r.status != 200 {
		t.Fatalf("renew: %d %s", r.status, r.body)
	}
	if a := h.want(h.do("GET", "/v1/nodes/web-1", root, nil), 200).json(t)["addresses"]; len(a.([]any)) != 1 || a.([]any)[0] != "192.0.2.11" {
		t.Fatalf("node addresses after renewal: %v", a)
	}
	if r := h.nodeDo(node, "POST", "/v1/pki/renew", map[string]any{"csr": csrFor(t, node.key), "addresses": []string{"x"}}); r.status != 400 {
		t.Fatalf("renew with a bad address: %d %s", r.status, r.body)
	}
	cl := h.nodeClient(node)
	defer cl.CloseIdleConnections()
	ch := openDecisionStream(t, h, cl, "", 0)
	if ev := next(t, ch); ev.event != "reset" {
		t.Fatalf("first event %+v", ev)
	}
	untilSync(t, ch)
	if r := h.nodeDo(node, "GET", "/v1/decisions", nil); r.status != 200 {
		t.Fatalf("node reads decisions: %d %s", r.status, r.body)
	}

	q := decodeDecision(t, h.want(h.do("POST", "/v1/decisions", root, map[string]any{"type": "quarantine",
		"target": map[string]string{"node": "web-1"}, "duration": "1h", "reason": "compromised"}), 200).body)
	if len(q.Addresses) != 1 || q.Addresses[0] != "192.0.2.11" {
		t.Fatalf("quarantine addresses: %+v", q)
	}
	untilDecision(t, ch, q.ID) // the feed has it: the pipeline knows
	r := h.nodeDo(node, "GET", "/v1/decisions", nil)
	if r.status != 403 || !strings.Contains(r.errorText(t), q.ID) {
		t.Fatalf("quarantined node: %d %s", r.status, r.body)
	}
	if r := h.nodeDo(node, "POST", "/v1/pki/renew", map[string]any{"csr": csrFor(t, node.key)}); r.status != 403 || !strings.Contains(r.errorText(t), q.ID) {
		t.Fatalf("quarantined renewal: %d %s", r.status, r.body)
	}
	if r := h.nodeDo(node, "POST", "/v1/events", nil); r.status == 403 {
		t.Fatalf("quarantined node's events: %d %s", r.status, r.body)
	}
	if r := h.nodeDo(other, "GET", "/v1/decisions", nil); r.status != 200 {
		t.Fatalf("another node: %d %s", r.status, r.body)
	}
	// Its stream goes on: the lifting reaches it, and it is served again.
	h.want(h.do("DELETE", "/v1/decisions/"+q.ID, root, nil), 204)
	if d := untilDecision(t, ch, q.ID); !d.Deleted {
		t.Fatalf("tombstone: %+v", d)
	}
	if r := h.nodeDo(node, "GET", "/v1/decisions", nil); r.status != 200 {
		t.Fatalf("after the lifting: %d %s", r.status, r.body)
	}
	// A simulated quarantine is streamed, not enforced.
	sim := decodeDecision(t, h.want(h.do("POST", "/v1/decisions", root, map[string]any{"type": "quarantine",
		"target": map[string]string{"node": "web-1"}, "duration": "1h", "simulated": true}), 200).body)
	untilDecision(t, ch, sim.ID)
	if r := h.nodeDo(node, "GET", "/v1/decisions", nil); r.status != 200 {
		t.Fatalf("simulated quarantine enforced: %d %s", r.status, r.body)
	}

	// A banned user.
	h.want(h.writePolicy(root, "warden", "readers", `permit (principal == User::"mallory", action == Action::"decisions.read", resource);`), 200)
	mallory := h.token(root, "mallory")
	h.want(h.do("GET", "/v1/decisions", mallory, nil), 200)
	ub := decodeDecision(t, h.want(h.do("POST", "/v1/decisions", root, map[string]any{"type": "ban",
		"target": map[string]string{"user": "mallory"}, "duration": "1h"}), 200).body)
	untilDecision(t, ch, ub.ID)
	if r := h.do("GET", "/v1/decisions", mallory, nil); r.status != 403 || !strings.Contains(r.errorText(t), ub.ID) {
		t.Fatalf("banned user: %d %s", r.status, r.body)
	}

	// The never-block list: a node entry protects the node and its
	// addresses.
	e := h.want(h.do("POST", "/v1/decisions/allow", root, map[string]string{"node": "web-2", "reason": "bastion"}), 200).json(t)
	for _, body := range []map[string]any{
		{"type": "quarantine", "target": map[string]string{"node": "web-2"}, "duration": "1h"},
		{"type": "ban", "target": map[string]string{"ip": "192.0.2.20"}, "duration": "1h"},
		{"type": "ban", "target": map[string]string{"cidr": "192.0.2.0/24"}, "duration": "1h"},
	} {
		msg := h.want(h.do("POST", "/v1/decisions", root, body), 409).errorText(t)
		if !strings.Contains(msg, e["id"].(string)) {
			t.Fatalf("node entry refusal %q does not name %s", msg, e["id"])
		}
	}
	h.want(h.do("POST", "/v1/decisions/allow", root, map[string]string{"node": "web-9"}), 400)

	// A node's stream ends when its certificate is revoked.
	ocl := h.nodeClient(other)
	defer ocl.CloseIdleConnections()
	och := openDecisionStream(t, h, ocl, "", 0)
	untilSync(t, och)
	h.want(h.do("POST", "/v1/nodes/web-2/revoke", root, nil), 204)
	for {
		select {
		case _, ok := <-och:
			if !ok {
				return
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the revoked node's stream goes on")
		}
	}
}

// TestDecisionStream: a stream starts with a reset and the live state,
// then carries each change and a sync; resumed from a revision it carries
// only later changes, tombstones included; resumed from below the horizon
// (after old tombstones were collected) it starts again with a reset.
func TestDecisionStream(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	add := func(ip, dur string) client.DecisionRecord {
		return decodeDecision(t, h.want(h.do("POST", "/v1/decisions", root, map[string]any{"type": "ban",
			"target": map[string]string{"ip": ip}, "duration": dur}), 200).body)
	}
	old := add("203.0.113.1", "1h")
	h.want(h.do("DELETE", "/v1/decisions/"+old.ID, root, nil), 204)
	allow := h.want(h.do("POST", "/v1/decisions/allow", root, map[string]string{"cidr": "10.0.0.0/8"}), 200).json(t)

	ch := openDecisionStream(t, h, h.http, root, 0)
	if ev := next(t, ch); ev.event != "reset" {
		t.Fatalf("first event %+v", ev)
	}
	items, r0 := untilSync(t, ch)
	if len(items) != 1 || items[0].event != "allow" || !strings.Contains(items[0].data, allow["id"].(string)) {
		t.Fatalf("reset state: %+v", items)
	}
	a := add("203.0.113.2", "1h")
	if d := untilDecision(t, ch, a.ID); d.Revision != a.Revision {
		t.Fatalf("streamed %+v, added %+v", d, a)
	}
	_, r1 := untilSync(t, ch)
	if r1 < a.Revision || r1 <= r0 {
		t.Fatalf("sync %d after revision %d (before: %d)", r1, a.Revision, r0)
	}
	b := add("203.0.113.3", "30h")
	h.want(h.do("DELETE", "/v1/decisions/"+a.ID, root, nil), 204)
	if d := untilDecision(t, ch, a.ID); !d.Deleted {
		t.Fatalf("tombstone: %+v", d)
	}
	_, r2 := untilSync(t, ch)

	// Resumed from r1: b and a's tombstone, no reset.
	ch2 := openDecisionStream(t, h, h.http, root, r1)
	got, _ := untilSync(t, ch2)
	if len(got) != 2 || got[0].event != "decision" || decodeDecision(t, []byte(got[0].data)).ID != b.ID ||
		!decodeDecision(t, []byte(got[1].data)).Deleted {
		t.Fatalf("resumed: %+v", got)
	}
	// Resumed from r2: nothing new.
	if got, rev := untilSync(t, openDecisionStream(t, h, h.http, root, r2)); len(got) != 0 || rev < r2 {
		t.Fatalf("resumed from the last sync: %+v %d", got, rev)
	}
	// Collect, a day later: the tombstones go, the horizon rises, a
	// resumption from r1 starts from a reset (b is still in force).
	h.clk.Add(25 * time.Hour)
	if n, err := h.srv.Decisions().Collect(context.Background()); err != nil || n < 2 {
		t.Fatalf("collect: %d, %v", n, err)
	}
	add("203.0.113.4", "1h") // a change the first stream waits for: the feed has seen the collection
	untilSync(t, ch)
	ch3 := openDecisionStream(t, h, h.http, root, r1)
	if ev := next(t, ch3); ev.event != "reset" {
		t.Fatalf("below the horizon: %+v", ev)
	}
	got, _ = untilSync(t, ch3)
	ids := map[string]bool{}
	for _, ev := range got {
		if ev.event == "decision" {
			ids[decodeDecision(t, []byte(ev.data)).ID] = true
		}
	}
	if !ids[b.ID] || ids[a.ID] || ids[old.ID] || len(ids) != 2 {
		t.Fatalf("reset after collection: %v", ids)
	}
	h.want(h.do("GET", "/v1/decisions/stream?since=x", root, nil), 400)
}

// TestDecisionStreamCallerBounds: one principal holds at most
// MaxDecisionStreamsPerCaller streams on a server (the next is 429 while
// another caller is still served), and a token's stream ends when the
// token is revoked.
func TestDecisionStreamCallerBounds(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.want(h.writePolicy(root, "warden", "readers", `permit (principal, action == Action::"decisions.read", resource);`), 200)
	alice, bob := h.token(root, "alice"), h.token(root, "bob")
	for range api.MaxDecisionStreamsPerCaller {
		untilSync(t, openDecisionStream(t, h, h.http, alice, 0))
	}
	r := h.want(h.do("GET", "/v1/decisions/stream", alice, nil), 429)
	if !strings.Contains(string(r.body), `User::\"alice\"`) {
		t.Fatalf("the stream past the caller's bound: %s", r.body)
	}
	ch := openDecisionStream(t, h, h.http, bob, 0)
	untilSync(t, ch)

	var look struct {
		Accessor string `json:"accessor"`
	}
	if err := json.Unmarshal(h.want(h.do("POST", "/v1/auth/token/lookup", root, map[string]string{"token": bob}), 200).body, &look); err != nil {
		t.Fatal(err)
	}
	h.want(h.do("POST", "/v1/auth/token/revoke", root, map[string]string{"accessor": look.Accessor}), 204)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the revoked token's stream goes on")
		}
	}
}

// TestQuarantineWithholdsProtectedAddresses: the addresses in a quarantine
// are the node's own claim. A node that claims a server's address or one on
// the never-block list is still quarantined; those addresses are withheld
// (never dropped by agents) and named in the decision.
func TestQuarantineWithholdsProtectedAddresses(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.enrollWith(root, "web-3", []string{"127.0.0.1", "198.18.0.5", "203.0.113.50"})
	h.want(h.do("POST", "/v1/decisions/allow", root, map[string]string{"cidr": "198.18.0.0/24", "reason": "office"}), 200)
	q := decodeDecision(t, h.want(h.do("POST", "/v1/decisions", root, map[string]any{"type": "quarantine",
		"target": map[string]string{"node": "web-3"}, "duration": "1h", "reason": "compromised"}), 200).body)
	if !slices.Equal(q.Addresses, []string{"203.0.113.50"}) || !slices.Equal(q.WithheldAddresses, []string{"127.0.0.1", "198.18.0.5"}) {
		t.Fatalf("quarantine of a node claiming protected addresses: addresses %v, withheld %v", q.Addresses, q.WithheldAddresses)
	}
}
