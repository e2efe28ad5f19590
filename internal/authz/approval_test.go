package authz

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go"
)

// approvalDocs is a store with approval rules of every shape, plain
// permits and a forbid.
var approvalDocs = map[string]string{
	"admins": `permit (principal in Group::"admins", action, resource);`,
	"no-kv-delete": `forbid (principal, action == Action::"kv.delete", resource);
`,
	"rotate": `@approvals("2")
@approvers("Group::\"security\"")
permit (principal in Group::"admins", action == Action::"sys.rotate", resource);`,
	"restore": `// Narrow principal scope: it still binds everyone.
@approvals("1") @approvers("Group::\"sre\"")
permit (principal == User::"alice", action in [Action::"raft.snapshot.restore", Action::"raft.remove"], resource == System::"warden");`,
	"prod": `@approvals("3") @approvers("Group::\"security\"")
permit (principal, action == Action::"kv.write", resource in Folder::"prod") when { resource.path like "prod/*" };`,
	"export": `@id("export") @approvals("16") @approvers("Group::\"key custodians\"")
permit (principal, action == Action::"transit.key.export", resource is Key) when { context.amount > 10 };`,
	"policies": `@approvals("1") @approvers("Group::\"security\"")
permit (principal is User, action in [Action::"policy.write", Action::"policy.delete"], resource is Policy)
unless { resource.store == "scratch" };`,
	"who": `@approvals("2") @approvers("Group::\"security\"")
permit (principal, action == Action::"sys.seal", resource) when { principal.level < 3 };`,
	// Two statements: the second is the rule, "multi#1"; it binds
	// sys.rotate too, after "rotate".
	"zz-multi": `permit (principal == User::"bob", action == Action::"kv.read", resource);
@approvals("1") @approvers("Group::\"auditors\"")
permit (principal, action in [Action::"sys.rotate", Action::"audit.prune"], resource);`,
}

const approvalEntities = `[
  {"uid": {"type": "User", "id": "alice"}, "attrs": {"level": 5}, "parents": [{"type": "Group", "id": "admins"}]},
  {"uid": {"type": "User", "id": "bob"}, "attrs": {"level": 1}, "parents": []},
  {"uid": {"type": "Secret", "id": "prod/db"}, "attrs": {"path": "prod/db"}, "parents": [{"type": "Folder", "id": "prod"}]},
  {"uid": {"type": "Secret", "id": "prod/odd"}, "attrs": {}, "parents": [{"type": "Folder", "id": "prod"}]},
  {"uid": {"type": "Secret", "id": "dev/db"}, "attrs": {"path": "dev/db"}, "parents": [{"type": "Folder", "id": "dev"}]},
  {"uid": {"type": "Policy", "id": "warden/x"}, "attrs": {"store": "warden", "name": "x"}, "parents": []},
  {"uid": {"type": "Policy", "id": "scratch/x"}, "attrs": {"store": "scratch", "name": "x"}, "parents": []}
]`

func ruleIDs(rs []ApprovalRule) []string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.Policy)
	}
	return ids
}

func TestApprovals(t *testing.T) {
	ps := mustCompile(t, approvalDocs, "")
	ents := mustEntities(t, approvalEntities)
	tests := []struct {
		name                        string
		principal, action, resource string
		context                     string
		want                        []string
	}{
		// Scopes: the principal scope is set aside.
		{"root rotates", `Root::"root"`, `Action::"sys.rotate"`, `System::"warden"`, "", []string{"rotate", "zz-multi#1"}},
		{"admin rotates", `User::"alice"`, `Action::"sys.rotate"`, `System::"warden"`, "", []string{"rotate", "zz-multi#1"}},
		{"non-admin rotates", `User::"bob"`, `Action::"sys.rotate"`, `System::"warden"`, "", []string{"rotate", "zz-multi#1"}},
		{"unknown principal", `User::"nobody"`, `Action::"audit.prune"`, `AuditLog::"warden"`, "", []string{"zz-multi#1"}},
		{"root restores", `Root::"root"`, `Action::"raft.snapshot.restore"`, `System::"warden"`, "", []string{"restore"}},
		{"action in set", `User::"bob"`, `Action::"raft.remove"`, `System::"warden"`, "", []string{"restore"}},
		{"resource scope misses", `Root::"root"`, `Action::"raft.snapshot.restore"`, `System::"other"`, "", nil},
		{"action misses", `Root::"root"`, `Action::"raft.snapshot.save"`, `System::"warden"`, "", nil},
		{"read", `Root::"root"`, `Action::"kv.read"`, `Secret::"prod/db"`, "", nil},
		// Resource ancestry and conditions.
		{"prod write", `User::"bob"`, `Action::"kv.write"`, `Secret::"prod/db"`, "", []string{"prod"}},
		{"dev write", `User::"bob"`, `Action::"kv.write"`, `Secret::"dev/db"`, "", nil},
		{"unknown secret", `User::"bob"`, `Action::"kv.write"`, `Secret::"prod/new"`, "", nil},
		{"condition errors", `User::"bob"`, `Action::"kv.write"`, `Secret::"prod/odd"`, "", []string{"prod"}},
		{"context holds", `Root::"root"`, `Action::"transit.key.export"`, `Key::"k"`, `{"amount": 50}`, []string{"export"}},
		{"context fails", `Root::"root"`, `Action::"transit.key.export"`, `Key::"k"`, `{"amount": 5}`, nil},
		{"context missing", `Root::"root"`, `Action::"transit.key.export"`, `Key::"k"`, "", []string{"export"}},
		{"wrong resource type", `Root::"root"`, `Action::"transit.key.export"`, `Secret::"k"`, `{"amount": 50}`, nil},
		{"unless holds", `Root::"root"`, `Action::"policy.write"`, `Policy::"scratch/x"`, "", nil},
		{"unless fails", `Root::"root"`, `Action::"policy.delete"`, `Policy::"warden/x"`, "", []string{"policies"}},
		{"unless errors", `Root::"root"`, `Action::"policy.write"`, `Policy::"other/y"`, "", []string{"policies"}},
		// Conditions on the principal: the root principal has no entity.
		{"principal attribute holds", `User::"bob"`, `Action::"sys.seal"`, `System::"warden"`, "", []string{"who"}},
		{"principal attribute fails", `User::"alice"`, `Action::"sys.seal"`, `System::"warden"`, "", nil},
		{"root has no attributes", `Root::"root"`, `Action::"sys.seal"`, `System::"warden"`, "", []string{"who"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := Request{
				Principal: mustUID(t, tc.principal),
				Action:    mustUID(t, tc.action),
				Resource:  mustUID(t, tc.resource),
				Context:   mustContext(t, tc.context),
			}
			got := ps.Approvals(req, ents)
			if !slices.Equal(ruleIDs(got), tc.want) {
				t.Fatalf("Approvals = %q, want %q", ruleIDs(got), tc.want)
			}
		})
	}
}

// TestApprovalRuleFields: each rule carries its annotations, parsed.
func TestApprovalRuleFields(t *testing.T) {
	ps := mustCompile(t, approvalDocs, "")
	req := Request{Principal: mustUID(t, `Root::"root"`), Action: ActionUID(ActionSysRotate), Resource: mustUID(t, `System::"warden"`)}
	got := ps.Approvals(req, Entities{})
	want := []ApprovalRule{
		{Policy: "rotate", Approvals: 2, Approvers: mustUID(t, `Group::"security"`)},
		{Policy: "zz-multi#1", Approvals: 1, Approvers: mustUID(t, `Group::"auditors"`)},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Approvals = %+v\nwant        %+v", got, want)
	}
	req = Request{Principal: mustUID(t, `Root::"root"`), Action: ActionUID(ActionTransitKeyExport), Resource: mustUID(t, `Key::"k"`)}
	got = ps.Approvals(req, Entities{})
	want = []ApprovalRule{{Policy: "export", Approvals: 16, Approvers: mustUID(t, `Group::"key custodians"`)}}
	if !slices.Equal(got, want) {
		t.Errorf("Approvals = %+v, want %+v", got, want)
	}
}

// TestApprovalRulesStillPermit: to Authorize an approval rule is a permit
// like any other, with its own principal scope, and forbids still win.
func TestApprovalRulesStillPermit(t *testing.T) {
	ps := mustCompile(t, approvalDocs, "")
	ents := mustEntities(t, approvalEntities)
	tests := []struct {
		principal, action, resource string
		allow                       bool
		reasons                     []string
	}{
		{`User::"alice"`, `Action::"sys.rotate"`, `System::"warden"`, true, []string{"admins", "rotate", "zz-multi#1"}},
		{`User::"alice"`, `Action::"raft.remove"`, `System::"warden"`, true, []string{"admins", "restore"}},
		// bob is bound by "restore" (TestApprovals) but not permitted by it.
		{`User::"bob"`, `Action::"raft.remove"`, `System::"warden"`, false, nil},
		{`User::"bob"`, `Action::"kv.write"`, `Secret::"prod/db"`, true, []string{"prod"}},
		{`User::"alice"`, `Action::"kv.delete"`, `Secret::"prod/db"`, false, []string{"no-kv-delete"}},
	}
	for _, tc := range tests {
		req := Request{Principal: mustUID(t, tc.principal), Action: mustUID(t, tc.action), Resource: mustUID(t, tc.resource)}
		d := ps.Authorize(req, ents)
		if d.Allow != tc.allow || !slices.Equal(d.Reasons, tc.reasons) {
			t.Errorf("%s %s %s: %+v, want allow %v reasons %q", tc.principal, tc.action, tc.resource, d, tc.allow, tc.reasons)
		}
	}
}

func TestApprovalsNilAndEmpty(t *testing.T) {
	req := Request{Principal: mustUID(t, `Root::"root"`), Action: ActionUID(ActionSysRotate), Resource: mustUID(t, `System::"warden"`)}
	var nilSet *PolicySet
	if got := nilSet.Approvals(req, Entities{}); got != nil {
		t.Errorf("nil set: %v", got)
	}
	plain := mustCompile(t, map[string]string{"p": `@id("x") @advice("y") permit (principal, action, resource);`}, "")
	if got := plain.Approvals(req, Entities{}); got != nil {
		t.Errorf("no rules: %v", got)
	}
	// Without rules, or with none in scope, asking costs no allocation
	// (but for the ancestors of request entities that have parents, which
	// some rules' scopes need).
	if n := testing.AllocsPerRun(100, func() { plain.Approvals(req, Entities{}) }); n != 0 {
		t.Errorf("no rules: %v allocations", n)
	}
	ps := mustCompile(t, approvalDocs, "")
	ents := mustEntities(t, approvalEntities)
	read := Request{Principal: mustUID(t, `User::"alice"`), Action: ActionUID(ActionKVRead), Resource: mustUID(t, `Secret::"prod/new"`)}
	if got := ps.Approvals(read, ents); got != nil {
		t.Fatalf("read: %v", got)
	}
	if n := testing.AllocsPerRun(100, func() { ps.Approvals(read, ents) }); n != 0 {
		t.Errorf("no rule in scope: %v allocations", n)
	}
}

func TestApprovalAnnotationErrors(t *testing.T) {
	const ok = `permit (principal, action, resource);`
	tests := []struct {
		name      string
		doc       string
		line, col int
		msg       string
	}{
		{"on a forbid", `@approvals("2") @approvers("Group::\"s\"") forbid (principal, action, resource);`, 1, 1,
			"policy p.cedar: @approvals applies only to permit policies"},
		{"approvers on a forbid", "@id(\"f\")\n  @approvers(\"Group::\\\"s\\\"\") forbid (principal, action, resource);", 2, 3,
			"policy p.cedar: @approvers applies only to permit policies"},
		{"approvals alone", `@id("x") @approvals("2") ` + ok, 1, 10, "@approvals needs @approvers"},
		{"approvers alone", `@approvers("Group::\"s\"") ` + ok, 1, 1, "@approvers needs @approvals"},
		{"zero", `@approvals("0") @approvers("Group::\"s\"") ` + ok, 1, 1, `@approvals("0"): want a whole number from 1 to 16`},
		{"too many", `@approvals("17") @approvers("Group::\"s\"") ` + ok, 1, 1, `@approvals("17")`},
		{"leading zero", `@approvals("02") @approvers("Group::\"s\"") ` + ok, 1, 1, `@approvals("02")`},
		{"space", `@approvals(" 2") @approvers("Group::\"s\"") ` + ok, 1, 1, `@approvals(" 2")`},
		{"sign", `@approvals("+2") @approvers("Group::\"s\"") ` + ok, 1, 1, `@approvals("+2")`},
		{"negative", `@approvals("-1") @approvers("Group::\"s\"") ` + ok, 1, 1, `@approvals("-1")`},
		{"word", `@approvals("two") @approvers("Group::\"s\"") ` + ok, 1, 1, `@approvals("two")`},
		{"empty", `@approvals("") @approvers("Group::\"s\"") ` + ok, 1, 1, `@approvals("")`},
		{"no value", `@approvals @approvers("Group::\"s\"") ` + ok, 1, 1, `@approvals("")`},
		{"huge", `@approvals("99999999999999999999") @approvers("Group::\"s\"") ` + ok, 1, 1, `want a whole number`},
		{"user", `@approvals("2") @approvers("User::\"s\"") ` + ok, 1, 17, `@approvers("User::\"s\""): want one group, Group::"name"`},
		{"bare name", `@approvals("2") @approvers("security") ` + ok, 1, 17, `want one group`},
		{"two groups", `@approvals("2") @approvers("Group::\"a\", Group::\"b\"") ` + ok, 1, 17, `want one group`},
		{"a set", `@approvals("2") @approvers("[Group::\"a\"]") ` + ok, 1, 17, `want one group`},
		{"spaces", `@approvals("2") @approvers("Group :: \"a\"") ` + ok, 1, 17, `want one group`},
		{"namespaced", `@approvals("2") @approvers("Ns::Group::\"a\"") ` + ok, 1, 17, `want one group`},
		{"empty group", `@approvals("2") @approvers("Group::\"\"") ` + ok, 1, 17, `the group name is empty`},
		{"second statement", ok + "\n\n@approvals(\"2\")\n@approvers(\"Group::\\\"s\\\"\")\nforbid (principal, action, resource);", 3, 1,
			"policy p.cedar#1: @approvals applies only to permit policies"},
		{"keyword in a string", "@approvals(\"permit\")\n@approvers(\"Group::\\\"s\\\"\") " + ok, 1, 1, `@approvals("permit")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check := func(what string, err error) {
				t.Helper()
				var pe *PolicyError
				if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("%s: err = %v, want a *PolicyError", what, err)
				}
				if pe.Name != "p.cedar" || pe.Line != tc.line || pe.Column != tc.col || !strings.Contains(pe.Message, tc.msg) {
					t.Errorf("%s: err = %v\nwant p.cedar:%d:%d and a message containing %s", what, err, tc.line, tc.col, tc.msg)
				}
			}
			check("ValidatePolicy", ValidatePolicy("p.cedar", tc.doc))
			ps, err := Compile(map[string]string{"p.cedar": tc.doc, "other": ok}, "")
			if ps != nil {
				t.Errorf("Compile built a set")
			}
			check("Compile", err)
		})
	}
}

func TestApprovalAnnotationsAccepted(t *testing.T) {
	for _, doc := range []string{
		`@approvals("1") @approvers("Group::\"s\"") permit (principal, action, resource);`,
		`@approvers("Group::\"s\"") @approvals("16") permit (principal, action, resource);`,
		`@approvals("10") @approvers("Group::\"sec ops \u{e9}\"") permit (principal, action, resource);`,
		// Other annotations, and values that look like ours on other keys.
		`@id("approvals") @approval("x") @Approvals("zero") permit (principal, action, resource);`,
		`@approval("x") forbid (principal, action, resource);`,
	} {
		if err := ValidatePolicy("p", doc); err != nil {
			t.Errorf("%s: %v", doc, err)
		}
		if _, err := Compile(map[string]string{"p": doc}, WardenSchema); err != nil {
			t.Errorf("%s: with the schema: %v", doc, err)
		}
	}
}

// approvalsReference answers what Approvals answers without the scope
// pre-check: each rule's widened policy evaluated alone.
func approvalsReference(ps *PolicySet, req Request, es Entities) []ApprovalRule {
	var out []ApprovalRule
	for i := range ps.approvals.rules {
		r := &ps.approvals.rules[i]
		one := cedar.NewPolicySet()
		one.Add(cedar.PolicyID(r.rule.Policy), r.policy)
		if d, diag := cedar.Authorize(one, es, cedar.Request{
			Principal: req.Principal, Action: req.Action, Resource: req.Resource, Context: req.Context,
		}); d == cedar.Allow || len(diag.Errors) > 0 {
			out = append(out, r.rule)
		}
	}
	return out
}

// TestApprovalsDifferential checks Approvals against a reference built
// independently of how Compile widens a rule: the same stores written
// with the rules' principal scopes replaced by "principal" in the text,
// forbids and unannotated permits made inert, decided by evaluating every
// policy. A rule applies in the reference if its permit is satisfied or
// fails to evaluate.
func TestApprovalsDifferential(t *testing.T) {
	const (
		sets        = 120
		requestsPer = 50
	)
	w := &randomWorld{r: rand.New(rand.NewPCG(3, 4))}
	var asked, applied, total int
	for set := range sets {
		ents := mustEntities(t, w.entities(t))
		docs, wide := map[string]string{}, map[string]string{}
		for i := range 1 + w.r.IntN(30) {
			var stmts, wideStmts []string
			for len(stmts) == 0 || w.r.IntN(4) == 0 {
				effect, principal, action, resource, cond := w.policyParts()
				if effect == "permit" && w.r.IntN(2) == 0 {
					ann := fmt.Sprintf(`@approvals("%d") @approvers("Group::\"g%d\"") `, 1+w.r.IntN(MaxApprovals), w.r.IntN(3))
					stmts = append(stmts, fmt.Sprintf("%spermit(%s, %s, %s) %s;", ann, principal, action, resource, cond))
					wideStmts = append(wideStmts, fmt.Sprintf("%spermit(principal, %s, %s) %s;", ann, action, resource, cond))
					continue
				}
				stmts = append(stmts, fmt.Sprintf("%s(%s, %s, %s) %s;", effect, principal, action, resource, cond))
				wideStmts = append(wideStmts, `forbid(principal, action, resource) when { false };`)
			}
			name := fmt.Sprintf("p%03d", i)
			docs[name], wide[name] = strings.Join(stmts, "\n"), strings.Join(wideStmts, "\n")
		}
		ps := mustCompile(t, docs, "")
		ref := mustCompile(t, wide, "")
		refSet := cedar.NewPolicySet()
		for _, c := range ref.policies {
			refSet.Add(cedar.PolicyID(c.id), c.policy)
		}
		for range requestsPer {
			req := w.request(t)
			if w.r.IntN(5) == 0 {
				req.Principal = mustUID(t, `Root::"root"`)
			}
			got := ps.Approvals(req, ents)
			// cedar-go's own diagnostic: a Decision drops the satisfied
			// permits when another policy errors.
			_, diag := cedar.Authorize(cedar.PolicyIterator(refSet), ents, cedar.Request{
				Principal: req.Principal, Action: req.Action, Resource: req.Resource, Context: req.Context,
			})
			var want []string
			for _, id := range ref.IDs() {
				if slices.ContainsFunc(diag.Reasons, func(r cedar.DiagnosticReason) bool { return string(r.PolicyID) == id }) ||
					slices.ContainsFunc(diag.Errors, func(e cedar.DiagnosticError) bool { return string(e.PolicyID) == id }) {
					want = append(want, id)
				}
			}
			if !slices.Equal(ruleIDs(got), want) {
				t.Fatalf("set %d: request %v %v %v %v:\nApprovals %q\nreference %q", set, req.Principal, req.Action, req.Resource, req.Context, ruleIDs(got), want)
			}
			if ref := approvalsReference(ps, req, ents); !slices.Equal(got, ref) {
				t.Fatalf("set %d: Approvals %+v, rules evaluated alone %+v", set, got, ref)
			}
			asked++
			if len(got) > 0 {
				applied++
			}
			total += len(ps.approvals.rules)
		}
	}
	if applied < asked/10 || applied > asked*9/10 {
		t.Errorf("poor coverage: %d requests, %d with rules", asked, applied)
	}
	t.Logf("%d requests, %d bound by a rule; %d rules in all", asked, applied, total)
}
