// Package oidcauth is Warden's OpenID Connect login: Warden is the
// confidential OAuth client of one provider (OpenID Connect Core 1.0,
// authorization code flow with PKCE S256, RFC 7636; device authorization
// grant, RFC 8628) and turns a verified ID token into an Identity.
//
// It keeps no server-side state: a login's secrets (PKCE verifier, nonce,
// device code) are sealed into the opaque state handed to the client, so any
// Warden server can finish a login another one began. The code verifier and
// the client secret never leave the server; the CLI and console see only
// the state.
//
// It does not mint Warden tokens, keep sessions, or store its configuration:
// callers do that with the Identity. It never returns or logs a client
// secret, code, verifier, nonce or token; errors are errs codes with short
// messages that name what was refused, not what was presented.
package oidcauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/warden-sec/warden/internal/errs"
)

const (
	// stateTTL is how long a code-flow login may take.
	stateTTL = 10 * time.Minute
	// maxCode bounds authorization codes.
	maxCode = 4096
	// minClientNonce and maxClientNonce bound the client's nonce.
	minClientNonce = 16
	maxClientNonce = 512
	// maxBody bounds every response from the provider.
	maxBody = 1 << 20
	// httpTimeout bounds one exchange with the provider.
	httpTimeout = 30 * time.Second
)

// Provider is one configured OpenID provider, discovered. It is immutable
// and safe for concurrent use.
type Provider struct {
	cfg      Config // normalized
	now      func() time.Time
	client   *http.Client
	op       *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    oauth2.Config // without RedirectURL: each login names its own
	sealer   *stateSealer
	binding  []byte
}

// discovery is what Provider reads from the discovery document beyond what
// go-oidc exposes.
type discovery struct {
	AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
	PKCEMethods []string `json:"code_challenge_methods_supported"`
	AuthURL     string   `json:"authorization_endpoint"`
	TokenURL    string   `json:"token_endpoint"`
	DeviceURL   string   `json:"device_authorization_endpoint"`
	UserInfoURL string   `json:"userinfo_endpoint"`
	JWKSURL     string   `json:"jwks_uri"`
}

// NewProvider validates c and runs discovery against c.Issuer. stateKey (32
// bytes) seals login states; every server of a cluster must use the same one.
// now is the clock for state and ID token expiry (nil: time.Now).
//
// Errors: errs.Invalid for a bad configuration or a provider that does not
// fit it (its discovery document names another issuer, an endpoint is not
// https, no PKCE S256); errs.Unavailable when discovery fails.
func NewProvider(ctx context.Context, c Config, stateKey []byte, now func() time.Time) (*Provider, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	sealer, err := newStateSealer(stateKey)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	n := c.normalized()
	client, err := newHTTPClient(n.CAPEM)
	if err != nil {
		return nil, err
	}
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, client), n.Issuer)
	if err != nil {
		var mismatch *oidc.IssuerMismatchError
		if errors.As(err, &mismatch) {
			return nil, errs.Wrap(errs.Invalid, err, "issuer: the provider's discovery document names another issuer")
		}
		return nil, errs.Wrap(errs.Unavailable, err, "issuer: discovery failed")
	}
	var d discovery
	if err := op.Claims(&d); err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "issuer: the discovery document does not parse")
	}
	for _, e := range []struct{ name, url string }{
		{"authorization_endpoint", d.AuthURL}, {"token_endpoint", d.TokenURL}, {"jwks_uri", d.JWKSURL},
		{"device_authorization_endpoint", d.DeviceURL}, {"userinfo_endpoint", d.UserInfoURL},
	} {
		if (e.url != "" || e.name == "token_endpoint" || e.name == "jwks_uri") && !isHTTPS(e.url) {
			return nil, errs.E(errs.Invalid, "issuer: the provider's %s is not an https URL", e.name)
		}
	}
	if len(d.PKCEMethods) > 0 && !slices.Contains(d.PKCEMethods, "S256") {
		return nil, errs.E(errs.Invalid, "issuer: the provider does not support PKCE with S256")
	}
	ep := op.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader // client_secret_basic, the default (RFC 8414)
	if n.ClientSecret == "" ||
		len(d.AuthMethods) > 0 && !slices.Contains(d.AuthMethods, "client_secret_basic") && slices.Contains(d.AuthMethods, "client_secret_post") {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return &Provider{
		cfg:    n,
		now:    now,
		client: client,
		op:     op,
		verifier: op.Verifier(&oidc.Config{
			ClientID: n.ClientID,
			Now:      now,
		}),
		oauth: oauth2.Config{
			ClientID:     n.ClientID,
			ClientSecret: n.ClientSecret,
			Endpoint:     ep,
			Scopes:       n.Scopes,
		},
		sealer:  sealer,
		binding: providerBinding(n.Issuer, n.ClientID),
	}, nil
}

func isHTTPS(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.User == nil
}

// newHTTPClient returns the client for every exchange with the provider:
// system roots plus caPEM, TLS 1.2 or later, timeouts, no redirects, and
// responses bounded to maxBody bytes.
func newHTTPClient(caPEM string) (*http.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if caPEM != "" {
		certs, err := parseCAPEM(caPEM)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			roots.AddCert(c)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.ResponseHeaderTimeout = 20 * time.Second
	tr.MaxResponseHeaderBytes = 64 << 10
	return &http.Client{
		Transport: limitTransport{base: tr, max: maxBody},
		Timeout:   httpTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, nil
}

// limitTransport bounds response bodies: reading past max fails.
type limitTransport struct {
	base http.RoundTripper
	max  int64
}

// RoundTrip wraps the response body in a limitedBody.
func (t limitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

// Read fails with errTooLarge once more than the limit has been read.
func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, errTooLarge
	}
	return n, err
}

// Close closes the underlying body.
func (b *limitedBody) Close() error { return b.rc.Close() }

var errTooLarge = errors.New("oidcauth: provider response larger than 1 MiB")

// AuthURL begins a code-flow login that will come back to redirectURI. It
// returns the provider URL to send the user to and the state to keep (it is
// also the URL's state parameter). clientNonce is the client's own secret
// (16 to 512 printable ASCII characters, e.g. 32 random bytes in base64url)
// that Exchange requires again, binding the callback to the client that
// began the login.
//
// The state seals a fresh PKCE S256 verifier, the ID token nonce, the
// redirect URI and a hash of clientNonce; it expires after 10 minutes.
// Errors: errs.Invalid "redirect_uri: not allowed" unless the Config allows
// redirectURI; errs.Invalid for a bad clientNonce.
func (p *Provider) AuthURL(redirectURI, clientNonce string) (string, string, error) {
	if !p.cfg.redirectAllowed(redirectURI) {
		return "", "", errs.E(errs.Invalid, "redirect_uri: not allowed")
	}
	if err := checkClientNonce(clientNonce); err != nil {
		return "", "", err
	}
	verifier := oauth2.GenerateVerifier()
	nonce, err := randomText()
	if err != nil {
		return "", "", err
	}
	h := sha256.Sum256([]byte(clientNonce))
	state, err := p.sealer.seal(&sealedState{
		Kind:        kindCode,
		Provider:    p.binding,
		Expiry:      p.now().Add(stateTTL).Unix(),
		Verifier:    verifier,
		Nonce:       nonce,
		Redirect:    redirectURI,
		ClientNonce: h[:],
	})
	if err != nil {
		return "", "", err
	}
	cfg := p.oauth
	cfg.RedirectURL = redirectURI
	return cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), state, nil
}

func checkClientNonce(s string) error {
	if len(s) < minClientNonce || len(s) > maxClientNonce || !printable(s) {
		return errs.E(errs.Invalid, "client_nonce: must be %d to %d printable ASCII characters", minClientNonce, maxClientNonce)
	}
	return nil
}

// randomText returns 256 random bits in base64url.
func randomText() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Exchange finishes a code-flow login: it opens state (refusing it if
// tampered with, expired, made for another provider configuration or
// another clientNonce), redeems code at the token endpoint with the sealed
// PKCE verifier and redirect URI, verifies the ID token (signature, issuer,
// audience and authorized party, expiry, nonce, at_hash) and maps its
// claims, completed from the userinfo endpoint when the ID token lacks a
// claim the Config needs.
//
// Errors: errs.Invalid for a missing or malformed argument;
// errs.Unauthenticated for every refusal; errs.Unavailable when the
// provider cannot be reached.
func (p *Provider) Exchange(ctx context.Context, state, code, clientNonce string) (Identity, error) {
	if err := checkCode(code); err != nil {
		return Identity{}, err
	}
	st, err := p.openState(state, kindCode)
	if err != nil {
		return Identity{}, err
	}
	h := sha256.Sum256([]byte(clientNonce))
	if subtle.ConstantTimeCompare(h[:], st.ClientNonce) != 1 {
		return Identity{}, errs.E(errs.Unauthenticated, "client_nonce: does not match the login")
	}
	if !p.cfg.redirectAllowed(st.Redirect) {
		return Identity{}, errs.E(errs.Unauthenticated, "redirect_uri: no longer allowed")
	}
	ctx = oidc.ClientContext(ctx, p.client)
	cfg := p.oauth
	cfg.RedirectURL = st.Redirect
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return Identity{}, tokenEndpointError(err, "the provider refused the code")
	}
	rawID, _ := tok.Extra("id_token").(string)
	return p.identity(ctx, rawID, tok.AccessToken, st.Nonce, true)
}

func checkCode(code string) error {
	if code == "" {
		return errs.E(errs.Invalid, "code: required")
	}
	if len(code) > maxCode || !token(code) {
		return errs.E(errs.Invalid, "code: must be at most %d printable ASCII characters", maxCode)
	}
	return nil
}

// openState opens a state of the given kind made by this provider
// configuration and not yet expired.
func (p *Provider) openState(text, kind string) (*sealedState, error) {
	st, err := p.sealer.open(text, kind)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(st.Provider, p.binding) {
		return nil, errs.E(errs.Unauthenticated, "state: made for another provider configuration")
	}
	if !p.now().Before(time.Unix(st.Expiry, 0)) {
		return nil, errs.E(errs.Unauthenticated, "state: expired")
	}
	return st, nil
}

// tokenEndpointError maps a token endpoint failure without echoing the
// provider's text: only a well-formed RFC 6749 error code is shown.
func tokenEndpointError(err error, refused string) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return errs.Wrap(errs.Unavailable, err, "oidc: the provider's token endpoint failed or cannot be reached")
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	cause := fmt.Errorf("token endpoint: HTTP %d, error %q", status, safeErrorCode(re.ErrorCode))
	if status >= 500 {
		return errs.Wrap(errs.Unavailable, cause, "oidc: the provider's token endpoint failed (HTTP %d)", status)
	}
	if c := safeErrorCode(re.ErrorCode); c != "" {
		return errs.Wrap(errs.Unauthenticated, cause, "oidc: %s (%s)", refused, c)
	}
	return errs.Wrap(errs.Unauthenticated, cause, "oidc: %s", refused)
}

// safeErrorCode returns an OAuth error code if it is short and of the
// characters the registered codes use, else "".
func safeErrorCode(s string) string {
	if s == "" || len(s) > 64 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return ""
		}
	}
	return s
}

// identity verifies the ID token and maps its claims. With checkNonce, the
// token's nonce must be nonce.
func (p *Provider) identity(ctx context.Context, rawID, accessToken, nonce string, checkNonce bool) (Identity, error) {
	if rawID == "" {
		return Identity{}, errs.E(errs.Unauthenticated, "oidc: the provider sent no ID token")
	}
	idt, claims, err := p.verifyIDToken(ctx, rawID, nonce, checkNonce)
	if err != nil {
		return Identity{}, err
	}
	if idt.AccessTokenHash != "" && accessToken != "" {
		if err := idt.VerifyAccessToken(accessToken); err != nil {
			return Identity{}, errs.Wrap(errs.Unauthenticated, err, "oidc: ID token refused: at_hash does not match the access token")
		}
	}
	if err := p.completeClaims(ctx, idt.Subject, accessToken, claims); err != nil {
		return Identity{}, err
	}
	id, err := mapClaims(&p.cfg, claims)
	if err != nil {
		return Identity{}, err
	}
	id.Subject, id.Issuer = idt.Subject, idt.Issuer
	return id, nil
}

// verifyIDToken checks signature, issuer, audience, expiry (go-oidc, with
// the injected clock), authorized party and, with checkNonce, the nonce.
func (p *Provider) verifyIDToken(ctx context.Context, rawID, nonce string, checkNonce bool) (*oidc.IDToken, map[string]any, error) {
	idt, err := p.verifier.Verify(ctx, rawID)
	if err != nil {
		return nil, nil, verifyError(err)
	}
	if idt.Subject == "" || len(idt.Subject) > 255 {
		return nil, nil, errs.E(errs.Unauthenticated, "oidc: ID token refused: no valid subject")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, nil, errs.Wrap(errs.Unauthenticated, err, "oidc: ID token refused: claims do not parse")
	}
	// OpenID Connect Core 3.1.3.7: with several audiences, azp names the
	// client; when present it must be this client.
	azp, hasAZP := claims["azp"]
	if (len(idt.Audience) > 1 || hasAZP) && azp != p.cfg.ClientID {
		return nil, nil, errs.E(errs.Unauthenticated, "oidc: ID token refused: issued for another client (azp)")
	}
	if checkNonce {
		if idt.Nonce == "" {
			return nil, nil, errs.E(errs.Unauthenticated, "oidc: ID token refused: no nonce")
		}
		if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
			return nil, nil, errs.E(errs.Unauthenticated, "oidc: ID token refused: nonce does not match the login")
		}
	}
	return idt, claims, nil
}

// verifyError names the reason go-oidc refused a token. go-oidc types only
// expiry; the other reasons are recognized by their (stable) text.
func verifyError(err error) error {
	var exp *oidc.TokenExpiredError
	msg := err.Error()
	reason := "invalid"
	switch {
	case errors.As(err, &exp):
		reason = "expired"
	case strings.Contains(msg, "fetching keys"), strings.Contains(msg, "get keys failed"):
		return errs.Wrap(errs.Unavailable, err, "oidc: the provider's signing keys cannot be fetched")
	case strings.Contains(msg, "different provider"):
		reason = "issued by another issuer"
	case strings.Contains(msg, "expected audience"):
		reason = "issued for another client"
	case strings.Contains(msg, "not before"):
		reason = "not yet valid"
	case strings.Contains(msg, "malformed"):
		reason = "malformed" // also an algorithm the provider does not list, "none" included
	case strings.Contains(msg, "signature"), strings.Contains(msg, "not signed"):
		reason = "bad signature"
	}
	return errs.Wrap(errs.Unauthenticated, err, "oidc: ID token refused: %s", reason)
}

// completeClaims fetches the userinfo endpoint when the ID token lacks a
// claim the Config needs (providers may put profile and email claims only
// there when they issue an access token: OpenID Connect Core 5.4), and adds
// those claims, never replacing an ID token claim. The userinfo subject must
// be the ID token's (Core 5.3.2).
func (p *Provider) completeClaims(ctx context.Context, subject, accessToken string, claims map[string]any) error {
	need := []string{p.cfg.UserClaim}
	if p.cfg.GroupsClaim != "" {
		need = append(need, p.cfg.GroupsClaim)
	}
	if len(p.cfg.AllowedDomains) > 0 || p.cfg.UserClaim == "email" {
		need = append(need, "email", "email_verified")
	}
	missing := slices.ContainsFunc(need, func(k string) bool { _, ok := claims[k]; return !ok })
	if !missing || accessToken == "" || p.op.UserInfoEndpoint() == "" {
		return nil
	}
	ui, err := p.op.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: accessToken, TokenType: "Bearer"}))
	if err != nil {
		return errs.Wrap(errs.Unavailable, err, "oidc: the provider's userinfo endpoint failed")
	}
	if ui.Subject != subject {
		return errs.E(errs.Unauthenticated, "oidc: userinfo refused: for another subject")
	}
	var extra map[string]any
	if err := ui.Claims(&extra); err != nil {
		return errs.Wrap(errs.Unauthenticated, err, "oidc: userinfo refused: claims do not parse")
	}
	for _, k := range need {
		if _, ok := claims[k]; !ok {
			if v, ok := extra[k]; ok {
				claims[k] = v
			}
		}
	}
	return nil
}
