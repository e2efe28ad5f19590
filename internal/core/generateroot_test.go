package core

import (
	"bytes"
	"context"
	"crypto/hpke"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store"
)

// genRootFixture is an initialized, unsealed Core over a real store, with
// a settable clock, and hooks that keep what they were given.
type genRootFixture struct {
	t    *testing.T
	ctx  context.Context
	c    *Core
	root InitResult

	mu      sync.Mutex
	now     time.Time
	events  []RootGenEvent
	mints   int
	failRec error // Record's answer
	failMnt error // Mint's answer
}

func newGenRootFixture(t *testing.T, shares, threshold int) *genRootFixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	st, err := store.Open(store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	f := &genRootFixture{t: t, ctx: ctx, now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	f.c = New(Config{Store: st, Now: f.clock})
	f.root, err = f.c.Init(ctx, shares, threshold, func(enc Encrypter, _ string) ([]store.Op, store.AuditLeaf, error) {
		h := audit.LeafHash([]byte("init"))
		ct, err := enc.Encrypt(audit.LeafAAD(h), []byte("init"))
		return nil, store.AuditLeaf{Hash: h, Value: ct}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.c.UnsealWithRoot(f.root.RootKey); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *genRootFixture) clock() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
func (f *genRootFixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *genRootFixture) hooks() RootGenHooks {
	return RootGenHooks{
		Record: func(_ context.Context, ev RootGenEvent) error {
			if f.failRec != nil {
				return f.failRec
			}
			f.events = append(f.events, ev)
			return nil
		},
		Mint: func(_ context.Context, st RootGenStatus) (string, string, error) {
			if f.failMnt != nil {
				return "", "", f.failMnt
			}
			if st.Progress != st.Required || st.Complete {
				f.t.Errorf("Mint given status %+v", st)
			}
			f.mints++
			return "wdn_the-new-root-token", "acc-1", nil
		},
	}
}

func (f *genRootFixture) steps() []RootGenStep {
	var s []RootGenStep
	for _, e := range f.events {
		s = append(s, e.Step)
	}
	return s
}

func newRequesterKey(t *testing.T) (hpke.PrivateKey, hpke.PublicKey) {
	t.Helper()
	kem, _, _ := GenerateRootSuite()
	priv, err := kem.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParseGenerateRootPublicKey(base64.StdEncoding.EncodeToString(priv.PublicKey().Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func wantCode(t *testing.T, err error, code errs.Code, msg string) {
	t.Helper()
	if err == nil || errs.CodeOf(err) != code || !strings.Contains(err.Error(), msg) {
		t.Fatalf("error %v (code %s), want %s containing %q", err, errs.CodeOf(err), code, msg)
	}
}

func (f *genRootFixture) progress() int {
	f.t.Helper()
	st, err := f.c.GenerateRootStatus()
	if err != nil {
		f.t.Fatal(err)
	}
	return st.Progress
}

// TestGenerateRootFlow: a quorum of unseal keys completes the attempt and
// the token is sealed to the requester's key under the attempt's nonce;
// fewer do not; a foreign key discards the keys given; repeats, wrong
// nonces and malformed input change nothing; a step whose record fails
// does not happen.
func TestGenerateRootFlow(t *testing.T) {
	f := newGenRootFixture(t, 5, 3)
	keys := f.root.UnsealKeys
	h := f.hooks()
	if st, err := f.c.GenerateRootStatus(); err != nil || st.Started || st.Required != 3 {
		t.Fatalf("status before: %+v %v", st, err)
	}
	priv, pub := newRequesterKey(t)
	nonce, st, err := f.c.GenerateRootInit(f.ctx, pub, h)
	if err != nil || len(nonce) != 32 || !st.Started || st.Fingerprint != PublicKeyFingerprint(pub.Bytes()) || st.Progress != 0 {
		t.Fatalf("init: %q %+v %v", nonce, st, err)
	}
	if !st.ExpiresAt.Equal(f.clock().Add(GenerateRootTTL)) {
		t.Fatalf("expires %s", st.ExpiresAt)
	}
	_, _, err = f.c.GenerateRootInit(f.ctx, pub, h)
	wantCode(t, err, errs.Conflict, "already in progress")

	foreign := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 33))
	other := "0123456789abcdef0123456789abcdef"
	if other == nonce {
		other = "fedcba9876543210fedcba9876543210"
	}
	bad := []struct{ name, nonce, key, msg string }{
		{"no nonce", "", keys[0], "nonce: required"},
		{"short nonce", "abc", keys[0], "nonce: must be"},
		{"upper-case nonce", strings.ToUpper(nonce), keys[0], "nonce: must be"},
		{"wrong nonce", other, keys[0], "nonce: does not match"},
		{"no key", nonce, "", "key: required"},
		{"malformed key", nonce, "!!", "key: not valid base64"},
		{"foreign key, nothing given yet", nonce, foreign, "not one of this cluster's unseal keys"},
	}
	for _, tc := range bad {
		_, err := f.c.GenerateRootUpdate(f.ctx, tc.nonce, tc.key, h)
		wantCode(t, err, errs.Invalid, tc.msg)
		if f.progress() != 0 {
			t.Fatalf("%s: progress changed", tc.name)
		}
	}
	if len(f.events) != 1 {
		t.Fatalf("refused input was recorded: %v", f.steps())
	}

	if st, err := f.c.GenerateRootUpdate(f.ctx, nonce, keys[0], h); err != nil || st.Progress != 1 || st.Complete {
		t.Fatalf("first key: %+v %v", st, err)
	}
	_, err = f.c.GenerateRootUpdate(f.ctx, nonce, keys[0], h)
	wantCode(t, err, errs.Invalid, "already given")
	// A step whose record does not commit does not happen.
	f.failRec = errs.E(errs.Unavailable, "audit down")
	_, err = f.c.GenerateRootUpdate(f.ctx, nonce, keys[1], h)
	wantCode(t, err, errs.Unavailable, "audit down")
	f.failRec = nil
	if f.progress() != 1 {
		t.Fatal("a key was counted without its record")
	}
	if st, err := f.c.GenerateRootUpdate(f.ctx, nonce, keys[1], h); err != nil || st.Progress != 2 {
		t.Fatalf("second key: %+v %v", st, err)
	}
	// Two of three: nothing made.
	if st, _ := f.c.GenerateRootStatus(); st.Complete || st.EncryptedToken != nil || f.mints != 0 {
		t.Fatalf("below the threshold: %+v, %d mints", st, f.mints)
	}
	// A foreign key discards the two.
	_, err = f.c.GenerateRootUpdate(f.ctx, nonce, foreign, h)
	wantCode(t, err, errs.Invalid, "the 2 shares given so far in this attempt are discarded")
	if f.progress() != 0 {
		t.Fatal("a foreign key did not reset the attempt")
	}
	if got := f.steps(); len(got) != 4 || got[3] != RootGenReset || f.events[3].Err == nil {
		t.Fatalf("steps %v", got)
	}
	// Mint failing uses up the keys and makes nothing.
	f.failMnt = errs.E(errs.Unavailable, "no leader")
	for _, k := range keys[2:4] {
		if _, err := f.c.GenerateRootUpdate(f.ctx, nonce, k, h); err != nil {
			t.Fatal(err)
		}
	}
	_, err = f.c.GenerateRootUpdate(f.ctx, nonce, keys[4], h)
	wantCode(t, err, errs.Unavailable, "no leader")
	if st, _ := f.c.GenerateRootStatus(); st.Progress != 0 || st.Complete {
		t.Fatalf("after a failed mint: %+v", st)
	}
	f.failMnt = nil

	for i, k := range []string{keys[4], keys[0], keys[2]} {
		st, err = f.c.GenerateRootUpdate(f.ctx, nonce, k, h)
		if err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
	}
	if !st.Complete || st.TokenAccessor != "acc-1" || f.mints != 1 || st.Progress != 3 {
		t.Fatalf("at the threshold: %+v, %d mints", st, f.mints)
	}
	_, kdf, aead := GenerateRootSuite()
	pt, err := hpke.Open(priv, kdf, aead, []byte(GenerateRootInfoPrefix+nonce), st.EncryptedToken)
	if err != nil || string(pt) != "wdn_the-new-root-token" {
		t.Fatalf("open: %q %v", pt, err)
	}
	if _, err := hpke.Open(priv, kdf, aead, []byte(GenerateRootInfoPrefix+other), st.EncryptedToken); err == nil {
		t.Fatal("the token opens under another nonce")
	}
	if bytes.Contains(st.EncryptedToken, []byte("the-new-root-token")) {
		t.Fatal("the encrypted token holds the token")
	}
	_, err = f.c.GenerateRootUpdate(f.ctx, nonce, keys[1], h)
	wantCode(t, err, errs.Conflict, "complete")
	_, _, err = f.c.GenerateRootInit(f.ctx, pub, h)
	wantCode(t, err, errs.Conflict, "waits for its requester")

	// The requester collects it: cancel with the nonce.
	wantCode(t, f.c.GenerateRootCancel(f.ctx, other, "", h), errs.Invalid, "nonce: does not match")
	wantCode(t, f.c.GenerateRootCancel(f.ctx, nonce, keys[0], h), errs.Invalid, "not both")
	wantCode(t, f.c.GenerateRootCancel(f.ctx, "", "", h), errs.Invalid, "nonce: required")
	if err := f.c.GenerateRootCancel(f.ctx, nonce, "", h); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.c.GenerateRootStatus(); st.Started {
		t.Fatalf("after cancel: %+v", st)
	}
	wantCode(t, f.c.GenerateRootCancel(f.ctx, nonce, "", h), errs.NotFound, "no root token generation attempt")
	if last := f.events[len(f.events)-1]; last.Step != RootGenCancelled || last.By != "nonce" {
		t.Fatalf("last event %+v", last)
	}
}

// TestGenerateRootEnds: an attempt ends at its expiry, when the node is
// sealed, and when a key holder cancels it with an unseal key; a sealed
// node starts none; starts are bounded.
func TestGenerateRootEnds(t *testing.T) {
	f := newGenRootFixture(t, 3, 2)
	keys := f.root.UnsealKeys
	h := f.hooks()
	_, pub := newRequesterKey(t)

	nonce, _, err := f.c.GenerateRootInit(f.ctx, pub, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.GenerateRootUpdate(f.ctx, nonce, keys[0], h); err != nil {
		t.Fatal(err)
	}
	f.advance(GenerateRootTTL - time.Second)
	if f.progress() != 1 {
		t.Fatal("ended before its expiry")
	}
	f.advance(time.Second)
	if st, _ := f.c.GenerateRootStatus(); st.Started {
		t.Fatalf("alive at its expiry: %+v", st)
	}
	_, err = f.c.GenerateRootUpdate(f.ctx, nonce, keys[1], h)
	wantCode(t, err, errs.NotFound, "no root token generation attempt")

	// Sealing discards it, even once unsealed again.
	nonce, _, err = f.c.GenerateRootInit(f.ctx, pub, h)
	if err != nil {
		t.Fatal(err)
	}
	f.c.Seal()
	_, _, err = f.c.GenerateRootInit(f.ctx, pub, h)
	if !errors.Is(err, ErrSealed) {
		t.Fatalf("init while sealed: %v", err)
	}
	if st, err := f.c.GenerateRootStatus(); err != nil || st.Started {
		t.Fatalf("status while sealed: %+v %v", st, err)
	}
	if err := f.c.UnsealWithRoot(f.root.RootKey); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.c.GenerateRootStatus(); st.Started {
		t.Fatalf("an attempt survived a seal: %+v", st)
	}
	_, err = f.c.GenerateRootUpdate(f.ctx, nonce, keys[0], h)
	wantCode(t, err, errs.NotFound, "no root token generation attempt")

	// A key holder cancels with an unseal key; a foreign key cannot.
	if _, _, err = f.c.GenerateRootInit(f.ctx, pub, h); err != nil {
		t.Fatal(err)
	}
	wantCode(t, f.c.GenerateRootCancel(f.ctx, "", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 33)), h),
		errs.Invalid, "not one of this cluster's unseal keys")
	if err := f.c.GenerateRootCancel(f.ctx, "", keys[2], h); err != nil {
		t.Fatal(err)
	}
	if last := f.events[len(f.events)-1]; last.Step != RootGenCancelled || last.By != "unseal-key" {
		t.Fatalf("last event %+v", last)
	}

	// Starts: a burst, then one per period. Two started since the clock
	// moved past the expiry, which refilled the budget.
	started := 2
	for {
		n, _, err := f.c.GenerateRootInit(f.ctx, pub, h)
		if errs.Is(err, errs.RateLimited) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		started++
		if err := f.c.GenerateRootCancel(f.ctx, n, "", h); err != nil {
			t.Fatal(err)
		}
	}
	if started != GenerateRootStartBurst {
		t.Fatalf("%d starts before the limit, want %d", started, GenerateRootStartBurst)
	}
	f.advance(GenerateRootStartEvery)
	if _, _, err := f.c.GenerateRootInit(f.ctx, pub, h); err != nil {
		t.Fatalf("after a period: %v", err)
	}
}

func TestParseGenerateRootPublicKey(t *testing.T) {
	_, pub := newRequesterKey(t)
	good := base64.StdEncoding.EncodeToString(pub.Bytes())
	if _, err := ParseGenerateRootPublicKey(good); err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]string{
		"empty":      "",
		"raw base64": base64.RawStdEncoding.EncodeToString(pub.Bytes()),
		"spaces":     " " + good,
		"short":      base64.StdEncoding.EncodeToString(pub.Bytes()[:31]),
		"long":       base64.StdEncoding.EncodeToString(append(pub.Bytes(), 0)),
		// The all-zero point (low order) cannot be encrypted to.
		"zero point": base64.StdEncoding.EncodeToString(make([]byte, 32)),
	} {
		if _, err := ParseGenerateRootPublicKey(in); err == nil || errs.CodeOf(err) != errs.Invalid || !strings.HasPrefix(err.Error(), "public_key: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzGenerateRootParsers: the parsers of root generation input never
// panic, refuse with Invalid errors only, and accept only canonical forms.
func FuzzGenerateRootParsers(f *testing.F) {
	f.Add("0123456789abcdef0123456789abcdef")
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, 32)))
	f.Add("9w8iQmBG1Pm6Wm7f4lvjQ5K0vJXbZc4Xq1mNnY3PZ2E=")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		if pk, err := ParseGenerateRootPublicKey(in); err != nil {
			if errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("public key: %v", err)
			}
		} else if base64.StdEncoding.EncodeToString(pk.Bytes()) != in {
			t.Fatalf("accepted a non-canonical public key %q", in)
		}
		if n, err := ParseGenerateRootNonce(in); err != nil {
			if errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("nonce: %v", err)
			}
		} else if string(n) != in || len(in) != 32 {
			t.Fatalf("accepted nonce %q", in)
		}
	})
}
