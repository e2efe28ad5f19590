// Package events is Warden's event plane: the normalized security event
// (ECS field names), the ingestion of agents' batches, and the NATS
// JetStream stream that holds them. Events never go through Raft.
//
// An event is a flat JSON object whose keys are ECS field names written
// with dots ("source.ip", "event.outcome"), one object a line on the wire.
// Flat keys keep matching simple and fast; ECS allows dotted names.
package events

import (
	"strconv"
	"time"
)

// Event is one normalized event: ECS field name → value. Values are
// string, bool, float64 or int64 (JSON numbers decode as float64), or
// []any of those for multi-valued fields.
type Event map[string]any

// Field names every event carries, and the common ones parsers set.
const (
	FieldTimestamp = "@timestamp"     // RFC 3339 UTC, from the line where it has one
	FieldIngested  = "event.ingested" // set by the server that accepted the event
	FieldHostName  = "host.name"      // the node's name, from its certificate (server-set)
	FieldAgentID   = "agent.id"       // the node's SPIFFE ID, from its certificate (server-set)
	FieldModule    = "event.module"   // sshd, nginx, apache, syslog, json, raw, fim, journald, warden
	FieldDataset   = "event.dataset"  // sshd, nginx.access, apache.access, syslog, fim, ...
	FieldFilePath  = "log.file.path"  // the file the line came from
	FieldMessage   = "message"        // the original line
	FieldCategory  = "event.category"
	FieldAction    = "event.action"
	FieldOutcome   = "event.outcome" // success | failure | unknown
	FieldKind      = "event.kind"
	FieldError     = "error.message" // why a line did not parse (it is kept as a raw event)

	FieldSourceIP   = "source.ip"
	FieldSourcePort = "source.port"
	FieldUserName   = "user.name"
)

// MaxEventBytes bounds one event's JSON encoding.
const MaxEventBytes = 64 << 10

// String returns the field's value as a string ("" if absent). Numbers
// are formatted without exponent where they are integers.
func (e Event) String(name string) string {
	switch v := e[name].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

// Time returns the event's @timestamp, or the zero time if it has none
// or it does not parse.
func (e Event) Time() time.Time {
	s, _ := e[FieldTimestamp].(string)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// FormatTime formats t as events carry it.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
