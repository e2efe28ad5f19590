package oidcauth

// The real OpenID provider (package oidctest: zitadel/oidc's example OP
// over TLS on 127.0.0.1, driven through its own login and device pages as
// a browser would), and Warden's configuration for it.

import (
	"net/url"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/oidcauth/oidctest"
)

// testRedirectURI is where the provider sends the browser back. Nothing
// listens there: oidctest's browser stops at the redirect and hands back
// its URL.
const testRedirectURI = "http://127.0.0.1:8250/callback"

// opEnv is a running provider and the redirect URI its logins come back to.
type opEnv struct {
	*oidctest.Provider
	redirectURI string
}

func startOP(t *testing.T) *opEnv {
	t.Helper()
	return &opEnv{Provider: oidctest.Start(t, testRedirectURI), redirectURI: testRedirectURI}
}

// config is Warden's configuration for the provider.
func (e *opEnv) config() Config {
	return Config{
		Issuer:       e.Issuer,
		ClientID:     e.ClientID,
		ClientSecret: e.ClientSecret,
		RedirectURIs: []string{"http://127.0.0.1/callback"}, // any port
		GroupsClaim:  "groups",
		CAPEM:        e.CAPEM,
	}
}

func (e *opEnv) provider(t *testing.T, c Config, now func() time.Time) *Provider {
	t.Helper()
	p, err := NewProvider(t.Context(), c, testStateKey, now)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// login signs in at the provider from authURL, as a user does, and returns
// the query of the provider's redirect to the redirect URI.
func (e *opEnv) login(t *testing.T, authURL, user, password string) string {
	t.Helper()
	u, err := e.Login(authURL, user, password)
	if err != nil {
		t.Fatal(err)
	}
	return e.callback(t, u)
}

// redirect follows authURL without signing in and returns the query of
// the provider's redirect to the redirect URI.
func (e *opEnv) redirect(t *testing.T, authURL string) string {
	t.Helper()
	u, err := e.Authorize(authURL)
	if err != nil {
		t.Fatal(err)
	}
	return e.callback(t, u)
}

// callback returns the query of u, a redirect that must go to the
// redirect URI.
func (e *opEnv) callback(t *testing.T, u *url.URL) string {
	t.Helper()
	if got := u.Scheme + "://" + u.Host + u.Path; got != e.redirectURI {
		t.Fatalf("the provider redirected to %s, not to the redirect URI", got)
	}
	return u.RawQuery
}

// withParam returns u with query parameter k set to v, or removed if v is "".
func withParam(t *testing.T, u, k, v string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := p.Query()
	if v == "" {
		q.Del(k)
	} else {
		q.Set(k, v)
	}
	p.RawQuery = q.Encode()
	return p.String()
}

// approveDevice enters the user code on the provider's device pages, signs
// in and answers the consent page with action ("allowed" or "denied").
func (e *opEnv) approveDevice(t *testing.T, da DeviceAuth, user, action string) {
	t.Helper()
	approve := e.ApproveDevice
	if action == "denied" {
		approve = e.DenyDevice
	}
	if err := approve(da.VerificationURIComplete, da.UserCode, user, user+"-password"); err != nil {
		t.Fatal(err)
	}
}
