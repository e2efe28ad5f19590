package approval

import (
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/errs"
)

const (
	security = `Group::"security"`
	dba      = `Group::"dba"`
)

func vote(p string, groups ...string) Vote { return Vote{Principal: p, Groups: groups} }

// TestSatisfied: each rule needs its own number of distinct approvers of
// its group; one approval counts for every rule whose group the approver
// was in.
func TestSatisfied(t *testing.T) {
	two := Rule{Policy: "dual-control", Approvals: 2, Approvers: security}
	one := Rule{Policy: "db", Approvals: 1, Approvers: dba}
	cases := []struct {
		name  string
		rules []Rule
		votes []Vote
		want  bool
	}{
		{"none", []Rule{two}, nil, false},
		{"one of two", []Rule{two}, []Vote{vote("a", security)}, false},
		{"two", []Rule{two}, []Vote{vote("a", security), vote("b", security)}, true},
		{"two, one outside the group", []Rule{two}, []Vote{vote("a", security), vote("b", dba)}, false},
		{"two rules, one approver in both", []Rule{two, one}, []Vote{vote("a", security, dba), vote("b", security)}, true},
		{"two rules, the second unmet", []Rule{two, one}, []Vote{vote("a", security), vote("b", security)}, false},
		{"no rules", nil, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Satisfied(c.rules, c.votes); got != c.want {
				t.Fatalf("Satisfied = %v, want %v (unmet: %q)", got, c.want, unmet(c.rules, c.votes))
			}
		})
	}
	if r := required([]Rule{two, one, {Policy: "x", Approvals: 3, Approvers: security}}); r != 4 {
		t.Fatalf("required = %d, want 3 (security) + 1 (dba)", r)
	}
}

// TestVoterAndRun: the refusals of docs/governance.md, each with its code
// and the words the API answers with.
func TestVoterAndRun(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	base := func() *Request {
		return &Request{ID: "req-00000000000000000001", Status: StatusPending, Requester: `Root::"root"`,
			Action: "sys.rotate", Resource: `System::"warden"`, Method: "POST", Path: "/v1/sys/rotate",
			Rules: []Rule{{Policy: "dual-control", Approvals: 2, Approvers: security}}, Required: 2,
			ExpiresAt: formatTime(now.Add(time.Hour))}
	}
	alice := Voter{Principal: `User::"alice"`, Groups: []string{security}}
	t.Run("requester", func(t *testing.T) {
		_, err := base().checkVoter(Voter{Principal: `Root::"root"`}, "approve")
		wantErr(t, err, errs.Denied, "the requester cannot approve its own request")
	})
	t.Run("outside the groups", func(t *testing.T) {
		_, err := base().checkVoter(Voter{Principal: `User::"olivia"`, Groups: []string{dba}}, "approve")
		wantErr(t, err, errs.Denied, `User::"olivia" is not in an approver group`)
	})
	t.Run("twice", func(t *testing.T) {
		r := base()
		r.Approvals = []Vote{vote(alice.Principal, security)}
		_, err := r.checkVoter(alice, "approve")
		wantErr(t, err, errs.Conflict, `already approved by User::"alice"`)
	})
	t.Run("counts for its groups", func(t *testing.T) {
		gs, err := base().checkVoter(Voter{Principal: `User::"b"`, Groups: []string{dba, security}}, "approve")
		if err != nil || len(gs) != 1 || gs[0] != security {
			t.Fatalf("groups %v, %v", gs, err)
		}
	})
	claim := Claim{Principal: `Root::"root"`, Action: "sys.rotate", Resource: `System::"warden"`, Method: "POST", Path: "/v1/sys/rotate",
		Rules: base().Rules}
	approved := func() *Request {
		r := base()
		r.Status, r.Approvals = StatusApproved, []Vote{vote("a", security), vote("b", security)}
		return r
	}
	runs := []struct {
		name string
		r    *Request
		c    func(Claim) Claim
		at   time.Time
		code errs.Code
		msg  string
	}{
		{"approved", approved(), nil, now, "", ""},
		{"not the requester", approved(), func(c Claim) Claim { c.Principal = `User::"a"`; return c }, now, errs.Denied, "only the requester"},
		{"another path", approved(), func(c Claim) Claim { c.Path = "/v1/sys/seal"; return c }, now, errs.Conflict, "was approved for POST /v1/sys/rotate"},
		{"another query", approved(), func(c Claim) Claim { c.Query = "x=1"; return c }, now, errs.Conflict, "was approved for"},
		{"pending", base(), nil, now, errs.Conflict, "not approved yet: 0 of 2 approvals"},
		{"expired", approved(), nil, now.Add(time.Hour), errs.Conflict, "expired at"},
		{"run", func() *Request { r := approved(); r.Status = StatusRun; return r }(), nil, now, errs.Conflict, "already run"},
		{"rules changed", approved(), func(c Claim) Claim {
			c.Rules = append(c.Rules, Rule{Policy: "db", Approvals: 1, Approvers: dba})
			return c
		}, now, errs.Conflict, "the approval rules changed"},
	}
	for _, tc := range runs {
		t.Run("run/"+tc.name, func(t *testing.T) {
			c := claim
			if tc.c != nil {
				c = tc.c(c)
			}
			err := tc.r.check(c, tc.at)
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, tc.code, tc.msg)
		})
	}
	if v := approved().View(now.Add(time.Hour)); v.Status != StatusExpired {
		t.Fatalf("an approved request past its expiry reads %q", v.Status)
	}
}

func wantErr(t *testing.T, err error, code errs.Code, msg string) {
	t.Helper()
	if !errs.Is(err, code) || !strings.Contains(err.Error(), msg) {
		t.Fatalf("error %v, want %s saying %q", err, code, msg)
	}
}

// TestCheckID: request ids are exactly what NewID makes.
func TestCheckID(t *testing.T) {
	if err := CheckID(NewID()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "req-", "req-0000000000000000000", "req-0000000000000000000g", "REQ-00000000000000000000",
		"req-00000000000000000000/..", strings.Repeat("a", 100)} {
		if err := CheckID(id); !errs.Is(err, errs.Invalid) {
			t.Errorf("CheckID(%q) = %v, want invalid", id, err)
		}
	}
}

// FuzzCheckID: an accepted id is safe in a storage key and an audit
// resource (hex only), and a refusal's message stays short valid UTF-8.
func FuzzCheckID(f *testing.F) {
	f.Add("req-0123456789abcdef0123")
	f.Add("req-\xff")
	f.Fuzz(func(t *testing.T, id string) {
		err := CheckID(id)
		if err == nil {
			if len(id) != 24 || strings.Trim(id[4:], "0123456789abcdef") != "" {
				t.Fatalf("accepted %q", id)
			}
			return
		}
		if len(err.Error()) > 512 || !strings.Contains(err.Error(), "request id") {
			t.Fatalf("message %q", err.Error())
		}
	})
}
