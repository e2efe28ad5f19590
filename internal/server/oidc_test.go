package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/api"
	"github.com/warden-sec/warden/internal/oidcauth/oidctest"
	"github.com/warden-sec/warden/internal/server"
)

// oidcRedirectURI is the CLI's loopback redirect URI. Nothing listens on
// it: the browser (oidctest) stops at the provider's redirect to it and
// the test hands its code and state to the API, as the CLI's one-shot
// listener would.
const oidcRedirectURI = "http://127.0.0.1:8250/oidc/callback"

// oidcSession is a session an OpenID Connect login opened, and the
// audit record it must have.
type oidcSession struct {
	action, user, accessor string
}

// deviceAuth is the answer of POST /v1/auth/oidc/device.
type deviceAuth struct {
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	Interval                int    `json:"interval"`
	ExpiresIn               int    `json:"expires_in"`
	State                   string `json:"state"`
}

// postJSON is h.do for a goroutine other than the test's: it returns an
// error instead of failing the test, and gives up after timeout.
func postJSON(c *http.Client, url string, timeout time.Duration, body any) (resp, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	js, err := json.Marshal(body)
	if err != nil {
		return resp{}, err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(js))
	if err != nil {
		return resp{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, body: b, header: res.Header}, err
}

// TestOIDCLogin: OpenID Connect logins through the API against a real
// provider (zitadel/oidc's example OP): the configuration and what GET
// shows of it, the code flow (sessions whose user, groups and second
// factor come from the provider's claims; a policy that needs the second
// factor), a disabled local user of the same name, refusals, the device
// flow, and what the audit log keeps of it all.
func TestOIDCLogin(t *testing.T) {
	op := oidctest.Start(t, oidcRedirectURI)
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)

	// Configure as root. The user claim is preferred_username: the
	// provider's user names (alice, bob, carol) are canonical Warden
	// names, so a local user can have the same name (an email address
	// cannot be one).
	h.want(h.do("PUT", "/v1/auth/oidc/config", root, map[string]any{
		"issuer": op.Issuer, "client_id": op.ClientID, "client_secret": op.ClientSecret,
		"redirect_uris": []string{"http://127.0.0.1/oidc/callback"}, // any port
		"user_claim":    "preferred_username", "groups_claim": "groups", "ca_pem": op.CAPEM,
	}), 204)
	r := h.want(h.do("GET", "/v1/auth/oidc/config", root, nil), 200)
	if cfg := r.json(t); cfg["issuer"] != op.Issuer || cfg["client_id"] != op.ClientID || cfg["client_secret_set"] != true ||
		cfg["user_claim"] != "preferred_username" || cfg["ca_pem"] != op.CAPEM {
		t.Fatalf("config %s", r.body)
	} else if _, ok := cfg["client_secret"]; ok || bytes.Contains(r.body, []byte(op.ClientSecret)) {
		t.Fatalf("the configuration shows the client secret: %s", r.body)
	}

	var (
		sessions []oidcSession
		secrets  = []string{op.ClientSecret, root} // no audit record may hold one of these
	)
	// authURL starts a login; the browser signs in at the provider as
	// user, and authURL returns the state and the code of the redirect.
	authURL := func(user, nonce string) (state, code string) {
		t.Helper()
		m := h.want(h.do("POST", "/v1/auth/oidc/auth_url", "", map[string]string{"redirect_uri": oidcRedirectURI, "client_nonce": nonce}), 200).json(t)
		state, _ = m["state"].(string)
		au, _ := m["auth_url"].(string)
		if state == "" || !strings.HasPrefix(au, op.Issuer+"/") {
			t.Fatalf("auth_url answer %v", m)
		}
		u, err := op.Login(au, user, user+"-password")
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if u.Scheme+"://"+u.Host+u.Path != oidcRedirectURI || q.Get("state") != state || q.Get("code") == "" {
			t.Fatalf("the provider redirected to %s", u.Redacted())
		}
		secrets = append(secrets, q.Get("code"), state, nonce)
		return state, q.Get("code")
	}
	callback := func(state, code, nonce string) resp {
		t.Helper()
		return h.do("POST", "/v1/auth/oidc/callback", "", map[string]string{"state": state, "code": code, "client_nonce": nonce})
	}
	// session checks a login's answer: a session of user, in groups,
	// authenticated by oidc with the second factor or not.
	session := func(r resp, action, user string, groups []string, mfa bool, mfaMethod string) string {
		t.Helper()
		var m struct {
			Token, Accessor, User string
			Groups                []string
			ExpireTime            string `json:"expire_time"`
			MaxExpireTime         string `json:"max_expire_time"`
			Scope                 string
			Auth                  struct {
				Method    string
				MFA       bool
				MFAMethod string `json:"mfa_method"`
				Time      string
			}
		}
		if err := json.Unmarshal(h.want(r, 200).body, &m); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(m.Token, "wdn_") || m.Accessor == "" || m.User != user || !slices.Equal(m.Groups, groups) ||
			m.ExpireTime == "" || m.MaxExpireTime == "" || m.Scope != "" ||
			m.Auth.Method != "oidc" || m.Auth.MFA != mfa || m.Auth.MFAMethod != mfaMethod || m.Auth.Time == "" {
			t.Fatalf("session %s", r.body)
		}
		sessions = append(sessions, oidcSession{action: action, user: user, accessor: m.Accessor})
		secrets = append(secrets, m.Token)
		return m.Token
	}

	// The code flow. alice's groups claim is "Ops", "dev", "ops": lowercased,
	// deduplicated. She signs in with a password only.
	const aliceNonce, carolNonce = "alice-client-nonce-0001", "carol-client-nonce-0001"
	state, code := authURL("alice", aliceNonce)
	alice := session(callback(state, code, aliceNonce), "auth.oidc.callback", "alice", []string{"ops", "dev"}, false, "")
	// The code is spent.
	h.wantError(callback(state, code, aliceNonce), 401, "the provider refused the code")

	// carol's provider login has "amr" pwd and otp: a second factor, TOTP.
	state, code = authURL("carol", carolNonce)
	carol := session(callback(state, code, carolNonce), "auth.oidc.callback", "carol", []string{"ops"}, true, "totp")

	// A policy of the group from the claims that needs the second factor:
	// carol reads, alice (the same group, no second factor) is refused.
	h.want(h.do("PUT", "/v1/kv/data/prod/db", root, map[string]any{"data": map[string]string{"pw": "s3cret-oidc"}}), 200)
	h.want(h.writePolicy(root, "warden", "ops-mfa",
		`permit (principal in Group::"ops", action == Action::"kv.read", resource) when { context.auth.mfa };`), 200)
	if r := h.want(h.do("GET", "/v1/kv/data/prod/db", carol, nil), 200); !bytes.Contains(r.body, []byte("s3cret-oidc")) {
		t.Fatalf("carol read %s", r.body)
	}
	h.wantError(h.do("GET", "/v1/kv/data/prod/db", alice, nil), 403, "kv.read")

	// Refusals. A wrong client nonce: refused before the code is redeemed,
	// so the client that began the login can still finish it.
	state, code = authURL("carol", carolNonce)
	h.wantError(callback(state, code, "not-the-client-nonce-0001"), 401, "client_nonce: does not match the login")
	session(callback(state, code, carolNonce), "auth.oidc.callback", "carol", []string{"ops"}, true, "totp")

	// A tampered state.
	state, code = authURL("carol", carolNonce)
	raw, err := base64.RawURLEncoding.DecodeString(state)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x20
	h.wantError(callback(base64.RawURLEncoding.EncodeToString(raw), code, carolNonce), 401, "state: invalid")

	// Redirect URIs that are not configured, and a nonce too short.
	for _, u := range []string{"http://127.0.0.1:8250/other", "https://evil.example/oidc/callback", "http://localhost:8250/oidc/callback"} {
		h.wantError(h.do("POST", "/v1/auth/oidc/auth_url", "", map[string]string{"redirect_uri": u, "client_nonce": carolNonce}), 400, "redirect_uri: not allowed")
	}
	h.wantError(h.do("POST", "/v1/auth/oidc/auth_url", "", map[string]string{"redirect_uri": oidcRedirectURI, "client_nonce": "short"}), 400, "client_nonce")

	// The device flow. bob approves on the provider's page (typing the
	// code at the plain verification URI) before the poll: the poll's
	// first question to the provider opens the session.
	var da deviceAuth
	device := func() {
		t.Helper()
		r := h.want(h.do("POST", "/v1/auth/oidc/device", "", map[string]any{}), 200)
		da = deviceAuth{}
		if err := json.Unmarshal(r.body, &da); err != nil {
			t.Fatal(err)
		}
		if da.UserCode == "" || !strings.HasPrefix(da.VerificationURI, op.Issuer+"/device") || da.State == "" || da.Interval <= 0 || da.ExpiresIn <= 0 {
			t.Fatalf("device answer %s", r.body)
		}
		secrets = append(secrets, da.State)
	}
	poll := func(state string) resp {
		t.Helper()
		return h.do("POST", "/v1/auth/oidc/device/poll", "", map[string]string{"state": state})
	}
	device()
	if err := op.ApproveDevice(da.VerificationURI, da.UserCode, "bob", "bob-password"); err != nil {
		t.Fatal(err)
	}
	session(poll(da.State), "auth.oidc.device-poll", "bob", []string{}, false, "")
	// The same state again: the provider still honours the device code
	// (until it expires), but a device state opens one session.
	h.wantError(poll(da.State), 401, "invalid user name, password or code")

	// carol approves while the poll is under way (the server, if it asks
	// the provider before she is done, waits and asks again at the
	// interval). Device logins carry no "amr" at this provider: no second
	// factor.
	device()
	type pollResult struct {
		r   resp
		err error
	}
	polled := make(chan pollResult, 1)
	pollURL, body := h.srv.Addr()+"/v1/auth/oidc/device/poll", map[string]string{"state": da.State}
	go func() {
		r, err := postJSON(h.http, pollURL, 60*time.Second, body)
		polled <- pollResult{r, err}
	}()
	if err := op.ApproveDevice(da.VerificationURIComplete, da.UserCode, "carol", "carol-password"); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-polled:
		if res.err != nil {
			t.Fatal(res.err)
		}
		session(res.r, "auth.oidc.device-poll", "carol", []string{"ops"}, false, "")
	case <-time.After(90 * time.Second):
		t.Fatal("the poll did not answer")
	}

	// A device login the user denies.
	device()
	if err := op.DenyDevice(da.VerificationURI, da.UserCode, "bob", "bob-password"); err != nil {
		t.Fatal(err)
	}
	h.wantError(poll(da.State), 401, "the user denied the device login")

	// A local user of the same name. While enabled, the login works and
	// its groups are the provider's, not the local record's.
	h.want(h.do("POST", "/v1/users", root, map[string]any{"name": "alice", "groups": []string{"admins"}, "password": alicePassword}), 200)
	state, code = authURL("alice", aliceNonce)
	session(callback(state, code, aliceNonce), "auth.oidc.callback", "alice", []string{"ops", "dev"}, false, "")
	// Disabled, the user cannot log in through the provider, and the
	// sessions opened that way end.
	h.want(h.do("POST", "/v1/users/alice/disable", root, nil), 204)
	h.want(h.do("GET", "/v1/kv/data/prod/db", alice, nil), 401)
	state, code = authURL("alice", aliceNonce)
	h.wantError(callback(state, code, aliceNonce), 401, "invalid user name, password or code")
	h.want(h.do("GET", "/v1/kv/data/prod/db", carol, nil), 200) // other users' sessions go on

	// Every session is in the audit log, with its accessor; no record
	// holds a code, the client secret, a token, a login's state or its
	// client nonce.
	es := h.entriesSince(0)
	for _, e := range es {
		b, _ := json.Marshal(e)
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Fatalf("audit record holds a secret: %s", b)
			}
		}
	}
	for _, s := range sessions {
		found := false
		for _, e := range es {
			if e.Accessor == s.accessor && e.Action == s.action {
				// The provider's issuer and subject (its user name here).
				note := "oidc iss=" + strconv.Quote(op.Issuer) + ` sub="` + s.user + `"`
				if found || e.Principal != `User::"`+s.user+`"` || e.AuthMethod != "oidc" || e.Outcome != 200 || e.Note != note {
					t.Fatalf("session of %s: audit record %+v", s.user, e)
				}
				found = true
			}
		}
		if !found {
			t.Fatalf("no %s audit record of the session of %s (accessor %s)", s.action, s.user, s.accessor)
		}
	}
}

// TestOIDCDeviceBounds: a device login's start, which makes the server ask
// the provider for a code, takes one from the caller address's failure
// budget (shared with failed logins), so an address starts a bounded
// number; a poll answered 412 authorization_pending is no failure, however
// many a patient client sends; and one device login has one poll waiting
// at a time.
func TestOIDCDeviceBounds(t *testing.T) {
	op := oidctest.Start(t, oidcRedirectURI)
	h := start(t, t.TempDir(), func(c *server.Config) { c.OIDCDevicePollWait = 300 * time.Millisecond })
	_, root := h.initUnseal(1, 1)
	h.want(h.do("PUT", "/v1/auth/oidc/config", root, map[string]any{
		"issuer": op.Issuer, "client_id": op.ClientID, "client_secret": op.ClientSecret,
		"redirect_uris": []string{"http://127.0.0.1/oidc/callback"}, "user_claim": "preferred_username", "ca_pem": op.CAPEM,
	}), 204)
	deviceStart := func() resp { return h.do("POST", "/v1/auth/oidc/device", "", map[string]any{}) }
	poll := func(state string) resp {
		return h.do("POST", "/v1/auth/oidc/device/poll", "", map[string]string{"state": state})
	}
	state, _ := h.want(deviceStart(), 200).json(t)["state"].(string)

	// More pending polls than the failure budget holds (the server's clock
	// stands still, so it does not refill): each is 412, none is 429.
	for i := range api.DefaultAuthFailureBurst + 2 {
		if r := poll(state); r.status != 412 || !strings.Contains(r.errorText(t), "authorization_pending") {
			t.Fatalf("poll %d: %d %s", i, r.status, r.body)
		}
	}
	m := string(h.want(h.do("GET", "/metrics", root, nil), 200).body)
	if strings.Contains(m, `warden_http_auth_failures_total{reason="auth.oidc.device-poll"}`) {
		t.Fatalf("pending polls counted as failures:\n%s", grepLines(m, "warden_http_auth"))
	}

	// Two polls of one device login at once: one waits, the other is refused.
	for try := 0; ; try++ {
		codes := make(chan int, 2)
		for range 2 {
			go func() {
				r, err := postJSON(h.http, h.srv.Addr()+"/v1/auth/oidc/device/poll", 30*time.Second, map[string]string{"state": state})
				if err != nil {
					codes <- 0
					return
				}
				codes <- r.status
			}()
		}
		a, b := <-codes, <-codes
		if a > b {
			a, b = b, a
		}
		if a == 412 && b == 429 {
			break
		}
		if a != 412 || b != 412 || try == 10 {
			t.Fatalf("two polls at once answered %d and %d", a, b)
		}
		// They did not overlap: again.
	}

	// Starts spend the budget (less the refused poll); then 429 with
	// Retry-After, and a login from the address is throttled too.
	started := 1
	for {
		r := deviceStart()
		if r.status == 429 {
			if r.header.Get("Retry-After") != "1" || !strings.Contains(r.errorText(t), "too many device logins started") {
				t.Fatalf("throttled start: %v %s", r.header, r.body)
			}
			break
		}
		h.want(r, 200)
		if started++; started > api.DefaultAuthFailureBurst {
			t.Fatalf("%d device logins started from one address with no time passing", started)
		}
	}
	if started < api.DefaultAuthFailureBurst-2 {
		t.Fatalf("only %d device logins started before the throttle", started)
	}
	h.want(h.login("nobody", "wrong-password-123", ""), 429)
	h.clk.Add(time.Second) // 5 a second
	h.want(deviceStart(), 200)
}
