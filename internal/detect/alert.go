// Package detect runs detection in the servers: Sigma rules stored in the
// cluster, the alerts they raise, and the notifications sent for them.
package detect

import "encoding/json"

// Alert statuses.
const (
	StatusOpen         = "open"
	StatusAcknowledged = "acknowledged"
	StatusClosed       = "closed"
)

// Alert is what a rule's match makes. Matches of the same rule and group
// within its window update one alert; they never make new ones. Its ID is
// derived from the rule, the group and the window's start, so the same
// match reported twice (a partition replayed after a failover) updates the
// same alert.
type Alert struct {
	ID        string            `json:"id"`
	RuleID    string            `json:"rule_id"`
	RuleTitle string            `json:"rule_title"`
	Level     string            `json:"level"`
	Tags      []string          `json:"tags"`
	Status    string            `json:"status"`
	FirstSeen string            `json:"first_seen"` // RFC 3339 UTC, event time
	LastSeen  string            `json:"last_seen"`
	Count     int64             `json:"count"`
	Group     map[string]string `json:"group"`
	Hosts     []string          `json:"hosts"`
	// Events are the first 10 events (JSON objects).
	Events    []json.RawMessage `json:"events"`
	EventRefs []uint64          `json:"event_refs"` // stream sequence numbers of the batches holding them
	// Comments and status changes, newest last.
	Notes   []Note `json:"notes,omitempty"`
	Created string `json:"created_time"`
	Updated string `json:"updated_time"`
}

// Note is a comment on an alert, with the status change it came with.
type Note struct {
	Time    string `json:"time"`
	By      string `json:"by"`
	Status  string `json:"status,omitempty"`
	Comment string `json:"comment"`
}
