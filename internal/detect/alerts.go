package detect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/sigma"
	"github.com/warden-sec/warden/internal/store/kv"
)

// Bounds of one alert.
const (
	// MaxAlertEvents is how many events (and event references) an alert keeps.
	MaxAlertEvents = 10
	// MaxAlertEventBytes bounds the JSON of the events an alert keeps
	// together; an event that would pass it is not kept (its reference is).
	MaxAlertEventBytes = 64 << 10
	// MaxAlertHosts bounds an alert's hosts.
	MaxAlertHosts = 100
	// MaxAlertNotes bounds an alert's notes; the oldest are dropped.
	MaxAlertNotes = 100
	// DefaultListLimit and MaxListLimit bound a page of List.
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// AlertID is the id of the alert of a hit's key: hex of the first 16 bytes
// of SHA-256(key). The same match reported twice (a partition replayed
// after a failover) has the same key, hence updates the same alert.
func AlertID(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:16])
}

// Alerts stores the alerts rules raise. Safe for concurrent use.
type Alerts struct {
	idx   alertIndex
	st    Storage
	audit Auditor
	node  string
	now   func() time.Time
}

// NewAlerts returns the alerts service over st. node names this server in
// the audit records of the alerts it records (auditlog.SystemEntry); now
// may be nil (time.Now).
func NewAlerts(st Storage, audit Auditor, node string, now func() time.Time) *Alerts {
	if now == nil {
		now = time.Now
	}
	return &Alerts{st: st, audit: audit, node: node, now: now}
}

func (a *Alerts) get(ctx context.Context, id string) (*Alert, uint64, error) {
	e, err := a.st.Get(ctx, prefixAlert+id)
	return decodeAlert(id, e, err)
}

// Get returns alert id. errs.NotFound if absent.
func (a *Alerts) Get(ctx context.Context, id string) (Alert, error) {
	if err := checkAlertID(id); err != nil {
		return Alert{}, err
	}
	al, _, err := a.get(ctx, id)
	if err != nil {
		return Alert{}, err
	}
	if al == nil {
		return Alert{}, errs.E(errs.NotFound, "alert %s not found", id)
	}
	return *al, nil
}

func checkAlertID(id string) error {
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return errs.E(errs.Invalid, "alert id %q: want 32 lowercase hex digits", id)
	}
	return nil
}

// Record creates or updates the alert of h, idempotently: the alert's id
// is AlertID(h.Key); count and last_seen become the larger of the stored
// and h's, first_seen the smaller, hosts the union, events and event_refs
// are merged up to MaxAlertEvents. The status is kept: an acknowledged or
// closed alert stays so when more matches of its window arrive. A hit that
// changes nothing writes nothing. The change commits through Raft with an
// audit record made by auditlog.SystemEntry (action "alert.record"); when
// it creates the alert, the same transaction queues a notification for
// every notifier whose minimum level the alert's level reaches.
func (a *Alerts) Record(ctx context.Context, h sigma.Hit) (Alert, error) {
	if h.Rule == nil || h.Key == "" {
		return Alert{}, errs.E(errs.Invalid, "hit: no rule or no key")
	}
	id := AlertID(h.Key)
	entry := auditlog.SystemEntry(a.now(), a.node, "alert.record", `Alert::"`+id+`"`)
	ctx, _ = a.audit.Pending(ctx, entry)
	for attempt := 0; ; attempt++ {
		al, cond, ops, err := a.change(ctx, h, false)
		if err != nil || ops == nil {
			return derefAlert(al), err
		}
		_, err = a.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{cond}, Ops: ops})
		if err == nil {
			return *al, nil
		}
		if !errs.Is(err, errs.Conflict) || attempt >= maxRetries {
			return Alert{}, err
		}
	}
}

// change returns the alert that h makes of the stored one (read from this
// node's copy when stale is set), with the condition and the operations
// that store it: the alert itself and, for a new alert, its notifications'
// outbox entries. When h changes nothing, ops is nil and al the stored
// alert.
func (a *Alerts) change(ctx context.Context, h sigma.Hit, stale bool) (al *Alert, cond kv.Cond, ops []kv.Op, err error) {
	id := AlertID(h.Key)
	old, ver, err := a.read(ctx, id, stale)
	if err != nil {
		return nil, kv.Cond{}, nil, err
	}
	al, changed, err := a.merge(old, id, h)
	if err != nil {
		return nil, kv.Cond{}, nil, err
	}
	if !changed {
		return old, kv.Cond{}, nil, nil
	}
	b := mustJSON(al)
	ops = []kv.Op{{Type: kv.OpPut, Key: prefixAlert + id, Value: b}}
	if old == nil {
		out, err := outboxOps(ctx, a.st, al, b, a.now())
		if err != nil {
			return nil, kv.Cond{}, nil, err
		}
		ops = append(ops, out...)
	}
	return al, kv.Cond{Key: prefixAlert + id, Version: ver}, ops, nil
}

func derefAlert(al *Alert) Alert {
	if al == nil {
		return Alert{}
	}
	return *al
}

// MaxRecordBatch bounds the hits RecordBatch takes at once (its audit
// record names every alert it changed).
const MaxRecordBatch = 64

// RecordBatch records hits as Record does, in one Raft command whose one
// audit record names every alert it created or changed: under a burst of
// attacks (thousands of alerts updated every second) detection pays one
// commit for many alerts, not one each. Alerts are read from this node's
// copy first; the versions they were read at are the command's conditions,
// so a stale read is a conflict, retried with linearizable reads.
func (a *Alerts) RecordBatch(ctx context.Context, hits []sigma.Hit) error {
	if len(hits) > MaxRecordBatch {
		return errs.E(errs.Invalid, "hits: %d, more than %d at once", len(hits), MaxRecordBatch)
	}
	for _, h := range hits {
		if h.Rule == nil || h.Key == "" {
			return errs.E(errs.Invalid, "hit: no rule or no key")
		}
	}
	entry := auditlog.SystemEntry(a.now(), a.node, "alert.record", "")
	ctx, _ = a.audit.Pending(ctx, entry)
	for attempt := 0; ; attempt++ {
		var conds []kv.Cond
		var ops []kv.Op
		var resources []string
		for _, h := range hits {
			al, cond, hops, err := a.change(ctx, h, attempt == 0)
			if err != nil {
				return err
			}
			if hops == nil {
				continue
			}
			conds = append(conds, cond)
			ops = append(ops, hops...)
			resources = append(resources, `Alert::"`+al.ID+`"`)
		}
		if len(ops) == 0 {
			return nil
		}
		entry.Resource = strings.Join(resources, ", ")
		_, err := a.st.Txn(ctx, kv.Txn{Conds: conds, Ops: ops})
		if err == nil {
			return nil
		}
		if !errs.Is(err, errs.Conflict) || attempt >= maxRetries {
			return err
		}
	}
}

// read returns alert id as get does, from this node's copy when stale is
// set.
func (a *Alerts) read(ctx context.Context, id string, stale bool) (*Alert, uint64, error) {
	if !stale {
		return a.get(ctx, id)
	}
	e, err := a.st.GetStale(prefixAlert + id)
	return decodeAlert(id, e, err)
}

// decodeAlert decodes a read of alert id: nil when it is absent.
func decodeAlert(id string, e kv.Entry, err error) (*Alert, uint64, error) {
	if errs.Is(err, errs.NotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	al := new(Alert)
	if err := json.Unmarshal(e.Value, al); err != nil {
		return nil, 0, fmt.Errorf("detect: decode alert %s: %w", id, err)
	}
	return al, e.Version, nil
}

// merge returns old updated with h (a new alert when old is nil), and
// whether anything changed.
func (a *Alerts) merge(old *Alert, id string, h sigma.Hit) (*Alert, bool, error) {
	now := rfc3339(a.now())
	var al Alert
	if old != nil {
		al = *old
		al.Tags = slices.Clone(old.Tags)
		al.Hosts = slices.Clone(old.Hosts)
		al.Events = slices.Clone(old.Events)
		al.EventRefs = slices.Clone(old.EventRefs)
	} else {
		al = Alert{ID: id, Status: StatusOpen, Created: now, Group: h.Group}
		if al.Group == nil {
			al.Group = map[string]string{}
		}
	}
	before := mustJSON(al)
	al.RuleID, al.RuleTitle, al.Level = h.Rule.ID, h.Rule.Title, h.Rule.Level
	al.Tags = slices.Clone(h.Rule.Tags)
	if al.Tags == nil {
		al.Tags = []string{}
	}
	al.Count = max(al.Count, h.Count)
	if !h.First.IsZero() && (al.FirstSeen == "" || earlier(h.First, al.FirstSeen)) {
		al.FirstSeen = rfc3339(h.First)
	}
	if !h.Last.IsZero() && (al.LastSeen == "" || later(h.Last, al.LastSeen)) {
		al.LastSeen = rfc3339(h.Last)
	}
	for _, host := range h.Hosts {
		if host != "" && !slices.Contains(al.Hosts, host) && len(al.Hosts) < MaxAlertHosts {
			al.Hosts = append(al.Hosts, host)
		}
	}
	sort.Strings(al.Hosts)
	if al.Hosts == nil {
		al.Hosts = []string{}
	}
	size := 0
	for _, e := range al.Events {
		size += len(e)
	}
	for _, ev := range h.Events {
		if len(al.Events) >= MaxAlertEvents {
			break
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return nil, false, fmt.Errorf("detect: encode an event of hit %s: %w", id, err)
		}
		if size+len(b) > MaxAlertEventBytes || slices.ContainsFunc(al.Events, func(x json.RawMessage) bool { return bytes.Equal(x, b) }) {
			continue
		}
		size += len(b)
		al.Events = append(al.Events, b)
	}
	if al.Events == nil {
		al.Events = []json.RawMessage{}
	}
	for _, r := range h.Refs {
		if !slices.Contains(al.EventRefs, r) {
			al.EventRefs = append(al.EventRefs, r)
		}
	}
	slices.Sort(al.EventRefs)
	if len(al.EventRefs) > MaxAlertEvents {
		al.EventRefs = al.EventRefs[:MaxAlertEvents]
	}
	if al.EventRefs == nil {
		al.EventRefs = []uint64{}
	}
	if old != nil && bytes.Equal(before, mustJSON(al)) {
		return old, false, nil
	}
	al.Updated = now
	return &al, true, nil
}

// earlier reports whether t is before the RFC 3339 time s (true when s
// does not parse, so a damaged time is replaced).
func earlier(t time.Time, s string) bool {
	u, err := time.Parse(time.RFC3339Nano, s)
	return err != nil || t.Before(u)
}

// later reports whether t is after the RFC 3339 time s (true when s does
// not parse).
func later(t time.Time, s string) bool {
	u, err := time.Parse(time.RFC3339Nano, s)
	return err != nil || t.After(u)
}

// Ack acknowledges alert id with a comment (by names the caller). An
// acknowledged alert stays so (the comment is added); a closed one cannot
// be acknowledged (errs.Conflict).
func (a *Alerts) Ack(ctx context.Context, id, by, comment string) (Alert, error) {
	return a.setStatus(ctx, id, by, comment, StatusAcknowledged)
}

// Close closes alert id with a comment. Closing a closed alert adds the
// comment only.
func (a *Alerts) Close(ctx context.Context, id, by, comment string) (Alert, error) {
	return a.setStatus(ctx, id, by, comment, StatusClosed)
}

func (a *Alerts) setStatus(ctx context.Context, id, by, comment, status string) (Alert, error) {
	if err := checkAlertID(id); err != nil {
		return Alert{}, err
	}
	if len(comment) > maxCommentLen {
		return Alert{}, errs.E(errs.Invalid, "comment: %d bytes, more than %d", len(comment), maxCommentLen)
	}
	for attempt := 0; ; attempt++ {
		al, ver, err := a.get(ctx, id)
		if err != nil {
			return Alert{}, err
		}
		if al == nil {
			return Alert{}, errs.E(errs.NotFound, "alert %s not found", id)
		}
		if status == StatusAcknowledged && al.Status == StatusClosed {
			return Alert{}, errs.E(errs.Conflict, "alert %s is closed; it cannot be acknowledged", id)
		}
		now := rfc3339(a.now())
		al.Status, al.Updated = status, now
		al.Notes = append(al.Notes, Note{Time: now, By: by, Status: status, Comment: comment})
		if len(al.Notes) > MaxAlertNotes {
			al.Notes = al.Notes[len(al.Notes)-MaxAlertNotes:]
		}
		_, err = a.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: prefixAlert + id, Version: ver}},
			Ops: []kv.Op{{Type: kv.OpPut, Key: prefixAlert + id, Value: mustJSON(al)}}})
		if err == nil {
			return *al, nil
		}
		if !errs.Is(err, errs.Conflict) || attempt >= maxRetries {
			return Alert{}, err
		}
	}
}

// Filter selects alerts for List. Empty fields select everything; Status
// and Level may list several values separated by commas.
type Filter struct {
	Status string
	Level  string
	Rule   string    // rule id
	Host   string    // one of the alert's hosts
	Since  time.Time // last_seen at or after
	Limit  int       // page size (0: DefaultListLimit; at most MaxListLimit)
	Cursor string    // the "next" of the previous page
}

// List returns the alerts f selects, newest first (by created_time, then
// id; both fixed once an alert exists, so pages neither skip nor repeat an
// alert while others are updated), one page at a time: next is the cursor
// of the following page, "" after the last.
func (a *Alerts) List(ctx context.Context, f Filter) ([]Alert, string, error) {
	limit := f.Limit
	switch {
	case limit < 0 || limit > MaxListLimit:
		return nil, "", errs.E(errs.Invalid, "limit: must be 1 to %d", MaxListLimit)
	case limit == 0:
		limit = DefaultListLimit
	}
	var after *cursor
	if f.Cursor != "" {
		c, err := parseCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		after = &c
	}
	for _, v := range splitList(f.Status) {
		if v != StatusOpen && v != StatusAcknowledged && v != StatusClosed {
			return nil, "", errs.E(errs.Invalid, "status %q: want open, acknowledged or closed", v)
		}
	}
	for _, v := range splitList(f.Level) {
		if LevelRank(v) == 0 {
			return nil, "", errs.E(errs.Invalid, "level %q: want informational, low, medium, high or critical", v)
		}
	}
	out, more, err := a.page(ctx, after, limit, f.matches)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if more {
		last := out[len(out)-1]
		next = cursor{created: last.Created, id: last.ID}.String()
	}
	return out, next, nil
}

// Unclosed returns the alerts that are open or acknowledged, at most max
// of them (the most recent first).
func (a *Alerts) Unclosed(ctx context.Context, max int) ([]Alert, error) {
	out, _, err := a.page(ctx, nil, max, statusIn(StatusOpen, StatusAcknowledged))
	return out, err
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func (f *Filter) matches(al *Alert) bool {
	if s := splitList(f.Status); s != nil && !slices.Contains(s, al.Status) {
		return false
	}
	if l := splitList(f.Level); l != nil && !slices.Contains(l, al.Level) {
		return false
	}
	if f.Rule != "" && al.RuleID != f.Rule {
		return false
	}
	if f.Host != "" && !slices.Contains(al.Hosts, f.Host) {
		return false
	}
	if !f.Since.IsZero() && !earlier(f.Since.Add(-time.Nanosecond), al.LastSeen) { // last_seen < since
		return false
	}
	return true
}

// newer orders alerts newest first: created_time, then id, descending.
func newer(x, y Alert) bool {
	if x.Created != y.Created {
		return x.Created > y.Created // fixed-width UTC times sort as text
	}
	return x.ID > y.ID
}

// cursor is the position after an alert in List's order.
type cursor struct{ created, id string }

func (c cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.created + "|" + c.id))
}

func parseCursor(s string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	created, id, ok := strings.Cut(string(b), "|")
	if err != nil || !ok || checkAlertID(id) != nil {
		return cursor{}, errs.E(errs.Invalid, "cursor: not one this server gave")
	}
	return cursor{created: created, id: id}, nil
}

// before reports whether al comes after the cursor's alert in List's order.
func (c cursor) before(al Alert) bool {
	return newer(Alert{Created: c.created, ID: c.id}, al)
}

// Change is an alert as a change left it, with that change's Raft index.
type Change struct {
	Alert Alert
	Index uint64
}

// Changes returns the alerts created or updated after Raft index after,
// oldest change first, and the index to ask from next time. It reads the
// keys linearizably only when this node applied something since after, so
// polling it is cheap while nothing happens; any node can serve it.
func (a *Alerts) Changes(ctx context.Context, after uint64) ([]Change, uint64, error) {
	applied := a.st.AppliedIndex()
	if applied <= after {
		return nil, after, nil
	}
	keys, err := a.st.ListKeys(ctx, prefixAlert, 0)
	if err != nil {
		return nil, after, err
	}
	// The list is linearizable, so it holds every change up to at least
	// applied: the next call need not list again until more is applied.
	next := max(after, applied)
	var out []Change
	for _, k := range keys {
		if k.Version <= after {
			continue
		}
		e, err := a.st.GetStale(k.Key)
		if errs.Is(err, errs.NotFound) {
			continue
		}
		if err != nil {
			return nil, after, err
		}
		var al Alert
		if err := json.Unmarshal(e.Value, &al); err != nil {
			return nil, after, fmt.Errorf("detect: decode alert %s: %w", k.Key, err)
		}
		out = append(out, Change{Alert: al, Index: e.Version})
		next = max(next, e.Version)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, next, nil
}

// AppliedIndex is this node's applied Raft index: a stream that starts now
// asks Changes from it.
func (a *Alerts) AppliedIndex() uint64 { return a.st.AppliedIndex() }

// FormatIndex and ParseIndex write and read a change's index as a stream
// event id.
func FormatIndex(i uint64) string { return strconv.FormatUint(i, 10) }

// ParseIndex parses a stream event id (Last-Event-ID).
func ParseIndex(s string) (uint64, error) {
	i, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errs.E(errs.Invalid, "Last-Event-ID %q: want a decimal index", s)
	}
	return i, nil
}
