package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// UserView is a local user account as the API shows it: no password hash,
// TOTP secret, recovery code or passkey credential is ever part of it.
type UserView struct {
	Name              string        `json:"name"`
	Groups            []string      `json:"groups"`
	Disabled          bool          `json:"disabled"`
	HasPassword       bool          `json:"has_password"`
	MFA               []string      `json:"mfa"` // enrolled second factors: "totp", "webauthn"
	RecoveryCodesLeft int           `json:"recovery_codes_left"`
	Passkeys          []PasskeyView `json:"passkeys"`
	CreatedTime       string        `json:"created_time"` // RFC 3339
	UpdatedTime       string        `json:"updated_time"` // RFC 3339
	// Locked reports the answering node's login backoff for the user;
	// LockedUntil is when it ends (RFC 3339), "" (and left out of the
	// JSON, as the API does) when not locked.
	Locked      bool   `json:"locked"`
	LockedUntil string `json:"locked_until,omitempty"`
}

// PasskeyView names one registered passkey of a user.
type PasskeyView struct {
	Name     string `json:"name"`
	Created  string `json:"created"`             // RFC 3339
	LastUsed string `json:"last_used,omitempty"` // RFC 3339; "" (and left out of the JSON) if never used
}

// UserCreateRequest is the body of POST /v1/users. An empty Password
// creates an account without one (single sign-on or passkeys only).
type UserCreateRequest struct {
	Name     string   `json:"name"`
	Groups   []string `json:"groups"`
	Password string   `json:"password,omitempty"`
}

// TOTPEnrollment is a pending TOTP factor: the otpauth:// URI an
// authenticator app reads (it holds the secret) and the base32 secret
// itself. Both are secrets, shown once to the user enrolling.
type TOTPEnrollment struct {
	URI    string `json:"uri"`
	Secret string `json:"secret"`
}

// LoginRequest is the body of POST /v1/auth/login. TOTP is a 6-digit code
// or a recovery code; leave it empty on the first attempt.
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
	TOTP     string `json:"totp,omitempty"`
}

// AuthInfo says how a session was authenticated.
type AuthInfo struct {
	Method    string `json:"method"`     // "password", "oidc", "token" or "mtls"
	MFA       bool   `json:"mfa"`        // a second factor was presented
	MFAMethod string `json:"mfa_method"` // "totp", "webauthn" or ""
	Time      string `json:"time"`       // RFC 3339
}

// LoginResponse is the answer of a login (password or OIDC). Either Token
// is set (a new session), or MFARequired is true and Methods lists the
// second factors the server accepts: send the login again with a code.
// Token is a secret: store it, do not log it.
type LoginResponse struct {
	Token         string    `json:"token,omitempty"`
	Accessor      string    `json:"accessor,omitempty"`
	User          string    `json:"user,omitempty"`
	Groups        []string  `json:"groups,omitempty"`
	ExpireTime    string    `json:"expire_time,omitempty"`     // RFC 3339
	MaxExpireTime string    `json:"max_expire_time,omitempty"` // RFC 3339: renewals end here
	Auth          *AuthInfo `json:"auth,omitempty"`
	// Scope limits the session; "mfa-enroll": it may only enroll a second
	// factor for its own user.
	Scope       string   `json:"scope,omitempty"`
	MFARequired bool     `json:"mfa_required,omitempty"`
	Methods     []string `json:"methods,omitempty"`
}

// OIDCConfig is the OpenID Connect login configuration. ClientSecret is
// only ever sent (PUT); the server never returns it and says instead
// whether one is set (ClientSecretSet, read only).
type OIDCConfig struct {
	Issuer          string   `json:"issuer"`
	ClientID        string   `json:"client_id"`
	ClientSecret    string   `json:"client_secret,omitempty"`
	ClientSecretSet bool     `json:"client_secret_set,omitempty"`
	RedirectURIs    []string `json:"redirect_uris"`
	Scopes          []string `json:"scopes"`
	UserClaim       string   `json:"user_claim"`
	GroupsClaim     string   `json:"groups_claim"`
	AllowedDomains  []string `json:"allowed_domains"`
	MFAACRValues    []string `json:"mfa_acr_values"`
	CAPEM           string   `json:"ca_pem"` // extra CA certificates to reach the issuer
}

// DeviceAuth is a started OIDC device authorization: the user opens
// VerificationURI and enters UserCode (or opens VerificationURIComplete);
// meanwhile the client polls with State.
type DeviceAuth struct {
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"` // seconds
	Interval                int    `json:"interval"`   // seconds between polls the provider asks for
	State                   string `json:"state"`
}

// ErrAuthorizationPending is returned by OIDCDevicePoll while the user has
// not yet approved the device login: poll again (the server already waited
// before answering).
var ErrAuthorizationPending = errors.New("warden: authorization pending")

func userPath(name string, sub ...string) string {
	p := "/v1/users/" + url.PathEscape(name)
	for _, s := range sub {
		p += "/" + s
	}
	return p
}

// UserCreate creates a local user (users.write). An existing name is a 409
// APIError; a password the server's rules refuse, a 400.
func (c *Client) UserCreate(ctx context.Context, req UserCreateRequest) (UserView, error) {
	if req.Groups == nil {
		req.Groups = []string{}
	}
	var out UserView
	_, err := c.do(ctx, http.MethodPost, "/v1/users", req, &out)
	return out, err
}

// UserList returns one page of at most limit users (0: the server's
// default) with names after after, sorted, and the name to pass as after
// for the next page ("" after the last page).
func (c *Client) UserList(ctx context.Context, after string, limit int) ([]UserView, string, error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/users"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Users []UserView `json:"users"`
		Next  string     `json:"next"`
	}
	_, err := c.do(ctx, http.MethodGet, path, nil, &out)
	if out.Users == nil && err == nil {
		out.Users = []UserView{}
	}
	return out.Users, out.Next, err
}

// UserRead returns the user name; 404 APIError if there is none.
func (c *Client) UserRead(ctx context.Context, name string) (UserView, error) {
	var out UserView
	_, err := c.do(ctx, http.MethodGet, userPath(name), nil, &out)
	return out, err
}

// UserUpdate replaces the groups of user name; nil or empty groups leave
// it in none.
func (c *Client) UserUpdate(ctx context.Context, name string, groups []string) (UserView, error) {
	if groups == nil {
		groups = []string{}
	}
	var out UserView
	_, err := c.do(ctx, http.MethodPatch, userPath(name), struct {
		Groups []string `json:"groups"`
	}{groups}, &out)
	return out, err
}

// UserDelete deletes user name and revokes its tokens.
func (c *Client) UserDelete(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, userPath(name), nil, nil)
	return err
}

// UserDisable disables user name (no more logins) and revokes its tokens.
func (c *Client) UserDisable(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodPost, userPath(name, "disable"), nil, nil)
	return err
}

// UserEnable enables user name again.
func (c *Client) UserEnable(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodPost, userPath(name, "enable"), nil, nil)
	return err
}

// UserUnlock ends the login backoff of user name on every node.
func (c *Client) UserUnlock(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodPost, userPath(name, "unlock"), nil, nil)
	return err
}

// UserMFAReset removes every second factor and recovery code of user name
// (users.mfa.reset; may be held for approval under dual control).
func (c *Client) UserMFAReset(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodPost, userPath(name, "mfa", "reset"), nil, nil)
	return err
}

// UserSetPassword sets the password of user name. current is the user's
// current password: required when the caller changes its own, ignored
// (and best left empty) otherwise.
func (c *Client) UserSetPassword(ctx context.Context, name, password, current string) error {
	_, err := c.do(ctx, http.MethodPost, userPath(name, "password"), struct {
		Password        string `json:"password"`
		CurrentPassword string `json:"current_password,omitempty"`
	}{password, current}, nil)
	return err
}

// TOTPEnroll starts a TOTP enrollment for user name (the caller's own): the
// factor is pending until TOTPConfirm gets a code from it.
func (c *Client) TOTPEnroll(ctx context.Context, name string) (TOTPEnrollment, error) {
	var out TOTPEnrollment
	_, err := c.do(ctx, http.MethodPost, userPath(name, "mfa", "totp"), nil, &out)
	return out, err
}

// TOTPConfirm completes a TOTP enrollment with a first code and returns
// the user's new recovery codes, shown only this once.
func (c *Client) TOTPConfirm(ctx context.Context, name, code string) ([]string, error) {
	var out struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	_, err := c.do(ctx, http.MethodPost, userPath(name, "mfa", "totp", "confirm"), struct {
		Code string `json:"code"`
	}{code}, &out)
	return out.RecoveryCodes, err
}

// RecoveryCodes replaces the recovery codes of user name (the caller's
// own) and returns the new ones, shown only this once.
func (c *Client) RecoveryCodes(ctx context.Context, name string) ([]string, error) {
	var out struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	_, err := c.do(ctx, http.MethodPost, userPath(name, "mfa", "recovery-codes"), nil, &out)
	return out.RecoveryCodes, err
}

// Login logs in with a user name and password (and a second factor in
// req.TOTP). No token is needed and the Client's token, if any, is not
// sent. The answer either holds a token, or has MFARequired set: send the
// request again with a code. Wrong credentials are a 401 APIError (the
// same for every wrong thing). During the server's backoff after failed
// logins the answer is a *RateLimitError, returned at once (not retried):
// its RetryAfter says when to try again.
func (c *Client) Login(ctx context.Context, req LoginRequest) (LoginResponse, error) {
	// A second factor may also be asked for with a 401 whose body says
	// mfa_required, so 401 bodies are decoded too.
	var out struct {
		LoginResponse
		Errors []string `json:"errors"`
	}
	status, err := c.login().do(ctx, http.MethodPost, "/v1/auth/login", req, &out, http.StatusUnauthorized)
	if err != nil {
		return LoginResponse{}, err
	}
	if status == http.StatusUnauthorized && !out.MFARequired {
		ae := &APIError{StatusCode: status}
		for _, m := range out.Errors {
			ae.Errors = append(ae.Errors, oneLine(m))
		}
		return LoginResponse{}, ae
	}
	return out.LoginResponse, nil
}

// anonymous returns a Client like c that sends no token: the login calls
// open a session and must not present another one.
func (c *Client) anonymous() *Client {
	return &Client{base: c.base, http: c.http}
}

// login is anonymous for a call that logs in: a 429 is the server's
// backoff after failed logins, returned at once as a *RateLimitError
// rather than waited out in silence.
func (c *Client) login() *Client {
	a := c.anonymous()
	a.noRetry = true
	return a
}

// OIDCAuthURL starts an OpenID Connect authorization code login: it
// returns the provider's URL to open in a browser and the state that the
// redirect to redirectURI will carry back. clientNonce is a random value
// the caller keeps and gives again to OIDCCallback. No token is needed.
func (c *Client) OIDCAuthURL(ctx context.Context, redirectURI, clientNonce string) (authURL, state string, err error) {
	var out struct {
		AuthURL string `json:"auth_url"`
		State   string `json:"state"`
	}
	_, err = c.anonymous().do(ctx, http.MethodPost, "/v1/auth/oidc/auth_url", struct {
		RedirectURI string `json:"redirect_uri"`
		ClientNonce string `json:"client_nonce"`
	}{redirectURI, clientNonce}, &out)
	return out.AuthURL, out.State, err
}

// OIDCCallback finishes an authorization code login with the state and
// code of the provider's redirect and the caller's client nonce, and
// returns the new session. No token is needed. A 429 is returned at once
// as a *RateLimitError, as for Login.
func (c *Client) OIDCCallback(ctx context.Context, state, code, clientNonce string) (LoginResponse, error) {
	var out LoginResponse
	_, err := c.login().do(ctx, http.MethodPost, "/v1/auth/oidc/callback", struct {
		State       string `json:"state"`
		Code        string `json:"code"`
		ClientNonce string `json:"client_nonce"`
	}{state, code, clientNonce}, &out)
	return out, err
}

// OIDCDeviceStart starts an OpenID Connect device authorization login. No
// token is needed.
func (c *Client) OIDCDeviceStart(ctx context.Context) (DeviceAuth, error) {
	var out DeviceAuth
	_, err := c.anonymous().do(ctx, http.MethodPost, "/v1/auth/oidc/device", struct{}{}, &out)
	return out, err
}

// OIDCDevicePoll asks once whether the device login of state is done. It
// returns the new session, or ErrAuthorizationPending while the user has
// not yet approved it (the server waits up to about 25 s before saying
// so: poll again at once). Any other error is final; a 429 is returned at
// once as a *RateLimitError, as for Login. No token is needed.
func (c *Client) OIDCDevicePoll(ctx context.Context, state string) (LoginResponse, error) {
	var out LoginResponse
	_, err := c.login().do(ctx, http.MethodPost, "/v1/auth/oidc/device/poll", struct {
		State string `json:"state"`
	}{state}, &out)
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusPreconditionFailed &&
		len(ae.Errors) > 0 && strings.HasPrefix(ae.Errors[0], "authorization_pending") {
		return LoginResponse{}, ErrAuthorizationPending
	}
	return out, err
}

// Logout revokes the Client's own token (and its children).
func (c *Client) Logout(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/auth/logout", nil, nil)
	return err
}

// RenewSelf extends the Client's own session (within its maximum lifetime)
// and describes it afterwards.
func (c *Client) RenewSelf(ctx context.Context) (Token, error) {
	var out Token
	_, err := c.do(ctx, http.MethodPost, "/v1/auth/token/renew-self", nil, &out)
	return out, err
}

// OIDCConfigRead returns the OpenID Connect login configuration
// (auth.config.read), without the client secret.
func (c *Client) OIDCConfigRead(ctx context.Context) (OIDCConfig, error) {
	var out OIDCConfig
	_, err := c.do(ctx, http.MethodGet, "/v1/auth/oidc/config", nil, &out)
	return out, err
}

// OIDCConfigWrite replaces the OpenID Connect login configuration
// (auth.config.write). cfg.ClientSecretSet is not sent.
func (c *Client) OIDCConfigWrite(ctx context.Context, cfg OIDCConfig) error {
	cfg.ClientSecretSet = false
	_, err := c.do(ctx, http.MethodPut, "/v1/auth/oidc/config", cfg, nil)
	return err
}
