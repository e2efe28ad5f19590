package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/warden-sec/warden/internal/approval"
	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/policy"
)

// Dual control (docs/governance.md): the pipeline's step after a successful
// authorization, the routes of /v1/requests and PUT /v1/sys/dual-control.

// HeaderApprovedRequest names the approved request a re-sent operation
// runs as: the operation runs if it is that request (same requester,
// action, resource, method, path, query and body) and the request is
// approved and not expired, once.
const HeaderApprovedRequest = "X-Warden-Approved-Request"

// held is a request's dual-control state in the pipeline.
type held struct {
	// run is the approved request this request runs as ("" for none);
	// once it is marked run the pipeline records the outcome.
	run string
	// spool is the temporary file of a large body read to check its hash
	// (already unlinked), closed when the request ends.
	spool *os.File
	// errMsg is the message of the error the request answered (fail).
	errMsg string
}

// replay is a run of a stored request (POST /v1/requests/{id}/run): the
// context of the request replayed through the pipeline carries it.
type replay struct {
	id        string // the approved request
	principal string // who runs it (the requester)
	requestID string // the run's HTTP request id, shared by the replay
	marked    bool   // the replay marked the request run
}

type replayKey struct{}

func replayOf(ctx context.Context) *replay {
	rp, _ := ctx.Value(replayKey{}).(*replay)
	return rp
}

// requestID is the id of a request: a new one, or the run's for a replay
// (so that its records and the run's share one request_id).
func (s *Server) requestID(r *http.Request) string {
	if rp := replayOf(r.Context()); rp != nil {
		return rp.requestID
	}
	return s.newID()
}

// serveDualControl is the rest of the pipeline of an authorized request
// when dual control is available (Config.Approvals): a request the
// approval rules apply to is held (202) unless it runs as an approved
// request or its caller breaks glass; everything else is served as usual.
func (s *Server) serveDualControl(rt *route, req *request, tg target, entry *audit.Entry) int {
	defer func() {
		if req.held.spool != nil {
			req.held.spool.Close()
		}
	}()
	status, done := s.dualControl(rt, req, tg)
	if done {
		return status
	}
	status = s.serveAudited(rt, req, entry)
	if id := req.held.run; id != "" {
		s.finishRun(req, id, status)
	}
	return status
}

// dualControl decides what happens to a request the approval rules may
// apply to; done says it answered.
func (s *Server) dualControl(rt *route, req *request, tg target) (status int, done bool) {
	if rt.audit == auditNone || strings.HasPrefix(tg.action, "requests.") {
		// The requests' own routes never wait for approval (an approval
		// that needed approval could never be given).
		return 0, false
	}
	rp := replayOf(req.Context())
	id := req.Header.Get(HeaderApprovedRequest)
	if rp == nil {
		on, err := s.cfg.Approvals.Enabled()
		if err != nil {
			s.log.Error("dual control: the setting could not be read; refusing", "request_id", req.id, "err", err)
			return s.failAudited(req, errs.E(errs.Unavailable, "dual control: the setting could not be read; the request was refused")), true
		}
		if !on {
			return 0, false
		}
	}
	rules, err := s.approvalRules(req, tg)
	if err != nil {
		s.log.Error("approval rules failed; refusing", "request_id", req.id, "err", err)
		return s.failAudited(req, errs.E(errs.Denied, "permission denied: the approval rules could not be evaluated")), true
	}
	switch {
	case rp != nil:
		// A run of a stored request: its run route made the marker.
		return s.claim(req, tg, rp.id, rules, rp)
	case len(rules) == 0:
		return 0, false
	case id != "":
		return s.claim(req, tg, id, rules, nil)
	case s.breaksGlass(req):
		s.breakGlass(req, tg, rules)
		return 0, false
	}
	return s.hold(req, tg, rules), true
}

// approvalRules returns the approval rules of the warden store that apply
// to the request, asked with the request its authorization used (the root
// token's too: it is bound by the rules).
func (s *Server) approvalRules(req *request, tg target) ([]authz.ApprovalRule, error) {
	c := req.caller
	var es authz.Entities
	if !c.root {
		if c.esErr != nil {
			return nil, c.esErr
		}
		es = c.es
	}
	es, err := withResource(es, tg.resource)
	if err != nil {
		return nil, err
	}
	return s.cfg.Policies.Approvals(req.Context(), policy.WardenStore, authz.CheckRequest{
		Request: authz.Request{Principal: c.uid, Action: authz.ActionUID(tg.action), Resource: tg.resource.UID,
			Context: s.requestContext(req)},
		Entities: es,
	})
}

func rulesOf(rs []authz.ApprovalRule) []approval.Rule {
	out := make([]approval.Rule, len(rs))
	for i, r := range rs {
		out[i] = approval.Rule{Policy: r.Policy, Approvals: r.Approvals, Approvers: r.Approvers.String()}
	}
	return out
}

func policiesOf(rs []authz.ApprovalRule) string {
	var ps []string
	for _, r := range rs {
		if !slices.Contains(ps, r.Policy) {
			ps = append(ps, r.Policy)
		}
	}
	return strings.Join(ps, ", ")
}

// groupsOf returns the groups of the caller (Group::"name"); the root
// token and nodes are in none.
func groupsOf(req *request) []string {
	if req.tok == nil || req.caller.root {
		return nil
	}
	gs := make([]string, len(req.tok.Groups))
	for i, g := range req.tok.Groups {
		gs[i] = types.NewEntityUID(authz.TypeGroup, types.String(g)).String()
	}
	return gs
}

// breaksGlass reports whether the caller is in the break-glass group.
func (s *Server) breaksGlass(req *request) bool {
	g := s.cfg.BreakGlassGroup
	return g != "" && req.tok != nil && !req.caller.root && slices.Contains(req.tok.Groups, g)
}

// breakGlass lets a member of the break-glass group act without the
// approvals the rules ask for: loudly. The record says so, the log warns,
// and a server event (break_glass) raises a critical alert through the
// built-in detection rule, which notifies every notifier.
func (s *Server) breakGlass(req *request, tg target, rules []authz.ApprovalRule) {
	g := types.NewEntityUID(authz.TypeGroup, types.String(s.cfg.BreakGlassGroup)).String()
	req.entry.Note = "break glass: " + req.caller.String() + " in " + g + " acted without the approvals of " + policiesOf(rules)
	s.log.Warn("break glass: an operation that needs approval ran without it", "principal", req.caller.String(),
		"group", g, "action", tg.action, "resource", tg.resource.UID.String(), "rules", policiesOf(rules), "request_id", req.id)
	addr := clientKey(req.Request)
	s.cfg.ServerEvents.Emit(events.ActionBreakGlass, events.Event{events.FieldSourceIP: addr,
		events.FieldUserName: req.tok.PrincipalUser(), "warden.action": tg.action, "warden.resource": tg.resource.UID.String(),
		"warden.group": s.cfg.BreakGlassGroup, events.FieldMessage: req.entry.Note})
}

// heldResponse is the answer (202) to a request held for approval.
type heldResponse struct {
	RequestID string          `json:"request_id"`
	Required  int             `json:"required"`
	Approvals []approval.Vote `json:"approvals"`
	ExpiresAt string          `json:"expires_at"`
}

// hold stores the request for approval and answers 202. Its record (the
// operation's, with outcome 202, the note "approval requested: request
// ID" and the HMAC of the body's SHA-256) rides with the stored request.
func (s *Server) hold(req *request, tg target, rules []authz.ApprovalRule) int {
	sum, size, body, err := req.readHeld(false)
	if err != nil {
		return s.failAudited(req, err)
	}
	id := approval.NewID()
	entry := req.entry
	if err := req.Hash("body", sum); err != nil {
		return s.failAudited(req, err)
	}
	entry.Outcome, entry.Note = http.StatusAccepted, "approval requested: request "+id
	ctx, _ := s.cfg.Audit.Pending(req.Context(), entry)
	accessor := ""
	if req.tok != nil {
		accessor = req.tok.Accessor
	}
	r, err := s.cfg.Approvals.Create(ctx, approval.NewRequest{ID: id, Requester: req.caller.String(), Accessor: accessor,
		Action: tg.action, Resource: tg.resource.UID.String(), Method: req.Method, Path: req.URL.EscapedPath(), Query: req.URL.RawQuery,
		BodySHA256: sum, BodySize: size, Body: body, Stored: body != nil, Rules: rulesOf(rules)})
	if err != nil {
		entry.Note = ""
		return s.failAudited(req, err)
	}
	s.log.Info("held for approval", "request", r.ID, "principal", r.Requester, "action", r.Action, "resource", r.Resource,
		"required", r.Required, "request_id", req.id)
	return writeJSON(req.w, http.StatusAccepted, heldResponse{RequestID: r.ID, Required: r.Required,
		Approvals: []approval.Vote{}, ExpiresAt: r.ExpiresAt})
}

// claim runs the request as approved request id: it checks that the
// request is that one and may run (requester, action, resource, method,
// path, query, approved, not expired, the rules that apply now met), reads
// the body and checks its hash, and marks the request run, in a
// conditioned change with its record, before the handler runs: a request
// runs at most once. A run of a stored request (rp) rides with the run
// route's record; a re-sent request gets a record of its own (requests.run
// on Request::"id").
func (s *Server) claim(req *request, tg target, id string, rules []authz.ApprovalRule, rp *replay) (int, bool) {
	cl := approval.Claim{Principal: req.caller.String(), Action: tg.action, Resource: tg.resource.UID.String(),
		Method: req.Method, Path: req.URL.EscapedPath(), Query: req.URL.RawQuery, Rules: rulesOf(rules)}
	if rp != nil && rp.principal != cl.Principal {
		return s.failAudited(req, errs.E(errs.Denied, "only the requester can run request %s", id)), true
	}
	r, err := s.cfg.Approvals.Check(req.Context(), id, cl)
	if err != nil {
		return s.failAudited(req, err), true
	}
	sum, _, _, err := req.readHeld(true)
	if err != nil {
		return s.failAudited(req, err), true
	}
	ctx := req.Context()
	if rp == nil {
		rec := *req.entry
		rec.Action, rec.Resource, rec.Outcome, rec.Note = authz.ActionRequestsRun, approval.ResourceOf(id), http.StatusOK, ""
		ctx, _ = s.cfg.Audit.Pending(ctx, &rec)
	}
	if _, err := s.cfg.Approvals.MarkRun(ctx, r, cl, sum); err != nil {
		return s.failAudited(req, err), true
	}
	if rp != nil {
		rp.marked = true
	}
	req.held.run = id
	req.entry.Note = "approved request " + id
	s.log.Info("running an approved request", "request", id, "principal", cl.Principal, "action", cl.Action, "request_id", req.id)
	return 0, false
}

// finishRun records the outcome of approved request id's run in the
// request (the record requests.result on Request::"id"). The operation's
// own record already says what happened; this is for the request's
// readers, and a failure here is only logged (a restored snapshot, for
// one, may not hold the request any more).
func (s *Server) finishRun(req *request, id string, status int) {
	rec := &audit.Entry{Time: audit.FormatTime(s.now()), Action: "requests.result", AuthMethod: req.entry.AuthMethod,
		Accessor: req.entry.Accessor, Principal: req.entry.Principal, SourceAddr: req.entry.SourceAddr, RequestID: req.id,
		Resource: approval.ResourceOf(id), Outcome: status}
	ctx, cancel := failureContext(req.Context())
	defer cancel()
	ctx, _ = s.cfg.Audit.Pending(ctx, rec)
	if err := s.cfg.Approvals.Finish(ctx, id, status, req.held.errMsg); err != nil {
		s.log.Info("the outcome of an approved request was not recorded in it", "request", id, "status", status, "request_id", req.id, "err", err)
	}
}

// readHeld reads the whole body and returns its SHA-256, its size and the
// body itself when it is at most approval.MaxStoredBody bytes (never nil
// then, even empty; nil when larger). The body stays readable for the handler: in memory, or, when
// spool is set and it is larger, from an unlinked 0600 temporary file in
// the store's snapshot directory; without spool a larger body is only
// hashed.
func (req *request) readHeld(spool bool) (sum []byte, size int64, body []byte, err error) {
	if req.bodyRead { // read already (by a target function)
		s := sha256.Sum256(req.body)
		if len(req.body) > approval.MaxStoredBody {
			return s[:], int64(len(req.body)), nil, nil
		}
		return s[:], int64(len(req.body)), append([]byte{}, req.body...), nil
	}
	h := sha256.New()
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, io.TeeReader(req.Body, h), approval.MaxStoredBody+1)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, nil, req.bodyError(err)
	}
	if n <= approval.MaxStoredBody {
		req.body, req.bodyRead = append([]byte{}, buf.Bytes()...), true // never nil: a body, maybe empty
		req.Body = io.NopCloser(bytes.NewReader(req.body))
		return h.Sum(nil), n, req.body, nil
	}
	if !spool {
		m, err := io.Copy(h, req.Body)
		if err != nil {
			return nil, 0, nil, req.bodyError(err)
		}
		return h.Sum(nil), n + m, nil, nil
	}
	f, m, err := req.spool(buf.Bytes(), h)
	if err != nil {
		return nil, 0, nil, err
	}
	req.held.spool = f
	req.Body = io.NopCloser(f)
	return h.Sum(nil), n + m, nil, nil
}

// spool writes head, then the rest of the body (hashed into h), to an
// unlinked temporary file, and returns it rewound.
func (req *request) spool(head []byte, h hash.Hash) (*os.File, int64, error) {
	f, err := os.CreateTemp(req.s.cfg.Core.Store().SnapshotDir(), "approved-*.tmp") // mode 0600
	if err != nil {
		return nil, 0, err
	}
	os.Remove(f.Name()) // gone once closed, whatever happens to the request
	m := int64(0)
	if _, err = f.Write(head); err == nil {
		m, err = io.Copy(f, io.TeeReader(req.Body, h))
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, 0, req.bodyError(err)
		}
		return nil, 0, fmt.Errorf("spool the body: %w", err)
	}
	return f, m, nil
}

// requestRoutes are /v1/requests and the dual-control setting.
func (s *Server) requestRoutes() []route {
	const ok = http.StatusOK
	system := func(action string) targetFunc { return fixed(action, authz.TypeSystem, "warden") }
	return []route{
		{method: "GET", pattern: "/v1/requests", name: "requests.list", target: system(authz.ActionRequestsRead), audit: auditRead, status: ok, h: s.requestsH(s.requestList)},
		{method: "GET", pattern: "/v1/requests/{id}", name: "requests.read", target: system(authz.ActionRequestsRead), audit: auditRead, status: ok, h: s.requestsH(s.requestGet)},
		{method: "POST", pattern: "/v1/requests/{id}/approve", name: "requests.approve", target: system(authz.ActionRequestsApprove), audit: auditChange, status: ok, h: s.requestsH(s.requestApprove)},
		{method: "POST", pattern: "/v1/requests/{id}/deny", name: "requests.deny", target: system(authz.ActionRequestsApprove), audit: auditChange, status: ok, h: s.requestsH(s.requestDeny)},
		{method: "POST", pattern: "/v1/requests/{id}/cancel", name: "requests.cancel", target: system(authz.ActionRequestsRun), audit: auditChange, status: ok, h: s.requestsH(s.requestCancel)},
		{method: "POST", pattern: "/v1/requests/{id}/run", name: "requests.run", target: system(authz.ActionRequestsRun), audit: auditChange, status: ok, h: s.requestsH(s.requestRun)},
		{method: "PUT", pattern: "/v1/sys/dual-control", name: "sys.dual-control", target: system(authz.ActionSysDualControl), audit: auditChange, status: ok, h: s.requestsH(s.dualControlPut)},
	}
}

// requestsH answers 503 while dual control is not available.
func (s *Server) requestsH(h handlerFunc) handlerFunc {
	return func(req *request) (int, any, error) {
		if s.cfg.Approvals == nil {
			return 0, nil, errs.E(errs.Unavailable, "dual control is not available on this server")
		}
		return h(req)
	}
}

// requestOf checks the id of the path and names the request in the
// route's record.
func requestOf(req *request) (string, error) {
	id := req.PathValue("id")
	if err := approval.CheckID(id); err != nil {
		return "", err
	}
	if req.entry != nil {
		req.entry.Resource = approval.ResourceOf(id)
	}
	return id, nil
}

func (s *Server) requestList(req *request) (int, any, error) {
	q := req.URL.Query()
	for k := range q {
		if k != "pending" && k != "stale" {
			return 0, nil, errs.E(errs.Invalid, "query parameter %q: unknown (pending)", k)
		}
	}
	open := false
	switch q.Get("pending") {
	case "true":
		open = true
	case "", "false":
	default:
		return 0, nil, errs.E(errs.Invalid, "pending: must be true or false")
	}
	rs, err := s.cfg.Approvals.List(req.Context(), open)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string][]approval.Request{"requests": rs}, nil
}

func (s *Server) requestGet(req *request) (int, any, error) {
	id, err := requestOf(req)
	if err != nil {
		return 0, nil, err
	}
	r, err := s.cfg.Approvals.Get(req.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, r, nil
}

type voteRequest struct {
	Comment string `json:"comment"`
}

func (s *Server) vote(req *request, deny bool) (int, any, error) {
	id, err := requestOf(req)
	if err != nil {
		return 0, nil, err
	}
	var in voteRequest
	if err := req.decode(&in, true); err != nil {
		return 0, nil, err
	}
	v := approval.Voter{Principal: req.caller.String(), Groups: groupsOf(req)}
	var r approval.Request
	if deny {
		req.entry.Action = "requests.deny"
		r, err = s.cfg.Approvals.Deny(req.Context(), id, v, in.Comment)
	} else {
		r, err = s.cfg.Approvals.Approve(req.Context(), id, v, in.Comment)
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, r, nil
}

func (s *Server) requestApprove(req *request) (int, any, error) { return s.vote(req, false) }
func (s *Server) requestDeny(req *request) (int, any, error)    { return s.vote(req, true) }

// requestCancel: the requester, or a holder of requests.approve.
func (s *Server) requestCancel(req *request) (int, any, error) {
	id, err := requestOf(req)
	if err != nil {
		return 0, nil, err
	}
	req.entry.Action = "requests.cancel"
	r, err := s.cfg.Approvals.Get(req.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	approver := false
	if r.Requester != req.caller.String() {
		// Not the requester: only with the right to approve requests.
		if err := s.authorize(req, target{action: authz.ActionRequestsApprove, resource: entity(authz.TypeSystem, "warden", nil)}); err != nil {
			return 0, nil, errs.E(errs.Denied, "only the requester (%s) or a holder of %s may cancel request %s", r.Requester, authz.ActionRequestsApprove, id)
		}
		approver = true
	}
	out, err := s.cfg.Approvals.Cancel(req.Context(), id, req.caller.String(), approver)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, out, nil
}

// requestRun replays a stored, approved request through the pipeline, as
// its caller (who must be the requester), marked with the request's id:
// the replay authenticates, authorizes and checks the request as a
// re-sent one is checked, marks it run with this route's record, and
// answers the caller itself. A request whose body was too large to store
// is refused (409): re-send it with X-Warden-Approved-Request instead.
func (s *Server) requestRun(req *request) (int, any, error) {
	id, err := requestOf(req)
	if err != nil {
		return 0, nil, err
	}
	r, err := s.cfg.Approvals.Get(req.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	// What the replay checks again, refused here before it starts: the
	// caller is the requester, and the request approved, not expired,
	// nor finished.
	claim := approval.Claim{Principal: req.caller.String(), Action: r.Action,
		Resource: r.Resource, Method: r.Method, Path: r.Path, Query: r.Query}
	if _, err := s.cfg.Approvals.Check(req.Context(), id, claim); err != nil {
		return 0, nil, err
	}
	if !r.BodyStored {
		return 0, nil, errs.E(errs.Conflict, "request %s: its body (%d bytes) was too large to store; send the request again with the header %s: %s",
			id, r.BodySize, HeaderApprovedRequest, id)
	}
	body, err := s.cfg.Approvals.Body(req.Context(), id)
	if errs.Is(err, errs.NotFound) {
		// Finished since (a concurrent run): say what it has become.
		if _, err := s.cfg.Approvals.Check(req.Context(), id, claim); err != nil {
			return 0, nil, err
		}
	}
	if err != nil {
		return 0, nil, err
	}
	target := r.Path
	if r.Query != "" {
		target += "?" + r.Query
	}
	rp := &replay{id: id, principal: req.caller.String(), requestID: req.id}
	inner, err := http.NewRequestWithContext(context.WithValue(req.Context(), replayKey{}, rp), r.Method, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, errs.E(errs.Conflict, "request %s: its target %q cannot be replayed", id, target)
	}
	inner.RemoteAddr, inner.TLS, inner.Host = req.RemoteAddr, req.TLS, req.Host
	for _, h := range []string{"Authorization", "X-Warden-Token", "X-Vault-Token"} {
		if v := req.Header.Get(h); v != "" {
			inner.Header.Set(h, v)
		}
	}
	inner.Header.Set("Content-Type", "application/json")
	cw := &captureWriter{ResponseWriter: req.w}
	s.ServeHTTP(cw, inner)
	if !rp.marked {
		// The replay stopped before it ran (refused, or the caller's
		// credentials no longer work): this route's record says so, with
		// what the caller got.
		req.entry.Outcome, req.entry.Error = cw.status(), cw.message()
		if err := s.cfg.Audit.Record(req.Context(), req.entry); err != nil {
			s.log.Error("the record of a refused run was not committed", "request_id", req.id, "err", err)
		}
	}
	req.entry = nil // recorded: with the mark, or just above
	return http.StatusOK, written{}, nil
}

// written is the result of a handler that answered the caller itself.
type written struct{}

func (written) ServeHTTP(http.ResponseWriter, *http.Request) {}

// captureWriter remembers the status of what it writes and the start of
// an error body.
type captureWriter struct {
	http.ResponseWriter
	code int
	head []byte
}

func (w *captureWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *captureWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if w.code >= 400 && len(w.head) < 4096 {
		w.head = append(w.head, b[:min(len(b), 4096-len(w.head))]...)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *captureWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *captureWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

func (w *captureWriter) message() string {
	var e errorBody
	if json.Unmarshal(w.head, &e) == nil && len(e.Errors) > 0 {
		return e.Errors[0]
	}
	if w.code >= 400 {
		return http.StatusText(w.code)
	}
	return ""
}

type dualControlRequest struct {
	Enabled *bool `json:"enabled"`
}

// dualControlPut turns dual control on or off (sys.dual-control; with
// dual control on, the default rules hold this for approval too).
func (s *Server) dualControlPut(req *request) (int, any, error) {
	var in dualControlRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if in.Enabled == nil {
		return 0, nil, errs.E(errs.Invalid, "enabled: required (true or false)")
	}
	if err := s.cfg.Approvals.SetEnabled(req.Context(), *in.Enabled); err != nil {
		return 0, nil, err
	}
	s.log.Warn("dual control changed", "enabled", *in.Enabled, "principal", req.caller.String(), "request_id", req.id)
	return http.StatusOK, map[string]bool{"enabled": *in.Enabled}, nil
}
