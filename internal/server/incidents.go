package server

import (
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/respond"
)

// newIncidents makes the incidents service (docs/response.md, "Incidents
// and reports") over the encrypted store, with alog making the records of
// the changes this server makes on its own.
func (s *Server) newIncidents(alog *auditlog.Service) *respond.Incidents {
	return respond.NewIncidents(s.core, alog, s.st.NodeID(), s.cfg.Now, nil)
}

// Incidents returns the incidents service (the playbook responder
// attaches alerts and decisions through it).
func (s *Server) Incidents() *respond.Incidents { return s.api.Incidents() }
