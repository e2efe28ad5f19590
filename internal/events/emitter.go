package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// The servers' own events: module "warden", dataset "warden.server".
const (
	ModuleWarden  = "warden"
	DatasetServer = "warden.server"
	DatasetAgent  = "warden.agent"

	ActionRevokedCertificate      = "revoked_certificate"
	ActionRootToken               = "root_token"
	ActionRateLimited             = "rate_limited"
	ActionAuditVerificationFailed = "audit_verification_failed"
	// ActionBreakGlass: a member of the break-glass group ran an operation
	// that needs approval without it (docs/governance.md).
	ActionBreakGlass = "break_glass"
	// ActionAuditFork: this server's witness refused a checkpoint that is
	// not an extension of the one it cosigned (the log forked or was
	// rewritten); both checkpoints ride in the event.
	ActionAuditFork = "audit_fork"
	// ActionLoginFailures: logins for one user name, or from one address,
	// kept failing (docs/people.md); user.name, source.ip and
	// warden.failures say which and how often.
	ActionLoginFailures = "login_failures"
	// ActionAssessmentChanged: a node's host check changed status
	// (docs/compliance.md); warden.node, warden.check, warden.status and
	// warden.previous_status say which.
	ActionAssessmentChanged = "assessment_changed"
	// ActionComplianceRegression: a control (or a zone's requirement)
	// that passed at the last evaluation fails now.
	ActionComplianceRegression = "compliance_regression"
)

// Appender stores a batch (a *Plane).
type Appender interface {
	Append(ctx context.Context, node, agentID, epoch string, seq uint64, lines [][]byte) (uint64, bool, error)
}

// Emitter sends the server's own events into the stream as batches of the
// server's node, without ever blocking the caller: Emit puts the event on a
// bounded queue that one goroutine drains into batches (every 200 ms or
// 500 events). While the plane is not there, or the queue is full, events
// are dropped and counted. A nil *Emitter drops everything. Safe for
// concurrent use.
type Emitter struct {
	node, agentID string
	plane         func() Appender
	log           *slog.Logger
	now           func() time.Time
	epoch         string
	seq           uint64

	q       chan Event
	dropped atomic.Uint64
	stop    chan struct{}
	done    chan struct{}

	mu   sync.Mutex
	last map[string]time.Time // per throttle key: when an event was last emitted
}

// EmitterQueue bounds the events waiting to be sent.
const EmitterQueue = 4096

// NewEmitter starts an emitter for the server node (its name; agentID its
// identity, such as spiffe://<td>/server/<id>). plane returns the plane or
// nil while there is none.
func NewEmitter(node, agentID string, plane func() Appender, log *slog.Logger, now func() time.Time) *Emitter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	e := &Emitter{node: node, agentID: agentID, plane: plane, log: log, now: now, epoch: hex.EncodeToString(b[:]),
		q: make(chan Event, EmitterQueue), stop: make(chan struct{}), done: make(chan struct{}), last: map[string]time.Time{}}
	go e.run()
	return e
}

// Emit queues a server event with the given action and fields (module,
// dataset, action and @timestamp are set here).
func (e *Emitter) Emit(action string, fields Event) {
	if e == nil {
		return
	}
	ev := make(Event, len(fields)+4)
	for k, v := range fields {
		ev[k] = v
	}
	ev[FieldModule], ev[FieldDataset], ev[FieldAction] = ModuleWarden, DatasetServer, action
	ev[FieldTimestamp] = FormatTime(e.now())
	select {
	case e.q <- ev:
	default:
		e.dropped.Add(1)
	}
}

// EmitThrottled is Emit at most once per second per key (for example the
// action and a client address).
func (e *Emitter) EmitThrottled(key, action string, fields Event) {
	if e == nil {
		return
	}
	now := e.now()
	e.mu.Lock()
	if t, ok := e.last[key]; ok && now.Sub(t) < time.Second {
		e.mu.Unlock()
		return
	}
	if len(e.last) >= 10_000 {
		clear(e.last)
	}
	e.last[key] = now
	e.mu.Unlock()
	e.Emit(action, fields)
}

// Dropped counts the events dropped (queue full, no plane, or a failed
// store).
func (e *Emitter) Dropped() uint64 {
	if e == nil {
		return 0
	}
	return e.dropped.Load()
}

// Close sends what is queued (for up to 2 s) and stops.
func (e *Emitter) Close() {
	if e == nil {
		return
	}
	close(e.stop)
	<-e.done
}

func (e *Emitter) run() {
	defer close(e.done)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var batch []Event
	for {
		select {
		case ev := <-e.q:
			batch = append(batch, ev)
			if len(batch) < 500 {
				continue
			}
		case <-tick.C:
		case <-e.stop:
		drain:
			for {
				select {
				case ev := <-e.q:
					batch = append(batch, ev)
				default:
					break drain
				}
			}
			e.flush(batch, 2*time.Second)
			return
		}
		if len(batch) > 0 {
			e.flush(batch, 5*time.Second)
			batch = batch[:0]
		}
	}
}

func (e *Emitter) flush(batch []Event, timeout time.Duration) {
	if len(batch) == 0 {
		return
	}
	p := e.plane()
	if p == nil {
		e.dropped.Add(uint64(len(batch)))
		return
	}
	ingested := FormatTime(e.now())
	lines := make([][]byte, 0, len(batch))
	for _, ev := range batch {
		ev[FieldHostName], ev[FieldAgentID], ev[FieldIngested] = e.node, e.agentID, ingested
		b, err := json.Marshal(ev)
		if err != nil {
			e.dropped.Add(1)
			continue
		}
		lines = append(lines, b)
	}
	e.seq++
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, _, err := p.Append(ctx, e.node, e.agentID, e.epoch, e.seq, lines); err != nil {
		e.dropped.Add(uint64(len(lines)))
		e.log.Warn("server events: could not store a batch; dropped", "events", len(lines), "err", err)
	}
}
