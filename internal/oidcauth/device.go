package oidcauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/warden-sec/warden/internal/errs"
)

const (
	// deviceGrant is the RFC 8628 grant type.
	deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"
	// defaultInterval is RFC 8628's poll interval when the provider gives none.
	defaultInterval = 5
	// maxInterval bounds the poll interval a provider may ask for.
	maxInterval = 60
	// defaultDeviceTTL applies when the provider gives no expires_in;
	// maxDeviceTTL bounds the one it gives.
	defaultDeviceTTL = 5 * time.Minute
	maxDeviceTTL     = 30 * time.Minute
)

// ErrAuthorizationPending is DevicePoll's answer while the user has not yet
// approved the login on the provider's page (RFC 8628 authorization_pending):
// not a failure; poll again after the interval. When the provider asks to
// slow down, DevicePoll returns a *SlowDownError instead, which wraps it, so
// errors.Is(err, ErrAuthorizationPending) holds for both.
var ErrAuthorizationPending = errors.New("oidc: authorization pending: the user has not approved the login yet")

// SlowDownError is DevicePoll's answer when the provider asked the client
// to poll less often (RFC 8628 slow_down). It wraps ErrAuthorizationPending.
type SlowDownError struct {
	// Interval is the poll interval, in seconds, to use from now on: the
	// login's interval plus 5 (RFC 8628 section 3.5).
	Interval int
}

// Error says the login is pending and gives the new interval.
func (e *SlowDownError) Error() string {
	return fmt.Sprintf("%s; slow down: poll every %d s", ErrAuthorizationPending.Error(), e.Interval)
}

// Unwrap returns ErrAuthorizationPending.
func (e *SlowDownError) Unwrap() error { return ErrAuthorizationPending }

// DeviceAuth is a started device login: what to show the user, and the
// state to poll with.
type DeviceAuth struct {
	// UserCode is what the user types on the provider's page.
	UserCode string `json:"user_code"`
	// VerificationURI is the provider's page (https).
	VerificationURI string `json:"verification_uri"`
	// VerificationURIComplete is the page with the code filled in, if the
	// provider offers one.
	VerificationURIComplete string `json:"verification_uri_complete,omitempty"`
	// ExpiresIn is the login's lifetime in seconds.
	ExpiresIn int `json:"expires_in"`
	// Interval is the minimum number of seconds between polls.
	Interval int `json:"interval"`
	// State seals the device code; pass it to DevicePoll. It expires with
	// the login.
	State string `json:"state"`
}

// DeviceStart begins a device login (RFC 8628 device authorization
// request). Errors: errs.Precondition when the provider has no device
// authorization endpoint or refuses this client the grant;
// errs.Unavailable when it cannot be reached.
func (p *Provider) DeviceStart(ctx context.Context) (DeviceAuth, error) {
	if p.oauth.Endpoint.DeviceAuthURL == "" {
		return DeviceAuth{}, errs.E(errs.Precondition, "oidc: the provider offers no device authorization endpoint")
	}
	da, err := p.oauth.DeviceAuth(oidc.ClientContext(ctx, p.client))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			msg := "oidc: the provider refused to start a device login"
			if c := safeErrorCode(re.ErrorCode); c != "" {
				msg += " (" + c + ")"
			}
			return DeviceAuth{}, errs.Wrap(errs.Precondition, fmt.Errorf("device authorization: HTTP %d", re.Response.StatusCode), "%s", msg)
		}
		if errors.As(err, &re) && re.Response != nil {
			err = fmt.Errorf("device authorization: HTTP %d", re.Response.StatusCode)
		}
		return DeviceAuth{}, errs.Wrap(errs.Unavailable, err, "oidc: the provider's device authorization endpoint failed")
	}
	if da.DeviceCode == "" || len(da.DeviceCode) > maxCode || !token(da.DeviceCode) ||
		da.UserCode == "" || len(da.UserCode) > 64 || !printable(da.UserCode) ||
		!isHTTPS(da.VerificationURI) || len(da.VerificationURI) > maxURL ||
		da.VerificationURIComplete != "" && (!isHTTPS(da.VerificationURIComplete) || len(da.VerificationURIComplete) > maxURL) {
		return DeviceAuth{}, errs.E(errs.Unavailable, "oidc: the provider's device authorization answer is malformed")
	}
	// oauth2 turned expires_in into a time on the system clock: take the
	// remaining duration from that clock, and the expiry from ours.
	ttl := defaultDeviceTTL
	if !da.Expiry.IsZero() {
		ttl = time.Until(da.Expiry).Round(time.Second)
	}
	if ttl <= 0 {
		return DeviceAuth{}, errs.E(errs.Unavailable, "oidc: the provider's device authorization answer is malformed")
	}
	ttl = min(ttl, maxDeviceTTL)
	interval := int(da.Interval)
	if da.Interval <= 0 {
		interval = defaultInterval
	}
	interval = min(interval, maxInterval)
	state, err := p.sealer.seal(&sealedState{
		Kind:       kindDevice,
		Provider:   p.binding,
		Expiry:     p.now().Add(ttl).Unix(),
		DeviceCode: da.DeviceCode,
		Interval:   interval,
	})
	if err != nil {
		return DeviceAuth{}, err
	}
	return DeviceAuth{
		UserCode:                da.UserCode,
		VerificationURI:         da.VerificationURI,
		VerificationURIComplete: da.VerificationURIComplete,
		ExpiresIn:               int(ttl / time.Second),
		Interval:                interval,
		State:                   state,
	}, nil
}

// tokenResponse is a token endpoint answer, success or error (RFC 6749
// sections 5.1 and 5.2).
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	IDToken     string `json:"id_token"`
	Error       string `json:"error"`
}

// DevicePoll asks the token endpoint once whether the device login of state
// is approved. It returns the Identity once it is (the ID token verified as
// in Exchange, without a nonce: the device grant has none),
// ErrAuthorizationPending while it is not, or a *SlowDownError (which wraps
// ErrAuthorizationPending) when the provider asks to poll less often.
// Callers must wait DeviceAuth.Interval seconds between polls.
//
// Errors: errs.Unauthenticated when the state is bad or expired, the user
// denied the login, or the provider refused it; errs.Unavailable when the
// provider cannot be reached.
func (p *Provider) DevicePoll(ctx context.Context, state string) (Identity, error) {
	st, err := p.openState(state, kindDevice)
	if err != nil {
		return Identity{}, err
	}
	form := url.Values{
		"grant_type":  {deviceGrant},
		"device_code": {st.DeviceCode},
		"client_id":   {p.oauth.ClientID},
	}
	basic := p.oauth.Endpoint.AuthStyle == oauth2.AuthStyleInHeader && p.oauth.ClientSecret != ""
	if !basic && p.oauth.ClientSecret != "" {
		form.Set("client_secret", p.oauth.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.oauth.Endpoint.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return Identity{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic {
		// RFC 6749 section 2.3.1: form-encode, then Basic.
		req.SetBasicAuth(url.QueryEscape(p.oauth.ClientID), url.QueryEscape(p.oauth.ClientSecret))
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return Identity{}, errs.Wrap(errs.Unavailable, err, "oidc: the provider's token endpoint cannot be reached")
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Identity{}, errs.Wrap(errs.Unavailable, err, "oidc: the provider's token answer cannot be read")
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		if resp.StatusCode >= 500 {
			return Identity{}, errs.E(errs.Unavailable, "oidc: the provider's token endpoint failed (HTTP %d)", resp.StatusCode)
		}
		return Identity{}, errs.E(errs.Unauthenticated, "oidc: the provider's token answer does not parse (HTTP %d)", resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK || tr.Error != "" {
		switch tr.Error {
		case "authorization_pending":
			return Identity{}, ErrAuthorizationPending
		case "slow_down":
			return Identity{}, &SlowDownError{Interval: st.Interval + 5}
		case "access_denied":
			return Identity{}, errs.E(errs.Unauthenticated, "oidc: the user denied the device login")
		case "expired_token":
			return Identity{}, errs.E(errs.Unauthenticated, "oidc: the device login has expired")
		}
		if resp.StatusCode >= 500 {
			return Identity{}, errs.E(errs.Unavailable, "oidc: the provider's token endpoint failed (HTTP %d)", resp.StatusCode)
		}
		if c := safeErrorCode(tr.Error); c != "" {
			return Identity{}, errs.E(errs.Unauthenticated, "oidc: the provider refused the device login (%s)", c)
		}
		return Identity{}, errs.E(errs.Unauthenticated, "oidc: the provider refused the device login (HTTP %d)", resp.StatusCode)
	}
	if tr.AccessToken == "" {
		return Identity{}, errs.E(errs.Unauthenticated, "oidc: the provider's token answer has no access token")
	}
	return p.identity(oidc.ClientContext(ctx, p.client), tr.IDToken, tr.AccessToken, "", false)
}
