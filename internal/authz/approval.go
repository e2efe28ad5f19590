package authz

import (
	"fmt"
	"iter"

	"github.com/cedar-policy/cedar-go"
	cedarast "github.com/cedar-policy/cedar-go/ast"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// Approval rules (dual control).
//
// A permit policy annotated
//
//	@approvals("2")
//	@approvers("Group::\"security\"")
//	permit (principal in Group::"admins", action == Action::"sys.rotate", resource);
//
// is an approval rule: a request it applies to needs that many approvals
// from members of that group (other than the requester) before it runs. The
// policy still permits as any permit does: to Authorize the annotations mean
// nothing. For approvals its principal scope is set aside, so the rule binds
// every principal that may do the action — principals permitted by other
// policies, and the root token, which no policy needs to permit.
//
// The annotations are checked when a document is parsed (ValidatePolicy and
// Compile): both or neither, on a permit only, @approvals a whole number from
// 1 to MaxApprovals written plainly ("2", not "02" or " 2"), @approvers one
// entity UID of type Group in Cedar text form.

// Annotation keys of approval rules.
const (
	AnnotationApprovals = "approvals"
	AnnotationApprovers = "approvers"
)

// ApprovalRule is an annotated permit policy that applies to a request:
// the request needs Approvals approvals from members of Approvers (other
// than its requester) before it runs. See [PolicySet.Approvals].
type ApprovalRule struct {
	Policy    string          // the policy's id, as in Decision.Reasons
	Approvals int             // the policy's @approvals, 1 to MaxApprovals
	Approvers types.EntityUID // the policy's @approvers, a Group
}

// MaxApprovals bounds an @approvals annotation.
const MaxApprovals = 16

// approvalRule is a compiled approval rule: the rule, and its policy with
// the principal scope widened to "all", with the other two scopes ready to
// test against a request.
type approvalRule struct {
	rule   ApprovalRule
	policy *cedar.Policy
	scope  [numDims]scope // scope[dimPrincipal] is always "any"
}

// approvalSet is the approval rules of a policy set, in policy order. It is
// separate from the set's index so that Authorize never sees it.
type approvalSet struct {
	rules []approvalRule
	// needAncestors[d] is set if some rule's scope on d (action or
	// resource) needs the request entity's ancestors.
	needAncestors [numDims]bool
}

// newApprovalRule returns the approval rule of a statement, if it is one.
// The statement's annotations have been checked (checkApprovalAnnotations),
// so a present @approvals is valid.
func newApprovalRule(id string, p *cedar.Policy) (approvalRule, bool) {
	a := (*xast.Policy)(p.AST())
	rule, ok, _ := approvalAnnotations(a)
	if !ok {
		return approvalRule{}, false
	}
	rule.Policy = id
	// A shallow copy shares the conditions and annotations, which neither
	// policy ever modifies.
	wide := *a
	wide.Principal = xast.ScopeTypeAll{}
	return approvalRule{
		rule:   rule,
		policy: cedar.NewPolicyFromAST((*cedarast.Policy)(&wide)),
		scope:  [numDims]scope{{kind: scopeAny}, scopeOf(wide.Action), scopeOf(wide.Resource)},
	}, true
}

// annotationProblem is a refused approval annotation: which annotation,
// and why.
type annotationProblem struct {
	key, msg string
}

// approvalAnnotations reads the approval annotations of a policy: the rule
// (without its Policy id) and true if the policy is a valid approval rule;
// false and nil if it has neither annotation; false and the problem if its
// annotations are refused.
func approvalAnnotations(a *xast.Policy) (ApprovalRule, bool, *annotationProblem) {
	var approvals, approvers types.String
	var hasApprovals, hasApprovers bool
	for _, an := range a.Annotations {
		switch an.Key {
		case AnnotationApprovals:
			approvals, hasApprovals = an.Value, true
		case AnnotationApprovers:
			approvers, hasApprovers = an.Value, true
		}
	}
	switch {
	case !hasApprovals && !hasApprovers:
		return ApprovalRule{}, false, nil
	case a.Effect == xast.EffectForbid:
		key := AnnotationApprovals
		if !hasApprovals {
			key = AnnotationApprovers
		}
		return ApprovalRule{}, false, &annotationProblem{key, "@" + key + " applies only to permit policies, not to a forbid"}
	case !hasApprovers:
		return ApprovalRule{}, false, &annotationProblem{AnnotationApprovals,
			`@approvals needs @approvers naming the group whose members approve, e.g. @approvers("Group::\"security\"")`}
	case !hasApprovals:
		return ApprovalRule{}, false, &annotationProblem{AnnotationApprovers,
			`@approvers needs @approvals saying how many approvals, e.g. @approvals("2")`}
	}
	n, ok := parseApprovals(string(approvals))
	if !ok {
		return ApprovalRule{}, false, &annotationProblem{AnnotationApprovals,
			fmt.Sprintf("@approvals(%s): want a whole number from 1 to %d", quoteShort(string(approvals)), MaxApprovals)}
	}
	g, err := ParseUID(string(approvers))
	switch {
	case err != nil, g.Type != TypeGroup:
		return ApprovalRule{}, false, &annotationProblem{AnnotationApprovers,
			fmt.Sprintf(`@approvers(%s): want one group, Group::"name"`, quoteShort(string(approvers)))}
	case g.ID == "":
		return ApprovalRule{}, false, &annotationProblem{AnnotationApprovers,
			fmt.Sprintf(`@approvers(%s): the group name is empty`, quoteShort(string(approvers)))}
	}
	return ApprovalRule{Approvals: n, Approvers: g}, true, nil
}

// parseApprovals parses a canonical decimal from 1 to MaxApprovals: no
// sign, no leading zero, no space.
func parseApprovals(s string) (int, bool) {
	if len(s) == 0 || len(s) > 2 || s[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n <= MaxApprovals
}

// checkApprovalAnnotations checks the approval annotations of statement p
// of document name (text, tokenized as toks) and returns a *PolicyError at
// the refused annotation, naming the policy id, or nil.
func checkApprovalAnnotations(name, id string, p *cedar.Policy, toks []token) *PolicyError {
	_, _, prob := approvalAnnotations((*xast.Policy)(p.AST()))
	if prob == nil {
		return nil
	}
	pos := p.Position()
	line, col := annotationPosition(toks, pos.Offset, prob.key)
	if line == 0 {
		line, col = pos.Line, pos.Column
	}
	return &PolicyError{Name: name, Line: line, Column: col, Message: "policy " + id + ": " + prob.msg}
}

// annotationPosition finds the annotation @key among the annotations of the
// statement starting at byte offset off: they come before its effect
// keyword. It returns 0, 0 if it is not found.
func annotationPosition(toks []token, off int, key string) (line, col int) {
	for i := 0; i+1 < len(toks); i++ {
		t := toks[i]
		if t.off < off {
			continue
		}
		if t.kind == tokIdent && (t.text == "permit" || t.text == "forbid") {
			break
		}
		if t.text == "@" && toks[i+1].kind == tokIdent && toks[i+1].text == key {
			return t.line, t.col
		}
	}
	return 0, 0
}

// buildApprovals collects the approval rules of compiled policies.
func buildApprovals(rules []approvalRule) approvalSet {
	as := approvalSet{rules: rules}
	for i := range rules {
		for d := range rules[i].scope {
			if rules[i].scope[d].usesAncestors() {
				as.needAncestors[d] = true
			}
		}
	}
	return as
}

// Approvals returns the approval rules of ps that apply to req, in policy
// order: every permit policy annotated with @approvals whose action and
// resource scopes and conditions hold for req, its principal scope set
// aside (the rule binds every principal that may do the action, the root
// token included; the principal scope still says whom the policy permits).
// A rule whose conditions fail to evaluate applies (fail closed).
//
// Approvals does not decide whether req is allowed (that is Authorize's
// job, and forbids play no part here); it answers what a request that is
// allowed needs before it runs. It returns nil at once for a set without
// approval rules, and touches nothing that Authorize uses. It is safe for
// concurrent use.
func (ps *PolicySet) Approvals(req Request, entities Entities) []ApprovalRule {
	if ps == nil || len(ps.approvals.rules) == 0 {
		return nil
	}
	return ps.approvals.match(&req, &entities)
}

// match returns the rules of as that apply to req. Checking the scopes
// allocates only the list of the request entities' ancestors, when a rule
// needs them and they have any; only requests that some rule's scopes match
// go on to evaluation.
func (as *approvalSet) match(req *Request, entities *Entities) []ApprovalRule {
	self := [numDims]types.EntityUID{req.Principal, req.Action, req.Resource}
	var anc [numDims]ancestors
	for d := range self {
		if as.needAncestors[d] {
			anc[d].compute(self[d], entities)
		}
	}
	inScope := func(i int) bool {
		sc := &as.rules[i].scope
		return sc[dimAction].match(self[dimAction], &anc[dimAction]) &&
			sc[dimResource].match(self[dimResource], &anc[dimResource])
	}
	n := 0
	for i := range as.rules {
		if inScope(i) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	cands := make([]int, 0, n)
	for i := range as.rules {
		if inScope(i) {
			cands = append(cands, i)
		}
	}
	return as.evaluate(*req, *entities, cands)
}

// evaluate returns the rules among cands whose widened policies are
// satisfied or fail to evaluate for req, in policy order.
func (as *approvalSet) evaluate(req Request, entities Entities, cands []int) []ApprovalRule {
	_, diag := cedar.Authorize(approvalCandidates{as, cands}, &entities, cedar.Request{
		Principal: req.Principal,
		Action:    req.Action,
		Resource:  req.Resource,
		Context:   req.Context,
	})
	// Every candidate is a permit: the satisfied ones are the Reasons of
	// cedar-go's diagnostic, the failed ones its Errors. Both apply.
	applies := func(id string) bool {
		for _, r := range diag.Reasons {
			if string(r.PolicyID) == id {
				return true
			}
		}
		for _, e := range diag.Errors {
			if string(e.PolicyID) == id {
				return true
			}
		}
		return false
	}
	var out []ApprovalRule
	for _, i := range cands {
		if r := as.rules[i].rule; applies(r.Policy) {
			out = append(out, r)
		}
	}
	return out
}

// approvalCandidates is a cedar PolicyIterator over some approval rules'
// widened policies.
type approvalCandidates struct {
	as    *approvalSet
	cands []int
}

func (c approvalCandidates) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, i := range c.cands {
			r := &c.as.rules[i]
			if !yield(cedar.PolicyID(r.rule.Policy), r.policy) {
				return
			}
		}
	}
}
