package policy

// DualControlName is the name of the policy of approval rules that init
// writes into the warden store with dual control.
//
// TEMPORARY (issue 15): with DualControlDefaults below, a stand-in until
// the full default rule lands (helper h1authz); delete this file when it
// does.
const DualControlName = "dual-control"

// DualControlDefaults returns the Cedar text of the policy named
// dual-control that init writes into the warden store.
//
// TEMPORARY (issue 15): a minimal stand-in until the full default rule
// lands (helper h1authz); delete this file when it does.
func DualControlDefaults() string {
	return `// Dual control: these operations need two approvals from the security group.
@approvals("2")
@approvers("Group::\"security\"")
permit (
  principal in Group::"admins",
  action in [Action::"sys.rotate", Action::"sys.dual-control", Action::"raft.snapshot.restore", Action::"raft.remove",
             Action::"transit.key.export", Action::"transit.key.delete"],
  resource
);
`
}
