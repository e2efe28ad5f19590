package detect

import (
	"context"
	"regexp"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store/kv"
)

// Storage is the encrypted view the services work on (core.Core implements
// it): every value is encrypted before it reaches the Raft log, and every
// change must carry an audit record (a request's, or one made with
// Auditor.Pending for a change the server makes on its own).
type Storage interface {
	Get(ctx context.Context, key string) (kv.Entry, error)
	GetStale(key string) (kv.Entry, error)
	// List reads and decrypts every entry under prefix, linearizably.
	List(ctx context.Context, prefix string, limit int) ([]kv.Entry, error)
	// ListKeys is List without the values.
	ListKeys(ctx context.Context, prefix string, limit int) ([]kv.Entry, error)
	Txn(ctx context.Context, t kv.Txn) (uint64, error)
	// AppliedIndex is the Raft index this node has applied; it only grows.
	AppliedIndex() uint64
	// Barrier waits until this node's copy reflects every write
	// acknowledged before the call.
	Barrier(ctx context.Context) error
	// ScanStale lists every entry under prefix from one read transaction
	// of this node's copy, with the values for which values(key, version)
	// is true (the others nil). values must not call the storage.
	ScanStale(prefix string, values func(key string, version uint64) bool) ([]kv.Entry, error)
	// GetManyStale reads keys from one read transaction of this node's
	// copy; absent keys are left out, the others are in the order of keys.
	GetManyStale(keys []string) ([]kv.Entry, error)
}

// Auditor makes the pending audit record of a change the server makes on
// its own (auditlog.Service implements it).
type Auditor interface {
	Pending(ctx context.Context, e *audit.Entry) (context.Context, *kv.PendingAudit)
}

// Keys. Everything of detection lives under "detect/".
const (
	prefixRules   = "detect/rules/"
	keyRulesMeta  = prefixRules + "meta"
	prefixRule    = prefixRules + "r/"
	prefixAlert   = "detect/alerts/"
	prefixNotify  = "detect/notify/n/"
	prefixOutbox  = "detect/notify/outbox/"
	maxRetries    = 16
	maxCommentLen = 4096
)

// validName is the syntax of rule ids and notifier names: 1 to 128 bytes of
// A-Z a-z 0-9 . _ -, starting with a letter or digit (Sigma ids are UUIDs).
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func checkName(field, s string) error {
	if !validName.MatchString(s) {
		return errs.E(errs.Invalid, "%s %q: want 1 to 128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit", field, s)
	}
	return nil
}

// timeFormat is RFC 3339 with a fixed nine-digit fraction, so that times
// written by Warden sort as text.
const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

func rfc3339(t time.Time) string { return t.UTC().Format(timeFormat) }

// Levels are Sigma's, from least to most severe.
var levels = map[string]int{"informational": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}

// LevelRank returns the rank of a Sigma level (informational 1 … critical
// 5), 0 for an unknown level.
func LevelRank(level string) int { return levels[level] }
