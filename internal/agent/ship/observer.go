package ship

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/warden-sec/warden/internal/agent/source"
	"github.com/warden-sec/warden/internal/events"
)

// Observation is one of the agent's own security observations.
type Observation struct {
	Action  string // enrolled, renewal_failed, reenrolled, spool_dropped, audit_fork
	Outcome string // success, failure
	Message string // one line, no secret
	Error   string // error.message, when something failed
	Dropped uint64 // spool_dropped: how many events ("warden.dropped")
	// Checkpoints: audit_fork: the checkpoint verified before and the one
	// served now ("warden.checkpoint.verified", "warden.checkpoint.served").
	Checkpoints [2]string
}

// ObserverName is the observer's source name.
const ObserverName = "warden:agent"

// FieldDropped carries a spool_dropped observation's count.
const FieldDropped = "warden.dropped"

// Observer is the source of the agent's own observations (event.module
// "warden", event.dataset "warden.agent"). Record never blocks: when
// observations come faster than they are shipped (more than 256 queued),
// the extra ones are counted in Lost and not shipped. It keeps no state
// across restarts: an observation not yet in the spool when the agent stops
// is not shipped.
type Observer struct {
	ch   chan events.Event
	now  func() time.Time
	lost atomic.Uint64
}

var _ source.Source = (*Observer)(nil)

func newObserver(now func() time.Time) *Observer {
	return &Observer{ch: make(chan events.Event, 256), now: now}
}

// Name is ObserverName.
func (o *Observer) Name() string { return ObserverName }

// Record queues an observation.
func (o *Observer) Record(ob Observation) {
	ev := events.Event{
		events.FieldTimestamp: events.FormatTime(o.now()),
		events.FieldModule:    "warden",
		events.FieldDataset:   "warden.agent",
		events.FieldKind:      "event",
		events.FieldAction:    ob.Action,
		events.FieldMessage:   ob.Message,
	}
	if ob.Outcome != "" {
		ev[events.FieldOutcome] = ob.Outcome
	}
	if ob.Error != "" {
		ev[events.FieldError] = ob.Error
	}
	if ob.Dropped > 0 {
		ev[FieldDropped] = int64(ob.Dropped)
	}
	if ob.Checkpoints[0] != "" || ob.Checkpoints[1] != "" {
		ev["warden.checkpoint.verified"], ev["warden.checkpoint.served"] = ob.Checkpoints[0], ob.Checkpoints[1]
	}
	select {
	case o.ch <- ev:
	default:
		o.lost.Add(1)
	}
}

// Lost is how many observations were not queued.
func (o *Observer) Lost() uint64 { return o.lost.Load() }

// Run ships queued observations until ctx ends.
func (o *Observer) Run(ctx context.Context, _ []byte, emit source.Emit) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-o.ch:
			if err := emit(ev, nil); err != nil {
				return err
			}
		}
	}
}
