package server

import (
	"strconv"

	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/users"
)

// newUsers makes the user accounts service (docs/people.md). Repeated
// failed logins for a user name or from an address become a server event,
// which the built-in rule warden_login_failures turns into an alert.
func (s *Server) newUsers() *users.Service {
	return users.New(users.Config{
		Storage: s.core, Sessions: s.tokens, Now: s.cfg.Now,
		RequireMFAGroups: s.cfg.RequireMFAGroups, SessionTTL: s.cfg.SessionTTL, IdleTimeout: s.cfg.SessionIdle,
		OnLoginFailures: func(user, addr string, failures int) {
			ev := events.Event{events.FieldSourceIP: addr, "user.name": user, "warden.failures": strconv.Itoa(failures)}
			s.emitter.Emit(events.ActionLoginFailures, ev)
		},
	})
}
