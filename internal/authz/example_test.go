package authz_test

import (
	"fmt"

	"github.com/warden-sec/warden/internal/authz"
)

func Example() {
	// On write: compile the store's documents (with its schema, if any);
	// an invalid document is refused with NAME:LINE:COL.
	_, err := authz.Compile(map[string]string{
		"broken.cedar": "permit(principal, action, resource)\nwhen { context.amount < };",
	}, "")
	fmt.Println(err)

	ps, err := authz.Compile(map[string]string{
		"ops.cedar": `permit(principal in Group::"ops", action == Action::"kv.read", resource)
		              when { resource.path like "team-1/*" };`,
		"prod.cedar": `forbid(principal, action, resource is Secret) when { resource.path like "*/prod/*" };`,
	}, authz.WardenSchema)
	if err != nil {
		fmt.Println(err)
		return
	}
	stored, _ := authz.ParseEntities([]byte(`[
		{"uid": {"type": "User", "id": "alice"}, "attrs": {}, "parents": [{"type": "Group", "id": "ops"}]},
		{"uid": {"type": "Secret", "id": "team-1/db"}, "attrs": {"path": "team-1/db"}, "parents": []},
		{"uid": {"type": "Secret", "id": "team-1/prod/db"}, "attrs": {"path": "team-1/prod/db"}, "parents": []}
	]`))

	// On check: decode the request, merge its entities over the stored ones.
	for _, body := range []string{
		`{"principal": "User::\"alice\"", "action": "Action::\"kv.read\"", "resource": "Secret::\"team-1/db\""}`,
		`{"principal": "User::\"alice\"", "action": "Action::\"kv.read\"", "resource": "Secret::\"team-1/prod/db\""}`,
	} {
		cr, err := authz.DecodeCheckRequest([]byte(body))
		if err != nil {
			fmt.Println(err)
			return
		}
		d := ps.Authorize(cr.Request, stored.With(cr.Entities))
		fmt.Println(d.Allow, d.Reasons)
	}
	// Output:
	// broken.cedar:2:25: invalid primary, found "}"
	// true [ops.cedar]
	// false [prod.cedar]
}
