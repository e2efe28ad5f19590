// Package identity issues, authenticates and revokes Warden's tokens.
//
// A token is 256 random bits shown once, as "wdn_" followed by base64url. The
// server keeps only HMAC-SHA256(token key, token); the first 16 bytes of that
// hash, in hex, are the token's accessor, a non-secret handle. Presented
// tokens are compared with the stored hash in constant time. Tokens form a
// tree: revoking one revokes all its descendants, in one transaction.
//
// identity is domain logic over the encrypted storage view; it knows nothing
// about HTTP or Raft, and never logs or returns a token except to its creator.
package identity

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/store/kv"
)

// Storage is the encrypted view identity works on (implemented by core.Core).
// Errors carry errs codes (errs.NotFound, errs.Conflict, errs.Unavailable).
type Storage interface {
	Get(ctx context.Context, key string) (kv.Entry, error)
	GetStale(key string) (kv.Entry, error)
	// AppliedIndex only grows, and while it is unchanged what GetStale
	// read is still current.
	AppliedIndex() uint64
	ListKeys(ctx context.Context, prefix string, limit int) ([]kv.Entry, error)
	Txn(ctx context.Context, t kv.Txn) (uint64, error)
}

const (
	keyHMAC     = "identity/token-hmac-key"
	prefixToken = "identity/token/"       // + accessor → record
	prefixChild = "identity/token-child/" // + parent accessor + "/" + child accessor → empty
	prefixGen   = "identity/token-gen/"   // + accessor → empty; touched when a child is added
	// prefixUserGen + user → a mark rewritten each time the user's tokens
	// are cut off (disabled, deleted, a factor or password changed). Every
	// token that names a user keeps the mark's version at its creation and
	// is valid only while the mark is unchanged, so one write revokes them
	// all, however many there are, the children and the tokens others
	// made for the user included.
	prefixUserGen = "identity/user-gen/"
	tokenPrefix   = "wdn_"
	tokenRawLen   = 32
	tokenTextLen  = len(tokenPrefix) + 43 // base64url of 32 bytes, unpadded

	// DefaultTTL is the TTL of a token created without one.
	DefaultTTL = 768 * time.Hour
	// MaxDisplayName bounds display names.
	MaxDisplayName = 128
	maxRetries     = 16
)

// Secret is a token in clear. Its String and LogValue are redacted, so it can
// never land in a log line by accident.
type Secret string

func (Secret) String() string { return "wdn_REDACTED" }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue("wdn_REDACTED") }

// Reveal returns the token text; call it only to hand the token to its owner.
func (s Secret) Reveal() string { return string(s) }

// Token is what the server knows about a token: never the token itself.
type Token struct {
	Accessor       string    `json:"accessor"`
	DisplayName    string    `json:"display_name"`
	Policies       []string  `json:"policies"`
	ParentAccessor string    `json:"parent_accessor"`
	Root           bool      `json:"root"`
	User           string    `json:"user,omitempty"`   // the principal User::"<user>"; see PrincipalUser
	Groups         []string  `json:"groups,omitempty"` // the user's groups, Group::"<g>"
	CreatedTime    time.Time `json:"created_time"`
	ExpireTime     time.Time `json:"expire_time"` // zero: never
	Hash           []byte    `json:"hash"`        // HMAC of the token; never leaves the server
	// Auth says how the token's holder logged in (nil: a token made by
	// token create, whose method is "token").
	Auth *AuthInfo `json:"auth,omitempty"`
	// Idle, for a login session, is how long it lives unused: every use
	// past a few minutes moves ExpireTime to now+Idle, never beyond
	// MaxExpireTime. 0: the token is not a session.
	Idle          time.Duration `json:"idle,omitempty"`
	MaxExpireTime time.Time     `json:"max_expire_time,omitempty"`
	// Scope restricts what the token may do; ScopeMFAEnroll: only enroll
	// a second factor for its own user.
	Scope string `json:"scope,omitempty"`
	// UserGen is the version of the user's cut-off mark when the token was
	// made (0: none yet); the token is valid only while it is current.
	UserGen uint64 `json:"user_gen,omitempty"`

	version uint64 // store version of the record
}

// ScopeMFAEnroll is the scope of a session whose user must enroll a second
// factor before anything else (docs/people.md).
const ScopeMFAEnroll = "mfa-enroll"

// AuthInfo is how a session was opened: what policies see as context.auth.
type AuthInfo struct {
	Method    string    `json:"method"`     // password, oidc, token or mtls
	MFA       bool      `json:"mfa"`        // a second factor was verified
	MFAMethod string    `json:"mfa_method"` // totp, webauthn or ""
	Time      time.Time `json:"time"`       // when the login happened
}

// AuthOf is the AuthInfo of t: its own, or that of a token made by token
// create (method "token", no second factor, at its creation).
func (t *Token) AuthOf() AuthInfo {
	if t.Auth != nil {
		return *t.Auth
	}
	return AuthInfo{Method: "token", Time: t.CreatedTime}
}

// PrincipalUser is the id of the token's User principal: its user name, or
// "token:<accessor>" for a token created without one (which no policy names
// by accident, so such a token is denied everything by default).
func (t *Token) PrincipalUser() string {
	if t.User != "" {
		return t.User
	}
	return "token:" + t.Accessor
}

// Expired reports whether t has expired at now.
func (t *Token) Expired(now time.Time) bool {
	return !t.ExpireTime.IsZero() && !now.Before(t.ExpireTime)
}

// TTL returns the remaining lifetime at now (0 if it never expires).
func (t *Token) TTL(now time.Time) time.Duration {
	if t.ExpireTime.IsZero() {
		return 0
	}
	if d := t.ExpireTime.Sub(now); d > 0 {
		return d
	}
	return 0
}

// Service manages tokens. Safe for concurrent use.
type Service struct {
	st   Storage
	now  func() time.Time
	rand io.Reader

	touching sync.Map // accessor → struct{}: a Touch under way

	mu    sync.RWMutex
	key   []byte                  // HMAC key, loaded lazily after unseal
	cache map[string]cachedRecord // accessor → decoded record at a version
	gens  map[string]genRead      // user → version of their cut-off mark
}

type cachedRecord struct {
	version uint64
	tok     *Token
}

// New returns a Service over st. now and rnd may be nil (time.Now, crypto/rand).
func New(st Storage, now func() time.Time, rnd io.Reader) *Service {
	if now == nil {
		now = time.Now
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	return &Service{st: st, now: now, rand: rnd, cache: make(map[string]cachedRecord), gens: make(map[string]genRead)}
}

// Forget drops the HMAC key and cached records (called when Warden seals).
func (s *Service) Forget() {
	s.mu.Lock()
	clear(s.key)
	s.key = nil
	s.cache = make(map[string]cachedRecord)
	s.gens = make(map[string]genRead)
	s.mu.Unlock()
}

// Encrypter encrypts a value for a storage key (core passes its keyring at init).
type Encrypter interface {
	Encrypt(aad string, plaintext []byte) ([]byte, error)
}

// Bootstrap makes the ops that init commits: the token HMAC key and the root
// token. It returns the root token to hand to the operator once.
func (s *Service) Bootstrap(enc Encrypter) ([]kv.Op, Secret, error) {
	key := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, key); err != nil {
		return nil, "", fmt.Errorf("identity: token key: %w", err)
	}
	defer clear(key)
	secret, raw, err := s.newSecret()
	if err != nil {
		return nil, "", err
	}
	sum := mac(key, raw)
	tok := &Token{Accessor: accessorOf(sum), DisplayName: "root", Policies: []string{"root"},
		Root: true, CreatedTime: s.now().UTC(), Hash: sum}
	rec, err := json.Marshal(tok)
	if err != nil {
		return nil, "", err
	}
	ekey, err := enc.Encrypt(keyHMAC, key)
	if err != nil {
		return nil, "", err
	}
	erec, err := enc.Encrypt(prefixToken+tok.Accessor, rec)
	if err != nil {
		return nil, "", err
	}
	return []kv.Op{
		{Type: kv.OpPut, Key: keyHMAC, Value: ekey},
		{Type: kv.OpPut, Key: prefixToken + tok.Accessor, Value: erec},
	}, secret, nil
}

func (s *Service) newSecret() (Secret, []byte, error) {
	raw := make([]byte, tokenRawLen)
	if _, err := io.ReadFull(s.rand, raw); err != nil {
		return "", nil, fmt.Errorf("identity: token: %w", err)
	}
	return Secret(tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)), []byte(tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)), nil
}

// mint makes a new token: its text, and its HMAC under the token key.
func (s *Service) mint() (Secret, []byte, error) {
	key, err := s.hmacKey()
	if err != nil {
		return "", nil, err
	}
	secret, raw, err := s.newSecret()
	if err != nil {
		return "", nil, err
	}
	sum := mac(key, raw)
	clear(raw)
	return secret, sum, nil
}

func mac(key, token []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(token)
	return m.Sum(nil)
}

func accessorOf(sum []byte) string { return hex.EncodeToString(sum[:16]) }

func (s *Service) hmacKey() ([]byte, error) {
	s.mu.RLock()
	k := s.key
	s.mu.RUnlock()
	if k != nil {
		return k, nil
	}
	e, err := s.st.GetStale(keyHMAC)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.key == nil {
		s.key = e.Value
	}
	k = s.key
	s.mu.Unlock()
	return k, nil
}

var errBadToken = errs.E(errs.Unauthenticated, "invalid token: unknown, revoked or malformed")

// wellFormed checks the token's shape without revealing anything about it.
func wellFormed(tok string) bool {
	if len(tok) != tokenTextLen || !strings.HasPrefix(tok, tokenPrefix) {
		return false
	}
	for i := len(tokenPrefix); i < len(tok); i++ {
		c := tok[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Authenticate returns the live token record for tok. It reads this node's
// local state (on the leader that includes every acknowledged revocation) and
// caches decoded records by store version. Errors: errs.Unauthenticated for a
// malformed, unknown, revoked or expired token; errs.Unavailable when sealed.
func (s *Service) Authenticate(tok string) (*Token, error) {
	if !wellFormed(tok) {
		return nil, errBadToken
	}
	key, err := s.hmacKey()
	if err != nil {
		return nil, err
	}
	sum := mac(key, []byte(tok))
	t, err := s.record(accessorOf(sum))
	if err != nil {
		if errs.Is(err, errs.NotFound) {
			return nil, errBadToken
		}
		return nil, err
	}
	if subtle.ConstantTimeCompare(sum, t.Hash) != 1 {
		return nil, errBadToken
	}
	if t.Expired(s.now()) {
		return nil, errs.E(errs.Unauthenticated, "token expired at %s", t.ExpireTime.UTC().Format(time.RFC3339))
	}
	if t.User != "" && !t.Root {
		gen, err := s.currentGen(t.User, t.UserGen)
		if err != nil {
			return nil, err
		}
		if gen != t.UserGen {
			return nil, errBadToken // the user's tokens were cut off
		}
	}
	return t, nil
}

// genRead is the version of a user's cut-off mark as read at an applied
// index.
type genRead struct{ applied, version uint64 }

// currentGen returns the version of user's cut-off mark from local state
// (on the leader it has every acknowledged cut-off), read again only when
// the state has changed since; linearizably when the local one is older
// than want, the version a token recorded (this node is behind).
func (s *Service) currentGen(user string, want uint64) (uint64, error) {
	applied := s.st.AppliedIndex()
	s.mu.RLock()
	g, ok := s.gens[user]
	s.mu.RUnlock()
	if ok && g.applied == applied && g.version >= want {
		return g.version, nil
	}
	v, err := s.version(context.Background(), prefixUserGen+user, false)
	if err != nil {
		return 0, err
	}
	if v < want {
		// Older than the token's own: this node has not caught up with
		// the leader yet (a mark only grows). Look again once it has.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		v, err = s.version(ctx, prefixUserGen+user, true)
		cancel()
		if err != nil {
			return 0, err
		}
		applied = s.st.AppliedIndex()
	}
	s.mu.Lock()
	if len(s.gens) > 100_000 {
		s.gens = make(map[string]genRead)
	}
	s.gens[user] = genRead{applied: applied, version: v}
	s.mu.Unlock()
	return v, nil
}

// record reads and decodes a token record from local state, via the cache.
func (s *Service) record(accessor string) (*Token, error) {
	e, err := s.st.GetStale(prefixToken + accessor)
	if errs.Is(err, errs.NotFound) {
		// Not here yet? A token created a moment ago through another node
		// may still be on its way: look again once this node has caught up
		// with the leader (a miss only; known tokens stay local reads).
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		e, err = s.st.Get(ctx, prefixToken+accessor)
		cancel()
	}
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	c, ok := s.cache[accessor]
	s.mu.RUnlock()
	if ok && c.version == e.Version {
		return c.tok, nil
	}
	t := new(Token)
	if err := json.Unmarshal(e.Value, t); err != nil {
		return nil, fmt.Errorf("identity: decode token record: %w", err)
	}
	t.version = e.Version
	s.mu.Lock()
	if len(s.cache) > 100_000 {
		s.cache = make(map[string]cachedRecord)
	}
	s.cache[accessor] = cachedRecord{version: e.Version, tok: t}
	s.mu.Unlock()
	return t, nil
}

// CreateRequest describes a child token.
type CreateRequest struct {
	TTL         time.Duration // 0: DefaultTTL; capped at the parent's remaining TTL
	DisplayName string
	// User and Groups name the new token's principal. Empty User: the child
	// inherits the parent's user and groups (Groups must then be empty).
	User   string
	Groups []string
}

// MaxGroups bounds the groups of one token.
const MaxGroups = 64

func validName(field, s string) error {
	if s == "" || len(s) > 128 {
		return errs.E(errs.Invalid, "%s: must be 1 to 128 characters", field)
	}
	bad := names.BadChar(s, func(_ int, c rune) bool {
		return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '@'
	})
	if bad != "" {
		return errs.E(errs.Invalid, "%s: %q: %s is not allowed (use a-z 0-9 - _ . @)", field, s, bad)
	}
	return nil
}

// Create makes a child token of parent. The child never outlives its parent.
// The transaction requires the parent to be unchanged and bumps the parent's
// generation key, so a concurrent revocation of the parent either sees the
// child or makes this create fail.
func (s *Service) Create(ctx context.Context, parent *Token, req CreateRequest) (Secret, *Token, error) {
	if req.TTL < 0 {
		return "", nil, errs.E(errs.Invalid, "ttl: must not be negative")
	}
	if len(req.DisplayName) > MaxDisplayName {
		return "", nil, errs.E(errs.Invalid, "display_name: longer than %d bytes", MaxDisplayName)
	}
	for _, r := range req.DisplayName {
		if r < 0x20 || r == 0x7f {
			return "", nil, errs.E(errs.Invalid, "display_name: control characters are not allowed")
		}
	}
	user, groups := req.User, req.Groups
	if user == "" {
		if len(groups) > 0 {
			return "", nil, errs.E(errs.Invalid, "group: needs user")
		}
		user, groups = parent.User, parent.Groups
	} else {
		if err := validName("user", user); err != nil {
			return "", nil, err
		}
		if len(groups) > MaxGroups {
			return "", nil, errs.E(errs.Invalid, "group: at most %d groups", MaxGroups)
		}
		for _, g := range groups {
			if err := validName("group", g); err != nil {
				return "", nil, err
			}
		}
	}
	now := s.now().UTC()
	ttl := req.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	expire := now.Add(ttl)
	if !parent.ExpireTime.IsZero() && expire.After(parent.ExpireTime) {
		expire = parent.ExpireTime
	}
	if !expire.After(now) {
		return "", nil, errs.E(errs.Invalid, "ttl: the parent token expires too soon to create a child")
	}
	gen, genCond, err := s.userGen(ctx, user)
	if err != nil {
		return "", nil, err
	}
	secret, sum, err := s.mint()
	if err != nil {
		return "", nil, err
	}
	child := &Token{Accessor: accessorOf(sum), DisplayName: req.DisplayName, Policies: []string{},
		ParentAccessor: parent.Accessor, User: user, Groups: groups, CreatedTime: now, ExpireTime: expire, Hash: sum,
		UserGen: gen}
	rec, err := json.Marshal(child)
	if err != nil {
		return "", nil, err
	}
	// The parent's generation key is written, not read: children of one
	// parent do not conflict with each other (conditioned on it, only one
	// child of each Raft batch got through and the rest were retried), yet
	// a revocation, which reads it before it lists the children and is
	// conditioned on it, fails and starts over if a child was added after
	// it looked. The condition on the parent's
	// record refuses a child of a token revoked meanwhile.
	genKey := prefixGen + parent.Accessor
	idx, err := s.st.Txn(ctx, kv.Txn{
		Conds: append([]kv.Cond{
			{Key: prefixToken + parent.Accessor, Version: parent.version},
			{Key: prefixToken + child.Accessor, Version: 0},
		}, genCond...),
		Ops: []kv.Op{
			{Type: kv.OpPut, Key: prefixToken + child.Accessor, Value: rec},
			{Type: kv.OpPut, Key: prefixChild + parent.Accessor + "/" + child.Accessor, Value: nil},
			{Type: kv.OpPut, Key: genKey, Value: nil},
		},
	})
	var ce *kv.ConflictError
	switch {
	case err == nil:
		child.version = idx
		return secret, child, nil
	case errors.As(err, &ce) && ce.Key == prefixToken+parent.Accessor:
		// Revoked, or only renewed meanwhile (a session in use is renewed
		// in the background): then make the child of what is stored now.
		if cur, lerr := s.LookupAccessor(parent.Accessor); lerr == nil && cur.version != parent.version && !cur.Expired(s.now()) {
			return s.Create(ctx, cur, req)
		}
		return "", nil, errs.E(errs.Unauthenticated, "the calling token was revoked")
	case errors.As(err, &ce) && ce.Key == prefixUserGen+user:
		return "", nil, errs.E(errs.Conflict, "the tokens of user %s were cut off meanwhile; retry", user)
	}
	return "", nil, err
}

// userGen returns the current version of user's cut-off mark, and the
// condition that keeps it so until the token that records it commits
// (none for a token without a user). It reads linearizably: a token must
// not be made against a mark already replaced.
func (s *Service) userGen(ctx context.Context, user string) (uint64, []kv.Cond, error) {
	if user == "" {
		return 0, nil, nil
	}
	v, err := s.version(ctx, prefixUserGen+user, true)
	if err != nil {
		return 0, nil, err
	}
	return v, []kv.Cond{{Key: prefixUserGen + user, Version: v}}, nil
}

// CutUserOps returns the condition and the write that cut off every token
// of user at once (those that exist, their children, and any made
// concurrently, which then fail), for the caller to commit with its own
// change (disabling the user, a new password, a new second factor).
func (s *Service) CutUserOps(ctx context.Context, user string) (kv.Cond, kv.Op, error) {
	if err := validName("user", user); err != nil {
		return kv.Cond{}, kv.Op{}, err
	}
	v, err := s.version(ctx, prefixUserGen+user, true)
	if err != nil {
		return kv.Cond{}, kv.Op{}, err
	}
	return kv.Cond{Key: prefixUserGen + user, Version: v}, kv.Op{Type: kv.OpPut, Key: prefixUserGen + user, Value: []byte("cut")}, nil
}

// SessionRequest describes a login session: a token that no other token
// parents, named for a user, that expires when unused for Idle and at the
// latest after TTL.
type SessionRequest struct {
	User        string
	Groups      []string
	Auth        AuthInfo
	TTL         time.Duration // 0: DefaultSessionTTL
	Idle        time.Duration // 0: DefaultSessionIdle
	Scope       string        // "" or ScopeMFAEnroll
	DisplayName string
	// BeforeCommit, if set, sees the new token just before it commits
	// (the API puts its accessor into the login's audit record, which
	// commits with it).
	BeforeCommit func(*Token)
}

// Defaults of login sessions (docs/people.md).
const (
	DefaultSessionTTL  = 8 * time.Hour
	DefaultSessionIdle = time.Hour
	// touchEvery is how often, at most, a session's use moves its expiry:
	// a session costs one write per this period of use, not one per
	// request.
	touchEvery = 5 * time.Minute
)

// CreateSession makes a login session for req.User, committed in one
// transaction with conds and ops (the caller's: the user record it was
// checked against, a consumed code). It returns the token in clear.
func (s *Service) CreateSession(ctx context.Context, req SessionRequest, conds []kv.Cond, ops []kv.Op) (Secret, *Token, error) {
	if err := validName("user", req.User); err != nil {
		return "", nil, err
	}
	if len(req.Groups) > MaxGroups {
		return "", nil, errs.E(errs.Invalid, "group: at most %d groups", MaxGroups)
	}
	for _, g := range req.Groups {
		if err := validName("group", g); err != nil {
			return "", nil, err
		}
	}
	if req.Scope != "" && req.Scope != ScopeMFAEnroll {
		return "", nil, errs.E(errs.Invalid, "scope: unknown scope %q", req.Scope)
	}
	ttl, idle := req.TTL, req.Idle
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	if idle <= 0 {
		idle = DefaultSessionIdle
	}
	idle = min(idle, ttl)
	now := s.now().UTC()
	gen, genCond, err := s.userGen(ctx, req.User)
	if err != nil {
		return "", nil, err
	}
	secret, sum, err := s.mint()
	if err != nil {
		return "", nil, err
	}
	auth := req.Auth
	auth.Time = auth.Time.UTC()
	tok := &Token{Accessor: accessorOf(sum), DisplayName: req.DisplayName, Policies: []string{},
		User: req.User, Groups: req.Groups, CreatedTime: now, ExpireTime: now.Add(idle), Hash: sum,
		Auth: &auth, Idle: idle, MaxExpireTime: now.Add(ttl), Scope: req.Scope, UserGen: gen}
	rec, err := json.Marshal(tok)
	if err != nil {
		return "", nil, err
	}
	if req.BeforeCommit != nil {
		req.BeforeCommit(tok)
	}
	txn := kv.Txn{
		Conds: append(append(slices.Clip(conds), genCond...), kv.Cond{Key: prefixToken + tok.Accessor, Version: 0}),
		Ops:   append(slices.Clip(ops), kv.Op{Type: kv.OpPut, Key: prefixToken + tok.Accessor, Value: rec}),
	}
	idx, err := s.st.Txn(ctx, txn)
	if err != nil {
		return "", nil, err
	}
	tok.version = idx
	return secret, tok, nil
}

// Renew moves a session's expiry to now+Idle (never past its maximum),
// conditioned on the record being unchanged. A token that is not a
// session cannot be renewed.
func (s *Service) Renew(ctx context.Context, t *Token) (*Token, error) {
	if t.Idle <= 0 {
		return nil, errs.E(errs.Invalid, "token: only login sessions are renewable; create a new token instead")
	}
	for attempt := 0; ; attempt++ {
		n, err := s.renew(ctx, t)
		if !errs.Is(err, errs.Conflict) || attempt == 3 {
			return n, err
		}
		// A background touch renewed it first: renew what is stored now
		// (gone, if it was revoked meanwhile).
		if t, err = s.LookupAccessor(t.Accessor); err != nil {
			if errs.Is(err, errs.NotFound) {
				return nil, errBadToken
			}
			return nil, err
		}
	}
}

func (s *Service) renew(ctx context.Context, t *Token) (*Token, error) {
	now := s.now().UTC()
	if t.Expired(now) {
		return nil, errs.E(errs.Unauthenticated, "token expired at %s", t.ExpireTime.UTC().Format(time.RFC3339))
	}
	n := *t
	n.ExpireTime = now.Add(t.Idle)
	if n.ExpireTime.After(t.MaxExpireTime) {
		n.ExpireTime = t.MaxExpireTime
	}
	rec, err := json.Marshal(&n)
	if err != nil {
		return nil, err
	}
	idx, err := s.st.Txn(ctx, kv.Txn{
		Conds: []kv.Cond{{Key: prefixToken + t.Accessor, Version: t.version}},
		Ops:   []kv.Op{{Type: kv.OpPut, Key: prefixToken + t.Accessor, Value: rec}},
	})
	if err != nil {
		if errs.Is(err, errs.Conflict) {
			return nil, errs.E(errs.Conflict, "token: renewed or revoked concurrently; retry")
		}
		return nil, err
	}
	n.version = idx
	return &n, nil
}

// NeedsTouch reports whether a use of session t at now should move its
// expiry (at most once every few minutes of use).
func (t *Token) NeedsTouch(now time.Time) bool {
	if t.Idle <= 0 || !t.ExpireTime.Before(t.MaxExpireTime) {
		return false
	}
	return t.ExpireTime.Sub(now) < t.Idle-min(touchEvery, t.Idle/2)
}

// Touch renews session t in the background, once at a time per token, so
// that a session in use does not reach its idle timeout. record gives the
// renewal's context its audit record (every change commits with one).
// Failures are dropped: the next use tries again.
func (s *Service) Touch(t *Token, record func(context.Context) context.Context) {
	if _, busy := s.touching.LoadOrStore(t.Accessor, struct{}{}); busy {
		return
	}
	go func() {
		defer s.touching.Delete(t.Accessor)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = s.Renew(record(ctx), t)
	}()
}

// version returns the current version of key (0 if absent); linearizable
// when fresh is set.
func (s *Service) version(ctx context.Context, key string, fresh bool) (uint64, error) {
	var e kv.Entry
	var err error
	if fresh {
		e, err = s.st.Get(ctx, key)
	} else {
		e, err = s.st.GetStale(key)
	}
	if errs.Is(err, errs.NotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return e.Version, nil
}

// LookupToken returns the record of a token given in clear (expired ones too,
// so an operator can see why it fails). errs.NotFound if unknown.
func (s *Service) LookupToken(tok string) (*Token, error) {
	if !wellFormed(tok) {
		return nil, errs.E(errs.NotFound, "token not found")
	}
	key, err := s.hmacKey()
	if err != nil {
		return nil, err
	}
	sum := mac(key, []byte(tok))
	t, err := s.LookupAccessor(accessorOf(sum))
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(sum, t.Hash) != 1 {
		return nil, errs.E(errs.NotFound, "token not found")
	}
	return t, nil
}

// LookupAccessor returns the record with this accessor. errs.NotFound if unknown.
func (s *Service) LookupAccessor(accessor string) (*Token, error) {
	if len(accessor) != 32 || strings.Trim(accessor, "0123456789abcdef") != "" {
		return nil, errs.E(errs.Invalid, "accessor: must be 32 lowercase hex characters")
	}
	t, err := s.record(accessor)
	if errs.Is(err, errs.NotFound) {
		return nil, errs.E(errs.NotFound, "token not found")
	}
	return t, err
}

// Revoke revokes the token with this accessor and all its descendants in one
// transaction, conditioned on every record and generation key it read, so a
// child created concurrently is never left behind. Root tokens cannot be
// revoked (there is no way yet to make a new one).
func (s *Service) Revoke(ctx context.Context, accessor string) error {
	t, err := s.LookupAccessor(accessor)
	if err != nil {
		return err
	}
	if t.Root {
		return errs.E(errs.Invalid, "token: a root token cannot be revoked")
	}
	for attempt := 0; ; attempt++ {
		txn, err := s.revokeTxn(ctx, accessor)
		if err != nil {
			return err
		}
		_, err = s.st.Txn(ctx, txn)
		if err == nil {
			return nil
		}
		if errs.Is(err, errs.Conflict) && attempt < maxRetries {
			// Children are being created under the tree: back off (with
			// jitter) so the revocation is not starved by them.
			d := time.Duration(1+mrand.IntN(1<<min(attempt, 6))) * time.Millisecond
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return errs.Wrap(errs.Unavailable, ctx.Err(), "token: revocation kept conflicting with concurrent changes")
			}
			continue
		}
		return err
	}
}

func (s *Service) revokeTxn(ctx context.Context, accessor string) (kv.Txn, error) {
	var txn kv.Txn
	queue := []string{accessor}
	seen := map[string]bool{}
	for len(queue) > 0 {
		acc := queue[0]
		queue = queue[1:]
		if seen[acc] {
			continue
		}
		seen[acc] = true
		recV, err := s.version(ctx, prefixToken+acc, true)
		if err != nil {
			return txn, err
		}
		genV, err := s.version(ctx, prefixGen+acc, true)
		if err != nil {
			return txn, err
		}
		if recV == 0 && acc == accessor {
			return txn, errs.E(errs.NotFound, "token not found")
		}
		txn.Conds = append(txn.Conds,
			kv.Cond{Key: prefixToken + acc, Version: recV},
			kv.Cond{Key: prefixGen + acc, Version: genV})
		txn.Ops = append(txn.Ops,
			kv.Op{Type: kv.OpDelete, Key: prefixToken + acc},
			kv.Op{Type: kv.OpDelete, Key: prefixGen + acc})
		kids, err := s.st.ListKeys(ctx, prefixChild+acc+"/", 0)
		if err != nil {
			return txn, err
		}
		for _, k := range kids {
			txn.Ops = append(txn.Ops, kv.Op{Type: kv.OpDelete, Key: k.Key})
			queue = append(queue, strings.TrimPrefix(k.Key, prefixChild+acc+"/"))
		}
		if len(txn.Ops) > kv.MaxTxnOps-8 {
			return txn, errs.E(errs.Invalid, "token: too many descendants to revoke in one step (%d)", len(seen))
		}
	}
	// Also drop the parent's index entry pointing at the revoked token.
	if t, err := s.record(accessor); err == nil && t.ParentAccessor != "" {
		txn.Ops = append(txn.Ops, kv.Op{Type: kv.OpDelete, Key: prefixChild + t.ParentAccessor + "/" + accessor})
	}
	return txn, nil
}
