package oidcauth

// The real OpenID provider: zitadel/oidc's example OP (exampleop and its
// in-memory storage) behind a TLS httptest server on 127.0.0.1, driven
// through its own login and device pages by an http.Client with a cookie
// jar, as a browser would.

import (
	"context"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// Warden's registration at the test provider, and a second client.
const (
	opClientID     = "warden"
	opClientSecret = "warden-test-secret"
	opOtherID      = "other"
	opOtherSecret  = "other-test-secret"
)

// opUsers are the provider's users. ID and user name are the same: the
// example device flow completes the login with the user name as subject,
// and its storage looks users up by ID.
func opUsers() map[string]*storage.User {
	u := func(name, email string, verified bool) *storage.User {
		return &storage.User{ID: name, Username: name, Password: name + "-password", FirstName: name, LastName: "Test",
			Email: email, EmailVerified: verified, PreferredLanguage: language.English}
	}
	return map[string]*storage.User{
		"alice": u("alice", "Alice@Example.com", true),
		"bob":   u("bob", "bob@example.org", false),
		"carol": u("carol", "carol@example.com", true),
	}
}

// opUserStore implements storage.UserStore over opUsers.
type opUserStore struct{ users map[string]*storage.User }

func (s opUserStore) GetUserByID(id string) *storage.User         { return s.users[id] }
func (s opUserStore) GetUserByUsername(name string) *storage.User { return s.users[name] }
func (s opUserStore) ExampleClientID() string                     { return storage.ServiceUserID }

// opStorage is the example storage with three additions: clients may use
// the device grant (the example's WebClient cannot be declared with it),
// users have a "groups" claim (in the ID token and at userinfo), and some
// users log in with a second factor (their "amr").
type opStorage struct {
	*storage.Storage
	groups map[string][]string
	amr    map[string][]string
}

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return deviceGrantClient{c}, nil
}

type deviceGrantClient struct{ op.Client }

func (c deviceGrantClient) GrantTypes() []zoidc.GrantType {
	return append(c.Client.GrantTypes(), zoidc.GrantTypeDeviceCode)
}

func (s *opStorage) SetUserinfoFromRequest(ctx context.Context, ui *zoidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	if g, ok := s.groups[req.GetSubject()]; ok {
		ui.AppendClaims("groups", g)
	}
	return nil
}

func (s *opStorage) SetUserinfoFromToken(ctx context.Context, ui *zoidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, ui, tokenID, subject, origin); err != nil {
		return err
	}
	if g, ok := s.groups[ui.Subject]; ok {
		ui.AppendClaims("groups", g)
	}
	return nil
}

func (s *opStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	r, err := s.Storage.AuthRequestByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	if amr, ok := s.amr[r.GetSubject()]; ok {
		return amrRequest{r, amr}, nil
	}
	return r, nil
}

type amrRequest struct {
	op.AuthRequest
	amr []string
}

func (r amrRequest) GetAMR() []string { return r.amr }

// opEnv is a running provider and the loopback listener its logins come
// back to.
type opEnv struct {
	srv         *httptest.Server
	issuer      string // https://127.0.0.1:<port>
	caPEM       string
	redirectURI string      // http://127.0.0.1:<port>/callback
	callbacks   chan string // raw queries received on redirectURI
}

func startOP(t *testing.T) *opEnv {
	t.Helper()
	e := &opEnv{callbacks: make(chan string, 16)}
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		e.callbacks <- r.URL.RawQuery
		io.WriteString(w, "you may close this window")
	}))
	t.Cleanup(cb.Close)
	e.redirectURI = cb.URL + "/callback"

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.issuer = "https://" + ln.Addr().String()
	clients := map[string]*storage.Client{
		opClientID: storage.WebClient(opClientID, opClientSecret, e.redirectURI),
		opOtherID:  storage.WebClient(opOtherID, opOtherSecret, e.redirectURI),
	}
	st := &opStorage{
		Storage: storage.NewStorageWithClients(opUserStore{opUsers()}, clients),
		groups:  map[string][]string{"alice": {"Ops", "dev", "ops"}, "carol": {"ops"}},
		amr:     map[string][]string{"carol": {"pwd", "otp"}},
	}
	// A discarding logger: SetupServer installs it as the process default
	// and logs every request.
	router := exampleop.SetupServer(e.issuer, st, slog.New(slog.DiscardHandler), false)
	e.srv = httptest.NewUnstartedServer(router)
	e.srv.Listener.Close()
	e.srv.Listener = ln
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	e.caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw}))
	return e
}

// config is Warden's configuration for the provider.
func (e *opEnv) config() Config {
	return Config{
		Issuer:       e.issuer,
		ClientID:     opClientID,
		ClientSecret: opClientSecret,
		RedirectURIs: []string{"http://127.0.0.1/callback"}, // any port
		GroupsClaim:  "groups",
		CAPEM:        e.caPEM,
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

// browser is a user agent: it trusts the provider's certificate, keeps
// cookies and follows redirects.
func (e *opEnv) browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: e.srv.Client().Transport, Jar: jar, Timeout: 10 * time.Second}
}

var hiddenID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// login signs in at the provider from authURL, as a user does: the auth
// URL leads to the login page, whose form is posted with the credentials;
// the provider then redirects to the redirect URI. It returns the query
// the redirect URI received.
func (e *opEnv) login(t *testing.T, authURL, user, password string) string {
	t.Helper()
	b := e.browser(t)
	page := get(t, b, authURL)
	m := hiddenID.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no login form at the provider: %.300s", page)
	}
	resp, err := b.PostForm(e.issuer+"/login/username", url.Values{"id": {m[1]}, "username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %s: %.300s", resp.Status, body)
	}
	return e.callback(t)
}

// callback returns the query of the redirect the browser just followed.
func (e *opEnv) callback(t *testing.T) string {
	t.Helper()
	select {
	case q := <-e.callbacks:
		return q
	default:
		t.Fatal("the provider did not redirect to the redirect URI")
		return ""
	}
}

func get(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %.300s", u, resp.Status, body)
	}
	return string(body)
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
	b := e.browser(t)
	page := get(t, b, da.VerificationURIComplete)
	if !strings.Contains(page, `name="user_code" value="`+da.UserCode+`"`) {
		t.Fatalf("device page without the user code: %.300s", page)
	}
	resp, err := b.PostForm(e.issuer+"/device/login", url.Values{"user_code": {da.UserCode}, "username": {user}, "password": {user + "-password"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "access to the following scopes") {
		t.Fatalf("device login: %s: %.300s", resp.Status, body)
	}
	if page := get(t, b, e.issuer+"/device/confirm?action="+action); !strings.Contains(page, "Device authorization "+action) {
		t.Fatalf("device confirm: %.300s", page)
	}
}
