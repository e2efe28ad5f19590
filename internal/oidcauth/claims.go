package oidcauth

import (
	"slices"
	"strings"

	"github.com/warden-sec/warden/internal/errs"
)

// maxGroups bounds the groups one login may carry.
const maxGroups = 64

// Identity is who a verified login is, in Warden's terms.
type Identity struct {
	// User is the UserClaim value, lowercased: 1 to 128 of a-z 0-9 - _ . @.
	User string `json:"user"`
	// Groups are the GroupsClaim values, lowercased, deduplicated, in the
	// provider's order; at most 64. Nil when GroupsClaim is not set or the
	// claim is absent.
	Groups []string `json:"groups"`
	// MFA reports that the provider did multi-factor authentication: "amr"
	// holds "mfa", or a knowledge factor ("pwd", "pin") and a possession or
	// biometric one ("otp", "hwk", "swk", "fpt", "face", "sms"); or "acr" is
	// one of Config.MFAAcrValues.
	MFA bool `json:"mfa"`
	// MFAMethod is, when MFA holds, "webauthn" if "amr" holds "hwk", "swk",
	// "fpt" or "face", else "totp" if it holds "otp", else "".
	MFAMethod string `json:"mfa_method"`
	// Subject is the ID token's "sub": the provider's stable user id.
	Subject string `json:"subject"`
	// Issuer is the ID token's "iss".
	Issuer string `json:"issuer"`
}

// mapClaims turns verified claims into an Identity (without Subject and
// Issuer, which the caller takes from the verified token). c is normalized.
// A user claim "email" needs "email_verified" true, as allowed_domains does.
// Errors are errs.Unauthenticated and name the claim, never its value.
func mapClaims(c *Config, claims map[string]any) (Identity, error) {
	var id Identity
	raw, ok := claims[c.UserClaim].(string)
	if !ok || raw == "" {
		return id, errs.E(errs.Unauthenticated, "oidc: claim %q: missing or not a string", c.UserClaim)
	}
	user := lowerASCII(raw)
	if !validUserName(user) {
		return id, errs.E(errs.Unauthenticated, "oidc: claim %q: not a valid user name (1 to 128 of a-z 0-9 - _ . @)", c.UserClaim)
	}
	id.User = user
	// An email address as the user name must be one the provider verified:
	// a provider may let anyone set an address, and the address is who
	// the session is (a local user, a policy's User::"<address>").
	if c.UserClaim == "email" && !isTrue(claims["email_verified"]) {
		return Identity{}, errs.E(errs.Unauthenticated, "oidc: the user claim is \"email\" and the provider has not verified the address (email_verified)")
	}

	if len(c.AllowedDomains) > 0 {
		email, _ := claims["email"].(string)
		at := strings.LastIndexByte(email, '@')
		if at <= 0 || at == len(email)-1 {
			return Identity{}, errs.E(errs.Unauthenticated, "oidc: claim \"email\": missing or not an address, and allowed_domains is set")
		}
		if !isTrue(claims["email_verified"]) {
			return Identity{}, errs.E(errs.Unauthenticated, "oidc: the provider has not verified the email address (email_verified)")
		}
		if !slices.Contains(c.AllowedDomains, lowerASCII(email[at+1:])) {
			return Identity{}, errs.E(errs.Unauthenticated, "oidc: the email address is not in an allowed domain")
		}
	}

	if c.GroupsClaim != "" {
		groups, err := mapGroups(c.GroupsClaim, claims[c.GroupsClaim])
		if err != nil {
			return Identity{}, err
		}
		id.Groups = groups
	}

	id.MFA, id.MFAMethod = mfa(claims["amr"], claims["acr"], c.MFAAcrValues)
	return id, nil
}

func mapGroups(claim string, v any) ([]string, error) {
	var list []string
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		if v == "" {
			return nil, nil
		}
		list = []string{v}
	case []any:
		if len(v) > maxGroups {
			return nil, errs.E(errs.Unauthenticated, "oidc: claim %q: more than %d groups", claim, maxGroups)
		}
		for _, g := range v {
			s, ok := g.(string)
			if !ok {
				return nil, errs.E(errs.Unauthenticated, "oidc: claim %q: must be a string or an array of strings", claim)
			}
			list = append(list, s)
		}
	default:
		return nil, errs.E(errs.Unauthenticated, "oidc: claim %q: must be a string or an array of strings", claim)
	}
	var out []string
	for _, g := range list {
		g = lowerASCII(g)
		if !validUserName(g) {
			return nil, errs.E(errs.Unauthenticated, "oidc: claim %q: a group is not a valid name (1 to 128 of a-z 0-9 - _ . @)", claim)
		}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out, nil
}

// mfa maps the "amr" (RFC 8176 method references) and "acr" claims.
func mfa(amrClaim, acrClaim any, mfaACR []string) (bool, string) {
	knowledge := []string{"pwd", "pin"}
	possession := []string{"otp", "hwk", "swk", "fpt", "face", "sms"}
	webauthn := []string{"hwk", "swk", "fpt", "face"}
	var amr []string
	switch v := amrClaim.(type) {
	case string:
		amr = []string{v}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				amr = append(amr, s)
			}
		}
	}
	has := func(set []string) bool {
		return slices.ContainsFunc(amr, func(a string) bool { return slices.Contains(set, a) })
	}
	acr, _ := acrClaim.(string)
	ok := slices.Contains(amr, "mfa") || (has(knowledge) && has(possession)) || (acr != "" && slices.Contains(mfaACR, acr))
	switch {
	case !ok:
		return false, ""
	case has(webauthn):
		return true, "webauthn"
	case slices.Contains(amr, "otp"):
		return true, "totp"
	}
	return true, ""
}

// isTrue accepts a JSON true, and the string "true" that some providers send.
func isTrue(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
}

// lowerASCII lowercases A-Z only. Unicode case folding is not applied: it
// would map distinct provider names onto one Warden name (the Kelvin sign
// K lowercases to an ASCII k); non-ASCII stays and fails validUserName.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// validUserName is identity's token user alphabet: [a-z0-9-_.@]{1,128}.
func validUserName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '@') {
			return false
		}
	}
	return true
}
