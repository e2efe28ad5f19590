package authz

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// maxReportedErrors bounds the errors Compile reports at once.
const maxReportedErrors = 20

// Request is one authorization question: may Principal perform Action on
// Resource, given Context? All three are Cedar entity UIDs; Warden's actions
// are Action::"kv.read" and so on (see [ActionUID]). A zero Context is an
// empty record.
type Request struct {
	Principal types.EntityUID
	Action    types.EntityUID
	Resource  types.EntityUID
	Context   types.Record
}

// Decision is the answer to a [Request].
//
// Allow is true only if at least one permit policy is satisfied, no forbid
// policy is satisfied, and no policy that applies to the request failed to
// evaluate.
//
// Reasons lists the ids of the policies that determined the decision, in
// policy order: the satisfied permits when allowed, the satisfied forbids
// when denied by a forbid. It is empty when nothing permitted the request,
// and when evaluation errors alone caused the deny.
//
// Errors lists, as "ID: message", every policy whose scope matched but whose
// conditions could not be evaluated; any error makes the decision a deny.
// Callers should log or audit Errors: they mean a policy needs fixing.
type Decision struct {
	Allow   bool
	Reasons []string
	Errors  []string
}

// PolicySet is a compiled policy store: parsed, checked and indexed. It is
// immutable and safe for concurrent use by any number of goroutines. A nil
// *PolicySet denies every request.
type PolicySet struct {
	policies  []compiled // ordered by document name, then statement
	idx       index
	pool      sync.Pool   // of *scratch
	approvals approvalSet // the approval rules; Authorize never reads it
}

// compiled is one policy statement.
type compiled struct {
	id     string
	policy *cedar.Policy
	scope  [numDims]scope
}

// Compile parses every policy document in policies (document name →
// Cedar text), checks each against schema if schema is not empty (see
// [ValidateSchema] for the formats) and checks its approval annotations
// (see [PolicySet.Approvals]), and builds the index and the approval rules. Document names
// must be valid (see [ValidatePolicy]). On error nothing is built; the error
// wraps ErrInvalid and is a *SchemaError, or one or more *PolicyError
// (joined with errors.Join, at most 20, in name order; use errors.As to get
// the first).
//
// Compile is deterministic and does no I/O; it takes time proportional to
// the total size of the documents. The API should call it (through a
// [Cache]) on every write, to refuse a document or schema change that would
// leave the store unusable.
func Compile(policies map[string]string, schema string) (*PolicySet, error) {
	v, err := compileSchema(schema)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(policies))
	for name := range policies {
		names = append(names, name)
	}
	slices.Sort(names)

	var errs []error
	var out []compiled
	var rules []approvalRule
	for _, name := range names {
		stmts, err := parseDocument(name, policies[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for k, p := range stmts {
			if v != nil {
				if pe := validateStatement(v, name, p); pe != nil {
					errs = append(errs, pe)
					continue
				}
			}
			id := statementID(name, k, len(stmts))
			out = append(out, newCompiled(id, p))
			if r, ok := newApprovalRule(id, p); ok {
				rules = append(rules, r)
			}
		}
	}
	if len(errs) > 0 {
		if n := len(errs); n > maxReportedErrors {
			errs = append(errs[:maxReportedErrors], fmt.Errorf("%w: %d more errors", ErrInvalid, n-maxReportedErrors))
		}
		if len(errs) == 1 {
			return nil, errs[0]
		}
		return nil, errors.Join(errs...)
	}
	ps := &PolicySet{policies: out, approvals: buildApprovals(rules)}
	ps.idx = buildIndex(out)
	ps.pool.New = func() any { return newScratch(ps) }
	return ps, nil
}

func newCompiled(id string, p *cedar.Policy) compiled {
	a := (*xast.Policy)(p.AST())
	return compiled{
		id:     id,
		policy: p,
		scope:  [numDims]scope{scopeOf(a.Principal), scopeOf(a.Action), scopeOf(a.Resource)},
	}
}

// Len returns the number of policy statements in the set.
func (ps *PolicySet) Len() int {
	if ps == nil {
		return 0
	}
	return len(ps.policies)
}

// IDs returns the ids of the policy statements, in policy order (document
// name, then statement).
func (ps *PolicySet) IDs() []string {
	if ps == nil {
		return nil
	}
	ids := make([]string, len(ps.policies))
	for i := range ps.policies {
		ids[i] = ps.policies[i].id
	}
	return ids
}

// scratch holds the per-request working memory of Authorize, reused
// through the set's pool so that a decision allocates little.
type scratch struct {
	ps    *PolicySet
	ents  Entities
	anc   [numDims]ancestors
	cands []int32
	seq   iter.Seq2[cedar.PolicyID, *cedar.Policy]
}

func newScratch(ps *PolicySet) *scratch {
	s := &scratch{ps: ps}
	s.seq = func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, i := range s.cands {
			p := &s.ps.policies[i]
			if !yield(cedar.PolicyID(p.id), p.policy) {
				return
			}
		}
	}
	return s
}

// All yields the candidate policies; it makes *scratch a cedar
// PolicyIterator.
func (s *scratch) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] { return s.seq }

// Authorize decides req against the set, with entities as the entity data
// (typically the store's entities With the request's). It evaluates only the
// policies whose scope can match req (see the index), with Cedar semantics
// plus Warden's rule that an evaluation error in an applicable policy denies;
// see [Decision]. Authorize never fails: malformed data leads to deny with
// Errors. It is safe for concurrent use.
func (ps *PolicySet) Authorize(req Request, entities Entities) Decision {
	if ps == nil || len(ps.policies) == 0 {
		return Decision{}
	}
	s := ps.pool.Get().(*scratch)
	defer ps.pool.Put(s)
	s.ents = entities
	s.selectCandidates(req)
	d := s.evaluate(req)
	s.ents = Entities{}
	return d
}

// selectCandidates sets s.cands to the policies whose scope matches req, in
// policy order, using the index.
func (s *scratch) selectCandidates(req Request) {
	ps := s.ps
	self := [numDims]types.EntityUID{req.Principal, req.Action, req.Resource}
	for d := range self {
		if ps.idx.needAncestors[d] {
			s.anc[d].compute(self[d], &s.ents)
		} else {
			s.anc[d].reset()
		}
	}
	cands := s.cands[:0]
	for d := range self {
		cands = ps.idx.dims[d].collect(self[d], &s.anc[d], cands)
	}
	cands = append(cands, ps.idx.always...)
	slices.Sort(cands)
	cands = slices.Compact(cands)
	n := 0
	for _, i := range cands {
		sc := &ps.policies[i].scope
		if sc[dimPrincipal].match(self[dimPrincipal], &s.anc[dimPrincipal]) &&
			sc[dimAction].match(self[dimAction], &s.anc[dimAction]) &&
			sc[dimResource].match(self[dimResource], &s.anc[dimResource]) {
			cands[n] = i
			n++
		}
	}
	s.cands = cands[:n]
}

// authorizeUnindexed decides req by evaluating every policy, as plain
// cedar-go would, with the same decision rule as Authorize. It is the
// reference for the index's differential test and benchmarks.
func (ps *PolicySet) authorizeUnindexed(req Request, entities Entities) Decision {
	if ps == nil || len(ps.policies) == 0 {
		return Decision{}
	}
	s := newScratch(ps)
	s.ents = entities
	for i := range ps.policies {
		s.cands = append(s.cands, int32(i))
	}
	return s.evaluate(req)
}

// evaluate runs cedar-go over the candidates in s.cands and applies
// Warden's decision rule.
func (s *scratch) evaluate(req Request) Decision {
	if len(s.cands) == 0 {
		return Decision{}
	}
	dec, diag := cedar.Authorize(s, &s.ents, cedar.Request{
		Principal: req.Principal,
		Action:    req.Action,
		Resource:  req.Resource,
		Context:   req.Context,
	})
	var d Decision
	if len(diag.Errors) > 0 {
		d.Errors = make([]string, len(diag.Errors))
		for i, e := range diag.Errors {
			d.Errors[i] = string(e.PolicyID) + ": " + e.Message
		}
	}
	// cedar-go puts the satisfied forbids in Reasons when it denies, the
	// satisfied permits when it allows. An error turns an allow into a deny
	// that no policy determined.
	switch {
	case dec == cedar.Allow && len(diag.Errors) == 0:
		d.Allow = true
		d.Reasons = reasonIDs(diag.Reasons)
	case dec == cedar.Deny:
		d.Reasons = reasonIDs(diag.Reasons)
	}
	return d
}

func reasonIDs(rs []cedar.DiagnosticReason) []string {
	if len(rs) == 0 {
		return nil
	}
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = string(r.PolicyID)
	}
	return ids
}
