// Package policy keeps Cedar policy stores in Warden's encrypted, replicated
// storage and answers authorization questions with them.
//
// A policy store is a named, versioned set of named policy documents, with an
// optional Cedar schema and stored entities. Every change to a store touches
// the store's generation key in the same transaction; the generation key's
// version is the store version, and the compiled, indexed policy set is
// cached per store version (internal/authz does the parsing, indexing and
// evaluation). Every policy is parsed, and checked against the store's schema
// if it has one, before anything is written: an invalid policy changes
// nothing, so the previous version stays in force.
//
// The store named "warden" governs Warden's own API; it always exists and
// starts with only the built-in policies (BuiltinPolicies), so only the root
// token can do anything else until policies are written.
//
// policy knows nothing about HTTP or Raft.
package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/store/kv"
)

// builtinPrefix starts the names of the built-in policies of the warden
// store; no one may write or delete a policy under it there.
const builtinPrefix = "builtin/"

// BuiltinPolicies returns the policies the warden store always holds, by
// name (a new map on every call). They are compiled with the store's own
// policies, so a forbid overrides them as it does any permit:
//
//   - builtin/node-events: every enrolled node may send its own events
//     (events.write on itself), and no one else's.
//   - builtin/node-decisions: every enrolled node may read the decisions
//     (decisions.read on System::"warden") to enforce them.
//   - builtin/node-compliance: every enrolled node may report its own
//     inventory and assessment results (inventory.write) and fetch its
//     check policies (compliance.assessment.read), on itself only.
func BuiltinPolicies() map[string]string {
	return map[string]string{
		builtinPrefix + "node-events": `// Built in: every enrolled node ships its own events, and no one else's.
permit (principal is Node, action == Action::"events.write", resource is Node)
when { principal == resource };`,
		builtinPrefix + "node-decisions": `// Built in: every enrolled node follows the decisions it enforces.
permit (principal is Node, action == Action::"decisions.read", resource == System::"warden");`,
		builtinPrefix + "node-compliance": `// Built in: every enrolled node reports its own inventory and
// assessment results, and fetches the check policies it runs; no one
// else's.
permit (principal is Node, action in [Action::"inventory.write", Action::"compliance.assessment.read"], resource is Node)
when { principal == resource };`,
		builtinPrefix + "user-self": `// Built in: every user manages their own account (password, second
// factors) and session (renew, log out, look up, who am I), and no one
// else's.
permit (principal is User, action == Action::"users.self", resource is User)
when { principal == resource };
permit (principal is User, action in [Action::"token.lookup", Action::"auth.whoami"], resource == Token::"self");`,
	}
}

// refuseBuiltin refuses a change to a built-in policy's name.
func refuseBuiltin(storeName, name string) error {
	if storeName == WardenStore && strings.HasPrefix(name, builtinPrefix) {
		return errs.E(errs.Invalid, "policy %q: names under %q are the built-in policies of the %q store; they cannot be written or deleted",
			name, builtinPrefix, WardenStore)
	}
	return nil
}

// Storage is the encrypted view (core.Core implements it).
type Storage interface {
	Get(ctx context.Context, key string) (kv.Entry, error)
	GetStale(key string) (kv.Entry, error)
	List(ctx context.Context, prefix string, limit int) ([]kv.Entry, error)
	ListKeys(ctx context.Context, prefix string, limit int) ([]kv.Entry, error)
	Txn(ctx context.Context, t kv.Txn) (uint64, error)
}

// WardenStore is the policy store that governs Warden's own API.
const WardenStore = "warden"

const (
	prefixStore    = "authz/store/"    // + store → storeRecord
	prefixGen      = "authz/gen/"      // + store → empty, touched on every change
	prefixPolicy   = "authz/policy/"   // + store + "/" + name → policyRecord
	prefixSchema   = "authz/schema/"   // + store → schema text
	prefixEntities = "authz/entities/" // + store → entities JSON
	maxStoreName   = 63
	maxRetries     = 16
)

type storeRecord struct {
	Name        string    `json:"name"`
	CreatedTime time.Time `json:"created_time"`
}

// Policy is a stored policy document.
type Policy struct {
	Store       string    `json:"store"`
	Name        string    `json:"name"`
	Text        string    `json:"policy"`
	CreatedTime time.Time `json:"created_time"`
	UpdatedTime time.Time `json:"updated_time"`
	// Version counts the writes of this policy: 1 for the first, one more
	// for each rewrite (a delete starts it again at 1). It is the policy's
	// own number, stored in its record, not the store's Raft index.
	Version uint64 `json:"version"`
}

// version is the stored version of a policy record; records written before
// versions were counted hold 0 and count as one write.
func (p *Policy) version() uint64 { return max(p.Version, 1) }

// Service manages policy stores. Safe for concurrent use.
type Service struct {
	st    Storage
	now   func() time.Time
	cache atomic.Pointer[authz.Cache] // replaced on seal

	mu       sync.Mutex
	entities map[string]cachedEntities
	gens     map[string]cachedGen
}

// cachedGen is a store's generation as read when the local state was at
// Raft index applied; found is whether the store's generation key exists.
type cachedGen struct {
	applied, gen uint64
	found        bool
}

// appliedIndexer is implemented by storage that can say cheaply whether
// anything changed since a read (core.Core): the Raft index of the last
// change applied to the local state.
type appliedIndexer interface {
	AppliedIndex() uint64
}

type cachedEntities struct {
	version uint64
	es      authz.Entities
}

// New returns a Service over st; now may be nil.
func New(st Storage, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	s := &Service{st: st, now: now, entities: map[string]cachedEntities{}, gens: map[string]cachedGen{}}
	s.cache.Store(new(authz.Cache))
	return s
}

// ValidateStoreName: 1..63 of a-z, 0-9, '-', '_', starting with a letter.
func ValidateStoreName(name string) error {
	if name == "" || len(name) > maxStoreName {
		return errs.E(errs.Invalid, "store: name must be 1 to %d characters", maxStoreName)
	}
	bad := names.BadChar(name, func(i int, c rune) bool {
		return c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '_')
	})
	if bad != "" {
		return errs.E(errs.Invalid, "store: name %q: %s is not allowed (a-z first, then a-z 0-9 - _)", name, bad)
	}
	return nil
}

func version(ctx context.Context, st Storage, key string) (uint64, error) {
	e, err := st.Get(ctx, key)
	if errs.Is(err, errs.NotFound) {
		return 0, nil
	}
	return e.Version, err
}

// exists reports whether a store exists ("warden" always does).
func (s *Service) exists(ctx context.Context, name string) error {
	if err := ValidateStoreName(name); err != nil {
		return err
	}
	if name == WardenStore {
		return nil
	}
	if _, err := s.st.Get(ctx, prefixStore+name); err != nil {
		if errs.Is(err, errs.NotFound) {
			return errs.E(errs.NotFound, "policy store %q not found", name)
		}
		return err
	}
	return nil
}

// CreateStore creates an empty store. errs.Conflict if it exists.
func (s *Service) CreateStore(ctx context.Context, name string) error {
	if err := ValidateStoreName(name); err != nil {
		return err
	}
	if name == WardenStore {
		return errs.E(errs.Conflict, "policy store %q already exists", name)
	}
	rec, _ := json.Marshal(storeRecord{Name: name, CreatedTime: s.now().UTC()})
	_, err := s.st.Txn(ctx, kv.Txn{
		Conds: []kv.Cond{{Key: prefixStore + name, Version: 0}},
		Ops: []kv.Op{{Type: kv.OpPut, Key: prefixStore + name, Value: rec},
			{Type: kv.OpPut, Key: prefixGen + name}},
	})
	if errs.Is(err, errs.Conflict) {
		return errs.E(errs.Conflict, "policy store %q already exists", name)
	}
	return err
}

// ListStores returns the store names, sorted, "warden" included.
func (s *Service) ListStores(ctx context.Context) ([]string, error) {
	es, err := s.st.ListKeys(ctx, prefixStore, 0)
	if err != nil {
		return nil, err
	}
	out := []string{WardenStore}
	for _, e := range es {
		out = append(out, strings.TrimPrefix(e.Key, prefixStore))
	}
	sort.Strings(out)
	return out, nil
}

// DeleteStore deletes a store with its policies, schema and entities.
func (s *Service) DeleteStore(ctx context.Context, name string) error {
	if name == WardenStore {
		return errs.E(errs.Invalid, "store: the %q store cannot be deleted", WardenStore)
	}
	if err := s.exists(ctx, name); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		gen, err := version(ctx, s.st, prefixGen+name)
		if err != nil {
			return err
		}
		ops := []kv.Op{{Type: kv.OpDelete, Key: prefixStore + name}, {Type: kv.OpDelete, Key: prefixGen + name},
			{Type: kv.OpDelete, Key: prefixSchema + name}, {Type: kv.OpDelete, Key: prefixEntities + name}}
		ps, err := s.st.ListKeys(ctx, prefixPolicy+name+"/", 0)
		if err != nil {
			return err
		}
		for _, p := range ps {
			ops = append(ops, kv.Op{Type: kv.OpDelete, Key: p.Key})
		}
		_, err = s.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: prefixGen + name, Version: gen}}, Ops: ops})
		if errs.Is(err, errs.Conflict) && attempt < maxRetries {
			continue
		}
		if err == nil {
			s.cache.Load().Forget(name)
		}
		return err
	}
}

// change commits ops to a store together with a touch of its generation key,
// conditioned on the generation read before validation, so validation and
// commit see the same store.
func (s *Service) change(ctx context.Context, name string, gen uint64, ops []kv.Op) (uint64, error) {
	ops = append(ops, kv.Op{Type: kv.OpPut, Key: prefixGen + name})
	idx, err := s.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: prefixGen + name, Version: gen}}, Ops: ops})
	if errs.Is(err, errs.Conflict) {
		return 0, errs.E(errs.Conflict, "policy store %q changed concurrently; retry", name)
	}
	return idx, err
}

// load reads a store's policies and schema (linearizably) with its generation.
func (s *Service) load(ctx context.Context, name string) (map[string]string, string, uint64, error) {
	gen, err := version(ctx, s.st, prefixGen+name)
	if err != nil {
		return nil, "", 0, err
	}
	es, err := s.st.List(ctx, prefixPolicy+name+"/", 0)
	if err != nil {
		return nil, "", 0, err
	}
	pols := make(map[string]string, len(es))
	for _, e := range es {
		var p Policy
		if err := json.Unmarshal(e.Value, &p); err != nil {
			return nil, "", 0, fmt.Errorf("policy: decode %s: %w", e.Key, err)
		}
		pols[p.Name] = p.Text
	}
	if name == WardenStore {
		for n, text := range BuiltinPolicies() {
			pols[n] = text
		}
	}
	schema := ""
	if e, err := s.st.Get(ctx, prefixSchema+name); err == nil {
		schema = string(e.Value)
	} else if !errs.Is(err, errs.NotFound) {
		return nil, "", 0, err
	}
	return pols, schema, gen, nil
}

func invalid(err error) error {
	if errors.Is(err, authz.ErrInvalid) {
		return errs.Wrap(errs.Invalid, err, "%s", err.Error())
	}
	return err
}

// WritePolicy parses and checks text, then stores it as policy name. An
// invalid policy is refused with "NAME:LINE:COL: message" and nothing
// changes.
func (s *Service) WritePolicy(ctx context.Context, storeName, name, text string) (*Policy, error) {
	if err := s.exists(ctx, storeName); err != nil {
		return nil, err
	}
	if err := authz.ValidatePolicy(name, text); err != nil {
		return nil, invalid(err)
	}
	if err := refuseBuiltin(storeName, name); err != nil {
		return nil, err
	}
	pols, schema, gen, err := s.load(ctx, storeName)
	if err != nil {
		return nil, err
	}
	pols[name] = text
	if _, err := authz.Compile(pols, schema); err != nil {
		return nil, invalid(err)
	}
	now := s.now().UTC()
	p := &Policy{Store: storeName, Name: name, Text: text, CreatedTime: now, UpdatedTime: now, Version: 1}
	// The record read here is the one the commit replaces: change is
	// conditioned on the generation read by load, before this read.
	if old, err := s.st.Get(ctx, prefixPolicy+storeName+"/"+name); err == nil {
		var o Policy
		if err := json.Unmarshal(old.Value, &o); err != nil {
			return nil, fmt.Errorf("policy: decode %s: %w", old.Key, err)
		}
		p.CreatedTime, p.Version = o.CreatedTime, o.version()+1
	} else if !errs.Is(err, errs.NotFound) {
		return nil, err
	}
	rec, _ := json.Marshal(p)
	if _, err := s.change(ctx, storeName, gen, []kv.Op{{Type: kv.OpPut, Key: prefixPolicy + storeName + "/" + name, Value: rec}}); err != nil {
		return nil, err
	}
	return p, nil
}

// Key is the storage key of policy name in store storeName: its version
// is the Raft index of the policy's last write (compliance cites that
// write's audit record).
func Key(storeName, name string) string { return prefixPolicy + storeName + "/" + name }

// ReadPolicy returns a policy. errs.NotFound if absent.
func (s *Service) ReadPolicy(ctx context.Context, storeName, name string) (*Policy, error) {
	if err := s.exists(ctx, storeName); err != nil {
		return nil, err
	}
	if text, ok := BuiltinPolicies()[name]; ok && storeName == WardenStore {
		return &Policy{Store: storeName, Name: name, Text: text, Version: 1}, nil
	}
	e, err := s.st.Get(ctx, prefixPolicy+storeName+"/"+name)
	if errs.Is(err, errs.NotFound) {
		return nil, errs.E(errs.NotFound, "policy %q not found in store %q", name, storeName)
	}
	if err != nil {
		return nil, err
	}
	var p Policy
	if err := json.Unmarshal(e.Value, &p); err != nil {
		return nil, fmt.Errorf("policy: decode: %w", err)
	}
	p.Version = p.version()
	return &p, nil
}

// ListPolicies returns the policy names of a store, sorted.
func (s *Service) ListPolicies(ctx context.Context, storeName string) ([]string, error) {
	if err := s.exists(ctx, storeName); err != nil {
		return nil, err
	}
	es, err := s.st.ListKeys(ctx, prefixPolicy+storeName+"/", 0)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, strings.TrimPrefix(e.Key, prefixPolicy+storeName+"/"))
	}
	if storeName == WardenStore {
		for name := range BuiltinPolicies() {
			out = append(out, name)
		}
		sort.Strings(out)
	}
	return out, nil
}

// DeletePolicy removes a policy. errs.NotFound if absent.
func (s *Service) DeletePolicy(ctx context.Context, storeName, name string) error {
	if err := refuseBuiltin(storeName, name); err != nil {
		return err
	}
	if _, err := s.ReadPolicy(ctx, storeName, name); err != nil {
		return err
	}
	gen, err := version(ctx, s.st, prefixGen+storeName)
	if err != nil {
		return err
	}
	_, err = s.change(ctx, storeName, gen, []kv.Op{{Type: kv.OpDelete, Key: prefixPolicy + storeName + "/" + name}})
	return err
}

// WriteSchema sets (or, with empty text, removes) a store's schema. Every
// existing policy must validate against it.
func (s *Service) WriteSchema(ctx context.Context, storeName, text string) error {
	if err := s.exists(ctx, storeName); err != nil {
		return err
	}
	pols, _, gen, err := s.load(ctx, storeName)
	if err != nil {
		return err
	}
	if _, err := authz.Compile(pols, text); err != nil {
		return invalid(err)
	}
	op := kv.Op{Type: kv.OpPut, Key: prefixSchema + storeName, Value: []byte(text)}
	if text == "" {
		op = kv.Op{Type: kv.OpDelete, Key: prefixSchema + storeName}
	}
	_, err = s.change(ctx, storeName, gen, []kv.Op{op})
	return err
}

// WriteEntities replaces a store's entities (Cedar JSON entity format).
func (s *Service) WriteEntities(ctx context.Context, storeName string, data []byte) (int, error) {
	if err := s.exists(ctx, storeName); err != nil {
		return 0, err
	}
	es, err := authz.ParseEntities(data)
	if err != nil {
		return 0, invalid(err)
	}
	canon, err := json.Marshal(es)
	if err != nil {
		return 0, err
	}
	gen, err := version(ctx, s.st, prefixGen+storeName)
	if err != nil {
		return 0, err
	}
	_, err = s.change(ctx, storeName, gen, []kv.Op{{Type: kv.OpPut, Key: prefixEntities + storeName, Value: canon}})
	return es.Len(), err
}

// Compiled returns the compiled policy set and stored entities of a store,
// from cache while the store's version is unchanged. It reads local state:
// on the leader that includes every acknowledged policy change.
func (s *Service) Compiled(ctx context.Context, storeName string) (*authz.PolicySet, authz.Entities, error) {
	gen, found, err := s.generation(storeName)
	if err != nil {
		return nil, authz.Entities{}, err
	}
	if !found && storeName != WardenStore {
		return nil, authz.Entities{}, errs.E(errs.NotFound, "policy store %q not found", storeName)
	}
	ps, err := s.cache.Load().Get(storeName, gen, func() (*authz.PolicySet, error) {
		pols, schema, _, err := s.load(ctx, storeName)
		if err != nil {
			return nil, err
		}
		return authz.Compile(pols, schema)
	})
	if err != nil {
		return nil, authz.Entities{}, err
	}
	s.mu.Lock()
	ce, ok := s.entities[storeName]
	s.mu.Unlock()
	if ok && ce.version == gen {
		return ps, ce.es, nil
	}
	var es authz.Entities
	if e, err := s.st.GetStale(prefixEntities + storeName); err == nil {
		if es, err = authz.ParseEntities(e.Value); err != nil {
			return nil, authz.Entities{}, fmt.Errorf("policy: stored entities of %q: %w", storeName, err)
		}
	} else if !errs.Is(err, errs.NotFound) {
		return nil, authz.Entities{}, err
	}
	s.mu.Lock()
	s.entities[storeName] = cachedEntities{version: gen, es: es}
	s.mu.Unlock()
	return ps, es, nil
}

// generation returns the version of a store's generation key (0 and found
// false if there is none). A decision needs it to know whether its cached
// policy set is current; reading it from the store (a database transaction
// and a decryption) was a sixth of a decision's cost, so it is remembered
// with the applied index it was read at, and read again only once the
// local state has changed.
func (s *Service) generation(storeName string) (gen uint64, found bool, err error) {
	var applied uint64
	if ai, ok := s.st.(appliedIndexer); ok {
		applied = ai.AppliedIndex()
		s.mu.Lock()
		c, hit := s.gens[storeName]
		s.mu.Unlock()
		if hit && applied != 0 && c.applied == applied {
			return c.gen, c.found, nil
		}
	}
	e, err := s.st.GetStale(prefixGen + storeName)
	switch {
	case err == nil:
		gen, found = e.Version, true
	case !errs.Is(err, errs.NotFound):
		return 0, false, err
	}
	if applied != 0 {
		s.mu.Lock()
		if len(s.gens) >= maxCachedGens {
			clear(s.gens) // store names are bounded, but requests may name any
		}
		s.gens[storeName] = cachedGen{applied: applied, gen: gen, found: found}
		s.mu.Unlock()
	}
	return gen, found, nil
}

// maxCachedGens bounds the stores whose generation is remembered.
const maxCachedGens = 1024

// Check answers a request against a store, with the store's entities
// overridden by the request's.
func (s *Service) Check(ctx context.Context, storeName string, req authz.CheckRequest) (authz.Decision, error) {
	if err := ValidateStoreName(storeName); err != nil {
		return authz.Decision{}, err
	}
	ps, es, err := s.Compiled(ctx, storeName)
	if err != nil {
		return authz.Decision{}, err
	}
	return ps.Authorize(req.Request, es.With(req.Entities)), nil
}

// Approvals returns the approval rules of a store that apply to a request
// (see [authz.PolicySet.Approvals]), with the store's entities overridden
// by the request's.
func (s *Service) Approvals(ctx context.Context, storeName string, req authz.CheckRequest) ([]authz.ApprovalRule, error) {
	if err := ValidateStoreName(storeName); err != nil {
		return nil, err
	}
	ps, es, err := s.Compiled(ctx, storeName)
	if err != nil {
		return nil, err
	}
	return ps.Approvals(req.Request, es.With(req.Entities)), nil
}

// Forget drops the cached policy sets and entities (called on seal), so a
// sealed server holds no decrypted policy.
func (s *Service) Forget() {
	s.cache.Store(new(authz.Cache))
	s.mu.Lock()
	s.entities = map[string]cachedEntities{}
	s.gens = map[string]cachedGen{}
	s.mu.Unlock()
}
