package core

// Root token generation: a quorum of unseal key holders, not a token, makes
// a new root token, encrypted to a one-time key of the requester so that
// the key holders never see it (docs/governance.md "Generate root").
//
// An attempt lives in the memory of the node that serves it, one at a time,
// for GenerateRootTTL. A requester starts it with an X25519 public key and
// gets a nonce; key holders give their unseal keys with that nonce; when the
// threshold is reached the shares are combined into the root key, which must
// open the keyring (as unseal checks it), the new token is made (through the
// caller's Mint, which commits it with its audit record), sealed with HPKE
// to the requester's key, and kept until the requester collects it (cancel)
// or the attempt expires. Sealing the node discards the attempt.
//
// Every step that changes the attempt is refused unless its audit record
// commits first (RootGenHooks.Record); the completion's record rides with
// the token's own transaction.

import (
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/warden-sec/warden/internal/barrier"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/shamir"
)

// GenerateRootTTL is how long an attempt lives from its start, whether it
// completes or not.
const GenerateRootTTL = time.Hour

// Bounds on starting attempts on one node: a burst of GenerateRootStartBurst,
// then one per GenerateRootStartEvery. Starting needs no credential, so this
// keeps an anonymous caller from making the node commit a record per request.
const (
	GenerateRootStartBurst = 10
	GenerateRootStartEvery = time.Minute
)

// GenerateRootInfoPrefix, followed by the attempt's nonce, is the HPKE info
// the new token is sealed under: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
// AES-256-GCM (RFC 9180 base mode, no AAD), the ciphertext being the
// encapsulated key followed by the AEAD output (crypto/hpke.Seal).
const GenerateRootInfoPrefix = "warden/generate-root/v1\x00"

// GenerateRootSuite returns the HPKE suite of root generation.
func GenerateRootSuite() (hpke.KEM, hpke.KDF, hpke.AEAD) {
	return hpke.DHKEM(ecdh.X25519()), hpke.HKDFSHA256(), hpke.AES256GCM()
}

// nonceBytes is the random part of a nonce; its text is twice as many hex
// digits.
const nonceBytes = 16

// RootGenStatus describes the attempt of this node.
type RootGenStatus struct {
	Started  bool
	Progress int // shares accepted so far
	Required int // the unseal threshold
	// Fingerprint is "sha256:" and the hex SHA-256 of the requester's
	// public key, which key holders compare with the requester's.
	Fingerprint string
	StartedAt   time.Time
	ExpiresAt   time.Time
	Complete    bool
	// EncryptedToken is the new root token sealed to the requester's key
	// (set once Complete); TokenAccessor is its accessor.
	EncryptedToken []byte
	TokenAccessor  string
}

// RootGenStep names a step of an attempt for its audit record.
type RootGenStep string

// The steps that change an attempt.
const (
	RootGenStarted   RootGenStep = "started"
	RootGenAccepted  RootGenStep = "share-accepted"
	RootGenReset     RootGenStep = "reset" // a wrong share discarded the shares given so far
	RootGenCancelled RootGenStep = "cancelled"
)

// RootGenEvent is what a step's audit record says.
type RootGenEvent struct {
	Step   RootGenStep
	Status RootGenStatus // the attempt as the step leaves it
	// By says how a cancel was authorized: "nonce" or "unseal-key".
	By string
	// Err is the error the caller gets (a reset).
	Err error
}

// RootGenHooks are the caller's part of a step.
type RootGenHooks struct {
	// Record commits the audit record of a step before it takes effect;
	// an error refuses the step, which then changes nothing.
	Record func(ctx context.Context, ev RootGenEvent) error
	// Mint makes the new root token and commits it, its audit record in
	// the same transaction, and returns the token and its accessor; st is
	// the attempt it completes. An error leaves no token; the shares given
	// are discarded.
	Mint func(ctx context.Context, st RootGenStatus) (token, accessor string, err error)
}

// rootGen is the state of root generation on one node. Its mutex is never
// held while taking Core.mu (Seal runs hooks under Core.mu): a seal bumps
// epoch, which retires the attempt.
type rootGen struct {
	once   sync.Once
	epoch  atomic.Uint64
	mu     sync.Mutex
	cur    *rootGenAttempt
	starts *rate.Limiter
}

type rootGenAttempt struct {
	epoch    uint64
	nonce    []byte
	pub      hpke.PublicKey
	fp       string
	started  time.Time
	expires  time.Time
	shares   [][]byte
	complete bool
	sealed   []byte
	accessor string
}

func (a *rootGenAttempt) zero() {
	for _, s := range a.shares {
		clear(s)
	}
	a.shares = nil
}

// setup registers the seal hook once. Called before g.mu is taken.
func (c *Core) rootGenSetup() *rootGen {
	g := &c.gen
	g.once.Do(func() {
		g.starts = rate.NewLimiter(rate.Every(GenerateRootStartEvery), GenerateRootStartBurst)
		c.OnSeal(func() {
			g.epoch.Add(1)
			go g.retire() // not under Core.mu's holder: retire takes g.mu
		})
	})
	return g
}

// retire drops an attempt made before the last seal.
func (g *rootGen) retire() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cur != nil && g.cur.epoch != g.epoch.Load() {
		g.cur.zero()
		g.cur = nil
	}
}

// current returns the live attempt, dropping one that expired or predates
// a seal. Called with g.mu held.
func (g *rootGen) current(now time.Time) *rootGenAttempt {
	a := g.cur
	if a == nil {
		return nil
	}
	if a.epoch != g.epoch.Load() || !now.Before(a.expires) {
		a.zero()
		g.cur = nil
		return nil
	}
	return a
}

func (a *rootGenAttempt) status(required int) RootGenStatus {
	st := RootGenStatus{Started: true, Progress: len(a.shares), Required: required, Fingerprint: a.fp,
		StartedAt: a.started, ExpiresAt: a.expires, Complete: a.complete, TokenAccessor: a.accessor}
	if a.complete {
		st.Progress = required
		st.EncryptedToken = append([]byte(nil), a.sealed...)
	}
	return st
}

// PublicKeyFingerprint is the fingerprint of a requester's public key:
// "sha256:" and 64 lower-case hex digits.
func PublicKeyFingerprint(pub []byte) string {
	sum := sha256.Sum256(pub)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseGenerateRootPublicKey decodes a requester's public key: an X25519
// public key of 32 bytes in standard, padded base64. It checks that the key
// can be encrypted to (a low-order point cannot).
func ParseGenerateRootPublicKey(s string) (hpke.PublicKey, error) {
	if s == "" {
		return nil, errs.E(errs.Invalid, "public_key: required")
	}
	if len(s) != base64.StdEncoding.EncodedLen(32) {
		return nil, errs.E(errs.Invalid, "public_key: an X25519 public key is 32 bytes, %d characters of base64", base64.StdEncoding.EncodedLen(32))
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != 32 {
		return nil, errs.E(errs.Invalid, "public_key: not valid standard base64 of 32 bytes")
	}
	kem, kdf, aead := GenerateRootSuite()
	pk, err := kem.NewPublicKey(b)
	if err != nil {
		return nil, errs.E(errs.Invalid, "public_key: not a usable X25519 public key")
	}
	if _, err := hpke.Seal(pk, kdf, aead, []byte(GenerateRootInfoPrefix), nil); err != nil {
		return nil, errs.E(errs.Invalid, "public_key: not a usable X25519 public key")
	}
	return pk, nil
}

// ParseGenerateRootNonce checks the form of a nonce: 32 lower-case hex
// digits.
func ParseGenerateRootNonce(s string) ([]byte, error) {
	if s == "" {
		return nil, errs.E(errs.Invalid, "nonce: required")
	}
	if len(s) != 2*nonceBytes {
		return nil, errs.E(errs.Invalid, "nonce: must be the %d hex digits the requester's init printed", 2*nonceBytes)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return nil, errs.E(errs.Invalid, "nonce: must be the %d hex digits the requester's init printed", 2*nonceBytes)
		}
	}
	return []byte(s), nil
}

var errNoAttempt = errs.E(errs.NotFound, "no root token generation attempt on this node "+
	"(an attempt lives only in the memory of the node that started it, for an hour: talk to that node)")

// rootGenPrecheck returns the seal configuration, or why root generation
// cannot run. It takes Core.mu: call it before g.mu.
func (c *Core) rootGenPrecheck() (*SealConfig, error) {
	sc, err := c.sealConfig()
	if err != nil {
		return nil, err
	}
	if sc == nil {
		return nil, ErrNotInitialized
	}
	if c.Sealed() {
		return nil, ErrSealed
	}
	return sc, nil
}

// GenerateRootStatus reports this node's attempt. A sealed or
// uninitialized node has none.
func (c *Core) GenerateRootStatus() (RootGenStatus, error) {
	g := c.rootGenSetup()
	sc, err := c.sealConfig()
	if err != nil {
		return RootGenStatus{}, err
	}
	if sc == nil {
		return RootGenStatus{}, nil
	}
	if c.Sealed() {
		return RootGenStatus{Required: sc.Threshold}, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	a := g.current(c.now())
	if a == nil {
		return RootGenStatus{Required: sc.Threshold}, nil
	}
	return a.status(sc.Threshold), nil
}

// GenerateRootInit starts an attempt for the requester's public key (see
// ParseGenerateRootPublicKey) and returns its nonce. Errors: errs.Conflict
// while another attempt exists (in progress, or complete and not yet
// collected), errs.RateLimited beyond the node's start budget, ErrSealed.
func (c *Core) GenerateRootInit(ctx context.Context, pub hpke.PublicKey, h RootGenHooks) (string, RootGenStatus, error) {
	g := c.rootGenSetup()
	epoch := g.epoch.Load()
	sc, err := c.rootGenPrecheck()
	if err != nil {
		return "", RootGenStatus{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := c.now()
	if a := g.current(now); a != nil {
		if a.complete {
			return "", RootGenStatus{}, errs.E(errs.Conflict, "a root token generation attempt is complete and waits for its requester to decode the token, "+
				"or for a cancel, until it expires at %s", a.expires.UTC().Format(time.RFC3339))
		}
		return "", RootGenStatus{}, errs.E(errs.Conflict, "a root token generation attempt is already in progress (started %s, expires %s): "+
			"finish or cancel it first", a.started.UTC().Format(time.RFC3339), a.expires.UTC().Format(time.RFC3339))
	}
	if !g.starts.AllowN(now, 1) {
		return "", RootGenStatus{}, errs.E(errs.RateLimited, "too many root token generation attempts were started on this node; "+
			"one more may start every %s", GenerateRootStartEvery)
	}
	nb := make([]byte, nonceBytes)
	if _, err := io.ReadFull(c.rand, nb); err != nil {
		return "", RootGenStatus{}, fmt.Errorf("core: nonce: %w", err)
	}
	nonce := hex.EncodeToString(nb)
	a := &rootGenAttempt{epoch: epoch, nonce: []byte(nonce), pub: pub, fp: PublicKeyFingerprint(pub.Bytes()),
		started: now.UTC(), expires: now.Add(GenerateRootTTL).UTC()}
	st := a.status(sc.Threshold)
	if err := h.Record(ctx, RootGenEvent{Step: RootGenStarted, Status: st}); err != nil {
		return "", RootGenStatus{}, err
	}
	g.cur = a
	return nonce, st, nil
}

// attempt returns the live attempt whose nonce is nonce. Called with g.mu
// held.
func (g *rootGen) attempt(now time.Time, nonce []byte) (*rootGenAttempt, error) {
	a := g.current(now)
	if a == nil {
		return nil, errNoAttempt
	}
	if subtle.ConstantTimeCompare(a.nonce, nonce) != 1 {
		return nil, errs.E(errs.Invalid, "nonce: does not match the attempt in progress on this node")
	}
	return a, nil
}

// matchShare reports, in constant time, whether share is one of sc's.
func matchShare(sc *SealConfig, share []byte) bool {
	h := shareHash(sc.Salt, share)
	match := 0
	for _, want := range sc.ShareHashes {
		match |= subtle.ConstantTimeCompare(h, want)
	}
	return match == 1
}

// GenerateRootUpdate gives one unseal key to the attempt with this nonce.
// A malformed key, a repeated one and a wrong nonce are refused and change
// nothing; a well-formed key that is not one of this cluster's discards
// the shares given so far (recorded as a reset). At the threshold the
// shares must rebuild the root key that opens the keyring; then Mint makes
// the token, which is sealed to the requester's key.
func (c *Core) GenerateRootUpdate(ctx context.Context, nonce, key string, h RootGenHooks) (RootGenStatus, error) {
	nb, err := ParseGenerateRootNonce(nonce)
	if err != nil {
		return RootGenStatus{}, err
	}
	share, err := ParseShare(key)
	if err != nil {
		return RootGenStatus{}, err
	}
	defer clear(share)
	g := c.rootGenSetup()
	sc, err := c.rootGenPrecheck()
	if err != nil {
		return RootGenStatus{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	a, err := g.attempt(c.now(), nb)
	if err != nil {
		return RootGenStatus{}, err
	}
	if a.complete {
		return RootGenStatus{}, errs.E(errs.Conflict, "the attempt is complete: its requester decodes the new token")
	}
	if !matchShare(sc, share) {
		if len(a.shares) == 0 {
			return RootGenStatus{}, errs.E(errs.Invalid, "key: not one of this cluster's unseal keys")
		}
		rerr := errs.E(errs.Invalid, "key: not one of this cluster's unseal keys; the %d shares given so far in this attempt "+
			"are discarded: each key holder must give their key again", len(a.shares))
		st := a.status(sc.Threshold)
		st.Progress = 0
		if err := h.Record(ctx, RootGenEvent{Step: RootGenReset, Status: st, Err: rerr}); err != nil {
			return RootGenStatus{}, err
		}
		a.zero()
		return RootGenStatus{}, rerr
	}
	for _, p := range a.shares {
		if subtle.ConstantTimeCompare(p, share) == 1 {
			return RootGenStatus{}, errs.E(errs.Invalid, "key: this unseal key was already given in this attempt")
		}
	}
	if len(a.shares)+1 < sc.Threshold {
		st := a.status(sc.Threshold)
		st.Progress++
		if err := h.Record(ctx, RootGenEvent{Step: RootGenAccepted, Status: st}); err != nil {
			return RootGenStatus{}, err
		}
		a.shares = append(a.shares, append([]byte(nil), share...))
		return st, nil
	}
	// The last share: whatever happens now, the shares are used up.
	all := append(append([][]byte(nil), a.shares...), share)
	defer a.zero()
	if err := c.verifyRootShares(all); err != nil {
		return RootGenStatus{}, err
	}
	done := a.status(sc.Threshold)
	done.Progress = sc.Threshold
	tok, accessor, err := h.Mint(ctx, done)
	if err != nil {
		return RootGenStatus{}, err
	}
	_, kdf, aead := GenerateRootSuite()
	pt := []byte(tok)
	ct, err := hpke.Seal(a.pub, kdf, aead, append([]byte(GenerateRootInfoPrefix), a.nonce...), pt)
	clear(pt)
	if err != nil {
		// The key was checked at init, so this does not happen; the token
		// exists but nobody holds it.
		return RootGenStatus{}, fmt.Errorf("core: seal the new root token (accessor %s) to the requester's key: %w", accessor, err)
	}
	a.complete, a.sealed, a.accessor = true, ct, accessor
	return a.status(sc.Threshold), nil
}

// verifyRootShares checks that shares rebuild the root key: it must open
// the keyring, as at unseal (the AEAD check is the comparison).
func (c *Core) verifyRootShares(shares [][]byte) error {
	rootBytes, err := shamir.Combine(shares)
	if err != nil {
		return fmt.Errorf("core: combine shares: %w", err)
	}
	root, err := barrier.KeyFromBytes(rootBytes)
	clear(rootBytes)
	if err != nil {
		return fmt.Errorf("core: root key: %w", err)
	}
	defer root.Zero()
	kr, err := c.openKeyring(root)
	if err != nil {
		return err
	}
	kr.Zero()
	return nil
}

// GenerateRootCancel ends the attempt (in progress or complete). Exactly
// one of nonce (the requester's, or a key holder's who was given it) and
// key (any one of this cluster's unseal keys, so that key holders can clear
// an attempt they do not know) authorizes it.
func (c *Core) GenerateRootCancel(ctx context.Context, nonce, key string, h RootGenHooks) error {
	var nb, share []byte
	var err error
	switch {
	case nonce != "" && key != "":
		return errs.E(errs.Invalid, "nonce, key: give one, not both")
	case nonce != "":
		if nb, err = ParseGenerateRootNonce(nonce); err != nil {
			return err
		}
	case key != "":
		if share, err = ParseShare(key); err != nil {
			return err
		}
		defer clear(share)
	default:
		return errs.E(errs.Invalid, "nonce: required (or key: one of the cluster's unseal keys)")
	}
	g := c.rootGenSetup()
	sc, err := c.rootGenPrecheck()
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var a *rootGenAttempt
	by := "nonce"
	if nb != nil {
		if a, err = g.attempt(c.now(), nb); err != nil {
			return err
		}
	} else {
		by = "unseal-key"
		if !matchShare(sc, share) {
			return errs.E(errs.Invalid, "key: not one of this cluster's unseal keys")
		}
		if a = g.current(c.now()); a == nil {
			return errNoAttempt
		}
	}
	st := a.status(sc.Threshold)
	if err := h.Record(ctx, RootGenEvent{Step: RootGenCancelled, Status: st, By: by}); err != nil {
		return err
	}
	a.zero()
	g.cur = nil
	return nil
}
