package authz

import "github.com/cedar-policy/cedar-go/types"

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

// Approvals returns the approval rules of ps that apply to req, in policy
// order: every permit policy annotated with @approvals whose action and
// resource scopes and conditions hold for req, its principal scope set
// aside (the rule binds every principal that may do the action, the root
// token included; the principal scope still says whom the policy permits).
// A rule whose conditions fail to evaluate applies (fail closed).
func (ps *PolicySet) Approvals(req Request, entities Entities) []ApprovalRule {
	return nil // TODO(issue 15): annotated permits
}
