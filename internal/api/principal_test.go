package api

import (
	"strconv"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/identity"
)

// TestPrincipalCache checks that cached principals are each token's own:
// names that would run together if simply joined stay apart, and laying a
// resource over a cached collection leaves it as it was.
func TestPrincipalCache(t *testing.T) {
	var c principalCache
	tokens := []*identity.Token{
		{User: "a\x00b"},
		{User: "a", Groups: []string{"b"}},
		{User: "a", Groups: []string{"b", "c"}},
		{User: "a", Groups: []string{"b\x00c"}},
		{User: "a"},
		{User: "a", Auth: &identity.AuthInfo{Method: "password", MFA: true, MFAMethod: "totp"}},
	}
	for round := range 2 { // the second round is served from the cache
		for i, tok := range tokens {
			uid, es, auth, err := c.get(tok)
			if err != nil {
				t.Fatal(err)
			}
			if mfa, _ := auth.Get("mfa"); mfa != types.Boolean(tok.AuthOf().MFA) {
				t.Errorf("round %d, token %d: context.auth.mfa %v (the cache mixed up two logins)", round, i, mfa)
			}
			if uid != types.NewEntityUID(authz.TypeUser, types.String(tok.User)) {
				t.Errorf("round %d, token %d: principal %v", round, i, uid)
			}
			user, ok := es.Get(uid)
			if !ok || user.Parents.Len() != len(tok.Groups) || es.Len() != 1+len(tok.Groups) {
				t.Errorf("round %d, token %d: entities %+v", round, i, es)
			}
			for _, g := range tok.Groups {
				if !user.Parents.Contains(types.NewEntityUID(authz.TypeGroup, types.String(g))) {
					t.Errorf("round %d, token %d: not in group %q", round, i, g)
				}
			}
			res, _ := authz.NewEntities(types.Entity{UID: types.NewEntityUID("Secret", "x")})
			if merged := es.With(res); merged.Len() != es.Len()+1 {
				t.Errorf("merged %d, want %d", merged.Len(), es.Len()+1)
			}
		}
	}
	// The last two tokens are one principal, in two logins.
	if len(c.m) != len(tokens)-1 {
		t.Errorf("%d cached principals, want %d", len(c.m), len(tokens)-1)
	}
	if _, _, _, err := c.get(&identity.Token{User: "d", Groups: []string{"g", "g"}}); err == nil {
		t.Errorf("a token naming a group twice built a collection")
	}
}

// TestPrincipalCacheSessions: the sessions of one user share one cached
// principal, however many there are, and each request still sees its own
// session's context.auth; a login in use stays cached while many others
// come and go.
func TestPrincipalCacheSessions(t *testing.T) {
	var c principalCache
	const n = 3*maxCachedAuth + 7
	hot := &identity.Token{User: "alice", Groups: []string{"ops"},
		Auth: &identity.AuthInfo{Method: "oidc", MFA: true, MFAMethod: "webauthn", Time: time.Unix(1_600_000_000, 0)}}
	for i := range n {
		tok := &identity.Token{User: "alice", Groups: []string{"ops"},
			Auth: &identity.AuthInfo{Method: "password", MFA: i%2 == 0, Time: time.Unix(1_700_000_000+int64(i), 0)}}
		for _, tk := range []*identity.Token{tok, hot} {
			_, _, auth, err := c.get(tk)
			if err != nil {
				t.Fatal(err)
			}
			if !auth.Equal(authRecord(tk.AuthOf())) {
				t.Fatalf("session %d: context.auth %v, want %v", i, auth, authRecord(tk.AuthOf()))
			}
		}
	}
	if len(c.m) != 1 {
		t.Errorf("%d cached principals for one user's sessions, want 1", len(c.m))
	}
	hk := authKey{method: "oidc", mfaMethod: "webauthn", mfa: true, time: 1_600_000_000}
	if _, ok := c.auth.cur[hk]; !ok {
		if _, ok := c.auth.prev[hk]; !ok {
			t.Error("the login in use was dropped from the auth cache")
		}
	}
	if l := len(c.auth.cur) + len(c.auth.prev); l > 2*maxCachedAuth {
		t.Errorf("%d cached auth records, more than %d", l, 2*maxCachedAuth)
	}
}

// BenchmarkTokenCaller is the caller of a token request: its principal's
// entities (cached) and context.auth.
func BenchmarkTokenCaller(b *testing.B) {
	s := New(Config{})
	defer s.Close()
	now := time.Unix(1_700_000_000, 0)
	tok := &identity.Token{User: "alice", Groups: []string{"admins", "ops"}, Accessor: "a1",
		Auth: &identity.AuthInfo{Method: "password", MFA: true, MFAMethod: "totp", Time: now}}
	b.ReportAllocs()
	for b.Loop() {
		c := s.tokenCaller(tok)
		if c.esErr != nil {
			b.Fatal(c.esErr)
		}
	}
}

// BenchmarkTokenCallerSessions is BenchmarkTokenCaller for requests of
// 6,000 sessions of one user in turn: more sessions than the principal
// cache's bound.
func BenchmarkTokenCallerSessions(b *testing.B) {
	s := New(Config{})
	defer s.Close()
	toks := make([]*identity.Token, 6000)
	for i := range toks {
		toks[i] = &identity.Token{User: "alice", Groups: []string{"admins", "ops"}, Accessor: "a" + strconv.Itoa(i),
			Auth: &identity.AuthInfo{Method: "password", MFA: true, MFAMethod: "totp", Time: time.Unix(1_700_000_000+int64(i), 0)}}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c := s.tokenCaller(toks[i%len(toks)])
		if c.esErr != nil {
			b.Fatal(c.esErr)
		}
		i++
	}
}
