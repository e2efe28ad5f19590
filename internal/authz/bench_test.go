package authz

import (
	"fmt"
	"strings"
	"testing"
)

// benchPolicies returns a realistic store of n documents: per-user permits
// on their team's secrets, plus a few shared group, root and forbid rules.
func benchPolicies(n int) map[string]string {
	docs := map[string]string{
		"group-ops":      `permit(principal in Group::"ops", action in [Action::"kv.read", Action::"kv.list", Action::"kv.metadata"], resource is Secret);`,
		"root":           `permit(principal is Root, action, resource);`,
		"no-prod-writes": `forbid(principal, action in [Action::"kv.write", Action::"kv.delete"], resource is Secret) when { resource.path like "*/prod/*" };`,
	}
	actions := []string{ActionKVRead, ActionKVWrite, ActionKVList, ActionTokenCreate, ActionPolicyRead}
	for i := len(docs); i < n; i++ {
		u := i - 3
		switch {
		case u%50 == 49: // some groups of their own
			docs[fmt.Sprintf("team-%d", u)] = fmt.Sprintf(
				`permit(principal in Group::"team-%d", action == Action::%q, resource) when { resource.path like "team-%d/*" };`,
				u, actions[u%len(actions)], u)
		case u%100 == 98: // some per-resource forbids
			docs[fmt.Sprintf("lock-%d", u)] = fmt.Sprintf(
				`forbid(principal, action, resource == Secret::"team-%d/locked");`, u)
		default:
			docs[fmt.Sprintf("user-%d", u)] = fmt.Sprintf(
				`permit(principal == User::"u%d", action == Action::%q, resource) when { resource.path like "team-%d/*" };`,
				u, actions[u%len(actions)], u)
		}
	}
	return docs
}

// benchEntities returns users u0..u(n-1), a few in group ops, and their
// team secrets.
func benchEntities(t testing.TB, n int) Entities {
	var parts []string
	for u := range n {
		parent := ""
		if u%10 == 0 {
			parent = `{"type": "Group", "id": "ops"}`
		}
		parts = append(parts,
			fmt.Sprintf(`{"uid": {"type": "User", "id": "u%d"}, "attrs": {}, "parents": [%s]}`, u, parent),
			fmt.Sprintf(`{"uid": {"type": "Secret", "id": "team-%d/db"}, "attrs": {"path": "team-%d/db"}, "parents": []}`, u, u))
	}
	return mustEntities(t, "["+strings.Join(parts, ",")+"]")
}

// BenchmarkAuthorize measures one decision for a user reading their team's
// secret, in stores of 10, 1,000 and 10,000 policies, with the index and
// without (every policy evaluated, as plain cedar-go does). Run with
//
//	go test -run '^$' -bench Authorize -count 3 ./internal/authz
func BenchmarkAuthorize(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		ps := mustCompile(b, benchPolicies(n), "")
		ents := benchEntities(b, n)
		// u5 has a kv.read permit on team-5/* (u%5 == 0), in every size.
		req := Request{
			Principal: mustUID(b, `User::"u5"`),
			Action:    ActionUID(ActionKVRead),
			Resource:  mustUID(b, `Secret::"team-5/db"`),
		}
		if d := ps.Authorize(req, ents); !d.Allow {
			b.Fatalf("n=%d: decision %+v, want allow", n, d)
		}
		b.Run(fmt.Sprintf("policies=%d/indexed", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ps.Authorize(req, ents)
			}
		})
		b.Run(fmt.Sprintf("policies=%d/unindexed", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ps.authorizeUnindexed(req, ents)
			}
		})
	}
}

// BenchmarkAuthorizeParallel measures the indexed path from many goroutines
// on one shared set.
func BenchmarkAuthorizeParallel(b *testing.B) {
	ps := mustCompile(b, benchPolicies(10000), "")
	ents := benchEntities(b, 10000)
	req := Request{
		Principal: mustUID(b, `User::"u5"`),
		Action:    ActionUID(ActionKVRead),
		Resource:  mustUID(b, `Secret::"team-5/db"`),
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ps.Authorize(req, ents)
		}
	})
}

func BenchmarkCompile(b *testing.B) {
	docs := benchPolicies(1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(docs, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// benchApprovalRules are approval rules like the default ones of dual
// control (internal/policy.DualControlDefaults) plus a few per-resource
// ones, to add to benchPolicies.
func benchApprovalRules() map[string]string {
	docs := map[string]string{
		"dual-control": `@approvals("2") @approvers("Group::\"security\"")
permit (principal in Group::"admins",
        action in [Action::"sys.rotate", Action::"raft.snapshot.restore", Action::"raft.remove", Action::"policy.write"],
        resource)
when { !(action in [Action::"policy.write"]) || (resource has store && resource.store == "warden") };`,
	}
	for i := range 5 {
		docs[fmt.Sprintf("prod-%d", i)] = fmt.Sprintf(`@approvals("1") @approvers("Group::\"sre\"")
permit (principal in Group::"team-%d", action == Action::"kv.write", resource) when { resource.path like "team-%d/prod/*" };`, i, i)
	}
	return docs
}

// BenchmarkApprovals measures PolicySet.Approvals in a store of 1,000
// policies: without approval rules (the answer is nil at once), with rules
// none of which is in scope (a read), and with a rule that applies (root
// rotating the barrier key); and Authorize with and without the rules, to
// show that they do not slow the hot path. Run with
//
//	go test -run '^$' -bench Approvals -count 3 ./internal/authz
func BenchmarkApprovals(b *testing.B) {
	plain := benchPolicies(1000)
	withRules := benchPolicies(1000)
	for name, text := range benchApprovalRules() {
		withRules[name] = text
	}
	sets := []struct {
		name string
		ps   *PolicySet
	}{
		{"rules=0", mustCompile(b, plain, "")},
		{"rules=6", mustCompile(b, withRules, "")},
	}
	ents := benchEntities(b, 1000)
	read := Request{
		Principal: mustUID(b, `User::"u5"`),
		Action:    ActionUID(ActionKVRead),
		Resource:  mustUID(b, `Secret::"team-5/db"`),
	}
	rotate := Request{
		Principal: mustUID(b, `Root::"root"`),
		Action:    ActionUID(ActionSysRotate),
		Resource:  mustUID(b, `System::"warden"`),
	}
	for _, s := range sets {
		if d := s.ps.Authorize(read, ents); !d.Allow {
			b.Fatalf("%s: decision %+v, want allow", s.name, d)
		}
		want := 0
		if s.name != "rules=0" {
			want = 1
		}
		if got := s.ps.Approvals(rotate, ents); len(got) != want {
			b.Fatalf("%s: Approvals(rotate) = %v", s.name, got)
		}
		b.Run(s.name+"/authorize", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.ps.Authorize(read, ents)
			}
		})
		b.Run(s.name+"/approvals-read", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.ps.Approvals(read, ents)
			}
		})
		b.Run(s.name+"/approvals-rotate", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.ps.Approvals(rotate, ents)
			}
		})
	}
}
