package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warden-sec/warden/internal/fsutil"
)

// The follower of the decision stream, GET /v1/decisions/stream
// (docs/response.md, "Enforcement in services"): a local copy of the
// decisions, the never-block list and the revoked certificates, kept
// current by push, that its owner enforces without a round trip to the
// servers and keeps enforcing while they are unreachable.

// Limits on what a server can make a Follower read and hold. A stream
// that exceeds one is a protocol error: the follower drops the
// connection, keeps its last state and reconnects (to the next server).
const (
	// MaxStreamLine bounds one line of the stream.
	MaxStreamLine = 1 << 20
	// MaxStreamEvent bounds the data of one event.
	MaxStreamEvent = 1 << 20
	// MaxDecisionItems bounds the decisions, allow entries and
	// revocations a state holds together.
	MaxDecisionItems = 200_000
	// MaxDecisionCacheBytes bounds the cache file NewFollower reads.
	MaxDecisionCacheBytes = 256 << 20
)

// Defaults of FollowerConfig's optional fields.
const (
	// DefaultStreamSilence is how long a stream may stay silent (no
	// event, no heartbeat: the server sends one every 5 s) before the
	// follower takes it for dead and reconnects.
	DefaultStreamSilence = 15 * time.Second
	// DefaultFollowBackoff is the first wait before a reconnection; it
	// doubles on each failure, up to DefaultFollowMaxBackoff, with jitter.
	DefaultFollowBackoff    = 250 * time.Millisecond
	DefaultFollowMaxBackoff = 30 * time.Second
)

// DecisionState is the local copy a Follower keeps: the live decisions
// (not deleted; expired ones until the next sync prunes them), the
// never-block list and the unexpired revocations, as of Revision (the last
// sync). A state returned by Follower.State is a snapshot that nobody
// modifies: read it from any goroutine, do not write it. A state built by
// hand works with the helpers too.
type DecisionState struct {
	Revision  uint64
	Decisions map[string]DecisionRecord // by id
	Allow     map[string]AllowEntry     // by id
	Revoked   map[string]Revocation     // by serial, lower-case hex without leading zeros

	idx *stateIndex // built by the follower on publication; nil: helpers build one per call
}

// Active returns the decisions in force at now by the local clock: not
// pending approval and not expired, sorted by id. Simulated decisions are
// included (Simulated is true): callers log them and do not enforce them.
// Decisions that hit the never-block list are included too; see AllowHit.
func (s *DecisionState) Active(now time.Time) []DecisionRecord {
	ix := s.index()
	var out []DecisionRecord
	for _, id := range slices.Sorted(maps.Keys(s.Decisions)) {
		if d := s.Decisions[id]; ix.live(d, now) {
			out = append(out, d)
		}
	}
	return out
}

// BannedIP returns a ban to enforce against ip for a node of zone at now:
// active (see Active), not simulated, of zone "" or zone, whose target IP
// is ip or whose target CIDR contains it, and that does not hit the
// never-block list. IPv4-mapped IPv6 addresses are taken as IPv4.
func (s *DecisionState) BannedIP(ip netip.Addr, zone string, now time.Time) (DecisionRecord, bool) {
	for _, d := range s.MatchIP(ip, zone, now) {
		if _, allowed := s.AllowHit(d); !d.Simulated && !allowed {
			return d, true
		}
	}
	return DecisionRecord{}, false
}

// MatchIP returns every active ban of zone "" or zone that targets ip or
// a range containing it, simulated ones and those hitting the never-block
// list included (for logging what is not enforced): bans of the address
// first, then of ranges, each by id.
func (s *DecisionState) MatchIP(ip netip.Addr, zone string, now time.Time) []DecisionRecord {
	if !ip.IsValid() {
		return nil
	}
	ip = ip.Unmap().WithZone("")
	ix := s.index()
	var out []DecisionRecord
	match := func(id string) {
		if d := s.Decisions[id]; ix.live(d, now) && (d.Zone == "" || d.Zone == zone) {
			out = append(out, d)
		}
	}
	for _, id := range ix.ips[ip] {
		match(id)
	}
	for _, c := range ix.cidrs {
		if c.prefix.Contains(ip) {
			match(c.id)
		}
	}
	return out
}

// Quarantined returns the quarantine of node to enforce at now: active,
// not simulated, and not hitting the never-block list. Quarantine applies
// in every zone.
func (s *DecisionState) Quarantined(node string, now time.Time) (DecisionRecord, bool) {
	ix := s.index()
	for _, id := range ix.nodes[node] {
		if d := s.Decisions[id]; s.enforced(ix, d, d.Zone, now) {
			return d, true
		}
	}
	return DecisionRecord{}, false
}

// RevokedSerial reports whether the certificate of serial (hex, any case,
// leading zeros or not) is revoked per the stream.
func (s *DecisionState) RevokedSerial(serialHex string) bool {
	_, ok := s.Revoked[normalSerial(serialHex)]
	return ok
}

// AllowHit returns the never-block entry that d hits, if any: for a ban of
// an IP, an entry whose range contains it; of a CIDR, an entry whose range
// overlaps it; for a quarantine, an entry naming the node or whose range
// contains one of its addresses. The servers refuse such decisions (409);
// this is the enforcer's defence in depth.
func (s *DecisionState) AllowHit(d DecisionRecord) (AllowEntry, bool) {
	ix := s.index()
	hit := func(p netip.Prefix) (AllowEntry, bool) {
		for _, a := range ix.allow {
			if a.prefix.Overlaps(p) {
				return s.Allow[a.id], true
			}
		}
		return AllowEntry{}, false
	}
	switch {
	case d.Type == "quarantine" || d.Target.Node != "":
		if id, ok := ix.allowNodes[d.Target.Node]; ok && d.Target.Node != "" {
			return s.Allow[id], true
		}
		for _, a := range d.Addresses {
			if ip, err := netip.ParseAddr(a); err == nil {
				ip = ip.Unmap().WithZone("")
				if e, ok := hit(netip.PrefixFrom(ip, ip.BitLen())); ok {
					return e, true
				}
			}
		}
	case d.Target.IP != "":
		if ip, err := netip.ParseAddr(d.Target.IP); err == nil {
			ip = ip.Unmap().WithZone("")
			return hit(netip.PrefixFrom(ip, ip.BitLen()))
		}
	case d.Target.CIDR != "":
		if p, ok := parsePrefix(d.Target.CIDR); ok {
			return hit(p)
		}
	}
	return AllowEntry{}, false
}

// enforced reports whether d is to be enforced at now on a node of zone.
func (s *DecisionState) enforced(ix *stateIndex, d DecisionRecord, zone string, now time.Time) bool {
	if !ix.live(d, now) || d.Simulated || (d.Zone != "" && d.Zone != zone) {
		return false
	}
	_, allowed := s.AllowHit(d)
	return !allowed
}

func (s *DecisionState) index() *stateIndex {
	if s.idx != nil {
		return s.idx
	}
	return buildIndex(s)
}

// stateIndex makes the helpers' look-ups cheap: it is built once per
// published state.
type stateIndex struct {
	expires    map[string]time.Time // decision id → expiry; absent: unparsable (never live)
	ips        map[netip.Addr][]string
	cidrs      []prefixRef // bans of ranges, by id
	nodes      map[string][]string
	allow      []prefixRef // never-block ranges, by id
	allowNodes map[string]string
}

type prefixRef struct {
	prefix netip.Prefix
	id     string
}

func (ix *stateIndex) live(d DecisionRecord, now time.Time) bool {
	exp, ok := ix.expires[d.ID]
	return ok && !d.Deleted && !d.PendingApproval && now.Before(exp)
}

func buildIndex(s *DecisionState) *stateIndex {
	ix := &stateIndex{expires: map[string]time.Time{}, ips: map[netip.Addr][]string{}, nodes: map[string][]string{},
		allowNodes: map[string]string{}}
	for _, id := range slices.Sorted(maps.Keys(s.Decisions)) {
		d := s.Decisions[id]
		if t, err := time.Parse(time.RFC3339, d.ExpiresAt); err == nil {
			ix.expires[id] = t
		}
		switch {
		case d.Type == "quarantine" && d.Target.Node != "":
			ix.nodes[d.Target.Node] = append(ix.nodes[d.Target.Node], id)
		case d.Type != "ban":
		case d.Target.IP != "":
			if ip, err := netip.ParseAddr(d.Target.IP); err == nil {
				ip = ip.Unmap().WithZone("")
				ix.ips[ip] = append(ix.ips[ip], id)
			}
		case d.Target.CIDR != "":
			if p, ok := parsePrefix(d.Target.CIDR); ok {
				ix.cidrs = append(ix.cidrs, prefixRef{p, id})
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.Allow)) {
		a := s.Allow[id]
		if a.Node != "" {
			if _, ok := ix.allowNodes[a.Node]; !ok {
				ix.allowNodes[a.Node] = id
			}
		}
		if a.CIDR != "" {
			if p, ok := parsePrefix(a.CIDR); ok {
				ix.allow = append(ix.allow, prefixRef{p, id})
			}
		}
	}
	return ix
}

// parsePrefix parses a CIDR, masked, IPv4-mapped ranges as IPv4; a single
// address is its /32 or /128.
func parsePrefix(s string) (netip.Prefix, bool) {
	if !strings.Contains(s, "/") {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		ip = ip.Unmap().WithZone("")
		return netip.PrefixFrom(ip, ip.BitLen()), true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

// normalSerial is the key of a serial in Revoked: lower case, no leading
// zeros ("0" for zero).
func normalSerial(s string) string {
	s = strings.TrimLeft(strings.ToLower(strings.TrimSpace(s)), "0")
	if s == "" {
		return "0"
	}
	return s
}

func (s *DecisionState) items() int { return len(s.Decisions) + len(s.Allow) + len(s.Revoked) }

// clone returns a deep enough copy to modify (the records are values).
func (s *DecisionState) clone() *DecisionState {
	return &DecisionState{Revision: s.Revision, Decisions: maps.Clone(s.Decisions), Allow: maps.Clone(s.Allow),
		Revoked: maps.Clone(s.Revoked)}
}

func emptyState() *DecisionState {
	return &DecisionState{Decisions: map[string]DecisionRecord{}, Allow: map[string]AllowEntry{}, Revoked: map[string]Revocation{}}
}

// FollowerConfig configures a Follower. NewFollower copies it; the zero
// value of each optional field has the documented default.
type FollowerConfig struct {
	// Clients talk to the servers, one per server address, tried in turn
	// (the next after each failure). Their credentials must allow
	// decisions.read: a node's SVID does. Required, at least one.
	Clients []*Client
	// CacheFile, if not empty, is where the last synced state is kept
	// (mode 0600, replaced atomically after each sync) and read back by
	// NewFollower, so that a restart during an outage still enforces.
	CacheFile string
	// OnChange, if not nil, is called from Run's goroutine with each
	// newly synced state (after a reset and its sync, or a sync after
	// changes), and once when Run starts if a cached state was loaded.
	// The state is read-only; OnChange should return promptly (the stream
	// is not read meanwhile).
	OnChange func(*DecisionState)
	// Logger receives connection failures and protocol errors; never
	// credentials. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock of expiry (pruning expired items). Default time.Now.
	Now func() time.Time
	// Silence is how long a stream may send nothing before it is taken
	// for dead. Default DefaultStreamSilence.
	Silence time.Duration
	// Backoff and MaxBackoff bound the wait before a reconnection.
	// Defaults DefaultFollowBackoff and DefaultFollowMaxBackoff.
	Backoff, MaxBackoff time.Duration
}

// Follower follows the decision stream of a cluster and keeps the last
// synced state. State and Synced may be called from any goroutine while
// Run runs; Run must not run twice at once.
type Follower struct {
	cfg FollowerConfig
	log *slog.Logger

	cur       atomic.Pointer[DecisionState] // published; never nil
	fromCache bool
	synced    chan struct{}
	once      sync.Once
	running   atomic.Bool
}

// NewFollower checks cfg and, when CacheFile is set, loads the state kept
// there (a missing or invalid file is logged and ignored: the follower
// starts empty). It starts nothing: call Run.
func NewFollower(cfg FollowerConfig) (*Follower, error) {
	if len(cfg.Clients) == 0 || slices.Contains(cfg.Clients, nil) {
		return nil, errors.New("warden: FollowerConfig.Clients: at least one client, none nil")
	}
	cfg.Clients = slices.Clone(cfg.Clients)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Silence <= 0 {
		cfg.Silence = DefaultStreamSilence
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultFollowBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultFollowMaxBackoff
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.Backoff)
	f := &Follower{cfg: cfg, log: cfg.Logger.With("component", "warden-decisions"), synced: make(chan struct{})}
	st := emptyState()
	if cfg.CacheFile != "" {
		cached, err := loadDecisionCache(cfg.CacheFile)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			f.log.Warn("decision cache not loaded; starting empty", "file", cfg.CacheFile, "err", err)
		default:
			st, f.fromCache = cached, true
			f.log.Info("decision cache loaded", "file", cfg.CacheFile, "revision", st.Revision, "items", st.items())
		}
	}
	st.idx = buildIndex(st)
	f.cur.Store(st)
	return f, nil
}

// State returns the current snapshot: never nil (empty before the first
// sync when no cache was loaded). Do not modify it.
func (f *Follower) State() *DecisionState { return f.cur.Load() }

// Synced returns a channel closed after the first sync this Follower
// received from a server (a loaded cache file does not count).
func (f *Follower) Synced() <-chan struct{} { return f.synced }

// Run follows the stream until ctx ends, and then returns ctx.Err(). It
// connects to the servers in turn; a failed or broken stream, or one
// silent for longer than Silence, is dropped and the next server tried
// after a backoff (doubling, capped, jittered), resuming from the last
// sync's revision. Through every failure the last state stays in force.
func (f *Follower) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("warden: Follower.Run is already running")
	}
	defer f.running.Store(false)
	if f.fromCache && f.cfg.OnChange != nil {
		f.cfg.OnChange(f.State())
	}
	wait := f.cfg.Backoff
	for i := 0; ; i = (i + 1) % len(f.cfg.Clients) {
		c := f.cfg.Clients[i]
		progressed, err := f.follow(ctx, c)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if progressed {
			wait = f.cfg.Backoff
		}
		f.log.Warn("decision stream ended; reconnecting", "server", c.Address(), "revision", f.State().Revision, "err", err)
		// Full jitter in [wait/2, wait): followers cut off together do
		// not come back together.
		d := wait/2 + rand.N(wait/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, f.cfg.MaxBackoff)
	}
}

// ErrStreamSilent is the error of a stream dropped for silence (logged by Run).
var ErrStreamSilent = errors.New("warden: decision stream silent for too long")

// follow reads one stream from c until it ends; progressed reports
// whether at least one sync was applied.
func (f *Follower) follow(ctx context.Context, c *Client) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var silent atomic.Bool
	watchdog := time.AfterFunc(f.cfg.Silence, func() { silent.Store(true); cancel() })
	defer watchdog.Stop()

	path := "/v1/decisions/stream"
	if rev := f.State().Revision; rev > 0 {
		path += "?since=" + strconv.FormatUint(rev, 10)
	}
	resp, err := c.openStream(ctx, path)
	if err != nil {
		if silent.Load() {
			return false, ErrStreamSilent
		}
		return false, err
	}
	defer resp.Body.Close()
	ap := &applier{cur: f.State(), now: f.cfg.Now}
	rd := newSSEReader(resp.Body, func() { watchdog.Reset(f.cfg.Silence) })
	for {
		ev, err := rd.next()
		if err != nil {
			if silent.Load() {
				return progressed, ErrStreamSilent
			}
			if errors.Is(err, io.EOF) {
				return progressed, errors.New("warden: the server ended the decision stream")
			}
			return progressed, err
		}
		st, err := ap.apply(ev)
		if err != nil {
			return progressed, err
		}
		if st != nil {
			progressed = true
			f.publish(st)
		}
	}
}

// publish puts st in force, tells OnChange and writes the cache file.
func (f *Follower) publish(st *DecisionState) {
	f.cur.Store(st)
	f.once.Do(func() { close(f.synced) })
	if f.cfg.OnChange != nil {
		f.cfg.OnChange(st)
	}
	if f.cfg.CacheFile != "" {
		if err := saveDecisionCache(f.cfg.CacheFile, st); err != nil {
			f.log.Warn("decision cache not written", "file", f.cfg.CacheFile, "err", err)
		}
	}
}

// applier applies a stream's events to a state: changes go to a working
// copy, published only at a sync, so that a half-received reset or batch
// is never in force.
type applier struct {
	cur  *DecisionState // last published (or the state the stream resumes from)
	work *DecisionState // nil: no change since cur
	now  func() time.Time
}

// apply applies one event; it returns the state to publish after a sync,
// else nil. An error is a protocol error: the stream must be dropped.
func (a *applier) apply(ev sseEvent) (*DecisionState, error) {
	w := func() *DecisionState {
		if a.work == nil {
			a.work = a.cur.clone()
		}
		return a.work
	}
	switch ev.Event {
	case "reset":
		var r struct {
			Revision uint64 `json:"revision"`
		}
		if err := json.Unmarshal(ev.Data, &r); err != nil {
			return nil, fmt.Errorf("warden: decision stream: reset: %w", err)
		}
		a.work = emptyState()
	case "decision":
		var d DecisionRecord
		if err := json.Unmarshal(ev.Data, &d); err != nil || d.ID == "" || len(d.ID) > 256 {
			return nil, fmt.Errorf("warden: decision stream: decision event %q: not a decision (%v)", ev.ID, err)
		}
		st := w()
		if d.Deleted {
			delete(st.Decisions, d.ID)
		} else {
			st.Decisions[d.ID] = d
		}
	case "allow":
		var e AllowEntry
		if err := json.Unmarshal(ev.Data, &e); err != nil || e.ID == "" || len(e.ID) > 256 {
			return nil, fmt.Errorf("warden: decision stream: allow event %q: not an allow entry (%v)", ev.ID, err)
		}
		st := w()
		if e.Deleted {
			delete(st.Allow, e.ID)
		} else {
			st.Allow[e.ID] = e
		}
	case "revocation":
		var r Revocation
		if err := json.Unmarshal(ev.Data, &r); err != nil || r.Serial == "" || len(r.Serial) > 256 {
			return nil, fmt.Errorf("warden: decision stream: revocation event %q: not a revocation (%v)", ev.ID, err)
		}
		r.Serial = normalSerial(r.Serial)
		w().Revoked[r.Serial] = r
	case "sync":
		var r struct {
			Revision *uint64 `json:"revision"`
		}
		if err := json.Unmarshal(ev.Data, &r); err != nil || r.Revision == nil {
			return nil, fmt.Errorf("warden: decision stream: sync event %q: no revision (%v)", ev.ID, err)
		}
		st := w()
		st.Revision = *r.Revision
		prune(st, a.now())
		st.idx = buildIndex(st)
		a.cur, a.work = st, nil
		return st, nil
	default: // an event of a later version: skipped
		return nil, nil
	}
	if a.work != nil && a.work.items() > MaxDecisionItems {
		return nil, fmt.Errorf("warden: decision stream: more than %d items", MaxDecisionItems)
	}
	return nil, nil
}

// prune drops the decisions and revocations that expired before now.
// Decisions whose expiry does not parse are kept (they are never live).
func prune(st *DecisionState, now time.Time) {
	maps.DeleteFunc(st.Decisions, func(_ string, d DecisionRecord) bool {
		t, err := time.Parse(time.RFC3339, d.ExpiresAt)
		return err == nil && !now.Before(t) && !d.PendingApproval
	})
	maps.DeleteFunc(st.Revoked, func(_ string, r Revocation) bool {
		t, err := time.Parse(time.RFC3339, r.ExpiresAt)
		return err == nil && !now.Before(t)
	})
}

// sseEvent is one server-sent event (the fields the stream uses).
type sseEvent struct {
	Event, ID string
	Data      []byte
}

// sseReader reads server-sent events
// (https://html.spec.whatwg.org/multipage/server-sent-events.html), with
// lines bounded by MaxStreamLine and an event's data by MaxStreamEvent.
// alive is called for every line read, comments (heartbeats) included.
type sseReader struct {
	r     *bufio.Reader
	alive func()
	line  []byte
}

func newSSEReader(r io.Reader, alive func()) *sseReader {
	if alive == nil {
		alive = func() {}
	}
	// A small buffer (a load test runs thousands of followers in one
	// process); longer lines are put together in s.line.
	return &sseReader{r: bufio.NewReaderSize(r, 4<<10), alive: alive}
}

// readLine returns the next line without its end (LF, CRLF or CR before
// LF); the slice is valid until the next call.
func (s *sseReader) readLine() ([]byte, error) {
	s.line = s.line[:0]
	for {
		frag, err := s.r.ReadSlice('\n')
		if len(s.line)+len(frag) > MaxStreamLine+2 {
			return nil, fmt.Errorf("warden: decision stream: a line longer than %d bytes", MaxStreamLine)
		}
		s.line = append(s.line, frag...)
		switch {
		case err == nil:
			l := bytes.TrimSuffix(s.line[:len(s.line)-1], []byte("\r"))
			return l, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(s.line) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// next returns the next event with a type or data. Comments, fields other
// than event, id and data, and empty events are skipped.
func (s *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	var data []byte
	hasData := false
	for {
		line, err := s.readLine()
		if err != nil {
			return sseEvent{}, err
		}
		s.alive()
		if len(line) == 0 {
			if ev.Event != "" || hasData {
				ev.Data = data
				return ev, nil
			}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			ev.Event = string(value)
		case "id":
			ev.ID = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			hasData = true
			if len(data)+len(value) > MaxStreamEvent {
				return sseEvent{}, fmt.Errorf("warden: decision stream: an event larger than %d bytes", MaxStreamEvent)
			}
			data = append(data, value...)
		}
	}
}

// decisionCache is the cache file: one JSON object.
type decisionCache struct {
	Version   int              `json:"version"`
	Revision  uint64           `json:"revision"`
	Decisions []DecisionRecord `json:"decisions"`
	Allow     []AllowEntry     `json:"allow"`
	Revoked   []Revocation     `json:"revoked"`
}

const decisionCacheVersion = 1

func saveDecisionCache(name string, st *DecisionState) error {
	c := decisionCache{Version: decisionCacheVersion, Revision: st.Revision, Decisions: []DecisionRecord{}, Allow: []AllowEntry{},
		Revoked: []Revocation{}}
	for _, id := range slices.Sorted(maps.Keys(st.Decisions)) {
		c.Decisions = append(c.Decisions, st.Decisions[id])
	}
	for _, id := range slices.Sorted(maps.Keys(st.Allow)) {
		c.Allow = append(c.Allow, st.Allow[id])
	}
	for _, s := range slices.Sorted(maps.Keys(st.Revoked)) {
		c.Revoked = append(c.Revoked, st.Revoked[s])
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(name, b, 0o600)
}

// loadDecisionCache reads a cache file strictly: unknown fields, trailing
// data, another version, more than MaxDecisionItems items or an item
// without its key are errors.
func loadDecisionCache(name string) (*DecisionState, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxDecisionCacheBytes+1))
	if err != nil {
		return nil, err
	}
	return decodeDecisionCache(data)
}

func decodeDecisionCache(data []byte) (*DecisionState, error) {
	if len(data) > MaxDecisionCacheBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxDecisionCacheBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c decisionCache
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data")
	}
	if c.Version != decisionCacheVersion {
		return nil, fmt.Errorf("version %d, want %d", c.Version, decisionCacheVersion)
	}
	if n := len(c.Decisions) + len(c.Allow) + len(c.Revoked); n > MaxDecisionItems {
		return nil, fmt.Errorf("%d items, more than %d", n, MaxDecisionItems)
	}
	st := emptyState()
	st.Revision = c.Revision
	for _, d := range c.Decisions {
		if d.ID == "" || d.Deleted {
			return nil, errors.New("a decision without id, or deleted")
		}
		st.Decisions[d.ID] = d
	}
	for _, e := range c.Allow {
		if e.ID == "" || e.Deleted {
			return nil, errors.New("an allow entry without id, or deleted")
		}
		st.Allow[e.ID] = e
	}
	for _, r := range c.Revoked {
		if r.Serial == "" {
			return nil, errors.New("a revocation without serial")
		}
		st.Revoked[normalSerial(r.Serial)] = r
	}
	return st, nil
}
