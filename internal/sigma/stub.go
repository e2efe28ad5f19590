package sigma

import (
	"time"

	"github.com/warden-sec/warden/internal/events"
)

type detection struct{}

// Mapping maps Sigma log sources to datasets and Sigma field names to ECS
// field names.
type Mapping struct{}

// DefaultMapping returns Warden's mapping.
func DefaultMapping() *Mapping { return &Mapping{} }

// ParseMapping parses a mapping file.
func ParseMapping(file string, data []byte) (*Mapping, error) { return &Mapping{}, nil }

// Merge returns m extended (and overridden) by o.
func (m *Mapping) Merge(o *Mapping) *Mapping { return m }

// Parse parses a YAML file of one or more Sigma rules.
func Parse(file string, data []byte) ([]*Rule, error) { return nil, nil }

// Set is a compiled set of rules.
type Set struct{}

// Compile compiles rules.
func Compile(rules []*Rule, cfg Config) (*Set, error) { return &Set{}, nil }

// Match appends to dst the detection rules ev matches.
func (s *Set) Match(ev events.Event, dst []*Rule) []*Rule { return dst[:0] }

// Hit is an alert to create or update.
type Hit struct {
	Key    string
	Rule   *Rule
	Group  map[string]string
	Count  int64
	First  time.Time
	Last   time.Time
	Hosts  []string
	Events []events.Event
	Refs   []uint64
}

// Limits bounds the Correlator's state.
type Limits struct {
	MaxGroups         int
	MaxValuesPerGroup int
	MaxEventsPerGroup int
}

// Correlator correlates matches.
type Correlator struct{}

// NewCorrelator returns a Correlator.
func NewCorrelator(s *Set, owns func(partitionKey string) bool, lim Limits) *Correlator {
	return &Correlator{}
}

// Observe feeds one event.
func (c *Correlator) Observe(ev events.Event, matched []*Rule, ref uint64) []Hit { return nil }

// MarshalBinary encodes the state.
func (c *Correlator) MarshalBinary() ([]byte, error) { return nil, nil }

// UnmarshalBinary restores the state.
func (c *Correlator) UnmarshalBinary([]byte) error { return nil }

// PartitionKey is the key owns is asked about.
func PartitionKey(r *Rule, ev events.Event) string { return r.ID }

// Builtin returns the built-in pack.
func Builtin() ([]*Rule, error) { return nil, nil }
