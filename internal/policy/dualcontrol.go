package policy

// DualControlName is the name of the policy that holds the default approval
// rule of dual control in the warden store (see [DualControlDefaults]).
const DualControlName = "dual-control"

// DualControlDefaults returns the Cedar text of the default approval rule of
// dual control: the policy DualControlName that the server writes into the
// warden store when a cluster is initialized with dual control. It is an
// ordinary policy, read, rewritten and deleted like any other (those
// changes are themselves bound by it).
//
// The rule: the operations that could take control of the cluster or its
// keys — rotating the barrier key, turning dual control off, restoring a
// snapshot, removing a peer, exporting or deleting a transit key, and
// changing the policies, schema or entities of the warden store or deleting
// a store, removing a user's second factors, changing the single sign-on
// provider (whoever controls it can log in as anyone), and any users.write
// (create, update, delete, disable, enable, unlock, another's password) of a
// user who is or would be in Group::"security" (whoever may make approvers
// could approve alone) — need two approvals from members of
// Group::"security" other than the requester, whoever asks, the root token
// included (authz: the principal scope is set aside for approvals). It also
// permits them to members of Group::"admins", as any permit does. Changes
// to policy stores other than warden are not bound; a Policy resource whose
// store attribute is missing makes the condition fail to evaluate, which
// binds (fail closed). A users.write is bound only when its User resource
// has the attribute groups (the API sets it on every one).
func DualControlDefaults() string {
	return dualControlDefaults
}

const dualControlDefaults = `// dual-control: the operations that could take control of the cluster or
// its keys need two approvals from members of Group::"security" (never the
// requester) before they run, whoever asks, the root token included.
// Members of Group::"admins" may ask for them. Policy stores other than
// "warden" are not bound. A change of a user (users.write) is bound when
// the user is, or would be after it, in Group::"security": whoever could
// make approvers freely could approve their own requests.
@approvals("2")
@approvers("Group::\"security\"")
permit (
  principal in Group::"admins",
  action in [
    Action::"sys.rotate",
    Action::"sys.dual-control",
    Action::"raft.snapshot.restore",
    Action::"raft.remove",
    Action::"transit.key.export",
    Action::"transit.key.delete",
    Action::"policy.write",
    Action::"policy.delete",
    Action::"authz.schema.write",
    Action::"authz.entities.write",
    Action::"authz.store.delete",
    Action::"users.write",
    Action::"users.mfa.reset",
    Action::"auth.config.write"
  ],
  resource
)
when {
  if action == Action::"users.write" then
    resource has groups && resource.groups.contains("security")
  else
    resource is System ||
    resource is Key ||
    resource is User ||
    resource == PolicyStore::"warden" ||
    (resource is Policy && resource.store == "warden")
};
`
