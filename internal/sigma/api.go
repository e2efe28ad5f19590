package sigma

import (
	"fmt"
	"time"
)

// Error is a rule or mapping that does not parse or compile. Feature is
// set when the input uses something Warden does not support (such as
// `modifier "windows-foo"`); it is empty for plain syntax errors.
type Error struct {
	File    string
	Line    int
	Feature string
	Msg     string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Unsupported reports whether the error names a feature Warden does not
// support (as opposed to an invalid rule).
func (e *Error) Unsupported() bool { return e.Feature != "" }

// Logsource is a rule's log source; the Mapping turns it into datasets.
type Logsource struct {
	Product    string `json:"product,omitempty"`
	Category   string `json:"category,omitempty"`
	Service    string `json:"service,omitempty"`
	Definition string `json:"definition,omitempty"`
}

// Correlation types.
const (
	EventCount      = "event_count"
	ValueCount      = "value_count"
	Temporal        = "temporal"
	TemporalOrdered = "temporal_ordered"
)

// Correlation is the `correlation:` section of a correlation rule.
type Correlation struct {
	Type      string        `json:"type"`            // EventCount, ValueCount, Temporal or TemporalOrdered
	Rules     []string      `json:"rules"`           // referenced rules, by id or name
	GroupBy   []string      `json:"group_by"`        // field names as written in the rule
	Timespan  time.Duration `json:"timespan"`        // the window (JSON: nanoseconds)
	Condition []Threshold   `json:"condition"`       // all must hold; empty for temporal types
	Field     string        `json:"field,omitempty"` // value_count: the field whose distinct values are counted
	Generate  bool          `json:"generate"`        // the referenced rules also make their own hits
}

// Threshold is one comparison of a correlation condition: Op is one of
// "gt", "gte", "lt", "lte", "eq".
type Threshold struct {
	Op    string `json:"op"`
	Value int64  `json:"value"`
}

// Rule is one parsed Sigma rule (detection or correlation). A Rule must
// not be modified after it is passed to Compile. Source is the rule's own
// YAML document: Parse(File, Source) gives the rule again.
type Rule struct {
	ID             string       `json:"id"`
	Name           string       `json:"name,omitempty"`
	Title          string       `json:"title"`
	Level          string       `json:"level,omitempty"`
	Status         string       `json:"status,omitempty"`
	Description    string       `json:"description,omitempty"`
	Author         string       `json:"author,omitempty"`
	Tags           []string     `json:"tags,omitempty"`
	References     []string     `json:"references,omitempty"`
	Falsepositives []string     `json:"falsepositives,omitempty"`
	Logsource      Logsource    `json:"logsource"`
	Correlation    *Correlation `json:"correlation,omitempty"` // nil for detection rules
	File           string       `json:"file"`                  // as passed to Parse
	Line           int          `json:"line"`                  // the line the document starts on
	Source         []byte       `json:"-"`                     // the YAML document of this rule

	detection *detection // nil for correlation rules
}

// Config configures Compile. The zero value is usable.
type Config struct {
	Mapping      *Mapping            // nil: DefaultMapping()
	Placeholders map[string][]string // values of %name% for the expand modifier
	DedupWindow  time.Duration       // detection rules: one hit per group and window; default 10m
	Lateness     time.Duration       // allowed lateness of event time; default 1m
}

// Default values of Config.
const (
	DefaultDedupWindow = 10 * time.Minute
	DefaultLateness    = time.Minute
)
