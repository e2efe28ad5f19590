package authz

import (
	"slices"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
)

// mustUID parses a Cedar UID or fails the test.
func mustUID(t testing.TB, s string) types.EntityUID {
	t.Helper()
	uid, err := ParseUID(s)
	if err != nil {
		t.Fatalf("ParseUID(%q): %v", s, err)
	}
	return uid
}

func mustEntities(t testing.TB, js string) Entities {
	t.Helper()
	if js == "" {
		return Entities{}
	}
	es, err := ParseEntities([]byte(js))
	if err != nil {
		t.Fatalf("ParseEntities: %v", err)
	}
	return es
}

func mustContext(t testing.TB, js string) types.Record {
	t.Helper()
	if js == "" {
		return types.Record{}
	}
	r, err := decodeRecord("context", []byte(js))
	if err != nil {
		t.Fatalf("context: %v", err)
	}
	return r
}

func mustCompile(t testing.TB, policies map[string]string, schema string) *PolicySet {
	t.Helper()
	ps, err := Compile(policies, schema)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return ps
}

const testEntities = `[
  {"uid": {"type": "User", "id": "alice"}, "attrs": {}, "parents": [{"type": "Group", "id": "ops"}]},
  {"uid": {"type": "User", "id": "bob"}, "attrs": {}, "parents": [{"type": "Group", "id": "dev"}]},
  {"uid": {"type": "User", "id": "carol"}, "attrs": {}, "parents": [{"type": "Group", "id": "support"}]},
  {"uid": {"type": "User", "id": "dave"}, "attrs": {}, "parents": [{"type": "Group", "id": "sre"}]},
  {"uid": {"type": "Group", "id": "sre"}, "attrs": {}, "parents": [{"type": "Group", "id": "ops"}]},
  {"uid": {"type": "Group", "id": "ops"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Secret", "id": "t1"}, "attrs": {"path": "team-1/db"}, "parents": []},
  {"uid": {"type": "Secret", "id": "t2"}, "attrs": {"path": "team-2/db"}, "parents": []},
  {"uid": {"type": "Secret", "id": "t1s"}, "attrs": {"path": "team-1/prod/secret"}, "parents": []},
  {"uid": {"type": "Action", "id": "kv.read"}, "attrs": {}, "parents": [{"type": "Action", "id": "kv.readers"}]},
  {"uid": {"type": "Action", "id": "kv.list"}, "attrs": {}, "parents": [{"type": "Action", "id": "kv.readers"}]}
]`

// TestAuthorize checks Cedar's semantics as Warden uses them, and Warden's
// rule that an erroring policy denies. Every case runs through the indexed
// path and the unindexed reference, which must agree.
func TestAuthorize(t *testing.T) {
	stored := mustEntities(t, testEntities)
	tests := []struct {
		name      string
		policies  map[string]string
		principal string
		action    string
		resource  string
		context   string
		entities  string // request entities, overriding stored ones
		allow     bool
		reasons   []string
		errors    []string // substrings, one per expected error
	}{
		{
			name:      "no policies: default deny",
			policies:  map[string]string{},
			principal: `User::"alice"`, action: `Action::"kv.read"`, resource: `Secret::"t1"`,
		},
		{
			name:      "no matching policy: default deny",
			policies:  map[string]string{"p": `permit(principal == User::"bob", action, resource);`},
			principal: `User::"alice"`, action: `Action::"kv.read"`, resource: `Secret::"t1"`,
		},
		{
			name:      "permit",
			policies:  map[string]string{"p": `permit(principal == User::"alice", action == Action::"kv.read", resource);`},
			principal: `User::"alice"`, action: `Action::"kv.read"`, resource: `Secret::"t1"`,
			allow: true, reasons: []string{"p"},
		},
		{
			name: "forbid beats permit",
			policies: map[string]string{
				"allow-all": `permit(principal, action, resource);`,
				"no-prod":   `forbid(principal, action, resource) when { resource.path like "*/prod/*" };`,
			},
			principal: `User::"alice"`, action: `Action::"kv.read"`, resource: `Secret::"t1s"`,
			reasons: []string{"no-prod"},
		},
		{
			name: "forbid that does not match leaves the permit",
			policies: map[string]string{
				"allow-all": `permit(principal, action, resource);`,
				"no-prod":   `forbid(principal, action, resource) when { resource.path like "*/prod/*" };`,
			},
			principal: `User::"alice"`, action: `Action::"kv.read"`, resource: `Secret::"t1"`,
			allow: true, reasons: []string{"allow-all"},
		},
		{
			name:      "group membership permits",
			policies:  map[string]string{"ops": `permit(principal in Group::"ops", action, resource);`},
			principal: `User::"alice"`, action: `Action::"kv.write"`, resource: `Secret::"t2"`,
			allow: true, reasons: []string{"ops"},
		},
		{
			name:      "nested group membership permits",
			policies:  map[string]string{"ops": `permit(principal in Group::"ops", action, resource);`},
			principal: `User::"dave"`, action: `Action::"kv.write"`, resource: `Secret::"t2"`,
			allow: true, reasons: []string{"ops"},
		},
		{
			name:      "non-member denied",
			policies:  map[string]string{"ops": `permit(principal in Group::"ops", action, resource);`},
			principal: `User::"bob"`, action: `Action::"kv.write"`, resource: `Secret::"t2"`,
		},
		{
			name:      "unknown principal denied",
			policies:  map[string]string{"ops": `permit(principal in Group::"ops", action, resource);`},
			principal: `User::"mallory"`, action: `Action::"kv.write"`, resource: `Secret::"t2"`,
		},
		{
			name:      "is Type in Group",
			policies:  map[string]string{"ops": `permit(principal is User in Group::"ops", action, resource);`},
			principal: `User::"dave"`, action: `Action::"kv.read"`, resource: `Secret::"t1"`,
			allow: true, reasons: []string{"ops"},
		},
		{
			name:      "is Type rejects another type",
			policies:  map[string]string{"root": `permit(principal is Root, action, resource);`},
			principal: `User::"alice"`, action: `Action::"kv.read"`, resource: `Secret::"t1"`,
		},
		{
			name:      "is Type",
			policies:  map[string]string{"root": `permit(principal is Root, action, resource);`},
			principal: `Root::"root"`, action: `Action::"sys.seal"`, resource: `System::"warden"`,
			allow: true, reasons: []string{"root"},
		},
		{
			name:      "action group via action entities",
			policies:  map[string]string{"readers": `permit(principal, action in Action::"kv.readers", resource);`},
			principal: `User::"bob"`, action: `Action::"kv.list"`, resource: `Secret::"t1"`,
			allow: true, reasons: []string{"readers"},
		},
		{
			name:      "action set",
			policies:  map[string]string{"rw": `permit(principal, action in [Action::"kv.read", Action::"kv.write"], resource);`},
			principal: `User::"bob"`, action: `Action::"kv.write"`, resource: `Secret::"t1"`,
			allow: true, reasons: []string{"rw"},
		},
		{
			name:      "action set excludes others",
			policies:  map[string]string{"rw": `permit(principal, action in [Action::"kv.read", Action::"kv.write"], resource);`},
			principal: `User::"bob"`, action: `Action::"kv.delete"`, resource: `Secret::"t1"`,
		},
		{
			name:      "like pattern on resource.path matches",
			policies:  map[string]string{"team1": `permit(principal, action == Action::"kv.read", resource) when { resource.path like "team-1/*" };`},
			principal: `User::"bob"`, action: `Action::"kv.read"`, resource: `Secret::"t1"`,
			allow: true, reasons: []string{"team1"},
		},
		{
			name:      "like pattern on resource.path matches deeper paths",
			policies:  map[string]string{"team1": `permit(principal, action == Action::"kv.read", resource) when { resource.path like "team-1/*" };`},
			principal: `User::"bob"`, action: `Action::"kv.read"`, resource: `Secret::"t1s"`,
			allow: true, reasons: []string{"team1"},
		},
		{
			name:      "like pattern on resource.path does not match another team",
			policies:  map[string]string{"team1": `permit(principal, action == Action::"kv.read", resource) when { resource.path like "team-1/*" };`},
			principal: `User::"bob"`, action: `Action::"kv.read"`, resource: `Secret::"t2"`,
		},
		{
			name:      "unless",
			policies:  map[string]string{"p": `permit(principal, action, resource) unless { resource.path like "*/secret" };`},
			principal: `User::"bob"`, action: `Action::"kv.read"`, resource: `Secret::"t1s"`,
		},
		{
			name:      "refund under 100 allowed",
			policies:  map[string]string{"refunds": `permit(principal in Group::"support", action == Action::"refund", resource) when { context.amount < 100 };`},
			principal: `User::"carol"`, action: `Action::"refund"`, resource: `Order::"o1"`, context: `{"amount": 99}`,
			allow: true, reasons: []string{"refunds"},
		},
		{
			name:      "refund at 500 denied",
			policies:  map[string]string{"refunds": `permit(principal in Group::"support", action == Action::"refund", resource) when { context.amount < 100 };`},
			principal: `User::"carol"`, action: `Action::"refund"`, resource: `Order::"o1"`, context: `{"amount": 500}`,
		},
		{
			name:      "refund at 100 denied",
			policies:  map[string]string{"refunds": `permit(principal in Group::"support", action == Action::"refund", resource) when { context.amount < 100 };`},
			principal: `User::"carol"`, action: `Action::"refund"`, resource: `Order::"o1"`, context: `{"amount": 100}`,
		},
		{
			// Plain Cedar would skip the erroring forbid and allow.
			name: "erroring forbid denies and is reported",
			policies: map[string]string{
				"allow-all":  `permit(principal, action, resource);`,
				"big-amount": `forbid(principal, action, resource) when { context.amount > 10 };`,
			},
			principal: `User::"alice"`, action: `Action::"kv.read"`, resource: `Secret::"t1"`, context: `{}`,
			errors: []string{`big-amount: `},
		},
		{
			name: "erroring forbid on a type error denies",
			policies: map[string]string{
				"allow-all":  `permit(principal, action, resource);`,
				"big-amount": `forbid(principal, action, resource) when { context.amount > 10 };`,
			},
			principal: `User::"alice"`, action: `Action::"kv.read"`, resource: `Secret::"t1"`, context: `{"amount": "lots"}`,
			errors: []string{`big-amount: `},
		},
		{
			name: "erroring forbid and a satisfied forbid",
			policies: map[string]string{
				"allow-all":  `permit(principal, action, resource);`,
				"big-amount": `forbid(principal, action, resource) when { context.amount > 10 };`,
				"no-t1":      `forbid(principal, action, resource == Secret::"t1");`,
			},
			principal: `User::"alice"`, action: `Action::"kv.read"`, resource: `Secret::"t1"`,
			reasons: []string{"no-t1"}, errors: []string{`big-amount: `},
		},
		{
			name: "erroring permit denies even with another permit",
			policies: map[string]string{
				"allow-all": `permit(principal, action, resource);`,
				"broken":    `permit(principal, action, resource) when { principal.nope == 1 };`,
			},
			principal: `User::"alice"`, action: `Action::"kv.read"`, resource: `Secret::"t1"`,
			errors: []string{`broken: `},
		},
		{
			name: "erroring policy whose scope does not match is irrelevant",
			policies: map[string]string{
				"allow-all":  `permit(principal, action, resource);`,
				"big-amount": `forbid(principal == User::"eve", action, resource) when { context.amount > 10 };`,
			},
			principal: `User::"alice"`, action: `Action::"kv.read"`, resource: `Secret::"t1"`,
			allow: true, reasons: []string{"allow-all"},
		},
		{
			name: "error in extension call denies",
			policies: map[string]string{
				"allow-all": `permit(principal, action, resource);`,
				"ip":        `forbid(principal, action, resource) unless { context.src.isInRange(ip("not an ip")) };`,
			},
			principal: `User::"alice"`, action: `Action::"kv.read"`, resource: `Secret::"t1"`, context: `{"src": {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}}`,
			errors: []string{`ip: `},
		},
		{
			name:      "request entities override stored ones",
			policies:  map[string]string{"ops": `permit(principal in Group::"ops", action, resource);`},
			principal: `User::"alice"`, action: `Action::"kv.read"`, resource: `Secret::"t1"`,
			entities: `[{"uid": {"type": "User", "id": "alice"}, "attrs": {}, "parents": []}]`,
		},
		{
			name:      "request entities add to stored ones",
			policies:  map[string]string{"ops": `permit(principal in Group::"ops", action, resource) when { resource.path == "x" };`},
			principal: `User::"alice"`, action: `Action::"kv.read"`, resource: `Secret::"new"`,
			entities: `[{"uid": {"type": "Secret", "id": "new"}, "attrs": {"path": "x"}, "parents": []}]`,
			allow:    true, reasons: []string{"ops"},
		},
		{
			name: "ids of multi-statement documents",
			policies: map[string]string{"team/ops.cedar": `
				permit(principal == User::"bob", action, resource);
				permit(principal in Group::"ops", action, resource);
				permit(principal, action, resource == Secret::"t1");`},
			principal: `User::"alice"`, action: `Action::"kv.read"`, resource: `Secret::"t1"`,
			allow: true, reasons: []string{"team/ops.cedar#1", "team/ops.cedar#2"},
		},
		{
			name:      "@id annotations do not change ids",
			policies:  map[string]string{"a": `@id("b") permit(principal, action, resource);`},
			principal: `User::"alice"`, action: `Action::"kv.read"`, resource: `Secret::"t1"`,
			allow: true, reasons: []string{"a"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := mustCompile(t, tc.policies, "")
			req := Request{
				Principal: mustUID(t, tc.principal),
				Action:    mustUID(t, tc.action),
				Resource:  mustUID(t, tc.resource),
				Context:   mustContext(t, tc.context),
			}
			ents := stored.With(mustEntities(t, tc.entities))
			got := ps.Authorize(req, ents)
			check := func(path string, d Decision) {
				t.Helper()
				if d.Allow != tc.allow {
					t.Errorf("%s: Allow = %v, want %v (decision %+v)", path, d.Allow, tc.allow, d)
				}
				if !slices.Equal(d.Reasons, tc.reasons) {
					t.Errorf("%s: Reasons = %q, want %q", path, d.Reasons, tc.reasons)
				}
				if len(d.Errors) != len(tc.errors) {
					t.Fatalf("%s: Errors = %q, want %d matching %q", path, d.Errors, len(tc.errors), tc.errors)
				}
				for i := range tc.errors {
					if !strings.Contains(d.Errors[i], tc.errors[i]) {
						t.Errorf("%s: Errors[%d] = %q, want it to contain %q", path, i, d.Errors[i], tc.errors[i])
					}
				}
			}
			check("indexed", got)
			check("unindexed", ps.authorizeUnindexed(req, ents))
		})
	}
}

func TestAuthorizeNilAndEmpty(t *testing.T) {
	var ps *PolicySet
	if d := ps.Authorize(Request{}, Entities{}); d.Allow || d.Reasons != nil || d.Errors != nil {
		t.Errorf("nil set: %+v, want zero deny", d)
	}
	if ps.Len() != 0 || ps.IDs() != nil {
		t.Errorf("nil set: Len %d IDs %v", ps.Len(), ps.IDs())
	}
	empty := mustCompile(t, nil, "")
	if d := empty.Authorize(Request{}, Entities{}); d.Allow {
		t.Errorf("empty set allowed: %+v", d)
	}
}

func TestIDs(t *testing.T) {
	ps := mustCompile(t, map[string]string{
		"b":     `permit(principal, action, resource);`,
		"a":     "permit(principal, action, resource);\nforbid(principal, action, resource);",
		"a-two": `permit(principal, action, resource);`,
	}, "")
	want := []string{"a#0", "a#1", "a-two", "b"}
	if got := ps.IDs(); !slices.Equal(got, want) {
		t.Errorf("IDs = %q, want %q", got, want)
	}
	if ps.Len() != 4 {
		t.Errorf("Len = %d, want 4", ps.Len())
	}
}
