package server

import (
	"context"

	"github.com/warden-sec/warden/internal/authority"
	"github.com/warden-sec/warden/internal/respond"
)

// playbooks is this server's part of automated response: the playbooks
// service (the API's) and the responder, which runs them on new alerts
// while this server leads.
type playbooks struct {
	svc       *respond.Playbooks
	nodes     *authority.Nodes
	audit     respond.Auditor
	responder *respond.Responder // made at start, once every service exists
	stop      context.CancelFunc
	done      chan struct{}
}

// newPlaybooks builds the playbooks service and returns it for the API;
// start runs the responder.
func (s *Server) newPlaybooks(nodes *authority.Nodes, audit respond.Auditor) *respond.Playbooks {
	svc := respond.NewPlaybooks(s.core, s.notifiers, s.cfg.Now)
	s.playbooks = &playbooks{svc: svc, nodes: nodes, audit: audit}
	return svc
}

// start runs the responder; it acts only while this server leads and is
// unsealed.
func (p *playbooks) start(s *Server) {
	if p == nil {
		return
	}
	decisions, incidents := s.responseServices()
	p.responder = respond.NewResponder(respond.ResponderConfig{
		Storage: s.core, Audit: p.audit, Node: s.st.NodeID(), Alerts: s.alerts, Playbooks: p.svc,
		Decisions: decisions, Incidents: incidents, Notify: s.notifiers, Nodes: p.nodes,
		Now: s.cfg.Now, Logger: s.log,
	})
	ctx, cancel := context.WithCancel(context.Background())
	p.stop, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		p.responder.Run(ctx, func() bool { return s.st.IsLeader() && !s.core.Sealed() })
	}()
}

// responseServices are the decisions and incidents services the
// responder acts through.
func (s *Server) responseServices() (respond.DecisionPreparer, respond.IncidentOpener) {
	return s.response.decisions, s.Incidents()
}

func (p *playbooks) close() {
	if p != nil && p.stop != nil {
		p.stop()
		<-p.done
	}
}

// Responder returns the playbook responder, nil before Start (tests step
// it to handle the alerts recorded so far, instead of waiting for its
// loop).
func (s *Server) Responder() *respond.Responder { return s.playbooks.responder }
