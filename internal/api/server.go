// Package api is Warden's HTTP API: routing, the middleware every request goes
// through (limits, rate limiting, seal check, authentication, authorization),
// strict JSON decoding, and the mapping of application errors to HTTP status.
//
// Handlers are thin: they decode, call a service, encode. api holds no state of
// its own beyond rate limiters and metrics, and it never puts a token, secret
// or key into a log line or an error message.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/authority"
	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/core"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/identity"
	"github.com/warden-sec/warden/internal/policy"
	"github.com/warden-sec/warden/internal/secrets"
	"github.com/warden-sec/warden/internal/store"
)

// Config wires the API to the services.
type Config struct {
	Core   *core.Core
	Tokens *identity.Service
	KV     *secrets.Engine
	Audit  *auditlog.Service
	CA     *authority.Service
	Nodes  *authority.Nodes
	// Cluster is set in cluster mode (join, admit, remove peers).
	Cluster Cluster
	// CAInit says how init makes the CA (trust domain, key type, or an
	// operator's CA); fixed at init.
	CAInit   authority.InitOptions
	Policies *policy.Service
	Logger   *slog.Logger          // nil: discard
	Metrics  prometheus.Registerer // nil: metrics are not registered
	Gather   prometheus.Gatherer   // serves /metrics; nil: 404
	Now      func() time.Time

	MaxRequestBytes int64         // default 1 MiB
	RateLimit       float64       // requests per second per client; 0: default; <0: off
	RateBurst       int           // default 2×RateLimit
	RequestTimeout  time.Duration // default 10s: a request never hangs longer
}

// Defaults.
const (
	// MaxSnapshotBytes bounds a snapshot uploaded for restore.
	MaxSnapshotBytes = 4 << 30

	DefaultMaxRequestBytes = 1 << 20
	DefaultRateLimit       = 20000
	DefaultRequestTimeout  = 10 * time.Second
)

// Server is the HTTP handler. Safe for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	limiter *limiter
	metrics *metrics
	now     func() time.Time
	idBase  string
	idSeq   atomic.Uint64
	routes  []*route
}

// New builds the API handler.
func New(cfg Config) *Server {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = int(2 * cfg.RateLimit)
		if cfg.RateBurst < 1 {
			cfg.RateBurst = 1
		}
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	s := &Server{cfg: cfg, log: log, mux: http.NewServeMux(), now: cfg.Now, idBase: hex.EncodeToString(b[:])}
	if cfg.RateLimit > 0 {
		s.limiter = newLimiter(cfg.RateLimit, cfg.RateBurst)
	}
	s.metrics = newMetrics(cfg.Metrics, cfg.Core)
	s.register()
	return s
}

// Close stops background work (the rate limiter's sweeper).
func (s *Server) Close() {
	if s.limiter != nil {
		s.limiter.stop()
	}
}

// ServeHTTP implements http.Handler.
// A path that is not canonical ("//", "." or ".." segments) is refused
// rather than cleaned and redirected, so a request never lands on another
// path than the one the client named.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "/../") ||
		strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") {
		writeError(w, http.StatusBadRequest, "path: not canonical (no empty, \".\" or \"..\" segments)")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Routes lists the registered routes as "METHOD PATTERN" (for tests that must
// walk every endpoint).
func (s *Server) Routes() []RouteInfo {
	out := make([]RouteInfo, 0, len(s.routes))
	for _, rt := range s.routes {
		out = append(out, RouteInfo{Method: rt.method, Pattern: rt.pattern, Name: rt.name, Auth: rt.auth})
	}
	return out
}

// RouteInfo describes a route.
type RouteInfo struct {
	Method, Pattern, Name string
	Auth                  bool // needs a token
}

type handlerFunc func(*request) (int, any, error)

// public marks a route that needs no token (status, init, unseal, health).
var public targetFunc

type route struct {
	method, pattern, name string
	auth                  bool
	target                targetFunc
	h                     handlerFunc
	audit                 auditMode
	okStatus              int   // the status a successful change answers with
	maxBody               int64 // 0: the server's limit
}

// auditMode says what a route records in the audit log.
type auditMode int

const (
	auditNone   auditMode = iota // no record unless it fails (denies, bad requests)
	auditChange                  // a state change: its record rides in the change's Raft command
	auditRead                    // an access to secret material: recorded before the response
)

// request is one request's context for a handler.
type request struct {
	*http.Request
	w      http.ResponseWriter
	s      *Server
	id     string
	tok    *identity.Token // nil unless authenticated by token
	caller *caller
	// entry is the request's audit record (authenticated routes).
	entry *audit.Entry
	// parsed is a body a target function already decoded, for the handler.
	parsed any
}

// handle registers a route. tf nil means public; otherwise the caller needs a
// token and the "warden" policy store must permit tf's action and resource.
func (s *Server) handle(method, pattern, name string, tf targetFunc, h handlerFunc) {
	rt := &route{method: method, pattern: pattern, name: name, auth: tf != nil, target: tf, h: h, okStatus: http.StatusOK}
	switch {
	case name == "pki.enroll" || name == "pki.renew" || name == "pki.reenroll":
		rt.audit = auditChange // certificate issuance, authenticated by a join token
	case tf == nil:
	case name == "kv.read" || name == "raft.snapshot.save":
		rt.audit = auditRead
	case method == "GET" || method == "LIST" || name == "authz.check" || name == "authz.check-batch" ||
		name == "token.lookup" || name == "audit.hash" || name == "conduit.check":
		rt.audit = auditNone
	default:
		rt.audit = auditChange
	}
	switch name {
	case "kv.delete", "token.revoke", "sys.seal", "raft.remove", "authz.store.create", "authz.store.delete", "policy.delete", "authz.schema.write":
		rt.okStatus = http.StatusNoContent
	}
	s.routes = append(s.routes, rt)
	s.mux.Handle(method+" "+pattern, s.wrap(rt))
}

func (s *Server) register() {
	s.handle("GET", "/v1/sys/health", "sys.health", public, s.health)
	s.handle("GET", "/v1/sys/seal-status", "sys.seal-status", public, s.sealStatus)
	s.handle("POST", "/v1/sys/init", "sys.init", public, s.initialize)
	s.handle("POST", "/v1/sys/unseal", "sys.unseal", public, s.unseal)
	s.handle("GET", "/v1/pki/ca", "pki.ca", public, s.pkiCA)
	s.handle("GET", "/v1/pki/crl", "pki.crl", public, s.pkiCRL)
	s.handle("POST", "/v1/pki/ocsp", "pki.ocsp", public, s.pkiOCSP)
	s.handle("GET", "/v1/pki/ocsp/{req...}", "pki.ocsp", public, s.pkiOCSP)
	s.handle("POST", "/v1/pki/enroll", "pki.enroll", public, s.enroll)
	s.handle("POST", "/v1/pki/renew", "pki.renew", public, s.renew)
	s.handle("POST", "/v1/pki/reenroll", "pki.reenroll", public, s.reenroll)
	s.handle("GET", "/v1/pki/certs", "cert.list", fixed(authz.ActionCertList, authz.TypeCertificate, "*"), s.certList)
	s.handle("POST", "/v1/zones", "zone.create", fixed(authz.ActionZoneCreate, authz.TypeZone, "*"), s.zoneCreate)
	s.handle("GET", "/v1/zones", "zone.list", fixed(authz.ActionZoneList, authz.TypeZone, "*"), s.zoneList)
	s.handle("POST", "/v1/conduits", "conduit.create", fixed(authz.ActionConduitCreate, authz.TypeZone, "*"), s.conduitCreate)
	s.handle("POST", "/v1/conduits/check", "conduit.check", fixed(authz.ActionConduitCheck, authz.TypeZone, "*"), s.conduitCheck)
	s.handle("POST", "/v1/nodes/tokens", "node.create", nodeTokenTarget, s.nodeToken)
	s.handle("POST", "/v1/nodes/{name}/revoke", "node.revoke", nodeTarget(authz.ActionNodeRevoke), s.nodeRevoke)
	s.handle("GET", "/v1/nodes", "node.list", nodeTarget(authz.ActionNodeList), s.nodeList)
	s.handle("GET", "/v1/nodes/{name}", "node.read", nodeTarget(authz.ActionNodeRead), s.nodeRead)
	s.handle("POST", "/v1/sys/seal", "sys.seal", fixed(authz.ActionSysSeal, authz.TypeSystem, "warden"), s.seal)
	s.handle("POST", "/v1/sys/rotate", "sys.rotate", fixed(authz.ActionSysRotate, authz.TypeSystem, "warden"), s.rotate)
	s.handle("GET", "/v1/sys/key-status", "sys.key-status", fixed(authz.ActionSysKeyStatus, authz.TypeSystem, "warden"), s.keyStatus)
	s.handle("POST", "/v1/sys/raft/join", "raft.join-cluster", public, s.raftJoin)
	s.handle("POST", "/v1/sys/raft/peers", "raft.join", fixed(authz.ActionRaftJoin, authz.TypeSystem, "warden"), s.raftAdmit)
	s.handle("GET", "/v1/sys/raft/peers", "raft.read", fixed(authz.ActionRaftRead, authz.TypeSystem, "warden"), s.raftPeers)
	s.handle("DELETE", "/v1/sys/raft/peers/{id}", "raft.remove", fixed(authz.ActionRaftRemove, authz.TypeSystem, "warden"), s.raftRemove)
	s.handle("GET", "/v1/sys/raft/snapshot", "raft.snapshot.save", fixed(authz.ActionRaftSnapshotSave, authz.TypeSystem, "warden"), s.raftSnapshotSave)
	s.handle("POST", "/v1/sys/raft/snapshot", "raft.snapshot.restore", fixed(authz.ActionRaftSnapshotRestore, authz.TypeSystem, "warden"), s.raftSnapshotRestore)
	s.routes[len(s.routes)-1].maxBody = MaxSnapshotBytes

	s.handle("POST", "/v1/auth/token/create", "token.create", tokenCreateTarget, s.tokenCreate)
	s.handle("GET", "/v1/auth/token/lookup-self", "token.lookup-self", selfTarget, s.tokenLookupSelf)
	s.handle("POST", "/v1/auth/token/lookup", "token.lookup", fixed(authz.ActionTokenLookup, authz.TypeToken, "*"), s.tokenLookup)
	s.handle("GET", "/v1/auth/whoami", "auth.whoami", fixed(authz.ActionAuthWhoami, authz.TypeToken, "self"), s.whoami)
	s.handle("POST", "/v1/auth/token/revoke", "token.revoke", fixed(authz.ActionTokenRevoke, authz.TypeToken, "*"), s.tokenRevoke)

	s.handle("GET", "/v1/kv/data/{path...}", "kv.read", secret(authz.ActionKVRead), s.kvGet)
	s.handle("PUT", "/v1/kv/data/{path...}", "kv.write", secret(authz.ActionKVWrite), s.kvPut)
	s.handle("POST", "/v1/kv/data/{path...}", "kv.write", secret(authz.ActionKVWrite), s.kvPut)
	s.handle("DELETE", "/v1/kv/data/{path...}", "kv.delete", secret(authz.ActionKVDelete), s.kvDelete)
	s.handle("GET", "/v1/kv/metadata/{path...}", "kv.metadata", kvMetadataTarget, s.kvMetadata)
	s.handle("LIST", "/v1/kv/metadata/{path...}", "kv.list", secret(authz.ActionKVList), s.kvList)

	s.handle("GET", "/v1/authz/stores", "authz.store.list", fixed(authz.ActionAuthzStoreList, authz.TypePolicyStore, "*"), s.storeList)
	s.handle("POST", "/v1/authz/stores", "authz.store.create", fixed(authz.ActionAuthzStoreCreate, authz.TypePolicyStore, "*"), s.storeCreate)
	s.handle("DELETE", "/v1/authz/stores/{store}", "authz.store.delete", storeTarget(authz.ActionAuthzStoreDelete), s.storeDelete)
	s.handle("GET", "/v1/authz/stores/{store}/policies", "policy.list", storeTarget(authz.ActionPolicyList), s.policyList)
	s.handle("GET", "/v1/authz/stores/{store}/policies/{name}", "policy.read", policyTarget(authz.ActionPolicyRead), s.policyRead)
	s.handle("PUT", "/v1/authz/stores/{store}/policies/{name}", "policy.write", policyTarget(authz.ActionPolicyWrite), s.policyWrite)
	s.handle("DELETE", "/v1/authz/stores/{store}/policies/{name}", "policy.delete", policyTarget(authz.ActionPolicyDelete), s.policyDelete)
	s.handle("PUT", "/v1/authz/stores/{store}/schema", "authz.schema.write", storeTarget(authz.ActionAuthzSchemaWrite), s.schemaWrite)
	s.handle("PUT", "/v1/authz/stores/{store}/entities", "authz.entities.write", storeTarget(authz.ActionAuthzEntitiesWrite), s.entitiesWrite)
	s.handle("POST", "/v1/authz/stores/{store}/check", "authz.check", storeTarget(authz.ActionAuthzCheck), s.check)
	s.handle("POST", "/v1/authz/stores/{store}/check-batch", "authz.check-batch", storeTarget(authz.ActionAuthzCheck), s.checkBatch)

	s.handle("GET", "/v1/audit/verifier", "audit.verifier", auditLog, s.auditVerifier)
	s.handle("GET", "/v1/audit/checkpoint", "audit.checkpoint", auditLog, s.auditCheckpoint)
	s.handle("GET", "/v1/audit/entries", "audit.entries", auditLog, s.auditEntries)
	s.handle("GET", "/v1/audit/proof/inclusion", "audit.proof.inclusion", auditLog, s.auditInclusion)
	s.handle("GET", "/v1/audit/proof/consistency", "audit.proof.consistency", auditLog, s.auditConsistency)
	s.handle("POST", "/v1/audit/hash", "audit.hash", fixed(authz.ActionAuditHash, authz.TypeAuditLog, "warden"), s.auditHash)

	if s.cfg.Gather != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gather, promhttp.HandlerOpts{}))
	}
	// Anything else: a JSON 404, and a JSON 405 for a known path with another method.
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		for _, rt := range s.routes {
			if s.patternMatches(rt.pattern, r.URL.Path) {
				writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path))
				return
			}
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no API endpoint at %s", r.URL.Path))
	})
}

// patternMatches reports whether path matches a route pattern (for 405s).
func (s *Server) patternMatches(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	for i, p := range ps {
		if p == "{path...}" {
			return true
		}
		if i >= len(xs) {
			return false
		}
		if !(strings.HasPrefix(p, "{") && xs[i] != "") && p != xs[i] {
			return false
		}
	}
	return len(ps) == len(xs)
}

func (s *Server) newID() string {
	return s.idBase + "-" + strconv.FormatUint(s.idSeq.Add(1), 36)
}

// wrap is the middleware chain of one route.
func (s *Server) wrap(rt *route) http.Handler {
	obs := s.metrics.route(rt.name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		req := &request{Request: r, w: w, s: s, id: s.newID()}
		status := s.serve(rt, req)
		obs(status, time.Since(start))
	})
}

func (s *Server) serve(rt *route, req *request) int {
	w := req.w
	w.Header().Set("X-Request-Id", req.id)
	if s.limiter != nil && !s.limiter.allow(clientKey(req.Request)) {
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
	ctx, cancel := context.WithTimeout(req.Context(), s.cfg.RequestTimeout)
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

	if !rt.auth && rt.audit == auditNone {
		status, body, err := rt.h(req)
		if err != nil {
			return s.fail(req, err)
		}
		return writeJSON(w, status, body)
	}
	if s.cfg.Core.Sealed() {
		return s.fail(req, core.ErrSealed)
	}
	entry := &audit.Entry{Time: audit.FormatTime(s.now()), AuthMethod: "token", SourceAddr: clientKey(req.Request),
		RequestID: req.id, Action: rt.name}
	req.entry = entry
	if !rt.auth {
		// A public route that changes state (enrollment): its handler
		// authenticates the caller and fills in the record.
		return s.serveAudited(rt, req, entry)
	}
	c, tok, err := s.authenticate(req.Request)
	if err != nil {
		return s.failAudited(req, err)
	}
	req.caller, req.tok = c, tok
	entry.Principal, entry.AuthMethod = c.String(), c.method
	// A write forwarded to the leader names the caller it is made for.
	req.Request = req.WithContext(store.WithPrincipal(req.Context(), c.String()))
	tg, err := rt.target(req)
	if err != nil {
		return s.failAudited(req, err)
	}
	entry.Action, entry.Resource = tg.action, tg.resource.UID.String()
	if err := s.authorize(req, tg); err != nil {
		return s.failAudited(req, err)
	}
	return s.serveAudited(rt, req, entry)
}

// serveAudited runs the handler with the request's audit record pending.
func (s *Server) serveAudited(rt *route, req *request, entry *audit.Entry) int {
	w := req.w
	var pending *core.PendingAudit
	if rt.audit == auditChange {
		entry.Outcome = rt.okStatus
		pending = core.NewPendingAudit(func() (store.AuditLeaf, error) { return s.cfg.Audit.ChangeLeaf(entry) })
		req.Request = req.WithContext(core.WithPendingAudit(req.Context(), pending))
	}
	status, body, err := rt.h(req)
	if err != nil {
		return s.failAudited(req, err)
	}
	if req.entry != nil && ((rt.audit == auditChange && !pending.Committed()) || rt.audit == auditRead) {
		// Nothing carried the record (a no-op, a change outside the store's
		// transactions, or a read of secret material): commit it before the
		// response leaves, or fail.
		entry.Outcome = status
		if err := s.cfg.Audit.Record(req.Context(), entry); err != nil {
			return s.auditFailed(req, err)
		}
	}
	return writeJSON(w, status, body)
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
	req.entry.Outcome = statusOf(code)
	req.entry.Error = errorSummary(err, code)
	if rerr := s.cfg.Audit.Record(req.Context(), req.entry); rerr != nil {
		return s.auditFailed(req, rerr)
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
// operation succeeds silently unaudited.
func (s *Server) auditFailed(req *request, err error) int {
	s.log.Error("audit record not committed; refusing the request", "request_id", req.id, "err", err)
	return s.fail(req, errs.Wrap(errs.Unavailable, err, "the audit log is unavailable; the request was refused"))
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
	} else {
		tok = r.Header.Get("X-Warden-Token")
	}
	if tok == "" {
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && s.cfg.Nodes != nil {
			id, err := s.cfg.Nodes.AuthenticateCert(r.TLS.VerifiedChains[0][0])
			if err != nil {
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
	return tokenCaller(t), t, nil
}

// needToken is the error of token endpoints called with a certificate.
var needToken = errs.E(errs.Invalid, "this endpoint needs token authentication")

// fail writes err as a JSON error. Internal errors are logged with the
// request id and shown only as that id.
func (s *Server) fail(req *request, err error) int {
	code := errs.CodeOf(err)
	status := statusOf(code)
	msg := err.Error()
	if code == errs.Internal {
		s.log.Error("request failed", "request_id", req.id, "route", req.Pattern, "err", err)
		msg = "internal error; the server log has details under request id " + req.id
	}
	if status == http.StatusServiceUnavailable {
		req.w.Header().Set("Retry-After", "1")
	}
	return writeError(req.w, status, msg)
}

func statusOf(c errs.Code) int {
	switch c {
	case errs.Invalid:
		return http.StatusBadRequest
	case errs.Unauthenticated:
		return http.StatusUnauthorized
	case errs.Denied:
		return http.StatusForbidden
	case errs.NotFound:
		return http.StatusNotFound
	case errs.Conflict:
		return http.StatusConflict
	case errs.Precondition:
		return http.StatusPreconditionFailed
	case errs.TooLarge:
		return http.StatusRequestEntityTooLarge
	case errs.RateLimited:
		return http.StatusTooManyRequests
	case errs.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// clientKey identifies a client for rate limiting: its IP address.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
