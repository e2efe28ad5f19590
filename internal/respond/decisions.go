package respond

import (
	"context"
	"errors"
	"time"

	"github.com/warden-sec/warden/internal/store/kv"
	"github.com/warden-sec/warden/pkg/client"
)

// Decision and AllowEntry are the wire types of pkg/client: the API, the
// stream and the store hold the same JSON.
type (
	Decision   = client.DecisionRecord
	Target     = client.DecisionTarget
	AllowEntry = client.AllowEntry
)

// Input is a decision as asked for (POST /v1/decisions, or a playbook).
type Input struct {
	Type      string `json:"type"`
	Target    Target `json:"target"`
	Duration  string `json:"duration"`
	Zone      string `json:"zone"`
	Reason    string `json:"reason"`
	Simulated bool   `json:"simulated"`
	AlertID   string `json:"alert_id"`
	// Set by the server, never from a request body.
	Origin          string `json:"-"` // "" means "manual"
	PendingApproval bool   `json:"-"`
}

// Decisions stores decisions and the never-block list.
type Decisions struct{}

// Prepare validates in and returns the decision it would store, the
// operations and conditions that store it (with the offender record), or
// a 400 (errs.Invalid, naming the field) or 409 (errs.Conflict, naming the
// never-block entry or server it hits). by is the principal.
func (d *Decisions) Prepare(ctx context.Context, in Input, by string, now time.Time) (Decision, []kv.Op, []kv.Cond, error) {
	return Decision{}, nil, nil, errors.New("respond: not implemented")
}
