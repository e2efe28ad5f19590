package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/sigma"
	"github.com/warden-sec/warden/internal/store/kv"
)

// Rule kinds.
const (
	KindDetection   = "detection"
	KindCorrelation = "correlation"
)

// MaxRuleBytes bounds one rule's YAML.
const MaxRuleBytes = 256 << 10

// RuleRecord is a stored rule: its YAML source as it was put, and what
// Warden read from it. Version counts the puts of this id (1 for the first).
type RuleRecord struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Level       string `json:"level"`
	Status      string `json:"status,omitempty"`
	Kind        string `json:"kind"`
	Version     uint64 `json:"version"`
	CreatedTime string `json:"created_time"`
	UpdatedTime string `json:"updated_time"`
	// YAML is the rule's source (omitted from lists).
	YAML string `json:"yaml,omitempty"`
}

// rulesMeta is the record of the rule set as a whole: its version, bumped by
// every change of a rule or of the placeholders, and the placeholders.
type rulesMeta struct {
	Version      uint64              `json:"version"`
	Placeholders map[string][]string `json:"placeholders,omitempty"`
	// Mapping is the operators' extension of sigma.DefaultMapping (YAML of
	// the same form), "" for none.
	Mapping     string `json:"mapping,omitempty"`
	UpdatedTime string `json:"updated_time,omitempty"`
}

// Rules stores Sigma rules in the cluster. Every change is validated by
// compiling the whole resulting set (so a correlation rule must find the
// rules it names), and is one transaction conditioned on the set's version,
// so concurrent changes never produce a set that was not validated. Safe
// for concurrent use.
type Rules struct {
	st  Storage
	now func() time.Time

	mu     sync.Mutex
	parsed map[string]parsedRule // id → rule parsed at a store version
}

type parsedRule struct {
	version uint64
	rule    *sigma.Rule
}

// NewRules returns the rules service over st; now may be nil (time.Now).
func NewRules(st Storage, now func() time.Time) *Rules {
	if now == nil {
		now = time.Now
	}
	return &Rules{st: st, now: now, parsed: map[string]parsedRule{}}
}

// Forget drops parsed rules (called when Warden seals).
func (r *Rules) Forget() {
	r.mu.Lock()
	r.parsed = map[string]parsedRule{}
	r.mu.Unlock()
}

// snapshot is the rule set read in one consistent view.
type snapshot struct {
	meta        rulesMeta
	metaVersion uint64                // store version of the meta key (0: absent)
	records     map[string]RuleRecord // id → record
	versions    map[string]uint64     // id → store version of its key
}

func (r *Rules) read(ctx context.Context) (*snapshot, error) {
	ents, err := r.st.List(ctx, prefixRules, 0)
	if err != nil {
		return nil, err
	}
	s := &snapshot{records: map[string]RuleRecord{}, versions: map[string]uint64{}}
	for _, e := range ents {
		switch {
		case e.Key == keyRulesMeta:
			if err := json.Unmarshal(e.Value, &s.meta); err != nil {
				return nil, fmt.Errorf("detect: decode rules meta: %w", err)
			}
			s.metaVersion = e.Version
		case strings.HasPrefix(e.Key, prefixRule):
			var rec RuleRecord
			if err := json.Unmarshal(e.Value, &rec); err != nil {
				return nil, fmt.Errorf("detect: decode rule %q: %w", e.Key, err)
			}
			s.records[rec.ID] = rec
			s.versions[rec.ID] = e.Version
		}
	}
	return s, nil
}

// rule returns the parsed rule of a stored record (cached by store version).
func (r *Rules) rule(rec RuleRecord, version uint64) (*sigma.Rule, error) {
	r.mu.Lock()
	p, ok := r.parsed[rec.ID]
	r.mu.Unlock()
	if ok && p.version == version {
		return p.rule, nil
	}
	rs, err := sigma.Parse(rec.ID, []byte(rec.YAML))
	if err != nil {
		return nil, fmt.Errorf("detect: stored rule %q no longer parses: %w", rec.ID, err)
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("detect: stored rule %q holds %d rules", rec.ID, len(rs))
	}
	r.mu.Lock()
	r.parsed[rec.ID] = parsedRule{version: version, rule: rs[0]}
	r.mu.Unlock()
	return rs[0], nil
}

// rules returns the parsed rules of s, sorted by id, with extra in place of
// (or beside) the stored rule of its id and without the ids in drop.
func (r *Rules) rules(s *snapshot, extra *sigma.Rule, drop string) ([]*sigma.Rule, error) {
	ids := make([]string, 0, len(s.records))
	for id := range s.records {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]*sigma.Rule, 0, len(ids)+1)
	for _, id := range ids {
		if id == drop || (extra != nil && id == extra.ID) {
			continue
		}
		rule, err := r.rule(s.records[id], s.versions[id])
		if err != nil {
			return nil, err
		}
		out = append(out, rule)
	}
	if extra != nil {
		out = append(out, extra)
	}
	return out, nil
}

// ParseOne parses the YAML of the rule whose id is id: exactly one rule,
// with that id. Errors name the id as the file, and the line and feature.
func ParseOne(id string, src []byte) (*sigma.Rule, error) {
	if err := checkName("rule id", id); err != nil {
		return nil, err
	}
	if len(src) > MaxRuleBytes {
		return nil, errs.E(errs.TooLarge, "rule %s: %d bytes, more than %d", id, len(src), MaxRuleBytes)
	}
	rs, err := sigma.Parse(id, src)
	if err != nil {
		return nil, compileErr(err)
	}
	switch {
	case len(rs) == 0:
		return nil, errs.E(errs.Invalid, "rule %s: the YAML holds no rule", id)
	case len(rs) > 1:
		return nil, errs.E(errs.Invalid, "rule %s: the YAML holds %d rules; put one rule per request (warden rules put splits files)", id, len(rs))
	case rs[0].ID == "":
		return nil, errs.E(errs.Invalid, "rule %s: the YAML has no id (add \"id: %s\")", id, id)
	case rs[0].ID != id:
		return nil, errs.E(errs.Invalid, "rule %s: the YAML's id is %q; the path must name the rule's own id", id, rs[0].ID)
	}
	return rs[0], nil
}

// compileErr is the 400 of a rule that does not parse or compile: the
// sigma error names the file (the rule's id), the line and, for what
// Warden does not support, the feature.
func compileErr(err error) error {
	msg := err.Error()
	var se *sigma.Error
	if errors.As(err, &se) && se.Feature != "" && !strings.Contains(msg, se.Feature) {
		msg += " (unsupported feature: " + se.Feature + ")"
	}
	return errs.Wrap(errs.Invalid, err, "rule refused: %s", msg)
}

// Put stores src, the YAML of the rule whose id is id, as its next version,
// after compiling it with every other stored rule and the placeholders.
// errs.Invalid names the file (the id), the YAML line and the feature when
// the rule does not parse or compile; nothing is stored then.
func (r *Rules) Put(ctx context.Context, id string, src []byte) (RuleRecord, error) {
	rule, err := ParseOne(id, src)
	if err != nil {
		return RuleRecord{}, err
	}
	for attempt := 0; ; attempt++ {
		s, err := r.read(ctx)
		if err != nil {
			return RuleRecord{}, err
		}
		all, err := r.rules(s, rule, "")
		if err != nil {
			return RuleRecord{}, err
		}
		if _, err := sigma.Compile(all, s.meta.config()); err != nil {
			return RuleRecord{}, compileErr(err)
		}
		now := rfc3339(r.now())
		old, existed := s.records[id]
		rec := RuleRecord{ID: id, Title: rule.Title, Level: rule.Level, Status: rule.Status, Kind: KindDetection,
			Version: old.Version + 1, CreatedTime: now, UpdatedTime: now, YAML: string(src)}
		if rule.Correlation != nil {
			rec.Kind = KindCorrelation
		}
		if existed {
			rec.CreatedTime = old.CreatedTime
		}
		err = r.commit(ctx, s, []kv.Cond{{Key: prefixRule + id, Version: s.versions[id]}},
			kv.Op{Type: kv.OpPut, Key: prefixRule + id, Value: mustJSON(rec)})
		if err == nil {
			return rec, nil
		}
		if !errs.Is(err, errs.Conflict) || attempt >= maxRetries {
			return RuleRecord{}, err
		}
	}
}

// commit applies op with the set's version bumped, conditioned on the set
// not having changed since s was read.
func (r *Rules) commit(ctx context.Context, s *snapshot, conds []kv.Cond, ops ...kv.Op) error {
	m := s.meta
	m.Version++
	m.UpdatedTime = rfc3339(r.now())
	conds = append(conds, kv.Cond{Key: keyRulesMeta, Version: s.metaVersion})
	ops = append(ops, kv.Op{Type: kv.OpPut, Key: keyRulesMeta, Value: mustJSON(m)})
	_, err := r.st.Txn(ctx, kv.Txn{Conds: conds, Ops: ops})
	return err
}

// Get returns the stored rule id, with its YAML. errs.NotFound if absent.
func (r *Rules) Get(ctx context.Context, id string) (RuleRecord, error) {
	if err := checkName("rule id", id); err != nil {
		return RuleRecord{}, err
	}
	e, err := r.st.Get(ctx, prefixRule+id)
	if errs.Is(err, errs.NotFound) {
		return RuleRecord{}, errs.E(errs.NotFound, "rule %q not found", id)
	}
	if err != nil {
		return RuleRecord{}, err
	}
	var rec RuleRecord
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return RuleRecord{}, fmt.Errorf("detect: decode rule %q: %w", id, err)
	}
	return rec, nil
}

// List returns every stored rule without its YAML, sorted by id, and the
// set's version.
func (r *Rules) List(ctx context.Context) ([]RuleRecord, uint64, error) {
	s, err := r.read(ctx)
	if err != nil {
		return nil, 0, err
	}
	out := make([]RuleRecord, 0, len(s.records))
	for _, rec := range s.records {
		rec.YAML = ""
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, s.meta.Version, nil
}

// Delete removes rule id. A rule a stored correlation rule names cannot be
// deleted (errs.Conflict, naming it). errs.NotFound if absent.
func (r *Rules) Delete(ctx context.Context, id string) error {
	if err := checkName("rule id", id); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		s, err := r.read(ctx)
		if err != nil {
			return err
		}
		if _, ok := s.records[id]; !ok {
			return errs.E(errs.NotFound, "rule %q not found", id)
		}
		rest, err := r.rules(s, nil, id)
		if err != nil {
			return err
		}
		if _, err := sigma.Compile(rest, s.meta.config()); err != nil {
			return errs.Wrap(errs.Conflict, err, "rule %s cannot be deleted: without it the rules do not compile: %s", id, err.Error())
		}
		err = r.commit(ctx, s, []kv.Cond{{Key: prefixRule + id, Version: s.versions[id]}},
			kv.Op{Type: kv.OpDelete, Key: prefixRule + id})
		if err == nil {
			return nil
		}
		if !errs.Is(err, errs.Conflict) || attempt >= maxRetries {
			return err
		}
	}
}

// All returns every stored rule, parsed (shared: do not modify them), and
// the set's version; the runtime compiles them with Set's configuration.
func (r *Rules) All(ctx context.Context) ([]*sigma.Rule, uint64, error) {
	rs, _, v, err := r.Set(ctx)
	return rs, v, err
}

// Set returns every stored rule (shared: do not modify them), the
// configuration to compile them with (the placeholders of the modifier
// expand, the mapping with the operators' extension), and the set's
// version, read in one consistent view.
func (r *Rules) Set(ctx context.Context) ([]*sigma.Rule, sigma.Config, uint64, error) {
	s, err := r.read(ctx)
	if err != nil {
		return nil, sigma.Config{}, 0, err
	}
	rs, err := r.rules(s, nil, "")
	if err != nil {
		return nil, sigma.Config{}, 0, err
	}
	return rs, s.meta.config(), s.meta.Version, nil
}

// config is the compile configuration of the set: its placeholders, and
// the default mapping merged with the operators' extension (checked when
// it was stored).
func (m rulesMeta) config() sigma.Config {
	cfg := sigma.Config{Placeholders: m.Placeholders}
	if m.Mapping != "" {
		if ext, err := sigma.ParseMapping("mapping", []byte(m.Mapping)); err == nil {
			cfg.Mapping = sigma.DefaultMapping().Merge(ext)
		}
	}
	return cfg
}

// MaxMappingBytes bounds the operators' mapping extension.
const MaxMappingBytes = 256 << 10

// Mapping returns the operators' extension of the default mapping (YAML;
// "" for none) and the set's version.
func (r *Rules) Mapping(ctx context.Context) (string, uint64, error) {
	s, err := r.read(ctx)
	if err != nil {
		return "", 0, err
	}
	return s.meta.Mapping, s.meta.Version, nil
}

// SetMapping replaces the operators' extension of the default mapping
// (YAML of the form of sigma's mapping.yml; empty removes it), after
// compiling the stored rules with it, and returns the set's new version.
// errs.Invalid names the line of a mapping that does not parse.
func (r *Rules) SetMapping(ctx context.Context, src []byte) (uint64, error) {
	if len(src) > MaxMappingBytes {
		return 0, errs.E(errs.Invalid, "mapping: %d bytes, more than %d", len(src), MaxMappingBytes)
	}
	if len(bytes.TrimSpace(src)) > 0 {
		if _, err := sigma.ParseMapping("mapping", src); err != nil {
			return 0, errs.Wrap(errs.Invalid, err, "mapping refused: %s", err.Error())
		}
	} else {
		src = nil
	}
	return r.setMeta(ctx, func(m *rulesMeta) { m.Mapping = string(src) })
}

// setMeta changes the set's metadata with change, after compiling the
// stored rules with the changed metadata, and returns the set's new
// version; a conflicting write is retried from a fresh read.
func (r *Rules) setMeta(ctx context.Context, change func(*rulesMeta)) (uint64, error) {
	for attempt := 0; ; attempt++ {
		s, err := r.read(ctx)
		if err != nil {
			return 0, err
		}
		all, err := r.rules(s, nil, "")
		if err != nil {
			return 0, err
		}
		next := s.meta
		change(&next)
		if _, err := sigma.Compile(all, next.config()); err != nil {
			return 0, compileErr(err)
		}
		change(&s.meta)
		err = r.commit(ctx, s, nil)
		if err == nil {
			return s.meta.Version + 1, nil
		}
		if !errs.Is(err, errs.Conflict) || attempt >= maxRetries {
			return 0, err
		}
	}
}

// MaxPlaceholderValues bounds the values of all placeholders together.
const MaxPlaceholderValues = 10000

// Placeholders returns the placeholders (name → values) and the set's version.
func (r *Rules) Placeholders(ctx context.Context) (map[string][]string, uint64, error) {
	s, err := r.read(ctx)
	if err != nil {
		return nil, 0, err
	}
	p := s.meta.Placeholders
	if p == nil {
		p = map[string][]string{}
	}
	return p, s.meta.Version, nil
}

// SetPlaceholders replaces the placeholders, after compiling the stored
// rules with them, and returns the set's new version.
func (r *Rules) SetPlaceholders(ctx context.Context, p map[string][]string) (uint64, error) {
	n := 0
	for name, vs := range p {
		if err := checkName("placeholder", name); err != nil {
			return 0, err
		}
		n += len(vs)
	}
	if n > MaxPlaceholderValues {
		return 0, errs.E(errs.Invalid, "placeholders: %d values, more than %d", n, MaxPlaceholderValues)
	}
	return r.setMeta(ctx, func(m *rulesMeta) { m.Placeholders = p })
}

// Version returns the set's version from this node's local state (0 when
// no rule was ever stored, or while sealed).
func (r *Rules) Version() uint64 {
	e, err := r.st.GetStale(keyRulesMeta)
	if err != nil {
		return 0
	}
	var m rulesMeta
	if json.Unmarshal(e.Value, &m) != nil {
		return 0
	}
	return m.Version
}

// Watch calls fn with the set's version whenever it differs from the last
// one fn was given (the first call comes as soon as the version is
// readable, which is after unseal), checking this node's local state every
// interval (default 1s), until ctx ends. Every node of a cluster learns of
// a change within interval of applying it. fn runs on Watch's goroutine.
func (r *Rules) Watch(ctx context.Context, interval time.Duration, fn func(version uint64)) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var last uint64
	called := false
	for {
		if e, err := r.st.GetStale(keyRulesMeta); err == nil || errs.Is(err, errs.NotFound) {
			var v uint64
			if err == nil {
				var m rulesMeta
				if json.Unmarshal(e.Value, &m) == nil {
					v = m.Version
				}
			}
			if !called || v != last {
				called, last = true, v
				fn(v)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Changes returns a channel that is signalled (at most one signal
// pending) whenever the set's version changes, checked every interval
// (default 1s), until ctx ends: the detection runtime's RulesChanged. The
// first signal comes once the version is readable.
func (r *Rules) Changes(ctx context.Context, interval time.Duration) <-chan struct{} {
	ch := make(chan struct{}, 1)
	go r.Watch(ctx, interval, func(uint64) {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	return ch
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("detect: marshal: " + err.Error()) // only plain structs are marshaled
	}
	return b
}
