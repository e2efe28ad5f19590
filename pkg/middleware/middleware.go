package middleware

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/pkg/client"
)

// Defaults of Config's optional fields.
const (
	DefaultStore         = "warden"
	DefaultRefresh       = 30 * time.Second
	DefaultLookupTimeout = 5 * time.Second
	// MaxPeers bounds how many peers' zones an Authorizer remembers. Peers
	// beyond it are still served, with a zone lookup on every request.
	MaxPeers = 10_000
)

// Config configures an Authorizer. New copies it; the zero value of each
// optional field has the documented default.
type Config struct {
	// Client talks to the Warden cluster with the service's own
	// credentials: its SVID as TLS client certificate, or a token. It
	// needs policy.list and policy.read on the store, conduit.check (zone
	// lookups) and, optionally, auth.whoami (its own zone); see
	// docs/pki.md. Required.
	Client *client.Client
	// TrustDomain is the cluster's trust domain; peers from any other are
	// refused. Required.
	TrustDomain string
	// Self is the canonical name of the node this service runs on (its
	// SVID is spiffe://<TrustDomain>/node/<Self>). It is the resource of
	// the default mapping, and the other end of zone lookups. Required.
	Self string
	// Store is the policy store to evaluate. Default DefaultStore, which
	// holds the conduits.
	Store string
	// Refresh is the interval of Run. Default DefaultRefresh.
	Refresh time.Duration
	// LookupTimeout bounds a zone lookup on the request path, for a peer
	// seen for the first time. Default DefaultLookupTimeout.
	LookupTimeout time.Duration
	// CacheFile, if not empty, is where the last good copy of the
	// policies, revocation list and zones is kept (mode 0600, replaced
	// atomically after each refresh) and read back by New, so that a
	// service restarted while the cluster is unreachable still decides.
	CacheFile string
	// Map turns a request into a policy question. Default Conduit.
	Map MapFunc
	// Logger receives denies, refresh failures and policy evaluation
	// errors; never credentials. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Decisions, if not nil, is where the decisions come from: a
	// *client.Follower of the cluster's decision stream (see
	// client.NewFollower; the caller creates and runs it, typically with
	// the service's own credentials towards every server and a cache file
	// of its own, and may share it between Authorizers). Requests are then also refused, from its last state, without
	// a round trip (docs/response.md, "Enforcement in services"): 403
	// when the source address (RemoteAddr) is banned for the service's
	// zone or everywhere, or when the peer node is quarantined; 401 when
	// the peer's certificate serial is revoked per the stream, as for a
	// serial on the CRL. Simulated decisions and decisions that hit the
	// never-block list are logged, never enforced. Nil: no decisions.
	Decisions DecisionSource
}

// DecisionSource gives the decision state in force. *client.Follower is
// one. State must be safe for concurrent use, cheap (it is called on every
// request), and return a state nobody modifies; nil refuses nothing.
type DecisionSource interface {
	State() *client.DecisionState
}

var _ DecisionSource = (*client.Follower)(nil)

// Target is the question a request asks: may the principal do Action (the
// id of Action::"<Action>") on Resource, given Context?
type Target struct {
	Action   string
	Resource types.Entity
	Context  types.RecordMap
}

// MapFunc maps a request to its Target. self is the service's own node,
// with its zone. An error makes the request a 400 (its message is logged,
// not shown). A MapFunc must be safe for concurrent use.
type MapFunc func(r *http.Request, self Principal) (Target, error)

// Conduit is the default MapFunc, the IEC 62443 conduit check of
// docs/pki.md: may the peer conduit.connect to Node::"<self>" (attributes
// name, zone) on the local port of the connection, protocol tcp? It is the
// question a conduit policy answers:
//
//	permit (principal is Node, action == Action::"conduit.connect", resource is Node)
//	when { principal.zone == "dmz" && resource.zone == "plant" && context.port == 502 && context.protocol == "tcp" };
func Conduit(r *http.Request, self Principal) (Target, error) {
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return Target{}, errors.New("middleware: the request has no local address")
	}
	ta, ok := la.(*net.TCPAddr)
	if !ok {
		return Target{}, fmt.Errorf("middleware: local address %s is not TCP", la)
	}
	return Target{
		Action:   authz.ActionConduitConnect,
		Resource: self.Entity(),
		Context:  types.RecordMap{"port": types.Long(ta.Port), "protocol": types.String("tcp")},
	}, nil
}

// Kind is what a principal's SPIFFE ID names: the path segment after the
// trust domain.
type Kind string

// Kinds of principal the middleware accepts (/user/ IDs are refused).
const (
	KindNode    Kind = Kind(names.KindNode)    // spiffe://<td>/node/<name>, Node::"<name>"
	KindService Kind = Kind(names.KindService) // spiffe://<td>/svc/<name>, Service::"<name>"
)

// Principal is an authenticated peer (or the service itself).
type Principal struct {
	Kind     Kind
	Name     string // canonical
	Zone     string // the node's zone; empty for services and zoneless nodes
	SPIFFEID string
}

// UID returns the principal's Cedar UID, Node::"<name>" or Service::"<name>".
func (p Principal) UID() types.EntityUID {
	if p.Kind == KindService {
		return types.NewEntityUID(authz.TypeService, types.String(p.Name))
	}
	return types.NewEntityUID(authz.TypeNode, types.String(p.Name))
}

// Entity returns the principal's Cedar entity: attributes name and
// spiffe_id, and for nodes zone and membership of Zone::"<zone>" (as
// Warden's API gives a node caller).
func (p Principal) Entity() types.Entity {
	attrs := types.RecordMap{}
	if p.SPIFFEID != "" {
		attrs["spiffe_id"] = types.String(p.SPIFFEID)
	}
	if p.Kind == KindService {
		attrs["name"] = types.String(p.Name)
		return types.Entity{UID: p.UID(), Attributes: types.NewRecord(attrs)}
	}
	return authz.NodeEntity(p.Name, p.Zone, attrs)
}

// String returns the principal's UID text, Node::"web-1".
func (p Principal) String() string { return p.UID().String() }

type principalKey struct{}

// PrincipalFrom returns the principal the Handler authenticated and
// authorized for this request's context.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Errors of peer authentication.
var (
	// ErrNoCertificate: the request came without a verified client certificate.
	ErrNoCertificate = errors.New("middleware: a verified client certificate is required")
	// ErrIdentity: the certificate does not name a node or service of the trust domain.
	ErrIdentity = errors.New("middleware: the client certificate is not a node or service of this trust domain")
	// ErrRevoked: the certificate's serial is on the cached revocation list.
	ErrRevoked = errors.New("middleware: the client certificate is revoked")
	// ErrUnknownNode: the cluster knows no live node of that name (never enrolled, or revoked).
	ErrUnknownNode = errors.New("middleware: no live node of that name")
	// ErrBanned: the request's source address is banned (Config.Decisions).
	ErrBanned = errors.New("middleware: the source address is banned")
	// ErrQuarantined: the peer node is quarantined (Config.Decisions).
	ErrQuarantined = errors.New("middleware: the peer node is quarantined")
)

// Authorizer decides requests with a cached copy of a policy store. It is
// safe for concurrent use; Handler may serve while Refresh or Run runs.
type Authorizer struct {
	cfg Config
	log *slog.Logger

	pol atomic.Pointer[policies] // nil until the first load
	rev atomic.Pointer[pkiState] // nil until the first bundle and CRL

	zmu      sync.RWMutex
	zones    map[string]string // peer node name → zone
	selfZone string
	selfKnow bool // selfZone was learnt

	saveMu sync.Mutex // serializes writes of the cache file
}

// policies is one loaded copy of the store.
type policies struct {
	set    *authz.PolicySet
	docs   map[string]string // name → Cedar text, as fetched
	loaded time.Time
}

// New returns an Authorizer for cfg. It checks the configuration and, when
// CacheFile is set and readable, loads the last good copy from it (a
// missing, unreadable or mismatched cache file is logged and ignored: the
// Authorizer then denies until its first refresh). It starts nothing: call
// Run (typically in a goroutine) or Refresh.
func New(cfg Config) (*Authorizer, error) {
	if cfg.Client == nil {
		return nil, errors.New("middleware: Config.Client is required")
	}
	if err := names.ValidateTrustDomain(cfg.TrustDomain); err != nil {
		return nil, fmt.Errorf("middleware: Config.TrustDomain: %w", err)
	}
	if !names.IsCanonical(cfg.Self) {
		return nil, fmt.Errorf("middleware: Config.Self %q: must be a canonical node name", cfg.Self)
	}
	if cfg.Store == "" {
		cfg.Store = DefaultStore
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.LookupTimeout <= 0 {
		cfg.LookupTimeout = DefaultLookupTimeout
	}
	if cfg.Map == nil {
		cfg.Map = Conduit
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if f, ok := cfg.Decisions.(*client.Follower); ok && f == nil {
		cfg.Decisions = nil // a nil *Follower in the interface: no decisions
	}
	a := &Authorizer{cfg: cfg, log: cfg.Logger.With("component", "warden-middleware", "store", cfg.Store), zones: map[string]string{}}
	if cfg.CacheFile != "" {
		if err := a.loadCache(); err != nil {
			a.log.Warn("policy cache not loaded; denying until the first refresh", "file", cfg.CacheFile, "err", err)
		}
	}
	return a, nil
}

// Loaded reports when the policy set in force was fetched from the cluster,
// and false if none has been loaded yet (every request is then 503).
func (a *Authorizer) Loaded() (time.Time, bool) {
	p := a.pol.Load()
	if p == nil {
		return time.Time{}, false
	}
	return p.loaded, true
}

// Handler returns next wrapped: it serves next only requests whose peer
// certificate maps to a principal that the cached policies permit, with the
// principal in the request context (PrincipalFrom). Every other request is
// answered with a JSON error {"errors": ["..."]}: 401 for a missing,
// foreign, revoked or unknown identity; 503 before any policy set was
// loaded, or when a new peer's zone cannot be looked up; 400 when Map
// fails; 403 when the policies do not permit the request, and (with
// Config.Decisions) when the source address is banned, checked first,
// before the certificate, or the peer node is quarantined.
func (a *Authorizer) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, status, err := a.authorize(r)
		if err != nil {
			writeError(w, status, err.Error())
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// authorize decides r; on deny it returns the status and the message for
// the caller.
func (a *Authorizer) authorize(r *http.Request) (Principal, int, error) {
	var decisions *client.DecisionState
	if a.cfg.Decisions != nil {
		decisions = a.cfg.Decisions.State()
	}
	if decisions != nil {
		if status, err := a.banned(decisions, r); err != nil {
			return Principal{}, status, err
		}
	}
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return Principal{}, http.StatusUnauthorized, ErrNoCertificate
	}
	leaf := r.TLS.VerifiedChains[0][0]
	p, err := principalOf(leaf, a.cfg.TrustDomain)
	if err != nil {
		a.log.Info("peer refused", "remote", r.RemoteAddr, "err", err)
		return Principal{}, http.StatusUnauthorized, ErrIdentity
	}
	if rv := a.rev.Load(); rv.revoked(leaf) {
		a.log.Info("peer refused: revoked certificate", "principal", p.String(), "serial", leaf.SerialNumber.Text(16), "remote", r.RemoteAddr)
		return Principal{}, http.StatusUnauthorized, ErrRevoked
	}
	if decisions != nil {
		if status, err := a.refusedPeer(decisions, p, leaf, r); err != nil {
			return Principal{}, status, err
		}
	}
	pol := a.pol.Load()
	if pol == nil {
		return Principal{}, http.StatusServiceUnavailable, errors.New("middleware: no policy loaded yet; denying")
	}
	if p.Kind == KindNode {
		zone, err := a.zoneOf(r.Context(), p.Name)
		if errors.Is(err, ErrUnknownNode) {
			a.log.Info("peer refused: not a live node", "principal", p.String(), "remote", r.RemoteAddr)
			return Principal{}, http.StatusUnauthorized, ErrUnknownNode
		}
		if err != nil {
			a.log.Warn("zone lookup failed; denying", "principal", p.String(), "err", err)
			return Principal{}, http.StatusServiceUnavailable, errors.New("middleware: the peer's zone is not known and the cluster cannot be asked; denying")
		}
		p.Zone = zone
	}
	self, ok := a.self()
	if !ok {
		return Principal{}, http.StatusServiceUnavailable, errors.New("middleware: this service's zone is not known yet; denying")
	}
	tg, err := a.cfg.Map(r, self)
	if err != nil {
		a.log.Info("request not mapped", "principal", p.String(), "err", err)
		return Principal{}, http.StatusBadRequest, errors.New("middleware: the request cannot be mapped to a policy question")
	}
	ents := []types.Entity{p.Entity()}
	if tg.Resource.UID != p.UID() {
		ents = append(ents, tg.Resource)
	}
	es, err := authz.NewEntities(authz.WithZones(ents...)...)
	if err != nil {
		return Principal{}, http.StatusInternalServerError, errors.New("middleware: authorization entities")
	}
	req := authz.Request{Principal: p.UID(), Action: authz.ActionUID(tg.Action), Resource: tg.Resource.UID,
		Context: types.NewRecord(tg.Context)}
	d := pol.set.Authorize(req, es)
	if len(d.Errors) > 0 {
		a.log.Error("policy evaluation errors; denying", "principal", p.String(), "errors", strings.Join(d.Errors, "; "))
	}
	if d.Allow {
		return p, 0, nil
	}
	res := tg.Resource.UID.String()
	a.log.Info("denied", "principal", p.String(), "action", tg.Action, "resource", res, "reasons", d.Reasons)
	msg := "permission denied: no policy permits " + tg.Action + " on " + res
	switch {
	case len(d.Reasons) > 0:
		msg = "permission denied: " + tg.Action + " on " + res + " is forbidden by " + strings.Join(d.Reasons, ", ")
	case len(d.Errors) > 0:
		msg += " (a policy failed to evaluate)"
	}
	return Principal{}, http.StatusForbidden, errors.New(msg)
}

// Self returns the service's own principal, Node::"<Config.Self>", with
// its zone as last learnt from the cluster, and whether it is known (if
// not, every request is 503).
func (a *Authorizer) Self() (Principal, bool) { return a.self() }

// self returns the service's own principal, if its zone is known.
func (a *Authorizer) self() (Principal, bool) {
	a.zmu.RLock()
	zone, ok := a.selfZone, a.selfKnow
	a.zmu.RUnlock()
	id, _ := names.SPIFFEID(a.cfg.TrustDomain, names.KindNode, a.cfg.Self)
	return Principal{Kind: KindNode, Name: a.cfg.Self, Zone: zone, SPIFFEID: id}, ok
}

// principalOf maps a verified certificate to its principal: exactly one
// URI SAN, a Warden SPIFFE ID (see names.ParseSPIFFEID) of trust domain td
// naming a node or a service.
func principalOf(cert *x509.Certificate, td string) (Principal, error) {
	if len(cert.URIs) != 1 {
		return Principal{}, fmt.Errorf("%w: want exactly one URI SAN, got %d", ErrIdentity, len(cert.URIs))
	}
	id := cert.URIs[0].String()
	ctd, kind, name, err := names.ParseSPIFFEID(id)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	if ctd != td {
		return Principal{}, fmt.Errorf("%w: %s is of trust domain %q, not %q", ErrIdentity, id, ctd, td)
	}
	if kind != names.KindNode && kind != names.KindService {
		return Principal{}, fmt.Errorf("%w: %s is a %s, not a node or service", ErrIdentity, id, kind)
	}
	return Principal{Kind: Kind(kind), Name: name, SPIFFEID: id}, nil
}

// writeError answers {"errors": [msg]} with status.
func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(struct {
		Errors []string `json:"errors"`
	}{[]string{msg}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
