package authz

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestWardenSchema(t *testing.T) {
	if err := ValidateSchema(WardenSchema); err != nil {
		t.Fatalf("WardenSchema: %v", err)
	}
	// Every action constant is declared, and a policy naming it validates.
	for _, a := range Actions() {
		doc := `permit(principal in Group::"ops", action == Action::"` + a + `", resource);`
		if _, err := Compile(map[string]string{"p": doc}, WardenSchema); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	if n := len(Actions()); n != 86 {
		t.Errorf("%d actions, want 86", n)
	}
	if got := ActionUID(ActionKVRead).String(); got != `Action::"kv.read"` {
		t.Errorf("ActionUID = %s", got)
	}
	docs := map[string]string{
		"ok": `permit(principal is User in Group::"ops", action in [Action::"kv.read", Action::"kv.list"], resource is Secret)
			when { resource.path like "team-1/*" };`,
		"root": `permit(principal is Root, action, resource);`,
		// A User's attributes are optional: tested with has.
		"users": `permit(principal, action == Action::"users.write", resource is User)
			when { resource has groups && resource.groups.contains("security") && resource has name && resource.name != "root" };`,
		"principal-name": `permit(principal is User, action == Action::"kv.read", resource is Secret)
			when { principal has name && resource.path like "home/*" };`,
	}
	ps, err := Compile(docs, WardenSchema)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	if !slices.Equal(ps.IDs(), []string{"ok", "principal-name", "root", "users"}) {
		t.Errorf("IDs = %q", ps.IDs())
	}
}

func TestSchemaValidation(t *testing.T) {
	tests := []struct {
		name      string
		doc       string
		line, col int
		msg       string
	}{
		{"unknown action", `permit(principal, action == Action::"kv.nope", resource);`, 1, 1, "unrecognized action"},
		{"unknown attribute", "// first\n  permit(principal, action == Action::\"kv.read\", resource) when { resource.nope == 1 };", 2, 3, "attribute `nope`"},
		{"type error", `permit(principal, action == Action::"kv.read", resource) when { resource.path > 1 };`, 1, 1, "unexpected type"},
		{"wrong resource type", `permit(principal, action == Action::"kv.read", resource is Token);`, 1, 1, "unable to find an applicable action"},
		{"unknown entity type", `permit(principal == Usr::"bob", action, resource);`, 1, 1, "unrecognized entity type"},
		{"context not declared", `permit(principal, action == Action::"kv.read", resource) when { context.amount < 100 };`, 1, 1, "attribute `amount` in context"},
		{"optional attribute unguarded", `permit(principal, action == Action::"users.write", resource) when { resource.groups.contains("security") };`, 1, 1, "groups"},
		{"second statement", "permit(principal, action, resource);\nforbid(principal, action, resource) when { principal.path == \"\" };", 2, 1, "attribute `path`"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(map[string]string{"p.cedar": tc.doc}, WardenSchema)
			var pe *PolicyError
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want a *PolicyError", err)
			}
			if pe.Name != "p.cedar" || pe.Line != tc.line || pe.Column != tc.col || !strings.Contains(pe.Message, tc.msg) {
				t.Errorf("err = %v, want p.cedar:%d:%d and a message containing %q", err, tc.line, tc.col, tc.msg)
			}
			// The same document is fine without a schema.
			if _, err := Compile(map[string]string{"p.cedar": tc.doc}, ""); err != nil {
				t.Errorf("without schema: %v", err)
			}
		})
	}
}

func TestSchemaErrors(t *testing.T) {
	tests := []struct {
		name      string
		schema    string
		line, col int
		msg       string
	}{
		{"syntax", "entity User {\n  name String,\n};", 2, 8, "expected ':'"},
		{"bad type name", "entity User in [Group] {\n  name: Strin;\n};", 2, 14, "expected"},
		{"undefined type", "entity User in [Group];", 0, 0, `undefined entity type "Group"`},
		{"JSON unknown member", `{"": {"entityTypes": {}, "actions": {}, "bogus": 1}}`, 0, 0, "bogus"},
		{"JSON truncated", `{"": {"entityTypes": {}, "actions": {}}`, 0, 0, "EOF"},
		{"too large", "entity A;" + strings.Repeat(" ", MaxSchemaBytes), 0, 0, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateSchema(tc.schema)
			var se *SchemaError
			if !errors.As(err, &se) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want a *SchemaError", err)
			}
			if se.Line != tc.line || se.Column != tc.col || !strings.Contains(se.Message, tc.msg) {
				t.Errorf("err = %v, want line %d col %d and %q", err, tc.line, tc.col, tc.msg)
			}
			// Compile refuses the schema too, building nothing.
			if ps, err := Compile(map[string]string{"p": `permit(principal, action, resource);`}, tc.schema); ps != nil || !errors.As(err, &se) {
				t.Errorf("Compile: %v, %v", ps, err)
			}
		})
	}
	if err := ValidateSchema("  \n"); err != nil {
		t.Errorf("blank schema: %v", err)
	}
}

func TestJSONSchema(t *testing.T) {
	schema := `{"": {
		"entityTypes": {
			"User": {"memberOfTypes": ["Group"]},
			"Group": {},
			"Doc": {"shape": {"type": "Record", "attributes": {"owner": {"type": "Entity", "name": "User"}}}}
		},
		"actions": {
			"read": {"appliesTo": {"principalTypes": ["User"], "resourceTypes": ["Doc"]}}
		}
	}}`
	good := `permit(principal in Group::"g", action == Action::"read", resource) when { resource.owner == principal };`
	if _, err := Compile(map[string]string{"good": good}, schema); err != nil {
		t.Fatalf("good policy: %v", err)
	}
	bad := `permit(principal, action == Action::"read", resource) when { resource.owner == 1 };`
	if _, err := Compile(map[string]string{"bad": bad}, schema); err == nil {
		t.Fatalf("bad policy accepted")
	}
}
