package server

import (
	"context"
	"time"

	"github.com/warden-sec/warden/internal/approval"
	"github.com/warden-sec/warden/internal/periodic"
)

// approvals is dual control's requests (docs/governance.md) and the
// leader's chore that records their expiry and collects old ones.
type approvals struct {
	svc  *approval.Service
	stop context.CancelFunc
	done chan struct{}
}

// approvalCollectInterval is how often the leader looks for expired
// requests and old finished ones.
const approvalCollectInterval = time.Minute

func (s *Server) newApprovals(audit approval.Auditor) *approvals {
	return &approvals{svc: approval.New(approval.Config{Storage: s.core, Audit: audit, Node: s.st.NodeID(), Now: s.cfg.Now,
		TTL: s.cfg.RequestTTL})}
}

// start runs the collector while this server leads and is unsealed.
func (a *approvals) start(s *Server) {
	ctx, cancel := context.WithCancel(context.Background())
	a.stop, a.done = cancel, make(chan struct{})
	log := s.log.With("component", "approval")
	go func() {
		defer close(a.done)
		periodic.WhileLeader(ctx, approvalCollectInterval, func() bool { return s.st.IsLeader() && !s.core.Sealed() },
			a.svc.Collect, func(err error) { log.Warn("collecting requests failed; retrying", "err", err) })
	}()
}

// close stops the collector and waits for it.
func (a *approvals) close() {
	if a != nil && a.stop != nil {
		a.stop()
		<-a.done
	}
}

// Approvals returns the requests of dual control (for tests).
func (s *Server) Approvals() *approval.Service { return s.approvals.svc }
