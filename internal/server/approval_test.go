package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/server"
)

// doHeader is do with one more request header.
func (h *harness) doHeader(method, path, token string, body any, key, value string) resp {
	h.t.Helper()
	return h.doWith(method, path, token, body, http.Header{key: {value}})
}

// held checks a 202 answer: exactly request_id, required, approvals (empty)
// and expires_at, and returns the request id.
func held(t *testing.T, r resp, required int) string {
	t.Helper()
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d, want 202: %s", r.status, r.body)
	}
	m := r.json(t)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(keys, []string{"approvals", "expires_at", "request_id", "required"}) {
		t.Fatalf("202 body members %v: %s", keys, r.body)
	}
	if a, ok := m["approvals"].([]any); !ok || len(a) != 0 || m["required"] != float64(required) {
		t.Fatalf("202 body %s, want no approvals and %d required", r.body, required)
	}
	id, _ := m["request_id"].(string)
	if !strings.HasPrefix(id, "req-") {
		t.Fatalf("request_id %q", id)
	}
	return id
}

// wantError checks a refusal's status and that its message says want.
func (h *harness) wantError(r resp, status int, want string) {
	h.t.Helper()
	if r.status != status {
		h.t.Fatalf("status %d, want %d (%q): %s", r.status, status, want, r.body)
	}
	if msg := r.errorText(h.t); !strings.Contains(msg, want) {
		h.t.Fatalf("error %q, want it to say %q", msg, want)
	}
}

// entriesSince returns the audit records from index from on, the journal
// merged first. A merge right after a restore fails its check once (the
// restore took the journal's cursor back) and reads the cursor again on
// the next attempt.
func (h *harness) entriesSince(from uint64) []audit.Entry {
	h.t.Helper()
	if err := h.srv.Audit().Flush(context.Background()); err != nil {
		h.mergeAudit()
	}
	size, err := h.srv.Audit().Size()
	if err != nil {
		h.t.Fatal(err)
	}
	es, err := h.srv.Audit().Entries(from, int(size-from))
	if err != nil {
		h.t.Fatal(err)
	}
	out := make([]audit.Entry, len(es))
	for i, e := range es {
		out[i] = e.Entry
	}
	return out
}

// record is what a test expects of one audit record.
type record struct {
	action, principal, resource string
	outcome                     int
	note, err                   string // substrings ("" for none expected)
}

func (r record) matches(e audit.Entry) bool {
	return e.Action == r.action && e.Principal == r.principal && e.Resource == r.resource && e.Outcome == r.outcome &&
		(r.note == "" && e.Note == "" || r.note != "" && strings.Contains(e.Note, r.note)) &&
		(r.err == "" || strings.Contains(e.Error, r.err))
}

// wantRecords checks that es holds each of want, each matched by a record
// of its own. Order is not checked: the records of denies and failures
// reach the log through the journal, after the changes around them.
func wantRecords(t *testing.T, es []audit.Entry, want []record) {
	t.Helper()
	used := make([]bool, len(es))
	for _, w := range want {
		found := false
		for i, e := range es {
			if !used[i] && w.matches(e) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			var got strings.Builder
			for _, e := range es {
				fmt.Fprintf(&got, "  %s %s %s %d note=%q error=%q\n", e.Action, e.Principal, e.Resource, e.Outcome, e.Note, e.Error)
			}
			t.Fatalf("no record %+v among:\n%s", w, got.String())
		}
	}
}

// TestDualControlSnapshotRestore is the scenario: with dual
// control on from init, a snapshot restore by the root token is held
// (202) and changes nothing until two members of security other than the
// requester approve; the requester's own approval, an approver outside
// the group and a repeated approval are refused; a changed body is
// refused at run; the approved body runs once; and every step is in the
// audit log.
func TestDualControlSnapshotRestore(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) { c.DualControl = true })
	_, root := h.initUnseal(1, 1)
	// init wrote the default rule and the roles of dual control.
	h.want(h.do("GET", "/v1/authz/stores/warden/policies/dual-control", root, nil), 200)
	h.want(h.do("GET", "/v1/authz/stores/warden/policies/dual-control-roles", root, nil), 200)
	alice := h.token(root, "alice", "security")
	bob := h.token(root, "bob", "security")
	ops := h.token(root, "olivia", "ops") // not in security
	h.want(h.do("PUT", "/v1/kv/data/app/db", root, map[string]any{"data": map[string]string{"v": "1"}}), 200)
	snap := h.want(h.do("GET", "/v1/sys/raft/snapshot", root, nil), 200).body
	h.want(h.do("PUT", "/v1/kv/data/app/db", root, map[string]any{"data": map[string]string{"v": "2"}}), 200)
	version := func() float64 {
		t.Helper()
		return h.want(h.do("GET", "/v1/kv/data/app/db", root, nil), 200).json(t)["version"].(float64)
	}
	from := auditSize(t, h)

	id := held(t, h.do("POST", "/v1/sys/raft/snapshot", root, snap), 2)
	req := "Request::\"" + id + "\""
	if v := version(); v != 2 {
		t.Fatalf("a held restore changed the state: version %v", v)
	}
	got := h.want(h.do("GET", "/v1/requests/"+id, alice, nil), 200).json(t)
	if got["status"] != "pending" || got["requester"] != `Root::"root"` || got["action"] != "raft.snapshot.restore" ||
		got["method"] != "POST" || got["path"] != "/v1/sys/raft/snapshot" || got["required"] != float64(2) {
		t.Fatalf("request %v", got)
	}
	list := h.want(h.do("GET", "/v1/requests?pending=true", bob, nil), 200).json(t)["requests"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["id"] != id {
		t.Fatalf("pending requests %v", list)
	}

	// Refusals.
	h.wantError(h.do("POST", "/v1/requests/"+id+"/approve", root, nil), 403, "the requester cannot approve its own request")
	// olivia may not approve at all (no policy), and the run needs approvals.
	h.want(h.do("POST", "/v1/requests/"+id+"/approve", ops, nil), 403)
	h.wantError(h.doHeader("POST", "/v1/sys/raft/snapshot", root, snap, "X-Warden-Approved-Request", id), 409, "0 of 2 approvals")
	h.want(h.do("POST", "/v1/requests/"+id+"/approve", alice, map[string]string{"comment": "restore after the bad migration"}), 200)
	h.wantError(h.do("POST", "/v1/requests/"+id+"/approve", alice, nil), 409, `already approved by User::"alice"`)
	h.wantError(h.doHeader("POST", "/v1/sys/raft/snapshot", root, snap, "X-Warden-Approved-Request", id), 409, "1 of 2 approvals")
	if v := version(); v != 2 {
		t.Fatalf("the state changed before the approvals: version %v", v)
	}
	out := h.want(h.do("POST", "/v1/requests/"+id+"/approve", bob, nil), 200).json(t)
	if out["status"] != "approved" || len(out["approvals"].([]any)) != 2 {
		t.Fatalf("after two approvals: %v", out)
	}

	// Someone else than the requester cannot run it, even with the header.
	h.wantError(h.doHeader("POST", "/v1/sys/raft/snapshot", alice, snap, "X-Warden-Approved-Request", id), 403, "")
	// A changed body is refused, and changes nothing.
	changed := slices.Clone(snap)
	changed[len(changed)-1] ^= 1
	h.wantError(h.doHeader("POST", "/v1/sys/raft/snapshot", root, changed, "X-Warden-Approved-Request", id), 409,
		"the body differs from the approved request")
	if v := version(); v != 2 {
		t.Fatalf("a changed body ran: version %v", v)
	}
	if st := h.want(h.do("GET", "/v1/requests/"+id, alice, nil), 200).json(t)["status"]; st != "approved" {
		t.Fatalf("after a refused body the request is %v", st)
	}
	es := h.entriesSince(from) // before the restore, which drops the request
	h.want(h.doHeader("POST", "/v1/sys/raft/snapshot", root, snap, "X-Warden-Approved-Request", id), 200)
	if v := version(); v != 1 {
		t.Fatalf("after the approved restore: version %v, want the snapshot's 1", v)
	}
	es = append(es, h.entriesSince(from+uint64(len(es)))...)
	wantRecords(t, es, []record{
		{action: "raft.snapshot.restore", principal: `Root::"root"`, resource: `System::"warden"`, outcome: 202, note: "approval requested: request " + id},
		{action: "requests.approve", principal: `Root::"root"`, resource: req, outcome: 403, err: "the requester cannot approve its own request"},
		{action: "requests.approve", principal: `User::"olivia"`, resource: `System::"warden"`, outcome: 403},
		{action: "raft.snapshot.restore", principal: `Root::"root"`, resource: `System::"warden"`, outcome: 409, err: "0 of 2 approvals"},
		{action: "requests.approve", principal: `User::"alice"`, resource: req, outcome: 200},
		{action: "requests.approve", principal: `User::"alice"`, resource: req, outcome: 409, err: "already approved"},
		{action: "requests.approve", principal: `User::"bob"`, resource: req, outcome: 200},
		{action: "raft.snapshot.restore", principal: `User::"alice"`, resource: `System::"warden"`, outcome: 403},
		{action: "raft.snapshot.restore", principal: `Root::"root"`, resource: `System::"warden"`, outcome: 409, err: "the body differs"},
		{action: "requests.run", principal: `Root::"root"`, resource: req, outcome: 200},
		{action: "raft.snapshot.restore", principal: `Root::"root"`, resource: `System::"warden"`, outcome: 200, note: "approved request " + id},
	})
	for _, e := range es {
		if e.Outcome == 202 && e.Hashes["body"] == "" {
			t.Fatalf("the held request's record has no body hash: %+v", e)
		}
	}
}

// TestDualControlRun: requests whose body is stored run with POST
// /v1/requests/{id}/run, once, however many runs race; a member of the
// security group cannot approve its own request; an expired request
// cannot run, and its expiry is recorded; a denied or cancelled one
// neither; rules changed since the approval refuse the run.
func TestDualControlRun(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) { c.DualControl = true; c.RequestTTL = 30 * time.Minute })
	_, root := h.initUnseal(1, 1)
	alice := h.token(root, "alice", "security")
	bob := h.token(root, "bob", "security")
	carol := h.token(root, "carol", "admins", "security") // asks, and approves others
	dave := h.token(root, "dave", "admins")
	approve := func(id string, toks ...string) {
		t.Helper()
		for _, tok := range toks {
			h.want(h.do("POST", "/v1/requests/"+id+"/approve", tok, nil), 200)
		}
	}
	from := auditSize(t, h)

	// A policy write of the warden store is held; run replays it, once.
	pol := map[string]string{"policy": `permit (principal == User::"dave", action == Action::"kv.read", resource);`}
	id := held(t, h.do("PUT", "/v1/authz/stores/warden/policies/dave", carol, pol), 2)
	h.wantError(h.do("POST", "/v1/requests/"+id+"/approve", carol, nil), 403, "the requester cannot approve its own request")
	h.wantError(h.do("POST", "/v1/requests/"+id+"/approve", root, nil), 403, `Root::"root" is not in an approver group`)
	h.wantError(h.do("POST", "/v1/requests/"+id+"/run", carol, nil), 409, "0 of 2 approvals")
	approve(id, alice, bob)
	h.wantError(h.do("POST", "/v1/requests/"+id+"/run", dave, nil), 403, "only the requester")
	h.want(h.do("GET", "/v1/authz/stores/warden/policies/dave", root, nil), 404)
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = h.do("POST", "/v1/requests/"+id+"/run", carol, nil).status
		}()
	}
	wg.Wait()
	slices.Sort(codes)
	if codes[0] != 200 || codes[1] != 409 || codes[len(codes)-1] != 409 {
		t.Fatalf("concurrent runs answered %v, want one 200 and 409s", codes)
	}
	h.want(h.do("GET", "/v1/authz/stores/warden/policies/dave", root, nil), 200)
	r := h.want(h.do("GET", "/v1/requests/"+id, alice, nil), 200).json(t)
	if r["status"] != "run" || r["finished_by"] != `User::"carol"` || r["outcome"].(map[string]any)["status"] != float64(200) {
		t.Fatalf("after the run: %v", r)
	}
	// The same request sent again (without the header) is held again: a
	// run request is spent.
	h.wantError(h.doHeader("PUT", "/v1/authz/stores/warden/policies/dave", carol, pol, "X-Warden-Approved-Request", id), 409, "already run")

	// Denied and cancelled requests do not run.
	denied := held(t, h.do("POST", "/v1/sys/rotate", carol, nil), 2)
	h.want(h.do("POST", "/v1/requests/"+denied+"/deny", alice, map[string]string{"comment": "not today"}), 200)
	h.wantError(h.do("POST", "/v1/requests/"+denied+"/approve", bob, nil), 409, "was denied")
	h.wantError(h.do("POST", "/v1/requests/"+denied+"/run", carol, nil), 409, "was denied")
	cancelled := held(t, h.do("POST", "/v1/sys/rotate", carol, nil), 2)
	h.wantError(h.do("POST", "/v1/requests/"+cancelled+"/cancel", dave, nil), 403, "only the requester")
	h.want(h.do("POST", "/v1/requests/"+cancelled+"/cancel", carol, nil), 200)
	h.wantError(h.do("POST", "/v1/requests/"+cancelled+"/run", carol, nil), 409, "was cancelled")

	// An expired request cannot run, even approved; the collector records
	// its expiry.
	expiring := held(t, h.do("POST", "/v1/sys/rotate", carol, nil), 2)
	approve(expiring, alice, bob)
	h.clk.Add(31 * time.Minute) // the tokens live an hour
	h.wantError(h.do("POST", "/v1/requests/"+expiring+"/run", carol, nil), 409, "expired at")
	h.wantError(h.doHeader("POST", "/v1/sys/rotate", carol, nil, "X-Warden-Approved-Request", expiring), 409, "expired at")
	if r := h.want(h.do("GET", "/v1/requests/"+expiring, alice, nil), 200).json(t); r["status"] != "expired" {
		t.Fatalf("past its expiry the request reads %v", r["status"])
	}
	if err := h.srv.Approvals().Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(h.want(h.do("GET", "/v1/requests?pending=true", alice, nil), 200).json(t)["requests"].([]any)); n != 0 {
		t.Fatalf("%d pending requests after the expiry", n)
	}

	// Rules that changed since the approval: the rule of the request no
	// longer applies (its policy is rewritten, through the flow, to need
	// three approvals), and the approved request is refused.
	rot := held(t, h.do("POST", "/v1/sys/rotate", carol, nil), 2)
	approve(rot, alice, bob)
	stricter := strings.Replace(defaultRule(t, h, root), `@approvals("2")`, `@approvals("3")`, 1)
	w := held(t, h.do("PUT", "/v1/authz/stores/warden/policies/dual-control", carol, map[string]string{"policy": stricter}), 2)
	approve(w, alice, bob)
	h.want(h.do("POST", "/v1/requests/"+w+"/run", carol, nil), 200)
	h.wantError(h.do("POST", "/v1/requests/"+rot+"/run", carol, nil), 409, "the approval rules changed")

	ridOf := func(id string) string { return `Request::"` + id + `"` }
	es := h.entriesSince(from)
	wantRecords(t, es, []record{
		{action: "policy.write", principal: `User::"carol"`, resource: `Policy::"warden/dave"`, outcome: 202, note: "approval requested: request " + id},
		{action: "requests.approve", principal: `User::"carol"`, resource: ridOf(id), outcome: 403},
		{action: "requests.approve", principal: `Root::"root"`, resource: ridOf(id), outcome: 403, err: "not in an approver group"},
		{action: "requests.approve", principal: `User::"alice"`, resource: ridOf(id), outcome: 200},
		{action: "requests.approve", principal: `User::"bob"`, resource: ridOf(id), outcome: 200},
		{action: "requests.run", principal: `User::"carol"`, resource: ridOf(id), outcome: 200},
		{action: "policy.write", principal: `User::"carol"`, resource: `Policy::"warden/dave"`, outcome: 200, note: "approved request " + id},
		{action: "requests.result", principal: `User::"carol"`, resource: ridOf(id), outcome: 200},
		{action: "requests.deny", principal: `User::"alice"`, resource: ridOf(denied), outcome: 200},
		{action: "requests.cancel", principal: `User::"carol"`, resource: ridOf(cancelled), outcome: 200},
		{action: "requests.run", principal: `User::"carol"`, resource: ridOf(expiring), outcome: 409, err: "expired at"},
		{action: "requests.expire", principal: `Server::"` + h.srv.Store().NodeID() + `"`, resource: ridOf(expiring), outcome: 200},
	})
	// Exactly one run record of the concurrent runs committed with 200.
	n := 0
	for _, e := range es {
		if e.Action == "requests.run" && e.Resource == ridOf(id) && e.Outcome == 200 {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d successful run records of %s", n, id)
	}
}

// defaultRule reads the text of the policy dual-control.
func defaultRule(t *testing.T, h *harness, root string) string {
	t.Helper()
	return h.want(h.do("GET", "/v1/authz/stores/warden/policies/dual-control", root, nil), 200).json(t)["policy"].(string)
}

// TestBreakGlass: a member of the break-glass group runs what needs
// approval at once; its record says "break glass", and the server emits a
// break_glass event that the built-in critical rule matches. Others, the
// root token among them (it is in no group), are still held.
func TestBreakGlass(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) { c.DualControl = true; c.BreakGlassGroup = "emergency" })
	_, root := h.initUnseal(1, 1)
	p := waitPlane(t, h.srv)
	erin := h.token(root, "erin", "admins", "emergency")
	dave := h.token(root, "dave", "admins")
	held(t, h.do("POST", "/v1/sys/rotate", root, nil), 2)
	held(t, h.do("POST", "/v1/sys/rotate", dave, nil), 2)
	from := auditSize(t, h)
	term := h.want(h.do("POST", "/v1/sys/rotate", erin, nil), 200).json(t)["term"]
	if term != float64(2) {
		t.Fatalf("break glass rotated to term %v", term)
	}
	wantRecords(t, h.entriesSince(from), []record{{action: "sys.rotate", principal: `User::"erin"`, resource: `System::"warden"`,
		outcome: 200, note: `break glass: User::"erin" in Group::"emergency" acted without the approvals of dual-control`}})

	ev := waitServerEvent(t, p, events.ActionBreakGlass, "erin")
	if ev.String("warden.action") != "sys.rotate" || ev.String("event.dataset") != "warden.server" {
		t.Fatalf("break glass event %v", ev)
	}
	m := builtinMatches(t, ev)
	if len(m) != 1 || m[0].Title != "Warden break glass used" || m[0].Level != "critical" {
		t.Fatalf("the break glass event matches %v, want the critical built-in rule", m)
	}
}

// TestDualControlBounds: what callers can make the server store. Nothing
// for an unauthenticated, revoked or unauthorized caller (authentication
// and authorization come first); at most 64 open requests per principal;
// a body over 1 MiB is only hashed, and such a request runs only when it is
// sent again.
func TestDualControlBounds(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) { c.DualControl = true })
	_, root := h.initUnseal(1, 1)
	alice := h.token(root, "alice", "security")
	bob := h.token(root, "bob", "security")
	dave := h.token(root, "dave", "admins")
	revoked := h.token(root, "rob", "admins")
	nobody := h.token(root, "nobody")
	acc := h.want(h.do("POST", "/v1/auth/token/lookup", root, map[string]string{"token": revoked}), 200).json(t)["accessor"].(string)
	h.want(h.do("POST", "/v1/auth/token/revoke", root, map[string]string{"accessor": acc}), 204)
	count := func() int {
		t.Helper()
		return len(h.want(h.do("GET", "/v1/requests", root, nil), 200).json(t)["requests"].([]any))
	}
	h.want(h.do("POST", "/v1/sys/rotate", "", nil), 401)
	h.want(h.do("POST", "/v1/sys/rotate", "wdn_not-a-token", nil), 401)
	h.want(h.do("POST", "/v1/sys/rotate", revoked, nil), 401)
	h.want(h.do("POST", "/v1/sys/rotate", nobody, nil), 403)
	if n := count(); n != 0 {
		t.Fatalf("%d requests stored for callers that may not ask", n)
	}

	var first string
	for i := range 64 {
		id := held(t, h.do("POST", "/v1/sys/rotate", dave, nil), 2)
		if i == 0 {
			first = id
		}
	}
	h.wantError(h.do("POST", "/v1/sys/rotate", dave, nil), 409, "64 open requests, the most allowed")
	held(t, h.do("POST", "/v1/sys/rotate", root, nil), 2) // the bound is per principal
	h.want(h.do("POST", "/v1/requests/"+first+"/cancel", dave, nil), 200)
	held(t, h.do("POST", "/v1/sys/rotate", dave, nil), 2)
	h.wantError(h.do("POST", "/v1/sys/rotate", dave, nil), 409, "64 open requests")

	big := bytes.Repeat([]byte("snapshot "), (1<<20)/9+1000) // over 1 MiB
	id := held(t, h.do("POST", "/v1/sys/raft/snapshot", root, big), 2)
	r := h.want(h.do("GET", "/v1/requests/"+id, alice, nil), 200).json(t)
	if r["body_stored"] != false || r["body_size"] != float64(len(big)) {
		t.Fatalf("a body over 1 MiB: %v", r)
	}
	for _, tok := range []string{alice, bob} {
		h.want(h.do("POST", "/v1/requests/"+id+"/approve", tok, nil), 200)
	}
	h.wantError(h.do("POST", "/v1/requests/"+id+"/run", root, nil), 409, "too large to store; send the request again with the header")
	// Sent again, it is checked in full and reaches the handler (which
	// refuses what is not a snapshot), once.
	h.wantError(h.doHeader("POST", "/v1/sys/raft/snapshot", root, big, "X-Warden-Approved-Request", id), 400, "not a Warden snapshot")
	h.wantError(h.doHeader("POST", "/v1/sys/raft/snapshot", root, big, "X-Warden-Approved-Request", id), 409, "already run")
	out := h.want(h.do("GET", "/v1/requests/"+id, alice, nil), 200).json(t)
	if out["status"] != "run" || out["outcome"].(map[string]any)["status"] != float64(400) ||
		!strings.Contains(out["outcome"].(map[string]any)["error"].(string), "not a Warden snapshot") {
		t.Fatalf("a run that failed: %v", out)
	}
}

// TestDualControlDev: --dev --dual-control initializes with dual control on;
// without --dual-control it is off, and the held routes run at once.
func TestDualControlDev(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint(on), func(t *testing.T) {
			h := start(t, t.TempDir(), func(c *server.Config) { c.DualControl = on })
			_, root, err := h.srv.DevInit(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			r := h.do("POST", "/v1/sys/rotate", root.Reveal(), nil)
			if on {
				held(t, r, 2)
				return
			}
			h.want(r, 200)
			h.want(h.do("GET", "/v1/authz/stores/warden/policies/dual-control", root.Reveal(), nil), 404)
			h.want(h.do("GET", "/v1/requests", root.Reveal(), nil), 200)
		})
	}
}
