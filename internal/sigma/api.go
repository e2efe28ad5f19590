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
	Type      string        // EventCount, ValueCount, Temporal or TemporalOrdered
	Rules     []string      // referenced rules, by id or name
	GroupBy   []string      // field names as written in the rule
	Timespan  time.Duration // the window
	Condition []Threshold   // all must hold; empty for temporal types
	Field     string        // value_count: the field whose distinct values are counted
	Generate  bool          // the referenced rules also make their own hits
}

// Threshold is one comparison of a correlation condition: Op is one of
// "gt", "gte", "lt", "lte", "eq".
type Threshold struct {
	Op    string
	Value int64
}

// Rule is one parsed Sigma rule (detection or correlation). A Rule must
// not be modified after it is passed to Compile.
type Rule struct {
	ID, Name, Title, Level, Status, Description string
	Author                                      string
	Tags                                        []string
	References                                  []string
	Falsepositives                              []string
	Logsource                                   Logsource
	Correlation                                 *Correlation // nil for detection rules
	File                                        string       // as passed to Parse
	Line                                        int          // the line the document starts on
	Source                                      []byte       // the YAML document of this rule

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
