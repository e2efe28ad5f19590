package oidcauth

import (
	"bytes"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/warden-sec/warden/internal/errs"
)

// wantErr fails unless err has code and its message contains msg.
func wantErr(t *testing.T, err error, code errs.Code, msg string) {
	t.Helper()
	if err == nil || errs.CodeOf(err) != code || !strings.Contains(err.Error(), msg) {
		t.Fatalf("got %v (%s), want %s containing %q", err, errs.CodeOf(err), code, msg)
	}
}

// noSecrets fails if err's message shows any of the secrets.
func noSecrets(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error shows a secret: %v", err)
		}
	}
}

// TestCodeFlow: authorization code flow with PKCE against the real
// provider, end to end.
func TestCodeFlow(t *testing.T) {
	e := startOP(t)
	p := e.provider(t, e.config(), nil)

	t.Run("alice", func(t *testing.T) {
		authURL, state, err := p.AuthURL(e.redirectURI, testClientNonce)
		if err != nil {
			t.Fatal(err)
		}
		gotState, code, err := ParseCallback(e.login(t, authURL, "alice", "alice-password"))
		if err != nil {
			t.Fatal(err)
		}
		if gotState != state {
			t.Fatal("the callback's state is not the login's")
		}
		id, err := p.Exchange(t.Context(), gotState, code, testClientNonce)
		if err != nil {
			t.Fatal(err)
		}
		// The email comes from userinfo: the example provider leaves
		// profile and email claims out of ID tokens issued with an access
		// token. The groups come in the ID token.
		want := Identity{User: "alice@example.com", Groups: []string{"ops", "dev"}, Subject: "alice", Issuer: e.Issuer}
		if id.User != want.User || !slices.Equal(id.Groups, want.Groups) || id.MFA || id.MFAMethod != "" || id.Subject != want.Subject || id.Issuer != want.Issuer {
			t.Fatalf("got %+v, want %+v", id, want)
		}

		// The code is spent.
		_, err = p.Exchange(t.Context(), gotState, code, testClientNonce)
		wantErr(t, err, errs.Unauthenticated, "oidc: the provider refused the code (invalid_grant)")
		noSecrets(t, err, code, e.ClientSecret)
	})

	t.Run("mfa", func(t *testing.T) {
		authURL, state, err := p.AuthURL(e.redirectURI, testClientNonce)
		if err != nil {
			t.Fatal(err)
		}
		_, code, err := ParseCallback(e.login(t, authURL, "carol", "carol-password"))
		if err != nil {
			t.Fatal(err)
		}
		id, err := p.Exchange(t.Context(), state, code, testClientNonce)
		if err != nil {
			t.Fatal(err)
		}
		if id.User != "carol@example.com" || !id.MFA || id.MFAMethod != "totp" || !slices.Equal(id.Groups, []string{"ops"}) {
			t.Fatalf("got %+v", id)
		}
	})

	t.Run("email not verified", func(t *testing.T) {
		// The user claim is email (the default) and bob's address is not
		// verified: no login, though no domain is required. (Both claims
		// come from userinfo at this provider.)
		authURL, state, err := p.AuthURL(e.redirectURI, testClientNonce)
		if err != nil {
			t.Fatal(err)
		}
		_, code, err := ParseCallback(e.login(t, authURL, "bob", "bob-password"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Exchange(t.Context(), state, code, testClientNonce)
		wantErr(t, err, errs.Unauthenticated, "email_verified")
	})

	t.Run("user claim and allowed domains", func(t *testing.T) {
		c := e.config()
		c.UserClaim = "preferred_username"
		c.AllowedDomains = []string{"example.com"}
		p := e.provider(t, c, nil)
		authURL, state, err := p.AuthURL(e.redirectURI, testClientNonce)
		if err != nil {
			t.Fatal(err)
		}
		_, code, err := ParseCallback(e.login(t, authURL, "alice", "alice-password"))
		if err != nil {
			t.Fatal(err)
		}
		if id, err := p.Exchange(t.Context(), state, code, testClientNonce); err != nil || id.User != "alice" {
			t.Fatalf("got %+v, %v", id, err)
		}

		// bob's address is in another domain, and not verified.
		authURL, state, err = p.AuthURL(e.redirectURI, testClientNonce)
		if err != nil {
			t.Fatal(err)
		}
		_, code, err = ParseCallback(e.login(t, authURL, "bob", "bob-password"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Exchange(t.Context(), state, code, testClientNonce)
		wantErr(t, err, errs.Unauthenticated, "email_verified")
	})
}

// TestCodeFlowRefusals: what Exchange refuses, each against the real
// provider.
func TestCodeFlowRefusals(t *testing.T) {
	e := startOP(t)
	clock := &fakeClock{t: time.Now()}
	p := e.provider(t, e.config(), clock.Now)

	// begin logs alice in and returns the state and code, unspent.
	begin := func(t *testing.T, edit func(authURL string) string) (string, string) {
		t.Helper()
		authURL, state, err := p.AuthURL(e.redirectURI, testClientNonce)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			authURL = edit(authURL)
		}
		_, code, err := ParseCallback(e.login(t, authURL, "alice", "alice-password"))
		if err != nil {
			t.Fatal(err)
		}
		return state, code
	}

	t.Run("wrong client nonce", func(t *testing.T) {
		state, code := begin(t, nil)
		_, err := p.Exchange(t.Context(), state, code, "another-client-nonce-0000")
		wantErr(t, err, errs.Unauthenticated, "client_nonce: does not match the login")
		_, err = p.Exchange(t.Context(), state, code, "")
		wantErr(t, err, errs.Unauthenticated, "client_nonce: does not match the login")
		// Refused before the code was redeemed: the right client can still finish.
		if _, err := p.Exchange(t.Context(), state, code, testClientNonce); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("tampered state", func(t *testing.T) {
		state, code := begin(t, nil)
		raw, _ := base64.RawURLEncoding.DecodeString(state)
		raw[len(raw)/2] ^= 0x20
		_, err := p.Exchange(t.Context(), base64.RawURLEncoding.EncodeToString(raw), code, testClientNonce)
		wantErr(t, err, errs.Unauthenticated, "state: invalid")
		noSecrets(t, err, code)
	})

	t.Run("another login's state", func(t *testing.T) {
		// PKCE: the code is bound to its login's verifier; the provider
		// refuses it with another login's state.
		_, code := begin(t, nil)
		_, other, err := p.AuthURL(e.redirectURI, testClientNonce)
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Exchange(t.Context(), other, code, testClientNonce)
		wantErr(t, err, errs.Unauthenticated, "oidc: the provider refused the code (invalid_grant)")
	})

	t.Run("expired state", func(t *testing.T) {
		state, code := begin(t, nil)
		clock.Add(10 * time.Minute)
		defer clock.Add(-10 * time.Minute)
		_, err := p.Exchange(t.Context(), state, code, testClientNonce)
		wantErr(t, err, errs.Unauthenticated, "state: expired")
	})

	t.Run("missing nonce", func(t *testing.T) {
		// The authorization request goes without the nonce, so the
		// provider issues an ID token without one.
		state, code := begin(t, func(u string) string { return withParam(t, u, "nonce", "") })
		_, err := p.Exchange(t.Context(), state, code, testClientNonce)
		wantErr(t, err, errs.Unauthenticated, "oidc: ID token refused: no nonce")
	})

	t.Run("wrong nonce", func(t *testing.T) {
		state, code := begin(t, func(u string) string { return withParam(t, u, "nonce", "a-nonce-of-the-attackers-choice") })
		_, err := p.Exchange(t.Context(), state, code, testClientNonce)
		wantErr(t, err, errs.Unauthenticated, "oidc: ID token refused: nonce does not match the login")
	})

	t.Run("expired ID token", func(t *testing.T) {
		// The example provider's ID tokens live one hour. Begin the login
		// at +55 min (the state lives until +65 min) and finish it at +62
		// min: the state is fine, the ID token is not.
		start := clock.Now()
		defer clock.Set(start)
		clock.Set(start.Add(55 * time.Minute))
		state, code := begin(t, nil)
		clock.Set(start.Add(62 * time.Minute))
		_, err := p.Exchange(t.Context(), state, code, testClientNonce)
		wantErr(t, err, errs.Unauthenticated, "oidc: ID token refused: expired")
	})

	t.Run("wrong code", func(t *testing.T) {
		state, _ := begin(t, nil)
		_, err := p.Exchange(t.Context(), state, "not-the-code", testClientNonce)
		wantErr(t, err, errs.Unauthenticated, "oidc: the provider refused the code")
		_, err = p.Exchange(t.Context(), state, "", testClientNonce)
		wantErr(t, err, errs.Invalid, "code: required")
	})

	t.Run("wrong client secret", func(t *testing.T) {
		c := e.config()
		c.ClientSecret = "not-the-secret"
		bad := e.provider(t, c, clock.Now)
		authURL, state, err := bad.AuthURL(e.redirectURI, testClientNonce)
		if err != nil {
			t.Fatal(err)
		}
		_, code, err := ParseCallback(e.login(t, authURL, "alice", "alice-password"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.Exchange(t.Context(), state, code, testClientNonce)
		wantErr(t, err, errs.Unauthenticated, "oidc: the provider refused the code")
		noSecrets(t, err, "not-the-secret", code)
	})

	t.Run("redirect URI not allowed", func(t *testing.T) {
		for _, u := range []string{
			strings.Replace(e.redirectURI, "/callback", "/other", 1),
			"https://evil.example/callback",
			strings.Replace(e.redirectURI, "http://", "https://", 1),
			strings.Replace(e.redirectURI, "127.0.0.1", "localhost", 1),
		} {
			_, _, err := p.AuthURL(u, testClientNonce)
			wantErr(t, err, errs.Invalid, "redirect_uri: not allowed")
		}
	})

	t.Run("redirect URI no longer allowed", func(t *testing.T) {
		state, code := begin(t, nil)
		c := e.config()
		c.RedirectURIs = []string{"https://warden.example.com/callback"}
		narrowed := e.provider(t, c, clock.Now)
		_, err := narrowed.Exchange(t.Context(), state, code, testClientNonce)
		wantErr(t, err, errs.Unauthenticated, "redirect_uri: no longer allowed")
	})

	t.Run("provider error in the callback", func(t *testing.T) {
		// prompt=none: the provider may not show a login page, and
		// answers on the redirect URI with login_required.
		authURL, _, err := p.AuthURL(e.redirectURI, testClientNonce)
		if err != nil {
			t.Fatal(err)
		}
		q := e.redirect(t, withParam(t, authURL, "prompt", "none"))
		if !strings.Contains(q, "error=login_required") {
			t.Fatalf("callback %q", q)
		}
		_, _, err = ParseCallback(q)
		wantErr(t, err, errs.Unauthenticated, "oidc: the provider refused the login (login_required)")
	})

	t.Run("ID token for another client", func(t *testing.T) {
		// The provider's own ID token, issued to another client: log in
		// as that client would, then hand its ID token to Warden's
		// verification.
		other := oauth2.Config{ClientID: e.OtherClientID, ClientSecret: e.OtherClientSecret, RedirectURL: e.redirectURI,
			Endpoint: p.oauth.Endpoint, Scopes: []string{"openid"}}
		verifier := oauth2.GenerateVerifier()
		const nonce = "nonce-of-the-other-client"
		authURL := other.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
		_, code, err := ParseCallback(e.login(t, authURL, "alice", "alice-password"))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := other.Exchange(oidc.ClientContext(t.Context(), e.HTTPClient()), code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := tok.Extra("id_token").(string)
		if raw == "" {
			t.Fatal("no ID token for the other client")
		}
		_, err = p.identity(oidc.ClientContext(t.Context(), p.client), raw, tok.AccessToken, nonce, true)
		wantErr(t, err, errs.Unauthenticated, "oidc: ID token refused: issued for another client")
		noSecrets(t, err, raw, tok.AccessToken)
	})
}

// TestWrongIssuer: the configuration names an issuer that the provider's
// discovery document does not.
func TestWrongIssuer(t *testing.T) {
	e := startOP(t)
	c := e.config()
	c.Issuer = e.Issuer + "/" // same server, but not the issuer it names
	_, err := NewProvider(t.Context(), c, testStateKey, nil)
	wantErr(t, err, errs.Invalid, "issuer: the provider's discovery document names another issuer")

	c.Issuer = e.Issuer + "/tenant"
	_, err = NewProvider(t.Context(), c, testStateKey, nil)
	wantErr(t, err, errs.Unavailable, "issuer: discovery failed")

	c = e.config()
	c.CAPEM = "" // the provider's certificate is not trusted
	_, err = NewProvider(t.Context(), c, testStateKey, nil)
	wantErr(t, err, errs.Unavailable, "issuer: discovery failed")

	_, err = NewProvider(t.Context(), e.config(), testStateKey[:16], nil)
	wantErr(t, err, errs.Invalid, "state key: must be 32 bytes")
}

// TestDeviceFlow: device authorization grant against the real provider:
// the user enters the code on the provider's device page while Warden
// polls.
func TestDeviceFlow(t *testing.T) {
	e := startOP(t)
	clock := &fakeClock{t: time.Now()}
	p := e.provider(t, e.config(), clock.Now)

	da, err := p.DeviceStart(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if da.UserCode == "" || !strings.HasPrefix(da.VerificationURI, e.Issuer+"/device") ||
		!strings.Contains(da.VerificationURIComplete, "user_code=") || da.Interval != 5 || da.ExpiresIn < 290 || da.ExpiresIn > 300 {
		t.Fatalf("device auth %+v", da)
	}

	// Before the user approves, the provider answers authorization_pending.
	_, err = p.DevicePoll(t.Context(), da.State)
	if !errors.Is(err, ErrAuthorizationPending) {
		t.Fatalf("before approval: %v", err)
	}

	e.approveDevice(t, da, "alice", "allowed")

	// Poll as a client does, until the answer or a deadline; a pending
	// answer is not a failure. The provider asks for 5 s between polls; a
	// short ticker keeps the test quick (the example provider does not
	// enforce slow_down).
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var id Identity
	for {
		id, err = p.DevicePoll(t.Context(), da.State)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrAuthorizationPending) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("still pending at the deadline")
		}
		<-tick.C
	}
	if id.User != "alice@example.com" || !slices.Equal(id.Groups, []string{"ops", "dev"}) || id.Subject != "alice" || id.Issuer != e.Issuer || id.MFA {
		t.Fatalf("got %+v", id)
	}

	t.Run("denied", func(t *testing.T) {
		da, err := p.DeviceStart(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		e.approveDevice(t, da, "alice", "denied")
		_, err = p.DevicePoll(t.Context(), da.State)
		wantErr(t, err, errs.Unauthenticated, "oidc: the user denied the device login")
	})

	t.Run("states", func(t *testing.T) {
		da, err := p.DeviceStart(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		_, codeState, err := p.AuthURL(e.redirectURI, testClientNonce)
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.DevicePoll(t.Context(), codeState)
		wantErr(t, err, errs.Unauthenticated, "state: not a device login state")
		_, err = p.Exchange(t.Context(), da.State, "code", testClientNonce)
		wantErr(t, err, errs.Unauthenticated, "state: not a code login state")
		_, err = p.DevicePoll(t.Context(), da.State[:len(da.State)-2])
		wantErr(t, err, errs.Unauthenticated, "state: invalid")

		clock.Add(time.Duration(da.ExpiresIn) * time.Second)
		defer clock.Add(-time.Duration(da.ExpiresIn) * time.Second)
		_, err = p.DevicePoll(t.Context(), da.State)
		wantErr(t, err, errs.Unauthenticated, "state: expired")
	})

	t.Run("state never shows the device code", func(t *testing.T) {
		da, err := p.DeviceStart(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		st, err := p.openState(da.State, kindDevice)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.RawURLEncoding.DecodeString(da.State)
		if strings.Contains(da.State, st.DeviceCode) || bytes.Contains(raw, []byte(st.DeviceCode)) {
			t.Fatal("the device code is visible in the state")
		}
	})
}
