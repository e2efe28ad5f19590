package console_test

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/warden-sec/warden/internal/browsertest"
	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/internal/server/servertest"
)

// startConsoleServerWith is startConsoleServer with the server's
// configuration changed by configure, which is given the console's origin
// (https://localhost:<port>: a WebAuthn relying party is a name, not an IP
// address, so the browser opens the console by the name localhost).
func startConsoleServerWith(t *testing.T, configure func(c *server.Config, origin string)) (*consoleServer, string) {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	_, port, err := net.SplitHostPort(ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	origin := "https://localhost:" + port
	srv, root := servertest.Running(t, func(cfg *server.Config) { configure(cfg, origin) })
	ts.Config.Handler = consoleMux(srv)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return &consoleServer{srv: srv, ts: ts, root: root}, origin
}

// browser is a headless Chromium tab and what it wrote to its console
// until end() (which returns the messages that are not log, info or debug:
// errors, warnings, CSP violations).
type window struct {
	*browsertest.Browser
	t   *testing.T
	end func() []string // the console's errors and warnings, once
}

func newWindow(t *testing.T, ctx context.Context, width, height int) *window {
	t.Helper()
	br := browsertest.Start(t, ctx, width, height)
	return &window{Browser: br, t: t, end: func() []string { return browsertest.Problems(br.Messages(t)) }}
}

func readySel(page string) string {
	return fmt.Sprintf(`section[data-page=%q][data-state="ready"]`, page)
}

// TestPasskeyInChromium registers a passkey in the console's account page
// with Chromium's virtual authenticator (CTAP2, internal transport,
// resident keys and user verification) and logs in with the password and
// the passkey from the login page, against a real server whose WebAuthn
// relying party is localhost. The server then holds the passkey, used, and
// the password alone asks for the second factor. Single sign-on is not
// configured: its button says so.
func TestPasskeyInChromium(t *testing.T) {
	cs, origin := startConsoleServerWith(t, func(c *server.Config, origin string) {
		c.WebAuthnRPID, c.WebAuthnOrigins = "localhost", []string{origin}
	})
	cs.call(t, "PUT", "/v1/authz/stores/warden/policies/console-admins", cs.root,
		map[string]string{"policy": `permit (principal in Group::"admins", action, resource);`}, 200)
	cs.call(t, "POST", "/v1/users", cs.root, map[string]any{"name": userName, "groups": []string{"admins"}, "password": userPass}, 200)

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	b := newWindow(t, ctx, 1280, 800)
	if _, err := chromedp.Call(b.Ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	auth, err := chromedp.Call(b.Ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
			Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: true,
		}})
	if err != nil {
		t.Fatal(err)
	}

	// Log in with the password alone (no factor yet), then register a
	// passkey on the account page: the server ends the session, and the
	// console shows the login page saying why.
	b.Do(chromedp.Navigate(origin+"/ui/"), chromedp.WaitReady(readySel("login")))
	b.Do(chromedp.SendKeys("#login-user", userName), chromedp.SendKeys("#login-password", userPass),
		chromedp.Click(`#login-password-form button[type="submit"]`), chromedp.WaitReady(readySel("overview")))
	b.Do(chromedp.Click(`nav a[href="#/account"]`), chromedp.WaitReady(readySel("account")))
	if got := b.Text("#acct-who"); !strings.Contains(got, `User::"alice"`) {
		t.Errorf("account page: %q", got)
	}
	b.Do(chromedp.SetValue("#passkey-name", "laptop"), chromedp.Click(`#passkey-form button[type="submit"]`))
	b.Poll(`document.querySelector('section[data-page="login"]') !== null && document.getElementById("login-status").textContent.includes("registered")`)
	creds, err := chromedp.Call(b.Ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams(auth))
	if err != nil || len(creds.Credentials) != 1 || creds.Credentials[0].RpID != "localhost" {
		t.Fatalf("the authenticator's credentials: %+v, %v", creds, err)
	}
	u := cs.call(t, "GET", "/v1/users/"+userName, cs.root, nil, 200)
	if pks, _ := u["passkeys"].([]any); len(pks) != 1 || pks[0].(map[string]any)["name"] != "laptop" {
		t.Fatalf("the server's view of alice: %v", u)
	}

	// The password alone now asks for the second factor, naming the passkey.
	b.Do(chromedp.SendKeys("#login-user", userName), chromedp.SendKeys("#login-password", userPass),
		chromedp.Click(`#login-password-form button[type="submit"]`))
	b.Poll(`document.getElementById("login-status").textContent.includes("use your passkey")`)
	// The password and the passkey open the session, on the page the
	// user was on (the account page), and the overview shows.
	b.Do(chromedp.Click("#login-passkey"), chromedp.WaitReady(readySel("account")),
		chromedp.Click(`nav a[href="#/overview"]`), chromedp.WaitReady(readySel("overview")))
	if got := b.Text("#whoami"); got != userName {
		t.Errorf("whoami %q", got)
	}
	u = cs.call(t, "GET", "/v1/users/"+userName, cs.root, nil, 200)
	if pk := u["passkeys"].([]any)[0].(map[string]any); pk["last_used"] == nil {
		t.Errorf("the passkey's use is not recorded: %v", pk)
	}
	// Single sign-on without a provider says it is not configured.
	b.Do(chromedp.Click("#logout"), chromedp.WaitReady(readySel("login")), chromedp.Click("#login-sso-button"))
	b.Poll(`document.getElementById("login-status").textContent.includes("not configured")`)

	// A wrong password never reaches the authenticator.
	b.Do(chromedp.SendKeys("#login-user", userName), chromedp.SendKeys("#login-password", "not-the-password-1"),
		chromedp.Click("#login-passkey"))
	b.Poll(`document.getElementById("login-status").textContent.includes("invalid user name, password or code")`)

	if problems := b.end(); len(problems) > 0 {
		// The refused login (401) and single sign-on (503) are reported
		// on the browser's console as failed loads.
		var other []string
		for _, p := range problems {
			if !strings.Contains(p, "status of 401") && !strings.Contains(p, "status of 503") {
				other = append(other, p)
			}
		}
		if len(other) > 0 {
			t.Fatalf("the console ran with problems: %q", other)
		}
	}
}
