// Package core joins the replicated store and the encryption barrier into the
// encrypted view that every service uses, and owns the seal: init, unseal,
// seal and key rotation.
//
// Every value a service writes through Core is encrypted by the barrier, with
// its storage key as additional authenticated data, before it enters the Raft
// command; so the Raft log, the FSM and snapshots hold only ciphertext. Core
// knows nothing about HTTP. While sealed, Core holds no key in memory and every
// data operation returns an error with code errs.Unavailable.
package core

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/barrier"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/shamir"
	"github.com/warden-sec/warden/internal/store"
	"github.com/warden-sec/warden/internal/store/kv"
	"github.com/warden-sec/warden/internal/version"
)

// Storage keys owned by core. Everything under sys/ is reserved.
const (
	keySealConfig = "sys/seal-config" // plaintext: not secret (share hashes only)
	keyKeyring    = "sys/keyring"     // sealed by the root key, not by the barrier
	// SysPrefix is the prefix reserved for core; services must not write under it.
	SysPrefix = "sys/"
)

// ErrSealed is returned by data operations while the barrier is sealed.
var ErrSealed = errs.Wrap(errs.Unavailable, barrier.ErrSealed, "Warden is sealed")

// ErrNotInitialized is returned by unseal before init.
var ErrNotInitialized = errs.E(errs.Invalid, "Warden is not initialized")

// SealConfig is stored in plaintext at sys/seal-config. ShareHashes lets the
// server refuse a wrong share at once (so it never counts toward the
// threshold); each share has 264 bits of entropy, so its salted hash reveals
// nothing useful.
type SealConfig struct {
	Type        string    `json:"type"`
	Shares      int       `json:"shares"`
	Threshold   int       `json:"threshold"`
	Salt        []byte    `json:"salt"`
	ShareHashes [][]byte  `json:"share_hashes"`
	ClusterID   string    `json:"cluster_id"`
	CreatedTime time.Time `json:"created_time"`
}

// Status is the seal status reported by /v1/sys/seal-status.
type Status struct {
	Type        string `json:"type"`
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	Shares      int    `json:"shares"`
	Threshold   int    `json:"threshold"`
	Progress    int    `json:"progress"`
	Version     string `json:"version"`
	ClusterID   string `json:"cluster_id,omitempty"`
}

// InitResult is what init hands out exactly once.
type InitResult struct {
	UnsealKeys []string // base64 (standard) shares
	RootKey    barrier.Key
}

// Encrypter encrypts a value for a storage key; Init passes one to the
// bootstrap callback before the barrier is unsealed.
type Encrypter interface {
	Encrypt(aad string, plaintext []byte) ([]byte, error)
}

// Bootstrap returns extra ops (already encrypted with enc) that init commits in
// the same transaction as the seal configuration (the root token, service
// keys), and the audit record of the init, its value encrypted with enc
// under audit.LeafAAD of its hash: init is a change like any other.
type Bootstrap func(enc Encrypter, clusterID string) ([]store.Op, store.AuditLeaf, error)

// Config configures a Core.
type Config struct {
	Store *store.Store
	Now   func() time.Time // default time.Now
	Rand  io.Reader        // default crypto/rand.Reader
}

// Core is the encrypted, sealable view of the store. Safe for concurrent use.
type Core struct {
	st   *store.Store
	now  func() time.Time
	rand io.Reader

	bar barrier.Barrier

	mu       sync.Mutex // guards the fields below and serializes seal transitions
	progress [][]byte   // shares given in this round (copies; zeroed on reset)
	root     barrier.Key
	hasRoot  bool
	sealCfg  *SealConfig // cached once initialized (immutable after init)
	onSeal   []func()    // called after every seal, to drop cached secrets

	gen rootGen // root token generation (generateroot.go); its own lock
}

// OnSeal registers f to run (under the seal lock) every time the barrier is
// sealed, so services can drop keys and decrypted values they cache.
func (c *Core) OnSeal(f func()) {
	c.mu.Lock()
	c.onSeal = append(c.onSeal, f)
	c.mu.Unlock()
}

// New returns a sealed Core over st.
func New(cfg Config) *Core {
	c := &Core{st: cfg.Store, now: cfg.Now, rand: cfg.Rand}
	if c.now == nil {
		c.now = time.Now
	}
	if c.rand == nil {
		c.rand = rand.Reader
	}
	return c
}

// Store returns the underlying store (for cluster management and health).
func (c *Core) Store() *store.Store { return c.st }

// Sealed reports whether the barrier is sealed.
func (c *Core) Sealed() bool { return c.bar.Sealed() }

func (c *Core) sealConfig() (*SealConfig, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sealConfigLocked()
}

func (c *Core) sealConfigLocked() (*SealConfig, error) {
	if c.sealCfg != nil {
		return c.sealCfg, nil
	}
	e, err := c.st.GetStale(keySealConfig)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("core: read seal config: %w", err)
	}
	var sc SealConfig
	if err := json.Unmarshal(e.Value, &sc); err != nil {
		return nil, fmt.Errorf("core: decode seal config: %w", err)
	}
	c.sealCfg = &sc
	return &sc, nil
}

// Initialized reports whether init has run.
func (c *Core) Initialized() (bool, error) {
	sc, err := c.sealConfig()
	return sc != nil, err
}

// Status returns the seal status.
func (c *Core) Status() (Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sc, err := c.sealConfigLocked()
	if err != nil {
		return Status{}, err
	}
	s := Status{Type: "shamir", Sealed: c.bar.Sealed(), Version: version.String(), Progress: len(c.progress)}
	if sc != nil {
		s.Initialized = true
		s.Shares, s.Threshold, s.ClusterID = sc.Shares, sc.Threshold, sc.ClusterID
	}
	return s, nil
}

// ValidateSealParams checks init parameters.
func ValidateSealParams(shares, threshold int) error {
	switch {
	case shares < 1 || shares > 255:
		return errs.E(errs.Invalid, "key_shares: must be between 1 and 255, got %d", shares)
	case threshold < 1 || threshold > shares:
		return errs.E(errs.Invalid, "key_threshold: must be between 1 and key_shares (%d), got %d", shares, threshold)
	case shares > 1 && threshold < 2:
		return errs.E(errs.Invalid, "key_threshold: must be at least 2 when key_shares is more than 1")
	}
	return nil
}

// Init creates the root key, splits it into shares, creates the keyring and
// commits the seal configuration, the sealed keyring and whatever boot adds,
// with boot's audit record, in one transaction. The server stays sealed.
func (c *Core) Init(ctx context.Context, shares, threshold int, boot Bootstrap) (InitResult, error) {
	if err := ValidateSealParams(shares, threshold); err != nil {
		return InitResult{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if sc, err := c.sealConfigLocked(); err != nil {
		return InitResult{}, err
	} else if sc != nil {
		return InitResult{}, errs.E(errs.Invalid, "Warden is already initialized")
	}

	root, err := barrier.NewKey(c.rand)
	if err != nil {
		return InitResult{}, fmt.Errorf("core: root key: %w", err)
	}
	rootBytes := root.Bytes()
	defer clear(rootBytes)
	parts, err := shamir.Split(rootBytes, shares, threshold, c.rand)
	if err != nil {
		return InitResult{}, fmt.Errorf("core: split root key: %w", err)
	}
	kr, err := barrier.NewKeyring(c.rand, c.now())
	if err != nil {
		return InitResult{}, fmt.Errorf("core: keyring: %w", err)
	}
	defer kr.Zero()
	sealedKR, err := barrier.SealKeyring(root, kr)
	if err != nil {
		return InitResult{}, fmt.Errorf("core: seal keyring: %w", err)
	}
	salt := make([]byte, 32)
	if _, err := io.ReadFull(c.rand, salt); err != nil {
		return InitResult{}, fmt.Errorf("core: salt: %w", err)
	}
	idb := make([]byte, 16)
	if _, err := io.ReadFull(c.rand, idb); err != nil {
		return InitResult{}, fmt.Errorf("core: cluster id: %w", err)
	}
	sc := SealConfig{Type: "shamir", Shares: shares, Threshold: threshold, Salt: salt,
		ClusterID: hex.EncodeToString(idb), CreatedTime: c.now().UTC()}
	keys := make([]string, len(parts))
	for i, p := range parts {
		sc.ShareHashes = append(sc.ShareHashes, shareHash(salt, p))
		keys[i] = base64.StdEncoding.EncodeToString(p)
		clear(p)
	}
	scb, err := json.Marshal(sc)
	if err != nil {
		return InitResult{}, err
	}
	txn := store.Txn{
		Conds: []store.Cond{{Key: keySealConfig, Version: 0}},
		Ops: []store.Op{
			{Type: store.OpPut, Key: keySealConfig, Value: scb},
			{Type: store.OpPut, Key: keyKeyring, Value: sealedKR},
		},
	}
	ops, leaf, err := boot(kr, sc.ClusterID)
	if err != nil {
		return InitResult{}, err
	}
	txn.Ops = append(txn.Ops, ops...)
	txn.Audit = []store.AuditLeaf{leaf}
	// Sealed, the store checks no record and takes no transaction: the
	// init's own record is checked with the keyring it is made with (this
	// node is the only one of an uninitialized cluster).
	c.st.SetLeafCheck(leafCheck(kr.Decrypt))
	_, err = c.st.Txn(ctx, txn)
	c.st.SetLeafCheck(nil)
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return InitResult{}, errs.E(errs.Invalid, "Warden is already initialized")
		}
		return InitResult{}, storeErr("init", err)
	}
	c.sealCfg = &sc
	return InitResult{UnsealKeys: keys, RootKey: root}, nil
}

func shareHash(salt, share []byte) []byte {
	h := sha256.New()
	h.Write([]byte("warden/unseal-share/v1\x00"))
	h.Write(salt)
	h.Write(share)
	return h.Sum(nil)
}

// ParseShare decodes an unseal share given as base64 (standard or URL
// alphabet, padded or not). It checks the form only: Unseal checks that the
// share belongs to this server.
func ParseShare(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errs.E(errs.Invalid, "key: required")
	}
	if len(s) > 128 {
		return nil, errs.E(errs.Invalid, "key: too long to be an unseal key (%d characters)", len(s))
	}
	var b []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err = enc.Strict().DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, errs.E(errs.Invalid, "key: not valid base64")
	}
	if len(b) != barrier.KeySize+1 {
		clear(b)
		return nil, errs.E(errs.Invalid, "key: an unseal key is %d bytes, this one is %d", barrier.KeySize+1, len(b))
	}
	return b, nil
}

// Unseal takes one share. A malformed share, a share that is not one of this
// server's, or a repeated share is refused and does not count. When the
// threshold is reached the root key is rebuilt, the keyring opened and the
// barrier unsealed.
func (c *Core) Unseal(ctx context.Context, key string) (Status, error) {
	share, err := ParseShare(key)
	if err != nil {
		return Status{}, err
	}
	defer clear(share)
	if err := c.unseal(share); err != nil {
		return Status{}, err
	}
	return c.Status()
}

func (c *Core) unseal(share []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	sc, err := c.sealConfigLocked()
	if err != nil {
		return err
	}
	if sc == nil {
		return ErrNotInitialized
	}
	if !c.bar.Sealed() {
		return nil // already unsealed: nothing to do
	}
	h := shareHash(sc.Salt, share)
	match := 0
	for _, want := range sc.ShareHashes {
		match |= subtle.ConstantTimeCompare(h, want)
	}
	if match != 1 {
		return errs.E(errs.Invalid, "key: unseal key does not match any share of this server")
	}
	for _, p := range c.progress {
		if subtle.ConstantTimeCompare(p, share) == 1 {
			return errs.E(errs.Invalid, "key: this unseal key was already given in this round")
		}
	}
	c.progress = append(c.progress, append([]byte(nil), share...))
	if len(c.progress) < sc.Threshold {
		return nil
	}
	defer c.resetProgressLocked()
	rootBytes, err := shamir.Combine(c.progress)
	if err != nil {
		return fmt.Errorf("core: combine shares: %w", err)
	}
	root, err := barrier.KeyFromBytes(rootBytes)
	clear(rootBytes)
	if err != nil {
		return fmt.Errorf("core: root key: %w", err)
	}
	kr, err := c.openKeyring(root)
	if err != nil {
		root.Zero()
		return err
	}
	c.unsealLocked(root, kr)
	return nil
}

// unsealLocked installs the root key and keyring, and the check the store
// runs on every audit leaf while this node is unsealed.
func (c *Core) unsealLocked(root barrier.Key, kr *barrier.Keyring) {
	c.root, c.hasRoot = root, true
	c.bar.Unseal(kr)
	c.st.SetLeafCheck(leafCheck(c.decrypt))
}

// leafCheck is the store's LeafCheck: a leaf's value opens, under the
// additional data its hash names, to bytes whose leaf hash is that hash.
// So the leader commits to the tree only hashes of the entries it stores,
// whoever built the transaction.
func leafCheck(decrypt func(aad string, ct []byte) ([]byte, error)) store.LeafCheck {
	return func(l store.AuditLeaf) error {
		pt, err := decrypt(audit.LeafAAD(l.Hash), l.Value)
		if err != nil {
			return fmt.Errorf("value does not open under its hash: %w", err)
		}
		if pt, err = audit.UnpackLeaf(pt); err != nil {
			return fmt.Errorf("value does not unpack: %w", err)
		}
		if subtle.ConstantTimeCompare(audit.LeafHash(pt), l.Hash) != 1 {
			return errors.New("value does not hash to the leaf hash")
		}
		return nil
	}
}

func (c *Core) openKeyring(root barrier.Key) (*barrier.Keyring, error) {
	e, err := c.st.GetStale(keyKeyring)
	if err != nil {
		return nil, fmt.Errorf("core: read keyring: %w", err)
	}
	kr, err := barrier.OpenKeyring(root, e.Value)
	if errors.Is(err, barrier.ErrDecrypt) {
		// Every share matched its hash, so this means stored state is damaged.
		return nil, errs.Wrap(errs.Internal, err, "the unseal keys do not open the keyring")
	}
	if err != nil {
		return nil, fmt.Errorf("core: open keyring: %w", err)
	}
	return kr, nil
}

// ResetUnseal discards the shares given so far.
func (c *Core) ResetUnseal() (Status, error) {
	c.mu.Lock()
	c.resetProgressLocked()
	c.mu.Unlock()
	return c.Status()
}

func (c *Core) resetProgressLocked() {
	for _, p := range c.progress {
		clear(p)
	}
	c.progress = nil
}

// UnsealWithRoot unseals with the root key directly (used by --dev right
// after init, which holds the freshly made root key).
func (c *Core) UnsealWithRoot(root barrier.Key) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	kr, err := c.openKeyring(root)
	if err != nil {
		return err
	}
	c.unsealLocked(root, kr)
	return nil
}

// Seal drops every key from memory. Idempotent.
func (c *Core) Seal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.SetLeafCheck(nil)
	c.bar.Seal()
	c.root.Zero()
	c.hasRoot = false
	c.resetProgressLocked()
	for _, f := range c.onSeal {
		f()
	}
}

// KeyStatus describes the active data key.
type KeyStatus struct {
	Term        uint32    `json:"term"`
	InstallTime time.Time `json:"install_time"`
}

// KeyStatus returns the active term.
func (c *Core) KeyStatus() (KeyStatus, error) {
	kr, err := c.bar.Keyring()
	if err != nil {
		return KeyStatus{}, ErrSealed
	}
	return KeyStatus{Term: kr.ActiveTerm(), InstallTime: kr.InstallTime().UTC()}, nil
}

// Rotate adds a new data-key term and makes it active. Old terms keep
// decrypting. The new keyring is committed with a precondition on the old one,
// so two concurrent rotations cannot lose a term, and with the request's
// pending audit record (WithPendingAudit), in the same Raft command.
func (c *Core) Rotate(ctx context.Context) (KeyStatus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bar.Sealed() || !c.hasRoot {
		return KeyStatus{}, ErrSealed
	}
	cur, err := c.st.Get(ctx, keyKeyring)
	if err != nil {
		return KeyStatus{}, storeErr("rotate", err)
	}
	kr, err := barrier.OpenKeyring(c.root, cur.Value)
	if err != nil {
		return KeyStatus{}, fmt.Errorf("core: open keyring: %w", err)
	}
	next, err := kr.Rotate(c.rand, c.now())
	kr.Zero()
	if err != nil {
		return KeyStatus{}, fmt.Errorf("core: rotate: %w", err)
	}
	blob, err := barrier.SealKeyring(c.root, next)
	if err != nil {
		return KeyStatus{}, fmt.Errorf("core: seal keyring: %w", err)
	}
	_, err = c.commit(ctx, "rotate", store.Txn{
		Conds: []store.Cond{{Key: keyKeyring, Version: cur.Version}},
		Ops:   []store.Op{{Type: store.OpPut, Key: keyKeyring, Value: blob}},
	})
	if err != nil {
		next.Zero()
		return KeyStatus{}, err
	}
	c.bar.Unseal(next)
	return KeyStatus{Term: next.ActiveTerm(), InstallTime: next.InstallTime().UTC()}, nil
}

// reloadKeyring picks up a keyring rotated by another node.
func (c *Core) reloadKeyring() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.hasRoot {
		return ErrSealed
	}
	kr, err := c.openKeyring(c.root)
	if err != nil {
		return err
	}
	c.bar.Unseal(kr)
	return nil
}

// decrypt opens a stored value, reloading the keyring once if the value was
// written under a term this node has not seen yet.
func (c *Core) decrypt(key string, ct []byte) ([]byte, error) {
	pt, err := c.bar.Decrypt(key, ct)
	if errors.Is(err, barrier.ErrUnknownTerm) {
		if rerr := c.reloadKeyring(); rerr != nil {
			return nil, rerr
		}
		pt, err = c.bar.Decrypt(key, ct)
	}
	if errors.Is(err, barrier.ErrSealed) {
		return nil, ErrSealed
	}
	if err != nil {
		return nil, fmt.Errorf("core: decrypt %q: %w", key, err)
	}
	return pt, nil
}

func (c *Core) decryptEntry(e store.Entry) (store.Entry, error) {
	pt, err := c.decrypt(e.Key, e.Value)
	if err != nil {
		return store.Entry{}, err
	}
	e.Value = pt
	return e, nil
}

// Get reads key linearizably and decrypts it.
func (c *Core) Get(ctx context.Context, key string) (store.Entry, error) {
	if c.bar.Sealed() {
		return store.Entry{}, ErrSealed
	}
	e, err := c.st.Get(ctx, key)
	if err != nil {
		return store.Entry{}, storeErr("read", err)
	}
	return c.decryptEntry(e)
}

// GetManyStale is GetMany from this node's local state (store.GetManyStale).
func (c *Core) GetManyStale(keys []string) ([]store.Entry, error) {
	if c.bar.Sealed() {
		return nil, ErrSealed
	}
	es, err := c.st.GetManyStale(keys)
	if err != nil {
		return nil, storeErr("read", err)
	}
	return c.decryptAll(es)
}

// ScanStale returns every entry under prefix from one read transaction of
// this node's local state (store.ScanStale), with the values for which
// values(key, version) is true, decrypted; the others have a nil Value.
func (c *Core) ScanStale(prefix string, values func(key string, version uint64) bool) ([]store.Entry, error) {
	if c.bar.Sealed() {
		return nil, ErrSealed
	}
	es, err := c.st.ScanStale(prefix, values)
	if err != nil {
		return nil, storeErr("list", err)
	}
	return c.decryptAll(es)
}

// decryptAll decrypts the entries that have a value, in place.
func (c *Core) decryptAll(es []store.Entry) ([]store.Entry, error) {
	for i := range es {
		if es[i].Value == nil {
			continue
		}
		var err error
		if es[i], err = c.decryptEntry(es[i]); err != nil {
			return nil, err
		}
	}
	return es, nil
}

// GetMany reads keys linearizably (one confirmation round, one read
// transaction: store.GetMany) and decrypts them; absent keys are left out,
// the others are in the order of keys. The caller bounds len(keys).
func (c *Core) GetMany(ctx context.Context, keys []string) ([]store.Entry, error) {
	if c.bar.Sealed() {
		return nil, ErrSealed
	}
	es, err := c.st.GetMany(ctx, keys)
	if err != nil {
		return nil, storeErr("read", err)
	}
	return c.decryptAll(es)
}

// AppliedIndex is the Raft index of the last change applied to this node's
// local state. It only grows (a restore is installed at a new index), and
// it is stored after the change is committed, so while it is unchanged,
// what GetStale read when it had this value is still current.
func (c *Core) AppliedIndex() uint64 { return c.st.AppliedIndex() }

// Barrier waits until this node's local state reflects every write
// acknowledged before the call: GetStale after it reads linearizably.
func (c *Core) Barrier(ctx context.Context) error {
	if c.bar.Sealed() {
		return ErrSealed
	}
	if err := c.st.Barrier(ctx); err != nil {
		return storeErr("read", err)
	}
	return nil
}

// GetStale reads key from this node's local state and decrypts it. On the
// leader it reflects every acknowledged write.
func (c *Core) GetStale(key string) (store.Entry, error) {
	if c.bar.Sealed() {
		return store.Entry{}, ErrSealed
	}
	e, err := c.st.GetStale(key)
	if err != nil {
		return store.Entry{}, storeErr("read", err)
	}
	return c.decryptEntry(e)
}

// List reads every entry under prefix linearizably and decrypts them.
func (c *Core) List(ctx context.Context, prefix string, limit int) ([]store.Entry, error) {
	es, err := c.list(ctx, prefix, limit)
	if err != nil {
		return nil, err
	}
	for i := range es {
		if es[i], err = c.decryptEntry(es[i]); err != nil {
			return nil, err
		}
	}
	return es, nil
}

// ListKeys returns the keys and versions under prefix, linearizably, without
// decrypting values (Value is nil).
func (c *Core) ListKeys(ctx context.Context, prefix string, limit int) ([]store.Entry, error) {
	if c.bar.Sealed() {
		return nil, ErrSealed
	}
	es, err := c.st.ListKeys(ctx, prefix, limit)
	if err != nil {
		return nil, storeErr("list", err)
	}
	return es, nil
}

func (c *Core) list(ctx context.Context, prefix string, limit int) ([]store.Entry, error) {
	if c.bar.Sealed() {
		return nil, ErrSealed
	}
	es, err := c.st.List(ctx, prefix, limit)
	if err != nil {
		return nil, storeErr("list", err)
	}
	return es, nil
}

// Txn encrypts every put and applies t as one Raft command. Keys under sys/
// are refused.
func (c *Core) Txn(ctx context.Context, t store.Txn) (uint64, error) {
	if c.bar.Sealed() {
		return 0, ErrSealed
	}
	ops := make([]store.Op, len(t.Ops))
	for i, op := range t.Ops {
		if strings.HasPrefix(op.Key, SysPrefix) {
			return 0, fmt.Errorf("core: %q is reserved", op.Key)
		}
		ops[i] = op
		if op.Type == store.OpPut {
			ct, err := c.bar.Encrypt(op.Key, op.Value)
			if err != nil {
				if errors.Is(err, barrier.ErrSealed) {
					return 0, ErrSealed
				}
				return 0, fmt.Errorf("core: encrypt: %w", err)
			}
			ops[i].Value = ct
		}
	}
	t.Ops = ops
	return c.commit(ctx, "write", t)
}

// commit applies t with the pending audit record of ctx, if it has one not
// yet committed: the change and its record are one Raft command. Without a
// record the store refuses a change (store.ErrUnaudited).
func (c *Core) commit(ctx context.Context, op string, t store.Txn) (uint64, error) {
	p, leaf, err := pendingLeaf(ctx)
	if err != nil {
		return 0, err
	}
	if p != nil {
		t.Audit = append(t.Audit, leaf)
	}
	idx, err := c.st.Txn(ctx, t)
	if err != nil {
		return 0, storeErr(op, err)
	}
	if p != nil {
		p.MarkCommitted()
	}
	return idx, nil
}

// pendingLeaf returns the pending record of ctx and its leaf, or nil if
// there is none or it already committed.
func pendingLeaf(ctx context.Context) (*PendingAudit, store.AuditLeaf, error) {
	p := kv.PendingFrom(ctx)
	if p == nil || p.Committed() {
		return nil, store.AuditLeaf{}, nil
	}
	leaf, err := p.Leaf()
	if err != nil {
		return nil, store.AuditLeaf{}, err
	}
	return p, leaf, nil
}

// PendingAudit is the audit record of a change (kv.PendingAudit): the
// first transaction that commits through Core carries it.
type PendingAudit = kv.PendingAudit

// NewPendingAudit and WithPendingAudit are kv's.
var (
	NewPendingAudit  = kv.NewPendingAudit
	WithPendingAudit = kv.WithPendingAudit
)

// AppendAudit commits audit leaves on their own (records of reads, denies
// and failed requests), in one Raft command.
func (c *Core) AppendAudit(ctx context.Context, leaves []store.AuditLeaf) error {
	if c.bar.Sealed() {
		return ErrSealed
	}
	if _, err := c.st.Txn(ctx, store.Txn{Audit: leaves}); err != nil {
		return storeErr("audit", err)
	}
	return nil
}

// Decrypt opens a value stored under aad (an audit leaf's is
// audit.LeafAAD of its hash).
func (c *Core) Decrypt(aad string, ct []byte) ([]byte, error) { return c.decrypt(aad, ct) }

// Encrypt seals a value for aad with the active data key.
func (c *Core) Encrypt(aad string, pt []byte) ([]byte, error) {
	ct, err := c.bar.Encrypt(aad, pt)
	if errors.Is(err, barrier.ErrSealed) {
		return nil, ErrSealed
	}
	return ct, err
}

// storeErr maps store errors to application errors. Conflicts keep their
// *store.ConflictError in the chain so callers can see which key.
func storeErr(op string, err error) error {
	if m := mapStoreErr(err); m != nil {
		return m
	}
	return fmt.Errorf("core: %s: %w", op, err)
}

// StoreError gives an error from the store its errs code, for callers that
// use the store directly (cluster membership, snapshots): errors that
// already carry a code, and unknown ones, pass through.
func StoreError(err error) error {
	if err == nil || errs.CodeOf(err) != errs.Internal {
		return err
	}
	switch {
	case errors.Is(err, store.ErrClosed):
		return errs.Wrap(errs.Unavailable, err, "this node is shutting down")
	case errors.Is(err, store.ErrNotFound):
		return errs.Wrap(errs.NotFound, err, "%s", strings.TrimPrefix(err.Error(), "store: "))
	}
	if m := mapStoreErr(err); m != nil {
		return m
	}
	return err
}

func mapStoreErr(err error) error {
	switch {
	case errors.Is(err, store.ErrUnaudited), errors.Is(err, store.ErrBadLeaf):
		// Not the caller's input: a change built without its record, or a
		// record that does not check, is this server's fault (or forgery).
		return nil
	case errors.Is(err, store.ErrLeaderSealed):
		return errs.Wrap(errs.Unavailable, err, "the leader is sealed: unseal it, or every node, and retry")
	case errors.Is(err, store.ErrNotFound):
		return errs.Wrap(errs.NotFound, err, "not found")
	case errors.Is(err, store.ErrConflict):
		return errs.Wrap(errs.Conflict, err, "version conflict")
	case errors.Is(err, store.ErrNotLeader), errors.Is(err, store.ErrNoLeader):
		return errs.Wrap(errs.Unavailable, err, "no leader: the cluster has no leader this node can reach (election under way, or quorum lost); retry later")
	case errors.Is(err, store.ErrInvalid):
		return errs.Wrap(errs.Invalid, err, "%s", strings.TrimPrefix(err.Error(), "store: "))
	case errors.Is(err, store.ErrPeerRefused):
		return errs.Wrap(errs.Unavailable, err, "the cluster refuses this node: it was removed, or its cluster certificate was revoked or has expired")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return errs.Wrap(errs.Unavailable, err, "request timed out")
	}
	return nil
}

// Restore replaces the cluster's state with a snapshot of this cluster
// (check it with CheckSnapshot first), keeping the audit log, which gains
// the request's pending record (WithPendingAudit) in the same install: see
// store.Store.Restore. The keyring is kept too: it only ever gains terms,
// so it opens the snapshot's values and the records written since. It
// returns the index the state was installed at.
func (c *Core) Restore(ctx context.Context, f *store.SnapshotFile) (uint64, error) {
	if c.bar.Sealed() {
		return 0, ErrSealed
	}
	p, leaf, err := pendingLeaf(ctx)
	if err != nil {
		return 0, err
	}
	if p == nil {
		return 0, fmt.Errorf("core: restore: %w", store.ErrUnaudited)
	}
	idx, err := c.st.Restore(ctx, f, leaf, keyKeyring)
	if err != nil {
		return 0, storeErr("restore", err)
	}
	p.MarkCommitted()
	return idx, nil
}

// CheckSnapshot refuses a snapshot that is not of this cluster (another
// init, so another root key): restoring it would leave data nobody can
// decrypt with this cluster's unseal keys.
func (c *Core) CheckSnapshot(f *store.SnapshotFile) error {
	e, err := f.Get(keySealConfig)
	if err != nil {
		return errs.E(errs.Invalid, "snapshot: not of an initialized Warden cluster")
	}
	var sc SealConfig
	if err := json.Unmarshal(e.Value, &sc); err != nil {
		return errs.E(errs.Invalid, "snapshot: unreadable seal configuration")
	}
	cur, err := c.sealConfig()
	if err != nil {
		return err
	}
	if cur == nil || sc.ClusterID != cur.ClusterID {
		return errs.E(errs.Invalid, "snapshot: taken of another cluster (cluster_id %q, this one is %q)", sc.ClusterID, cur.ClusterIDOrEmpty())
	}
	return nil
}

// ClusterIDOrEmpty is the cluster ID, "" on a nil config.
func (sc *SealConfig) ClusterIDOrEmpty() string {
	if sc == nil {
		return ""
	}
	return sc.ClusterID
}

// AfterRestore reloads the keyring from the restored state, so new writes
// use a term the restored keyring holds. A sealed node has nothing to do.
func (c *Core) AfterRestore() {
	c.mu.Lock()
	has := c.hasRoot
	c.mu.Unlock()
	if has {
		_ = c.reloadKeyring()
	}
}
