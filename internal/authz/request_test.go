package authz

import (
	"errors"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
)

func TestDecodeCheckRequest(t *testing.T) {
	body := `{
		"principal": "User::\"bob\"",
		"action": {"type": "Action", "id": "kv.read"},
		"resource": "Secret::\"team-1/db\"",
		"context": {"amount": 50, "src": {"__extn": {"fn": "ip", "arg": "10.1.2.3"}}, "tags": ["a", "b"]},
		"entities": [
			{"uid": {"type": "User", "id": "bob"}, "attrs": {"team": "ops"}, "parents": [{"type": "Group", "id": "ops"}]},
			{"uid": {"__entity": {"type": "Secret", "id": "team-1/db"}}, "attrs": {"path": "team-1/db", "owner": {"__entity": {"type": "User", "id": "bob"}}}, "parents": [], "tags": {"env": "prod"}}
		]
	}`
	cr, err := DecodeCheckRequest([]byte(body))
	if err != nil {
		t.Fatalf("DecodeCheckRequest: %v", err)
	}
	if cr.Principal.String() != `User::"bob"` || cr.Action != ActionUID(ActionKVRead) || cr.Resource.String() != `Secret::"team-1/db"` {
		t.Errorf("UIDs: %v %v %v", cr.Principal, cr.Action, cr.Resource)
	}
	if v, ok := cr.Context.Get("amount"); !ok || v != types.Long(50) {
		t.Errorf("context.amount = %v", v)
	}
	if cr.Entities.Len() != 2 {
		t.Errorf("entities: %d", cr.Entities.Len())
	}
	bob, ok := cr.Entities.Get(cr.Principal)
	if !ok || !bob.Parents.Contains(types.NewEntityUID("Group", "ops")) {
		t.Errorf("bob = %+v", bob)
	}
	sec, _ := cr.Entities.Get(cr.Resource)
	if owner, _ := sec.Attributes.Get("owner"); owner != cr.Principal {
		t.Errorf("owner = %v", owner)
	}

	// It decides as expected.
	ps := mustCompile(t, map[string]string{"p": `permit(principal in Group::"ops", action == Action::"kv.read", resource)
		when { resource.path like "team-1/*" && context.amount < 100 && context.src.isInRange(ip("10.0.0.0/8")) && resource.owner == principal && resource.getTag("env") == "prod" };`}, "")
	if d := ps.Authorize(cr.Request, cr.Entities); !d.Allow {
		t.Errorf("decision %+v, want allow", d)
	}

	minimal, err := DecodeCheckRequest([]byte(`{"principal": "User::\"a\"", "action": "Action::\"b\"", "resource": "R::\"c\""}`))
	if err != nil || minimal.Context.Len() != 0 || minimal.Entities.Len() != 0 {
		t.Errorf("minimal: %+v, %v", minimal, err)
	}
}

func TestDecodeCheckRequestErrors(t *testing.T) {
	const p, a, r = `"principal": "User::\"a\""`, `"action": "Action::\"b\""`, `"resource": "R::\"c\""`
	tests := []struct {
		name, body string
		field      string // the FieldError's Field
		msg        string // a substring of its Message
	}{
		{"empty", ``, "", "empty"},
		{"not an object", `[]`, "", "must be a JSON object"},
		{"not JSON", `{"principal": }`, "principal", "invalid character"},
		{"truncated", `{` + p + `,`, "", "truncated"},
		{"trailing data", `{` + p + `, ` + a + `, ` + r + `} {}`, "", "unexpected data"},
		{"unknown field", `{` + p + `, ` + a + `, ` + r + `, "extra": 1}`, "", `unknown field "extra"`},
		{"field names are case-sensitive", `{"Principal": "User::\"a\"", ` + a + `, ` + r + `}`, "", `unknown field "Principal"`},
		{"repeated field", `{` + p + `, ` + p + `, ` + a + `, ` + r + `}`, "", `duplicate field "principal"`},
		{"missing principal", `{` + a + `, ` + r + `}`, "principal", "is required"},
		{"null action", `{` + p + `, "action": null, ` + r + `}`, "action", "is required"},
		{"missing resource", `{` + p + `, ` + a + `}`, "resource", "is required"},
		{"bad principal text", `{"principal": "User::a", ` + a + `, ` + r + `}`, "principal", `want Type::"id"`},
		{"bad principal object", `{"principal": {"type": "User"}, ` + a + `, ` + r + `}`, "principal", `"id" is required`},
		{"principal number", `{"principal": 1, ` + a + `, ` + r + `}`, "principal", "must be a JSON object"},
		{"context not an object", `{` + p + `, ` + a + `, ` + r + `, "context": [1]}`, "context", "must be a JSON object"},
		{"context null", `{` + p + `, ` + a + `, ` + r + `, "context": null}`, "context", "not null"},
		{"context float", `{` + p + `, ` + a + `, ` + r + `, "context": {"x": 1.5}}`, "context", "long out of range"},
		{"context null value", `{` + p + `, ` + a + `, ` + r + `, "context": {"x": null}}`, "context", "unsupported type"},
		{"context duplicate key", `{` + p + `, ` + a + `, ` + r + `, "context": {"x": 1, "x": 2}}`, "context", "duplicate"},
		{"context bad extension", `{` + p + `, ` + a + `, ` + r + `, "context": {"x": {"__extn": {"fn": "ip", "arg": "nope"}}}}`, "context", "ip"},
		{"entities not an array", `{` + p + `, ` + a + `, ` + r + `, "entities": {}}`, "entities", "must be a JSON array"},
		{"entities null", `{` + p + `, ` + a + `, ` + r + `, "entities": null}`, "entities", "not null"},
		{"entity missing attrs", `{` + p + `, ` + a + `, ` + r + `, "entities": [{"uid": {"type": "U", "id": "x"}, "parents": []}]}`, "entities[0]", `"attrs" is required`},
		{"entity unknown member", `{` + p + `, ` + a + `, ` + r + `, "entities": [{"uid": {"type": "U", "id": "x"}, "attrs": {}, "parents": [], "parent": []}]}`, "entities[0]", `unknown field "parent"`},
		{"entity bad parent", `{` + p + `, ` + a + `, ` + r + `, "entities": [{"uid": {"type": "U", "id": "x"}, "attrs": {}, "parents": []}, {"uid": {"type": "U", "id": "y"}, "attrs": {}, "parents": ["G::\"g\""]}]}`, "entities[1].parents[0]", "must be an object"},
		{"entity bad attrs", `{` + p + `, ` + a + `, ` + r + `, "entities": [{"uid": {"type": "U", "id": "x"}, "attrs": {"a": 1.5}, "parents": []}]}`, "entities[0].attrs", "long out of range"},
		{"entity null tags", `{` + p + `, ` + a + `, ` + r + `, "entities": [{"uid": {"type": "U", "id": "x"}, "attrs": {}, "parents": [], "tags": null}]}`, "entities[0].tags", "not null"},
		{"duplicate entity", `{` + p + `, ` + a + `, ` + r + `, "entities": [{"uid": {"type": "U", "id": "x"}, "attrs": {}, "parents": []}, {"uid": {"type": "U", "id": "x"}, "attrs": {}, "parents": []}]}`, "entities[1]", `duplicate entity U::"x"`},
		{"invalid UTF-8", "{\"principal\": \"User::\\\"\xff\\\"\", " + a + `, ` + r + `}`, "", "UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeCheckRequest([]byte(tc.body))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *FieldError", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false")
			}
			if fe.Field != tc.field || !strings.Contains(fe.Message, tc.msg) {
				t.Errorf("err = %q (field %q), want field %q and a message containing %q", err, fe.Field, tc.field, tc.msg)
			}
		})
	}
}

func TestEntities(t *testing.T) {
	stored := mustEntities(t, `[
		{"uid": {"type": "User", "id": "a"}, "attrs": {"v": 1}, "parents": []},
		{"uid": {"type": "User", "id": "b"}, "attrs": {"v": 1}, "parents": []}]`)
	req := mustEntities(t, `[
		{"uid": {"type": "User", "id": "b"}, "attrs": {"v": 2}, "parents": []},
		{"uid": {"type": "User", "id": "c"}, "attrs": {"v": 2}, "parents": []}]`)
	merged := stored.With(req)
	if merged.Len() != 3 {
		t.Errorf("Len = %d, want 3", merged.Len())
	}
	for id, want := range map[string]types.Long{"a": 1, "b": 2, "c": 2} {
		e, ok := merged.Get(types.NewEntityUID("User", types.String(id)))
		if v, _ := e.Attributes.Get("v"); !ok || v != want {
			t.Errorf("%s: v = %v, want %v", id, v, want)
		}
	}
	// Layering twice flattens, keeping the newest override.
	again := merged.With(mustEntities(t, `[{"uid": {"type": "User", "id": "a"}, "attrs": {"v": 3}, "parents": []}]`))
	e, _ := again.Get(types.NewEntityUID("User", "a"))
	if v, _ := e.Attributes.Get("v"); v != types.Long(3) || again.Len() != 3 {
		t.Errorf("second override: v = %v, Len %d", v, again.Len())
	}
	// Round trip through JSON.
	js, err := merged.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseEntities(js)
	if err != nil || back.Len() != 3 {
		t.Fatalf("round trip: %v, %d (%s)", err, back.Len(), js)
	}
	if js, _ := (Entities{}).MarshalJSON(); string(js) != "[]" {
		t.Errorf("empty MarshalJSON = %s", js)
	}
	if _, err := NewEntities(types.Entity{UID: types.NewEntityUID("U", "x")}, types.Entity{UID: types.NewEntityUID("U", "x")}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewEntities with duplicates: %v", err)
	}
	if _, err := ParseEntities(nil); err == nil {
		t.Errorf("ParseEntities(nil) succeeded")
	}
}
