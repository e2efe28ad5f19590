package authz

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
)

// randomWorld generates entities and policies over a small universe, so
// that random policies and requests often meet. Fixed seeds make every run
// the same.
type randomWorld struct {
	r *rand.Rand
}

func (w *randomWorld) pick(xs ...string) string { return xs[w.r.IntN(len(xs))] }

func (w *randomWorld) user() string   { return fmt.Sprintf(`User::"u%d"`, w.r.IntN(10)) } // u8, u9 have no entity
func (w *randomWorld) group() string  { return fmt.Sprintf(`Group::"g%d"`, w.r.IntN(6)) } // g5 has no entity
func (w *randomWorld) action() string { return fmt.Sprintf(`Action::"a%d"`, w.r.IntN(6)) }
func (w *randomWorld) actionGroup() string {
	return fmt.Sprintf(`Action::"ag%d"`, w.r.IntN(3))
}
func (w *randomWorld) resource() string {
	return fmt.Sprintf(`%s::"r%d"`, w.pick("Secret", "Doc"), w.r.IntN(8))
}
func (w *randomWorld) folder() string { return fmt.Sprintf(`Folder::"f%d"`, w.r.IntN(4)) }

func uidJSONOf(t testing.TB, s string) string {
	uid := mustUID(t, s)
	return fmt.Sprintf(`{"type": %q, "id": %q}`, uid.Type, uid.ID)
}

// entities returns a random entity set: users in groups, groups in groups
// (cycles allowed), actions in action groups, resources in folders, some
// with attributes that conditions read.
func (w *randomWorld) entities(t testing.TB) string {
	var parts []string
	add := func(uid string, attrs string, parents []string) {
		ps := make([]string, len(parents))
		for i, p := range parents {
			ps[i] = uidJSONOf(t, p)
		}
		parts = append(parts, fmt.Sprintf(`{"uid": %s, "attrs": %s, "parents": [%s]}`, uidJSONOf(t, uid), attrs, strings.Join(ps, ", ")))
	}
	some := func(f func() string, max int) []string {
		var out []string
		for range w.r.IntN(max + 1) {
			if v := f(); !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
		return out
	}
	for i := range 8 {
		attrs := "{}"
		if w.r.IntN(2) == 0 {
			attrs = fmt.Sprintf(`{"admin": %v}`, w.r.IntN(2) == 0)
		}
		add(fmt.Sprintf(`User::"u%d"`, i), attrs, some(w.group, 2))
	}
	for i := range 5 {
		add(fmt.Sprintf(`Group::"g%d"`, i), "{}", some(w.group, 2))
	}
	for i := range 6 {
		add(fmt.Sprintf(`Action::"a%d"`, i), "{}", some(w.actionGroup, 2))
	}
	for _, typ := range []string{"Secret", "Doc"} {
		for i := range 8 {
			attrs := "{}"
			if w.r.IntN(4) != 0 {
				attrs = fmt.Sprintf(`{"path": %q}`, w.pick("p1/a", "p1/b/c", "p2/a", "p3"))
			}
			add(fmt.Sprintf(`%s::"r%d"`, typ, i), attrs, some(w.folder, 2))
		}
	}
	for i := range 4 {
		add(fmt.Sprintf(`Folder::"f%d"`, i), "{}", some(w.folder, 1))
	}
	return "[" + strings.Join(parts, ",\n") + "]"
}

func (w *randomWorld) policy() string {
	effect, principal, action, resource, cond := w.policyParts()
	return fmt.Sprintf("%s(%s, %s, %s) %s;", effect, principal, action, resource, cond)
}

// policyParts returns a random policy statement in parts.
func (w *randomWorld) policyParts() (effect, principal, action, resource, cond string) {
	switch w.r.IntN(7) {
	case 0, 1:
		principal = "principal"
	case 2:
		principal = "principal == " + w.user()
	case 3:
		principal = "principal in " + w.pick(w.group(), w.user())
	case 4:
		principal = "principal is " + w.pick("User", "Group")
	case 5:
		principal = "principal is User in " + w.group()
	case 6:
		principal = "principal == " + w.group()
	}
	switch w.r.IntN(6) {
	case 0, 1:
		action = "action"
	case 2:
		action = "action == " + w.action()
	case 3:
		action = "action in " + w.pick(w.actionGroup(), w.action())
	case 4:
		var set []string
		for range w.r.IntN(4) { // may be empty: "in []" never matches
			set = append(set, w.pick(w.action(), w.actionGroup()))
		}
		action = "action in [" + strings.Join(set, ", ") + "]"
	case 5:
		action = "action == " + w.actionGroup()
	}
	switch w.r.IntN(6) {
	case 0, 1:
		resource = "resource"
	case 2:
		resource = "resource == " + w.resource()
	case 3:
		resource = "resource in " + w.pick(w.folder(), w.resource())
	case 4:
		resource = "resource is " + w.pick("Secret", "Doc", "Folder")
	case 5:
		resource = "resource is Secret in " + w.folder()
	}
	cond = w.pick(
		"", "", "",
		`when { context.n > 5 }`,               // errors when context has no n
		`unless { resource.path like "p1/*" }`, // errors when the resource has no path
		`when { resource has path && resource.path like "*/a" }`,
		`when { principal has admin && principal.admin }`,
		`when { context has flag && context.flag }`,
		`when { principal.admin }`, // errors for groups, unknown users, users without admin
	)
	return w.pick("permit", "permit", "forbid"), principal, action, resource, cond
}

func (w *randomWorld) request(t testing.TB) Request {
	ctx := w.pick(`{}`, `{"n": 3}`, `{"n": 9}`, `{"flag": true}`, `{"n": 7, "flag": false}`)
	principal := w.user()
	if w.r.IntN(5) == 0 {
		principal = w.group()
	}
	action := w.action()
	if w.r.IntN(8) == 0 {
		action = w.actionGroup()
	}
	resource := w.resource()
	if w.r.IntN(8) == 0 {
		resource = w.folder()
	}
	return Request{
		Principal: mustUID(t, principal),
		Action:    mustUID(t, action),
		Resource:  mustUID(t, resource),
		Context:   mustContext(t, ctx),
	}
}

// TestIndexDifferential checks that the index never drops a policy that
// could apply: on random policy sets, entity sets and requests, the indexed
// decision equals the decision from evaluating every policy.
func TestIndexDifferential(t *testing.T) {
	const (
		sets        = 150
		requestsPer = 60
	)
	w := &randomWorld{r: rand.New(rand.NewPCG(1, 2))}
	var decisions, allows, withErrors, candidates, total int
	for set := range sets {
		ents := mustEntities(t, w.entities(t))
		docs := map[string]string{}
		for i := range 1 + w.r.IntN(60) {
			// Some documents hold several statements.
			stmts := []string{w.policy()}
			for w.r.IntN(4) == 0 {
				stmts = append(stmts, w.policy())
			}
			docs[fmt.Sprintf("p%03d", i)] = strings.Join(stmts, "\n")
		}
		ps, err := Compile(docs, "")
		if err != nil {
			t.Fatalf("set %d: Compile: %v", set, err)
		}
		for range requestsPer {
			req := w.request(t)
			es := ents
			if w.r.IntN(4) == 0 { // request entities overriding stored ones
				es = ents.With(mustEntities(t, fmt.Sprintf(`[{"uid": %s, "attrs": {"admin": true}, "parents": [%s]}]`,
					uidJSONOf(t, req.Principal.String()), uidJSONOf(t, w.group()))))
			}
			got := ps.Authorize(req, es)
			want := ps.authorizeUnindexed(req, es)
			if got.Allow != want.Allow || !slices.Equal(got.Reasons, want.Reasons) || !slices.Equal(got.Errors, want.Errors) {
				var b strings.Builder
				for _, name := range slices.Sorted(func(yield func(string) bool) {
					for k := range docs {
						if !yield(k) {
							return
						}
					}
				}) {
					fmt.Fprintf(&b, "  %s: %s\n", name, docs[name])
				}
				t.Fatalf("set %d: request %v %v %v %v:\nindexed   %+v\nunindexed %+v\npolicies:\n%s",
					set, req.Principal, req.Action, req.Resource, req.Context, got, want, b.String())
			}
			decisions++
			if got.Allow {
				allows++
			}
			if len(got.Errors) > 0 {
				withErrors++
			}
			s := newScratch(ps)
			s.ents = es
			s.selectCandidates(req)
			candidates += len(s.cands)
			total += ps.Len()
		}
	}
	// The generator must exercise both outcomes and the error rule, or the
	// comparison proves little.
	if allows < decisions/10 || allows > decisions*9/10 || withErrors < decisions/20 {
		t.Errorf("poor coverage: %d decisions, %d allows, %d with errors", decisions, allows, withErrors)
	}
	t.Logf("%d decisions: %d allow, %d with errors; index kept %d of %d policies (%.0f%%)",
		decisions, allows, withErrors, candidates, total, 100*float64(candidates)/float64(total))
}

// TestIndexSelectsFew checks the point of the index: in a store of
// per-user policies, a request meets only the policies whose scope matches
// it (conditions are cedar-go's business).
func TestIndexSelectsFew(t *testing.T) {
	ps := mustCompile(t, benchPolicies(10000), "")
	ents := benchEntities(t, 10000)
	for _, tc := range []struct {
		principal, action string
		want              []string
	}{
		{`User::"u40"`, ActionKVRead, []string{"group-ops", "user-40"}}, // in ops; user-40 reads
		{`User::"u42"`, ActionKVRead, nil},                              // user-42 may only list
		{`User::"u42"`, ActionKVList, []string{"user-42"}},
		{`User::"u45"`, ActionKVWrite, []string{"no-prod-writes"}},
		{`Root::"root"`, ActionSysSeal, []string{"root"}},
	} {
		s := newScratch(ps)
		s.ents = ents
		s.selectCandidates(Request{
			Principal: mustUID(t, tc.principal),
			Action:    ActionUID(tc.action),
			Resource:  mustUID(t, `Secret::"team-42/db"`),
		})
		var got []string
		for _, i := range s.cands {
			got = append(got, ps.policies[i].id)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s %s: candidates %q, want %q", tc.principal, tc.action, got, tc.want)
		}
	}
}

func TestAncestors(t *testing.T) {
	ents := mustEntities(t, `[
		{"uid": {"type": "U", "id": "a"}, "attrs": {}, "parents": [{"type": "G", "id": "1"}, {"type": "G", "id": "2"}]},
		{"uid": {"type": "G", "id": "1"}, "attrs": {}, "parents": [{"type": "G", "id": "3"}]},
		{"uid": {"type": "G", "id": "3"}, "attrs": {}, "parents": [{"type": "G", "id": "1"}, {"type": "U", "id": "a"}, {"type": "G", "id": "4"}]}
	]`)
	var a ancestors
	a.compute(types.NewEntityUID("U", "a"), &ents)
	var got []string
	for _, u := range a.list {
		got = append(got, u.String())
	}
	slices.Sort(got)
	want := []string{`G::"1"`, `G::"2"`, `G::"3"`, `G::"4"`}
	if !slices.Equal(got, want) {
		t.Errorf("ancestors = %q, want %q", got, want)
	}
	// Large sets switch to a map and stay correct.
	var b ancestors
	for i := range 100 {
		b.add(types.NewEntityUID("G", types.String(fmt.Sprint(i))))
		b.add(types.NewEntityUID("G", types.String(fmt.Sprint(i/2))))
	}
	if len(b.list) != 100 || !b.has(types.NewEntityUID("G", "99")) || b.has(types.NewEntityUID("G", "100")) {
		t.Errorf("large set: %d entries", len(b.list))
	}
	b.reset()
	if len(b.list) != 0 || b.has(types.NewEntityUID("G", "1")) {
		t.Errorf("reset set not empty")
	}
}
