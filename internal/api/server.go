// Package api is Warden's HTTP API: routing, the middleware every request goes
// through (limits, rate limiting, seal check, authentication, authorization),
// strict JSON decoding, and the mapping of application errors to HTTP status.
//
// Handlers are thin: they decode, call a service, encode. api holds no state of
// its own beyond rate limiters, metrics and a cache of parsed request entity
// sets, and it never puts a token, secret or key into a log line or an error
// message.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/warden-sec/warden/internal/approval"
	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/authority"
	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/compliance/records"
	"github.com/warden-sec/warden/internal/console"
	"github.com/warden-sec/warden/internal/core"
	"github.com/warden-sec/warden/internal/decisionlog"
	"github.com/warden-sec/warden/internal/detect"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/identity"
	"github.com/warden-sec/warden/internal/policy"
	wresp "github.com/warden-sec/warden/internal/respond"
	"github.com/warden-sec/warden/internal/secrets"
	"github.com/warden-sec/warden/internal/transit/engine"
	"github.com/warden-sec/warden/internal/users"
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
	// Transit serves /v1/transit (nil: its routes answer 503).
	Transit *engine.Engine
	// Rules, Alerts and Notifiers serve detection (nil: its routes answer
	// 503).
	Rules     *detect.Rules
	Alerts    *detect.Alerts
	Notifiers *detect.Notifiers
	// Playbooks serves playbooks and the approval of pending decisions
	// (nil: their routes answer 503).
	Playbooks *wresp.Playbooks
	Logger    *slog.Logger          // nil: discard
	Metrics   prometheus.Registerer // nil: metrics are not registered
	Gather    prometheus.Gatherer   // serves /metrics; nil: 404
	// MetricsPublic serves /metrics without credentials; otherwise it
	// needs the action metrics.read on System::"warden".
	MetricsPublic bool
	Now           func() time.Time

	// MaxRequestBytes bounds a request body (the whole body, not one value
	// in it); default 1 MiB.
	MaxRequestBytes int64
	RateLimit       float64 // requests per second per client address; 0: DefaultRateLimit; <0: off
	RateBurst       int     // default 2×RateLimit
	// RequestTimeout bounds a request, reading its body included; default
	// 10s: a request never hangs longer.
	RequestTimeout time.Duration
	// AuthFailureRate and AuthFailureBurst are the failure budget of one
	// client address: requests that fail authentication beyond it answer
	// 429 until it refills. 0: DefaultAuthFailureRate, DefaultAuthFailureBurst.
	AuthFailureRate  float64
	AuthFailureBurst int
	// AuthFailureWindow is how often the aggregated records of failed
	// unauthenticated requests are committed (default one minute).
	AuthFailureWindow time.Duration

	// DecisionLog, if set, is given every decision of the decision API
	// (see internal/decisionlog); it must not block.
	DecisionLog DecisionLogger

	// EventsMaxBatchBytes bounds a batch of POST /v1/events, compressed
	// and decompressed (0: events.DefaultMaxBatchBytes, 4 MiB).
	EventsMaxBatchBytes int64
	// EventsInFlight bounds the batches stored at once (0:
	// DefaultEventsInFlight); beyond it POST /v1/events answers 429.
	EventsInFlight int
	// ServerEvents, if set, takes this server's own security events
	// (revoked certificates presented, root token used, rate limiting);
	// it never blocks.
	ServerEvents *events.Emitter
	// Records and Compliance serve compliance (docs/compliance.md; nil:
	// its routes answer 503).
	Records    *records.Service
	Compliance ComplianceSource

	// Decisions and DecisionFeed serve decisions, the never-block list and
	// the decision stream (nil: those routes answer 503, and no request is
	// refused for a quarantine or a ban). MaxDecisionStreams bounds the
	// streams served at once (0: DefaultMaxDecisionStreams).
	Decisions          *wresp.Decisions
	DecisionFeed       *wresp.Feed
	MaxDecisionStreams int
	// Incidents serves /v1/incidents (nil: its routes answer 503); its
	// reports read the audit log (Audit).
	Incidents *wresp.Incidents
	// Witnesses gets checkpoints cosigned and keeps the external
	// witnesses (nil: checkpoints are served without cosignatures and the
	// witness routes answer 503).
	Witnesses Witnesses

	// Approvals keeps the requests of dual control and its setting
	// (docs/governance.md; nil: no request is held, and /v1/requests and
	// /v1/sys/dual-control answer 503). BreakGlassGroup names the group
	// whose members run what needs approval without it, raising a
	// critical alert ("": none). DualControlAtInit: an init this server
	// serves turns dual control on.
	Approvals         *approval.Service
	BreakGlassGroup   string
	DualControlAtInit bool

	// Users keeps user accounts and their logins (docs/people.md; nil:
	// /v1/users and the password logins answer 503). WebAuthnRPID and
	// WebAuthnOrigins are the passkeys' relying party ("": no passkeys).
	Users           *users.Service
	WebAuthnRPID    string
	WebAuthnOrigins []string
	// DevicePollWait is how long one poll of an OpenID Connect device
	// login waits for the user's approval before answering pending (0:
	// DefaultDevicePollWait).
	DevicePollWait time.Duration

	// testRoutes are appended to the route table (tests of this package).
	testRoutes []route
}

// DecisionLogger takes the decision API's decisions, without blocking.
type DecisionLogger interface {
	Log(decisionlog.Entry)
}

var _ DecisionLogger = (*decisionlog.Logger)(nil)

// Defaults.
const (
	// MaxSnapshotBytes bounds a snapshot uploaded for restore.
	MaxSnapshotBytes = 4 << 30

	DefaultMaxRequestBytes = 1 << 20
	// DefaultRateLimit is requests per second per client address (burst
	// twice as many). An audited request stores about 1 KB (Raft entry,
	// encrypted leaf, Merkle nodes) that is never deleted: at 200/s one
	// address with a valid token adds at most about 17 GB a day, which
	// alerts and a token revocation stop long before a disk fills, where
	// the former 20,000/s could add 1.7 TB. Unauthenticated requests store
	// nothing per request (see authFailures). Load tests raise it with
	// --rate-limit.
	DefaultRateLimit      = 200
	DefaultRequestTimeout = 10 * time.Second
	// DefaultAuthFailureRate and DefaultAuthFailureBurst are a client
	// address's budget of requests that fail authentication.
	DefaultAuthFailureRate  = 5
	DefaultAuthFailureBurst = 20
	// DefaultAuthFailureWindow is the period of aggregated failure records.
	DefaultAuthFailureWindow = time.Minute
	// MaxAuthFailureAddrs bounds the addresses tracked per window; the
	// failures of any further address are folded into one "other" row.
	MaxAuthFailureAddrs = 4096
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
	fails   *authFailures
	// exposition serves /metrics (nil without Config.Gather).
	exposition http.Handler
	// entitySets are the decision API's recently repeated request entity
	// sets, parsed (content-addressed, so never stale).
	entitySets *authz.EntityCache
	// principals are the entity collections of token callers.
	principals principalCache
	// auth keeps what the login flows derive from stored settings.
	auth *authMethods
	// alertStreams counts the alert streams being served.
	alertStreams atomic.Int64
	// eventTails counts the event tails being served.
	eventTails atomic.Int64
	// nodeLimit admits one inventory (and one result set per policy) per
	// node per NodeReportInterval.
	nodeLimit nodeLimiter
	// evaluations holds a token per compliance evaluation running
	// (MaxEvaluations).
	evaluations chan struct{}
	// console serves the web console's files (internal/console).
	console http.Handler
	// bundle is the last signed bundle of check policies.
	bundleMu sync.Mutex
	bundle   *signedBundle
	// decisionStreams counts the decision streams being served, and
	// streamsByCaller each principal's (*atomic.Int64 by principal).
	decisionStreams atomic.Int64
	streamsByCaller sync.Map
	// streams is cancelled by EndStreams: every long-lived stream ends
	// with it (a server shutting down does not wait for its followers).
	streams    context.Context
	endStreams context.CancelFunc

	// plane is the event plane (nil until it runs); eventSlots bound the
	// batches stored at once; evm counts them.
	plane      atomic.Pointer[events.Plane]
	eventSlots chan struct{}
	evm        *eventMetrics
}

// Bounds of the decision API's cache of repeated entity sets: the number
// of sets, and their total JSON size (parsed, a set takes several times
// its JSON size; one set may take an eighth of the bound, 512 KiB).
const (
	entityCacheSets  = 1024
	entityCacheBytes = 4 << 20
)

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
	if cfg.AuthFailureRate <= 0 {
		cfg.AuthFailureRate = DefaultAuthFailureRate
	}
	if cfg.AuthFailureBurst <= 0 {
		cfg.AuthFailureBurst = DefaultAuthFailureBurst
	}
	if cfg.AuthFailureWindow <= 0 {
		cfg.AuthFailureWindow = DefaultAuthFailureWindow
	}
	if cfg.EventsMaxBatchBytes <= 0 {
		cfg.EventsMaxBatchBytes = events.DefaultMaxBatchBytes
	}
	if cfg.DevicePollWait <= 0 {
		cfg.DevicePollWait = DefaultDevicePollWait
	}
	if cfg.MaxDecisionStreams <= 0 {
		cfg.MaxDecisionStreams = DefaultMaxDecisionStreams
	}
	if cfg.EventsInFlight <= 0 {
		cfg.EventsInFlight = DefaultEventsInFlight
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	s := &Server{cfg: cfg, log: log, auth: new(authMethods), evaluations: make(chan struct{}, MaxEvaluations), console: console.Handler(), mux: http.NewServeMux(), now: cfg.Now, idBase: hex.EncodeToString(b[:]),
		entitySets: authz.NewEntityCache(entityCacheSets, entityCacheBytes)}
	if cfg.RateLimit > 0 {
		s.limiter = newLimiter(cfg.RateLimit, cfg.RateBurst)
	}
	s.metrics = newMetrics(cfg.Metrics, cfg.Core)
	s.evm = newEventMetrics(cfg.Metrics)
	s.eventSlots = make(chan struct{}, cfg.EventsInFlight)
	s.streams, s.endStreams = context.WithCancel(context.Background())
	if cfg.Gather != nil {
		s.exposition = promhttp.HandlerFor(cfg.Gather, promhttp.HandlerOpts{})
	}
	s.fails = newAuthFailures(cfg.AuthFailureRate, cfg.AuthFailureBurst, MaxAuthFailureAddrs)
	s.register()
	go s.flushFailuresEvery(cfg.AuthFailureWindow)
	return s
}

// Close stops background work (the rate limiter's sweeper, the flusher of
// aggregated failure records) and commits the failures counted so far.
func (s *Server) Close() {
	if s.limiter != nil {
		s.limiter.stop()
	}
	if s.fails.stop() && s.fails.pending() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.FlushAuthFailures(ctx)
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

type handlerFunc func(*request) (int, any, error)

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
	// body is the body once read (bodyRead), by readBody or dual control.
	body     []byte
	bodyRead bool
	// held is the dual-control state of the request (requests.go).
	held held
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

// needToken is the error of token endpoints called with a certificate: a
// deny (403), as for any other caller a policy does not permit.
var needToken = errs.E(errs.Denied, "permission denied: this endpoint needs token authentication (a certificate cannot create or look up tokens)")

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

// EndStreams ends every long-lived stream (alert, event and decision
// streams) now and refuses none of the requests to come: a server that
// shuts down calls it (http.Server.RegisterOnShutdown), since streams are
// never idle and would hold the shutdown to its deadline while their
// clients should already be reconnecting elsewhere.
func (s *Server) EndStreams() { s.endStreams() }

// streamContext is parent, ended also by EndStreams.
func (s *Server) streamContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(s.streams, cancel)
	return ctx, func() { stop(); cancel() }
}
