package respond

import (
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/authority"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store/kv"
	"github.com/warden-sec/warden/pkg/client"
)

// Kinds of the items of the decision stream (the SSE event names).
const (
	FeedDecision   = "decision"
	FeedAllow      = "allow"
	FeedRevocation = "revocation"
)

// Feed bounds.
const (
	// FeedPoll is how often the feed looks at the applied Raft index.
	FeedPoll = 20 * time.Millisecond
	// SubscriberBuffer is how many batches a subscriber may fall behind
	// before it is cut off (it resumes from its last sync).
	SubscriberBuffer = 256
)

// FeedItem is one element of the stream: a decision, a never-block entry or a
// revocation, as JSON (marshalled once, whatever the number of
// subscribers).
type FeedItem struct {
	Kind     string
	Revision uint64
	JSON     []byte
}

// Batch is what a subscriber receives: items (oldest change first), then
// the revision the stream reached (the "sync"). A Reset batch holds the
// whole live state: the subscriber replaces what it had.
type Batch struct {
	Reset    bool
	Revision uint64
	Items    []FeedItem
}

// feedItem is the feed's copy of one key.
type feedItem struct {
	FeedItem
	dec *Decision          // FeedDecision
	del bool               // a tombstone
	exp time.Time          // expiry (decisions, revocations)
	rev *client.Revocation // FeedRevocation
}

// Feed follows decisions, the never-block list and certificate
// revocations on this server and fans their changes out to the decision
// streams; it also answers, from memory, whether a node is quarantined or
// a user banned (the API's pipeline asks on every request). One runs per
// server. Safe for concurrent use.
type Feed struct {
	st  Storage
	now func() time.Time
	log *slog.Logger

	ready     chan struct{}
	readyOnce sync.Once
	// polled is closed (and replaced) after every poll that read the
	// state.
	polled chan struct{}

	mu      sync.RWMutex
	applied uint64 // the applied index of the last successful poll
	rev     uint64 // every change up to it is in items
	horizon uint64
	items   map[string]*feedItem // by key
	byNode  map[string]map[string]bool
	byUser  map[string]map[string]bool
	subs    map[*Subscription]struct{}
}

// NewFeed returns a feed over st; Run makes it follow.
func NewFeed(st Storage, now func() time.Time, log *slog.Logger) *Feed {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Feed{st: st, now: now, log: log, ready: make(chan struct{}), polled: make(chan struct{}), items: map[string]*feedItem{},
		byNode: map[string]map[string]bool{}, byUser: map[string]map[string]bool{}, subs: map[*Subscription]struct{}{}}
}

// Ready is closed once the feed has read the state (the first poll that
// worked: it waits for the server to be unsealed).
func (f *Feed) Ready() <-chan struct{} { return f.ready }

// Run polls every FeedPoll until ctx ends. Subscribers are cut off when it
// returns.
func (f *Feed) Run(ctx context.Context) {
	t := time.NewTicker(FeedPoll)
	defer t.Stop()
	defer f.closeAll()
	for {
		if err := f.Poll(ctx); err != nil && ctx.Err() == nil {
			f.log.Debug("decision feed: poll failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

var feedPrefixes = []string{prefixDecisions, prefixAllow, prefixRevoked}

// Poll reads what changed since the last poll, if this server applied
// anything since, and sends it to the subscribers.
func (f *Feed) Poll(ctx context.Context) error {
	applied := f.st.AppliedIndex()
	f.mu.RLock()
	same := applied == f.applied && f.isReady()
	f.mu.RUnlock()
	if same {
		return nil
	}
	// The listing is linearizable: it holds every change up to at least
	// applied, and every change up to the highest version it shows.
	listed := map[string]uint64{}
	reached := applied
	for _, p := range feedPrefixes {
		es, err := f.st.ListKeys(ctx, p, 0)
		if err != nil {
			return err
		}
		for _, e := range es {
			listed[e.Key] = e.Version
			reached = max(reached, e.Version)
		}
	}
	var hz uint64
	if e, err := f.st.GetStale(keyHorizon); err == nil {
		var h horizon
		if json.Unmarshal(e.Value, &h) == nil {
			hz = h.Revision
		}
	} else if !errs.Is(err, errs.NotFound) {
		return err
	}
	f.mu.RLock()
	var changed []string
	// A version lower than the one the feed holds means the state was
	// replaced (a snapshot restore): every stream starts again with a
	// reset.
	restored := false
	for k, v := range listed {
		if it, ok := f.items[k]; !ok || it.Revision != v {
			changed = append(changed, k)
			restored = restored || (ok && v < it.Revision)
		}
	}
	var gone []string
	for k := range f.items {
		if _, ok := listed[k]; !ok {
			gone = append(gone, k)
		}
	}
	f.mu.RUnlock()
	fresh := make([]*feedItem, 0, len(changed))
	for _, k := range changed {
		e, err := f.st.GetStale(k)
		if errs.Is(err, errs.NotFound) {
			gone = append(gone, k)
			continue
		}
		if err != nil {
			return err
		}
		it, err := decodeItem(e)
		if err != nil {
			f.log.Warn("decision feed: an entry does not decode; skipped", "key", e.Key, "err", err)
			continue
		}
		fresh = append(fresh, it)
	}
	sort.Slice(fresh, func(i, j int) bool { return fresh[i].Revision < fresh[j].Revision })

	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range gone {
		f.remove(k)
	}
	out := &Batch{Revision: max(reached, f.rev)}
	for _, it := range fresh {
		k := keyOf(it)
		if old, ok := f.items[k]; ok && old.Revision == it.Revision {
			continue
		}
		f.remove(k)
		f.items[k] = it
		f.index(k, it)
		out.Items = append(out.Items, it.FeedItem)
	}
	f.applied, f.rev, f.horizon = applied, out.Revision, max(f.horizon, hz)
	f.readyOnce.Do(func() { close(f.ready) })
	close(f.polled)
	f.polled = make(chan struct{})
	if restored {
		f.horizon = max(f.horizon, out.Revision+1)
		for s := range f.subs {
			delete(f.subs, s)
			close(s.c)
		}
		return nil
	}
	if len(out.Items) > 0 {
		for s := range f.subs {
			select {
			case s.c <- out:
			default: // too far behind: cut off; it resumes from its last sync
				delete(f.subs, s)
				close(s.c)
			}
		}
	}
	return nil
}

// WaitApplied waits until the feed has read the state as of at least Raft
// index idx (this server's applied index when a stream opens: a client
// that wrote a decision and then opens a stream finds it in the first
// batch), or ctx ends.
func (f *Feed) WaitApplied(ctx context.Context, idx uint64) error {
	for {
		f.mu.RLock()
		done, polled := f.applied >= idx && f.isReady(), f.polled
		f.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-polled:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// AppliedIndex is this server's applied Raft index.
func (f *Feed) AppliedIndex() uint64 { return f.st.AppliedIndex() }

func (f *Feed) isReady() bool {
	select {
	case <-f.ready:
		return true
	default:
		return false
	}
}

// keyOf is the store key of an item.
func keyOf(it *feedItem) string {
	switch it.Kind {
	case FeedDecision:
		return prefixDecisions + it.dec.ID
	case FeedAllow:
		var a AllowEntry
		_ = json.Unmarshal(it.JSON, &a)
		return prefixAllow + a.ID
	}
	return prefixRevoked + it.rev.Serial
}

// decodeItem decodes a stored entry of one of the feed's prefixes.
func decodeItem(e kv.Entry) (*feedItem, error) {
	switch {
	case strings.HasPrefix(e.Key, prefixDecisions):
		d, err := decodeDecision(e)
		if err != nil {
			return nil, err
		}
		b, _ := json.Marshal(d)
		return &feedItem{FeedItem: FeedItem{Kind: FeedDecision, Revision: e.Version, JSON: b}, dec: &d, del: d.Deleted,
			exp: parseTime(d.ExpiresAt)}, nil
	case strings.HasPrefix(e.Key, prefixAllow):
		a, err := decodeAllow(e)
		if err != nil {
			return nil, err
		}
		if a.ID != strings.TrimPrefix(e.Key, prefixAllow) {
			a.ID = strings.TrimPrefix(e.Key, prefixAllow)
		}
		b, _ := json.Marshal(a)
		return &feedItem{FeedItem: FeedItem{Kind: FeedAllow, Revision: e.Version, JSON: b}, del: a.Deleted}, nil
	default:
		var r authority.Revocation
		if err := json.Unmarshal(e.Value, &r); err != nil {
			return nil, err
		}
		cr := client.Revocation{Serial: strings.TrimPrefix(e.Key, prefixRevoked), RevokedAt: rfc3339(r.RevokedAt),
			ExpiresAt: rfc3339(r.ExpiresAt), Revision: e.Version}
		b, _ := json.Marshal(cr)
		return &feedItem{FeedItem: FeedItem{Kind: FeedRevocation, Revision: e.Version, JSON: b}, exp: r.ExpiresAt, rev: &cr}, nil
	}
}

// remove forgets key k (f.mu held).
func (f *Feed) remove(k string) {
	it, ok := f.items[k]
	if !ok {
		return
	}
	delete(f.items, k)
	if it.dec != nil {
		unindex(f.byNode, it.dec.Target.Node, k)
		unindex(f.byUser, it.dec.Target.User, k)
	}
}

// index records the quarantine or user ban of it (f.mu held).
func (f *Feed) index(k string, it *feedItem) {
	if it.dec == nil || it.del {
		return
	}
	if n := it.dec.Target.Node; n != "" && it.dec.Type == TypeQuarantine {
		addIndex(f.byNode, n, k)
	}
	if u := it.dec.Target.User; u != "" && it.dec.Type == TypeBan {
		addIndex(f.byUser, u, k)
	}
}

func addIndex(m map[string]map[string]bool, v, k string) {
	if m[v] == nil {
		m[v] = map[string]bool{}
	}
	m[v][k] = true
}

func unindex(m map[string]map[string]bool, v, k string) {
	if v == "" || m[v] == nil {
		return
	}
	delete(m[v], k)
	if len(m[v]) == 0 {
		delete(m, v)
	}
}

// enforced returns the decision of the keys ks in force now and not
// simulated, if any.
func (f *Feed) enforced(ks map[string]bool) (Decision, bool) {
	now := f.now()
	for k := range ks {
		if it := f.items[k]; it != nil && it.dec != nil && !it.dec.Simulated && Active(*it.dec, now) {
			return *it.dec, true
		}
	}
	return Decision{}, false
}

// Quarantined returns the quarantine in force on node, if any (simulated
// quarantines are not enforced).
func (f *Feed) Quarantined(node string) (Decision, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.enforced(f.byNode[node])
}

// BannedUser returns the ban in force on user name, if any.
func (f *Feed) BannedUser(name string) (Decision, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.enforced(f.byUser[name])
}

// RevokedSerial reports whether the certificate of serial (lower-case
// hex) is revoked, as far as the feed has seen.
func (f *Feed) RevokedSerial(serial string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, ok := f.items[prefixRevoked+serial]
	return ok
}

// Subscription is one stream's place in the feed: First is what it sends
// first, C the batches that follow. C is closed when the subscriber falls
// SubscriberBuffer batches behind, or the feed stops.
type Subscription struct {
	First Batch
	C     <-chan *Batch
	c     chan *Batch
	f     *Feed
}

// Subscribe starts a subscription from since: with since 0, or below the
// horizon (tombstones older than since were collected), First is a reset
// with every live item (decisions neither deleted nor expired, the
// never-block list, unexpired revocations); otherwise First holds every
// item changed after since, tombstones included. It fails with
// errs.Unavailable until the feed is Ready.
func (f *Feed) Subscribe(since uint64) (*Subscription, error) {
	if !f.isReady() {
		return nil, errs.E(errs.Unavailable, "the decision feed has not read the state yet; retry")
	}
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &Subscription{f: f, c: make(chan *Batch, SubscriberBuffer)}
	s.C = s.c
	s.First = Batch{Revision: f.rev, Reset: since == 0 || since < f.horizon}
	for _, it := range f.items {
		if s.First.Reset {
			if it.del || (!it.exp.IsZero() && !now.Before(it.exp)) {
				continue
			}
		} else if it.Revision <= since {
			continue
		}
		s.First.Items = append(s.First.Items, it.FeedItem)
	}
	sort.Slice(s.First.Items, func(i, j int) bool { return s.First.Items[i].Revision < s.First.Items[j].Revision })
	f.subs[s] = struct{}{}
	return s, nil
}

// Close ends the subscription.
func (s *Subscription) Close() {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.subs[s]; ok {
		delete(f.subs, s)
		close(s.c)
	}
}

// Subscribers is how many subscriptions are open.
func (f *Feed) Subscribers() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.subs)
}

func (f *Feed) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		delete(f.subs, s)
		close(s.c)
	}
}
