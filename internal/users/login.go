package users

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/identity"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/store/kv"
)

// ErrInvalidLogin is the answer to every failed login, whatever was wrong:
// an unknown, disabled or password-less user, a wrong password, a wrong,
// used or replayed code.
var ErrInvalidLogin error = errs.E(errs.Unauthenticated, "invalid user name, password or code")

// LoginRequest is a login with a password.
type LoginRequest struct {
	User     string
	Password string
	// TOTP is the current 6-digit code of the user's authenticator, or
	// one of the user's recovery codes; "" for none.
	TOTP string
	// Source is the client's address (an IP address, with or without a
	// port), for the per-address backoff; "" for none.
	Source string
}

// LoginResult is the outcome of a login that did not fail.
type LoginResult struct {
	// Secret and Token are the new session (nil Token when MFARequired).
	Secret identity.Secret
	Token  *identity.Token
	// MFARequired: the password is right, but a second factor must be
	// presented (Methods lists the user's: "totp", "webauthn"); no session
	// was opened. For "webauthn", the client starts the passkey flow
	// (CheckLogin, then FinishPasskeyLogin).
	MFARequired bool
	Methods     []string
}

// Methods of identity.AuthInfo set by logins here.
const (
	methodPassword = "password"
	mfaTOTP        = "totp"
	mfaWebAuthn    = "webauthn"
	// mfaRecovery is the MFAMethod of a login with a recovery code: it
	// stands in for the code of the authenticator (the values of
	// context.auth.mfa_method are totp, webauthn or ""); the login's audit
	// record says a recovery code was used.
	mfaRecovery = mfaTOTP
)

type beforeCommitKey struct{}

// WithBeforeCommit returns a context under which the logins of a Service
// (Login, FinishPasskeyLogin) call fn with the new session's token record
// just before it commits (identity.SessionRequest.BeforeCommit): the API
// names the session's accessor in the login's audit record that way.
func WithBeforeCommit(ctx context.Context, fn func(*identity.Token)) context.Context {
	return context.WithValue(ctx, beforeCommitKey{}, fn)
}

func beforeCommit(ctx context.Context) func(*identity.Token) {
	fn, _ := ctx.Value(beforeCommitKey{}).(func(*identity.Token))
	return fn
}

// rateLimited is the answer while the backoff holds a login back, the same
// for every user name, existing or not.
func rateLimited(until, now time.Time) error {
	secs := max(int64(math.Ceil(until.Sub(now).Seconds())), 1)
	return errs.WithRetryAfter(errs.E(errs.RateLimited, "too many failed logins; retry in %d s", secs), time.Duration(secs)*time.Second)
}

// attempt is a login past the backoff check.
type attempt struct {
	name, addr string // backoff keys
	valid      bool   // name is a canonical name, which a user may have
	now        time.Time
	release    func() // gives back its place among the attempts in flight
}

// begin canonicalizes the user name and applies the backoff, taking a
// place among the name's and the address's attempts in flight: the
// caller must call a.release once the attempt's failure, if any, is
// counted.
func (s *Service) begin(user, source string) (attempt, error) {
	a := attempt{name: userKey(user), addr: addrKey(source), now: s.now()}
	a.valid = names.IsCanonical(a.name)
	var unlock time.Time
	if a.valid {
		unlock = s.unlockTime(a.name)
	}
	until, release := s.bo.reserve(a.name, a.addr, unlock, a.now)
	if !until.IsZero() {
		return a, rateLimited(until, a.now)
	}
	a.release = release
	return a, nil
}

// failed records a failed attempt, raises the alerts it crosses, and
// returns ErrInvalidLogin.
func (s *Service) failed(a attempt) error {
	for _, al := range s.bo.fail(a.name, a.addr, a.now) {
		s.alert(al)
	}
	return ErrInvalidLogin
}

// alert calls OnLoginFailures on its own goroutine, unless too many calls
// are running already.
func (s *Service) alert(al alert) {
	if s.onFail == nil {
		return
	}
	select {
	case s.alerts <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-s.alerts }()
		s.onFail(al.user, al.addr, al.n)
	}()
}

// checkPassword reads the user and checks the password, spending the same
// Argon2 work whether or not the user exists, is disabled, or has a
// password: in those cases against the dummy hash, and the answer is
// false. It returns the user (nil if unknown) with ok, and whether the
// hash needs the current parameters.
func (s *Service) checkPassword(ctx context.Context, a attempt, password string) (u *User, ok, rehash bool, err error) {
	dummy, err := s.dummy()
	if err != nil {
		return nil, false, false, err
	}
	if a.valid { // else no user has the name (but the work is the same)
		if u, err = s.read(ctx, a.name); err != nil {
			return nil, false, false, err
		}
	}
	usable := u != nil && !u.Disabled && u.PasswordHash != "" && len(password) <= MaxPasswordBytes
	hash := dummy
	if usable {
		hash = u.PasswordHash
	}
	// At most one Argon2 check per CPU at once: each takes its memory
	// (64 MiB by default) and a core for a tenth of a second, and whoever
	// may ask for a login must not make the server run out of either.
	select {
	case s.argon <- struct{}{}:
		defer func() { <-s.argon }()
	case <-ctx.Done():
		return nil, false, false, errs.E(errs.Unavailable, "the server is busy checking other logins; retry")
	}
	ok, rehash, err = verifyPassword(hash, []byte(password), s.params)
	if err != nil {
		// A stored hash that does not parse (no work was done): spend
		// the work anyway, then say so to the operator (not the caller).
		_, _, _ = verifyPassword(dummy, []byte(password), s.params)
		return nil, false, false, fmt.Errorf("users: password hash of %q: %w", a.name, err)
	}
	return u, ok && usable, rehash, nil
}

// Login checks a user's password and, when the user has a second factor
// or must have one, the code, and opens a session. In order: the backoff
// (user name and Source) — errs.RateLimited "too many failed logins; retry
// in N s", for any name; then the password, with the same Argon2 work for
// unknown, disabled and password-less users as for others; then the
// factor. Every failure is ErrInvalidLogin. A right password without the
// code a factor needs is not a failure: the result has MFARequired set and
// no session. A user of a RequireMFAGroups group with no factor enrolled
// gets a session of scope identity.ScopeMFAEnroll. On success the session
// commits in one transaction with the user record, conditioned on the
// version checked: the record carries the code's step (so the code cannot
// be used again: of two logins with one code, one fails), the consumed
// recovery code, and a hash with the current parameters when the stored
// one had others.
func (s *Service) Login(ctx context.Context, req LoginRequest) (*LoginResult, error) {
	a, err := s.begin(req.User, req.Source)
	if err != nil {
		return nil, err
	}
	defer a.release()
	u, ok, rehash, err := s.checkPassword(ctx, a, req.Password)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, s.failed(a)
	}
	newHash := "" // the password hashed with the current parameters, once the login is sure to proceed
	verified := u.PasswordHash
	for try := 0; ; try++ {
		next := u.clone()
		auth := identity.AuthInfo{Method: methodPassword, Time: a.now.UTC()}
		scope := ""
		switch {
		case u.HasMFA() && req.TOTP == "":
			return &LoginResult{MFARequired: true, Methods: u.mfaMethods()}, nil
		case u.HasMFA():
			method, ok := s.checkCode(next, req.TOTP, a.now)
			if !ok {
				return nil, s.failed(a)
			}
			auth.MFA, auth.MFAMethod = true, method
		case s.mfaRequired(u):
			scope = identity.ScopeMFAEnroll
		}
		if rehash {
			if newHash == "" {
				if newHash, err = HashPassword([]byte(req.Password), s.params, s.rand); err != nil {
					return nil, err
				}
			}
			next.PasswordHash = newHash
		}
		res, err := s.openSession(ctx, next, u.version, auth, scope, "password login")
		if errs.Is(err, errs.Conflict) && try < maxRetries {
			// The record changed since it was read (another login, an
			// administrator): check again against the new one.
			cur, curRehash, err := s.recheck(ctx, a, u, req.Password)
			if err != nil {
				return nil, err
			}
			if cur == nil {
				return nil, s.failed(a)
			}
			if cur.PasswordHash != verified {
				verified, rehash = cur.PasswordHash, curRehash
			}
			u = cur
			continue
		}
		if err != nil {
			return nil, err
		}
		s.bo.success(a.name)
		return res, nil
	}
}

// recheck rereads the user after a conflict. It returns nil when the login
// must fail: the user is gone, disabled or without a password, or the
// password changed and the given one does not check against the new hash
// (then rehash says whether that hash has other parameters than the
// current ones).
func (s *Service) recheck(ctx context.Context, a attempt, old *User, password string) (u *User, rehash bool, err error) {
	u, err = s.read(ctx, a.name)
	if err != nil || u == nil || u.Disabled || u.PasswordHash == "" {
		return nil, false, err
	}
	if u.PasswordHash != old.PasswordHash {
		ok, rehash, err := verifyPassword(u.PasswordHash, []byte(password), s.params)
		if err != nil || !ok {
			return nil, false, err
		}
		return u, rehash, nil
	}
	return u, false, nil
}

// checkCode checks code, a TOTP code or a recovery code, against u and
// records its use in u: the TOTP step, or the recovery code removed. It
// returns the identity.AuthInfo MFAMethod.
func (s *Service) checkCode(u *User, code string, now time.Time) (string, bool) {
	if len(code) == totpDigits {
		if u.TOTP == nil {
			return "", false
		}
		step, ok := ValidateTOTP(u.TOTP.Secret, code, now, u.TOTP.LastStep)
		if !ok {
			return "", false
		}
		u.TOTP.LastStep = step
		return mfaTOTP, true
	}
	i := matchRecovery(u.RecoveryCodes, code)
	if i < 0 {
		return "", false
	}
	u.RecoveryCodes = slices.Delete(u.RecoveryCodes, i, i+1)
	return mfaRecovery, true
}

// mfaRequired reports whether u is in a group of RequireMFAGroups.
func (s *Service) mfaRequired(u *User) bool {
	for _, g := range u.Groups {
		if slices.Contains(s.mfaGroups, g) {
			return true
		}
	}
	return false
}

// openSession commits next (the user record as the login leaves it; it is
// written even unchanged, so that its version moves and a concurrent
// SetDisabled or Delete, conditioned on it, starts over and sees the new
// session) with a new session, conditioned on the record still being at
// version.
func (s *Service) openSession(ctx context.Context, next *User, version uint64, auth identity.AuthInfo, scope, display string) (*LoginResult, error) {
	rec, err := json.Marshal(next)
	if err != nil {
		return nil, err
	}
	secret, tok, err := s.sess.CreateSession(ctx, identity.SessionRequest{
		User: next.Name, Groups: slices.Clone(next.Groups), Auth: auth, TTL: s.ttl, Idle: s.idle,
		Scope: scope, DisplayName: display, BeforeCommit: beforeCommit(ctx),
	}, []kv.Cond{{Key: prefixUser + next.Name, Version: version}},
		[]kv.Op{{Type: kv.OpPut, Key: prefixUser + next.Name, Value: rec}})
	if err != nil {
		return nil, err
	}
	return &LoginResult{Secret: secret, Token: tok}, nil
}

// CheckLogin is the first step of a passkey login: the backoff and the
// password, as Login checks them (the same errors, the same work for every
// user name), without the factor and without opening a session. It
// returns the user, whose passkeys the caller then challenges before
// FinishPasskeyLogin. It writes nothing (a hash with old parameters is
// replaced at the next Login with a password and code).
func (s *Service) CheckLogin(ctx context.Context, user, password, source string) (*User, error) {
	a, err := s.begin(user, source)
	if err != nil {
		return nil, err
	}
	defer a.release()
	u, ok, _, err := s.checkPassword(ctx, a, password)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, s.failed(a)
	}
	return s.withLock(u), nil
}

// FinishPasskeyLogin opens the session of u after CheckLogin and a
// verified assertion of the passkey with ID passkeyID (base64url, as in
// Passkey.ID): it stores updated as the passkey's credential (its new
// signature counter and flags) and the time as its LastUsed, in one
// transaction with the session. u must be the record whose credential the
// assertion was verified against. The user record is read again: the
// login fails with ErrInvalidLogin if the user was disabled or deleted,
// changed password, or lost the passkey meanwhile, or if the passkey's
// stored credential is no longer the one verified against (another login
// with the passkey committed since: of two finishes of one assertion, only
// one opens a session).
func (s *Service) FinishPasskeyLogin(ctx context.Context, u *User, passkeyID string, updated json.RawMessage) (identity.Secret, *identity.Token, error) {
	if len(updated) > maxCredentialBytes || !json.Valid(updated) {
		return "", nil, errs.E(errs.Invalid, "credential: not a JSON credential of at most %d bytes", maxCredentialBytes)
	}
	j := slices.IndexFunc(u.Passkeys, func(p Passkey) bool { return p.ID == passkeyID })
	if j < 0 {
		return "", nil, ErrInvalidLogin
	}
	verified := u.Passkeys[j].Credential
	now := s.now()
	for try := 0; ; try++ {
		cur, err := s.read(ctx, u.Name)
		if err != nil {
			return "", nil, err
		}
		if cur == nil || cur.Disabled || cur.PasswordHash == "" || cur.PasswordHash != u.PasswordHash {
			return "", nil, ErrInvalidLogin
		}
		next := cur.clone()
		i := slices.IndexFunc(next.Passkeys, func(p Passkey) bool { return p.ID == passkeyID })
		if i < 0 || !bytes.Equal(next.Passkeys[i].Credential, verified) {
			// Its counter and used challenges moved since the assertion
			// was checked against them: a replay of it may be among
			// the logins that moved them.
			return "", nil, ErrInvalidLogin
		}
		next.Passkeys[i].Credential = slices.Clone(updated)
		next.Passkeys[i].LastUsed = now.UTC()
		auth := identity.AuthInfo{Method: methodPassword, MFA: true, MFAMethod: mfaWebAuthn, Time: now.UTC()}
		res, err := s.openSession(ctx, next, cur.version, auth, "", "passkey login")
		if errs.Is(err, errs.Conflict) && try < maxRetries {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		s.bo.success(cur.Name)
		return res.Secret, res.Token, nil
	}
}

// passkeyID is the stored form of a credential ID.
func passkeyID(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }
