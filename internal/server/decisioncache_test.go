package server_test

import "testing"

// TestDecisionsFollowChanges checks that the caches of the decision path
// (the policy set per store version, the store's version per applied
// index, repeated entity sets) never answer from before an acknowledged
// change: each change is followed at once by a check that must see it.
func TestDecisionsFollowChanges(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	keys, root := h.initUnseal(1, 1)
	body := `{"principal": "User::\"bob\"", "action": "Action::\"read\"", "resource": "Doc::\"1\"",
	  "entities": [{"uid": {"type": "User", "id": "bob"}, "attrs": {}, "parents": [{"type": "Group", "id": "staff"}]}]}`
	decision := func(want string) {
		t.Helper()
		for range 3 { // the same entity bytes again: the third is served from the entity cache
			d := h.want(h.do("POST", "/v1/authz/stores/docs/check", root, body), 200).json(t)
			if d["decision"] != want {
				t.Fatalf("decision %v, want %s", d, want)
			}
		}
	}
	h.want(h.do("POST", "/v1/authz/stores/docs/check", root, body), 404)
	h.want(h.do("POST", "/v1/authz/stores", root, map[string]string{"name": "docs"}), 204)
	decision("deny")
	h.want(h.writePolicy(root, "docs", "staff", `permit (principal in Group::"staff", action == Action::"read", resource);`), 200)
	decision("allow")
	h.want(h.writePolicy(root, "docs", "freeze", `forbid (principal, action, resource) when { resource has frozen && resource.frozen };`), 200)
	h.want(h.do("PUT", "/v1/authz/stores/docs/entities", root, `[{"uid": {"type": "Doc", "id": "1"}, "attrs": {"frozen": true}, "parents": []}]`), 200)
	decision("deny")
	h.want(h.do("PUT", "/v1/authz/stores/docs/entities", root, `[]`), 200)
	decision("allow")
	h.want(h.do("DELETE", "/v1/authz/stores/docs/policies/staff", root, nil), 204)
	decision("deny")
	h.want(h.do("DELETE", "/v1/authz/stores/docs", root, nil), 204)
	h.want(h.do("POST", "/v1/authz/stores/docs/check", root, body), 404)
	h.want(h.do("POST", "/v1/authz/stores", root, map[string]string{"name": "docs"}), 204)
	decision("deny")
	h.want(h.writePolicy(root, "docs", "staff", `permit (principal in Group::"staff", action == Action::"read", resource);`), 200)
	decision("allow")

	// Sealed, nothing is decided; unsealed, decisions are as before.
	h.want(h.do("POST", "/v1/sys/seal", root, nil), 204)
	h.want(h.do("POST", "/v1/authz/stores/docs/check", root, body), 503)
	h.unseal(keys)
	decision("allow")
}
