package users_test

import (
	"context"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"

	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/core"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/identity"
	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/internal/server/servertest"
	"github.com/warden-sec/warden/internal/users"
)

// clock is a clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

var t0 = time.Date(2026, 5, 6, 7, 8, 0, 0, time.UTC) // at the start of a TOTP step

// small are Argon2 parameters cheap enough for tests.
var small = users.Argon2Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// env is a real server's core over its store in a temp dir, initialized
// and unsealed (server.DevInit), with an identity service and a users
// service over it on the test's clock.
type env struct {
	srv   *server.Server
	core  *core.Core
	clock *clock
	ids   *identity.Service
	svc   *users.Service
}

func newEnv(t testing.TB, mod func(*users.Config)) *env {
	t.Helper()
	srv := servertest.Dev(t)
	v := &env{srv: srv, core: srv.Core(), clock: &clock{t: t0}}
	v.ids = identity.New(v.core, v.clock.Now, nil)
	v.svc = v.service(mod)
	return v
}

// service returns another users service over the same storage (another
// node's, as far as the in-memory backoff goes).
func (v *env) service(mod func(*users.Config)) *users.Service {
	cfg := users.Config{Storage: v.core, Sessions: v.ids, Now: v.clock.Now, Params: small}
	if mod != nil {
		mod(&cfg)
	}
	return users.New(cfg)
}

// rec returns a context carrying a fresh pending audit record, as the API
// pipeline gives a change.
func (v *env) rec(action string) context.Context {
	ctx, _ := v.srv.Audit().Pending(context.Background(),
		auditlog.SystemEntry(v.clock.Now(), "test-node", action, `System::"warden"`))
	return ctx
}

const pw = "correct horse battery staple"

func (v *env) create(t testing.TB, name string, groups []string, password string) *users.User {
	t.Helper()
	var p []byte
	if password != "" {
		p = []byte(password)
	}
	u, err := v.svc.Create(v.rec("users.create"), name, groups, p)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (v *env) login(req users.LoginRequest) (*users.LoginResult, error) {
	return v.svc.Login(v.rec("auth.login"), req)
}

// mustLogin logs in and checks the session authenticates.
func (v *env) mustLogin(t testing.TB, req users.LoginRequest) *identity.Token {
	t.Helper()
	res, err := v.login(req)
	if err != nil {
		t.Fatalf("login %+v: %v", req.User, err)
	}
	if res.MFARequired || res.Token == nil {
		t.Fatalf("login: %+v", res)
	}
	tok, err := v.ids.Authenticate(res.Secret.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if tok.Accessor != res.Token.Accessor || tok.User != req.User && !strings.EqualFold(tok.User, req.User) {
		t.Fatalf("session %+v", tok)
	}
	return res.Token
}

func invalidLogin(t testing.TB, err error) {
	t.Helper()
	if !errors.Is(err, users.ErrInvalidLogin) || errs.CodeOf(err) != errs.Unauthenticated ||
		err.Error() != "invalid user name, password or code" {
		t.Fatalf("got %v, want ErrInvalidLogin", err)
	}
}

func wantCode(t testing.TB, err error, code errs.Code, msg string) {
	t.Helper()
	if errs.CodeOf(err) != code || !strings.Contains(fmt.Sprint(err), msg) {
		t.Fatalf("got %v (%s), want %s %q", err, errs.CodeOf(err), code, msg)
	}
}

// stored returns the stored (decrypted) JSON of key, and its version.
func (v *env) stored(t testing.TB, key string) (map[string]any, uint64) {
	t.Helper()
	e, err := v.core.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(e.Value, &m); err != nil {
		t.Fatal(err)
	}
	return m, e.Version
}

func TestCreateGetListUpdate(t *testing.T) {
	v := newEnv(t, nil)
	ctx := context.Background()
	u := v.create(t, "Alice", []string{"Ops", "dev", "ops"}, pw)
	if u.Name != "alice" || !slices.Equal(u.Groups, []string{"dev", "ops"}) || u.Version() == 0 || u.PasswordHash == "" {
		t.Fatalf("created %+v", u)
	}
	if !u.CreatedTime.Equal(t0) || !u.UpdatedTime.Equal(t0) {
		t.Fatalf("times %v %v", u.CreatedTime, u.UpdatedTime)
	}
	_, err := v.svc.Create(v.rec("users.create"), "alice", nil, nil)
	wantCode(t, err, errs.Conflict, `user "alice" already exists`)
	_, err = v.svc.Create(v.rec("users.create"), "wеb", nil, nil) // Cyrillic е
	wantCode(t, err, errs.Invalid, "name: character")
	_, err = v.svc.Create(v.rec("users.create"), "bob", []string{"a b"}, nil)
	wantCode(t, err, errs.Invalid, "groups:")
	_, err = v.svc.Create(v.rec("users.create"), "bob", nil, []byte("short"))
	wantCode(t, err, errs.Invalid, "password: shorter than 12")
	_, err = v.svc.Create(v.rec("users.create"), "bob", nil, []byte("my name is bob, hi"))
	wantCode(t, err, errs.Invalid, "password: must not contain the user name")
	many := make([]string, 65)
	for i := range many {
		many[i] = fmt.Sprint("g", i)
	}
	_, err = v.svc.Create(v.rec("users.create"), "bob", many, nil)
	wantCode(t, err, errs.Invalid, "groups: at most 64")

	got, err := v.svc.Get(ctx, "ALICE")
	if err != nil || got.Name != "alice" || got.Version() != u.Version() || got.PasswordHash != u.PasswordHash {
		t.Fatalf("Get: %+v %v", got, err)
	}
	_, err = v.svc.Get(ctx, "nobody")
	wantCode(t, err, errs.NotFound, `user "nobody" not found`)

	// The stored record has the contract's fields, and the view none of
	// the secrets.
	m, ver := v.stored(t, "users/user/alice")
	if ver != u.Version() {
		t.Fatalf("version %d, want %d", ver, u.Version())
	}
	for _, k := range []string{"name", "groups", "disabled", "password_hash", "created_time", "updated_time"} {
		if _, ok := m[k]; !ok {
			t.Errorf("stored record lacks %q: %v", k, m)
		}
	}
	view, _ := json.Marshal(got.View())
	if strings.Contains(string(view), "argon2") || !strings.Contains(string(view), `"has_password":true`) ||
		!strings.Contains(string(view), `"mfa":[]`) || !strings.Contains(string(view), `"locked":false`) {
		t.Fatalf("view %s", view)
	}

	// Update: groups replaced, canonical.
	up, err := v.svc.Update(v.rec("users.update"), "alice", []string{"SRE"})
	if err != nil || !slices.Equal(up.Groups, []string{"sre"}) || up.Version() <= u.Version() {
		t.Fatalf("Update: %+v %v", up, err)
	}
	_, err = v.svc.Update(v.rec("users.update"), "nobody", nil)
	wantCode(t, err, errs.NotFound, "not found")

	// List pages through in name order.
	for _, n := range []string{"carol", "bob", "dave", "erin"} {
		v.create(t, n, nil, "")
	}
	var all []string
	after := ""
	for range 10 {
		page, next, err := v.svc.List(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page {
			all = append(all, p.Name)
		}
		if next == "" {
			break
		}
		after = next
	}
	if !slices.Equal(all, []string{"alice", "bob", "carol", "dave", "erin"}) {
		t.Fatalf("listed %v", all)
	}
	if page, next, err := v.svc.List(ctx, "", 0); err != nil || len(page) != 5 || next != "" {
		t.Fatalf("List all: %d %q %v", len(page), next, err)
	}
	if page, next, err := v.svc.List(ctx, "", 5); err != nil || len(page) != 5 || next != "" {
		t.Fatalf("List a full page: %d %q %v", len(page), next, err)
	}
	_, _, err = v.svc.List(ctx, "", 1001)
	wantCode(t, err, errs.Invalid, "limit")
}

func TestLoginPassword(t *testing.T) {
	v := newEnv(t, nil)
	v.create(t, "alice", []string{"dev"}, pw)
	v.create(t, "nopass", nil, "")
	tok := v.mustLogin(t, users.LoginRequest{User: "Alice", Password: pw, Source: "192.0.2.1:5555"})
	if tok.User != "alice" || !slices.Equal(tok.Groups, []string{"dev"}) || tok.Scope != "" {
		t.Fatalf("token %+v", tok)
	}
	if a := tok.Auth; a == nil || a.Method != "password" || a.MFA || a.MFAMethod != "" || !a.Time.Equal(t0) {
		t.Fatalf("auth %+v", tok.Auth)
	}
	if tok.Idle != time.Hour || !tok.MaxExpireTime.Equal(t0.Add(8*time.Hour)) {
		t.Fatalf("session bounds: idle %v, max %v", tok.Idle, tok.MaxExpireTime)
	}
	_, err := v.login(users.LoginRequest{User: "alice", Password: pw + "x"})
	invalidLogin(t, err)
	_, err = v.login(users.LoginRequest{User: "mallory", Password: pw})
	invalidLogin(t, err)
	_, err = v.login(users.LoginRequest{User: "nopass", Password: ""})
	invalidLogin(t, err)
	_, err = v.login(users.LoginRequest{User: "not a name!", Password: pw})
	invalidLogin(t, err)
	_, err = v.login(users.LoginRequest{User: "alice", Password: strings.Repeat("x", 2000)})
	invalidLogin(t, err)
	// A disabled user with the right password: the same answer.
	if err := v.svc.SetDisabled(v.rec("users.disable"), "alice", true); err != nil {
		t.Fatal(err)
	}
	_, err = v.login(users.LoginRequest{User: "alice", Password: pw})
	invalidLogin(t, err)
	if err := v.svc.SetDisabled(v.rec("users.enable"), "alice", false); err != nil {
		t.Fatal(err)
	}
	v.mustLogin(t, users.LoginRequest{User: "alice", Password: pw})

	// Session bounds from the config.
	v2 := v.service(func(c *users.Config) { c.SessionTTL, c.IdleTimeout = 2*time.Hour, 10*time.Minute })
	res, err := v2.Login(v.rec("auth.login"), users.LoginRequest{User: "alice", Password: pw})
	if err != nil || res.Token.Idle != 10*time.Minute || !res.Token.MaxExpireTime.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("configured bounds: %+v %v", res, err)
	}
}

// TestLoginWritesRecordWithSession: the session and the user record
// commit in one transaction (one Raft index, the version of both keys).
func TestLoginWritesRecordWithSession(t *testing.T) {
	v := newEnv(t, nil)
	u := v.create(t, "alice", nil, pw)
	tok := v.mustLogin(t, users.LoginRequest{User: "alice", Password: pw})
	_, uv := v.stored(t, "users/user/alice")
	_, tv := v.stored(t, "identity/token/"+tok.Accessor)
	if uv != tv || uv <= u.Version() {
		t.Fatalf("user record at %d, session at %d (created at %d)", uv, tv, u.Version())
	}
}

// TestBeforeCommit: the hook of WithBeforeCommit sees the session before
// it commits.
func TestBeforeCommit(t *testing.T) {
	v := newEnv(t, nil)
	v.create(t, "alice", nil, pw)
	var seen string
	ctx := users.WithBeforeCommit(v.rec("auth.login"), func(tok *identity.Token) {
		if _, err := v.ids.LookupAccessor(tok.Accessor); !errs.Is(err, errs.NotFound) {
			t.Errorf("the session exists before it commits: %v", err)
		}
		seen = tok.Accessor
	})
	res, err := v.svc.Login(ctx, users.LoginRequest{User: "alice", Password: pw})
	if err != nil || seen == "" || seen != res.Token.Accessor {
		t.Fatalf("hook saw %q, session %+v, %v", seen, res, err)
	}
}

// TestRehash: a login with a hash of older parameters replaces it with
// one of the current parameters, in the session's transaction; the
// password still works, and a wrong one does not rehash.
func TestRehash(t *testing.T) {
	v := newEnv(t, nil) // small: m=1024,t=1,p=1
	old := v.create(t, "alice", nil, pw)
	if !strings.HasPrefix(old.PasswordHash, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Fatalf("hash %s", old.PasswordHash)
	}
	newer := users.Argon2Params{Memory: 2048, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	v2 := v.service(func(c *users.Config) { c.Params = newer })
	_, err := v2.Login(v.rec("auth.login"), users.LoginRequest{User: "alice", Password: "wrong password!!"})
	invalidLogin(t, err)
	if u, _ := v2.Get(context.Background(), "alice"); u.PasswordHash != old.PasswordHash {
		t.Fatal("a failed login rehashed")
	}
	res, err := v2.Login(v.rec("auth.login"), users.LoginRequest{User: "alice", Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	m, uv := v.stored(t, "users/user/alice")
	_, tv := v.stored(t, "identity/token/"+res.Token.Accessor)
	h := m["password_hash"].(string)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=2048,t=2,p=1$") || uv != tv {
		t.Fatalf("stored hash %s at %d, session at %d", h, uv, tv)
	}
	if ok, rehash, err := users.VerifyPassword(h, []byte(pw)); !ok || !rehash || err != nil {
		t.Fatalf("new hash: %v %v %v", ok, rehash, err)
	}
	// With the current parameters, no further rehash.
	if _, err := v2.Login(v.rec("auth.login"), users.LoginRequest{User: "alice", Password: pw}); err != nil {
		t.Fatal(err)
	}
	if m2, _ := v.stored(t, "users/user/alice"); m2["password_hash"] != h {
		t.Fatal("rehashed again")
	}
	// The old service (old parameters) still logs in, and moves it back.
	if _, err := v.login(users.LoginRequest{User: "alice", Password: pw}); err != nil {
		t.Fatal(err)
	}
}

// totpCode is the current code of a user's TOTP secret.
func totpCode(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	raw, err := base32NoPad(secret)
	if err != nil {
		t.Fatal(err)
	}
	return users.TOTPCode(raw, at.Unix()/30, 6, otp.AlgorithmSHA1)
}

// enrollTOTP enrolls and confirms a TOTP factor for name, returning its
// secret and the recovery codes.
func (v *env) enrollTOTP(t testing.TB, name string) (string, []string) {
	t.Helper()
	uri, secret, err := v.svc.EnrollTOTP(v.rec("users.mfa.totp"), name)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(uri, "otpauth://totp/Warden:"+name+"?") || !strings.Contains(uri, "secret="+secret) ||
		!strings.Contains(uri, "issuer=Warden") || !strings.Contains(uri, "digits=6") || !strings.Contains(uri, "algorithm=SHA1") || !strings.Contains(uri, "period=30") {
		t.Fatalf("uri %s", uri)
	}
	codes, err := v.svc.ConfirmTOTP(v.rec("users.mfa.totp.confirm"), name, totpCode(t, secret, v.clock.Now()))
	if err != nil {
		t.Fatal(err)
	}
	return secret, codes
}

func TestTOTP(t *testing.T) {
	v := newEnv(t, nil)
	v.create(t, "alice", nil, pw)
	// Confirm without an enrollment, or with a wrong code.
	_, err := v.svc.ConfirmTOTP(v.rec("x"), "alice", "123456")
	wantCode(t, err, errs.Invalid, "totp: nothing to confirm")
	_, secret, err := v.svc.EnrollTOTP(v.rec("x"), "alice")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := v.svc.Get(context.Background(), "alice")
	if u.PendingTOTP == nil || u.TOTP != nil || u.HasMFA() {
		t.Fatalf("after enroll: %+v", u)
	}
	_, err = v.svc.ConfirmTOTP(v.rec("x"), "alice", wrongCode(t, secret, v.clock.Now()))
	wantCode(t, err, errs.Invalid, "code: wrong or expired")
	// While pending, a password login needs no code.
	v.mustLogin(t, users.LoginRequest{User: "alice", Password: pw})

	code := totpCode(t, secret, v.clock.Now())
	codes, err := v.svc.ConfirmTOTP(v.rec("x"), "alice", code)
	if err != nil || len(codes) != 10 {
		t.Fatalf("confirm: %d codes, %v", len(codes), err)
	}
	u, _ = v.svc.Get(context.Background(), "alice")
	if u.TOTP == nil || u.PendingTOTP != nil || u.TOTP.Secret != secret || u.TOTP.LastStep != t0.Unix()/30 || len(u.RecoveryCodes) != 10 {
		t.Fatalf("after confirm: %+v", u)
	}
	if view := u.View(); !slices.Equal(view.MFA, []string{"totp"}) || view.RecoveryCodesLeft != 10 {
		t.Fatalf("view %+v", view)
	}
	// The confirming code does not log in (its step is used).
	_, err = v.login(users.LoginRequest{User: "alice", Password: pw, TOTP: code})
	invalidLogin(t, err)

	// No code: MFARequired, no session, not a failure.
	res, err := v.login(users.LoginRequest{User: "alice", Password: pw})
	if err != nil || !res.MFARequired || res.Token != nil || res.Secret != "" || !slices.Equal(res.Methods, []string{"totp"}) {
		t.Fatalf("without a code: %+v %v", res, err)
	}
	// A wrong password with no code: invalid, not MFARequired.
	_, err = v.login(users.LoginRequest{User: "alice", Password: "wrong password!!"})
	invalidLogin(t, err)

	// The next step's code logs in, once.
	v.clock.add(30 * time.Second)
	code = totpCode(t, secret, v.clock.Now())
	tok := v.mustLogin(t, users.LoginRequest{User: "alice", Password: pw, TOTP: code})
	if a := tok.Auth; !a.MFA || a.MFAMethod != "totp" || a.Method != "password" {
		t.Fatalf("auth %+v", a)
	}
	m, uv := v.stored(t, "users/user/alice")
	_, tv := v.stored(t, "identity/token/"+tok.Accessor)
	if step := m["totp"].(map[string]any)["last_step"].(float64); int64(step) != v.clock.Now().Unix()/30 || uv != tv {
		t.Fatalf("last_step %v at %d, session at %d", step, uv, tv)
	}
	_, err = v.login(users.LoginRequest{User: "alice", Password: pw, TOTP: code})
	invalidLogin(t, err) // replay
	// The code of the previous step, now older than the last one used.
	_, err = v.login(users.LoginRequest{User: "alice", Password: pw, TOTP: totpCode(t, secret, v.clock.Now().Add(-30*time.Second))})
	invalidLogin(t, err)
	// Clock drift: the next step's code is accepted a step early.
	v.clock.add(30 * time.Second)
	v.mustLogin(t, users.LoginRequest{User: "alice", Password: pw, TOTP: totpCode(t, secret, v.clock.Now().Add(30*time.Second))})
	// ... which uses that step: the current code is now too old.
	_, err = v.login(users.LoginRequest{User: "alice", Password: pw, TOTP: totpCode(t, secret, v.clock.Now())})
	invalidLogin(t, err)
	// Right code, wrong password.
	v.clock.add(60 * time.Second)
	_, err = v.login(users.LoginRequest{User: "alice", Password: "wrong password!!", TOTP: totpCode(t, secret, v.clock.Now())})
	invalidLogin(t, err)
	v.mustLogin(t, users.LoginRequest{User: "alice", Password: pw, TOTP: totpCode(t, secret, v.clock.Now())})
}

// TestTOTPConcurrentReplay: two logins racing with one code: exactly one
// opens a session, the other fails, however they interleave (the code's
// step is written in the session's transaction, conditioned on the
// record both read).
func TestTOTPConcurrentReplay(t *testing.T) {
	v := newEnv(t, func(c *users.Config) { c.Backoff.UserFailures = 1000 })
	v.create(t, "alice", nil, pw)
	secret, _ := v.enrollTOTP(t, "alice")
	for round := range 8 {
		v.clock.add(30 * time.Second)
		code := totpCode(t, secret, v.clock.Now())
		start := make(chan struct{})
		var wg sync.WaitGroup
		results := make([]error, 2)
		for i := range results {
			ctx := v.rec("auth.login")
			wg.Go(func() {
				<-start
				_, results[i] = v.svc.Login(ctx, users.LoginRequest{User: "alice", Password: pw, TOTP: code})
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for _, err := range results {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, users.ErrInvalidLogin):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d logins with one code succeeded (%v)", round, wins, results)
		}
	}
}

func TestRecoveryCodes(t *testing.T) {
	v := newEnv(t, nil)
	v.create(t, "alice", nil, pw)
	_, err := v.svc.NewRecoveryCodes(v.rec("x"), "alice")
	wantCode(t, err, errs.Invalid, "enroll a second factor first")
	_, codes := v.enrollTOTP(t, "alice")
	tok := v.mustLogin(t, users.LoginRequest{User: "alice", Password: pw, TOTP: codes[0]})
	if a := tok.Auth; !a.MFA || a.MFAMethod != "totp" { // a recovery code stands in for the authenticator's code
		t.Fatalf("auth %+v", a)
	}
	_, err = v.login(users.LoginRequest{User: "alice", Password: pw, TOTP: codes[0]})
	invalidLogin(t, err) // single use
	// Case and dashes do not matter.
	v.mustLogin(t, users.LoginRequest{User: "alice", Password: pw, TOTP: strings.ToLower(strings.ReplaceAll(codes[1], "-", ""))})
	u, _ := v.svc.Get(context.Background(), "alice")
	if u.View().RecoveryCodesLeft != 8 {
		t.Fatalf("%d left", u.View().RecoveryCodesLeft)
	}
	// A code with the wrong password does not log in, and is not used.
	_, err = v.login(users.LoginRequest{User: "alice", Password: "wrong password!!", TOTP: codes[2]})
	invalidLogin(t, err)
	// New codes replace the old ones.
	fresh, err := v.svc.NewRecoveryCodes(v.rec("x"), "alice")
	if err != nil || len(fresh) != 10 {
		t.Fatal(err)
	}
	_, err = v.login(users.LoginRequest{User: "alice", Password: pw, TOTP: codes[2]})
	invalidLogin(t, err)
	v.mustLogin(t, users.LoginRequest{User: "alice", Password: pw, TOTP: fresh[9]})
	// A code of another user does not work.
	v.create(t, "bob", nil, pw+"!")
	_, bobCodes := v.enrollTOTP(t, "bob")
	_, err = v.login(users.LoginRequest{User: "alice", Password: pw, TOTP: bobCodes[0]})
	invalidLogin(t, err)
}

// TestRequireMFAGroups: a member of a group that must use MFA and has no
// factor gets a session good only to enroll one; once enrolled, the
// factor is required.
func TestRequireMFAGroups(t *testing.T) {
	v := newEnv(t, func(c *users.Config) { c.RequireMFAGroups = []string{"admins"} })
	v.create(t, "alice", []string{"admins"}, pw)
	v.create(t, "bob", []string{"dev"}, pw)
	tok := v.mustLogin(t, users.LoginRequest{User: "alice", Password: pw})
	if tok.Scope != identity.ScopeMFAEnroll || tok.Auth.MFA {
		t.Fatalf("member without a factor: scope %q, auth %+v", tok.Scope, tok.Auth)
	}
	if tok := v.mustLogin(t, users.LoginRequest{User: "bob", Password: pw}); tok.Scope != "" {
		t.Fatalf("non-member: scope %q", tok.Scope)
	}
	secret, _ := v.enrollTOTP(t, "alice")
	res, err := v.login(users.LoginRequest{User: "alice", Password: pw})
	if err != nil || !res.MFARequired {
		t.Fatalf("member with a factor, no code: %+v %v", res, err)
	}
	v.clock.add(30 * time.Second)
	tok = v.mustLogin(t, users.LoginRequest{User: "alice", Password: pw, TOTP: totpCode(t, secret, v.clock.Now())})
	if tok.Scope != "" || !tok.Auth.MFA {
		t.Fatalf("member with a factor: scope %q, auth %+v", tok.Scope, tok.Auth)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("a non-canonical group in RequireMFAGroups did not panic")
			}
		}()
		v.service(func(c *users.Config) { c.RequireMFAGroups = []string{"Admins"} })
	}()
}

// TestDisableAndDeleteRevoke: disabling or deleting a user revokes every
// token of the user, sessions and their children alike, with the change.
func TestDisableAndDeleteRevoke(t *testing.T) {
	v := newEnv(t, nil)
	v.create(t, "alice", nil, pw)
	v.create(t, "bob", nil, pw)
	var secrets []identity.Secret
	for range 2 {
		res, err := v.login(users.LoginRequest{User: "alice", Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, res.Secret)
	}
	parent, _ := v.ids.Authenticate(secrets[0].Reveal())
	child, _, err := v.ids.Create(v.rec("token.create"), parent, identity.CreateRequest{DisplayName: "child"})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, child)
	bob, _ := v.login(users.LoginRequest{User: "bob", Password: pw})

	if err := v.svc.SetDisabled(v.rec("users.disable"), "alice", true); err != nil {
		t.Fatal(err)
	}
	for i, s := range secrets {
		if _, err := v.ids.Authenticate(s.Reveal()); !errs.Is(err, errs.Unauthenticated) {
			t.Errorf("token %d of a disabled user: %v", i, err)
		}
	}
	if _, err := v.ids.Authenticate(bob.Secret.Reveal()); err != nil {
		t.Fatalf("another user's session: %v", err)
	}
	u, _ := v.svc.Get(context.Background(), "alice")
	if !u.Disabled || !u.View().Disabled {
		t.Fatal("not disabled")
	}
	_, err = v.login(users.LoginRequest{User: "alice", Password: pw})
	invalidLogin(t, err)
	// Disabling again is fine; enabling lets the user in again.
	if err := v.svc.SetDisabled(v.rec("users.disable"), "alice", true); err != nil {
		t.Fatal(err)
	}
	if err := v.svc.SetDisabled(v.rec("users.enable"), "alice", false); err != nil {
		t.Fatal(err)
	}
	res, err := v.login(users.LoginRequest{User: "alice", Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.svc.Unlock(v.rec("users.unlock"), "alice"); err != nil {
		t.Fatal(err)
	}
	if err := v.svc.Delete(v.rec("users.delete"), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.ids.Authenticate(res.Secret.Reveal()); !errs.Is(err, errs.Unauthenticated) {
		t.Fatalf("session of a deleted user: %v", err)
	}
	_, err = v.svc.Get(context.Background(), "alice")
	wantCode(t, err, errs.NotFound, "not found")
	for _, k := range []string{"users/user/alice", "users/unlock/alice"} {
		if _, err := v.core.Get(context.Background(), k); !errs.Is(err, errs.NotFound) {
			t.Errorf("%s after Delete: %v", k, err)
		}
	}
	if keys, _ := v.core.ListKeys(context.Background(), "identity/user-token/alice/", 0); len(keys) != 0 {
		t.Errorf("token index left: %v", keys)
	}
	for _, f := range []func() error{
		func() error { return v.svc.Delete(v.rec("x"), "alice") },
		func() error { return v.svc.SetDisabled(v.rec("x"), "alice", true) },
		func() error { return v.svc.Unlock(v.rec("x"), "alice") },
		func() error { return v.svc.ResetMFA(v.rec("x"), "alice") },
		func() error { return v.svc.SetPassword(v.rec("x"), "alice", []byte(pw)) },
	} {
		wantCode(t, f(), errs.NotFound, "not found")
	}
}

// TestDisableRacesLogin: whichever way a login and a disable interleave,
// no session of the user is left alive once the disable returned.
func TestDisableRacesLogin(t *testing.T) {
	v := newEnv(t, func(c *users.Config) { c.Backoff.UserFailures = 1000 })
	v.create(t, "alice", nil, pw)
	for round := range 12 {
		if err := v.svc.SetDisabled(v.rec("users.enable"), "alice", false); err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		var res *users.LoginResult
		var lerr, derr error
		lctx, dctx := v.rec("auth.login"), v.rec("users.disable")
		wg.Go(func() {
			<-start
			res, lerr = v.svc.Login(lctx, users.LoginRequest{User: "alice", Password: pw})
		})
		wg.Go(func() {
			<-start
			derr = v.svc.SetDisabled(dctx, "alice", true)
		})
		close(start)
		wg.Wait()
		if derr != nil {
			t.Fatalf("round %d: disable: %v", round, derr)
		}
		if lerr != nil {
			invalidLogin(t, lerr)
			continue
		}
		if _, err := v.ids.Authenticate(res.Secret.Reveal()); !errs.Is(err, errs.Unauthenticated) {
			t.Fatalf("round %d: a session opened during the disable survived it: %v", round, err)
		}
	}
}

func TestLockoutAndUnlock(t *testing.T) {
	alerts := make(chan string, 100)
	v := newEnv(t, func(c *users.Config) {
		c.OnLoginFailures = func(user, addr string, n int) { alerts <- fmt.Sprintf("%s|%s|%d", user, addr, n) }
	})
	v.create(t, "alice", nil, pw)
	for range 5 {
		_, err := v.login(users.LoginRequest{User: "alice", Password: "wrong password!!", Source: "192.0.2.7"})
		invalidLogin(t, err)
	}
	// Locked for 1 s: even the right password is not tried.
	_, err := v.login(users.LoginRequest{User: "alice", Password: pw, Source: "192.0.2.8"})
	wantCode(t, err, errs.RateLimited, "too many failed logins; retry in 1 s")
	_, err = v.svc.CheckLogin(v.rec("x"), "alice", pw, "192.0.2.8")
	wantCode(t, err, errs.RateLimited, "too many failed logins; retry in 1 s")
	u, _ := v.svc.Get(context.Background(), "alice")
	if view := u.View(); !view.Locked || view.LockedUntil != t0.Add(time.Second).Format(time.RFC3339) {
		t.Fatalf("view %+v", view)
	}
	waitAlert(t, alerts, "alice|192.0.2.7|5")
	// An unknown name locks the same way, with the same answer.
	for range 5 {
		_, err := v.login(users.LoginRequest{User: "mallory", Password: "wrong password!!"})
		invalidLogin(t, err)
	}
	_, err = v.login(users.LoginRequest{User: "mallory", Password: pw})
	wantCode(t, err, errs.RateLimited, "too many failed logins; retry in 1 s")

	// After the wait, one more failure doubles it.
	v.clock.add(time.Second)
	_, err = v.login(users.LoginRequest{User: "alice", Password: "wrong password!!"})
	invalidLogin(t, err)
	_, err = v.login(users.LoginRequest{User: "alice", Password: pw})
	wantCode(t, err, errs.RateLimited, "retry in 2 s")

	// Unlock, through another node: this node reads it and forgets the
	// earlier failures.
	other := v.service(nil)
	v.clock.add(time.Millisecond)
	if err := other.Unlock(v.rec("users.unlock"), "alice"); err != nil {
		t.Fatal(err)
	}
	m, _ := v.stored(t, "users/unlock/alice")
	if m["time"] != v.clock.Now().Format(time.RFC3339Nano) {
		t.Fatalf("unlock record %v", m)
	}
	v.mustLogin(t, users.LoginRequest{User: "alice", Password: pw})
	// A success cleared the name: 4 failures do not lock it.
	for range 4 {
		_, err := v.login(users.LoginRequest{User: "alice", Password: "wrong password!!"})
		invalidLogin(t, err)
	}
	v.mustLogin(t, users.LoginRequest{User: "alice", Password: pw})

	// Per address: 20 failures from one address, over many names, hold
	// back every name from it, not from elsewhere.
	v.clock.add(time.Hour)
	for i := range 20 {
		_, err := v.login(users.LoginRequest{User: fmt.Sprint("guess", i), Password: "wrong password!!", Source: "[2001:db8::1]:443"})
		invalidLogin(t, err)
	}
	_, err = v.login(users.LoginRequest{User: "alice", Password: pw, Source: "2001:db8::2"}) // the same /64
	wantCode(t, err, errs.RateLimited, "too many failed logins")
	v.mustLogin(t, users.LoginRequest{User: "alice", Password: pw, Source: "2001:db8:0:1::2"})
	waitAlert(t, alerts, "|2001:db8::/64|20")
}

func TestPasskeys(t *testing.T) {
	v := newEnv(t, nil)
	v.create(t, "alice", nil, pw)
	ctx := context.Background()
	cred := json.RawMessage(`{"id":"AQID","publicKey":"pk","authenticator":{"signCount":1}}`)
	if err := v.svc.AddPasskey(v.rec("x"), "alice", "YubiKey 5", []byte{1, 2, 3}, cred); err != nil {
		t.Fatal(err)
	}
	wantCode(t, v.svc.AddPasskey(v.rec("x"), "alice", "YubiKey 5", []byte{4}, cred), errs.Conflict, "exists already")
	wantCode(t, v.svc.AddPasskey(v.rec("x"), "alice", "Phone", []byte{1, 2, 3}, cred), errs.Conflict, "registered already")
	wantCode(t, v.svc.AddPasskey(v.rec("x"), "alice", "", []byte{5}, cred), errs.Invalid, "passkey name")
	wantCode(t, v.svc.AddPasskey(v.rec("x"), "alice", "bad\x00name", []byte{5}, cred), errs.Invalid, "passkey name")
	wantCode(t, v.svc.AddPasskey(v.rec("x"), "alice", "Phone", nil, cred), errs.Invalid, "credential id")
	wantCode(t, v.svc.AddPasskey(v.rec("x"), "alice", "Phone", []byte{5}, json.RawMessage(`{`)), errs.Invalid, "credential")
	u, _ := v.svc.Get(ctx, "alice")
	if !u.HasMFA() || len(u.Passkeys) != 1 || u.Passkeys[0].ID != "AQID" || !u.Passkeys[0].Created.Equal(t0) {
		t.Fatalf("%+v", u.Passkeys)
	}
	view, _ := json.Marshal(u.View())
	if strings.Contains(string(view), "publicKey") || !strings.Contains(string(view), `"mfa":["webauthn"]`) ||
		!strings.Contains(string(view), `"name":"YubiKey 5"`) {
		t.Fatalf("view %s", view)
	}
	// A password login now needs the passkey.
	res, err := v.login(users.LoginRequest{User: "alice", Password: pw})
	if err != nil || !res.MFARequired || !slices.Equal(res.Methods, []string{"webauthn"}) {
		t.Fatalf("%+v %v", res, err)
	}
	// A TOTP code is no substitute.
	_, err = v.login(users.LoginRequest{User: "alice", Password: pw, TOTP: "123456"})
	invalidLogin(t, err)

	_, err = v.svc.CheckLogin(v.rec("x"), "alice", "wrong password!!", "")
	invalidLogin(t, err)
	_, err = v.svc.CheckLogin(v.rec("x"), "nobody", pw, "")
	invalidLogin(t, err)
	cu, err := v.svc.CheckLogin(v.rec("x"), "alice", pw, "")
	if err != nil || cu.Name != "alice" {
		t.Fatal(err)
	}
	v.clock.add(time.Minute)
	updated := json.RawMessage(`{"id":"AQID","publicKey":"pk","authenticator":{"signCount":2}}`)
	_, _, err = v.svc.FinishPasskeyLogin(v.rec("auth.login"), cu, "AQIE", updated)
	invalidLogin(t, err)
	secret, tok, err := v.svc.FinishPasskeyLogin(v.rec("auth.login"), cu, "AQID", updated)
	if err != nil {
		t.Fatal(err)
	}
	if a := tok.Auth; !a.MFA || a.MFAMethod != "webauthn" || a.Method != "password" || tok.User != "alice" {
		t.Fatalf("auth %+v", a)
	}
	if _, err := v.ids.Authenticate(secret.Reveal()); err != nil {
		t.Fatal(err)
	}
	u, _ = v.svc.Get(ctx, "alice")
	if string(u.Passkeys[0].Credential) != string(updated) || !u.Passkeys[0].LastUsed.Equal(t0.Add(time.Minute)) {
		t.Fatalf("passkey after login: %s %v", u.Passkeys[0].Credential, u.Passkeys[0].LastUsed)
	}
	_, uv := v.stored(t, "users/user/alice")
	_, tv := v.stored(t, "identity/token/"+tok.Accessor)
	if uv != tv {
		t.Fatal("passkey update and session not in one transaction")
	}
	// The password changed since CheckLogin: refused.
	if err := v.svc.SetPassword(v.rec("x"), "alice", []byte(pw+" 2")); err != nil {
		t.Fatal(err)
	}
	_, _, err = v.svc.FinishPasskeyLogin(v.rec("auth.login"), cu, "AQID", updated)
	invalidLogin(t, err)
	// Disabled since: refused.
	cu, _ = v.svc.CheckLogin(v.rec("x"), "alice", pw+" 2", "")
	if err := v.svc.SetDisabled(v.rec("x"), "alice", true); err != nil {
		t.Fatal(err)
	}
	_, _, err = v.svc.FinishPasskeyLogin(v.rec("auth.login"), cu, "AQID", updated)
	invalidLogin(t, err)

	wantCode(t, v.svc.RemovePasskey(v.rec("x"), "alice", "Phone"), errs.NotFound, `passkey "Phone" not found`)
	if err := v.svc.RemovePasskey(v.rec("x"), "alice", "YubiKey 5"); err != nil {
		t.Fatal(err)
	}
	if u, _ := v.svc.Get(ctx, "alice"); u.HasMFA() {
		t.Fatal("passkey not removed")
	}
}

func TestResetMFAAndSetPassword(t *testing.T) {
	v := newEnv(t, nil)
	v.create(t, "alice", nil, pw)
	v.enrollTOTP(t, "alice")
	if err := v.svc.AddPasskey(v.rec("x"), "alice", "key", []byte{9}, json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.svc.EnrollTOTP(v.rec("x"), "alice"); err != nil { // a pending one too
		t.Fatal(err)
	}
	res, _ := v.login(users.LoginRequest{User: "alice", Password: pw})
	if !res.MFARequired || !slices.Equal(res.Methods, []string{"totp", "webauthn"}) {
		t.Fatalf("%+v", res)
	}
	if err := v.svc.ResetMFA(v.rec("users.mfa.reset"), "alice"); err != nil {
		t.Fatal(err)
	}
	u, _ := v.svc.Get(context.Background(), "alice")
	if u.HasMFA() || u.TOTP != nil || u.PendingTOTP != nil || u.RecoveryCodes != nil || u.Passkeys != nil {
		t.Fatalf("after reset %+v", u)
	}
	res, err := v.login(users.LoginRequest{User: "alice", Password: pw})
	if err != nil || res.Token == nil {
		t.Fatalf("login: %+v, %v", res, err)
	}

	// SetPassword applies the rules, replaces the password, and ends
	// the sessions opened with the old one.
	err = v.svc.SetPassword(v.rec("x"), "alice", []byte("password1234"))
	wantCode(t, err, errs.Invalid, "common")
	if err := v.svc.SetPassword(v.rec("x"), "alice", []byte("a whole new passphrase")); err != nil {
		t.Fatal(err)
	}
	_, err = v.login(users.LoginRequest{User: "alice", Password: pw})
	invalidLogin(t, err)
	v.mustLogin(t, users.LoginRequest{User: "alice", Password: "a whole new passphrase"})
	if _, err := v.ids.Authenticate(res.Secret.Reveal()); !errs.Is(err, errs.Unauthenticated) {
		t.Fatalf("the session opened before SetPassword still authenticates: %v", err)
	}
	// A user created without a password gets one.
	v.create(t, "bob", nil, "")
	if u, _ := v.svc.Get(context.Background(), "bob"); u.View().HasPassword {
		t.Fatal("HasPassword without one")
	}
	if err := v.svc.SetPassword(v.rec("x"), "bob", []byte(pw)); err != nil {
		t.Fatal(err)
	}
	v.mustLogin(t, users.LoginRequest{User: "bob", Password: pw})
}

// TestNoSecretInErrors: no error of a login or an admin operation carries
// the password or the code it was given.
func TestNoSecretInErrors(t *testing.T) {
	v := newEnv(t, nil)
	v.create(t, "alice", nil, pw)
	secret, codes := v.enrollTOTP(t, "alice")
	secretPw := "Sup3r-Secret-Passw0rd"
	wrong := wrongCode(t, secret, v.clock.Now())
	var got []error
	for _, req := range []users.LoginRequest{
		{User: "alice", Password: secretPw, TOTP: wrong},
		{User: "alice", Password: pw, TOTP: wrong},
		{User: "alice", Password: pw, TOTP: codes[0] + "X"},
		{User: "nobody", Password: secretPw},
	} {
		_, err := v.login(req)
		got = append(got, err)
	}
	_, err := v.svc.Create(v.rec("x"), "carol", nil, []byte("Sup3r"))
	got = append(got, err)
	_, err = v.svc.ConfirmTOTP(v.rec("x"), "alice", wrong)
	got = append(got, err)
	for _, err := range got {
		if err == nil {
			t.Fatal("no error")
		}
		for _, s := range []string{secretPw, "Sup3r", wrong, codes[0], secret} {
			if strings.Contains(err.Error(), s) {
				t.Fatalf("error %q contains a secret", err)
			}
		}
	}
}

// TestNewPanicsOnBadConfig: wiring mistakes are caught at New.
func TestNewPanicsOnBadConfig(t *testing.T) {
	for name, cfg := range map[string]users.Config{
		"no storage":     {Sessions: &identity.Service{}},
		"bad parameters": {Storage: (*core.Core)(nil), Sessions: &identity.Service{}, Params: users.Argon2Params{Memory: 1 << 30, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			users.New(cfg)
		}()
	}
}

func base32NoPad(s string) ([]byte, error) {
	return base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
}

// wrongCode is a 6-digit code that is not the secret's code of the step
// of at, nor of the steps either side.
func wrongCode(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	for n := 0; ; n++ {
		c := fmt.Sprintf("%06d", n)
		if c != totpCode(t, secret, at) && c != totpCode(t, secret, at.Add(-30*time.Second)) && c != totpCode(t, secret, at.Add(30*time.Second)) {
			return c
		}
	}
}

// waitAlert waits for the alert want among those the callback sends.
func waitAlert(t testing.TB, alerts <-chan string, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var seen []string
	for {
		select {
		case a := <-alerts:
			if a == want {
				return
			}
			seen = append(seen, a)
		case <-deadline:
			t.Fatalf("no alert %q (saw %q)", want, seen)
		}
	}
}

// TestConcurrentLogins: logins of one user racing with each other all
// succeed (each writes the record, so all but one start over against the
// new record), including when the first ones rehash the password and the
// others must check it against the new hash.
func TestConcurrentLogins(t *testing.T) {
	v := newEnv(t, nil)
	v.create(t, "alice", nil, pw)
	newer := users.Argon2Params{Memory: 2048, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	v2 := v.service(func(c *users.Config) { c.Params = newer })
	for round := range 4 {
		start := make(chan struct{})
		var wg sync.WaitGroup
		results := make([]error, 4)
		for i := range results {
			ctx := v.rec("auth.login")
			wg.Go(func() {
				<-start
				_, results[i] = v2.Login(ctx, users.LoginRequest{User: "alice", Password: pw})
			})
		}
		close(start)
		wg.Wait()
		for i, err := range results {
			if err != nil {
				t.Fatalf("round %d, login %d: %v", round, i, err)
			}
		}
	}
	m, _ := v.stored(t, "users/user/alice")
	if h := m["password_hash"].(string); !strings.HasPrefix(h, "$argon2id$v=19$m=2048,t=1,p=1$") {
		t.Fatalf("hash %s", h)
	}
}

// TestNoRehashWithoutFactor: a right password with a wrong code writes
// nothing, not even the rehash.
func TestNoRehashWithoutFactor(t *testing.T) {
	v := newEnv(t, nil)
	v.create(t, "alice", nil, pw)
	secret, _ := v.enrollTOTP(t, "alice")
	_, before := v.stored(t, "users/user/alice")
	newer := users.Argon2Params{Memory: 2048, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	v2 := v.service(func(c *users.Config) { c.Params = newer })
	v.clock.add(30 * time.Second)
	_, err := v2.Login(v.rec("auth.login"), users.LoginRequest{User: "alice", Password: pw, TOTP: wrongCode(t, secret, v.clock.Now())})
	invalidLogin(t, err)
	if res, err := v2.Login(v.rec("auth.login"), users.LoginRequest{User: "alice", Password: pw}); err != nil || !res.MFARequired {
		t.Fatalf("%+v %v", res, err)
	}
	if _, after := v.stored(t, "users/user/alice"); after != before {
		t.Fatal("a login without its factor wrote the record")
	}
	_, err = v2.Login(v.rec("auth.login"), users.LoginRequest{User: "alice", Password: pw, TOTP: totpCode(t, secret, v.clock.Now())})
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := v.stored(t, "users/user/alice"); !strings.HasPrefix(m["password_hash"].(string), "$argon2id$v=19$m=2048,") {
		t.Fatal("not rehashed")
	}
}
