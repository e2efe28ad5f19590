// Package runtime runs Sigma detection in the servers: it consumes the
// event stream once per server, matches each event against the compiled
// rules once, and feeds the matches to the correlators of the partitions
// this server owns; the hits they produce become alerts.
//
// The work is split into partitions by a hash of the correlation key
// (sigma.PartitionKey). Each partition is owned by one server at a time,
// through leases in a replicated JetStream key-value bucket, and its
// correlation state is checkpointed there with the stream position it
// reflects. When a server dies, the survivors take its partitions over
// from their checkpoints and replay the stream from there, so a
// correlation that spans the failover is detected once and no event is
// skipped. See docs/detection-partitions.md.
//
// The package does not parse, match or correlate (package sigma does),
// store alerts (AlertSink) or own the stream (Stream).
package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/sigma"
)

// Stream is the event stream as detection reads it; *events.Plane
// implements it.
type Stream interface {
	// Consume calls fn for each batch with StreamSeq >= from, in order,
	// until ctx ends (it returns ctx's error) or fn returns an error (it
	// returns that error). It follows new batches as they are stored.
	Consume(ctx context.Context, from uint64, fn func(events.Batch) error) error
	// LastSeq is the sequence of the last batch stored (0 if none).
	LastSeq(ctx context.Context) (uint64, error)
}

// AlertSink records hits as alerts. Record must be idempotent by
// Hit.Key (the same hit recorded twice, or an older hit of the same key
// after a newer one, leaves the alert as the newest made it): hits are
// recorded again when a partition is replayed after a failover. An error
// means the hit was not recorded; it is retried.
type AlertSink interface {
	Record(ctx context.Context, h sigma.Hit) error
}

// BatchSink is an AlertSink that also records many hits in one call (one
// commit); the runtime uses it when the sink has it.
type BatchSink interface {
	AlertSink
	RecordBatch(ctx context.Context, hits []sigma.Hit) error
}

// recordBatch is how many hits one RecordBatch call takes (at most
// detect.MaxRecordBatch).
const recordBatch = 64

// AlertFunc adapts a function to AlertSink.
type AlertFunc func(ctx context.Context, h sigma.Hit) error

// Record calls f.
func (f AlertFunc) Record(ctx context.Context, h sigma.Hit) error { return f(ctx, h) }

// RuleSource gives the rules in force and their version (the version
// changes whenever the rules do).
//
// A RuleSource may also have these methods (*detect.Rules has):
//
//	Set(ctx) ([]*sigma.Rule, sigma.Config, uint64, error)
//	Version() uint64
//
// Set returns the rules with the configuration stored with them (the
// placeholders of the expand modifier, the mapping), read in one view;
// they then replace Config.Sigma.Placeholders and, when set,
// Config.Sigma.Mapping. Version
// returns the rules' version from local state, cheaply; the runtime then
// checks it at every step (about every CheckpointInterval) and reloads
// when it changed.
type RuleSource interface {
	All(ctx context.Context) ([]*sigma.Rule, uint64, error)
}

type (
	ruleSetSource interface {
		Set(ctx context.Context) ([]*sigma.Rule, sigma.Config, uint64, error)
	}
	ruleVersioner interface{ Version() uint64 }
)

// RulesFunc adapts a function to RuleSource.
type RulesFunc func(ctx context.Context) ([]*sigma.Rule, uint64, error)

// All calls f.
func (f RulesFunc) All(ctx context.Context) ([]*sigma.Rule, uint64, error) { return f(ctx) }

// Defaults of Config.
const (
	DefaultPartitions         = 16
	DefaultHeartbeat          = time.Second
	DefaultLease              = 3 * time.Second
	DefaultCheckpointInterval = time.Second
	DefaultRulesPoll          = 10 * time.Second
	DefaultMaxPendingHits     = 10000
	DefaultRecordConcurrency  = 8
)

// Config configures a Runtime. Fields marked required must be set; the
// others have the documented defaults when zero.
type Config struct {
	// Node is this server's name (required); unique in the cluster. A
	// name that is not 1 to 64 of [A-Za-z0-9_-] is hex-encoded in keys.
	Node string
	// Stream is the event stream (required).
	Stream Stream
	// KV is the replicated bucket holding membership, leases and
	// checkpoints (required); every server of the cluster uses the same.
	KV jetstream.KeyValue
	// Rules are the rules in force (required).
	Rules RuleSource
	// RulesChanged, if set, signals that the rules changed. Without it
	// the runtime polls Rules every RulesPoll. Reload does the same.
	RulesChanged <-chan struct{}
	// Alerts records hits (required).
	Alerts AlertSink
	// Sigma configures the compilation of the rules.
	Sigma sigma.Config
	// Limits bound each partition's correlation state (sigma's defaults
	// when zero).
	Limits sigma.Limits
	// Partitions is the number of partitions, default 16. Every server
	// must use the same number: the first server stores it in KV and
	// the others refuse to run with another.
	Partitions int
	// Heartbeat is how often this server renews its membership (1s) and
	// Lease how long the others wait without seeing it before they take
	// its partitions (3s). Lease must exceed Heartbeat.
	Heartbeat, Lease time.Duration
	// CheckpointInterval is how often hits are flushed to Alerts and
	// partitions checkpointed (1s).
	CheckpointInterval time.Duration
	// RulesPoll is how often Rules is polled without RulesChanged (10s).
	RulesPoll time.Duration
	// RecordConcurrency is how many hits are recorded at once (8): each
	// is a Raft commit.
	RecordConcurrency int
	// MaxPendingHits bounds the distinct alert keys waiting to be
	// recorded; past it, consumption pauses until they are (10000).
	MaxPendingHits int
	// Logger, default slog.Default().
	Logger *slog.Logger
	// Metrics, if set, registers the runtime's series.
	Metrics prometheus.Registerer

	// applied, in tests, is told each batch a partition applied.
	applied func(p int, seq uint64)
}

// matcher is what the runtime needs of a *sigma.Set.
type matcher interface {
	Match(ev events.Event, dst []*sigma.Rule) []*sigma.Rule
}

// correlator is what the runtime needs of a *sigma.Correlator.
type correlator interface {
	Observe(ev events.Event, matched []*sigma.Rule, ref uint64) []sigma.Hit
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
	Stats() sigma.Stats
}

var (
	_ Stream     = (*events.Plane)(nil)
	_ matcher    = (*sigma.Set)(nil)
	_ correlator = (*sigma.Correlator)(nil)
)

// compileSigma is the production compile.
func compileSigma(rules []*sigma.Rule, cfg sigma.Config) (matcher, func(owns func(string) bool, lim sigma.Limits) correlator, error) {
	set, err := sigma.Compile(rules, cfg)
	if err != nil {
		return nil, nil, err
	}
	return set, func(owns func(string) bool, lim sigma.Limits) correlator {
		return sigma.NewCorrelator(set, owns, lim)
	}, nil
}

// Runtime is one server's share of detection. Run it once.
type Runtime struct {
	cfg  Config
	tok  string // Node as a KV key token
	run  string // this life of the server
	log  *slog.Logger
	m    *metrics
	mem  *membership
	rdy  chan struct{}
	rldr chan struct{}

	// Owned by Run's goroutine.
	set      matcher
	newCorr  func(owns func(string) bool, lim sigma.Limits) correlator
	rulesVer uint64
	rulesOK  bool
	parts    map[int]*partition
	owned    []*partition // parts, by id
	pending  map[string]sigma.Hit
	matchBuf []*sigma.Rule
	// known holds the keys of hits recorded already (bounded: cleared at
	// maxKnownKeys). A hit of a key not in it is a new alert: the round
	// ends at once so that it is recorded now, not at the interval's end.
	known       map[string]struct{}
	roundStart  time.Time
	endRound    context.CancelFunc // ends the current round
	endingRound bool               // an early end is scheduled
	early       bool               // the last round ended for a new alert
	lastControl time.Time          // the last full control (flush of every hit, checkpoints)
	active      []*partition

	lastCkpt  time.Time
	ckptEvery time.Duration

	ownedN atomic.Int64
}

// partition is one owned partition's state.
type partition struct {
	id       int
	ownerRev uint64 // revision of owner.<id> this server wrote
	ckptRev  uint64 // revision of ckpt.<id> this server wrote or fenced
	applied  uint64 // last stream sequence applied
	ckptSeq  uint64 // applied as of the last checkpoint
	ckptAt   time.Time
	slot     string // chunk slot of the last checkpoint ("" inline)
	purged   bool   // past lives' chunks purged
	corr     correlator
}

var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// New checks cfg and returns a Runtime; Run starts it.
func New(cfg Config) (*Runtime, error) {
	switch {
	case cfg.Node == "":
		return nil, errors.New("detect runtime: Node is required")
	case cfg.Stream == nil:
		return nil, errors.New("detect runtime: Stream is required")
	case cfg.KV == nil:
		return nil, errors.New("detect runtime: KV is required")
	case cfg.Rules == nil:
		return nil, errors.New("detect runtime: Rules is required")
	case cfg.Alerts == nil:
		return nil, errors.New("detect runtime: Alerts is required")
	case cfg.Partitions < 0 || cfg.Partitions > 4096:
		return nil, fmt.Errorf("detect runtime: Partitions %d: want 1 to 4096", cfg.Partitions)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Heartbeat, DefaultHeartbeat)
	def(&cfg.Lease, DefaultLease)
	def(&cfg.CheckpointInterval, DefaultCheckpointInterval)
	def(&cfg.RulesPoll, DefaultRulesPoll)
	if cfg.Partitions == 0 {
		cfg.Partitions = DefaultPartitions
	}
	if cfg.RecordConcurrency <= 0 {
		cfg.RecordConcurrency = DefaultRecordConcurrency
	}
	if cfg.MaxPendingHits <= 0 {
		cfg.MaxPendingHits = DefaultMaxPendingHits
	}
	if cfg.Lease <= cfg.Heartbeat {
		return nil, fmt.Errorf("detect runtime: Lease %v must exceed Heartbeat %v", cfg.Lease, cfg.Heartbeat)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("detect runtime: metrics: %w", err)
	}
	tok := cfg.Node
	if !tokenRE.MatchString(tok) {
		tok = "x" + hex.EncodeToString([]byte(cfg.Node))
		if len(tok) > 200 {
			return nil, fmt.Errorf("detect runtime: Node %q too long", cfg.Node)
		}
	}
	var rb [8]byte
	rand.Read(rb[:])
	r := &Runtime{
		cfg: cfg, tok: tok, run: hex.EncodeToString(rb[:]), m: m,
		log:     cfg.Logger.With("node", cfg.Node),
		rdy:     make(chan struct{}),
		rldr:    make(chan struct{}, 1),
		parts:   map[int]*partition{},
		pending: map[string]sigma.Hit{},
		known:   map[string]struct{}{},
	}
	r.mem = newMembership(cfg.KV, tok, r.run, cfg.Heartbeat, cfg.Lease, time.Now, r.log)
	return r, nil
}

// Reload tells the runtime that the rules changed; it reloads them
// between two batches. It does not block.
func (r *Runtime) Reload() {
	select {
	case r.rldr <- struct{}{}:
	default:
	}
}

// Owned returns how many partitions this server owns. Safe to call
// concurrently with Run.
func (r *Runtime) Owned() int { return int(r.ownedN.Load()) }

const partitionsKey = "config.partitions"

// Run does this server's share of detection until ctx ends; it then
// flushes hits, checkpoints and releases its partitions (within a few
// seconds), and returns ctx's error. It returns another error only when
// the cluster's configuration does not match this server's.
func (r *Runtime) Run(ctx context.Context) error {
	if err := r.checkPartitions(ctx); err != nil {
		return err
	}
	mctx, mcancel := context.WithCancel(ctx)
	defer mcancel()
	go func() { _ = r.mem.runLoop(mctx) }()

	pollRules := time.NewTicker(r.cfg.RulesPoll)
	defer pollRules.Stop()
	reload := true
	wait := time.Duration(0)
	for ctx.Err() == nil {
		if wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			case <-r.mem.changed:
			case <-r.rldr:
				reload = true
			case <-r.cfg.RulesChanged:
				reload = true
			}
			if ctx.Err() != nil {
				break
			}
		}
		select {
		case <-pollRules.C:
			reload = reload || r.cfg.RulesChanged == nil
		default:
		}
		if v, ok := r.cfg.Rules.(ruleVersioner); ok && r.rulesOK && v.Version() != r.rulesVer {
			reload = true
		}
		if reload {
			reload = !r.loadRules(ctx)
		}
		wait = r.control(ctx)
		if wait > 0 || len(r.owned) == 0 {
			if wait == 0 {
				wait = r.cfg.CheckpointInterval
			}
			continue
		}
		reload = r.round(ctx) || reload
	}
	r.shutdown()
	return ctx.Err()
}

// checkPartitions stores the partition count, or checks it against the
// stored one.
func (r *Runtime) checkPartitions(ctx context.Context) error {
	want := fmt.Appendf(nil, "%d", r.cfg.Partitions)
	for {
		_, err := r.cfg.KV.Create(ctx, partitionsKey, want)
		if err == nil {
			return nil
		}
		if isCASConflict(err) {
			e, gerr := r.cfg.KV.Get(ctx, partitionsKey)
			if gerr == nil {
				if string(e.Value()) != string(want) {
					return fmt.Errorf("detect runtime: the cluster runs %s partitions (KV %s), this server %d", e.Value(), partitionsKey, r.cfg.Partitions)
				}
				return nil
			}
			err = gerr
		}
		r.log.Warn("detect: cannot read the partition count", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.cfg.Heartbeat):
		}
	}
}

var (
	errPause = errors.New("pause consumption")
	// errNewAlert ends a round after a batch that made a new alert.
	errNewAlert = errors.New("a new alert to record")
)

// Early flushes: a round that made a new alert ends after its batch, or
// once it has run minNewAlertRound if it is younger (so a flood of new
// alerts does not turn the consumer over for every batch); maxKnownKeys
// bounds Runtime.known.
const (
	minNewAlertRound = 100 * time.Millisecond
	maxKnownKeys     = 100_000
)

// round consumes from the lowest owned position for one checkpoint
// interval, or until membership or the rules change. It reports whether
// the rules must be reloaded.
func (r *Runtime) round(ctx context.Context) (reload bool) {
	from := r.owned[0].applied
	for _, p := range r.owned[1:] {
		from = min(from, p.applied)
	}
	rctx, cancel := context.WithTimeout(ctx, r.cfg.CheckpointInterval)
	defer cancel()
	r.roundStart, r.endRound, r.endingRound = time.Now(), cancel, false
	var reloadFlag atomic.Bool
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-rctx.Done():
		case <-r.mem.changed:
			cancel()
		case <-r.rldr:
			reloadFlag.Store(true)
			cancel()
		case <-r.cfg.RulesChanged:
			reloadFlag.Store(true)
			cancel()
		}
	}()
	err := r.cfg.Stream.Consume(rctx, from+1, r.apply)
	if err != nil && rctx.Err() == nil && !errors.Is(err, errPause) && !errors.Is(err, errNewAlert) {
		r.log.Warn("detect: consuming the stream failed", "from", from+1, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(r.cfg.Heartbeat):
		}
	}
	cancel()
	<-watched // a signal it took is in reloadFlag
	return reloadFlag.Load()
}

// apply runs one batch through the partitions that have not applied it.
func (r *Runtime) apply(b events.Batch) error {
	if len(r.pending) >= r.cfg.MaxPendingHits {
		return errPause
	}
	seq := b.StreamSeq
	active := r.active[:0]
	for _, p := range r.owned {
		if p.applied < seq {
			active = append(active, p)
		}
	}
	r.active = active
	if len(active) == 0 {
		return nil
	}
	var gap uint64
	for _, p := range active {
		if p.applied+1 < seq {
			gap = max(gap, seq-p.applied-1)
		}
	}
	if gap > 0 {
		// Batches gone from the stream (retention) before this partition
		// applied them: detection never saw them.
		r.m.skipped.Add(float64(gap))
		r.log.Warn("detect: batches no longer in the stream were never applied", "batches", gap, "next", seq)
	}
	var matches, hits int
	newAlert := false
	for _, ev := range b.Events {
		r.matchBuf = r.set.Match(ev, r.matchBuf[:0])
		if len(r.matchBuf) == 0 {
			continue
		}
		matches += len(r.matchBuf)
		for _, p := range active {
			for _, h := range p.corr.Observe(ev, r.matchBuf, seq) {
				r.pending[h.Key] = h
				hits++
				if _, ok := r.known[h.Key]; !ok {
					newAlert = true
				}
			}
		}
	}
	for _, p := range active {
		p.applied = seq
		if r.cfg.applied != nil {
			r.cfg.applied(p.id, seq)
		}
	}
	r.m.events.Add(float64(len(b.Events)))
	r.m.matches.Add(float64(matches))
	r.m.hits.Add(float64(hits))
	if newAlert {
		wait := minNewAlertRound - time.Since(r.roundStart)
		if wait <= 0 {
			r.early = true
			return errNewAlert
		}
		if !r.endingRound {
			r.endingRound, r.early = true, true
			time.AfterFunc(wait, r.endRound)
		}
	}
	return nil
}

// loadRules compiles the rules in force and swaps them in, keeping the
// correlation state (see swapSet). It reports success.
func (r *Runtime) loadRules(ctx context.Context) bool {
	scfg := r.cfg.Sigma
	var rules []*sigma.Rule
	var ver uint64
	var err error
	if ss, ok := r.cfg.Rules.(ruleSetSource); ok {
		var set sigma.Config
		rules, set, ver, err = ss.Set(ctx)
		scfg.Placeholders = set.Placeholders
		if set.Mapping != nil {
			scfg.Mapping = set.Mapping
		}
	} else {
		rules, ver, err = r.cfg.Rules.All(ctx)
	}
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("detect: cannot read the rules", "err", err)
			r.m.compileFails.Inc()
		}
		return false
	}
	if r.rulesOK && ver == r.rulesVer {
		return true
	}
	set, newCorr, err := compileSigma(rules, scfg)
	if err != nil {
		// The rules API refuses what does not compile, so this is a
		// mapping or placeholder change gone wrong: keep the old set.
		r.log.Error("detect: the rules do not compile; the previous set stays in use", "version", ver, "err", err)
		r.m.compileFails.Inc()
		return true
	}
	r.set, r.newCorr, r.rulesVer, r.rulesOK = set, newCorr, ver, true
	for _, p := range r.owned {
		st, err := p.corr.MarshalBinary()
		p.corr = r.newCorrelator(p.id)
		if err == nil {
			err = p.corr.UnmarshalBinary(st)
		}
		if err != nil {
			r.log.Warn("detect: correlation state not carried to the new rules", "partition", p.id, "err", err)
			r.m.stateErrors.Inc()
			p.corr = r.newCorrelator(p.id)
		}
	}
	r.m.rulesLoaded.Set(float64(ver))
	r.log.Info("detect: rules loaded", "version", ver, "rules", len(rules))
	return true
}

func (r *Runtime) newCorrelator(p int) correlator {
	n := r.cfg.Partitions
	return r.newCorr(func(key string) bool { return PartitionOf(key, n) == p }, r.cfg.Limits)
}

// control runs between rounds: it records pending hits, checkpoints,
// drops partitions lost to others, and claims or releases partitions to
// match the balanced assignment. It returns how long to wait before
// consuming again (0: at once).
func (r *Runtime) control(ctx context.Context) time.Duration {
	if !r.rulesOK {
		return r.cfg.CheckpointInterval
	}
	if r.early && time.Since(r.lastControl) < r.cfg.CheckpointInterval {
		// A round ended for a new alert: record the new alerts now; the
		// updates of known ones, the checkpoints and the rest wait for the
		// interval's end.
		r.early = false
		if !r.flush(ctx, func(k string) bool { _, ok := r.known[k]; return !ok }) {
			return r.cfg.CheckpointInterval
		}
		return 0
	}
	r.early, r.lastControl = false, time.Now()
	flushed := r.flush(ctx, nil)

	// Fencing: a server that cannot renew its membership stops, since
	// the others will soon take its partitions.
	if age := r.mem.heartbeatAge(); age >= r.cfg.Lease && len(r.owned) > 0 {
		r.log.Warn("detect: membership not renewed within the lease; dropping every partition", "age", age)
		for _, p := range slices.Clone(r.owned) {
			r.drop(p, true)
		}
	}
	for _, p := range slices.Clone(r.owned) {
		o := r.mem.owner(p.id)
		if o.rev > p.ownerRev && (!o.present || o.Node != r.tok || o.Run != r.run) {
			r.log.Warn("detect: partition taken by another server", "partition", p.id, "owner", o.Node)
			r.drop(p, true)
		}
	}
	if flushed && time.Since(r.lastCkpt) >= r.ckptEvery {
		// Checkpoints take at most about a tenth of the time: a large
		// state is checkpointed less often than CheckpointInterval.
		start := time.Now()
		for _, p := range slices.Clone(r.owned) {
			r.checkpoint(ctx, p)
		}
		r.lastCkpt = time.Now()
		r.ckptEvery = max(r.cfg.CheckpointInterval, 9*r.lastCkpt.Sub(start))
	}
	r.rebalance(ctx, flushed)
	r.updateGauges(ctx)
	if !flushed {
		return r.cfg.CheckpointInterval
	}
	return 0
}

// flush records the pending hits (those only selects, when it is set),
// up to RecordConcurrency calls at a time; it reports whether none is
// left (with only: whether every selected one was recorded). After a
// failure it starts no more.
func (r *Runtime) flush(ctx context.Context, only func(key string) bool) bool {
	if len(r.pending) == 0 {
		return true
	}
	// The pending hits in groups: one group a Record call, or up to
	// recordBatch hits a RecordBatch call when the sink takes batches.
	size := 1
	bs, batched := r.cfg.Alerts.(BatchSink)
	if batched {
		size = recordBatch
	}
	var groups [][]string
	for k := range r.pending {
		if only != nil && !only(k) {
			continue
		}
		if n := len(groups); n == 0 || len(groups[n-1]) == size {
			groups = append(groups, make([]string, 0, size))
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], k)
	}
	var (
		mu     sync.Mutex
		done   []string
		failed atomic.Bool
		wg     sync.WaitGroup
		sem    = make(chan struct{}, r.cfg.RecordConcurrency)
	)
	for _, keys := range groups {
		sem <- struct{}{}
		if failed.Load() || ctx.Err() != nil {
			<-sem
			break
		}
		hits := make([]sigma.Hit, len(keys))
		for i, k := range keys {
			hits[i] = r.pending[k]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var err error
			if batched {
				err = bs.RecordBatch(rctx, hits)
			} else {
				err = r.cfg.Alerts.Record(rctx, hits[0])
			}
			cancel()
			if err != nil {
				r.m.retried.Add(float64(len(hits)))
				if !failed.Swap(true) && ctx.Err() == nil {
					r.log.Warn("detect: recording alerts failed; retrying", "hits", len(hits), "rule", hits[0].Rule.ID, "err", err)
				}
				return
			}
			mu.Lock()
			done = append(done, keys...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(r.known)+len(done) > maxKnownKeys {
		clear(r.known)
	}
	for _, k := range done {
		delete(r.pending, k)
		r.known[k] = struct{}{}
	}
	r.m.recorded.Add(float64(len(done)))
	if only != nil {
		return !failed.Load() && ctx.Err() == nil
	}
	return len(r.pending) == 0
}

// checkpoint writes p's checkpoint if it advanced, with CAS on the
// revision this server last wrote: a conflict means another server took
// p over, and p is dropped.
func (r *Runtime) checkpoint(ctx context.Context, p *partition) {
	if p.applied == p.ckptSeq {
		p.ckptAt = time.Now()
		return
	}
	st, err := p.corr.MarshalBinary()
	if err != nil {
		r.log.Error("detect: cannot encode correlation state", "partition", p.id, "err", err)
		r.m.ckptErrors.Inc()
		return
	}
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Lease)
	defer cancel()
	ck, err := encodeState(wctx, r.cfg.KV, p.id, r.run, p.slot, st)
	var rev uint64
	if err == nil {
		ck.Seq, ck.Rules, ck.By = p.applied, r.rulesVer, r.run
		v, _ := json.Marshal(ck)
		rev, err = r.cfg.KV.Update(wctx, ckptKey(p.id), v, p.ckptRev)
		if isCASConflict(err) {
			// Either another server took p over, or an earlier write of
			// ours was stored though its answer was lost.
			var cur checkpoint
			if e, gerr := r.cfg.KV.Get(wctx, ckptKey(p.id)); gerr == nil && json.Unmarshal(e.Value(), &cur) == nil && cur.By == r.run {
				rev, err = r.cfg.KV.Update(wctx, ckptKey(p.id), v, e.Revision())
			}
		}
	}
	switch {
	case err == nil:
		p.ckptRev, p.ckptSeq, p.ckptAt, p.slot = rev, p.applied, time.Now(), ck.Slot
		r.m.checkpoints.Inc()
		if !p.purged {
			purgeChunks(wctx, r.cfg.KV, p.id, r.run)
			p.purged = true
		}
	case isCASConflict(err):
		r.log.Warn("detect: checkpoint fenced off: partition taken by another server", "partition", p.id)
		r.drop(p, true)
	default:
		if ctx.Err() == nil {
			r.log.Warn("detect: checkpoint failed; retrying", "partition", p.id, "err", err)
			r.m.ckptErrors.Inc()
		}
	}
}

// drop forgets p's state (it was lost, or released after its
// checkpoint).
func (r *Runtime) drop(p *partition, lost bool) {
	delete(r.parts, p.id)
	r.owned = slices.DeleteFunc(r.owned, func(q *partition) bool { return q == p })
	if lost {
		r.m.lost.Inc()
	}
	r.ownedN.Store(int64(len(r.owned)))
}

// rebalance releases the partitions the assignment gives to others (when
// their checkpoint is current) and claims those it gives to this server
// whose owner is gone.
func (r *Runtime) rebalance(ctx context.Context, flushed bool) {
	live, ready, fresh := r.mem.view()
	if !fresh {
		return
	}
	want := assign(ready, r.cfg.Partitions)
	isLive := map[string]bool{}
	for _, m := range live {
		isLive[m] = true
	}
	for _, p := range slices.Clone(r.owned) {
		if want[p.id] == r.tok || !flushed || p.applied != p.ckptSeq {
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, r.cfg.Lease)
		err := r.cfg.KV.Delete(dctx, ownerKey(p.id), jetstream.LastRevision(p.ownerRev))
		cancel()
		if err != nil && !isCASConflict(err) {
			r.log.Warn("detect: releasing a partition failed", "partition", p.id, "err", err)
			continue
		}
		r.log.Info("detect: partition released", "partition", p.id, "to", want[p.id])
		r.drop(p, false)
	}
	now := time.Now()
	for id := range r.cfg.Partitions {
		if r.parts[id] != nil {
			continue
		}
		o := r.mem.owner(id)
		var claim bool
		switch {
		case o.present && o.Node == r.tok && o.Run == r.run:
			// Ours in the bucket but not here: a claim whose answer was
			// lost, or a release not yet echoed by the watch. Take it up
			// again if it is ours to have, else release it.
			if want[id] == r.tok {
				claim = true
			} else {
				dctx, cancel := context.WithTimeout(ctx, r.cfg.Lease)
				_ = r.cfg.KV.Delete(dctx, ownerKey(id), jetstream.LastRevision(o.rev))
				cancel()
			}
		case o.present && (o.Node == r.tok || !isLive[o.Node]):
			// Its owner is dead (or a past life of this server). An owner
			// this server has not heard of yet gets one lease to show up.
			claim = want[id] == r.tok && now.Sub(o.since) >= r.cfg.Lease
		case !o.present:
			// Unowned: ours by the assignment, or unclaimed for long
			// (views that disagree must not leave it idle).
			claim = want[id] == r.tok || (o.rev > 0 && now.Sub(o.since) > 2*r.cfg.Lease)
		}
		if claim {
			r.acquire(ctx, id, o)
		}
	}
}

// acquire claims partition id with CAS on its owner key, then fences its
// checkpoint (rewriting it bumps its revision, so the previous owner's
// next checkpoint fails) and restores its state.
func (r *Runtime) acquire(ctx context.Context, id int, o ownerSeen) {
	v, _ := json.Marshal(ownerValue{Node: r.tok, Run: r.run})
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Lease)
	defer cancel()
	var rev uint64
	var err error
	if o.present {
		rev, err = r.cfg.KV.Update(wctx, ownerKey(id), v, o.rev)
	} else {
		rev, err = r.cfg.KV.Create(wctx, ownerKey(id), v)
	}
	if err != nil {
		if !isCASConflict(err) && ctx.Err() == nil {
			r.log.Warn("detect: claiming a partition failed", "partition", id, "err", err)
		}
		return
	}
	r.mem.setOwner(id, ownerValue{Node: r.tok, Run: r.run}, rev, true)
	p := &partition{id: id, ownerRev: rev}
	var ck checkpoint
	e, err := r.cfg.KV.Get(wctx, ckptKey(id))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		// A new partition starts at the beginning of the stream.
		b, _ := json.Marshal(checkpoint{V: 1, By: r.run})
		p.ckptRev, err = r.cfg.KV.Create(wctx, ckptKey(id), b)
	case err == nil:
		if jerr := json.Unmarshal(e.Value(), &ck); jerr != nil {
			r.log.Error("detect: checkpoint unreadable; the partition restarts from the beginning of the stream", "partition", id, "err", jerr)
			r.m.stateErrors.Inc()
			ck = checkpoint{V: 1}
		}
		fenced := ck
		fenced.By = r.run
		b, _ := json.Marshal(fenced)
		p.ckptRev, err = r.cfg.KV.Update(wctx, ckptKey(id), b, e.Revision())
	}
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("detect: cannot take the partition's checkpoint; releasing it", "partition", id, "err", err)
		}
		_ = r.cfg.KV.Delete(wctx, ownerKey(id), jetstream.LastRevision(rev))
		return
	}
	p.corr = r.newCorrelator(id)
	st, err := decodeState(wctx, r.cfg.KV, id, ck)
	if err != nil && !errors.Is(err, errBadChunks) && !errors.Is(err, jetstream.ErrKeyNotFound) {
		// Transient (the bucket did not answer): try again later.
		r.log.Warn("detect: cannot read the partition's state; releasing it", "partition", id, "err", err)
		_ = r.cfg.KV.Delete(wctx, ownerKey(id), jetstream.LastRevision(rev))
		return
	}
	if err == nil && len(st) > 0 {
		err = p.corr.UnmarshalBinary(st)
	}
	if err != nil {
		r.log.Error("detect: checkpointed correlation state not restored; the partition's correlations restart empty", "partition", id, "err", err)
		r.m.stateErrors.Inc()
		p.corr = r.newCorrelator(id)
	}
	p.applied, p.ckptSeq, p.ckptAt, p.slot = ck.Seq, ck.Seq, time.Now(), ck.Slot
	r.parts[id] = p
	r.owned = append(r.owned, p)
	slices.SortFunc(r.owned, func(a, b *partition) int { return a.id - b.id })
	r.ownedN.Store(int64(len(r.owned)))
	r.m.takeovers.Inc()
	r.log.Info("detect: partition acquired", "partition", id, "from_seq", ck.Seq+1, "previous_owner", o.Node)
}

func (r *Runtime) updateGauges(ctx context.Context) {
	r.m.owned.Set(float64(len(r.owned)))
	if len(r.owned) == 0 {
		r.m.ckptAge.Set(0)
		r.m.lag.Set(0)
		return
	}
	oldest, pos := r.owned[0].ckptAt, r.owned[0].applied
	for _, p := range r.owned[1:] {
		if p.ckptAt.Before(oldest) {
			oldest = p.ckptAt
		}
		pos = min(pos, p.applied)
	}
	r.m.ckptAge.Set(time.Since(oldest).Seconds())
	var st sigma.Stats
	for _, p := range r.owned {
		s := p.corr.Stats()
		st.Late += s.Late
		st.GroupsEvicted += s.GroupsEvicted
		st.ValuesCut += s.ValuesCut
		st.EventsCut += s.EventsCut
		st.NoTime += s.NoTime
		st.Groups += s.Groups
	}
	r.m.cut.WithLabelValues("late").Set(float64(st.Late))
	r.m.cut.WithLabelValues("groups_evicted").Set(float64(st.GroupsEvicted))
	r.m.cut.WithLabelValues("values_cut").Set(float64(st.ValuesCut))
	r.m.cut.WithLabelValues("events_cut").Set(float64(st.EventsCut))
	r.m.cut.WithLabelValues("no_time").Set(float64(st.NoTime))
	r.m.groups.Set(float64(st.Groups))
	lctx, cancel := context.WithTimeout(ctx, r.cfg.Lease)
	defer cancel()
	if last, err := r.cfg.Stream.LastSeq(lctx); err == nil && last >= pos {
		r.m.lag.Set(float64(last - pos))
	}
}

// shutdown hands the partitions over after Run's context ended: flush,
// checkpoint, release. On a dead connection each step fails fast or
// within its timeout, and the others take over after the lease instead.
func (r *Runtime) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*r.cfg.Lease)
	defer cancel()
	if len(r.owned) == 0 || !r.flush(ctx, nil) {
		return
	}
	for _, p := range slices.Clone(r.owned) {
		r.checkpoint(ctx, p)
		if r.parts[p.id] == nil || p.applied != p.ckptSeq {
			continue
		}
		if err := r.cfg.KV.Delete(ctx, ownerKey(p.id), jetstream.LastRevision(p.ownerRev)); err == nil {
			r.drop(p, false)
		}
	}
}
