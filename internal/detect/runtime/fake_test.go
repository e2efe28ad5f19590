package runtime

import (
	"encoding/json"

	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/sigma"
)

// TEMPORARY until package sigma's engine lands: a brute-force counter
// standing in for sigma.Set and sigma.Correlator.

var fakeRule = &sigma.Rule{ID: "fake-bf", Title: "SSH brute force"}

type fakeSet struct{}

func (fakeSet) Match(ev events.Event, dst []*sigma.Rule) []*sigma.Rule {
	dst = dst[:0]
	if ev.String(events.FieldDataset) == "sshd" && ev.String(events.FieldOutcome) == "failure" {
		dst = append(dst, fakeRule)
	}
	return dst
}

type fakeCorr struct {
	owns   func(string) bool
	Counts map[string]int64
}

func fakeKey(ev events.Event) string { return "fake-bf|" + ev.String(events.FieldSourceIP) }

func (c *fakeCorr) Observe(ev events.Event, matched []*sigma.Rule, ref uint64) []sigma.Hit {
	k := fakeKey(ev)
	if !c.owns(k) {
		return nil
	}
	c.Counts[k]++
	if n := c.Counts[k]; n >= 10 {
		return []sigma.Hit{{Key: k, Rule: fakeRule, Count: n, Refs: []uint64{ref},
			Group: map[string]string{"source.ip": ev.String(events.FieldSourceIP)}}}
	}
	return nil
}

func (c *fakeCorr) MarshalBinary() ([]byte, error) { return json.Marshal(c.Counts) }
func (c *fakeCorr) UnmarshalBinary(b []byte) error { return json.Unmarshal(b, &c.Counts) }

func fakeCompile(rules []*sigma.Rule, cfg sigma.Config) (matcher, func(owns func(string) bool, lim sigma.Limits) correlator, error) {
	return fakeSet{}, func(owns func(string) bool, lim sigma.Limits) correlator {
		return &fakeCorr{owns: owns, Counts: map[string]int64{}}
	}, nil
}
