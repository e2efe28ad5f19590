// Package engine is Warden's transit engine: named keys (internal/transit)
// stored through Raft behind the barrier, decoded keys cached by store
// version, every change committed with its audit record, and the leader's
// schedule of automatic rotation and retirement.
//
// engine knows nothing about HTTP: the API decodes requests and calls the
// pure operations of the keys it returns.
package engine

import (
	"context"
	"crypto/rand"
	"io"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store/kv"
	"github.com/warden-sec/warden/internal/transit"
)

// Storage is the encrypted view the engine works on (core.Core implements it).
type Storage interface {
	Get(ctx context.Context, key string) (kv.Entry, error)
	ListKeys(ctx context.Context, prefix string, limit int) ([]kv.Entry, error)
	Txn(ctx context.Context, t kv.Txn) (uint64, error)
}

// Auditor gives the schedule's own changes their records.
type Auditor interface {
	Pending(ctx context.Context, e *audit.Entry) (context.Context, *kv.PendingAudit)
}

// Config wires an Engine.
type Config struct {
	Storage Storage
	Audit   Auditor
	Node    string
	Now     func() time.Time
	Rand    io.Reader
}

// Engine is the transit engine. Safe for concurrent use.
type Engine struct {
	cfg Config
}

// New returns an engine.
func New(cfg Config) *Engine {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &Engine{cfg: cfg}
}

var errNotBuilt = errs.E(errs.Unavailable, "transit: engine not built yet")

func (e *Engine) Forget()                                                    {}
func (e *Engine) Now() time.Time                                             { return e.cfg.Now() }
func (e *Engine) Rand() io.Reader                                            { return e.cfg.Rand }
func (e *Engine) Key(ctx context.Context, name string) (*transit.Key, error) { return nil, errNotBuilt }
func (e *Engine) List(ctx context.Context) ([]string, error)                 { return nil, errNotBuilt }
func (e *Engine) Create(ctx context.Context, name string, typ transit.Type, opts transit.Options) (*transit.Key, bool, error) {
	return nil, false, errNotBuilt
}
func (e *Engine) Rotate(ctx context.Context, name string) (*transit.Key, error) {
	return nil, errNotBuilt
}
func (e *Engine) Configure(ctx context.Context, name string, c transit.Config) (*transit.Key, error) {
	return nil, errNotBuilt
}
func (e *Engine) Trim(ctx context.Context, name string, minAvailable int) (*transit.Key, error) {
	return nil, errNotBuilt
}
func (e *Engine) Delete(ctx context.Context, name string) error { return errNotBuilt }
func (e *Engine) Tick(ctx context.Context) (rotated, retired int, err error) {
	return 0, 0, errNotBuilt
}
func (e *Engine) RunSchedule(ctx context.Context, interval time.Duration, leader func() bool, logf func(msg string, args ...any)) {
}
