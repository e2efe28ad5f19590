package policy

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/warden-sec/warden/internal/authz"
)

// wardenWithDualControl compiles the warden store as load does at
// initialization with dual control: the built-in policies and the default
// rule, with the given schema.
func wardenWithDualControl(t *testing.T, schema string) *authz.PolicySet {
	t.Helper()
	pols := BuiltinPolicies()
	pols[DualControlName] = DualControlDefaults()
	ps, err := authz.Compile(pols, schema)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return ps
}

// The resources as internal/api's targets make them (systemTarget via
// fixed, keyTarget, storeTarget, policyTarget), with their attributes.
func systemResource() types.Entity {
	return types.Entity{UID: types.NewEntityUID(authz.TypeSystem, "warden")}
}

func keyResource(name string) types.Entity {
	return types.Entity{UID: types.NewEntityUID(authz.TypeKey, types.String(name)),
		Attributes: types.NewRecord(types.RecordMap{"name": types.String(name)})}
}

func storeResource(store string) types.Entity {
	return types.Entity{UID: types.NewEntityUID(authz.TypePolicyStore, types.String(store))}
}

func policyResource(store, name string) types.Entity {
	return types.Entity{UID: types.NewEntityUID(authz.TypePolicy, types.String(store+"/"+name)),
		Attributes: types.NewRecord(types.RecordMap{"store": types.String(store), "name": types.String(name)})}
}

var root = types.NewEntityUID(authz.TypeRoot, "root")

// userResource is a User as the API's users.write targets make it: its
// name and the groups it is or will be in.
func userResource(id string, groups ...string) types.Entity {
	gs := make([]types.Value, len(groups))
	for i, g := range groups {
		gs[i] = types.String(g)
	}
	return types.Entity{UID: types.NewEntityUID(authz.TypeUser, types.String(id)),
		Attributes: types.NewRecord(types.RecordMap{"name": types.String(id), "groups": types.NewSet(gs...)})}
}

// approvals asks ps as the API asks the warden store: the resource entity
// laid over the caller's entities.
func approvals(t *testing.T, ps *authz.PolicySet, principal types.EntityUID, callerEnts authz.Entities, action string, res types.Entity) []authz.ApprovalRule {
	t.Helper()
	re, err := authz.NewEntities(res)
	if err != nil {
		t.Fatal(err)
	}
	return ps.Approvals(authz.Request{Principal: principal, Action: authz.ActionUID(action), Resource: res.UID}, callerEnts.With(re))
}

func TestDualControlDefaults(t *testing.T) {
	// It compiles in the warden store, with no schema (the default) and
	// with Warden's own, and is one statement: the rule is "dual-control".
	ps := wardenWithDualControl(t, "")
	wardenWithDualControl(t, authz.WardenSchema)
	if err := authz.ValidatePolicy(DualControlName, DualControlDefaults()); err != nil {
		t.Fatal(err)
	}
	want := []authz.ApprovalRule{{Policy: DualControlName, Approvals: 2, Approvers: types.NewEntityUID(authz.TypeGroup, "security")}}
	admin := types.NewEntityUID(authz.TypeUser, "alice")
	adminEnts, err := authz.NewEntities(
		types.Entity{UID: admin, Parents: types.NewEntityUIDSet(types.NewEntityUID(authz.TypeGroup, "admins"))},
		types.Entity{UID: types.NewEntityUID(authz.TypeGroup, "admins")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		principal types.EntityUID
		action    string
		resource  types.Entity
		bound     bool
	}{
		{"restore by root", root, authz.ActionRaftSnapshotRestore, systemResource(), true},
		{"restore by an admin", admin, authz.ActionRaftSnapshotRestore, systemResource(), true},
		{"rotate", root, authz.ActionSysRotate, systemResource(), true},
		{"remove a peer", root, authz.ActionRaftRemove, systemResource(), true},
		{"dual control off", root, authz.ActionSysDualControl, systemResource(), true},
		{"export a key", root, authz.ActionTransitKeyExport, keyResource("payments"), true},
		{"delete a key", admin, authz.ActionTransitKeyDelete, keyResource("payments"), true},
		{"warden policy write", root, authz.ActionPolicyWrite, policyResource("warden", "ops"), true},
		{"this policy's rewrite", admin, authz.ActionPolicyWrite, policyResource("warden", DualControlName), true},
		{"warden policy delete", root, authz.ActionPolicyDelete, policyResource("warden", "ops"), true},
		{"other store's policy write", root, authz.ActionPolicyWrite, policyResource("shop", "ops"), false},
		{"other store's policy delete", admin, authz.ActionPolicyDelete, policyResource("shop", "ops"), false},
		{"warden schema", root, authz.ActionAuthzSchemaWrite, storeResource("warden"), true},
		{"warden entities", root, authz.ActionAuthzEntitiesWrite, storeResource("warden"), true},
		{"other store's schema", root, authz.ActionAuthzSchemaWrite, storeResource("shop"), false},
		{"other store's entities", admin, authz.ActionAuthzEntitiesWrite, storeResource("shop"), false},
		{"delete another store", root, authz.ActionAuthzStoreDelete, storeResource("shop"), false},
		{"delete the warden store", root, authz.ActionAuthzStoreDelete, storeResource("warden"), true},
		// A Policy resource without its store attribute fails to
		// evaluate: bound (fail closed).
		{"policy without attributes", root, authz.ActionPolicyWrite, types.Entity{UID: types.NewEntityUID(authz.TypePolicy, "shop/x")}, true},
		{"kv read", root, authz.ActionKVRead, types.Entity{UID: types.NewEntityUID(authz.TypeSecret, "a"),
			Attributes: types.NewRecord(types.RecordMap{"path": types.String("a")})}, false},
		{"kv write", admin, authz.ActionKVWrite, types.Entity{UID: types.NewEntityUID(authz.TypeSecret, "a")}, false},
		{"seal", root, authz.ActionSysSeal, systemResource(), false},
		{"snapshot save", root, authz.ActionRaftSnapshotSave, systemResource(), false},
		{"encrypt", root, authz.ActionTransitEncrypt, keyResource("payments"), false},
		{"create a store", root, authz.ActionAuthzStoreCreate, storeResource("*"), false},
		{"approve a request", admin, authz.ActionRequestsApprove, systemResource(), false},
		{"reset a user's factors", admin, authz.ActionUsersMFAReset, userResource("bob"), true},
		{"reset factors, no attributes", root, authz.ActionUsersMFAReset, types.Entity{UID: types.NewEntityUID(authz.TypeUser, "bob")}, true},
		{"single sign-on", root, authz.ActionAuthConfigWrite, systemResource(), true},
		// users.write: bound when the user is or will be in security.
		{"write a security user", admin, authz.ActionUsersWrite, userResource("bob", "dev", "security"), true},
		{"create into security", root, authz.ActionUsersWrite, userResource("*", "security"), true},
		{"write a dev user", admin, authz.ActionUsersWrite, userResource("bob", "dev"), false},
		{"write a user in no group", root, authz.ActionUsersWrite, userResource("bob"), false},
		{"write without groups", root, authz.ActionUsersWrite, types.Entity{UID: types.NewEntityUID(authz.TypeUser, "bob")}, false},
		{"read a security user", admin, authz.ActionUsersRead, userResource("bob", "security"), false},
		{"oneself, in security", admin, authz.ActionUsersSelf, userResource("alice", "security"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ents := authz.Entities{}
			if tc.principal == admin {
				ents = adminEnts
			}
			got := approvals(t, ps, tc.principal, ents, tc.action, tc.resource)
			if tc.bound && !slices.Equal(got, want) || !tc.bound && got != nil {
				t.Errorf("Approvals = %+v, bound %v", got, tc.bound)
			}
		})
	}
}

// TestDualControlDefaultsActions: the rule binds exactly the actions the
// contract lists, on their API resources, and none other: every action of
// Warden on every resource type the API uses.
func TestDualControlDefaultsActions(t *testing.T) {
	ps := wardenWithDualControl(t, "")
	bound := []string{
		authz.ActionSysRotate, authz.ActionSysDualControl, authz.ActionRaftSnapshotRestore, authz.ActionRaftRemove,
		authz.ActionTransitKeyExport, authz.ActionTransitKeyDelete,
		authz.ActionPolicyWrite, authz.ActionPolicyDelete, authz.ActionAuthzSchemaWrite,
		authz.ActionAuthzEntitiesWrite, authz.ActionAuthzStoreDelete, authz.ActionUsersMFAReset, authz.ActionAuthConfigWrite,
		authz.ActionUsersWrite,
	}
	resources := []types.Entity{
		systemResource(), keyResource("k"), storeResource("warden"), policyResource("warden", "p"),
		{UID: types.NewEntityUID(authz.TypeSecret, "s")}, {UID: types.NewEntityUID(authz.TypeToken, "*")},
		{UID: types.NewEntityUID(authz.TypeAuditLog, "warden")}, {UID: types.NewEntityUID(authz.TypeNode, "n")},
		{UID: types.NewEntityUID(authz.TypeZone, "*")}, {UID: types.NewEntityUID(authz.TypeCertificate, "*")},
		{UID: types.NewEntityUID(authz.TypeUser, "alice")}, userResource("alice", "security"), userResource("bob", "dev"),
	}
	var got []string
	for _, a := range authz.Actions() {
		for _, res := range resources {
			if rules := approvals(t, ps, root, authz.Entities{}, a, res); rules != nil && !slices.Contains(got, a) {
				got = append(got, a)
			}
		}
	}
	slices.Sort(got)
	slices.Sort(bound)
	if !slices.Equal(got, bound) {
		t.Errorf("bound actions %q\nwant           %q", got, bound)
	}
}

// TestDualControlDoc: docs/policies/dual-control.cedar is the default rule,
// word for word.
func TestDualControlDoc(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "policies", DualControlName+".cedar"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != DualControlDefaults() {
		t.Errorf("docs/policies/%s.cedar differs from DualControlDefaults()", DualControlName)
	}
}
