// Package ship is the agent's shipper: it collects the events of every
// source, seals them into batches with a sequence number, writes each batch
// to the spool (so it survives a restart), and sends the spooled batches, in
// order and one at a time, to any of the servers: POST /v1/events, gzip
// JSON lines, over mutual TLS with the node's SVID (docs/detection-agent.md
// and design12.md give the contract).
//
// Exactly once: a batch's events and the state of every source after its
// last event in the batch are written to the spool together; a source's
// state is made the checkpoint only after a server acknowledged the batch;
// after a restart a source resumes from the newest spooled state it has
// (else the checkpoint), so no line is read twice into two batches, and a
// batch sent twice (its answer lost) is stored once by the server, which
// deduplicates by (node, epoch, seq).
//
// It does not parse lines or watch files (the sources do) and keeps no
// event content in its logs.
package ship

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/warden-sec/warden/internal/agent/source"
	"github.com/warden-sec/warden/internal/agent/spool"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/fsutil"
)

// Defaults for Config's zero fields.
const (
	DefaultBatchEvents   = 1000
	DefaultBatchBytes    = 1 << 20
	DefaultBatchInterval = time.Second
	DefaultMaxBackoff    = 30 * time.Second
	DefaultMaxRetryAfter = time.Minute
	// MaxBatchBytes is the server's default --events-max-batch-bytes; a
	// larger Config.BatchBytes is refused.
	MaxBatchBytes = 4 << 20
	minBatchBytes = 2 * events.MaxEventBytes
)

// Files under Config.DataDir/events.
const (
	dirName        = "events"
	epochFile      = "epoch"
	checkpointFile = "checkpoint.json"
	spoolDir       = "spool"
)

// FieldTruncated marks an event cut to fit MaxEventBytes.
const FieldTruncated = "warden.truncated"

// Config configures a Shipper. Zero fields take the documented defaults.
type Config struct {
	Servers           []string // https base URLs; a failure moves to the next
	CACertFile        string   // CAs trusted for the servers' TLS certificates; "": the system roots
	CertFile, KeyFile string   // the node's SVID (svid.pem, svid-key.pem); re-read when they change
	DataDir           string   // the agent's data dir; the shipper keeps its files under DataDir/events

	SpoolMaxBytes int64         // bound of the spool; 0: spool.DefaultMaxBytes (1 GiB)
	BatchEvents   int           // seal a batch at this many events; 0: 1,000
	BatchBytes    int           // seal before the uncompressed batch passes this; 0: 1 MiB; at most 4 MiB
	BatchInterval time.Duration // seal a non-empty batch at least this often; 0: 1s
	MaxBackoff    time.Duration // bound of the wait between failed sends; 0: 30s
	MaxRetryAfter time.Duration // bound of a 429's Retry-After; 0: 1m
	HTTPTimeout   time.Duration // bound of one request; 0: 30s

	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
}

// Stats are the shipper's counters since it was made.
type Stats struct {
	EventsSpooled    uint64            // events written to the spool
	EventsSent       uint64            // events in batches a server acknowledged (duplicates included)
	BatchesAcked     uint64            // batches acknowledged (200)
	BatchesDuplicate uint64            // of which the server already had
	BatchesRefused   uint64            // batches refused for good (400, 413) and dropped
	EventsRefused    uint64            // events in them
	SendErrors       uint64            // failed attempts (network, 5xx, other statuses)
	RateLimited      uint64            // 429 answers
	Dropped          uint64            // events dropped from a full spool (since start)
	SpoolBytes       int64             // size of the spool now
	SpoolBatches     int               // batches in the spool now
	PerSource        map[string]uint64 // events received per source
}

// item is one encoded event on its way to the batcher.
type item struct {
	name  string
	line  []byte // JSON and "\n"
	state []byte
}

// Shipper is safe for concurrent use. Make one with New, call Run once, and
// Start sources while (or before) it runs.
type Shipper struct {
	cfg   Config
	log   *slog.Logger
	dir   string
	epoch string
	spool *spool.Spool
	tx    *transport
	obs   *Observer

	in        chan item
	flush     chan chan error
	stopBatch chan struct{} // closed by Run once the sources have returned

	base   context.Context // sources run under it; Run cancels it at its end
	cancel context.CancelFunc

	mu       sync.Mutex
	ckpt     checkpoint
	pos      map[string][]byte // per source: its state after the last event it handed over
	sources  map[string]*running
	perSrc   map[string]*atomic.Uint64
	nextSeq  uint64
	srcGroup sync.WaitGroup

	spooled, sent, acked, dup, refused, refusedEv, sendErr, limited, dropped atomic.Uint64
}

type running struct {
	src    source.Source
	cancel context.CancelFunc
	done   chan struct{}
}

// checkpoint is what the servers acknowledged: the last batch, and per
// source the state that came with the last acknowledged batch holding its
// events.
type checkpoint struct {
	Seq    uint64                 `json:"seq"`
	States map[string]spool.State `json:"states"`
}

// New opens the shipper's files under cfg.DataDir/events (making the
// epoch on first use) and works out where each source resumes.
func New(cfg Config) (*Shipper, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("ship: no server")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("ship: no data dir")
	}
	if cfg.BatchEvents <= 0 {
		cfg.BatchEvents = DefaultBatchEvents
	}
	if cfg.BatchBytes == 0 {
		cfg.BatchBytes = DefaultBatchBytes
	}
	if cfg.BatchBytes < minBatchBytes || cfg.BatchBytes > MaxBatchBytes {
		return nil, fmt.Errorf("ship: batch bytes %d: want between %d and %d", cfg.BatchBytes, minBatchBytes, MaxBatchBytes)
	}
	if cfg.BatchInterval <= 0 {
		cfg.BatchInterval = DefaultBatchInterval
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if cfg.HTTPTimeout <= 0 {
		cfg.HTTPTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	dir := filepath.Join(cfg.DataDir, dirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ship: %w", err)
	}
	epoch, err := loadEpoch(filepath.Join(dir, epochFile))
	if err != nil {
		return nil, err
	}
	tx, err := newTransport(cfg)
	if err != nil {
		return nil, err
	}
	sp, err := spool.Open(filepath.Join(dir, spoolDir), cfg.SpoolMaxBytes)
	if err != nil {
		return nil, err
	}
	s := &Shipper{cfg: cfg, log: cfg.Logger, dir: dir, epoch: epoch, spool: sp, tx: tx,
		in: make(chan item, 1024), flush: make(chan chan error), stopBatch: make(chan struct{}),
		pos: map[string][]byte{}, sources: map[string]*running{}, perSrc: map[string]*atomic.Uint64{},
		ckpt: checkpoint{States: map[string]spool.State{}}}
	s.base, s.cancel = context.WithCancel(context.Background())
	if b, err := os.ReadFile(filepath.Join(dir, checkpointFile)); err == nil {
		if err := json.Unmarshal(b, &s.ckpt); err != nil {
			sp.Close()
			return nil, fmt.Errorf("ship: %s: %w", checkpointFile, err)
		}
		if s.ckpt.States == nil {
			s.ckpt.States = map[string]spool.State{}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		sp.Close()
		return nil, fmt.Errorf("ship: %w", err)
	}
	// Each source resumes from its newest durable state: spooled (not yet
	// acknowledged) or acknowledged, whichever came with the later batch.
	for name, st := range s.ckpt.States {
		s.pos[name] = st.State
	}
	for name, st := range sp.States() {
		if st.Seq > s.ckpt.States[name].Seq {
			s.pos[name] = st.State
		}
	}
	s.nextSeq = max(sp.LastSeq(), s.ckpt.Seq) + 1
	s.obs = newObserver(cfg.Now)
	return s, nil
}

// loadEpoch reads the data dir's epoch, making it (16 random hex chars) on
// first use.
func loadEpoch(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		e := string(bytes.TrimSpace(b))
		if _, err := hex.DecodeString(e); err != nil || len(e) != 16 || strings.ToLower(e) != e {
			return "", fmt.Errorf("ship: %s: want 16 lowercase hex chars", path)
		}
		return e, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("ship: %w", err)
	}
	var r [8]byte
	rand.Read(r[:])
	e := hex.EncodeToString(r[:])
	if err := fsutil.WriteFileNew(path, []byte(e+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("ship: make epoch: %w", err)
	}
	return e, nil
}

// Epoch is this data dir's batch epoch.
func (s *Shipper) Epoch() string { return s.epoch }

// Observer is the source of the agent's own observations; it is started
// by Run.
func (s *Shipper) Observer() *Observer { return s.obs }

// Start runs src under the shipper, from its saved state, until Stop or
// the end of Run. A source whose Run fails is started again (from the state
// of the last event it handed over) after a backoff. Starting a name that
// runs is an error.
func (s *Shipper) Start(src source.Source) error {
	name := src.Name()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.base.Err() != nil {
		return errors.New("ship: stopped")
	}
	if _, ok := s.sources[name]; ok {
		return fmt.Errorf("ship: source %s already runs", name)
	}
	ctx, cancel := context.WithCancel(s.base)
	r := &running{src: src, cancel: cancel, done: make(chan struct{})}
	s.sources[name] = r
	if s.perSrc[name] == nil {
		s.perSrc[name] = new(atomic.Uint64)
	}
	s.srcGroup.Add(1)
	go func() {
		defer s.srcGroup.Done()
		defer close(r.done)
		emit := s.emitter(ctx, name)
		for attempt := 0; ; attempt++ {
			s.mu.Lock()
			state := s.pos[name]
			s.mu.Unlock()
			err := src.Run(ctx, state, emit)
			if ctx.Err() != nil {
				return
			}
			wait := backoff(attempt, time.Second, s.cfg.MaxBackoff)
			s.log.Error("source failed; restarting it", "source", name, "err", err, "retry_in", wait)
			if !Sleep(ctx, wait) {
				return
			}
		}
	}()
	return nil
}

// Stop stops the named source and waits until it has returned; the events
// it handed over are still shipped, and a later Start of the same name
// resumes after them. Stopping a name that does not run does nothing.
func (s *Shipper) Stop(name string) {
	s.mu.Lock()
	r := s.sources[name]
	delete(s.sources, name)
	s.mu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
	}
}

// Running lists the names of the running sources.
func (s *Shipper) Running() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name := range s.sources {
		out = append(out, name)
	}
	return out
}

func (s *Shipper) emitter(ctx context.Context, name string) source.Emit {
	s.mu.Lock()
	count := s.perSrc[name]
	s.mu.Unlock()
	return func(ev events.Event, state []byte) error {
		line, err := encodeEvent(ev)
		if err != nil {
			return fmt.Errorf("ship: encode an event of %s: %w", name, err)
		}
		select {
		case s.in <- item{name: name, line: line, state: state}:
		case <-ctx.Done():
			return ctx.Err()
		}
		count.Add(1)
		if state != nil {
			s.mu.Lock()
			s.pos[name] = state
			s.mu.Unlock()
		}
		return nil
	}
}

// encodeEvent encodes ev as one JSON line. An event over
// events.MaxEventBytes has its longest string fields halved until it fits,
// and is marked with FieldTruncated.
func encodeEvent(ev events.Event) ([]byte, error) {
	for range 64 {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(ev); err != nil {
			return nil, err
		}
		if buf.Len()-1 <= events.MaxEventBytes {
			return buf.Bytes(), nil
		}
		longest, n := "", 0
		for k, v := range ev {
			if s, ok := v.(string); ok && len(s) > n {
				longest, n = k, len(s)
			}
		}
		if n == 0 {
			break
		}
		s := ev[longest].(string)
		cut := len(s) / 2
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if !isTruncated(ev) {
			ev = cloneEvent(ev)
		}
		ev[longest] = s[:cut]
		ev[FieldTruncated] = true
	}
	return nil, fmt.Errorf("an event cannot be cut below %d bytes", events.MaxEventBytes)
}

func isTruncated(ev events.Event) bool { b, _ := ev[FieldTruncated].(bool); return b }

func cloneEvent(ev events.Event) events.Event {
	out := make(events.Event, len(ev)+1)
	for k, v := range ev {
		out[k] = v
	}
	return out
}

// Run batches, spools and sends until ctx ends. At its end it stops the
// sources, writes what they handed over to the spool, and closes the
// spool: the Shipper cannot be used again.
func (s *Shipper) Run(ctx context.Context) error {
	sendCtx, stopSend := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.sender(sendCtx)
	}()
	if err := s.Start(s.obs); err != nil {
		s.log.Error("observer", "err", err)
	}
	batchDone := make(chan struct{})
	go func() {
		defer close(batchDone)
		s.batcher(ctx)
	}()
	<-ctx.Done()
	// Sources first: they may be blocked handing over an event.
	s.mu.Lock()
	s.cancel()
	s.sources = map[string]*running{}
	s.mu.Unlock()
	s.srcGroup.Wait()
	close(s.stopBatch)
	<-batchDone
	stopSend()
	wg.Wait()
	s.tx.close()
	return s.spool.Close()
}

// Flush seals the events handed over so far into a batch in the spool.
func (s *Shipper) Flush(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case s.flush <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pending is the batch being filled.
type pending struct {
	raw    bytes.Buffer
	n      int
	states map[string][]byte
}

func (s *Shipper) batcher(ctx context.Context) {
	var p pending
	p.states = map[string][]byte{}
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	seal := func() error {
		if p.n == 0 {
			return nil
		}
		for {
			err := s.seal(zw, &p)
			if err == nil {
				timer.Stop()
				return nil
			}
			// A spool that cannot be written (disk full): hold the batch
			// and the sources (backpressure) and try again.
			s.log.Error("cannot write the spool; retrying", "err", err)
			if !Sleep(ctx, time.Second) {
				return err
			}
		}
	}
	add := func(it item) {
		if p.n > 0 && p.raw.Len()+len(it.line) > s.cfg.BatchBytes {
			_ = seal()
		}
		if p.n == 0 {
			timer.Reset(s.cfg.BatchInterval)
		}
		p.raw.Write(it.line)
		p.n++
		if it.state != nil {
			p.states[it.name] = it.state
		}
		if p.n >= s.cfg.BatchEvents {
			_ = seal()
		}
	}
	for {
		select {
		case it := <-s.in:
			add(it)
		case <-timer.C:
			_ = seal()
		case reply := <-s.flush:
			reply <- seal()
		case <-s.stopBatch:
			// Run is stopping and the sources have returned: what they
			// handed over goes to the spool.
			for {
				select {
				case it := <-s.in:
					add(it)
					continue
				default:
				}
				break
			}
			if p.n > 0 {
				if err := s.seal(zw, &p); err != nil {
					s.log.Error("cannot write the last batch to the spool; its lines will be read again", "err", err)
				}
			}
			return
		}
	}
}

// seal compresses p into the next batch and appends it to the spool.
func (s *Shipper) seal(zw *gzip.Writer, p *pending) error {
	var body bytes.Buffer
	zw.Reset(&body)
	if _, err := zw.Write(p.raw.Bytes()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	s.mu.Lock()
	seq := s.nextSeq
	s.mu.Unlock()
	dropped, err := s.spool.Append(spool.Batch{Seq: seq, Events: p.n, States: p.states, Body: body.Bytes()})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.nextSeq++
	s.mu.Unlock()
	s.spooled.Add(uint64(p.n))
	if dropped > 0 {
		s.dropped.Add(uint64(dropped))
		s.log.Warn("the spool is full; dropped the oldest batches", "events", dropped)
		s.obs.Record(Observation{Action: "spool_dropped", Outcome: "failure", Dropped: uint64(dropped),
			Message: fmt.Sprintf("the spool was full: %d events dropped", dropped)})
	}
	p.raw.Reset()
	p.n = 0
	p.states = map[string][]byte{}
	return nil
}

// Stats returns the shipper's counters.
func (s *Shipper) Stats() Stats {
	b, _ := s.spool.Pending()
	st := Stats{EventsSpooled: s.spooled.Load(), EventsSent: s.sent.Load(), BatchesAcked: s.acked.Load(),
		BatchesDuplicate: s.dup.Load(), BatchesRefused: s.refused.Load(), EventsRefused: s.refusedEv.Load(),
		SendErrors: s.sendErr.Load(), RateLimited: s.limited.Load(), Dropped: s.dropped.Load(),
		SpoolBytes: s.spool.Bytes(), SpoolBatches: b, PerSource: map[string]uint64{}}
	s.mu.Lock()
	for name, c := range s.perSrc {
		st.PerSource[name] = c.Load()
	}
	s.mu.Unlock()
	return st
}

// sender sends the spooled batches in order until ctx ends.
func (s *Shipper) sender(ctx context.Context) {
	for {
		b, ok, err := s.spool.Oldest()
		if err != nil {
			if errors.Is(err, spool.ErrClosed) {
				return
			}
			s.log.Error("cannot read the spool", "err", err)
			if !Sleep(ctx, time.Second) {
				return
			}
			continue
		}
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-s.spool.Notify():
			}
			continue
		}
		if b.Seq <= s.ckptSeq() {
			// Acknowledged before a crash cut the spool's own record of it.
			if err := s.spool.Ack(b.Seq, 0); err != nil {
				s.log.Error("spool", "err", err)
				Sleep(ctx, time.Second)
			}
			continue
		}
		if !s.deliver(ctx, b) {
			return
		}
	}
}

func (s *Shipper) ckptSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ckpt.Seq
}

// deliver sends b until a server takes it (or refuses it for good); false
// when ctx ended first.
func (s *Shipper) deliver(ctx context.Context, b spool.Batch) bool {
	for attempt := 0; ; {
		dropped := s.spool.Dropped()
		res := s.tx.post(ctx, s.epoch, b, dropped)
		if ctx.Err() != nil {
			return false
		}
		switch {
		case res.err == nil && res.status == 200:
			s.acked.Add(1)
			s.sent.Add(uint64(b.Events))
			if res.duplicate {
				s.dup.Add(1)
			}
			s.commit(ctx, b, dropped)
			return true
		case res.err == nil && (res.status == 400 || res.status == 413):
			// Never acceptable: a bug guard (sizes are checked before
			// spooling). No event content is logged.
			s.refused.Add(1)
			s.refusedEv.Add(uint64(b.Events))
			s.log.Error("a server refused a batch for good; it is dropped", "status", res.status, "seq", b.Seq, "events", b.Events)
			s.commit(ctx, b, 0)
			return true
		case res.err == nil && res.status == 429:
			s.limited.Add(1)
			// Bounded both ways: a server's "Retry-After: 0" must not make
			// a busy loop.
			wait := max(min(res.retryAfter, s.cfg.MaxRetryAfter), 100*time.Millisecond)
			s.log.Warn("server overloaded; waiting", "server", s.tx.server(), "retry_after", wait)
			if !Sleep(ctx, wait) {
				return false
			}
		default:
			s.sendErr.Add(1)
			wait := backoff(attempt, 250*time.Millisecond, s.cfg.MaxBackoff)
			attempt++
			s.log.Warn("sending a batch failed; trying the next server", "server", s.tx.server(), "status", res.status, "err", res.err, "retry_in", wait)
			s.tx.next()
			if !Sleep(ctx, wait) {
				return false
			}
		}
	}
}

// commit makes b's source states the checkpoint, then removes b (and the
// reported dropped count) from the spool.
func (s *Shipper) commit(ctx context.Context, b spool.Batch, reported uint64) {
	for {
		err := s.saveCheckpoint(b)
		if err == nil {
			err = s.spool.Ack(b.Seq, reported)
		}
		if err == nil {
			return
		}
		s.log.Error("cannot record an acknowledged batch; retrying", "err", err)
		if !Sleep(ctx, time.Second) {
			return
		}
	}
}

func (s *Shipper) saveCheckpoint(b spool.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := checkpoint{Seq: max(s.ckpt.Seq, b.Seq), States: make(map[string]spool.State, len(s.ckpt.States)+len(b.States))}
	for name, st := range s.ckpt.States {
		next.States[name] = st
	}
	for name, st := range b.States {
		next.States[name] = spool.State{Seq: b.Seq, State: st}
	}
	data, err := json.Marshal(next)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(s.dir, checkpointFile), data, 0o600); err != nil {
		return fmt.Errorf("ship: save checkpoint: %w", err)
	}
	s.ckpt = next
	return nil
}

// backoff is base·2^attempt, capped, with jitter (between half and all of it).
func backoff(attempt int, base, capAt time.Duration) time.Duration {
	d := min(base<<min(attempt, 20), capAt)
	var r [8]byte
	rand.Read(r[:])
	frac := float64(uint64(r[0])|uint64(r[1])<<8) / 65535
	return d/2 + time.Duration(frac*float64(d/2))
}

// Sleep waits d, or less if ctx ends first; it reports whether ctx is
// still live. The agent's loops (shipping, renewal) wait with it.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
