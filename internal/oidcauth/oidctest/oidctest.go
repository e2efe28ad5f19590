// Package oidctest runs a real OpenID provider for tests: zitadel/oidc's
// example OP (exampleop with its in-memory storage) behind a TLS server on
// 127.0.0.1, with three users, and drives its login and device pages as a
// browser does.
//
// It is for tests only: import it from _test.go files, never from code
// that ships (it pulls the example provider into the binary). A test in
// this package checks that no non-test file of the module imports it.
//
// It does not import package oidcauth, so that oidcauth's own (internal)
// tests can import it; callers build oidcauth.Config from the Provider's
// fields.
package oidctest

import (
	"encoding/pem"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"golang.org/x/text/language"
)

// User is one of the provider's users.
type User struct {
	// Name is the user name on the login page, the subject ("sub") and the
	// "preferred_username" claim.
	Name string
	// Password is the password on the login page: Name + "-password".
	Password string
	// Email and EmailVerified are the "email" and "email_verified" claims
	// (sent at userinfo: the example provider leaves them out of ID tokens
	// issued with an access token).
	Email         string
	EmailVerified bool
	// Groups is the "groups" claim as the provider sends it (in the ID
	// token and at userinfo); nil: no such claim.
	Groups []string
	// AMR is the "amr" claim of the user's code-flow logins; nil: the
	// example provider's default (none).
	AMR []string
}

// Users returns the provider's users:
//
//   - alice: email "Alice@Example.com" (verified), groups "Ops", "dev",
//     "ops" (mixed case and a duplicate on purpose), no second factor;
//   - bob: email "bob@example.org", not verified, no groups;
//   - carol: email "carol@example.com" (verified), group "ops", "amr"
//     ["pwd", "otp"]: a password and a one-time code.
func Users() []User {
	return []User{
		{Name: "alice", Password: "alice-password", Email: "Alice@Example.com", EmailVerified: true, Groups: []string{"Ops", "dev", "ops"}},
		{Name: "bob", Password: "bob-password", Email: "bob@example.org"},
		{Name: "carol", Password: "carol-password", Email: "carol@example.com", EmailVerified: true, Groups: []string{"ops"}, AMR: []string{"pwd", "otp"}},
	}
}

// Provider is a running provider. Its fields are set by Start and must not
// be changed.
type Provider struct {
	// Issuer is the provider's issuer URL: https://127.0.0.1:<port>.
	Issuer string
	// CAPEM is the PEM certificate of the provider's TLS server, which
	// nothing else trusts.
	CAPEM string
	// ClientID and ClientSecret are the registration of the client under
	// test (Warden): a confidential web client that may also use the
	// device grant.
	ClientID     string
	ClientSecret string
	// OtherClientID and OtherClientSecret are a second client registered
	// the same way, for tests of tokens issued to someone else.
	OtherClientID     string
	OtherClientSecret string
	// RedirectURIs are the redirect URIs registered for both clients
	// (exact match: the example provider applies no loopback port rule to
	// web clients).
	RedirectURIs []string

	srv *httptest.Server
}

// Start runs a provider until the test ends, with both clients registered
// with redirectURIs (at least one). Nothing needs to listen on a redirect
// URI: the browser methods stop at the redirect to it.
//
// Start sets the process's default slog logger to one that discards: the
// example provider installs the logger it is given as the process default
// and logs every request.
func Start(t testing.TB, redirectURIs ...string) *Provider {
	t.Helper()
	if len(redirectURIs) == 0 {
		t.Fatal("oidctest.Start: no redirect URI")
	}
	p := &Provider{
		ClientID: "warden", ClientSecret: "warden-test-secret",
		OtherClientID: "other", OtherClientSecret: "other-test-secret",
		RedirectURIs: append([]string(nil), redirectURIs...),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Issuer = "https://" + ln.Addr().String()
	clients := map[string]*storage.Client{
		p.ClientID:      storage.WebClient(p.ClientID, p.ClientSecret, redirectURIs...),
		p.OtherClientID: storage.WebClient(p.OtherClientID, p.OtherClientSecret, redirectURIs...),
	}
	users := make(map[string]*storage.User)
	st := &opStorage{groups: make(map[string][]string), amr: make(map[string][]string)}
	for _, u := range Users() {
		// ID and user name are the same: the example device flow
		// completes the login with the user name as subject, and its
		// storage looks users up by ID.
		users[u.Name] = &storage.User{ID: u.Name, Username: u.Name, Password: u.Password, FirstName: u.Name, LastName: "Test",
			Email: u.Email, EmailVerified: u.EmailVerified, PreferredLanguage: language.English}
		if u.Groups != nil {
			st.groups[u.Name] = u.Groups
		}
		if u.AMR != nil {
			st.amr[u.Name] = u.AMR
		}
	}
	st.Storage = storage.NewStorageWithClients(userStore{users}, clients)
	router := exampleop.SetupServer(p.Issuer, st, slog.New(slog.DiscardHandler), false)
	p.srv = httptest.NewUnstartedServer(router)
	p.srv.Listener.Close()
	p.srv.Listener = ln
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	p.CAPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw}))
	return p
}

// HTTPClient returns a client that trusts the provider's certificate, for
// talking to its endpoints directly (as another client would).
func (p *Provider) HTTPClient() *http.Client {
	return &http.Client{Transport: p.srv.Client().Transport, Timeout: requestTimeout}
}

// requestTimeout bounds each request (with its redirects) to the provider.
const requestTimeout = 10 * time.Second
