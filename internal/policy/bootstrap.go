package policy

import (
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/store/kv"
)

// Encrypter encrypts a value for a storage key (core.Encrypter, at init).
type Encrypter interface {
	Encrypt(aad string, plaintext []byte) ([]byte, error)
}

// DualControlRolesName is the name of the policy that says who takes part
// in dual control (DualControlRoles).
const DualControlRolesName = "dual-control-roles"

// DualControlRoles returns the Cedar text of the policy that init writes
// into the warden store with the default approval rule: members of
// Group::"security" read, approve and deny requests, and members of
// Group::"admins" read requests and run or cancel their own. Without it
// no one but the root token could take part, and the root token can
// approve nothing (it is in no group): the approvers could never be given
// the right to approve, since writing a policy of the warden store is
// itself held for approval.
func DualControlRoles() string {
	return `// dual-control-roles: who takes part in dual control. Members of
// Group::"security" read requests and approve or deny them (never their
// own); members of Group::"admins" read requests and run or cancel their
// own once approved.
permit (
  principal in Group::"security",
  action in [Action::"requests.read", Action::"requests.approve"],
  resource == System::"warden"
);
permit (
  principal in Group::"admins",
  action in [Action::"requests.read", Action::"requests.run"],
  resource == System::"warden"
);
`
}

// BootstrapPolicies returns the operations, encrypted with enc, that store
// policies (by name) in the warden store at init, before anything else is
// in it: each policy's record (version 1) and the store's generation. The
// texts are checked as WritePolicy checks them, with the built-in
// policies.
func BootstrapPolicies(enc Encrypter, policies map[string]string, now time.Time) ([]kv.Op, error) {
	pols := BuiltinPolicies()
	for _, name := range slices.Sorted(maps.Keys(policies)) {
		text := policies[name]
		if err := authz.ValidatePolicy(name, text); err != nil {
			return nil, invalid(err)
		}
		if err := refuseBuiltin(WardenStore, name); err != nil {
			return nil, err
		}
		pols[name] = text
	}
	if _, err := authz.Compile(pols, ""); err != nil {
		return nil, invalid(err)
	}
	now = now.UTC()
	var ops []kv.Op
	for _, name := range slices.Sorted(maps.Keys(policies)) {
		rec, err := json.Marshal(&Policy{Store: WardenStore, Name: name, Text: policies[name], CreatedTime: now, UpdatedTime: now, Version: 1})
		if err != nil {
			return nil, err
		}
		ops = append(ops, kv.Op{Type: kv.OpPut, Key: prefixPolicy + WardenStore + "/" + name, Value: rec})
	}
	ops = append(ops, kv.Op{Type: kv.OpPut, Key: prefixGen + WardenStore, Value: []byte{}})
	for i := range ops {
		ct, err := enc.Encrypt(ops[i].Key, ops[i].Value)
		if err != nil {
			return nil, err
		}
		ops[i].Value = ct
	}
	return ops, nil
}
