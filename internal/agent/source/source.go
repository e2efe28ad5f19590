// Package source defines what the agent reads events from: tailed files,
// journald, file integrity monitoring, the agent's own observations.
package source

import (
	"context"

	"github.com/warden-sec/warden/internal/events"
)

// Emit hands one event to the shipper together with the source's state
// after that event (opaque to the shipper; nil when the source keeps no
// resumable state). It blocks while the shipper applies backpressure and
// returns an error only when the shipper is stopping.
//
// The shipper keeps, per source, the state that goes with the last event
// it has made durable (acknowledged by a server, or written to the spool
// with its batch sequence number), and gives it back to Run after a
// restart: so a line is neither lost nor sent twice.
type Emit func(ev events.Event, state []byte) error

// Source is one configured source.
type Source interface {
	// Name is unique among the agent's sources and stable across restarts
	// (it keys the source's saved state), such as "file:/var/log/auth.log".
	Name() string
	// Run reads from state (nil: from the start, as the source defines it)
	// and emits events until ctx ends.
	Run(ctx context.Context, state []byte, emit Emit) error
}
