package respond

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/warden-sec/warden/internal/detect"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store/kv"
	"github.com/warden-sec/warden/pkg/client"
)

// Playbooks: automated response to alerts (docs/response.md "Playbooks").
// A playbook is YAML; Parse reads it strictly (unknown keys, duplicate
// keys and bad values are errors naming the YAML line and the field), and
// Playbooks stores it through Raft with its owner, the principal that put
// it, on whose authority the responder acts.

// Playbook modes.
const (
	ModeEnforce  = "enforce"
	ModeSimulate = "simulate"
)

// Action kinds.
const (
	ActionBan        = "ban"
	ActionQuarantine = "quarantine"
	ActionRevoke     = "revoke"
	ActionNotify     = "notify"
	ActionIncident   = "incident"
)

// Bounds of a playbook.
const (
	MaxPlaybookBytes   = 64 << 10
	MaxPlaybookActions = 16
	maxFilterValues    = 256
	maxDescription     = 1024
	// MaxActionsPerHour bounds limits.actions_per_hour.
	MaxActionsPerHour = 100000
	// DefaultActionsPerHour applies when limits.actions_per_hour is absent.
	DefaultActionsPerHour = 20
	// maxActionDuration bounds an action's duration and an incident's window.
	maxActionDuration = 365 * 24 * time.Hour
)

// Keys (design: respond/playbooks/<name>, respond/playbooks-cursor,
// respond/playbooks-rate/<name>; respond/playbooks-runs/<alert id> holds
// what the playbooks did for an alert, so that it is done once).
const (
	prefixPlaybook  = "respond/playbooks/"
	keyCursor       = "respond/playbooks-cursor"
	prefixRate      = "respond/playbooks-rate/"
	prefixRun       = "respond/playbooks-runs/"
	maxPutRetries   = 16
	playbookTimeFmt = time.RFC3339Nano
)

// Playbook is a parsed playbook.
type Playbook struct {
	Name        string
	Description string
	Mode        string // ModeEnforce or ModeSimulate
	Enabled     bool
	On          Match
	Actions     []Action
	// ActionsPerHour bounds the actions other than notify it takes in
	// an hour; beyond it, it only notifies.
	ActionsPerHour int
}

// Match selects the alerts a playbook acts on: an alert matches when every
// non-empty filter does (each filter: any of its values).
type Match struct {
	Rules []string // rule ids
	Tags  []string
	Level string   // at least
	Hosts []string // globs (path.Match) of host names
	Zones []string // zones of the alert's hosts
}

// Action is one step of a playbook.
type Action struct {
	Kind     string        // ActionBan …
	Duration time.Duration // ban, quarantine
	Approval bool          // ban, quarantine: the decision waits for approval
	Reason   string        // ban, quarantine: the decision's reason ("" : from the alert)
	Zone     string        // ban: the decision's zone ("": everywhere)
	Sink     string        // notify: the notifier's name
	Severity string        // incident
	Window   time.Duration // incident: attach to an open one of the same host or rule within it
	Line     int           // the action's line in the YAML
}

// ParseError is a playbook that does not parse: its message names the
// line and the field.
type ParseError struct {
	Line  int
	Field string
	Msg   string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("playbook line %d: %s: %s", e.Line, e.Field, e.Msg)
	}
	return fmt.Sprintf("playbook: %s: %s", e.Field, e.Msg)
}

func perr(n *yaml.Node, field, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &ParseError{Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

var validPlaybookName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Parse reads a playbook's YAML strictly. sinkExists, if not nil, says
// whether a notifier exists; a notify action naming one that does not is
// an error. Errors are *ParseError.
func Parse(src []byte, sinkExists func(name string) bool) (*Playbook, error) {
	if len(src) > MaxPlaybookBytes {
		return nil, &ParseError{Field: "playbook", Msg: fmt.Sprintf("%d bytes, more than %d", len(src), MaxPlaybookBytes)}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&doc); err != nil {
		return nil, yamlErr(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, perr(&extra, "playbook", "one playbook per document; a second YAML document starts here")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, perr(&doc, "playbook", "want a mapping")
	}
	root := doc.Content[0]
	p := &Playbook{Mode: ModeEnforce, Enabled: true, ActionsPerHour: DefaultActionsPerHour}
	seenActions := false
	err := eachKey(root, "playbook", func(key string, k, v *yaml.Node) error {
		var err error
		switch key {
		case "name":
			p.Name, err = scalar(v, "name")
			if err == nil && !validPlaybookName.MatchString(p.Name) {
				err = perr(v, "name", "%q: want 1 to 128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit", p.Name)
			}
		case "description":
			p.Description, err = scalar(v, "description")
			if err == nil && len(p.Description) > maxDescription {
				err = perr(v, "description", "more than %d bytes", maxDescription)
			}
		case "mode":
			p.Mode, err = scalar(v, "mode")
			if err == nil && p.Mode != ModeEnforce && p.Mode != ModeSimulate {
				err = perr(v, "mode", "%q: want enforce or simulate", p.Mode)
			}
		case "enabled":
			p.Enabled, err = boolean(v, "enabled")
		case "on":
			p.On, err = parseMatch(v)
		case "actions":
			seenActions = true
			p.Actions, err = parseActions(v, sinkExists)
		case "limits":
			err = eachKey(v, "limits", func(key string, k, v *yaml.Node) error {
				if key != "actions_per_hour" {
					return perr(k, "limits."+key, "unknown key (want actions_per_hour)")
				}
				n, err := integer(v, "limits.actions_per_hour")
				if err == nil && (n < 1 || n > MaxActionsPerHour) {
					err = perr(v, "limits.actions_per_hour", "%d: want 1 to %d", n, MaxActionsPerHour)
				}
				p.ActionsPerHour = n
				return err
			})
		default:
			err = perr(k, key, "unknown key (want name, description, mode, enabled, on, actions, limits)")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	switch {
	case p.Name == "":
		return nil, perr(root, "name", "required")
	case !seenActions || len(p.Actions) == 0:
		return nil, perr(root, "actions", "required: at least one of ban, quarantine, revoke, notify, incident")
	}
	return p, nil
}

// yamlErr turns a YAML syntax error into a ParseError (yaml.v3 writes
// "yaml: line N: ..." itself).
func yamlErr(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ":"); i > 0 {
			if _, serr := fmt.Sscanf(rest[:i], "%d", &line); serr == nil {
				msg = strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return &ParseError{Line: line, Field: "yaml", Msg: msg}
}

// eachKey calls fn for each key of mapping n in order, refusing a node
// that is not a mapping, a key that is not a string and a repeated key.
func eachKey(n *yaml.Node, field string, fn func(key string, k, v *yaml.Node) error) error {
	if n.Kind == yaml.AliasNode {
		return perr(n, field, "aliases are not supported")
	}
	if n.Kind != yaml.MappingNode {
		return perr(n, field, "want a mapping")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
			return perr(k, field, "keys must be plain strings")
		}
		if seen[k.Value] {
			return perr(k, join(field, k.Value), "repeated key")
		}
		seen[k.Value] = true
		if v.Kind == yaml.AliasNode {
			return perr(v, join(field, k.Value), "aliases are not supported")
		}
		if err := fn(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

func join(field, key string) string {
	if field == "playbook" {
		return key
	}
	return field + "." + key
}

func scalar(n *yaml.Node, field string) (string, error) {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float" && n.Tag != "!!bool") {
		return "", perr(n, field, "want a string")
	}
	return n.Value, nil
}

func boolean(n *yaml.Node, field string) (bool, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		return false, perr(n, field, "want true or false")
	}
	return n.Value == "true", nil
}

func integer(n *yaml.Node, field string) (int, error) {
	var v int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		return 0, perr(n, field, "want an integer")
	}
	return v, nil
}

func duration(n *yaml.Node, field string) (time.Duration, error) {
	s, err := scalar(n, field)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, perr(n, field, "%q: want a duration such as 1h or 30m", s)
	case d <= 0:
		return 0, perr(n, field, "%q: must be more than zero", s)
	case d > maxActionDuration:
		return 0, perr(n, field, "%q: at most %s", s, maxActionDuration)
	}
	return d, nil
}

// list reads a sequence of strings, or one string.
func list(n *yaml.Node, field string) ([]string, error) {
	if n.Kind == yaml.ScalarNode {
		s, err := scalar(n, field)
		if err != nil || s == "" {
			return nil, perr(n, field, "want a list of strings")
		}
		return []string{s}, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, perr(n, field, "want a list of strings")
	}
	if len(n.Content) > maxFilterValues {
		return nil, perr(n, field, "%d values, more than %d", len(n.Content), maxFilterValues)
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		s, err := scalar(c, field)
		if err != nil || s == "" {
			return nil, perr(c, field, "want a non-empty string")
		}
		out = append(out, s)
	}
	return out, nil
}

func parseMatch(n *yaml.Node) (Match, error) {
	var m Match
	err := eachKey(n, "on", func(key string, k, v *yaml.Node) error {
		var err error
		field := "on." + key
		switch key {
		case "rules":
			m.Rules, err = list(v, field)
		case "tags":
			m.Tags, err = list(v, field)
		case "level":
			m.Level, err = scalar(v, field)
			if err == nil && detect.LevelRank(m.Level) == 0 {
				err = perr(v, field, "%q: want informational, low, medium, high or critical", m.Level)
			}
		case "hosts":
			m.Hosts, err = list(v, field)
			for i, g := range m.Hosts {
				if _, merr := path.Match(g, ""); merr != nil {
					return perr(v.Content[min(i, len(v.Content)-1)], field, "%q: not a valid glob", g)
				}
			}
		case "zones":
			m.Zones, err = list(v, field)
		default:
			err = perr(k, field, "unknown key (want rules, tags, level, hosts, zones)")
		}
		return err
	})
	return m, err
}

func parseActions(n *yaml.Node, sinkExists func(string) bool) ([]Action, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, perr(n, "actions", "want a list of actions")
	}
	if len(n.Content) > MaxPlaybookActions {
		return nil, perr(n, "actions", "%d actions, more than %d", len(n.Content), MaxPlaybookActions)
	}
	var out []Action
	for i, item := range n.Content {
		field := fmt.Sprintf("actions[%d]", i)
		if item.Kind != yaml.MappingNode || len(item.Content) != 2 {
			return nil, perr(item, field, "want one of ban, quarantine, revoke, notify, incident with its settings ({} for none)")
		}
		k, v := item.Content[0], item.Content[1]
		a := Action{Kind: k.Value, Line: k.Line}
		field += "." + k.Value
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			v = &yaml.Node{Kind: yaml.MappingNode, Line: v.Line}
		}
		var allowed string
		switch a.Kind {
		case ActionBan:
			allowed = "duration, approval, reason, zone"
		case ActionQuarantine:
			allowed = "duration, approval, reason"
		case ActionRevoke:
			allowed = "none"
		case ActionNotify:
			allowed = "sink"
		case ActionIncident:
			allowed = "open, severity, window"
		default:
			return nil, perr(k, field, "unknown action (want ban, quarantine, revoke, notify or incident)")
		}
		err := eachKey(v, field, func(key string, kk, vv *yaml.Node) error {
			var err error
			f := field + "." + key
			if !slices.Contains(strings.Split(allowed, ", "), key) {
				return perr(kk, f, "unknown key (%s takes: %s)", a.Kind, allowed)
			}
			switch key {
			case "duration":
				a.Duration, err = duration(vv, f)
			case "approval":
				var s string
				s, err = scalar(vv, f)
				switch {
				case err != nil:
				case s == "required":
					a.Approval = true
				case s == "none":
				default:
					err = perr(vv, f, "%q: want required or none", s)
				}
			case "reason":
				a.Reason, err = scalar(vv, f)
				if err == nil && len(a.Reason) > maxDescription {
					err = perr(vv, f, "more than %d bytes", maxDescription)
				}
			case "zone":
				a.Zone, err = scalar(vv, f)
			case "sink":
				a.Sink, err = scalar(vv, f)
				if err == nil && sinkExists != nil && !sinkExists(a.Sink) {
					err = perr(vv, f, "notifier %q does not exist (see warden notify list)", a.Sink)
				}
			case "open":
				var open bool
				open, err = boolean(vv, f)
				if err == nil && !open {
					err = perr(vv, f, "only true is supported: the action opens an incident or attaches to an open one")
				}
			case "severity":
				a.Severity, err = scalar(vv, f)
				if err == nil && detect.LevelRank(a.Severity) == 0 {
					err = perr(vv, f, "%q: want informational, low, medium, high or critical", a.Severity)
				}
			case "window":
				a.Window, err = duration(vv, f)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		switch {
		case (a.Kind == ActionBan || a.Kind == ActionQuarantine) && a.Duration == 0:
			return nil, perr(k, field+".duration", "required")
		case a.Kind == ActionNotify && a.Sink == "":
			return nil, perr(k, field+".sink", "required: the name of a notifier")
		}
		out = append(out, a)
	}
	return out, nil
}

// Matches reports whether alert al (its hosts in zones zoneOf gives)
// passes m. zoneOf may be nil when m has no zones.
func (m Match) Matches(al *detect.Alert, zoneOf func(host string) string) bool {
	if len(m.Rules) > 0 && !slices.Contains(m.Rules, al.RuleID) {
		return false
	}
	if len(m.Tags) > 0 && !slices.ContainsFunc(m.Tags, func(t string) bool { return slices.Contains(al.Tags, t) }) {
		return false
	}
	if m.Level != "" && detect.LevelRank(al.Level) < detect.LevelRank(m.Level) {
		return false
	}
	if len(m.Hosts) > 0 && !slices.ContainsFunc(al.Hosts, func(h string) bool {
		return slices.ContainsFunc(m.Hosts, func(g string) bool { ok, _ := path.Match(g, h); return ok })
	}) {
		return false
	}
	if len(m.Zones) > 0 && (zoneOf == nil || !slices.ContainsFunc(al.Hosts, func(h string) bool {
		z := zoneOf(h)
		return z != "" && slices.Contains(m.Zones, z)
	})) {
		return false
	}
	return true
}

//go:embed builtin/ssh-brute-force.yml
var builtinSSH []byte

// Builtin returns the YAML of the built-in playbook: SSH brute force (the
// built-in Sigma rule 67e88380-… "SSH brute force") → ban the source for
// an hour and open an incident.
func Builtin() []byte { return slices.Clone(builtinSSH) }

// PlaybookRecord is a stored playbook: its YAML as it was put and what
// Warden read from it (the wire type of pkg/client).
type PlaybookRecord = client.Playbook

// SinkLister lists the notifiers a notify action may name
// (*detect.Notifiers).
type SinkLister interface {
	List(ctx context.Context) ([]detect.Notifier, error)
}

var _ SinkLister = (*detect.Notifiers)(nil)

// Playbooks stores playbooks. Safe for concurrent use.
type Playbooks struct {
	st    Storage
	sinks SinkLister
	now   func() time.Time
}

// NewPlaybooks returns the playbooks service; now may be nil (time.Now).
func NewPlaybooks(st Storage, sinks SinkLister, now func() time.Time) *Playbooks {
	if now == nil {
		now = time.Now
	}
	return &Playbooks{st: st, sinks: sinks, now: now}
}

// Put parses src and stores it as the next version of the playbook it
// names, owned by owner. A playbook that does not parse, or whose notify
// action names a notifier that does not exist, is errs.Invalid naming the
// YAML line and the field; nothing is stored then.
func (s *Playbooks) Put(ctx context.Context, src []byte, owner string) (PlaybookRecord, error) {
	if len(bytes.TrimSpace(src)) == 0 {
		return PlaybookRecord{}, errs.E(errs.Invalid, "body: the playbook's YAML is required")
	}
	exists, err := s.sinkSet(ctx)
	if err != nil {
		return PlaybookRecord{}, err
	}
	p, err := Parse(src, exists)
	if err != nil {
		return PlaybookRecord{}, errs.Wrap(errs.Invalid, err, "playbook refused: %s", err.Error())
	}
	for attempt := 0; ; attempt++ {
		old, ver, err := s.get(ctx, p.Name)
		if err != nil {
			return PlaybookRecord{}, err
		}
		now := s.now().UTC().Format(playbookTimeFmt)
		rec := PlaybookRecord{Name: p.Name, Description: p.Description, Mode: p.Mode, Enabled: p.Enabled, Owner: owner,
			Version: 1, CreatedTime: now, UpdatedTime: now, YAML: string(src)}
		if old != nil {
			rec.Version, rec.CreatedTime = old.Version+1, old.CreatedTime
		}
		_, err = s.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: prefixPlaybook + p.Name, Version: ver}},
			Ops: []kv.Op{{Type: kv.OpPut, Key: prefixPlaybook + p.Name, Value: playbookJSON(rec)}}})
		if err == nil {
			return rec, nil
		}
		if !errs.Is(err, errs.Conflict) || attempt >= maxPutRetries {
			return PlaybookRecord{}, err
		}
	}
}

func (s *Playbooks) sinkSet(ctx context.Context) (func(string) bool, error) {
	if s.sinks == nil {
		return func(string) bool { return false }, nil
	}
	ns, err := s.sinks.List(ctx)
	if err != nil {
		return nil, err
	}
	return func(name string) bool {
		return slices.ContainsFunc(ns, func(n detect.Notifier) bool { return n.Name == name })
	}, nil
}

func checkPlaybookName(name string) error {
	if !validPlaybookName.MatchString(name) {
		return errs.E(errs.Invalid, "playbook name %q: want 1 to 128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit", name)
	}
	return nil
}

func (s *Playbooks) get(ctx context.Context, name string) (*PlaybookRecord, uint64, error) {
	e, err := s.st.Get(ctx, prefixPlaybook+name)
	if errs.Is(err, errs.NotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var rec PlaybookRecord
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return nil, 0, fmt.Errorf("respond: decode playbook %q: %w", name, err)
	}
	return &rec, e.Version, nil
}

// Get returns playbook name with its YAML. errs.NotFound if absent.
func (s *Playbooks) Get(ctx context.Context, name string) (PlaybookRecord, error) {
	if err := checkPlaybookName(name); err != nil {
		return PlaybookRecord{}, err
	}
	rec, _, err := s.get(ctx, name)
	if err != nil {
		return PlaybookRecord{}, err
	}
	if rec == nil {
		return PlaybookRecord{}, errs.E(errs.NotFound, "playbook %q not found", name)
	}
	return *rec, nil
}

// List returns every playbook without its YAML, sorted by name.
func (s *Playbooks) List(ctx context.Context) ([]PlaybookRecord, error) {
	recs, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	for i := range recs {
		recs[i].YAML = ""
	}
	return recs, nil
}

// all returns every playbook with its YAML, sorted by name.
func (s *Playbooks) all(ctx context.Context) ([]PlaybookRecord, error) {
	ents, err := s.st.List(ctx, prefixPlaybook, 0)
	if err != nil {
		return nil, err
	}
	out := make([]PlaybookRecord, 0, len(ents))
	for _, e := range ents {
		var rec PlaybookRecord
		if err := json.Unmarshal(e.Value, &rec); err != nil {
			return nil, fmt.Errorf("respond: decode playbook %s: %w", e.Key, err)
		}
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete removes playbook name. errs.NotFound if absent.
func (s *Playbooks) Delete(ctx context.Context, name string) error {
	if err := checkPlaybookName(name); err != nil {
		return err
	}
	rec, ver, err := s.get(ctx, name)
	if err != nil {
		return err
	}
	if rec == nil {
		return errs.E(errs.NotFound, "playbook %q not found", name)
	}
	_, err = s.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: prefixPlaybook + name, Version: ver}},
		Ops: []kv.Op{{Type: kv.OpDelete, Key: prefixPlaybook + name}}})
	return err
}

func playbookJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("respond: marshal: " + err.Error()) // only plain structs are marshaled
	}
	return b
}
