package oidcauth

import (
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/errs"
)

func validConfig() Config {
	return Config{
		Issuer:       "https://idp.example.com",
		ClientID:     "warden",
		ClientSecret: "s3cret-value",
		RedirectURIs: []string{"https://warden.example.com/ui/callback", "http://127.0.0.1/callback", "http://localhost/cb?x=1"},
	}
}

func TestValidate(t *testing.T) {
	if err := (&Config{Issuer: "https://idp.example", ClientID: "c"}).Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	c := validConfig()
	c.Scopes = []string{"openid", "groups"}
	c.UserClaim = "preferred_username"
	c.GroupsClaim = "https://example.com/groups"
	c.AllowedDomains = []string{"Example.com"}
	c.MFAAcrValues = []string{"http://schemas.openid.net/pape/policies/2007/06/multi-factor"}
	if err := c.Validate(); err != nil {
		t.Fatalf("full config: %v", err)
	}
	for _, tc := range []struct {
		field string
		edit  func(*Config)
	}{
		{"issuer", func(c *Config) { c.Issuer = "" }},
		{"issuer", func(c *Config) { c.Issuer = "http://idp.example.com" }},
		{"issuer", func(c *Config) { c.Issuer = "https://idp.example.com/?tenant=1" }},
		{"issuer", func(c *Config) { c.Issuer = "https://idp.example.com/#x" }},
		{"issuer", func(c *Config) { c.Issuer = "https://user@idp.example.com" }},
		{"issuer", func(c *Config) { c.Issuer = "https:///path" }},
		{"issuer", func(c *Config) { c.Issuer = "https://idp.example.com/\n" }},
		{"client_id", func(c *Config) { c.ClientID = "" }},
		{"client_id", func(c *Config) { c.ClientID = "a\x00b" }},
		{"client_secret", func(c *Config) { c.ClientSecret = strings.Repeat("x", maxClientSecret+1) }},
		{"client_secret", func(c *Config) { c.ClientSecret = "tab\tsecret" }},
		{"redirect_uris[0]", func(c *Config) { c.RedirectURIs = []string{"http://warden.example.com/cb"} }},
		{"redirect_uris[0]", func(c *Config) { c.RedirectURIs = []string{"/cb"} }},
		{"redirect_uris[0]", func(c *Config) { c.RedirectURIs = []string{"https://warden.example.com/cb#frag"} }},
		{"redirect_uris[0]", func(c *Config) { c.RedirectURIs = []string{"https://u:p@warden.example.com/cb"} }},
		{"redirect_uris[0]", func(c *Config) { c.RedirectURIs = []string{"warden://cb"} }},
		{"redirect_uris[0]", func(c *Config) { c.RedirectURIs = []string{"http://127.0.0.1:99999/cb"} }},
		{"redirect_uris", func(c *Config) { c.RedirectURIs = make([]string, maxRedirectURIs+1) }},
		{"scopes", func(c *Config) { c.Scopes = []string{"profile", "email"} }},
		{"scopes[1]", func(c *Config) { c.Scopes = []string{"openid", "two words"} }},
		{"scopes[0]", func(c *Config) { c.Scopes = []string{""} }},
		{"user_claim", func(c *Config) { c.UserClaim = "a b" }},
		{"groups_claim", func(c *Config) { c.GroupsClaim = `a"b` }},
		{"allowed_domains[0]", func(c *Config) { c.AllowedDomains = []string{"*.example.com"} }},
		{"allowed_domains[0]", func(c *Config) { c.AllowedDomains = []string{"example..com"} }},
		{"allowed_domains[0]", func(c *Config) { c.AllowedDomains = []string{"-example.com"} }},
		{"mfa_acr_values[0]", func(c *Config) { c.MFAAcrValues = []string{""} }},
		{"ca_pem", func(c *Config) { c.CAPEM = "not pem" }},
		{"ca_pem", func(c *Config) { c.CAPEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" }},
		{"ca_pem", func(c *Config) { c.CAPEM = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" }},
	} {
		c := validConfig()
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !errs.Is(err, errs.Invalid) || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("%+v: got %v, want errs.Invalid naming %s", c, err, tc.field)
		}
		if err != nil && c.ClientSecret != "" && strings.Contains(err.Error(), c.ClientSecret) {
			t.Errorf("error echoes the client secret: %v", err)
		}
	}
}

func TestNormalized(t *testing.T) {
	c := Config{Issuer: "https://idp.example", ClientID: "c", AllowedDomains: []string{"EXAMPLE.com"}}
	n := c.normalized()
	if strings.Join(n.Scopes, " ") != "openid profile email" || n.UserClaim != "email" || n.AllowedDomains[0] != "example.com" {
		t.Fatalf("%+v", n)
	}
	if c.AllowedDomains[0] != "EXAMPLE.com" || c.Scopes != nil {
		t.Fatal("normalized changed its receiver")
	}
	n.Scopes[0] = "x"
	if m := c.normalized(); m.Scopes[0] != "openid" {
		t.Fatal("defaults are shared")
	}
}

// TestRedirectAllowed: exact match, or a port-less loopback entry matching
// any port (RFC 8252 section 7.3).
func TestRedirectAllowed(t *testing.T) {
	c := validConfig()
	c.RedirectURIs = append(c.RedirectURIs, "http://[::1]/cb", "http://127.0.0.1:8400/fixed")
	for _, tc := range []struct {
		uri string
		ok  bool
	}{
		{"https://warden.example.com/ui/callback", true},
		{"https://warden.example.com/ui/callback/", false},
		{"https://warden.example.com:8443/ui/callback", false},
		{"https://warden.example.com/ui/callback?x=1", false},
		{"https://WARDEN.example.com/ui/callback", false},
		{"http://warden.example.com/ui/callback", false},
		{"http://127.0.0.1/callback", true},
		{"http://127.0.0.1:49152/callback", true},
		{"http://127.0.0.1:1/callback", true},
		{"http://127.0.0.1:49152/callback2", false},
		{"http://127.0.0.1:49152/callback?x", false},
		{"http://127.0.0.1:49152/callback#x", false},
		{"https://127.0.0.1:49152/callback", false},
		{"http://127.0.0.2:49152/callback", false},
		{"http://127.0.0.1.evil.example:49152/callback", false},
		{"http://evil@127.0.0.1:49152/callback", false},
		{"http://127.0.0.1:0x50/callback", false},
		{"http://localhost:5000/cb?x=1", true},
		{"http://localhost:5000/cb", false},
		{"http://[::1]:5000/cb", true},
		{"http://127.0.0.1:8400/fixed", true},
		{"http://127.0.0.1:8401/fixed", false},
		{"", false},
		{"/callback", false},
	} {
		if got := c.redirectAllowed(tc.uri); got != tc.ok {
			t.Errorf("%q: got %v, want %v", tc.uri, got, tc.ok)
		}
	}
}
