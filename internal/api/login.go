package api

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/api/handler"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/identity"
	"github.com/warden-sec/warden/internal/oidcauth"
	"github.com/warden-sec/warden/internal/passkey"
	"github.com/warden-sec/warden/internal/store/kv"
	"github.com/warden-sec/warden/internal/users"
)

// Logins (docs/people.md): public routes that trade a password and a
// second factor, a passkey assertion, or an OpenID Connect authorization
// for a login session. Failures are counted against the caller's address
// (and, by the users service, against the user name) like every failed
// authentication; a success commits its record with the session.

const (
	keyStateKey   = "auth/state-key"         // 32 random bytes: the key of the login flows' state
	keyOIDCConfig = "auth/oidc/config"       // oidcauth.Config
	keyDeviceUsed = "auth/oidc/device-used/" // + hex SHA-256 of a device state that opened a session
)

// authMethods keeps what the login flows derive from stored settings: the
// state key, the passkey ceremonies and the OpenID provider (rebuilt when
// its configuration changes).
type authMethods struct {
	mu       sync.Mutex
	key      []byte
	passkeys *passkey.Passkeys
	oidc     *oidcauth.Provider
	oidcVer  uint64

	// polls are the device logins (SHA-256 of their state) a poll is
	// waiting for: one at a time each.
	pollsMu sync.Mutex
	polls   map[[sha256.Size]byte]struct{}
}

// stateKey returns the key of the login flows' state (every server signs
// and opens the same states), creating it on first use.
func (s *Server) stateKey(ctx context.Context) ([]byte, error) {
	a := s.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.key != nil {
		return a.key, nil
	}
	st := s.cfg.Core
	e, err := st.GetStale(keyStateKey)
	if errs.Is(err, errs.NotFound) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		// The server's own change, with a record of its own: the
		// request's pending record (if it has one) stays for the
		// request's change, and a route that records nothing (auth_url)
		// can make the key too.
		kctx, _ := s.cfg.Audit.Pending(ctx, auditlog.SystemEntry(s.now(), st.Store().NodeID(), "auth.state-key.create", `System::"warden"`))
		_, err = st.Txn(kctx, kv.Txn{Conds: []kv.Cond{{Key: keyStateKey, Version: 0}},
			Ops: []kv.Op{{Type: kv.OpPut, Key: keyStateKey, Value: key}}})
		if err != nil && !errs.Is(err, errs.Conflict) {
			return nil, err
		}
		e, err = st.Get(ctx, keyStateKey) // ours, or the one another server made first
	}
	if err != nil {
		return nil, err
	}
	if len(e.Value) != 32 {
		return nil, errs.E(errs.Internal, "auth state key: %d bytes stored, want 32", len(e.Value))
	}
	a.key = e.Value
	return a.key, nil
}

// subKey derives the key of one flow from the state key.
func subKey(key []byte, label string) ([]byte, error) {
	return hkdf.Key(sha256.New, key, nil, "warden auth state: "+label, 32)
}

// passkeysFor returns the WebAuthn ceremonies, or why there are none.
func (s *Server) passkeysFor(ctx context.Context) (*passkey.Passkeys, error) {
	if s.cfg.WebAuthnRPID == "" {
		return nil, errs.E(errs.Unavailable, "passkeys are not configured: start the servers with --webauthn-rp-id and --webauthn-origin")
	}
	key, err := s.stateKey(ctx)
	if err != nil {
		return nil, err
	}
	a := s.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.passkeys != nil {
		return a.passkeys, nil
	}
	k, err := subKey(key, "passkey")
	if err != nil {
		return nil, err
	}
	p, err := passkey.New(passkey.Config{RPID: s.cfg.WebAuthnRPID, RPDisplayName: "Warden", Origins: s.cfg.WebAuthnOrigins,
		StateKey: k, Now: s.now})
	if err != nil {
		return nil, err
	}
	a.passkeys = p
	return p, nil
}

// oidcProvider returns the OpenID provider of the stored configuration.
func (s *Server) oidcProvider(ctx context.Context) (*oidcauth.Provider, error) {
	e, err := s.cfg.Core.GetStale(keyOIDCConfig)
	if errs.Is(err, errs.NotFound) {
		return nil, errs.E(errs.Unavailable, "OpenID Connect is not configured: see warden auth oidc config")
	}
	if err != nil {
		return nil, err
	}
	a := s.auth
	a.mu.Lock()
	p, ver := a.oidc, a.oidcVer
	a.mu.Unlock()
	if p != nil && ver == e.Version {
		return p, nil
	}
	var c oidcauth.Config
	if err := json.Unmarshal(e.Value, &c); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "decode the OpenID Connect configuration")
	}
	p, err = s.newOIDCProvider(ctx, c)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if e.Version >= a.oidcVer {
		a.oidc, a.oidcVer = p, e.Version
	}
	a.mu.Unlock()
	return p, nil
}

// newOIDCProvider builds the provider of c (discovery included) with the
// flows' state key.
func (s *Server) newOIDCProvider(ctx context.Context, c oidcauth.Config) (*oidcauth.Provider, error) {
	key, err := s.stateKey(ctx)
	if err != nil {
		return nil, err
	}
	k, err := subKey(key, "oidc")
	if err != nil {
		return nil, err
	}
	return oidcauth.NewProvider(ctx, c, k, s.now)
}

// loginResponse is a new session.
type loginResponse struct {
	Token         string            `json:"token,omitempty"`
	Accessor      string            `json:"accessor,omitempty"`
	User          string            `json:"user,omitempty"`
	Groups        []string          `json:"groups,omitempty"`
	ExpireTime    string            `json:"expire_time,omitempty"`
	MaxExpireTime string            `json:"max_expire_time,omitempty"`
	Auth          *authView         `json:"auth,omitempty"`
	Scope         string            `json:"scope,omitempty"`
	MFARequired   bool              `json:"mfa_required,omitempty"`
	Methods       []string          `json:"methods,omitempty"`
	Hints         map[string]string `json:"hints,omitempty"`
}

// authView is context.auth as the API shows it.
type authView struct {
	Method    string `json:"method"`
	MFA       bool   `json:"mfa"`
	MFAMethod string `json:"mfa_method"`
	Time      string `json:"time"`
}

func viewAuth(a identity.AuthInfo) *authView {
	return &authView{Method: a.Method, MFA: a.MFA, MFAMethod: a.MFAMethod, Time: a.Time.UTC().Format(time.RFC3339)}
}

func sessionView(secret identity.Secret, t *identity.Token) loginResponse {
	r := loginResponse{Token: secret.Reveal(), Accessor: t.Accessor, User: t.User, Groups: t.Groups,
		ExpireTime: rfc3339(t.ExpireTime), MaxExpireTime: rfc3339(t.MaxExpireTime), Auth: viewAuth(t.AuthOf()), Scope: t.Scope}
	if r.Groups == nil {
		r.Groups = []string{}
	}
	return r
}

// loginEntry fills a login's audit record before its session commits. It
// names the user as userUID does: the canonical name a password or passkey
// login opens the session of (whatever spelling the request used), or an
// OpenID Connect user's name as the provider's claim gave it.
func loginEntry(req *request, method, user string) func(*identity.Token) {
	if req.entry != nil {
		uid := userUID(user)
		req.entry.AuthMethod, req.entry.Principal, req.entry.Resource = method, uid, uid
	}
	return func(t *identity.Token) {
		if req.entry != nil {
			req.entry.Accessor = t.Accessor
		}
	}
}

type loginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
	TOTP     string `json:"totp"`
}

// parseLogin decodes a login request strictly.
func parseLogin(body []byte) (loginRequest, error) {
	var in loginRequest
	if err := handler.DecodeJSON(body, &in, false); err != nil {
		return in, err
	}
	switch {
	case in.User == "":
		return in, errs.E(errs.Invalid, "user: required")
	case len(in.User) > 253:
		return in, errs.E(errs.Invalid, "user: longer than 253 characters")
	case in.Password == "":
		return in, errs.E(errs.Invalid, "password: required")
	case len(in.Password) > users.MaxPasswordBytes:
		return in, errs.E(errs.Invalid, "password: longer than %d bytes", users.MaxPasswordBytes)
	case len(in.TOTP) > 64:
		return in, errs.E(errs.Invalid, "totp: longer than 64 characters")
	}
	return in, nil
}

func (s *Server) login(req *request) (int, any, error) {
	svc, err := s.usersService()
	if err != nil {
		return 0, nil, err
	}
	body, err := req.readBody()
	if err != nil {
		return 0, nil, err
	}
	in, err := parseLogin(body)
	if err != nil {
		return 0, nil, err
	}
	if req.entry != nil && in.TOTP != "" && len(in.TOTP) != 6 {
		// Recorded only if the login succeeds, with its session.
		req.entry.Note = "second factor: a recovery code"
	}
	ctx := users.WithBeforeCommit(req.Context(), loginEntry(req, "password", in.User))
	res, err := svc.Login(ctx, users.LoginRequest{User: in.User, Password: in.Password, TOTP: in.TOTP,
		Source: clientKey(req.Request)})
	if err != nil {
		return 0, nil, err
	}
	if res.MFARequired {
		if req.entry != nil {
			req.entry.Note = "password verified; a second factor is required"
		}
		return http.StatusOK, loginResponse{MFARequired: true, Methods: res.Methods}, nil
	}
	return http.StatusOK, sessionView(res.Secret, res.Token), nil
}

type passkeyLoginBeginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// passkeyLoginBegin checks the password, then hands out the challenge of
// the user's passkeys: an assertion is the second factor.
func (s *Server) passkeyLoginBegin(req *request) (int, any, error) {
	svc, err := s.usersService()
	if err != nil {
		return 0, nil, err
	}
	pk, err := s.passkeysFor(req.Context())
	if err != nil {
		return 0, nil, err
	}
	var in passkeyLoginBeginRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if in.User == "" || in.Password == "" || len(in.Password) > users.MaxPasswordBytes {
		return 0, nil, errs.E(errs.Invalid, "user and password: required")
	}
	loginEntry(req, "password", in.User)
	u, err := svc.CheckLogin(req.Context(), in.User, in.Password, clientKey(req.Request))
	if err != nil {
		return 0, nil, err
	}
	if len(u.Passkeys) == 0 {
		return 0, nil, errs.E(errs.Invalid, "user has no passkey registered")
	}
	opts, state, err := pk.BeginLogin(account(u))
	if err != nil {
		return 0, nil, err
	}
	if req.entry != nil {
		req.entry.Note = "password verified; passkey challenge issued"
	}
	return http.StatusOK, passkeyBeginResponse{Options: opts, State: state}, nil
}

type passkeyLoginFinishRequest struct {
	User       string          `json:"user"`
	State      string          `json:"state"`
	Credential json.RawMessage `json:"credential"`
}

func (s *Server) passkeyLoginFinish(req *request) (int, any, error) {
	svc, err := s.usersService()
	if err != nil {
		return 0, nil, err
	}
	pk, err := s.passkeysFor(req.Context())
	if err != nil {
		return 0, nil, err
	}
	var in passkeyLoginFinishRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if in.User == "" || in.State == "" || len(in.Credential) == 0 {
		return 0, nil, errs.E(errs.Invalid, "user, state and credential: required")
	}
	done := loginEntry(req, "password", in.User)
	// Every failure before the session opens answers as a failed password
	// login does: whether the user exists must not show in the answer (an
	// unknown user, a state that is not theirs, an expired ceremony, a
	// malformed or refused assertion all read the same).
	u, err := svc.Get(req.Context(), in.User)
	if err != nil {
		if code := errs.CodeOf(err); code == errs.Unavailable || code == errs.Internal {
			return 0, nil, err // before anything about the user is known
		}
		return 0, nil, users.ErrInvalidLogin
	}
	id, updated, err := pk.FinishLogin(account(u), in.State, in.Credential)
	if err != nil {
		if errs.CodeOf(err) == errs.Internal {
			s.log.Error("passkey login: the assertion could not be checked", "request_id", req.id, "err", err)
		} else {
			s.log.Info("passkey login refused", "request_id", req.id, "err", err)
		}
		return 0, nil, users.ErrInvalidLogin
	}
	secret, tok, err := svc.FinishPasskeyLogin(users.WithBeforeCommit(req.Context(), done), u,
		base64.RawURLEncoding.EncodeToString(id), updated)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, sessionView(secret, tok), nil
}

type oidcAuthURLRequest struct {
	RedirectURI string `json:"redirect_uri"`
	ClientNonce string `json:"client_nonce"`
}

type oidcAuthURLResponse struct {
	AuthURL string `json:"auth_url"`
	State   string `json:"state"`
}

// oidcAuthURL starts the authorization-code flow: the URL to send the
// browser to, and the sealed state the callback must bring back. Nothing
// is stored.
func (s *Server) oidcAuthURL(req *request) (int, any, error) {
	var in oidcAuthURLRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	p, err := s.oidcProvider(req.Context())
	if err != nil {
		return 0, nil, err
	}
	u, state, err := p.AuthURL(in.RedirectURI, in.ClientNonce)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, oidcAuthURLResponse{AuthURL: u, State: state}, nil
}

type oidcCallbackRequest struct {
	State       string `json:"state"`
	Code        string `json:"code"`
	ClientNonce string `json:"client_nonce"`
}

func (s *Server) oidcCallback(req *request) (int, any, error) {
	var in oidcCallbackRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if req.entry != nil {
		req.entry.AuthMethod = "oidc"
	}
	p, err := s.oidcProvider(req.Context())
	if err != nil {
		return 0, nil, err
	}
	id, err := p.Exchange(req.Context(), in.State, in.Code, in.ClientNonce)
	if err != nil {
		return 0, nil, err
	}
	return s.oidcSession(req, id, "")
}

// oidcSession opens the session of an identity the provider vouched for;
// once, when not "", is a key that must be absent and is written with it.
func (s *Server) oidcSession(req *request, id oidcauth.Identity, once string) (int, any, error) {
	svc, err := s.usersService()
	if err != nil {
		return 0, nil, err
	}
	done := loginEntry(req, "oidc", id.User)
	if req.entry != nil {
		req.entry.Note = oidcNote(id)
	}
	secret, tok, err := svc.ExternalLogin(users.WithBeforeCommit(req.Context(), done), users.ExternalLogin{User: id.User, Groups: id.Groups,
		Auth: identity.AuthInfo{Method: "oidc", MFA: id.MFA, MFAMethod: id.MFAMethod, Time: s.now()}, Once: once})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, sessionView(secret, tok), nil
}

// oidcNote is what the audit record of an OpenID Connect login says of
// the provider's identity, for forensics: the issuer and the subject (the
// provider's stable id of the user, which the user claim may not be), each
// quoted in ASCII; the subject cut at 255 bytes (OpenID Connect's bound).
func oidcNote(id oidcauth.Identity) string {
	sub := id.Subject
	if len(sub) > 255 {
		sub = sub[:255]
	}
	return "oidc iss=" + strconv.QuoteToASCII(id.Issuer) + " sub=" + strconv.QuoteToASCII(sub)
}

// oidcDeviceStart starts the device flow for a machine without a browser.
// Anyone may, and each start makes the server ask the provider for a code:
// a start takes one from the address's failure budget (as a failed login
// does, without being counted as one), so an address starts at most as
// many as it may fail logins, and none while its budget is spent.
func (s *Server) oidcDeviceStart(req *request) (int, any, error) {
	if err := req.decode(&struct{}{}, true); err != nil {
		return 0, nil, err
	}
	if ok, wait := s.fails.spend(clientKey(req.Request), s.now()); !ok {
		s.metrics.authThrottled.Inc()
		return 0, nil, errs.WithRetryAfter(errs.E(errs.RateLimited,
			"too many device logins started or failed authentications from this address; retry in %d s", wait), time.Duration(wait)*time.Second)
	}
	p, err := s.oidcProvider(req.Context())
	if err != nil {
		return 0, nil, err
	}
	d, err := p.DeviceStart(req.Context())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, d, nil
}

type oidcDevicePollRequest struct {
	State string `json:"state"`
}

// DefaultDevicePollWait bounds how long one poll waits for the user's
// approval before answering "pending" (the route's timeout is a little
// longer).
const DefaultDevicePollWait = 25 * time.Second

// oidcDevicePoll waits (up to Config.DevicePollWait, asking the provider
// at its interval) for the user to approve, then opens the session. While
// the user has not, it answers 412 authorization_pending, which is no
// failed authentication (errNotAFailure: the address's failure budget is
// not spent by a client that polls as it should; the rate limiter bounds
// it as every request). One poll of a device login waits at a time: a
// second, while one waits, is refused (429, and that is counted as a
// failure), so one device code cannot make the server ask the provider
// more than once an interval however many requests carry it.
func (s *Server) oidcDevicePoll(req *request) (int, any, error) {
	var in oidcDevicePollRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if req.entry != nil {
		req.entry.AuthMethod = "oidc"
	}
	p, err := s.oidcProvider(req.Context())
	if err != nil {
		return 0, nil, err
	}
	sum := sha256.Sum256([]byte(in.State))
	a := s.auth
	a.pollsMu.Lock()
	if _, waiting := a.polls[sum]; waiting {
		a.pollsMu.Unlock()
		wait := max(1, int(s.cfg.DevicePollWait/time.Second))
		return 0, nil, errs.WithRetryAfter(errs.E(errs.RateLimited,
			"a poll of this device login is waiting already; poll again when it has answered"), time.Duration(wait)*time.Second)
	}
	if a.polls == nil {
		a.polls = make(map[[sha256.Size]byte]struct{})
	}
	a.polls[sum] = struct{}{}
	a.pollsMu.Unlock()
	defer func() {
		a.pollsMu.Lock()
		delete(a.polls, sum)
		a.pollsMu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(req.Context(), s.cfg.DevicePollWait)
	defer cancel()
	interval := 5 * time.Second
	for {
		id, err := p.DevicePoll(ctx, in.State)
		if err == nil {
			// A device state opens one session: its mark commits with it
			// (the provider may accept a used device code until it expires).
			return s.oidcSession(req, id, keyDeviceUsed+hex.EncodeToString(sum[:]))
		}
		if !errors.Is(err, oidcauth.ErrAuthorizationPending) {
			return 0, nil, err
		}
		var slow *oidcauth.SlowDownError
		if errors.As(err, &slow) && slow.Interval > 0 {
			interval = time.Duration(slow.Interval) * time.Second
		}
		t := time.NewTimer(interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, nil, errs.Wrap(errs.Precondition, errNotAFailure, "authorization_pending: the user has not approved the device yet; poll again")
		}
	}
}

// oidcConfigView is the stored configuration without its secret.
type oidcConfigView struct {
	oidcauth.Config
	ClientSecretSet bool `json:"client_secret_set"`
}

func (s *Server) oidcConfigRead(req *request) (int, any, error) {
	e, err := s.cfg.Core.Get(req.Context(), keyOIDCConfig)
	if errs.Is(err, errs.NotFound) {
		return 0, nil, errs.E(errs.NotFound, "OpenID Connect is not configured")
	}
	if err != nil {
		return 0, nil, err
	}
	var c oidcauth.Config
	if err := json.Unmarshal(e.Value, &c); err != nil {
		return 0, nil, errs.Wrap(errs.Internal, err, "decode the OpenID Connect configuration")
	}
	v := oidcConfigView{Config: c, ClientSecretSet: c.ClientSecret != ""}
	v.ClientSecret = ""
	return http.StatusOK, v, nil
}

// oidcConfigWrite checks a configuration and that its issuer answers
// discovery before storing it.
func (s *Server) oidcConfigWrite(req *request) (int, any, error) {
	var c oidcauth.Config
	if err := req.decode(&c, false); err != nil {
		return 0, nil, err
	}
	if err := c.Validate(); err != nil {
		return 0, nil, err
	}
	p, err := s.newOIDCProvider(req.Context(), c)
	if err != nil {
		return 0, nil, err
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return 0, nil, err
	}
	idx, err := s.cfg.Core.Txn(req.Context(), kv.Txn{Ops: []kv.Op{{Type: kv.OpPut, Key: keyOIDCConfig, Value: b}}})
	if err != nil {
		return 0, nil, err
	}
	// The provider just built is the stored configuration's (its version
	// is the index of the write): this server need not discover it again.
	s.auth.mu.Lock()
	if idx > s.auth.oidcVer {
		s.auth.oidc, s.auth.oidcVer = p, idx
	}
	s.auth.mu.Unlock()
	return http.StatusNoContent, nil, nil
}

// logout revokes the caller's own token (and its children).
func (s *Server) logout(req *request) (int, any, error) {
	if err := req.decode(&struct{}{}, true); err != nil {
		return 0, nil, err
	}
	if req.tok == nil || req.tok.Root {
		return 0, nil, errs.E(errs.Invalid, "logout: only a login session or token can be revoked this way")
	}
	if err := s.cfg.Tokens.Revoke(req.Context(), req.tok.Accessor); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// renewSelf extends the caller's session by its idle timeout.
func (s *Server) renewSelf(req *request) (int, any, error) {
	if err := req.decode(&struct{}{}, true); err != nil {
		return 0, nil, err
	}
	if req.tok == nil {
		return 0, nil, errs.E(errs.Invalid, "renew: only login sessions are renewable")
	}
	t, err := s.cfg.Tokens.Renew(req.Context(), req.tok)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.tokenView(t, ""), nil
}
