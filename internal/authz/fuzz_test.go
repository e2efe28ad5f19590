package authz

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzParsePolicy checks that ValidatePolicy never panics, that its errors
// are *PolicyError with a position inside the document, and that a
// document it accepts compiles and can be evaluated.
func FuzzParsePolicy(f *testing.F) {
	seeds := []string{
		`permit(principal, action, resource);`,
		`forbid(principal in Group::"ops", action in [Action::"a", Action::"b"], resource is Secret in Folder::"f") when { resource.path like "a/*" } unless { context.x > 1 };`,
		`@id("x") permit(principal is User, action == Action::"kv.read", resource == Secret::"s") when { if context has a then context.a.contains(1) else [1, {b: "c"}].isEmpty() };`,
		`permit(principal, action, resource) when { ip("10.0.0.1").isInRange(ip("10.0.0.0/8")) && decimal("1.23") < decimal("2") && datetime("2024-01-01").offset(duration("1h")) > datetime("2023-01-01") };`,
		"permit(principal, action, resource)",
		"permit(principal, action resource);",
		`permit(principal, action, resource) when { "\u{110000}" };`,
		`permit(principal, action, resource) when { {a: 1, a: 2} };`,
		"// comment only",
		"permit(principal, action, resource) /* x",
		`permit(principal == ?principal, action, resource);`,
		"permit(principal, action, resource) when { ((((((((((true)))))))))) };",
		`@approvals("2") @approvers("Group::\"security\"") permit(principal in Group::"admins", action == Action::"kv.read", resource);`,
		"@approvers(\"Group::\\\"s\\\"\")\n@approvals(\"16\")\npermit(principal, action in [Action::\"kv.read\"], resource is Secret) when { context.n > 1 };",
		`@approvals("0") @approvers("Group::\"s\"") permit(principal, action, resource);`,
		`@approvals("2") @approvers("User::\"s\"") permit(principal, action, resource);`,
		`@approvals("2") forbid(principal, action, resource);`,
		`@approvers("Group::\"s\"") permit(principal, action, resource);`,
		"permit(principal, action, resource);\n@approvals(\"1\") @approvers(\"Group::\\\"g\\\"\") permit(principal == User::\"a\", action, resource) unless { principal.x };",
	}
	for _, s := range seeds {
		f.Add("p.cedar", s)
	}
	f.Fuzz(func(t *testing.T, name, text string) {
		err := ValidatePolicy(name, text)
		if err != nil {
			var pe *PolicyError
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v (%T) is not a *PolicyError", err, err)
			}
			if pe.Line < 0 || pe.Column < 0 || (pe.Line == 0) != (pe.Column == 0) {
				t.Fatalf("bad position in %v", err)
			}
			if pe.Line > strings.Count(text, "\n")+1 {
				t.Fatalf("line %d beyond the document: %v", pe.Line, err)
			}
			return
		}
		ps, err := Compile(map[string]string{name: text}, "")
		if err != nil {
			t.Fatalf("ValidatePolicy accepted what Compile refuses: %v", err)
		}
		req := Request{
			Principal: ActionUID("p"),
			Action:    ActionUID(ActionKVRead),
			Resource:  ActionUID("r"),
		}
		d := ps.Authorize(req, Entities{})
		u := ps.authorizeUnindexed(req, Entities{})
		if d.Allow != u.Allow || len(d.Reasons) != len(u.Reasons) || len(d.Errors) != len(u.Errors) {
			t.Fatalf("indexed %+v != unindexed %+v", d, u)
		}
		// Approval rules: one for each statement annotated @approvals,
		// each well formed, and Approvals answers as each rule's widened
		// policy evaluated alone.
		annotated := 0
		for _, c := range ps.policies {
			if _, ok := c.policy.Annotations()[AnnotationApprovals]; ok {
				annotated++
			}
		}
		if len(ps.approvals.rules) != annotated {
			t.Fatalf("%d approval rules, %d statements annotated @approvals", len(ps.approvals.rules), annotated)
		}
		ids := ps.IDs()
		for _, principal := range []string{`Root::"root"`, `User::"a"`} {
			req.Principal = mustUID(t, principal)
			got := ps.Approvals(req, Entities{})
			for _, r := range got {
				if !slices.Contains(ids, r.Policy) || r.Approvals < 1 || r.Approvals > MaxApprovals ||
					r.Approvers.Type != TypeGroup || r.Approvers.ID == "" {
					t.Fatalf("bad rule %+v", r)
				}
			}
			if want := approvalsReference(ps, req, Entities{}); !slices.Equal(got, want) {
				t.Fatalf("Approvals %+v, rules evaluated alone %+v", got, want)
			}
		}
	})
}

// FuzzDecodeCheckRequest checks that DecodeCheckRequest never panics, that
// its errors are *FieldError, and that what it accepts can be decided.
func FuzzDecodeCheckRequest(f *testing.F) {
	seeds := []string{
		`{"principal": "User::\"bob\"", "action": "Action::\"kv.read\"", "resource": {"type": "Secret", "id": "a/b"}}`,
		`{"principal": {"__entity": {"type": "User", "id": "bob"}}, "action": "Action::\"kv.read\"", "resource": "Secret::\"x\"", "context": {"n": 1, "ip": {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}, "s": [1, 2], "r": {"a": true}}, "entities": [{"uid": {"type": "User", "id": "bob"}, "attrs": {"team": "ops"}, "parents": [{"type": "Group", "id": "ops"}], "tags": {"t": "v"}}]}`,
		`{"principal": "User::\"\\u{e9}\"", "action": "A::\"b\"", "resource": "R::\"c\"", "entities": []}`,
		`{"principal": 1}`,
		`{"Principal": "User::\"a\""}`,
		`[]`,
		``,
		`{"principal": "User::\"a\"", "principal": "User::\"b\""}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	ps, err := Compile(map[string]string{
		"p": `permit(principal in Group::"ops", action, resource) when { context has n && context.n > 0 };`,
		"f": `forbid(principal, action, resource) when { principal has team && principal.team == "x" };`,
	}, "")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cr, err := DecodeCheckRequest(data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v (%T) is not a *FieldError", err, err)
			}
			return
		}
		for _, uid := range []string{string(cr.Principal.Type), string(cr.Action.Type), string(cr.Resource.Type)} {
			if !validTypeName(uid) {
				t.Fatalf("accepted invalid type %q", uid)
			}
		}
		d := ps.Authorize(cr.Request, cr.Entities)
		u := ps.authorizeUnindexed(cr.Request, cr.Entities)
		if d.Allow != u.Allow || len(d.Errors) != len(u.Errors) {
			t.Fatalf("indexed %+v != unindexed %+v", d, u)
		}
	})
}
