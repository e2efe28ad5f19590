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

	"github.com/warden-sec/warden/internal/oidcauth/oidctest"
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
