package oidcauth

import (
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/warden-sec/warden/internal/errs"
)

// Limits of the configuration.
const (
	maxURL          = 2048
	maxRedirectURIs = 32
	maxListItems    = 64
	maxClaimName    = 128
	maxClientSecret = 1024
	maxCAPEM        = 1 << 20
)

// defaultScopes are the scopes requested when Config.Scopes is empty.
func defaultScopes() []string { return []string{"openid", "profile", "email"} }

// DefaultUserClaim is the claim that names the user when Config.UserClaim is empty.
const DefaultUserClaim = "email"

// Config is an OpenID Connect login method: the provider (issuer) and
// Warden's registration with it. Warden is the confidential client: it holds
// ClientSecret, which no API answer may contain. The zero value is not
// valid; call Validate.
type Config struct {
	// Issuer is the provider's issuer URL (https), exactly as its discovery
	// document names it (a trailing slash matters).
	Issuer string `json:"issuer"`
	// ClientID is Warden's client id at the provider; ID tokens must name it
	// as their audience.
	ClientID string `json:"client_id"`
	// ClientSecret authenticates Warden at the token endpoint; empty for a
	// public client (PKCE only). Never returned by the API, never logged.
	ClientSecret string `json:"client_secret,omitempty"`
	// RedirectURIs are the callback URIs a login may name: exact https URIs,
	// or loopback http URIs. A loopback entry without a port
	// (http://127.0.0.1/<path>, http://localhost/<path>, http://[::1]/<path>)
	// matches the same URI with any port (RFC 8252 section 7.3), for the CLI's
	// one-shot listener.
	RedirectURIs []string `json:"redirect_uris"`
	// Scopes requested; empty means openid, profile, email. Must include "openid".
	// Only what is listed is requested (a groups scope is not added for
	// GroupsClaim).
	Scopes []string `json:"scopes"`
	// UserClaim is the claim whose value, lowercased, is the Warden user
	// name; empty means DefaultUserClaim. With "email" the provider must
	// also say "email_verified": true.
	UserClaim string `json:"user_claim"`
	// GroupsClaim is the claim listing the user's groups (a string or an
	// array of strings); empty means the login carries no groups.
	GroupsClaim string `json:"groups_claim"`
	// AllowedDomains, when set, admit only users whose "email" claim is in
	// one of these domains (exact match, case-insensitive) and whose
	// "email_verified" claim is true.
	AllowedDomains []string `json:"allowed_domains"`
	// MFAAcrValues are the "acr" values that mean the provider did
	// multi-factor authentication.
	MFAAcrValues []string `json:"mfa_acr_values"`
	// CAPEM holds extra PEM certificates trusted, besides the system roots,
	// to reach the provider.
	CAPEM string `json:"ca_pem,omitempty"`
}

// Validate reports the first problem of c as an errs.Invalid error naming
// the field. It never echoes the client secret.
func (c *Config) Validate() error {
	if err := validIssuer(c.Issuer); err != nil {
		return err
	}
	if c.ClientID == "" || len(c.ClientID) > 256 || !printable(c.ClientID) {
		return errs.E(errs.Invalid, "client_id: must be 1 to 256 printable ASCII characters")
	}
	if len(c.ClientSecret) > maxClientSecret || (c.ClientSecret != "" && !printable(c.ClientSecret)) {
		return errs.E(errs.Invalid, "client_secret: must be at most %d printable ASCII characters", maxClientSecret)
	}
	if len(c.RedirectURIs) > maxRedirectURIs {
		return errs.E(errs.Invalid, "redirect_uris: at most %d", maxRedirectURIs)
	}
	for i, r := range c.RedirectURIs {
		if err := validRedirectEntry(r); err != nil {
			return errs.E(errs.Invalid, "redirect_uris[%d]: %s", i, err.Error())
		}
	}
	if len(c.Scopes) > maxListItems {
		return errs.E(errs.Invalid, "scopes: at most %d", maxListItems)
	}
	for i, s := range c.Scopes {
		if s == "" || len(s) > maxClaimName || !token(s) {
			return errs.E(errs.Invalid, "scopes[%d]: must be 1 to %d printable ASCII characters without spaces or quotes", i, maxClaimName)
		}
	}
	if len(c.Scopes) > 0 && !slices.Contains(c.Scopes, "openid") {
		return errs.E(errs.Invalid, "scopes: must include openid")
	}
	if c.UserClaim != "" && (len(c.UserClaim) > maxClaimName || !token(c.UserClaim)) {
		return errs.E(errs.Invalid, "user_claim: must be 1 to %d printable ASCII characters without spaces or quotes", maxClaimName)
	}
	if c.GroupsClaim != "" && (len(c.GroupsClaim) > maxClaimName || !token(c.GroupsClaim)) {
		return errs.E(errs.Invalid, "groups_claim: must be 1 to %d printable ASCII characters without spaces or quotes", maxClaimName)
	}
	if len(c.AllowedDomains) > maxListItems {
		return errs.E(errs.Invalid, "allowed_domains: at most %d", maxListItems)
	}
	for i, d := range c.AllowedDomains {
		if !validDomain(strings.ToLower(d)) {
			return errs.E(errs.Invalid, "allowed_domains[%d]: not a domain name", i)
		}
	}
	if len(c.MFAAcrValues) > maxListItems {
		return errs.E(errs.Invalid, "mfa_acr_values: at most %d", maxListItems)
	}
	for i, a := range c.MFAAcrValues {
		if a == "" || len(a) > 256 || !token(a) {
			return errs.E(errs.Invalid, "mfa_acr_values[%d]: must be 1 to 256 printable ASCII characters without spaces or quotes", i)
		}
	}
	if c.CAPEM != "" {
		if _, err := parseCAPEM(c.CAPEM); err != nil {
			return err
		}
	}
	return nil
}

// normalized returns a copy of c with defaults applied and domains lowercased.
func (c *Config) normalized() Config {
	n := *c
	n.RedirectURIs = slices.Clone(c.RedirectURIs)
	n.Scopes = slices.Clone(c.Scopes)
	if len(n.Scopes) == 0 {
		n.Scopes = defaultScopes()
	}
	if n.UserClaim == "" {
		n.UserClaim = DefaultUserClaim
	}
	n.AllowedDomains = make([]string, len(c.AllowedDomains))
	for i, d := range c.AllowedDomains {
		n.AllowedDomains[i] = strings.ToLower(d)
	}
	n.MFAAcrValues = slices.Clone(c.MFAAcrValues)
	return n
}

func validIssuer(s string) error {
	if s == "" {
		return errs.E(errs.Invalid, "issuer: required")
	}
	if len(s) > maxURL || !printable(s) {
		return errs.E(errs.Invalid, "issuer: must be at most %d printable ASCII characters", maxURL)
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return errs.E(errs.Invalid, "issuer: must be an https URL without user, query or fragment")
	}
	return nil
}

// validRedirectEntry checks one configured redirect URI.
func validRedirectEntry(s string) error {
	u, err := parseRedirect(s)
	if err != nil {
		return err
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return errs.E(errs.Invalid, "http is allowed only for a loopback address (127.0.0.1, [::1], localhost)")
	}
	return nil
}

// parseRedirect parses an absolute http(s) URI without user info or fragment.
func parseRedirect(s string) (*url.URL, error) {
	if s == "" || len(s) > maxURL || !printable(s) {
		return nil, errs.E(errs.Invalid, "must be 1 to %d printable ASCII characters", maxURL)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Hostname() == "" || u.Opaque != "" {
		return nil, errs.E(errs.Invalid, "must be an absolute http or https URI")
	}
	if u.User != nil || u.Fragment != "" || strings.Contains(s, "#") {
		return nil, errs.E(errs.Invalid, "must have no user info and no fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || strings.TrimLeft(p, "0123456789") != "" {
			return nil, errs.E(errs.Invalid, "bad port")
		}
	}
	return u, nil
}

func isLoopback(host string) bool {
	return host == "127.0.0.1" || host == "::1" || host == "localhost"
}

// redirectAllowed reports whether the login may name redirectURI: it is one
// of the configured URIs exactly, or it matches a port-less loopback entry
// with any port (RFC 8252 section 7.3).
func (c *Config) redirectAllowed(redirectURI string) bool {
	u, err := parseRedirect(redirectURI)
	if err != nil {
		return false
	}
	for _, allowed := range c.RedirectURIs {
		if redirectURI == allowed {
			return true
		}
		a, err := url.Parse(allowed)
		if err != nil || a.Scheme != "http" || !isLoopback(a.Hostname()) || a.Port() != "" {
			continue
		}
		if u.Scheme == "http" && u.Hostname() == a.Hostname() && u.EscapedPath() == a.EscapedPath() &&
			u.RawQuery == a.RawQuery && u.ForceQuery == a.ForceQuery {
			return true
		}
	}
	return false
}

func parseCAPEM(s string) ([]*x509.Certificate, error) {
	if len(s) > maxCAPEM {
		return nil, errs.E(errs.Invalid, "ca_pem: larger than %d bytes", maxCAPEM)
	}
	var certs []*x509.Certificate
	rest := []byte(s)
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, errs.E(errs.Invalid, "ca_pem: block %d is %q, not CERTIFICATE", n+1, b.Type)
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, errs.E(errs.Invalid, "ca_pem: certificate %d does not parse", n+1)
		}
		certs = append(certs, cert)
		n++
	}
	if n == 0 || strings.TrimSpace(string(rest)) != "" {
		return nil, errs.E(errs.Invalid, "ca_pem: must be PEM certificates only")
	}
	return certs, nil
}

// printable reports whether s is printable ASCII (spaces allowed).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// token reports whether s is printable ASCII without spaces, quotes or
// backslashes (RFC 6749 scope-token characters).
func token(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}

func validDomain(d string) bool {
	if d == "" || len(d) > 253 || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..") {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
