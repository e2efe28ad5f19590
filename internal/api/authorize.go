package api

import (
	"encoding/binary"
	"strings"
	"sync"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/warden-sec/warden/internal/authority"
	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/identity"
	"github.com/warden-sec/warden/internal/policy"
)

// target is what a request asks to do: a Warden action on a resource entity.
type target struct {
	action   string
	resource types.Entity
}

// targetFunc computes a route's target from the request.
type targetFunc func(*request) (target, error)

func entity(typ types.EntityType, id string, attrs types.RecordMap) types.Entity {
	e := types.Entity{UID: types.NewEntityUID(typ, types.String(id))}
	if attrs != nil {
		e.Attributes = types.NewRecord(attrs)
	}
	return e
}

// fixed is a target that does not depend on the request.
func fixed(action string, typ types.EntityType, id string) targetFunc {
	t := target{action: action, resource: entity(typ, id, nil)}
	return func(*request) (target, error) { return t, nil }
}

// secret targets Secret::"<path>" with attribute path.
func secret(action string) targetFunc {
	return func(r *request) (target, error) {
		p := r.PathValue("path")
		return target{action: action, resource: entity(authz.TypeSecret, p, types.RecordMap{"path": types.String(p)})}, nil
	}
}

// keyTarget targets the transit key Key::"<name>" with attribute name; a
// route without {name} (the list) targets Key::"*".
func keyTarget(action string) targetFunc {
	all := target{action: action, resource: entity(authz.TypeKey, "*", nil)}
	return func(r *request) (target, error) {
		name := r.PathValue("name")
		if name == "" {
			return all, nil
		}
		return target{action: action, resource: entity(authz.TypeKey, name, types.RecordMap{"name": types.String(name)})}, nil
	}
}

// kvMetadataTarget: GET metadata is kv.metadata, or kv.list with ?list=true.
func kvMetadataTarget(r *request) (target, error) {
	if listRequested(r) {
		return secret(authz.ActionKVList)(r)
	}
	return secret(authz.ActionKVMetadata)(r)
}

// storeTarget targets PolicyStore::"<store>".
func storeTarget(action string) targetFunc {
	return func(r *request) (target, error) {
		return target{action: action, resource: entity(authz.TypePolicyStore, r.PathValue("store"), nil)}, nil
	}
}

// policyTarget targets Policy::"<store>/<name>" with attributes store and name.
func policyTarget(action string) targetFunc {
	return func(r *request) (target, error) {
		st, name := r.PathValue("store"), r.PathValue("name")
		return target{action: action, resource: entity(authz.TypePolicy, st+"/"+name,
			types.RecordMap{"store": types.String(st), "name": types.String(name)})}, nil
	}
}

// authorize asks the "warden" policy store whether the caller may act. The
// root token is a break-glass principal: always allowed, and every use is
// logged at warn level. Any error while deciding denies (fail closed).
func (s *Server) authorize(req *request, tg target) error {
	c := req.caller
	if c.root {
		// At most one event a second per address and action: a script
		// running as root must not flood the stream.
		addr := clientKey(req.Request)
		s.cfg.ServerEvents.EmitThrottled("root_token "+addr+" "+tg.action, events.ActionRootToken,
			events.Event{events.FieldSourceIP: addr, "warden.action": tg.action, "warden.resource": tg.resource.UID.String()})
		s.log.Warn("root token used", "action", tg.action, "resource", tg.resource.UID.String(), "request_id", req.id,
			"source", clientKey(req.Request))
		return nil
	}
	if t := req.tok; t != nil && t.Scope != "" && !inScope(t, tg) {
		if t.Scope != identity.ScopeMFAEnroll {
			return errs.E(errs.Denied, "permission denied: this token's scope %q is unknown to this server", t.Scope)
		}
		return errs.E(errs.Denied, "permission denied: this session may only enroll a second factor for %s (a group of the user requires one); enroll one, then log in again", t.User)
	}
	principal := c.uid
	if c.esErr != nil {
		return errs.Wrap(errs.Internal, c.esErr, "authorization entities")
	}
	es, err := withResource(c.es, tg.resource)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "authorization entities")
	}
	d, err := s.cfg.Policies.Check(req.Context(), policy.WardenStore, authz.CheckRequest{
		Request: authz.Request{Principal: principal, Action: authz.ActionUID(tg.action), Resource: tg.resource.UID,
			Context: s.requestContext(req)},
		Entities: es,
	})
	if err != nil {
		s.log.Error("authorization failed; denying", "request_id", req.id, "err", err)
		return errs.E(errs.Denied, "permission denied: the policy store could not be evaluated")
	}
	if len(d.Errors) > 0 {
		s.log.Error("policy evaluation errors; denying", "request_id", req.id, "errors", strings.Join(d.Errors, "; "))
	}
	if d.Allow {
		s.metrics.allows.Inc()
		return nil
	}
	s.metrics.denies.Inc()
	s.log.Info("denied", "principal", principal.String(), "action", tg.action, "resource", tg.resource.UID.String(),
		"request_id", req.id, "reasons", d.Reasons)
	msg := "permission denied: no policy permits " + tg.action + " on " + tg.resource.UID.String()
	if len(d.Reasons) > 0 {
		msg = "permission denied: " + tg.action + " on " + tg.resource.UID.String() + " is forbidden by " + strings.Join(d.Reasons, ", ")
	} else if len(d.Errors) > 0 {
		msg += " (a policy failed to evaluate; see the server log)"
	}
	return errs.E(errs.Denied, "%s", msg)
}

// withResource lays a target's resource over the caller's entities (not
// copied: the caller's collection may be shared). A caller acting on
// itself (a node on its own record, a user on their own account) is both
// principal and resource: one entity, the caller's, whose parents and
// attributes win (a node's come from its certificate), with the
// attributes of the target that it lacks added (a users.write's groups,
// which the approval rules must see whoever the user is).
func withResource(es authz.Entities, res types.Entity) (authz.Entities, error) {
	if own, ok := es.Get(res.UID); ok {
		var attrs types.RecordMap // nil while the caller's entity has every attribute
		for k, v := range res.Attributes.All() {
			if _, ok := own.Attributes.Get(k); ok {
				continue
			}
			if attrs == nil {
				if attrs = own.Attributes.Map(); attrs == nil {
					attrs = types.RecordMap{}
				}
			}
			attrs[k] = v
		}
		if attrs == nil {
			return es, nil
		}
		res = types.Entity{UID: own.UID, Parents: own.Parents, Attributes: types.NewRecord(attrs), Tags: own.Tags}
	}
	re, err := authz.NewEntities(res)
	if err != nil {
		return authz.Entities{}, err
	}
	return es.With(re), nil
}

// selfToken is the resource of looking up one's own token.
var selfToken = types.NewEntityUID(authz.TypeToken, "self")

// inScope reports whether a scoped token may ask for tg: a session that
// must enroll a second factor acts only on its own user (users.self) and
// looks only at itself. An unknown scope permits nothing (fail closed).
func inScope(t *identity.Token, tg target) bool {
	if t.Scope != identity.ScopeMFAEnroll {
		return false
	}
	switch tg.action {
	case authz.ActionUsersSelf:
		return tg.resource.UID == types.NewEntityUID(authz.TypeUser, types.String(t.User))
	case authz.ActionTokenLookup, authz.ActionAuthWhoami:
		return tg.resource.UID == selfToken
	}
	return false
}

// caller is who an authenticated request comes from.
type caller struct {
	uid    types.EntityUID
	es     authz.Entities // the principal's entity and its parents; shared, never modified
	esErr  error          // why es could not be built (authorization then fails)
	root   bool
	method string // "token" or "mtls"
	attrs  map[string]string
	auth   types.Record // context.auth
}

func (c *caller) String() string { return c.uid.String() }

// tokenCaller is the caller of a token.
func (s *Server) tokenCaller(t *identity.Token) *caller {
	if t.Root {
		return &caller{uid: types.NewEntityUID(authz.TypeRoot, "root"), root: true, method: "token", auth: s.principals.auth.get(t.AuthOf())}
	}
	uid, es, auth, err := s.principals.get(t)
	return &caller{uid: uid, es: es, esErr: err, method: "token", attrs: map[string]string{"user": t.PrincipalUser()},
		auth: auth}
}

// principalCache keeps the entity collections of token principals (a
// user and their groups), which every request of a token needs for its
// authorization and which only depend on the user and groups named in the
// token: entries are never stale, and the cache is emptied when full. Its
// key is the user and groups only, so that all sessions of a user share
// one entry (a key per session would, with more sessions than the bound,
// empty it again and again). The sessions' context.auth records are kept
// apart, in auth. Safe for concurrent use.
type principalCache struct {
	mu sync.Mutex
	m  map[string]cachedPrincipal

	auth authCache
}

type cachedPrincipal struct {
	uid types.EntityUID
	es  authz.Entities
}

// maxCachedPrincipals bounds the principals a server remembers.
const maxCachedPrincipals = 4096

func (c *principalCache) get(t *identity.Token) (types.EntityUID, authz.Entities, types.Record, error) {
	auth := c.auth.get(t.AuthOf())
	key := principalKey(t)
	c.mu.Lock()
	p, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return p.uid, p.es, auth, nil
	}
	uid, ents := principalOf(t)
	es, err := authz.NewEntities(ents...)
	if err != nil {
		return uid, authz.Entities{}, auth, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedPrincipals {
		c.m = make(map[string]cachedPrincipal)
	}
	c.m[key] = cachedPrincipal{uid: uid, es: es}
	c.mu.Unlock()
	return uid, es, auth, nil
}

// principalKey names a token's user and groups unambiguously (each length
// prefixed, whatever bytes the names hold).
func principalKey(t *identity.Token) string {
	user := t.PrincipalUser()
	n := len(user) + 2*binary.MaxVarintLen64
	for _, g := range t.Groups {
		n += len(g) + binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(len(user)))
	b = append(b, user...)
	b = binary.AppendUvarint(b, uint64(len(t.Groups)))
	for _, g := range t.Groups {
		b = binary.AppendUvarint(b, uint64(len(g)))
		b = append(b, g...)
	}
	return string(b)
}

// authKey is a login as context.auth shows it: the record's four fields.
type authKey struct {
	method, mfaMethod string
	mfa               bool
	time              int64 // Unix seconds
}

// authCache keeps context.auth records by login: building one per request
// costs about three times the rest of the caller (BenchmarkTokenCaller).
// A record depends only on its key, so entries are never stale. Two
// generations bound it: when the current one is full it becomes the
// previous one (the one before is dropped), and a record found in the
// previous one moves back; so the logins in use stay cached however many
// others come and go. Safe for concurrent use.
type authCache struct {
	mu        sync.Mutex
	cur, prev map[authKey]types.Record
}

// maxCachedAuth bounds each generation of the auth cache.
const maxCachedAuth = 4096

func (c *authCache) get(a identity.AuthInfo) types.Record {
	k := authKey{method: a.Method, mfaMethod: a.MFAMethod, mfa: a.MFA, time: a.Time.Unix()}
	c.mu.Lock()
	r, ok := c.cur[k]
	if !ok {
		if r, ok = c.prev[k]; ok {
			c.put(k, r)
		}
	}
	c.mu.Unlock()
	if ok {
		return r
	}
	r = authRecord(a)
	c.mu.Lock()
	c.put(k, r)
	c.mu.Unlock()
	return r
}

// put adds a record to the current generation. Called with mu held.
func (c *authCache) put(k authKey, r types.Record) {
	if c.cur == nil || len(c.cur) >= maxCachedAuth {
		c.prev, c.cur = c.cur, make(map[authKey]types.Record, maxCachedAuth)
	}
	c.cur[k] = r
}

// nodeCaller is the caller of a node certificate.
func nodeCaller(id *authority.CertIdentity) *caller {
	ent := authz.NodeEntity(id.Name, id.Zone, types.RecordMap{"spiffe_id": types.String(id.SPIFFEID)})
	es, err := authz.NewEntities(authz.WithZones(ent)...)
	return &caller{uid: ent.UID, es: es, esErr: err, method: "mtls",
		attrs: map[string]string{"name": id.Name, "zone": id.Zone, "spiffe_id": id.SPIFFEID}, auth: mtlsAuth}
}

// mtlsAuth is context.auth of a node certificate: mutual TLS, no second
// factor, no login time.
var mtlsAuth = authRecord(identity.AuthInfo{Method: "mtls", Time: time.Unix(0, 0)})

// principalOf returns the token's principal and its entities (user and groups).
func principalOf(t *identity.Token) (types.EntityUID, []types.Entity) {
	uid := types.NewEntityUID(authz.TypeUser, types.String(t.PrincipalUser()))
	parents := make([]types.EntityUID, len(t.Groups))
	ents := make([]types.Entity, 0, len(t.Groups)+2)
	for i, g := range t.Groups {
		parents[i] = types.NewEntityUID(authz.TypeGroup, types.String(g))
		ents = append(ents, types.Entity{UID: parents[i]})
	}
	ents = append(ents, types.Entity{UID: uid, Parents: types.NewEntityUIDSet(parents...),
		Attributes: types.NewRecord(types.RecordMap{"name": types.String(t.PrincipalUser())})})
	return uid, ents
}

// requestContext is the context every Warden API decision sees
// (authz.WardenSchema's RequestContext).
func (s *Server) requestContext(req *request) types.Record {
	return types.NewRecord(types.RecordMap{
		"source_ip": types.String(clientKey(req.Request)),
		"mtls":      types.Boolean(req.TLS != nil && len(req.TLS.PeerCertificates) > 0),
		"time":      types.Long(s.now().Unix()),
		"auth":      req.caller.auth,
	})
}

// authRecord is context.auth: how the caller logged in.
func authRecord(a identity.AuthInfo) types.Record {
	return types.NewRecord(types.RecordMap{
		"method":     types.String(a.Method),
		"mfa":        types.Boolean(a.MFA),
		"mfa_method": types.String(a.MFAMethod),
		"time":       types.Long(a.Time.Unix()),
	})
}
