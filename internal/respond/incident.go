package respond

import (
	"context"
	"errors"
	"time"

	"github.com/warden-sec/warden/internal/store/kv"
)

// Incident groups alerts and decisions with a timeline.
type Incident struct{}

// Item is an entry of an incident's timeline.
type Item struct{}

// Attach asks for an item to be added to an incident: the one named, or
// an open one for the same host or rule within Window, or a new one.
type Attach struct {
	IncidentID             string // "": find an open one within Window, else open one
	Title, Severity, Actor string
	AlertID, DecisionID    string
	Host, RuleID           string
	Window                 time.Duration
	Now                    time.Time
}

// Incidents stores incidents.
type Incidents struct{}

// OpenOrAttach returns the operations and conditions that add the alert
// and decision of in to an incident, and the incident and item they write.
func (s *Incidents) OpenOrAttach(ctx context.Context, in Attach) (ops []kv.Op, conds []kv.Cond, inc Incident, item Item, err error) {
	return nil, nil, Incident{}, Item{}, errors.New("respond: not implemented")
}
