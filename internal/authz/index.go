package authz

import (
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// The index selects, for a request, the policies whose scope can match it.
//
// A Cedar policy's scope constrains each of principal, action and resource
// to one of: anything; == UID; in UID; is Type; is Type in UID; and, for the
// action only, in [UID, ...]. Each constraint that is not "anything" is a
// necessary condition for the policy to apply, and each can be looked up by
// a key computed from the request:
//
//	== U         key U,      found under the request's UID
//	in U         key U,      found under the request's UID or any ancestor
//	in [U, V]    keys U, V,  likewise
//	is T         key T,      found under the request's UID's type
//	is T in U    key U (as "in U") or key T (as "is T")
//
// Every policy is filed under exactly one of its constraints: the one whose
// key(s) the fewest policies share, so the bucket it lands in is small.
// Policies without any constraint go to a list that is always a candidate.
// A request gathers the buckets of its principal, action and resource (and
// their ancestors), sorts and de-duplicates them, then checks each
// candidate's full scope against the request before cedar-go evaluates it.
//
// The index is conservative by construction: a policy is only skipped if one
// of its scope constraints, each a necessary condition, is false. Ancestors
// are computed with cedar-go's own rule for `in` (the transitive closure of
// parents, following only entities present in the entity set), and the
// differential test checks the result against evaluating every policy.

// Dimensions of a request, in index order.
const (
	dimPrincipal = iota
	dimAction
	dimResource
	numDims
)

type scopeKind uint8

const (
	scopeAny     scopeKind = iota // no constraint
	scopeEq                       // == uid
	scopeIn                       // in uid
	scopeInSet                    // in [set...] (actions)
	scopeIs                       // is typ
	scopeIsIn                     // is typ in uid
	scopeUnknown                  // a scope node this code does not know: always a candidate
)

// scope is one scope constraint of a policy, in a form that is cheap to
// test against a request.
type scope struct {
	kind scopeKind
	typ  types.EntityType
	uid  types.EntityUID
	set  []types.EntityUID
}

func scopeOf(n any) scope {
	switch s := n.(type) {
	case xast.ScopeTypeAll:
		return scope{kind: scopeAny}
	case xast.ScopeTypeEq:
		return scope{kind: scopeEq, uid: s.Entity}
	case xast.ScopeTypeIn:
		return scope{kind: scopeIn, uid: s.Entity}
	case xast.ScopeTypeInSet:
		return scope{kind: scopeInSet, set: s.Entities}
	case xast.ScopeTypeIs:
		return scope{kind: scopeIs, typ: s.Type}
	case xast.ScopeTypeIsIn:
		return scope{kind: scopeIsIn, typ: s.Type, uid: s.Entity}
	}
	return scope{kind: scopeUnknown}
}

// match reports whether the constraint holds for a request entity self with
// the given ancestors (which do not include self).
func (s *scope) match(self types.EntityUID, anc *ancestors) bool {
	switch s.kind {
	case scopeEq:
		return self == s.uid
	case scopeIn:
		return self == s.uid || anc.has(s.uid)
	case scopeInSet:
		for _, u := range s.set {
			if self == u || anc.has(u) {
				return true
			}
		}
		return false
	case scopeIs:
		return self.Type == s.typ
	case scopeIsIn:
		return self.Type == s.typ && (self == s.uid || anc.has(s.uid))
	}
	return true // scopeAny, scopeUnknown
}

// usesAncestors reports whether testing the constraint needs ancestors.
func (s *scope) usesAncestors() bool {
	switch s.kind {
	case scopeIn, scopeInSet, scopeIsIn:
		return true
	}
	return false
}

// ancestors is the set of ancestors of one request entity. Small sets are a
// slice searched linearly; large ones also get a map.
type ancestors struct {
	list []types.EntityUID
	set  map[types.EntityUID]struct{}
}

const ancestorsMapThreshold = 16

func (a *ancestors) reset() {
	a.list = a.list[:0]
	if a.set != nil {
		clear(a.set)
	}
}

func (a *ancestors) has(u types.EntityUID) bool {
	if len(a.list) > ancestorsMapThreshold {
		_, ok := a.set[u]
		return ok
	}
	for i := range a.list {
		if a.list[i] == u {
			return true
		}
	}
	return false
}

func (a *ancestors) add(u types.EntityUID) {
	if a.has(u) {
		return
	}
	a.list = append(a.list, u)
	switch n := len(a.list); {
	case n == ancestorsMapThreshold+1:
		if a.set == nil {
			a.set = make(map[types.EntityUID]struct{}, 2*n)
		}
		for _, v := range a.list {
			a.set[v] = struct{}{}
		}
	case n > ancestorsMapThreshold+1:
		a.set[u] = struct{}{}
	}
}

// compute fills a with the ancestors of self in es: its parents, their
// parents, and so on. As in cedar-go, a parent that is not itself in es
// counts as an ancestor but contributes no parents of its own. self is left
// out even if a cycle leads back to it.
func (a *ancestors) compute(self types.EntityUID, es *Entities) {
	a.reset()
	e, ok := es.Get(self)
	if !ok {
		return
	}
	for p := range e.Parents.All() {
		if p != self {
			a.add(p)
		}
	}
	// a.list doubles as the breadth-first queue.
	for i := 0; i < len(a.list); i++ {
		e, ok := es.Get(a.list[i])
		if !ok {
			continue
		}
		for p := range e.Parents.All() {
			if p != self {
				a.add(p)
			}
		}
	}
}

// dimIndex files policies by one dimension's constraint.
type dimIndex struct {
	eq map[types.EntityUID][]int32
	in map[types.EntityUID][]int32
	is map[types.EntityType][]int32
}

// collect appends the policies filed under keys that the request entity
// self, with ancestors anc, can match.
func (x *dimIndex) collect(self types.EntityUID, anc *ancestors, out []int32) []int32 {
	if len(x.eq) > 0 {
		out = append(out, x.eq[self]...)
	}
	if len(x.in) > 0 {
		out = append(out, x.in[self]...)
		for _, u := range anc.list {
			out = append(out, x.in[u]...)
		}
	}
	if len(x.is) > 0 {
		out = append(out, x.is[self.Type]...)
	}
	return out
}

// index is the whole index of a policy set.
type index struct {
	dims   [numDims]dimIndex
	always []int32 // policies with no indexable constraint
	// needAncestors[d] is set if some policy's constraint on d needs the
	// request entity's ancestors, for lookup or for the scope check.
	needAncestors [numDims]bool
}

// option is one way to file a policy: under dimension dim, in the eq, in or
// is map, with these keys.
type option struct {
	dim  int
	kind scopeKind // scopeEq, scopeIn or scopeIs
	uids []types.EntityUID
	typ  types.EntityType
}

type countKey struct {
	dim  int
	kind scopeKind
	uid  types.EntityUID
	typ  types.EntityType
}

func optionsOf(sc *[numDims]scope) []option {
	var opts []option
	// Order matters only for ties: prefer principal and resource UIDs,
	// which are usually the most selective.
	for _, d := range [numDims]int{dimPrincipal, dimResource, dimAction} {
		s := &sc[d]
		switch s.kind {
		case scopeEq:
			opts = append(opts, option{dim: d, kind: scopeEq, uids: []types.EntityUID{s.uid}})
		case scopeIn:
			opts = append(opts, option{dim: d, kind: scopeIn, uids: []types.EntityUID{s.uid}})
		case scopeInSet:
			if len(s.set) > 0 { // "in []" never matches; leave it to "always"
				opts = append(opts, option{dim: d, kind: scopeIn, uids: s.set})
			}
		case scopeIs:
			opts = append(opts, option{dim: d, kind: scopeIs, typ: s.typ})
		case scopeIsIn:
			opts = append(opts, option{dim: d, kind: scopeIn, uids: []types.EntityUID{s.uid}})
			opts = append(opts, option{dim: d, kind: scopeIs, typ: s.typ})
		}
	}
	return opts
}

func (o *option) keys(yield func(countKey)) {
	if o.kind == scopeIs {
		yield(countKey{dim: o.dim, kind: scopeIs, typ: o.typ})
		return
	}
	for _, u := range o.uids {
		yield(countKey{dim: o.dim, kind: o.kind, uid: u})
	}
}

// buildIndex files every policy under its most selective constraint.
func buildIndex(policies []compiled) index {
	var x index
	for d := range x.dims {
		x.dims[d] = dimIndex{
			eq: map[types.EntityUID][]int32{},
			in: map[types.EntityUID][]int32{},
			is: map[types.EntityType][]int32{},
		}
	}
	opts := make([][]option, len(policies))
	counts := map[countKey]int{}
	for i := range policies {
		opts[i] = optionsOf(&policies[i].scope)
		for j := range opts[i] {
			opts[i][j].keys(func(k countKey) { counts[k]++ })
		}
		for d := range policies[i].scope {
			if policies[i].scope[d].usesAncestors() {
				x.needAncestors[d] = true
			}
		}
	}
	for i := range policies {
		best, bestCost := -1, 0
		for j := range opts[i] {
			cost := 0
			opts[i][j].keys(func(k countKey) { cost += counts[k] })
			if best < 0 || cost < bestCost {
				best, bestCost = j, cost
			}
		}
		if best < 0 {
			x.always = append(x.always, int32(i))
			continue
		}
		o := &opts[i][best]
		di := &x.dims[o.dim]
		if o.kind == scopeIn {
			// Lookups for "in" use the request entity and its ancestors.
			x.needAncestors[o.dim] = true
		}
		o.keys(func(k countKey) {
			switch k.kind {
			case scopeEq:
				di.eq[k.uid] = append(di.eq[k.uid], int32(i))
			case scopeIn:
				di.in[k.uid] = append(di.in[k.uid], int32(i))
			case scopeIs:
				di.is[k.typ] = append(di.is[k.typ], int32(i))
			}
		})
	}
	return x
}
