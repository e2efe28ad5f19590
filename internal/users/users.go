// Package users keeps Warden's local accounts: their passwords (Argon2id,
// RFC 9106), their second factors (TOTP, RFC 6238; passkeys, whose
// ceremonies internal/passkey runs; single-use recovery codes), and the
// backoff that slows down password guessing. Login checks all that and
// mints the session through identity (Sessions), in one transaction with
// what the login changed in the user record.
//
// users is domain logic over the encrypted storage view: it knows nothing
// about HTTP or Raft. It never logs, and never returns in an error, a
// password, a hash, a TOTP secret or code, or a recovery code; secrets are
// compared in constant time. It does not decide who may call what: the API
// authorizes admin operations (users.read, users.write, users.mfa.reset)
// and self-service (users.self) before calling in.
//
// Storage keys (values are plaintext JSON; core encrypts them):
//
//	users/user/<name>    the User record
//	users/unlock/<name>  {"time": RFC 3339} written by Unlock
package users

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/identity"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/store/kv"
)

// Storage is the encrypted view users works on (implemented by core.Core),
// the same as identity.Storage. Errors carry errs codes (errs.NotFound,
// errs.Conflict for a failed condition, errs.Unavailable).
type Storage interface {
	Get(ctx context.Context, key string) (kv.Entry, error)
	GetStale(key string) (kv.Entry, error)
	ListKeys(ctx context.Context, prefix string, limit int) ([]kv.Entry, error)
	Txn(ctx context.Context, t kv.Txn) (uint64, error)
}

// Sessions mints login tokens and revokes a user's tokens (implemented by
// *identity.Service). CreateSession commits the session in one transaction
// with conds and ops, the login's own (the user record it checked, the
// changes the login makes to it); a failed condition is errs.Conflict.
// CutUserOps returns what cuts off every token of user at once (one write,
// however many tokens), for the caller to commit with its own change.
type Sessions interface {
	CreateSession(ctx context.Context, req identity.SessionRequest, conds []kv.Cond, ops []kv.Op) (identity.Secret, *identity.Token, error)
	CutUserOps(ctx context.Context, user string) (kv.Cond, kv.Op, error)
}

var _ Sessions = (*identity.Service)(nil)

const (
	prefixUser   = "users/user/"
	prefixUnlock = "users/unlock/"
	// maxRetries bounds the attempts of a read-modify-write that keeps
	// meeting concurrent changes of the same record.
	maxRetries = 16
	// Limits on a record.
	maxPasskeys        = 32
	maxPasskeyName     = 64
	maxCredentialID    = 1023 // bytes (WebAuthn Level 3, 5.1: credential IDs are at most 1023 bytes)
	maxCredentialBytes = 64 << 10
	defaultListLimit   = 100
	maxListLimit       = 1000
)

// User is a local account as stored at users/user/<name>.
type User struct {
	Name          string    `json:"name"`
	Groups        []string  `json:"groups"`
	Disabled      bool      `json:"disabled"`
	PasswordHash  string    `json:"password_hash,omitempty"`  // PHC: $argon2id$v=19$m=...,t=...,p=...$salt$hash
	TOTP          *TOTP     `json:"totp,omitempty"`           // the confirmed factor
	PendingTOTP   *TOTP     `json:"pending_totp,omitempty"`   // enrolled, awaiting its first code
	RecoveryCodes []string  `json:"recovery_codes,omitempty"` // hex SHA-256 of each unused code
	Passkeys      []Passkey `json:"passkeys,omitempty"`
	CreatedTime   time.Time `json:"created_time"`
	UpdatedTime   time.Time `json:"updated_time"`

	version     uint64    // store version of the record
	locked      bool      // this node's backoff, when the service read it
	lockedUntil time.Time // idem
}

// TOTP is an RFC 6238 factor: SHA-1, 6 digits, 30-second steps.
type TOTP struct {
	Secret   string    `json:"secret"`    // base32, no padding
	LastStep int64     `json:"last_step"` // the step of the last code accepted; only later ones are
	Created  time.Time `json:"created"`
}

// Passkey is a registered WebAuthn credential.
type Passkey struct {
	Name       string          `json:"name"`
	ID         string          `json:"id"`         // base64url (no padding) of the credential ID
	Credential json.RawMessage `json:"credential"` // webauthn.Credential JSON
	Created    time.Time       `json:"created"`
	LastUsed   time.Time       `json:"last_used,omitzero"`
}

// Version is the store version of the record the User was read from.
func (u *User) Version() uint64 { return u.version }

// HasMFA reports whether u has a second factor: a confirmed TOTP or a
// passkey.
func (u *User) HasMFA() bool { return u.TOTP != nil || len(u.Passkeys) > 0 }

// mfaMethods lists u's factors: "totp", "webauthn".
func (u *User) mfaMethods() []string {
	m := []string{}
	if u.TOTP != nil {
		m = append(m, "totp")
	}
	if len(u.Passkeys) > 0 {
		m = append(m, "webauthn")
	}
	return m
}

// UserView is what the API shows of a user: no hash, secret or credential.
type UserView struct {
	Name              string        `json:"name"`
	Groups            []string      `json:"groups"`
	Disabled          bool          `json:"disabled"`
	HasPassword       bool          `json:"has_password"`
	MFA               []string      `json:"mfa"` // "totp", "webauthn"
	RecoveryCodesLeft int           `json:"recovery_codes_left"`
	Passkeys          []PasskeyView `json:"passkeys"`
	CreatedTime       time.Time     `json:"created_time"`
	UpdatedTime       time.Time     `json:"updated_time"`
	// Locked says whether this node's backoff holds the user's logins
	// back (other nodes count their own failures), and until when
	// (RFC 3339, "" when not locked).
	Locked      bool   `json:"locked"`
	LockedUntil string `json:"locked_until,omitempty"`
}

// PasskeyView is what the API shows of a passkey.
type PasskeyView struct {
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

// View returns what the API shows of u. Locked is as of when the Service
// returned u (Get, List and the other methods that return a *User).
func (u *User) View() UserView {
	v := UserView{Name: u.Name, Groups: slices.Clone(u.Groups), Disabled: u.Disabled, HasPassword: u.PasswordHash != "",
		MFA: u.mfaMethods(), RecoveryCodesLeft: len(u.RecoveryCodes), Passkeys: []PasskeyView{},
		CreatedTime: u.CreatedTime, UpdatedTime: u.UpdatedTime, Locked: u.locked}
	if v.Groups == nil {
		v.Groups = []string{}
	}
	for _, p := range u.Passkeys {
		v.Passkeys = append(v.Passkeys, PasskeyView{Name: p.Name, Created: p.Created, LastUsed: p.LastUsed})
	}
	if u.locked {
		v.LockedUntil = u.lockedUntil.UTC().Format(time.RFC3339)
	}
	return v
}

// clone returns a deep copy of u, to modify for a write.
func (u *User) clone() *User {
	c := *u
	c.Groups = slices.Clone(u.Groups)
	if u.TOTP != nil {
		t := *u.TOTP
		c.TOTP = &t
	}
	if u.PendingTOTP != nil {
		t := *u.PendingTOTP
		c.PendingTOTP = &t
	}
	c.RecoveryCodes = slices.Clone(u.RecoveryCodes)
	c.Passkeys = slices.Clone(u.Passkeys)
	return &c
}

// Config configures a Service. Storage and Sessions are required.
type Config struct {
	Storage  Storage
	Sessions Sessions
	Now      func() time.Time // nil: time.Now
	Rand     io.Reader        // nil: crypto/rand; must be safe for concurrent use
	// Params are the Argon2id parameters of new hashes; the zero value is
	// DefaultParams (m=64 MiB, t=3, p=2, 16-byte salt, 32-byte key). A
	// hash made with others is replaced at the user's next successful
	// Login (not at a passkey login, which has the password only in
	// CheckLogin, which writes nothing).
	Params Argon2Params
	// RequireMFAGroups: members must present a second factor at login.
	// A member with none enrolled gets a session of scope
	// identity.ScopeMFAEnroll, good only to enroll one.
	RequireMFAGroups []string
	// SessionTTL and IdleTimeout bound login sessions; 0: 8 h and 1 h.
	SessionTTL, IdleTimeout time.Duration
	// Backoff slows down password guessing; the zero value is the default
	// (see BackoffConfig).
	Backoff BackoffConfig
	// OnLoginFailures, if set, is called when a user name or an address
	// reaches BackoffConfig.AlertEvery failed logins, and every AlertEvery
	// failures after that: for a user name with (user, addr of the failure
	// that crossed, the user's failures), for an address with ("", addr,
	// the address's failures). It runs on its own goroutine (at most 16 at
	// a time; further alerts are dropped while they run), so it never
	// blocks a login.
	OnLoginFailures func(user, addr string, failures int)
}

// Service manages local accounts. Safe for concurrent use.
type Service struct {
	st        Storage
	sess      Sessions
	now       func() time.Time
	rand      io.Reader
	params    Argon2Params
	mfaGroups []string
	ttl, idle time.Duration
	bo        *backoff
	onFail    func(user, addr string, failures int)
	alerts    chan struct{} // semaphore of running OnLoginFailures calls
	argon     chan struct{} // semaphore of running Argon2 checks, one per CPU
	dummy     func() (string, error)
}

// New returns a Service. It panics if Storage or Sessions is nil, if
// Params are outside the bounds HashPassword accepts, or if a group of
// RequireMFAGroups is not a canonical name: all are wiring mistakes.
func New(cfg Config) *Service {
	if cfg.Storage == nil || cfg.Sessions == nil {
		panic("users: New needs Storage and Sessions")
	}
	s := &Service{st: cfg.Storage, sess: cfg.Sessions, now: cfg.Now, rand: cfg.Rand, params: cfg.Params.orDefault(),
		ttl: cfg.SessionTTL, idle: cfg.IdleTimeout, onFail: cfg.OnLoginFailures, alerts: make(chan struct{}, 16),
		argon: make(chan struct{}, runtime.GOMAXPROCS(0))}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if err := s.params.check(); err != nil {
		panic("users: Argon2 parameters: " + err.Error())
	}
	if s.ttl <= 0 {
		s.ttl = 8 * time.Hour
	}
	if s.idle <= 0 {
		s.idle = time.Hour
	}
	for _, g := range cfg.RequireMFAGroups {
		if !names.IsCanonical(g) {
			panic(fmt.Sprintf("users: RequireMFAGroups: %q is not a canonical group name", g))
		}
		s.mfaGroups = append(s.mfaGroups, g)
	}
	s.bo = newBackoff(cfg.Backoff)
	// The hash that unknown, disabled and password-less users are checked
	// against, so that their logins cost what a real one costs. Made on
	// first use (every login asks for it first, so the first login pays
	// for it whoever it names).
	s.dummy = sync.OnceValues(func() (string, error) {
		pw := make([]byte, 32)
		if _, err := io.ReadFull(s.rand, pw); err != nil {
			return "", fmt.Errorf("users: dummy password: %w", err)
		}
		return HashPassword(pw, s.params, s.rand)
	})
	return s
}

// canonical returns the canonical form of a user name, or errs.Invalid
// naming the field.
func canonical(field, name string) (string, error) {
	c, err := names.Canonical(name)
	if err != nil {
		var ne *names.NameError
		if errors.As(err, &ne) {
			return "", errs.E(errs.Invalid, "%s: %s", field, ne.Reason)
		}
		return "", errs.E(errs.Invalid, "%s: %v", field, err)
	}
	return c, nil
}

// canonicalGroups checks groups: canonical names, at most
// identity.MaxGroups, sorted and without duplicates.
func canonicalGroups(groups []string) ([]string, error) {
	out := make([]string, 0, len(groups))
	for _, g := range groups {
		c, err := canonical("groups", g)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > identity.MaxGroups {
		return nil, errs.E(errs.Invalid, "groups: at most %d", identity.MaxGroups)
	}
	return out, nil
}

func decodeUser(e kv.Entry) (*User, error) {
	u := new(User)
	if err := json.Unmarshal(e.Value, u); err != nil {
		return nil, fmt.Errorf("users: decode %s: %w", e.Key, err)
	}
	u.version = e.Version
	return u, nil
}

// read returns the user record, read linearizably, or nil if there is none.
func (s *Service) read(ctx context.Context, name string) (*User, error) {
	e, err := s.st.Get(ctx, prefixUser+name)
	if errs.Is(err, errs.NotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeUser(e)
}

func notFound(name string) error { return errs.E(errs.NotFound, "user %q not found", name) }

// withLock fills u's backoff state from this node's view, for View.
func (s *Service) withLock(u *User) *User {
	until := s.bo.lockedUntil(u.Name, s.unlockTime(u.Name), s.now())
	u.locked, u.lockedUntil = !until.IsZero(), until
	return u
}

// Create makes a user. name must be a canonical name (names.Canonical;
// capitals are lowered); groups likewise. password nil: the user has none
// (and cannot log in with one until SetPassword); else it must pass
// CheckPassword. errs.Conflict if the user exists.
func (s *Service) Create(ctx context.Context, name string, groups []string, password []byte) (*User, error) {
	name, err := canonical("name", name)
	if err != nil {
		return nil, err
	}
	if groups, err = canonicalGroups(groups); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	u := &User{Name: name, Groups: groups, CreatedTime: now, UpdatedTime: now}
	if password != nil {
		if err := CheckPassword(name, password); err != nil {
			return nil, err
		}
		if u.PasswordHash, err = HashPassword(password, s.params, s.rand); err != nil {
			return nil, err
		}
	}
	rec, err := json.Marshal(u)
	if err != nil {
		return nil, err
	}
	idx, err := s.st.Txn(ctx, kv.Txn{
		Conds: []kv.Cond{{Key: prefixUser + name, Version: 0}},
		Ops:   []kv.Op{{Type: kv.OpPut, Key: prefixUser + name, Value: rec}},
	})
	if errs.Is(err, errs.Conflict) {
		return nil, errs.E(errs.Conflict, "user %q already exists", name)
	}
	if err != nil {
		return nil, err
	}
	u.version = idx
	return s.withLock(u), nil
}

// Get returns the user, read linearizably. errs.NotFound if there is none.
func (s *Service) Get(ctx context.Context, name string) (*User, error) {
	name, err := canonical("name", name)
	if err != nil {
		return nil, err
	}
	u, err := s.read(ctx, name)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, notFound(name)
	}
	return s.withLock(u), nil
}

// List returns up to limit users (0: 100; at most 1000) whose names sort
// after after, in name order, and the name to pass as after for the next
// page ("" when there is none).
func (s *Service) List(ctx context.Context, after string, limit int) ([]*User, string, error) {
	switch {
	case limit < 0:
		return nil, "", errs.E(errs.Invalid, "limit: must not be negative")
	case limit == 0:
		limit = defaultListLimit
	case limit > maxListLimit:
		return nil, "", errs.E(errs.Invalid, "limit: at most %d", maxListLimit)
	}
	keys, err := s.st.ListKeys(ctx, prefixUser, 0)
	if err != nil {
		return nil, "", err
	}
	out := []*User{}
	for i, k := range keys {
		name := k.Key[len(prefixUser):]
		if name <= after {
			continue
		}
		if len(out) == limit {
			return out, out[len(out)-1].Name, nil
		}
		// The list was linearizable: this node's state is at least as new
		// as it now, so a local read is too.
		e, err := s.st.GetStale(keys[i].Key)
		if errs.Is(err, errs.NotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, "", err
		}
		u, err := decodeUser(e)
		if err != nil {
			return nil, "", err
		}
		out = append(out, s.withLock(u))
	}
	return out, "", nil
}

// update applies change to the current record of name and writes it,
// conditioned on the version it read, retrying when the record changed
// meanwhile (a login's). change must only modify the user it is given;
// errors it returns are returned as they are. errs.NotFound if there is no
// such user.
func (s *Service) update(ctx context.Context, name string, change func(u *User, now time.Time) error) (*User, error) {
	return s.updateRecord(ctx, name, change, false)
}

// updateCut is update that also cuts off every token of the user, in the
// same transaction: what changes who the user is or how they prove it
// (groups, password, second factors) ends the sessions opened before.
func (s *Service) updateCut(ctx context.Context, name string, change func(u *User, now time.Time) error) (*User, error) {
	return s.updateRecord(ctx, name, change, true)
}

func (s *Service) updateRecord(ctx context.Context, name string, change func(u *User, now time.Time) error, cut bool) (*User, error) {
	name, err := canonical("name", name)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		cur, err := s.read(ctx, name)
		if err != nil {
			return nil, err
		}
		if cur == nil {
			return nil, notFound(name)
		}
		u := cur.clone()
		now := s.now().UTC()
		if err := change(u, now); err != nil {
			return nil, err
		}
		u.UpdatedTime = now
		rec, err := json.Marshal(u)
		if err != nil {
			return nil, err
		}
		txn := kv.Txn{
			Conds: []kv.Cond{{Key: prefixUser + name, Version: cur.version}},
			Ops:   []kv.Op{{Type: kv.OpPut, Key: prefixUser + name, Value: rec}},
		}
		if cut {
			c, op, err := s.sess.CutUserOps(ctx, name)
			if err != nil {
				return nil, err
			}
			txn.Conds, txn.Ops = append(txn.Conds, c), append(txn.Ops, op)
		}
		idx, err := s.st.Txn(ctx, txn)
		if errs.Is(err, errs.Conflict) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return nil, err
		}
		u.version = idx
		return s.withLock(u), nil
	}
}

// Update replaces the user's groups (canonical names, at most
// identity.MaxGroups). Sessions already open keep the groups they were
// opened with until they end.
func (s *Service) Update(ctx context.Context, name string, groups []string) (*User, error) {
	groups, err := canonicalGroups(groups)
	if err != nil {
		return nil, err
	}
	return s.updateCut(ctx, name, func(u *User, _ time.Time) error {
		u.Groups = groups
		return nil
	})
}

// SetPassword sets the user's password, which must pass CheckPassword. It
// does not revoke the user's sessions (only SetDisabled and Delete do):
// an administrator who suspects a stolen session disables the user.
func (s *Service) SetPassword(ctx context.Context, name string, password []byte) error {
	name, err := canonical("name", name)
	if err != nil {
		return err
	}
	if err := CheckPassword(name, password); err != nil {
		return err
	}
	hash, err := HashPassword(password, s.params, s.rand)
	if err != nil {
		return err
	}
	_, err = s.updateCut(ctx, name, func(u *User, _ time.Time) error {
		u.PasswordHash = hash
		return nil
	})
	return err
}

// SetDisabled disables or enables the user. Disabling revokes every token
// of the user (with their descendants) in the same transaction, which is
// conditioned on the user record: a login that commits meanwhile (every
// login writes the record) makes it start over and revoke that session
// too. A disabled user cannot log in, with an answer that does not say so.
func (s *Service) SetDisabled(ctx context.Context, name string, disabled bool) error {
	if !disabled {
		_, err := s.update(ctx, name, func(u *User, _ time.Time) error {
			u.Disabled = false
			return nil
		})
		return err
	}
	return s.revoking(ctx, name, func(u *User, now time.Time) ([]kv.Op, error) {
		u.Disabled = true
		u.UpdatedTime = now
		rec, err := json.Marshal(u)
		if err != nil {
			return nil, err
		}
		return []kv.Op{{Type: kv.OpPut, Key: prefixUser + u.Name, Value: rec}}, nil
	})
}

// Delete deletes the user, its unlock mark, and every token of the user
// (with their descendants), in one transaction conditioned like
// SetDisabled's.
func (s *Service) Delete(ctx context.Context, name string) error {
	return s.revoking(ctx, name, func(u *User, _ time.Time) ([]kv.Op, error) {
		return []kv.Op{
			{Type: kv.OpDelete, Key: prefixUser + u.Name},
			{Type: kv.OpDelete, Key: prefixUnlock + u.Name},
		}, nil
	})
}

// revoking commits ops (made by change from the current record) together
// with the revocation of every token of the user, conditioned on the record
// and on what the revocation read; it starts over when one changed.
func (s *Service) revoking(ctx context.Context, name string, change func(u *User, now time.Time) ([]kv.Op, error)) error {
	name, err := canonical("name", name)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		u, err := s.read(ctx, name)
		if err != nil {
			return err
		}
		if u == nil {
			return notFound(name)
		}
		cut, cutOp, err := s.sess.CutUserOps(ctx, name)
		if err != nil {
			return err
		}
		ops, err := change(u, s.now().UTC())
		if err != nil {
			return err
		}
		_, err = s.st.Txn(ctx, kv.Txn{
			Conds: []kv.Cond{{Key: prefixUser + name, Version: u.version}, cut},
			Ops:   append(ops, cutOp),
		})
		if errs.Is(err, errs.Conflict) && attempt < maxRetries {
			continue
		}
		return err
	}
}

// unlockRecord is the value at users/unlock/<name>.
type unlockRecord struct {
	Time time.Time `json:"time"`
}

// Unlock voids the failed logins of the user recorded until now, on every
// node: it writes users/unlock/<name>, which each node's backoff reads
// (locally) before counting the name's failures, and ignores those older.
// The address backoff is not affected. errs.NotFound if there is no such
// user.
func (s *Service) Unlock(ctx context.Context, name string) error {
	name, err := canonical("name", name)
	if err != nil {
		return err
	}
	u, err := s.read(ctx, name)
	if err != nil {
		return err
	}
	if u == nil {
		return notFound(name)
	}
	now := s.now().UTC()
	rec, err := json.Marshal(unlockRecord{Time: now})
	if err != nil {
		return err
	}
	if _, err := s.st.Txn(ctx, kv.Txn{Ops: []kv.Op{{Type: kv.OpPut, Key: prefixUnlock + name, Value: rec}}}); err != nil {
		return err
	}
	s.bo.unlock(name, now)
	return nil
}

// unlockTime returns the time of the user's last Unlock, from this node's
// local state (zero if none, or unreadable: a failed read must not unlock).
func (s *Service) unlockTime(name string) time.Time {
	e, err := s.st.GetStale(prefixUnlock + name)
	if err != nil {
		return time.Time{}
	}
	var r unlockRecord
	if json.Unmarshal(e.Value, &r) != nil {
		return time.Time{}
	}
	return r.Time
}

// ResetMFA drops every second factor of the user: TOTP (confirmed and
// pending), passkeys and recovery codes. The user's sessions stay.
func (s *Service) ResetMFA(ctx context.Context, name string) error {
	_, err := s.updateCut(ctx, name, func(u *User, _ time.Time) error {
		u.TOTP, u.PendingTOTP, u.RecoveryCodes, u.Passkeys = nil, nil, nil, nil
		return nil
	})
	return err
}
