package server

import (
	"context"
	"time"

	"github.com/warden-sec/warden/internal/transit/engine"
)

// defaultTransitSchedule is how often the leader rotates and retires the
// transit keys that are due, unless Config.TransitScheduleInterval says.
const defaultTransitSchedule = time.Minute

// transitKeys is this server's transit engine and, on the leader, its
// schedule of automatic rotation and retirement.
type transitKeys struct {
	eng  *engine.Engine
	stop context.CancelFunc
	done chan struct{}
}

// newTransit builds the transit engine (its schedule starts with start).
func (s *Server) newTransit(audit engine.Auditor) *transitKeys {
	eng := engine.New(engine.Config{Storage: s.core, Audit: audit, Node: s.st.NodeID(), Now: s.cfg.Now})
	s.core.OnSeal(eng.Forget)
	return &transitKeys{eng: eng}
}

// start runs the schedule while this server leads and is unsealed.
func (t *transitKeys) start(s *Server) {
	every := s.cfg.TransitScheduleInterval
	if every <= 0 {
		every = defaultTransitSchedule
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.stop, t.done = cancel, make(chan struct{})
	go func() {
		defer close(t.done)
		t.eng.RunSchedule(ctx, every, func() bool { return s.st.IsLeader() && !s.core.Sealed() },
			s.log.With("component", "transit").Warn)
	}()
}

// close stops the schedule and waits for it.
func (t *transitKeys) close() {
	if t != nil && t.stop != nil {
		t.stop()
		<-t.done
	}
}

// Transit returns the transit engine (for tests).
func (s *Server) Transit() *engine.Engine { return s.transit.eng }
