package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/barrier"
	"github.com/warden-sec/warden/internal/core"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/identity"
	"github.com/warden-sec/warden/internal/store"
)

func (s *Server) newID() string {
	return s.idBase + "-" + strconv.FormatUint(s.idSeq.Add(1), 36)
}

// statusWriter remembers whether a response was started, so that a panic
// is answered with a 500 only when nothing was written yet.
type statusWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wrap is the middleware chain of one route. A panic in it is logged at
// ERROR with the route and the request id, and answered with a JSON 500
// (or, when the response had already started, by aborting it).
func (s *Server) wrap(rt *route) http.Handler {
	obs := s.metrics.route(rt.name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		req := &request{Request: r, w: sw, s: s, id: s.requestID(r)}
		status := http.StatusInternalServerError
		defer func() { obs(status, time.Since(start)) }()
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic while serving a request", "route", rt.name, "pattern", rt.method+" "+rt.pattern,
				"request_id", req.id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			s.metrics.panics.Inc()
			if sw.wrote {
				panic(http.ErrAbortHandler) // a response half written cannot become an error
			}
			writeError(sw, http.StatusInternalServerError, "internal error; the server log has details under request id "+req.id)
		}()
		status = s.serve(rt, req)
	})
}

// serve runs the pipeline: rate limit, size limit, deadline, then for a
// guarded route authenticate, authorize, run the handler and commit its
// audit record as the route's class says.
func (s *Server) serve(rt *route, req *request) int {
	w := req.w
	w.Header().Set("X-Request-Id", req.id)
	addr := clientKey(req.Request)
	if s.limiter != nil && !s.limiter.allow(addr) {
		s.cfg.ServerEvents.EmitThrottled("rate_limited "+addr, events.ActionRateLimited, events.Event{events.FieldSourceIP: addr})
		w.Header().Set("Retry-After", "1")
		return writeError(w, http.StatusTooManyRequests, "rate limit exceeded; retry later")
	}
	limit := s.cfg.MaxRequestBytes
	if rt.maxBody > 0 {
		limit = rt.maxBody
	}
	if req.ContentLength > limit {
		return writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", limit))
	}
	req.Body = http.MaxBytesReader(w, req.Body, limit)
	// The deadline covers the body too: a body that arrives slowly is cut
	// at it (408), rather than holding the request until the connection's
	// read timeout. Uploads with their own size limit (a snapshot of up to
	// 4 GiB) keep the server's read timeout.
	deadline := time.Now().Add(s.cfg.RequestTimeout)
	handlerDeadline := deadline
	if rt.timeout > 0 {
		handlerDeadline = time.Now().Add(rt.timeout)
	}
	// A stream has no read deadline either: net/http ends a request whose
	// connection read fails, and a read deadline that passes is such a
	// failure (its background read of the connection times out). For the
	// same reason a route with a longer timeout of its own keeps reading
	// until that timeout.
	if rt.maxBody == 0 && !rt.streaming {
		_ = http.NewResponseController(w).SetReadDeadline(handlerDeadline) // not every writer supports it (tests' recorders)
	}
	// The server's write timeout (30 s) is shorter than such a route's own
	// timeout: a response written after it corrupts the TLS stream (the
	// client reads "tls: bad record MAC"), so the route's own deadline,
	// with time to write the answer, replaces it.
	if rt.timeout > 0 {
		_ = http.NewResponseController(w).SetWriteDeadline(handlerDeadline.Add(5 * time.Second))
	}
	ctx, cancel := context.WithDeadline(req.Context(), handlerDeadline)
	if rt.streaming {
		ctx, cancel = context.WithCancel(req.Context())
	}
	defer cancel()
	if q := req.URL.RawQuery; q != "" && (req.Method == "GET" || req.Method == "LIST") {
		switch req.URL.Query().Get("stale") {
		case "true":
			// The caller accepts this node's local view, which may be behind.
			ctx = store.WithStale(ctx)
		case "", "false":
		default:
			return writeError(w, http.StatusBadRequest, "stale: must be true or false")
		}
	}
	req.Request = req.WithContext(ctx)

	if rt.public && rt.audit == auditNone {
		status, body, err := rt.h(req)
		if err == nil {
			err = rt.checkStatus(status)
		}
		if err != nil {
			return s.fail(req, err)
		}
		return respond(req, status, body)
	}
	if s.cfg.Core.Sealed() {
		return s.fail(req, core.ErrSealed)
	}
	entry := &audit.Entry{Time: audit.FormatTime(s.now()), AuthMethod: "token", SourceAddr: addr,
		RequestID: req.id, Action: rt.name}
	req.entry = entry
	if rt.public {
		// A credential exchange (enrollment): its handler authenticates
		// the caller and fills in the record. An address out of failure
		// budget is refused before any of that work.
		if out, _ := s.fails.exhausted(addr, s.now()); out {
			return s.failUnauthenticated(req, rt.name, errs.E(errs.RateLimited, "too many failed requests"))
		}
		return s.serveAudited(rt, req, entry)
	}
	c, tok, err := s.authenticate(req.Request)
	if err != nil {
		return s.failUnauthenticated(req, "authenticate", err)
	}
	req.caller, req.tok = c, tok
	entry.Principal, entry.AuthMethod = c.String(), c.method
	if tok != nil {
		entry.Accessor = tok.Accessor
	}
	// A write forwarded to the leader names the caller it is made for.
	req.Request = req.WithContext(store.WithPrincipal(req.Context(), c.String()))
	tg, err := rt.target(req)
	if err != nil {
		return s.failAudited(req, err)
	}
	entry.Action, entry.Resource = tg.action, tg.resource.UID.String()
	if err := s.respondGate(rt, c); err != nil {
		return s.failAudited(req, err)
	}
	if err := s.authorize(req, tg); err != nil {
		return s.failAudited(req, err)
	}
	if s.cfg.Approvals != nil {
		return s.serveDualControl(rt, req, tg, entry) // requests.go
	}
	return s.serveAudited(rt, req, entry)
}

// checkStatus refuses a success status other than the declared one. A
// handler may answer a status that is not a success with a body (health
// reports 501 and 503 this way).
func (rt *route) checkStatus(status int) error {
	if status != rt.status && status >= 200 && status < 300 {
		return errs.E(errs.Internal, "route %s %s answered %d, declared %d", rt.method, rt.pattern, status, rt.status)
	}
	return nil
}

// serveAudited runs the handler with the request's audit record pending.
func (s *Server) serveAudited(rt *route, req *request, entry *audit.Entry) int {
	var pending *core.PendingAudit
	if rt.audit == auditChange {
		entry.Outcome = rt.status
		var ctx context.Context
		ctx, pending = s.cfg.Audit.Pending(req.Context(), entry)
		req.Request = req.WithContext(ctx)
	}
	status, body, err := rt.h(req)
	if err == nil {
		err = rt.checkStatus(status)
	}
	if err != nil {
		if rt.public && !errors.Is(err, errNotAFailure) {
			return s.failUnauthenticated(req, rt.name, err)
		}
		if rt.public {
			return s.fail(req, err)
		}
		return s.failAudited(req, err)
	}
	if req.entry != nil && ((rt.audit == auditChange && !pending.Committed()) || rt.audit == auditRead) {
		// Nothing carried the record (a no-op, a change outside the store's
		// transactions, or a read of protected data): commit it before the
		// response leaves, or fail.
		entry.Outcome = status
		if err := s.cfg.Audit.Record(req.Context(), entry); err != nil {
			return s.auditFailed(req, err)
		}
	}
	return respond(req, status, body)
}

// respond writes a handler's result.
func respond(req *request, status int, body any) int {
	if h, ok := body.(http.Handler); ok {
		h.ServeHTTP(req.w, req.Request)
		return status
	}
	return writeJSON(req.w, status, body)
}

// failAudited records a failed authenticated request (every deny among
// them) and writes the error; if the record cannot be committed the caller
// gets 503 instead. A failure whose record already committed with a change
// cannot happen: a change that committed does not fail afterwards.
func (s *Server) failAudited(req *request, err error) int {
	code := errs.CodeOf(err)
	if code == errs.Unavailable || req.entry == nil {
		return s.fail(req, err)
	}
	req.entry.Outcome = statusFor(err)
	req.entry.Error = errorSummary(err, code)
	ctx, cancel := failureContext(req.Context())
	defer cancel()
	if rerr := s.cfg.Audit.Record(ctx, req.entry); rerr != nil {
		return s.auditFailed(req, rerr)
	}
	return s.fail(req, err)
}

// failureGrace is how long past the request's deadline the record of a
// failure that is the deadline (a stalled body, a slow service) may take
// to commit: long enough for a group commit, so that the record is
// confirmed rather than abandoned mid-commit.
const failureGrace = 2 * time.Second

// failureContext is the context a failure's record is committed under:
// the request's, or a short grace when the request's is already done.
func failureContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Err() == nil {
		return ctx, func() {}
	}
	return context.WithTimeout(context.WithoutCancel(ctx), failureGrace)
}

// errNotAFailure marks the error of a public route's answer that is no
// failed authentication (a device login's poll while the user has not
// approved yet): it is answered, and neither counted nor takes from the
// address's failure budget.
var errNotAFailure = errors.New("not a failed authentication")

// failUnauthenticated answers a request that failed before its caller was
// authenticated. Nothing is committed for it: the failure is counted (by
// reason) and summed into the address's aggregated record, and it takes
// one from the address's failure budget; once that is empty the answer is
// 429 with Retry-After. Failures that are not the caller's (sealed, no
// leader, internal errors) are only answered.
func (s *Server) failUnauthenticated(req *request, reason string, err error) int {
	code := errs.CodeOf(err)
	if code == errs.Unavailable || code == errs.Internal {
		return s.fail(req, err)
	}
	s.metrics.authFailures.WithLabelValues(reason).Inc()
	if throttled, wait := s.fails.add(clientKey(req.Request), reason, statusFor(err), s.now()); throttled {
		s.metrics.authThrottled.Inc()
		req.w.Header().Set("Retry-After", strconv.Itoa(wait))
		return writeError(req.w, http.StatusTooManyRequests,
			fmt.Sprintf("too many failed authentications from this address; retry in %d s", wait))
	}
	return s.fail(req, err)
}

// errorSummary is what an entry says about a failure: the safe message, or
// only the code for internal errors.
func errorSummary(err error, code errs.Code) string {
	if code == errs.Internal {
		return string(code)
	}
	return err.Error()
}

// auditFailed answers 503 when a record cannot be committed: no audited
// operation succeeds silently unaudited. The log says "not committed" only
// when that is known; a record whose commit was still under way at the
// deadline may yet commit.
func (s *Server) auditFailed(req *request, err error) int {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		s.log.Error("audit record not confirmed before the request's deadline (it may still commit); refusing the request",
			"request_id", req.id, "err", err)
	case errors.Is(err, auditlog.ErrSinkFailed) || errors.Is(err, audit.ErrInvalidEntry) || errors.Is(err, barrier.ErrSealed):
		s.log.Error("audit record not committed; refusing the request", "request_id", req.id, "err", err)
	default:
		s.log.Error("audit record not confirmed committed; refusing the request", "request_id", req.id, "err", err)
	}
	return s.fail(req, errs.Wrap(errs.Unavailable, err, "the audit log is unavailable; the request was refused"))
}

// errSlowBody is the cause of the error of a body that did not arrive by
// the request's deadline (answered 408).
var errSlowBody = errors.New("request body not received by the deadline")

// bodyError maps an error reading the request body.
func (req *request) bodyError(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return errs.E(errs.TooLarge, "request body is larger than %d bytes", mbe.Limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errs.Wrap(errs.Invalid, errSlowBody, "request body: not received within the request deadline (%s); send it at once",
			req.s.cfg.RequestTimeout)
	}
	return errs.E(errs.Invalid, "request body: %s", err.Error())
}

// statusFor is the HTTP status of an error.
func statusFor(err error) int {
	if errors.Is(err, errSlowBody) {
		return http.StatusRequestTimeout
	}
	return statusOf(errs.CodeOf(err))
}

// fail writes err as a JSON error. Internal errors are logged with the
// request id and shown only as that id.
func (s *Server) fail(req *request, err error) int {
	code := errs.CodeOf(err)
	status := statusFor(err)
	msg := err.Error()
	if code == errs.Internal {
		s.log.Error("request failed", "request_id", req.id, "route", req.Pattern, "err", err)
		msg = "internal error; the server log has details under request id " + req.id
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		req.w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(err)))
	}
	req.held.errMsg = msg
	return writeError(req.w, status, msg)
}

// retryAfterSeconds is the Retry-After, in seconds, of an error answered
// with 429 or 503: the wait it carries (errs.WithRetryAfter), rounded up,
// else 1.
func retryAfterSeconds(err error) int {
	if d := errs.RetryAfter(err); d > 0 {
		return int(min((d+time.Second-1)/time.Second, math.MaxInt32))
	}
	return 1
}

// authenticate identifies the caller: a bearer token, or else a client
// certificate verified by TLS against the trust bundle.
func (s *Server) authenticate(r *http.Request) (*caller, *identity.Token, error) {
	var tok string
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return nil, nil, errs.E(errs.Unauthenticated, "Authorization header: expected \"Bearer <token>\"")
		}
		tok = strings.TrimSpace(rest)
	} else if tok = r.Header.Get("X-Warden-Token"); tok == "" {
		// Vault's clients send their token here: a program written for
		// Vault's API changes its address and token, not its headers.
		tok = r.Header.Get("X-Vault-Token")
	}
	if tok == "" {
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && s.cfg.Nodes != nil {
			id, err := s.cfg.Nodes.AuthenticateCert(r.TLS.VerifiedChains[0][0])
			if err != nil {
				if strings.Contains(err.Error(), "revoked") {
					s.serverEvent(r, events.ActionRevokedCertificate, r.TLS.VerifiedChains[0][0])
				}
				return nil, nil, err
			}
			return nodeCaller(id), nil, nil
		}
		return nil, nil, errs.E(errs.Unauthenticated, "missing token: send Authorization: Bearer <token> or a client certificate")
	}
	t, err := s.cfg.Tokens.Authenticate(tok)
	if err != nil {
		return nil, nil, err
	}
	if t.NeedsTouch(s.now()) {
		// A session in use does not reach its idle timeout: the server
		// renews it, with a record of its own.
		s.cfg.Tokens.Touch(t, func(ctx context.Context) context.Context {
			e := auditlog.SystemEntry(s.now(), s.cfg.Core.Store().NodeID(), "token.touch", `Token::"`+t.Accessor+`"`)
			e.Accessor = t.Accessor
			ctx, _ = s.cfg.Audit.Pending(ctx, e)
			return ctx
		})
	}
	return s.tokenCaller(t), t, nil
}
