// Package secrets is Warden's versioned key/value secrets engine.
//
// Each secret path has a metadata record (its versions, with creation and
// deletion times) and one record per version holding the data. A write adds a
// version in one transaction that also updates the metadata, conditioned on
// the metadata's store version, so concurrent writers never lose an update;
// a caller's check-and-set ("cas") turns a lost race into errs.Conflict.
//
// secrets knows nothing about HTTP, Raft or encryption: it works over the
// encrypted storage view, which encrypts every value before it is stored.
package secrets

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/store/kv"
)

// Storage is the encrypted view the engine works on (core.Core implements it).
type Storage interface {
	Get(ctx context.Context, key string) (kv.Entry, error)
	GetStale(key string) (kv.Entry, error)
	ListKeys(ctx context.Context, prefix string, limit int) ([]kv.Entry, error)
	Txn(ctx context.Context, t kv.Txn) (uint64, error)
}

const (
	prefixMeta = "kv/meta/"
	prefixData = "kv/data/"
	// DefaultMaxVersions is how many versions a secret keeps.
	DefaultMaxVersions = 10
	// MaxPathSegments and MaxSegmentLen bound a path.
	MaxPathSegments = 32
	MaxSegmentLen   = 255
	maxRetries      = 16
)

// VersionInfo describes one version of a secret.
type VersionInfo struct {
	CreatedTime  time.Time `json:"created_time"`
	DeletionTime time.Time `json:"deletion_time,omitzero"`
	Destroyed    bool      `json:"destroyed"`
}

// Metadata is the record of a secret's versions.
type Metadata struct {
	Path           string                 `json:"path"`
	CurrentVersion uint64                 `json:"current_version"`
	OldestVersion  uint64                 `json:"oldest_version"`
	MaxVersions    int                    `json:"max_versions"`
	CreatedTime    time.Time              `json:"created_time"`
	UpdatedTime    time.Time              `json:"updated_time"`
	Versions       map[uint64]VersionInfo `json:"versions"`
}

// Secret is one version's data.
type Secret struct {
	Data         json.RawMessage
	Version      uint64
	CreatedTime  time.Time
	DeletionTime time.Time
}

// Engine is the KV engine. Safe for concurrent use.
type Engine struct {
	st  Storage
	now func() time.Time

	mu    sync.Mutex
	cache map[string]cachedMeta // path → decoded metadata at a store version (read paths only)
}

type cachedMeta struct {
	version uint64
	m       *Metadata // never mutated once cached
}

// maxCachedMeta bounds the decoded-metadata cache; it is cleared when full.
const maxCachedMeta = 10000

// New returns an engine over st; now may be nil (time.Now).
func New(st Storage, now func() time.Time) *Engine {
	if now == nil {
		now = time.Now
	}
	return &Engine{st: st, now: now, cache: make(map[string]cachedMeta)}
}

// Forget drops cached metadata (called when Warden seals).
func (e *Engine) Forget() {
	e.mu.Lock()
	e.cache = make(map[string]cachedMeta)
	e.mu.Unlock()
}

// metaRead is meta for read paths: the decoded record is cached by store
// version, so a hot secret's metadata is decoded once per change. The
// result must not be modified.
func (e *Engine) metaRead(ctx context.Context, path string) (*Metadata, error) {
	ent, err := e.st.Get(ctx, prefixMeta+path)
	if errs.Is(err, errs.NotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	c, ok := e.cache[path]
	e.mu.Unlock()
	if ok && c.version == ent.Version {
		return c.m, nil
	}
	m := new(Metadata)
	if err := json.Unmarshal(ent.Value, m); err != nil {
		return nil, fmt.Errorf("secrets: decode metadata of %q: %w", path, err)
	}
	e.mu.Lock()
	if len(e.cache) >= maxCachedMeta {
		e.cache = make(map[string]cachedMeta)
	}
	e.cache[path] = cachedMeta{version: ent.Version, m: m}
	e.mu.Unlock()
	return m, nil
}

// ValidatePath checks a secret path: '/'-separated segments of
// [A-Za-z0-9._-], 1..255 bytes each, at most 32, no "." or "..".
func ValidatePath(p string) error {
	if p == "" {
		return errs.E(errs.Invalid, "path: required")
	}
	segs := strings.Split(p, "/")
	if len(segs) > MaxPathSegments {
		return errs.E(errs.Invalid, "path: more than %d segments", MaxPathSegments)
	}
	for i, s := range segs {
		if err := validSegment(s); err != nil {
			return errs.E(errs.Invalid, "path: segment %d: %s", i+1, err)
		}
	}
	return nil
}

func validSegment(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty (no leading, trailing or double '/')")
	case len(s) > MaxSegmentLen:
		return fmt.Errorf("longer than %d bytes", MaxSegmentLen)
	case s == "." || s == "..":
		return fmt.Errorf("%q is not allowed", s)
	}
	bad := names.BadChar(s, func(_ int, c rune) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
	})
	if bad != "" {
		return fmt.Errorf("%s is not allowed (use A-Z a-z 0-9 . _ -)", bad)
	}
	return nil
}

func dataKey(path string, v uint64) string {
	// '#' cannot occur in a path, so data keys of different secrets never collide.
	return prefixData + path + "#" + fmt.Sprintf("%020d", v)
}

func (e *Engine) meta(ctx context.Context, path string) (*Metadata, uint64, error) {
	ent, err := e.st.Get(ctx, prefixMeta+path)
	if errs.Is(err, errs.NotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	m := new(Metadata)
	if err := json.Unmarshal(ent.Value, m); err != nil {
		return nil, 0, fmt.Errorf("secrets: decode metadata of %q: %w", path, err)
	}
	return m, ent.Version, nil
}

// Put writes data as a new version of path. data must be a JSON object. If cas
// is non-nil the write succeeds only when the current version equals *cas (0:
// the secret must not exist); otherwise errs.Conflict.
func (e *Engine) Put(ctx context.Context, path string, data json.RawMessage, cas *uint64) (uint64, time.Time, error) {
	if err := ValidatePath(path); err != nil {
		return 0, time.Time{}, err
	}
	if d := bytes.TrimSpace(data); len(d) == 0 || d[0] != '{' {
		return 0, time.Time{}, errs.E(errs.Invalid, "data: must be a JSON object")
	}
	for attempt := 0; ; attempt++ {
		m, mv, err := e.meta(ctx, path)
		if err != nil {
			return 0, time.Time{}, err
		}
		var cur uint64
		if m != nil {
			cur = m.CurrentVersion
		}
		if cas != nil && *cas != cur {
			return 0, time.Time{}, errs.E(errs.Conflict, "cas: secret %q is at version %d, not %d", path, cur, *cas)
		}
		now := e.now().UTC()
		if m == nil {
			m = &Metadata{Path: path, MaxVersions: DefaultMaxVersions, CreatedTime: now, OldestVersion: 1,
				Versions: map[uint64]VersionInfo{}}
		}
		v := cur + 1
		m.CurrentVersion = v
		m.UpdatedTime = now
		m.Versions[v] = VersionInfo{CreatedTime: now}
		ops := []kv.Op{{Type: kv.OpPut, Key: dataKey(path, v), Value: data}}
		for m.MaxVersions > 0 && len(m.Versions) > m.MaxVersions {
			old := m.OldestVersion
			delete(m.Versions, old)
			ops = append(ops, kv.Op{Type: kv.OpDelete, Key: dataKey(path, old)})
			m.OldestVersion++
		}
		mb, err := json.Marshal(m)
		if err != nil {
			return 0, time.Time{}, err
		}
		ops = append(ops, kv.Op{Type: kv.OpPut, Key: prefixMeta + path, Value: mb})
		_, err = e.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: prefixMeta + path, Version: mv}}, Ops: ops})
		if err == nil {
			return v, now, nil
		}
		if errs.Is(err, errs.Conflict) {
			if cas != nil {
				return 0, time.Time{}, errs.E(errs.Conflict, "cas: secret %q changed concurrently; version %d is no longer current", path, *cas)
			}
			if attempt < maxRetries {
				continue
			}
		}
		return 0, time.Time{}, err
	}
}

// Get returns version v of path (the current version if v is 0).
// errs.NotFound if the secret, or the version, does not exist or is deleted.
func (e *Engine) Get(ctx context.Context, path string, v uint64) (Secret, error) {
	if err := ValidatePath(path); err != nil {
		return Secret{}, err
	}
	m, err := e.metaRead(ctx, path)
	if err != nil {
		return Secret{}, err
	}
	if m == nil {
		return Secret{}, errs.E(errs.NotFound, "secret %q not found", path)
	}
	if v == 0 {
		v = m.CurrentVersion
	}
	info, ok := m.Versions[v]
	if !ok {
		return Secret{}, errs.E(errs.NotFound, "secret %q has no version %d", path, v)
	}
	if !info.DeletionTime.IsZero() || info.Destroyed {
		return Secret{}, errs.E(errs.NotFound, "version %d of secret %q is deleted", v, path)
	}
	// The metadata was read linearizably and names this version, whose data
	// was committed in the same transaction: the local copy has it.
	ent, err := e.st.GetStale(dataKey(path, v))
	if err != nil {
		return Secret{}, err
	}
	return Secret{Data: ent.Value, Version: v, CreatedTime: info.CreatedTime}, nil
}

// Delete soft-deletes the current version of path.
func (e *Engine) Delete(ctx context.Context, path string) error {
	if err := ValidatePath(path); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		m, mv, err := e.meta(ctx, path)
		if err != nil {
			return err
		}
		if m == nil {
			return errs.E(errs.NotFound, "secret %q not found", path)
		}
		info := m.Versions[m.CurrentVersion]
		if !info.DeletionTime.IsZero() {
			return nil // already deleted: idempotent
		}
		now := e.now().UTC()
		info.DeletionTime = now
		m.Versions[m.CurrentVersion] = info
		m.UpdatedTime = now
		mb, err := json.Marshal(m)
		if err != nil {
			return err
		}
		_, err = e.st.Txn(ctx, kv.Txn{
			Conds: []kv.Cond{{Key: prefixMeta + path, Version: mv}},
			Ops:   []kv.Op{{Type: kv.OpPut, Key: prefixMeta + path, Value: mb}},
		})
		if errs.Is(err, errs.Conflict) && attempt < maxRetries {
			continue
		}
		return err
	}
}

// Metadata returns the metadata of path (shared: do not modify it).
// errs.NotFound if absent.
func (e *Engine) Metadata(ctx context.Context, path string) (*Metadata, error) {
	if err := ValidatePath(path); err != nil {
		return nil, err
	}
	m, err := e.metaRead(ctx, path)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errs.E(errs.NotFound, "secret %q not found", path)
	}
	return m, nil
}

// List returns the names directly under prefix ("" for the top level),
// sorted; folders end in '/'. errs.NotFound when nothing is there.
func (e *Engine) List(ctx context.Context, prefix string) ([]string, error) {
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		if err := ValidatePath(prefix); err != nil {
			return nil, err
		}
		prefix += "/"
	}
	ents, err := e.st.ListKeys(ctx, prefixMeta+prefix, 0)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	keys := []string{}
	for _, ent := range ents {
		rest := strings.TrimPrefix(ent.Key, prefixMeta+prefix)
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i+1]
		}
		if !seen[rest] {
			seen[rest] = true
			keys = append(keys, rest)
		}
	}
	if len(keys) == 0 {
		return nil, errs.E(errs.NotFound, "nothing under %q", strings.TrimSuffix(prefix, "/"))
	}
	sort.Strings(keys)
	return keys, nil
}

// VersionKey formats a version number as a JSON object key.
func VersionKey(v uint64) string { return strconv.FormatUint(v, 10) }
