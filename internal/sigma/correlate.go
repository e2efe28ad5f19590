package sigma

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/events"
)

// Hit is an alert to create or update. Hits with the same Key are the same
// alert: a later one has a higher (or equal) Count and a later Last. A
// Hit's map and slices are shared with the Correlator (and Events are the
// maps given to Observe): the caller must not modify them.
type Hit struct {
	// Key is stable: the rule id, the group's values and the window's start.
	// The same events in the same order give the same Keys.
	Key    string
	Rule   *Rule
	Group  map[string]string // group-by field (ECS name) → value; {host.name} for detection rules
	Count  int64             // events in the alert so far
	First  time.Time         // event time of the first and last event
	Last   time.Time
	Hosts  []string       // distinct host.name values, at most maxHosts
	Events []events.Event // the first MaxHitEvents events
	Refs   []uint64       // their references (as passed to Observe), without repeats
}

// MaxHitEvents is how many events a Hit carries.
const MaxHitEvents = 10

const maxHosts = 100

// Limits bounds a Correlator's state. A zero field takes its default.
type Limits struct {
	// MaxGroups bounds the groups kept per rule (detection rules: host and
	// dedup window; correlations: group-by values). When full, expired
	// state is dropped and then the least recently seen group is evicted
	// (Stats.GroupsEvicted). Default 10,000.
	MaxGroups int
	// MaxValuesPerGroup bounds the distinct values a value_count group
	// keeps; beyond it the oldest value is forgotten (Stats.ValuesCut).
	// Default 1,000.
	MaxValuesPerGroup int
	// MaxEventsPerGroup bounds the event times a correlation group keeps
	// in its window; beyond it the oldest is forgotten (Stats.EventsCut),
	// so an event_count threshold above it never holds. Default 10,000.
	MaxEventsPerGroup int
}

// Default limits.
const (
	DefaultMaxGroups         = 10000
	DefaultMaxValuesPerGroup = 1000
	DefaultMaxEventsPerGroup = 10000
)

// Stats counts what the Correlator cut or ignored, for metrics.
type Stats struct {
	Late          uint64 `json:"late"`           // events older than the watermark, ignored by correlations
	GroupsEvicted uint64 `json:"groups_evicted"` // groups evicted because a rule had MaxGroups
	ValuesCut     uint64 `json:"values_cut"`     // value_count values forgotten at MaxValuesPerGroup
	EventsCut     uint64 `json:"events_cut"`     // event times forgotten at MaxEventsPerGroup
	NoTime        uint64 `json:"no_time"`        // events without a valid @timestamp
	Groups        int    `json:"groups"`         // groups held now
}

// gcEvery is how far (in event time) the newest event must move before
// expired state is swept.
const gcEvery = 10 * time.Second

// Correlator turns matches into hits: it deduplicates detection rules'
// matches and evaluates correlation rules over event time. It is pure and
// deterministic, and not safe for concurrent use.
//
// Time is each event's @timestamp (an event without one takes the newest
// time seen). Each host has its own watermark: the newest time seen from
// that host (host.name) minus Config.Lateness. An event older than its
// host's watermark is late: it is counted (Stats.Late) and ignored by
// correlations, while detection rules still report it. State whose window
// ended before the watermark of the host that last fed it is dropped. So a
// host replaying yesterday's log is judged by its own clock, not by the
// hosts sending today's events.
type Correlator struct {
	set  *Set
	owns func(string) bool
	lim  Limits
	st   corrState

	// scratch, reused between calls
	fired, work []*crule
	pos         []int
	gk          []byte
}

// corrState is everything MarshalBinary saves.
type corrState struct {
	Version int                            `json:"version"`
	MaxSeen time.Time                      `json:"max_seen"`
	Hosts   map[string]time.Time           `json:"hosts,omitempty"` // host.name → newest time seen from it
	NextGC  time.Time                      `json:"next_gc"`
	Det     map[string]map[string]*alertSt `json:"det"`  // rule id → hit key → alert
	Groups  map[string]map[string]*groupSt `json:"corr"` // rule id → group key → state
	Stats   Stats                          `json:"stats"`
}

// alertSt is an open alert (a Hit in the making).
type alertSt struct {
	Key    string            `json:"key"`
	Group  map[string]string `json:"group"`
	Start  time.Time         `json:"start"`          // window start
	Host   string            `json:"host,omitempty"` // the host of the newest event
	Count  int64             `json:"count"`
	First  time.Time         `json:"first"`
	Last   time.Time         `json:"last"`
	Hosts  []string          `json:"hosts,omitempty"`
	Events []events.Event    `json:"events,omitempty"`
	Refs   []uint64          `json:"refs,omitempty"`
}

// groupSt is one correlation group's window.
type groupSt struct {
	Group  map[string]string    `json:"group"`
	Times  []int64              `json:"times,omitempty"` // event times (Unix ns) in the window from Head on, sorted
	Head   int                  `json:"head,omitempty"`
	Values map[string]time.Time `json:"values,omitempty"` // value_count: value → last time
	Seen   []time.Time          `json:"seen,omitempty"`   // temporal: last time per referenced rule
	Chain  []time.Time          `json:"chain,omitempty"`  // temporal_ordered: start of the chain reaching step i
	StepAt []time.Time          `json:"step_at,omitempty"`
	Recent []sample             `json:"recent,omitempty"` // the last MaxHitEvents events
	Newest time.Time            `json:"newest"`
	Host   string               `json:"host,omitempty"` // the host of the newest event
	Alert  *alertSt             `json:"alert,omitempty"`
}

type sample struct {
	T   time.Time    `json:"t"`
	Ev  events.Event `json:"ev"`
	Ref uint64       `json:"ref"`
}

const stateVersion = 1

// NewCorrelator returns a Correlator for the rules of s. owns tells
// whether this correlator owns a partition key (PartitionKey); nil owns
// every key.
func NewCorrelator(s *Set, owns func(partitionKey string) bool, lim Limits) *Correlator {
	if lim.MaxGroups <= 0 {
		lim.MaxGroups = DefaultMaxGroups
	}
	if lim.MaxValuesPerGroup <= 0 {
		lim.MaxValuesPerGroup = DefaultMaxValuesPerGroup
	}
	if lim.MaxEventsPerGroup <= 0 {
		lim.MaxEventsPerGroup = DefaultMaxEventsPerGroup
	}
	if owns == nil {
		owns = func(string) bool { return true }
	}
	return &Correlator{set: s, owns: owns, lim: lim, st: corrState{
		Version: stateVersion,
		Det:     map[string]map[string]*alertSt{},
		Groups:  map[string]map[string]*groupSt{},
	}}
}

// PartitionKey is the key a Correlator asks owns about for rule r and
// event ev. For a detection rule it is the rule id and the event's
// host.name (its dedup group). For a correlation rule it is the group-by
// field names and the event's values, without the rule id, so that
// chained correlations (which must share their group-by) land in one
// partition. A group-by name is looked up as written, then under its ECS
// name in DefaultMapping.
func PartitionKey(r *Rule, ev events.Event) string {
	var b strings.Builder
	if r.Correlation == nil {
		b.WriteString("rule\x00")
		b.WriteString(r.ID)
		b.WriteString("\x00")
		b.WriteString(ev.String(events.FieldHostName))
		return b.String()
	}
	b.WriteString("group")
	for _, f := range r.Correlation.GroupBy {
		v, ok := ev[f]
		if !ok {
			v = ev[defaultMapping().field(f)]
		}
		s, _ := scalarString(v)
		b.WriteString("\x00")
		b.WriteString(f)
		b.WriteString("=")
		b.WriteString(s)
	}
	return b.String()
}

// Stats returns the counters of what was cut or ignored, and the number
// of groups held.
func (c *Correlator) Stats() Stats {
	s := c.st.Stats
	s.Groups = 0
	for _, m := range c.st.Det {
		s.Groups += len(m)
	}
	for _, m := range c.st.Groups {
		s.Groups += len(m)
	}
	return s
}

// Observe feeds one event with the detection rules it matched (from
// Set.Match) and its reference (the stream sequence of its batch). It
// returns the hits whose alert must be created or updated, in a
// deterministic order. Rules not in the Correlator's Set are ignored. The
// Correlator keeps ev (as a sample of an alert): ev must not be modified
// afterwards.
func (c *Correlator) Observe(ev events.Event, matched []*Rule, ref uint64) []Hit {
	t := ev.Time()
	if t.IsZero() {
		c.st.Stats.NoTime++
		t = c.st.MaxSeen
		if t.IsZero() {
			t = time.Unix(0, 0).UTC()
		}
	}
	if t.After(c.st.MaxSeen) {
		c.st.MaxSeen = t
	}
	host := ev.String(events.FieldHostName)
	if c.st.Hosts == nil {
		c.st.Hosts = map[string]time.Time{}
	}
	if seen, ok := c.st.Hosts[host]; !ok || t.After(seen) {
		c.st.Hosts[host] = t
	}
	if !c.st.MaxSeen.Before(c.st.NextGC) {
		c.gc()
		c.st.NextGC = c.st.MaxSeen.Add(gcEvery)
	}
	late := t.Before(c.watermark(host))
	var hits []Hit
	fired := c.fired[:0]
	work := c.work[:0]
	for _, r := range matched {
		cr := c.set.byRule[r]
		if cr == nil || cr.corr != nil {
			continue
		}
		if cr.generate && c.owns(PartitionKey(r, ev)) {
			hits = append(hits, c.detect(cr, ev, t, ref))
		}
		if len(cr.parents) > 0 {
			fired = append(fired, cr)
			work = addParents(work, cr)
		}
	}
	if late && len(work) > 0 {
		c.st.Stats.Late++
		work = work[:0]
	}
	// Correlations in topological order; one that holds feeds its parents.
	for i := 0; i < len(work); i++ {
		cr := work[i]
		if !c.owns(PartitionKey(cr.r, ev)) {
			continue
		}
		positions := c.pos[:0]
		for j, ref := range cr.refs {
			for _, f := range fired {
				if f == ref {
					positions = append(positions, j)
					break
				}
			}
		}
		c.pos = positions
		h, report, holds := c.correlate(cr, ev, t, ref, positions)
		if report && cr.generate {
			hits = append(hits, h)
		}
		if holds && len(cr.parents) > 0 {
			fired = append(fired, cr)
			work = addParents(work, cr)
		}
	}
	c.fired, c.work = fired[:0], work[:0]
	return hits
}

// addParents adds the correlations referring to cr to work, which stays
// sorted by topological position and free of repeats.
func addParents(work []*crule, cr *crule) []*crule {
	for _, p := range cr.parents {
		i := sort.Search(len(work), func(i int) bool { return work[i].topo >= p.c.topo })
		if i < len(work) && work[i] == p.c {
			continue
		}
		work = append(work, nil)
		copy(work[i+1:], work[i:])
		work[i] = p.c
	}
	return work
}

func hitKey(id string, group map[string]string, keys []string, start time.Time) string {
	var b strings.Builder
	b.WriteString(id)
	for i, k := range keys {
		if i == 0 {
			b.WriteByte('|')
		} else {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(group[k])
	}
	b.WriteByte('|')
	b.WriteString(start.UTC().Format(time.RFC3339Nano))
	return b.String()
}

// detect records a detection rule's match: one alert per host and dedup
// window (aligned to multiples of Config.DedupWindow in event time).
func (c *Correlator) detect(cr *crule, ev events.Event, t time.Time, ref uint64) Hit {
	host := ev.String(events.FieldHostName)
	start := t.Truncate(c.set.cfg.DedupWindow)
	group := map[string]string{events.FieldHostName: host}
	key := hitKey(cr.r.ID, group, []string{events.FieldHostName}, start)
	m := c.st.Det[cr.r.ID]
	if m == nil {
		m = map[string]*alertSt{}
		c.st.Det[cr.r.ID] = m
	}
	a := m[key]
	if a == nil {
		if len(m) >= c.lim.MaxGroups {
			c.evictDet(m)
		}
		a = &alertSt{Key: key, Group: group, Start: start, First: t, Last: t}
		m[key] = a
	}
	a.add(ev, t, ref)
	return a.hit(cr.r)
}

func (a *alertSt) add(ev events.Event, t time.Time, ref uint64) {
	a.Count++
	if t.Before(a.First) {
		a.First = t
	}
	if !t.Before(a.Last) {
		a.Last = t
		a.Host = ev.String(events.FieldHostName)
	}
	if h := ev.String(events.FieldHostName); h != "" && len(a.Hosts) < maxHosts && !containsString(a.Hosts, h) {
		// copied on change: hits share the slice
		hosts := make([]string, 0, len(a.Hosts)+1)
		hosts = append(append(hosts, a.Hosts...), h)
		sort.Strings(hosts)
		a.Hosts = hosts
	}
	if len(a.Events) < MaxHitEvents {
		a.Events = append(a.Events, ev)
		if !containsRef(a.Refs, ref) {
			a.Refs = append(a.Refs, ref)
		}
	}
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func containsRef(l []uint64, r uint64) bool {
	for _, x := range l {
		if x == r {
			return true
		}
	}
	return false
}

// hit returns the alert as a Hit. The Hit shares the alert's group map
// (never modified) and slices (only appended to, or replaced).
func (a *alertSt) hit(r *Rule) Hit {
	return Hit{
		Key: a.Key, Rule: r, Group: a.Group, Count: a.Count, First: a.First, Last: a.Last,
		Hosts:  a.Hosts[:len(a.Hosts):len(a.Hosts)],
		Events: a.Events[:len(a.Events):len(a.Events)],
		Refs:   a.Refs[:len(a.Refs):len(a.Refs)],
	}
}

// watermark returns the watermark of host: the newest time seen from it
// minus the allowed lateness.
func (c *Correlator) watermark(host string) time.Time {
	return c.st.Hosts[host].Add(-c.set.cfg.Lateness)
}

func (c *Correlator) evictDet(m map[string]*alertSt) {
	for k, a := range m {
		if a.Start.Add(c.set.cfg.DedupWindow).Before(c.watermark(a.Host)) {
			delete(m, k)
		}
	}
	if len(m) < c.lim.MaxGroups {
		return
	}
	delete(m, oldestKey(m, func(a *alertSt) time.Time { return a.Last }))
	c.st.Stats.GroupsEvicted++
}

// oldestKey returns the key of m whose time is the oldest (of equal times,
// the smallest key, so that eviction is deterministic).
func oldestKey[V any](m map[string]V, at func(V) time.Time) string {
	var victim string
	var oldest time.Time
	for k, v := range m {
		t := at(v)
		if victim == "" || t.Before(oldest) || t.Equal(oldest) && k < victim {
			victim, oldest = k, t
		}
	}
	return victim
}

// correlate updates a correlation group with an event that matched the
// referenced rules at positions. It reports a hit when the condition holds
// or the event falls in the window of the group's open alert; holds tells
// whether the condition holds (which feeds chained correlations).
func (c *Correlator) correlate(cr *crule, ev events.Event, t time.Time, ref uint64, positions []int) (h Hit, report, holds bool) {
	co := cr.corr
	gk := c.gk[:0]
	for _, f := range cr.groupBy {
		v, ok := ev[f]
		if !ok || v == nil {
			return Hit{}, false, false // an event without a group-by field is not part of any group
		}
		s, _ := scalarString(v)
		gk = append(gk, f...)
		gk = append(gk, '=')
		gk = append(gk, s...)
		gk = append(gk, 0)
	}
	c.gk = gk
	var val string
	if co.Type == ValueCount {
		v, ok := ev[cr.field]
		if !ok || v == nil {
			return Hit{}, false, false
		}
		val, _ = scalarString(v)
	}
	m := c.st.Groups[cr.r.ID]
	if m == nil {
		m = map[string]*groupSt{}
		c.st.Groups[cr.r.ID] = m
	}
	g := m[string(gk)]
	if g == nil {
		if len(m) >= c.lim.MaxGroups {
			c.evictGroup(m, co.Timespan)
		}
		group := make(map[string]string, len(cr.groupBy))
		for _, f := range cr.groupBy {
			group[f], _ = scalarString(ev[f])
		}
		g = &groupSt{Group: group}
		m[string(gk)] = g
	}
	group := g.Group
	if !t.Before(g.Newest) {
		g.Newest = t
		g.Host = ev.String(events.FieldHostName)
	}
	from := g.Newest.Add(-co.Timespan)
	g.prune(from)
	// the event's time, in order
	tn := t.UnixNano()
	i := len(g.Times)
	for i > g.Head && g.Times[i-1] > tn {
		i--
	}
	g.Times = append(g.Times, 0)
	copy(g.Times[i+1:], g.Times[i:])
	g.Times[i] = tn
	if len(g.Times)-g.Head > c.lim.MaxEventsPerGroup {
		g.Head++
		c.st.Stats.EventsCut++
	}
	count := int64(len(g.Times) - g.Head)
	oldest := time.Unix(0, g.Times[g.Head]).UTC()
	if len(g.Recent) == MaxHitEvents {
		g.Recent = append(g.Recent[:0], g.Recent[1:]...)
	}
	g.Recent = append(g.Recent, sample{T: t, Ev: ev, Ref: ref})
	holds = false
	var start time.Time
	switch co.Type {
	case EventCount:
		holds = thresholds(co.Condition, count)
		start = oldest
	case ValueCount:
		if g.Values == nil {
			g.Values = map[string]time.Time{}
		}
		if old, ok := g.Values[val]; !ok || t.After(old) {
			g.Values[val] = t
		}
		if len(g.Values) > c.lim.MaxValuesPerGroup {
			delete(g.Values, oldestKey(g.Values, func(t time.Time) time.Time { return t }))
			c.st.Stats.ValuesCut++
		}
		holds = thresholds(co.Condition, int64(len(g.Values)))
		start = oldest
	case Temporal:
		if g.Seen == nil {
			g.Seen = make([]time.Time, len(cr.refs))
		}
		for _, p := range positions {
			if t.After(g.Seen[p]) {
				g.Seen[p] = t
			}
		}
		holds = true
		for _, s := range g.Seen {
			if s.IsZero() || s.Before(from) {
				holds = false
				break
			}
			if start.IsZero() || s.Before(start) {
				start = s
			}
		}
	case TemporalOrdered:
		n := len(cr.refs)
		if g.Chain == nil {
			g.Chain, g.StepAt = make([]time.Time, n), make([]time.Time, n)
		}
		// highest step first, so that one event advances a chain by one step
		for k := len(positions) - 1; k >= 0; k-- {
			p := positions[k]
			if p == 0 {
				g.Chain[0], g.StepAt[0] = t, t
				continue
			}
			if prev := g.Chain[p-1]; !prev.IsZero() && !t.Before(g.StepAt[p-1]) && t.Sub(prev) <= co.Timespan {
				g.Chain[p], g.StepAt[p] = prev, t
			}
		}
		last := g.Chain[n-1]
		holds = !last.IsZero() && !last.Before(from) && g.StepAt[n-1].Equal(t) && containsInt(positions, n-1)
		start = last
	}
	if g.Alert != nil && !t.Before(g.Alert.Start) && t.Before(g.Alert.Start.Add(co.Timespan)) {
		// part of the alert already raised in this window (even if the
		// condition no longer holds, as the window slid): it is updated
		g.Alert.add(ev, t, ref)
		return g.Alert.hit(cr.r), true, holds
	}
	if !holds {
		return Hit{}, false, false
	}
	a := &alertSt{Group: group, Start: start, First: t, Last: t}
	a.Key = hitKey(cr.r.ID, group, cr.groupBy, start)
	var n int64
	for _, tt := range g.Times[g.Head:] {
		if tt >= start.UnixNano() {
			n++
		}
	}
	for _, s := range g.Recent {
		if !s.T.Before(start) {
			a.add(s.Ev, s.T, s.Ref)
		}
	}
	if n > a.Count {
		a.Count = n
	}
	a.First = start
	g.Alert = a
	return a.hit(cr.r), true, true
}

func containsInt(l []int, x int) bool {
	for _, y := range l {
		if y == x {
			return true
		}
	}
	return false
}

func thresholds(ts []Threshold, n int64) bool {
	for _, t := range ts {
		if !compare(t.Op, float64(n), float64(t.Value)) {
			return false
		}
	}
	return true
}

// prune forgets what is older than from.
func (g *groupSt) prune(from time.Time) {
	fn := from.UnixNano()
	for g.Head < len(g.Times) && g.Times[g.Head] < fn {
		g.Head++
	}
	if g.Head == len(g.Times) {
		g.Times, g.Head = g.Times[:0], 0
	} else if g.Head > 32 && 2*g.Head > len(g.Times) {
		g.Times = append(g.Times[:0], g.Times[g.Head:]...)
		g.Head = 0
	}
	for v, t := range g.Values {
		if t.Before(from) {
			delete(g.Values, v)
		}
	}
	for i, t := range g.Chain {
		if !t.IsZero() && t.Before(from) {
			g.Chain[i], g.StepAt[i] = time.Time{}, time.Time{}
		}
	}
	j := 0
	for j < len(g.Recent) && g.Recent[j].T.Before(from) {
		j++
	}
	if j > 0 {
		g.Recent = append(g.Recent[:0], g.Recent[j:]...)
	}
}

func (c *Correlator) evictGroup(m map[string]*groupSt, span time.Duration) {
	for k, g := range m {
		if g.expired(span, c.watermark(g.Host)) {
			delete(m, k)
		}
	}
	if len(m) < c.lim.MaxGroups {
		return
	}
	delete(m, oldestKey(m, func(g *groupSt) time.Time { return g.Newest }))
	c.st.Stats.GroupsEvicted++
}

func (g *groupSt) expired(span time.Duration, watermark time.Time) bool {
	if !g.Newest.Add(span).Before(watermark) {
		return false
	}
	return g.Alert == nil || g.Alert.Start.Add(span).Before(watermark)
}

// gc drops state whose window ended before the watermark of the host
// that last fed it.
func (c *Correlator) gc() {
	for id, m := range c.st.Det {
		for k, a := range m {
			if a.Start.Add(c.set.cfg.DedupWindow).Before(c.watermark(a.Host)) {
				delete(m, k)
			}
		}
		if len(m) == 0 {
			delete(c.st.Det, id)
		}
	}
	for id, m := range c.st.Groups {
		span := time.Duration(0)
		if cr := c.set.corrByID(id); cr != nil {
			span = cr.corr.Timespan
		}
		for k, g := range m {
			if g.expired(span, c.watermark(g.Host)) {
				delete(m, k)
			}
		}
		if len(m) == 0 {
			delete(c.st.Groups, id)
		}
	}
}

func (s *Set) corrByID(id string) *crule {
	if c := s.ids[id]; c != nil && c.corr != nil {
		return c
	}
	return nil
}

// MarshalBinary encodes the Correlator's state (JSON) for a checkpoint.
// Restored with UnmarshalBinary into a Correlator of the same rules, it
// continues exactly where this one is: the same next events give the same
// hits.
func (c *Correlator) MarshalBinary() ([]byte, error) {
	return json.Marshal(&c.st)
}

// UnmarshalBinary restores state made by MarshalBinary, also into a
// Correlator of a newer Set (rules recompiled after a change): state of
// rules no longer in the Set, and of correlations whose references
// changed, is dropped.
func (c *Correlator) UnmarshalBinary(data []byte) error {
	var st corrState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("sigma: correlator state: %w", err)
	}
	if st.Version != stateVersion {
		return errors.New("sigma: correlator state: unknown version")
	}
	if st.Det == nil {
		st.Det = map[string]map[string]*alertSt{}
	}
	if st.Groups == nil {
		st.Groups = map[string]map[string]*groupSt{}
	}
	for id := range st.Det {
		if c.set.byID(id) == nil {
			delete(st.Det, id)
		}
	}
	for id, m := range st.Groups {
		cr := c.set.corrByID(id)
		if cr == nil {
			delete(st.Groups, id)
			continue
		}
		for k, g := range m {
			n := len(cr.refs)
			if g.Seen != nil && len(g.Seen) != n || g.Chain != nil && (len(g.Chain) != n || len(g.StepAt) != n) || g.Head > len(g.Times) {
				delete(m, k) // the rule changed its references: its state no longer applies
			}
		}
	}
	c.st = st
	return nil
}

func (s *Set) byID(id string) *crule { return s.ids[id] }
