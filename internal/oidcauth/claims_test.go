package oidcauth

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/errs"
)

// claimsOf decodes JSON claims as go-oidc's IDToken.Claims does.
func claimsOf(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMapClaims(t *testing.T) {
	base := Config{Issuer: "https://idp.example", ClientID: "warden"}
	withGroups := base
	withGroups.GroupsClaim = "groups"
	withUser := base
	withUser.UserClaim = "preferred_username"
	withDomains := base
	withDomains.AllowedDomains = []string{"Example.COM", "corp.example"}
	withACR := base
	withACR.MFAAcrValues = []string{"urn:example:mfa", "phr"}

	for _, tc := range []struct {
		name   string
		cfg    Config
		claims string
		want   Identity
		err    string // substring of the refusal; "" for success
	}{
		{name: "email lowercased", cfg: base, claims: `{"email_verified":true,"email":"Alice@Example.COM"}`,
			want: Identity{User: "alice@example.com"}},
		// The user claim is the email address: the provider must have
		// verified it (anyone may be able to set an unverified one).
		{name: "email not verified", cfg: base, claims: `{"email":"alice@example.com"}`, err: "email_verified"},
		{name: "email verified false", cfg: base, claims: `{"email":"alice@example.com","email_verified":false}`, err: "email_verified"},
		{name: "email verified junk", cfg: base, claims: `{"email":"alice@example.com","email_verified":1}`, err: "email_verified"},
		{name: "email verified as string", cfg: base, claims: `{"email":"alice@example.com","email_verified":"true"}`,
			want: Identity{User: "alice@example.com"}},
		{name: "other user claim, email unverified", cfg: withUser, claims: `{"email":"x@y","email_verified":false,"preferred_username":"bob"}`,
			want: Identity{User: "bob"}},
		{name: "user claim", cfg: withUser, claims: `{"email":"x@y","preferred_username":"Bob.Smith"}`,
			want: Identity{User: "bob.smith"}},
		{name: "user claim missing", cfg: withUser, claims: `{"email":"x@y"}`, err: `claim "preferred_username": missing`},
		{name: "user claim not a string", cfg: base, claims: `{"email_verified":true,"email":42}`, err: `claim "email": missing or not a string`},
		{name: "user claim empty", cfg: base, claims: `{"email_verified":true,"email":""}`, err: `claim "email": missing`},
		{name: "user bad char", cfg: base, claims: `{"email_verified":true,"email":"a b@example.com"}`, err: `claim "email": not a valid user name`},
		{name: "user too long", cfg: base, claims: `{"email_verified":true,"email":"` + strings.Repeat("a", 129) + `"}`, err: `not a valid user name`},
		{name: "user 128", cfg: base, claims: `{"email_verified":true,"email":"` + strings.Repeat("A", 128) + `"}`,
			want: Identity{User: strings.Repeat("a", 128)}},
		{name: "user unicode not folded", cfg: base, claims: `{"email_verified":true,"email":"\u212aevin@example.com"}`, err: `not a valid user name`},

		{name: "groups array", cfg: withGroups, claims: `{"email_verified":true,"email":"a@b","groups":["Ops","dev","ops"]}`,
			want: Identity{User: "a@b", Groups: []string{"ops", "dev"}}},
		{name: "groups string", cfg: withGroups, claims: `{"email_verified":true,"email":"a@b","groups":"Admins"}`,
			want: Identity{User: "a@b", Groups: []string{"admins"}}},
		{name: "groups absent", cfg: withGroups, claims: `{"email_verified":true,"email":"a@b"}`, want: Identity{User: "a@b"}},
		{name: "groups empty string", cfg: withGroups, claims: `{"email_verified":true,"email":"a@b","groups":""}`, want: Identity{User: "a@b"}},
		{name: "groups not configured", cfg: base, claims: `{"email_verified":true,"email":"a@b","groups":["ops"]}`, want: Identity{User: "a@b"}},
		{name: "groups number", cfg: withGroups, claims: `{"email_verified":true,"email":"a@b","groups":7}`, err: `claim "groups": must be a string or an array`},
		{name: "groups mixed", cfg: withGroups, claims: `{"email_verified":true,"email":"a@b","groups":["ops",7]}`, err: `claim "groups": must be a string or an array`},
		{name: "groups bad name", cfg: withGroups, claims: `{"email_verified":true,"email":"a@b","groups":["Domain Admins"]}`, err: `claim "groups": a group is not a valid name`},
		{name: "groups too many", cfg: withGroups, claims: `{"email_verified":true,"email":"a@b","groups":[` + manyGroups(65) + `]}`, err: `more than 64 groups`},
		{name: "groups 64", cfg: withGroups, claims: `{"email_verified":true,"email":"a@b","groups":[` + manyGroups(64) + `]}`,
			want: Identity{User: "a@b", Groups: groupNames(64)}},

		{name: "domain allowed", cfg: withDomains, claims: `{"email":"a@EXAMPLE.com","email_verified":true}`,
			want: Identity{User: "a@example.com"}},
		{name: "domain allowed, verified as string", cfg: withDomains, claims: `{"email":"a@corp.example","email_verified":"true"}`,
			want: Identity{User: "a@corp.example"}},
		{name: "domain not verified", cfg: withDomains, claims: `{"email":"a@example.com","email_verified":false}`, err: "not verified"},
		{name: "domain verified missing", cfg: withDomains, claims: `{"email":"a@example.com"}`, err: "not verified"},
		{name: "domain other", cfg: withDomains, claims: `{"email":"a@example.org","email_verified":true}`, err: "not in an allowed domain"},
		{name: "domain subdomain", cfg: withDomains, claims: `{"email":"a@sub.example.com","email_verified":true}`, err: "not in an allowed domain"},
		{name: "domain suffix trick", cfg: withDomains, claims: `{"email":"a@evilexample.com","email_verified":true}`, err: "not in an allowed domain"},
		{name: "domain with user claim elsewhere", cfg: Config{UserClaim: "sub", AllowedDomains: []string{"example.com"}},
			claims: `{"sub":"u1","email":"a@example.org","email_verified":true}`, err: "not in an allowed domain"},
		{name: "domain no email", cfg: Config{UserClaim: "sub", AllowedDomains: []string{"example.com"}},
			claims: `{"sub":"u1"}`, err: `claim "email": missing`},

		{name: "amr mfa", cfg: base, claims: `{"email_verified":true,"email":"a@b","amr":["mfa"]}`, want: Identity{User: "a@b", MFA: true}},
		{name: "amr pwd otp", cfg: base, claims: `{"email_verified":true,"email":"a@b","amr":["pwd","otp"]}`,
			want: Identity{User: "a@b", MFA: true, MFAMethod: "totp"}},
		{name: "amr pwd hwk", cfg: base, claims: `{"email_verified":true,"email":"a@b","amr":["pwd","hwk"]}`,
			want: Identity{User: "a@b", MFA: true, MFAMethod: "webauthn"}},
		{name: "amr pin fpt", cfg: base, claims: `{"email_verified":true,"email":"a@b","amr":["pin","fpt"]}`,
			want: Identity{User: "a@b", MFA: true, MFAMethod: "webauthn"}},
		{name: "amr pwd face otp", cfg: base, claims: `{"email_verified":true,"email":"a@b","amr":["face","otp","pwd"]}`,
			want: Identity{User: "a@b", MFA: true, MFAMethod: "webauthn"}},
		{name: "amr pwd sms", cfg: base, claims: `{"email_verified":true,"email":"a@b","amr":["pwd","sms"]}`,
			want: Identity{User: "a@b", MFA: true}},
		{name: "amr mfa otp", cfg: base, claims: `{"email_verified":true,"email":"a@b","amr":["mfa","otp"]}`,
			want: Identity{User: "a@b", MFA: true, MFAMethod: "totp"}},
		{name: "amr pwd only", cfg: base, claims: `{"email_verified":true,"email":"a@b","amr":["pwd"]}`, want: Identity{User: "a@b"}},
		{name: "amr otp only", cfg: base, claims: `{"email_verified":true,"email":"a@b","amr":["otp"]}`, want: Identity{User: "a@b"}},
		{name: "amr hwk swk", cfg: base, claims: `{"email_verified":true,"email":"a@b","amr":["hwk","swk"]}`, want: Identity{User: "a@b"}},
		{name: "amr string", cfg: base, claims: `{"email_verified":true,"email":"a@b","amr":"mfa"}`, want: Identity{User: "a@b", MFA: true}},
		{name: "amr junk", cfg: base, claims: `{"email_verified":true,"email":"a@b","amr":[1,{"x":"mfa"}]}`, want: Identity{User: "a@b"}},
		{name: "acr listed", cfg: withACR, claims: `{"email_verified":true,"email":"a@b","acr":"phr"}`, want: Identity{User: "a@b", MFA: true}},
		{name: "acr listed with otp", cfg: withACR, claims: `{"email_verified":true,"email":"a@b","acr":"urn:example:mfa","amr":["otp"]}`,
			want: Identity{User: "a@b", MFA: true, MFAMethod: "totp"}},
		{name: "acr not listed", cfg: withACR, claims: `{"email_verified":true,"email":"a@b","acr":"urn:example:pwd"}`, want: Identity{User: "a@b"}},
		{name: "acr without config", cfg: base, claims: `{"email_verified":true,"email":"a@b","acr":"phr"}`, want: Identity{User: "a@b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.cfg.normalized()
			got, err := mapClaims(&n, claimsOf(t, tc.claims))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %+v, %v; want error containing %q", got, err, tc.err)
				}
				if !errs.Is(err, errs.Unauthenticated) {
					t.Fatalf("code %s, want unauthenticated", errs.CodeOf(err))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.User != tc.want.User || !slices.Equal(got.Groups, tc.want.Groups) || got.MFA != tc.want.MFA || got.MFAMethod != tc.want.MFAMethod {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func groupNames(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("g%d", i))
	}
	return out
}

func manyGroups(n int) string {
	var q []string
	for _, g := range groupNames(n) {
		q = append(q, `"`+g+`"`)
	}
	return strings.Join(q, ",")
}

// TestMapClaimsNeverEchoesValue: a refused claim's value stays out of the
// message (it could be anything the provider lets a user set).
func TestMapClaimsNeverEchoesValue(t *testing.T) {
	n := (&Config{GroupsClaim: "groups", AllowedDomains: []string{"example.com"}}).normalized()
	for _, c := range []string{
		`{"email":"Secret Value@example.com"}`,
		`{"email":"a@example.com","email_verified":true,"groups":["Secret Value"]}`,
		`{"email":"a@secret-value.example","email_verified":true}`,
	} {
		_, err := mapClaims(&n, claimsOf(t, c))
		if err == nil || strings.Contains(strings.ToLower(err.Error()), "secret") {
			t.Errorf("%s: %v", c, err)
		}
	}
}
