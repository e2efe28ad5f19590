package api

import (
	"testing"

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
	if len(c.m) != len(tokens) {
		t.Errorf("%d cached principals, want %d", len(c.m), len(tokens))
	}
	if _, _, _, err := c.get(&identity.Token{User: "d", Groups: []string{"g", "g"}}); err == nil {
		t.Errorf("a token naming a group twice built a collection")
	}
}
