// Package engine is Warden's transit engine: named keys (internal/transit)
// stored through Raft behind the barrier, decoded keys cached by store
// version, every change committed with its audit record, and the leader's
// schedule of automatic rotation and retirement.
//
// A key is one record, transit/keys/<name>, holding transit.Key.Marshal()
// (the storage view encrypts it before it reaches Raft). Every change is
// one transaction conditioned on the record's store version, so concurrent
// changes never lose one another: a lost race is retried from a fresh read.
//
// engine knows nothing about HTTP or Raft: the API decodes requests and
// calls the pure operations of the keys it returns. It never logs, and its
// errors never carry key material (transit.Material redacts itself; stored
// records are never printed).
package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/periodic"
	"github.com/warden-sec/warden/internal/store/kv"
	"github.com/warden-sec/warden/internal/transit"
)

// Storage is the encrypted view the engine works on (core.Core implements
// it). Get is linearizable; Txn commits the pending audit record ctx
// carries (kv.WithPendingAudit) with the change, and refuses a change
// without one.
type Storage interface {
	Get(ctx context.Context, key string) (kv.Entry, error)
	ListKeys(ctx context.Context, prefix string, limit int) ([]kv.Entry, error)
	Txn(ctx context.Context, t kv.Txn) (uint64, error)
}

// Auditor gives the schedule's own changes their records
// (auditlog.Service implements it).
type Auditor interface {
	Pending(ctx context.Context, e *audit.Entry) (context.Context, *kv.PendingAudit)
}

// Config wires an Engine.
type Config struct {
	Storage Storage
	Audit   Auditor          // the schedule's records; changes made by Tick fail without it
	Node    string           // this server's node id, the principal of the schedule's records
	Now     func() time.Time // nil: time.Now
	Rand    io.Reader        // nil: crypto/rand.Reader
}

const (
	// prefix is where keys are stored: prefix + name.
	prefix = "transit/keys/"
	// maxRetries is how many times a change is retried after losing a race.
	maxRetries = 16
	// maxCached bounds the decoded-key cache; it is cleared when full.
	maxCached = 10000
)

// Engine is the transit engine. Safe for concurrent use.
type Engine struct {
	cfg Config

	mu    sync.RWMutex
	cache map[string]cached // name → the key decoded at a store version
}

// cached is a decoded key and the store version of the record it came
// from. The key is shared by every reader: never changed once cached.
type cached struct {
	version uint64
	k       *transit.Key
}

// New returns an engine.
func New(cfg Config) *Engine {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &Engine{cfg: cfg, cache: make(map[string]cached)}
}

// Forget drops the cached keys (called when Warden seals).
func (e *Engine) Forget() {
	e.mu.Lock()
	e.cache = make(map[string]cached)
	e.mu.Unlock()
}

// Now is the engine's clock.
func (e *Engine) Now() time.Time { return e.cfg.Now() }

// Rand is the engine's entropy source.
func (e *Engine) Rand() io.Reader { return e.cfg.Rand }

func storageKey(name string) string { return prefix + name }

func notFound(name string) error { return errs.E(errs.NotFound, "key %s: not found", name) }

// read returns the stored record of name, or NotFound naming the key.
func (e *Engine) read(ctx context.Context, name string) (kv.Entry, error) {
	if err := transit.ValidName(name); err != nil {
		return kv.Entry{}, err
	}
	ent, err := e.cfg.Storage.Get(ctx, storageKey(name))
	if errs.Is(err, errs.NotFound) {
		return kv.Entry{}, notFound(name)
	}
	return ent, err
}

// decoded returns the key of record ent, decoded once per store version.
// The result is shared: read-only.
func (e *Engine) decoded(name string, ent kv.Entry) (*transit.Key, error) {
	e.mu.RLock()
	c, ok := e.cache[name]
	e.mu.RUnlock()
	if ok && c.version == ent.Version {
		return c.k, nil
	}
	k, err := transit.Unmarshal(ent.Value)
	if err != nil {
		// The decoding error names a field, never material.
		return nil, fmt.Errorf("transit: stored key %s does not decode: %w", name, err)
	}
	if k.Name != name {
		return nil, fmt.Errorf("transit: stored key %s holds key %s", name, k.Name)
	}
	e.remember(name, ent.Version, k)
	return k, nil
}

// remember caches k as the key at store version v, unless a newer version
// is cached already.
func (e *Engine) remember(name string, v uint64, k *transit.Key) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.cache[name]; ok && c.version > v {
		return
	}
	if len(e.cache) >= maxCached {
		e.cache = make(map[string]cached)
	}
	e.cache[name] = cached{version: v, k: k}
}

// Key returns key name as stored now (a linearizable read). The key is
// shared with every other caller and cached until it changes: call only
// its read-only methods (Encrypt, Decrypt, Sign, Export, ...) and never
// change it (Clone it first). errs.Invalid for a bad name, errs.NotFound
// "key NAME: not found".
func (e *Engine) Key(ctx context.Context, name string) (*transit.Key, error) {
	ent, err := e.read(ctx, name)
	if err != nil {
		return nil, err
	}
	return e.decoded(name, ent)
}

// List returns the names of every key, sorted (none: an empty list).
func (e *Engine) List(ctx context.Context) ([]string, error) {
	ents, err := e.cfg.Storage.ListKeys(ctx, prefix, 0)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ents))
	for _, ent := range ents {
		names = append(names, strings.TrimPrefix(ent.Key, prefix))
	}
	sort.Strings(names)
	return names, nil
}

// Create makes key name of type typ ("" is aes256-gcm96) with opts. A key
// that exists already is returned as it is, with created false (Vault
// answers so); its options are not compared. The change commits with the
// audit record ctx carries. The key returned is shared: read-only.
func (e *Engine) Create(ctx context.Context, name string, typ transit.Type, opts transit.Options) (*transit.Key, bool, error) {
	if err := transit.ValidName(name); err != nil {
		return nil, false, err
	}
	if _, err := transit.ParseType(string(typ)); err != nil {
		return nil, false, err
	}
	var k *transit.Key
	var b []byte
	for attempt := 0; ; attempt++ {
		ent, err := e.read(ctx, name)
		if err == nil {
			old, err := e.decoded(name, ent)
			return old, false, err
		}
		if !errs.Is(err, errs.NotFound) {
			return nil, false, err
		}
		if k == nil {
			// transit.New validates the rest before it makes material.
			if k, err = transit.New(name, typ, opts, e.cfg.Now(), e.cfg.Rand); err != nil {
				return nil, false, err
			}
			if b, err = k.Marshal(); err != nil {
				return nil, false, err
			}
		}
		// Lost to a create: the next read returns that key.
		if err := e.put(ctx, name, 0, k, b); err == nil {
			return k, true, nil
		} else if !lostRace(err, attempt) {
			return nil, false, err
		}
	}
}

// Rotate adds a version to key name and makes it the latest. The change
// commits with the audit record ctx carries. The key returned is shared:
// read-only.
func (e *Engine) Rotate(ctx context.Context, name string) (*transit.Key, error) {
	k, _, err := e.change(ctx, name, func(k *transit.Key) error {
		_, err := k.Rotate(e.cfg.Now(), e.cfg.Rand)
		return err
	}, nil)
	return k, err
}

// Configure applies c to key name, or nothing if any part of it is
// invalid (errs.Invalid naming the field). The change commits with the
// audit record ctx carries. The key returned is shared: read-only.
func (e *Engine) Configure(ctx context.Context, name string, c transit.Config) (*transit.Key, error) {
	k, _, err := e.change(ctx, name, func(k *transit.Key) error { return k.Configure(c) }, nil)
	return k, err
}

// Trim deletes the versions of key name below minAvailable, for good (see
// transit.Key.Trim for the bounds). The change commits with the audit
// record ctx carries. The key returned is shared: read-only.
func (e *Engine) Trim(ctx context.Context, name string, minAvailable int) (*transit.Key, error) {
	k, _, err := e.change(ctx, name, func(k *transit.Key) error { return k.Trim(minAvailable) }, nil)
	return k, err
}

// Delete removes key name and every version of it, only when its
// deletion_allowed is set (errs.Invalid otherwise). The change commits with
// the audit record ctx carries.
func (e *Engine) Delete(ctx context.Context, name string) error {
	for attempt := 0; ; attempt++ {
		ent, err := e.read(ctx, name)
		if err != nil {
			return err
		}
		k, err := e.decoded(name, ent)
		if err != nil {
			return err
		}
		if !k.DeletionAllowed {
			return errs.E(errs.Invalid, "deletion_allowed: the key %s may not be deleted; set deletion_allowed with its config first", name)
		}
		_, err = e.cfg.Storage.Txn(ctx, kv.Txn{
			Conds: []kv.Cond{{Key: storageKey(name), Version: ent.Version}},
			Ops:   []kv.Op{{Type: kv.OpDelete, Key: storageKey(name)}},
		})
		if err == nil {
			e.mu.Lock()
			delete(e.cache, name)
			e.mu.Unlock()
			return nil
		}
		if !lostRace(err, attempt) {
			return err
		}
	}
}

// change applies f to a private copy of key name and commits the result in
// one transaction conditioned on the record's store version, retrying
// from a fresh read when it loses a race. f validates before it changes
// anything; its error ends the change with nothing changed. When f leaves
// the key as it was, nothing is committed and changed is false.
//
// record nil: the change commits with the audit record ctx carries (the
// API's). Otherwise each attempt commits with a record of its own,
// record(the changed key), so the record describes the change that
// committed.
func (e *Engine) change(ctx context.Context, name string, f func(*transit.Key) error, record func(*transit.Key) *audit.Entry) (k *transit.Key, changed bool, err error) {
	for attempt := 0; ; attempt++ {
		ent, err := e.read(ctx, name)
		if err != nil {
			return nil, false, err
		}
		cur, err := e.decoded(name, ent)
		if err != nil {
			return nil, false, err
		}
		k := cur.Clone()
		if err := f(k); err != nil {
			return nil, false, err
		}
		b, err := k.Marshal()
		if err != nil {
			return nil, false, err
		}
		if bytes.Equal(b, ent.Value) {
			return cur, false, nil
		}
		tctx := ctx
		if record != nil {
			if e.cfg.Audit == nil {
				return nil, false, errs.E(errs.Internal, "transit: the engine has no auditor for its own changes")
			}
			tctx, _ = e.cfg.Audit.Pending(ctx, record(k))
		}
		if err := e.put(tctx, name, ent.Version, k, b); err == nil {
			return k, true, nil
		} else if !lostRace(err, attempt) {
			return nil, false, err
		}
	}
}

type recordKey struct{}

// WithRecord returns ctx carrying e, the audit record of the change the
// caller is about to make (the API's, which commits with the change): the
// engine sets its KeyVersion to the latest version of the key it commits,
// before the commit, so the record names the version the change made even
// when a concurrent change made it retry.
func WithRecord(ctx context.Context, e *audit.Entry) context.Context {
	return context.WithValue(ctx, recordKey{}, e)
}

// noteVersion puts k's latest version into the record ctx carries, if any.
func noteVersion(ctx context.Context, k *transit.Key) {
	if e, _ := ctx.Value(recordKey{}).(*audit.Entry); e != nil {
		e.KeyVersion = uint64(k.Latest)
	}
}

// put stores k, whose stored form is b, as key name, if the record is at
// store version v (0: absent), and caches it at its new version.
func (e *Engine) put(ctx context.Context, name string, v uint64, k *transit.Key, b []byte) error {
	noteVersion(ctx, k)
	idx, err := e.cfg.Storage.Txn(ctx, kv.Txn{
		Conds: []kv.Cond{{Key: storageKey(name), Version: v}},
		Ops:   []kv.Op{{Type: kv.OpPut, Key: storageKey(name), Value: b}},
	})
	if err == nil {
		e.remember(name, idx, k)
	}
	return err
}

// lostRace reports whether a change that failed with err on attempt (0 the
// first) lost a race and may be tried again.
func lostRace(err error, attempt int) bool {
	return errs.Is(err, errs.Conflict) && attempt < maxRetries
}

// Schedule actions, the actions of the schedule's audit records.
const (
	ActionScheduledRotate = "transit.key.rotate"
	ActionScheduledRetire = "transit.key.retire"
)

// Tick makes one pass over every key, at the engine's clock: it rotates a
// key whose auto_rotate_period has passed since its latest version was
// made, and advances min_decryption_version where auto_retire_after says
// (transit.Key.AutoRetire). Each change is its own transaction with its own
// audit record, made by this server (auditlog.SystemEntry) with KeyVersion
// the new latest version, or the new min_decryption_version. A key that
// fails does not stop the pass; the errors are joined. It returns how many
// keys it rotated and retired versions of. Run it on the leader only.
func (e *Engine) Tick(ctx context.Context) (rotated, retired int, err error) {
	now := e.cfg.Now()
	names, err := e.List(ctx)
	if err != nil {
		return 0, 0, err
	}
	// The schedule's changes, in order. due is a first look at the shared
	// key; apply decides again on the private copy of the key as it is at
	// the change (another change may have come between), and changes it or
	// leaves it (then nothing commits).
	jobs := []struct {
		action  string
		count   *int
		due     func(*transit.Key) bool
		apply   func(*transit.Key) error
		version func(*transit.Key) int // the record's KeyVersion
	}{
		{ActionScheduledRotate, &rotated,
			func(k *transit.Key) bool { return k.AutoRotateDue(now) },
			func(k *transit.Key) error {
				if !k.AutoRotateDue(now) {
					return nil
				}
				_, err := k.Rotate(now, e.cfg.Rand)
				return err
			},
			func(k *transit.Key) int { return k.Latest }},
		{ActionScheduledRetire, &retired,
			func(k *transit.Key) bool { return k.AutoRetireAfter > 0 },
			func(k *transit.Key) error { k.AutoRetire(now); return nil },
			func(k *transit.Key) int { return k.MinDecryptionVersion }},
	}
	var errList []error
	for _, name := range names {
		if ctx.Err() != nil {
			return rotated, retired, ctx.Err()
		}
		k, err := e.Key(ctx, name)
		if errs.Is(err, errs.NotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			errList = append(errList, err)
			continue
		}
		for _, j := range jobs {
			if !j.due(k) {
				continue
			}
			_, changed, err := e.change(ctx, name, j.apply, e.systemRecord(now, j.action, j.version))
			if err != nil && !errs.Is(err, errs.NotFound) {
				errList = append(errList, fmt.Errorf("transit: %s of key %s: %w", j.action, name, err))
			}
			if changed {
				*j.count++
			}
		}
	}
	return rotated, retired, errors.Join(errList...)
}

// systemRecord returns the record maker of a scheduled change: this
// server's record of action on the key, with KeyVersion version(the
// changed key).
func (e *Engine) systemRecord(now time.Time, action string, version func(*transit.Key) int) func(*transit.Key) *audit.Entry {
	return func(k *transit.Key) *audit.Entry {
		entry := auditlog.SystemEntry(now, e.cfg.Node, action, "Key::"+strconv.Quote(k.Name))
		entry.KeyVersion = uint64(version(k))
		return entry
	}
}

// RunSchedule calls Tick every interval while leader() holds, until ctx
// ends. Errors go to logf (the next tick tries again); logf may be nil.
func (e *Engine) RunSchedule(ctx context.Context, interval time.Duration, leader func() bool, logf func(msg string, args ...any)) {
	periodic.WhileLeader(ctx, interval, leader, func(ctx context.Context) error {
		_, _, err := e.Tick(ctx)
		return err
	}, func(err error) {
		if logf != nil {
			logf("transit: scheduled rotation and retirement failed; retrying later", "err", err)
		}
	})
}
