package respond

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store/kv"
	"github.com/warden-sec/warden/pkg/client"
)

// Incident statuses, in the order an incident usually goes through them.
const (
	StatusNew       = "new"
	StatusTriaged   = "triaged"
	StatusContained = "contained"
	StatusResolved  = "resolved"
	StatusClosed    = "closed"
)

// Timeline item kinds.
const (
	KindCreated  = "created"  // text: the title; ref: the initial severity
	KindAlert    = "alert"    // ref: the alert id; host, rule: the alert's
	KindDecision = "decision" // ref: the decision id
	KindStatus   = "status"   // ref: the new status; text: a comment
	KindComment  = "comment"  // text: the comment
	KindAssign   = "assign"   // ref: the new assignee ("" unassigns)
	KindSeverity = "severity" // ref: the new severity; text: a comment
)

// ItemHashName is the name under which a change's audit record carries
// the hash of the one timeline item it adds; a change that adds several
// names each "incident-item.<seq>" (ItemHashNames).
const ItemHashName = "incident-item"

// Bounds of one incident.
const (
	MaxTitleLen    = 256
	MaxTextLen     = 4096
	MaxAssigneeLen = 256
	MaxTimeline    = 2000
	// DefaultWindow is how far back OpenOrAttach looks for an incident of
	// the same host or rule when Attach.Window is 0.
	DefaultWindow = time.Hour
)

const prefixIncident = "respond/incidents/"

var (
	statuses   = []string{StatusNew, StatusTriaged, StatusContained, StatusResolved, StatusClosed}
	severities = []string{"informational", "low", "medium", "high", "critical"}
	kinds      = []string{KindCreated, KindAlert, KindDecision, KindStatus, KindComment, KindAssign, KindSeverity}
)

// Incident and Item are the wire types of pkg/client: the API, the store
// and reports hold the same JSON. Every field of an incident but ID and
// Timeline is derived from its timeline (Derive): the timeline is the
// record, and the header only sums it up, so a report's header is checked
// against its proven items. An item's hash (ItemHash) rides in the audit
// record of the change that added it; its random Salt keeps that public
// hash from confirming a guess of its content.
type (
	Incident = client.Incident
	Item     = client.IncidentItem
)

// CanonicalItem returns the bytes ItemHash hashes: the item's members but
// raft_index, in ascending order of their names, no white space, strings
// escaped as audit entries escape theirs (RFC 8785), seq in decimal. For
// seq below 2^53 this is the item's RFC 8785 (JCS) form.
func CanonicalItem(it Item) []byte {
	b := make([]byte, 0, 256)
	str := func(name, v string) {
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
		b = audit.AppendJSONString(b, v)
		b = append(b, ',')
	}
	b = append(b, '{')
	str("actor", it.Actor)
	str("host", it.Host)
	str("incident", it.Incident)
	str("kind", it.Kind)
	str("ref", it.Ref)
	str("rule", it.Rule)
	str("salt", it.Salt)
	b = append(b, `"seq":`...)
	b = strconv.AppendUint(b, it.Seq, 10)
	b = append(b, ',')
	str("status", it.Status)
	str("text", it.Text)
	str("time", it.Time)
	b[len(b)-1] = '}'
	return b
}

// ItemHash is the hash of an item in an audit record: "sha256:" and the
// lower-case hex SHA-256 of its CanonicalItem bytes.
func ItemHash(it Item) string {
	h := sha256.Sum256(CanonicalItem(it))
	return "sha256:" + hex.EncodeToString(h[:])
}

// ItemHashNames returns the audit hashes of the items one change adds:
// {"incident-item": hash} for one item, {"incident-item.<seq>": hash, ...}
// for several.
func ItemHashNames(items []Item) map[string]string {
	out := make(map[string]string, len(items))
	for _, it := range items {
		name := ItemHashName
		if len(items) > 1 {
			name += "." + strconv.FormatUint(it.Seq, 10)
		}
		out[name] = ItemHash(it)
	}
	return out
}

// PendingHashes returns the audit hashes of the items of inc that its
// pending change adds (those without a Raft index yet), for the record
// of the transaction that commits it (see OpenOrAttach).
func PendingHashes(inc Incident) map[string]string {
	var items []Item
	for _, it := range inc.Timeline {
		if it.RaftIndex == 0 {
			items = append(items, it)
		}
	}
	return ItemHashNames(items)
}

// Derive computes an incident's header from its timeline, and checks the
// timeline's rules: seq 1, 2, ...; one incident id; the first item, and
// only it, "created"; known kinds, statuses and severities; canonical
// times; each item's status the one before it or, for a status item, its
// ref. The error names the item and the rule.
func Derive(timeline []Item) (Incident, error) {
	if len(timeline) == 0 {
		return Incident{}, errs.E(errs.Invalid, "timeline: empty")
	}
	inc := Incident{ID: timeline[0].Incident, Alerts: []string{}, Decisions: []string{}, Hosts: []string{}, Rules: []string{}}
	bad := func(i int, format string, args ...any) error {
		return errs.E(errs.Invalid, "timeline item %d: %s", i+1, fmt.Sprintf(format, args...))
	}
	if err := checkIncidentID(inc.ID); err != nil {
		return Incident{}, bad(0, "%v", err)
	}
	status := ""
	for i, it := range timeline {
		if it.Seq != uint64(i+1) {
			return Incident{}, bad(i, "seq %d, want %d", it.Seq, i+1)
		}
		if it.Incident != inc.ID {
			return Incident{}, bad(i, "incident %q, want %q", it.Incident, inc.ID)
		}
		if !slices.Contains(kinds, it.Kind) {
			return Incident{}, bad(i, "kind %q is not one of %s", it.Kind, strings.Join(kinds, ", "))
		}
		if (i == 0) != (it.Kind == KindCreated) {
			return Incident{}, bad(i, "kind %q: the first item, and only it, is %q", it.Kind, KindCreated)
		}
		t, err := time.Parse(time.RFC3339Nano, it.Time)
		if err != nil || audit.FormatTime(t) != it.Time {
			return Incident{}, bad(i, "time %q is not RFC 3339 UTC in canonical form", it.Time)
		}
		if len(it.Salt) != 32 || strings.Trim(it.Salt, "0123456789abcdef") != "" {
			return Incident{}, bad(i, "salt: want 32 lower-case hex digits")
		}
		if (it.Host != "" || it.Rule != "") && it.Kind != KindAlert {
			return Incident{}, bad(i, "host and rule belong to alert items only")
		}
		want := status
		switch it.Kind {
		case KindCreated:
			want = StatusNew
			if !slices.Contains(severities, it.Ref) {
				return Incident{}, bad(i, "severity %q is not one of %s", it.Ref, strings.Join(severities, ", "))
			}
			inc.Title, inc.Severity, inc.CreatedBy, inc.CreatedTime = it.Text, it.Ref, it.Actor, it.Time
		case KindStatus:
			want = it.Ref
		case KindSeverity:
			if !slices.Contains(severities, it.Ref) {
				return Incident{}, bad(i, "severity %q is not one of %s", it.Ref, strings.Join(severities, ", "))
			}
			inc.Severity = it.Ref
		case KindAssign:
			inc.Assignee = it.Ref
		case KindAlert:
			inc.Alerts = appendNew(inc.Alerts, it.Ref)
			inc.Hosts = appendNew(inc.Hosts, it.Host)
			inc.Rules = appendNew(inc.Rules, it.Rule)
		case KindDecision:
			inc.Decisions = appendNew(inc.Decisions, it.Ref)
		}
		if !slices.Contains(statuses, want) {
			return Incident{}, bad(i, "status %q is not one of %s", want, strings.Join(statuses, ", "))
		}
		if it.Status != want {
			return Incident{}, bad(i, "status %q, want %q", it.Status, want)
		}
		status = want
		inc.UpdatedTime = it.Time
		inc.Version = max(inc.Version, it.RaftIndex)
	}
	inc.Status = status
	inc.Timeline = timeline
	return inc, nil
}

func appendNew(s []string, v string) []string {
	if v == "" || slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// Incidents stores incidents under respond/incidents/<id>. Safe for
// concurrent use; changes made through one Incidents are serialized, and
// a change that meets a concurrent one made elsewhere is refused with
// errs.Conflict (its audit record already carries the hashes of the items
// it meant to add, so it is not retried with others).
type Incidents struct {
	st    Storage
	audit Auditor
	node  string
	now   func() time.Time
	rand  io.Reader
	mu    sync.Mutex
}

// NewIncidents returns the incidents service over st. node names this
// server in the records of the changes it makes on its own; now (nil:
// time.Now) and random (nil: crypto/rand) are the clock and the source of
// ids and salts.
func NewIncidents(st Storage, a Auditor, node string, now func() time.Time, random io.Reader) *Incidents {
	if now == nil {
		now = time.Now
	}
	if random == nil {
		random = rand.Reader
	}
	return &Incidents{st: st, audit: a, node: node, now: now, rand: random}
}

func checkIncidentID(id string) error {
	hexPart, ok := strings.CutPrefix(id, "inc-")
	if !ok || len(hexPart) != 16 || strings.Trim(hexPart, "0123456789abcdef") != "" {
		return errs.E(errs.Invalid, "incident id %q: want inc- and 16 lower-case hex digits", id)
	}
	return nil
}

func (s *Incidents) random(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("respond: randomness: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// read returns the stored incident (nil if absent) and its version, its
// items' Raft indexes filled in: those still 0 were added by the last
// change, whose index is the key's version.
func (s *Incidents) read(ctx context.Context, id string) (*Incident, uint64, error) {
	e, err := s.st.Get(ctx, prefixIncident+id)
	if errs.Is(err, errs.NotFound) || errors.Is(err, kv.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	inc, err := decodeIncident(e)
	if err != nil {
		return nil, 0, err
	}
	return inc, e.Version, nil
}

func decodeIncident(e kv.Entry) (*Incident, error) {
	var inc Incident
	if err := json.Unmarshal(e.Value, &inc); err != nil {
		return nil, fmt.Errorf("respond: decode incident %s: %w", e.Key, err)
	}
	for i := range inc.Timeline {
		if inc.Timeline[i].RaftIndex == 0 {
			inc.Timeline[i].RaftIndex = e.Version
		}
	}
	inc.Version = e.Version
	return &inc, nil
}

// Get returns incident id. errs.NotFound if absent.
func (s *Incidents) Get(ctx context.Context, id string) (Incident, error) {
	if err := checkIncidentID(id); err != nil {
		return Incident{}, err
	}
	inc, _, err := s.read(ctx, id)
	if err != nil {
		return Incident{}, err
	}
	if inc == nil {
		return Incident{}, errs.E(errs.NotFound, "incident %s not found", id)
	}
	return *inc, nil
}

// Filter selects incidents for List: comma-separated statuses and
// severities; empty selects all.
type Filter struct {
	Status, Severity string
}

// List returns the incidents f selects, newest first (created_time, then
// id), without their timelines.
func (s *Incidents) List(ctx context.Context, f Filter) ([]Incident, error) {
	st, err := splitChecked("status", f.Status, statuses)
	if err != nil {
		return nil, err
	}
	sev, err := splitChecked("severity", f.Severity, severities)
	if err != nil {
		return nil, err
	}
	all, err := s.list(ctx)
	if err != nil {
		return nil, err
	}
	out := []Incident{}
	for _, inc := range all {
		if (len(st) > 0 && !slices.Contains(st, inc.Status)) || (len(sev) > 0 && !slices.Contains(sev, inc.Severity)) {
			continue
		}
		inc.Timeline = nil
		out = append(out, inc)
	}
	return out, nil
}

func (s *Incidents) list(ctx context.Context) ([]Incident, error) {
	ents, err := s.st.List(ctx, prefixIncident, 0)
	if err != nil {
		return nil, err
	}
	out := make([]Incident, 0, len(ents))
	for _, e := range ents {
		inc, err := decodeIncident(e)
		if err != nil {
			return nil, err
		}
		out = append(out, *inc)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CreatedTime != out[j].CreatedTime {
			return later(out[i].CreatedTime, out[j].CreatedTime)
		}
		return out[i].ID > out[j].ID
	})
	return out, nil
}

// later reports whether RFC 3339 time a is after b.
func later(a, b string) bool {
	ta, _ := time.Parse(time.RFC3339Nano, a)
	tb, _ := time.Parse(time.RFC3339Nano, b)
	return ta.After(tb)
}

func splitChecked(field, v string, allowed []string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	parts := strings.Split(v, ",")
	for _, p := range parts {
		if !slices.Contains(allowed, p) {
			return nil, errs.E(errs.Invalid, "%s %q: want %s", field, p, strings.Join(allowed, ", "))
		}
	}
	return parts, nil
}

// checkText refuses a string field that is too long, not UTF-8, or (when
// oneLine) holds a control character.
func checkText(field, v string, maxLen int, oneLine bool) error {
	switch {
	case len(v) > maxLen:
		return errs.E(errs.Invalid, "%s: %d bytes, more than %d", field, len(v), maxLen)
	case !utf8.ValidString(v):
		return errs.E(errs.Invalid, "%s: not valid UTF-8", field)
	case oneLine && strings.ContainsFunc(v, unicode.IsControl):
		return errs.E(errs.Invalid, "%s: holds a control character", field)
	}
	return nil
}

func checkRef(field, id string) error {
	if id == "" || len(id) > 128 || strings.ContainsFunc(id, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.')
	}) {
		return errs.E(errs.Invalid, "%s %q: want 1 to 128 characters of A-Z a-z 0-9 - _ .", field, id)
	}
	return nil
}

// builder adds items to an incident being changed.
type builder struct {
	s     *Incidents
	inc   *Incident
	now   string
	actor string
	added []Item
}

func (b *builder) add(kind, ref, text string) error {
	if len(b.inc.Timeline) >= MaxTimeline {
		return errs.E(errs.Conflict, "incident %s has %d timeline items, the most it can hold", b.inc.ID, MaxTimeline)
	}
	salt, err := b.s.random(16)
	if err != nil {
		return err
	}
	status := b.inc.Status
	switch kind {
	case KindCreated:
		status = StatusNew
	case KindStatus:
		status = ref
	}
	it := Item{Incident: b.inc.ID, Seq: uint64(len(b.inc.Timeline) + 1), Time: b.now, Actor: b.actor, Kind: kind,
		Ref: ref, Text: text, Status: status, Salt: salt}
	return b.push(it)
}

func (b *builder) addAlert(id, host, rule string) error {
	if err := b.add(KindAlert, id, ""); err != nil {
		return err
	}
	last := &b.inc.Timeline[len(b.inc.Timeline)-1]
	last.Host, last.Rule = host, rule
	b.added[len(b.added)-1] = *last
	return b.rederive()
}

func (b *builder) push(it Item) error {
	b.inc.Timeline = append(b.inc.Timeline, it)
	b.added = append(b.added, it)
	return b.rederive()
}

func (b *builder) rederive() error {
	d, err := Derive(b.inc.Timeline)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "respond: incident %s: %v", b.inc.ID, err)
	}
	*b.inc = d
	return nil
}

// prepare reads incident id ("" makes a new one) and returns a builder on
// it with its version (0 for a new one).
func (s *Incidents) prepare(ctx context.Context, id, actor string, now time.Time) (*builder, uint64, error) {
	b := &builder{s: s, now: audit.FormatTime(now), actor: actor}
	if id == "" {
		hexID, err := s.random(8)
		if err != nil {
			return nil, 0, err
		}
		b.inc = &Incident{ID: "inc-" + hexID}
		return b, 0, nil
	}
	if err := checkIncidentID(id); err != nil {
		return nil, 0, err
	}
	inc, ver, err := s.read(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	if inc == nil {
		return nil, 0, errs.E(errs.NotFound, "incident %s not found", id)
	}
	b.inc = inc
	return b, ver, nil
}

// ops returns what stores the builder's incident: its JSON with the items
// of this change still without a Raft index.
func (b *builder) ops(ver uint64) ([]kv.Op, []kv.Cond, error) {
	stored := *b.inc
	stored.Version = 0
	stored.Timeline = slices.Clone(b.inc.Timeline)
	n := len(stored.Timeline) - len(b.added)
	for i := n; i < len(stored.Timeline); i++ {
		stored.Timeline[i].RaftIndex = 0
	}
	v, err := json.Marshal(stored)
	if err != nil {
		return nil, nil, err
	}
	if len(v) > kv.MaxTxnBytes/2 {
		return nil, nil, errs.E(errs.Conflict, "incident %s is too large to grow (%d bytes)", b.inc.ID, len(v))
	}
	key := prefixIncident + b.inc.ID
	return []kv.Op{{Type: kv.OpPut, Key: key, Value: v}}, []kv.Cond{{Key: key, Version: ver}}, nil
}

// commit stores the change with the request's audit record rec (whose
// hashes it sets; nil: the caller's context carries a record that needs
// none) and returns the incident as stored.
func (s *Incidents) commit(ctx context.Context, b *builder, ver uint64, rec *audit.Entry) (Incident, error) {
	if len(b.added) == 0 {
		return *b.inc, nil
	}
	ops, conds, err := b.ops(ver)
	if err != nil {
		return Incident{}, err
	}
	if rec != nil {
		if rec.Hashes == nil {
			rec.Hashes = map[string]string{}
		}
		for k, v := range ItemHashNames(b.added) {
			rec.Hashes[k] = v
		}
	}
	idx, err := s.st.Txn(ctx, kv.Txn{Conds: conds, Ops: ops})
	if errs.Is(err, errs.Conflict) {
		return Incident{}, errs.Wrap(errs.Conflict, err, "incident %s changed while this change was made; read it again and retry", b.inc.ID)
	}
	if err != nil {
		return Incident{}, err
	}
	for i := range b.inc.Timeline {
		if b.inc.Timeline[i].RaftIndex == 0 {
			b.inc.Timeline[i].RaftIndex = idx
		}
	}
	b.inc.Version = idx
	return *b.inc, nil
}

// checkAdditions checks the comment and the alert and decision ids of a
// create or an update.
func checkAdditions(comment string, alerts, decisions []string) error {
	if err := checkText("comment", comment, MaxTextLen, false); err != nil {
		return err
	}
	if len(alerts)+len(decisions) > 100 {
		return errs.E(errs.Invalid, "alerts, decisions: at most 100 together")
	}
	for _, a := range alerts {
		if err := checkRef("alerts", a); err != nil {
			return err
		}
	}
	for _, d := range decisions {
		if err := checkRef("decisions", d); err != nil {
			return err
		}
	}
	return nil
}

// attach adds an item for each alert and decision not attached yet.
func (b *builder) attach(alerts, decisions []string) error {
	for _, a := range alerts {
		if !slices.Contains(b.inc.Alerts, a) {
			if err := b.addAlert(a, "", ""); err != nil {
				return err
			}
		}
	}
	for _, d := range decisions {
		if !slices.Contains(b.inc.Decisions, d) {
			if err := b.add(KindDecision, d, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// CreateInput is an incident opened by hand (POST /v1/incidents).
type CreateInput struct {
	Title     string   `json:"title"`
	Severity  string   `json:"severity"`
	Assignee  string   `json:"assignee"`
	Comment   string   `json:"comment"`
	Alerts    []string `json:"alerts"`
	Decisions []string `json:"decisions"`
}

func checkSeverity(v string) error {
	if !slices.Contains(severities, v) {
		return errs.E(errs.Invalid, "severity %q: want %s", v, strings.Join(severities, ", "))
	}
	return nil
}

// Create opens an incident by hand: a "created" item, then an item for
// the assignee, each alert and decision and the comment given. by is the
// principal; rec is the request's audit record, which receives the
// items' hashes. Errors: errs.Invalid naming the field.
func (s *Incidents) Create(ctx context.Context, in CreateInput, by string, rec *audit.Entry) (Incident, error) {
	if strings.TrimSpace(in.Title) == "" {
		return Incident{}, errs.E(errs.Invalid, "title: required")
	}
	if err := checkText("title", in.Title, MaxTitleLen, true); err != nil {
		return Incident{}, err
	}
	if in.Severity == "" {
		in.Severity = "medium"
	}
	if err := checkSeverity(in.Severity); err != nil {
		return Incident{}, err
	}
	if err := checkText("assignee", in.Assignee, MaxAssigneeLen, true); err != nil {
		return Incident{}, err
	}
	if err := checkAdditions(in.Comment, in.Alerts, in.Decisions); err != nil {
		return Incident{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _, err := s.prepare(ctx, "", by, s.now())
	if err != nil {
		return Incident{}, err
	}
	if err := b.add(KindCreated, in.Severity, in.Title); err != nil {
		return Incident{}, err
	}
	if in.Assignee != "" {
		if err := b.add(KindAssign, in.Assignee, ""); err != nil {
			return Incident{}, err
		}
	}
	if err := b.attach(in.Alerts, in.Decisions); err != nil {
		return Incident{}, err
	}
	if in.Comment != "" {
		if err := b.add(KindComment, "", in.Comment); err != nil {
			return Incident{}, err
		}
	}
	return s.commit(ctx, b, 0, rec)
}

// UpdateInput changes an incident (POST /v1/incidents/{id}): every field
// is optional (nil: unchanged); Comment goes with the status or severity
// item, or stands alone.
type UpdateInput struct {
	Status    *string  `json:"status"`
	Severity  *string  `json:"severity"`
	Assignee  *string  `json:"assignee"`
	Comment   string   `json:"comment"`
	Alerts    []string `json:"alerts"`
	Decisions []string `json:"decisions"`
}

// Update applies in to incident id: one item per field that changes
// (status, severity, assignee; alerts and decisions not attached yet),
// and the comment. A closed incident takes comments only (errs.Conflict
// otherwise). A change that changes nothing writes nothing.
func (s *Incidents) Update(ctx context.Context, id string, in UpdateInput, by string, rec *audit.Entry) (Incident, error) {
	if in.Status != nil && !slices.Contains(statuses, *in.Status) {
		return Incident{}, errs.E(errs.Invalid, "status %q: want %s", *in.Status, strings.Join(statuses, ", "))
	}
	if in.Severity != nil {
		if err := checkSeverity(*in.Severity); err != nil {
			return Incident{}, err
		}
	}
	if in.Assignee != nil {
		if err := checkText("assignee", *in.Assignee, MaxAssigneeLen, true); err != nil {
			return Incident{}, err
		}
	}
	if err := checkAdditions(in.Comment, in.Alerts, in.Decisions); err != nil {
		return Incident{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ver, err := s.prepare(ctx, id, by, s.now())
	if err != nil {
		return Incident{}, err
	}
	onlyComment := in.Status == nil && in.Severity == nil && in.Assignee == nil && len(in.Alerts) == 0 && len(in.Decisions) == 0
	if b.inc.Status == StatusClosed && !onlyComment {
		return Incident{}, errs.E(errs.Conflict, "incident %s is closed; it takes comments only", id)
	}
	comment := in.Comment
	if in.Status != nil && *in.Status != b.inc.Status {
		if err := b.add(KindStatus, *in.Status, comment); err != nil {
			return Incident{}, err
		}
		comment = ""
	}
	if in.Severity != nil && *in.Severity != b.inc.Severity {
		if err := b.add(KindSeverity, *in.Severity, comment); err != nil {
			return Incident{}, err
		}
		comment = ""
	}
	if in.Assignee != nil && *in.Assignee != b.inc.Assignee {
		if err := b.add(KindAssign, *in.Assignee, ""); err != nil {
			return Incident{}, err
		}
	}
	if err := b.attach(in.Alerts, in.Decisions); err != nil {
		return Incident{}, err
	}
	if comment != "" {
		if err := b.add(KindComment, "", comment); err != nil {
			return Incident{}, err
		}
	}
	return s.commit(ctx, b, ver, rec)
}

// Comment adds a comment to incident id (closed ones included).
func (s *Incidents) Comment(ctx context.Context, id, text, by string, rec *audit.Entry) (Incident, error) {
	if strings.TrimSpace(text) == "" {
		return Incident{}, errs.E(errs.Invalid, "comment: required")
	}
	return s.Update(ctx, id, UpdateInput{Comment: text}, by, rec)
}

// Close closes incident id with an optional comment; closing a closed
// incident adds the comment only.
func (s *Incidents) Close(ctx context.Context, id, comment, by string, rec *audit.Entry) (Incident, error) {
	st := StatusClosed
	inc, err := s.Get(ctx, id)
	if err != nil {
		return Incident{}, err
	}
	if inc.Status == StatusClosed {
		if comment == "" {
			return inc, nil
		}
		return s.Comment(ctx, id, comment, by, rec)
	}
	return s.Update(ctx, id, UpdateInput{Status: &st, Comment: comment}, by, rec)
}

// Attach asks for an item to be added to an incident: the one named, or
// an open one for the same host or rule within Window, or a new one.
type Attach struct {
	IncidentID             string // "": find an open one within Window, else open one
	Title, Severity, Actor string
	AlertID, DecisionID    string
	Host, RuleID           string
	Window                 time.Duration
	Now                    time.Time
}

// OpenOrAttach returns the operations and conditions that add the alert
// and decision of in to an incident, and the incident and item they write.
//
// The incident is in.IncidentID if set (errs.NotFound if absent,
// errs.Conflict if closed); else the open incident (new, triaged or
// contained) updated last among those with an alert of in.Host or of
// in.RuleID updated within in.Window (0: DefaultWindow) before in.Now
// (zero: now); else a new one, titled in.Title (default "<rule> on
// <host>") with in.Severity (default medium). The alert and the decision
// are added unless already attached; item is the last item added. When
// nothing is added (both attached already), ops is nil.
//
// The caller commits ops and conds in one transaction whose audit record
// (auditlog.SystemEntry, for the responder) carries PendingHashes(inc);
// on a conflict (errs.Conflict) it calls OpenOrAttach again with a new
// record, since the items (their seq, salt) change.
func (s *Incidents) OpenOrAttach(ctx context.Context, in Attach) (ops []kv.Op, conds []kv.Cond, inc Incident, item Item, err error) {
	if in.Now.IsZero() {
		in.Now = s.now()
	}
	if in.Window <= 0 {
		in.Window = DefaultWindow
	}
	if in.Severity == "" {
		in.Severity = "medium"
	}
	if err := checkSeverity(in.Severity); err != nil {
		return nil, nil, Incident{}, Item{}, err
	}
	if in.AlertID == "" && in.DecisionID == "" && in.IncidentID != "" {
		return nil, nil, Incident{}, Item{}, errs.E(errs.Invalid, "attach: neither an alert nor a decision")
	}
	actor := in.Actor
	if actor == "" {
		actor = "Server::" + strconv.Quote(s.node)
	}
	id := in.IncidentID
	if id == "" {
		found, err := s.findOpen(ctx, in)
		if err != nil {
			return nil, nil, Incident{}, Item{}, err
		}
		id = found
	}
	b, ver, err := s.prepare(ctx, id, actor, in.Now)
	if err != nil {
		return nil, nil, Incident{}, Item{}, err
	}
	if id == "" {
		title := in.Title
		if title == "" {
			title = strings.TrimSpace(strings.Join(nonEmpty(in.RuleID, "on", in.Host), " "))
		}
		if title == "" {
			title = "incident"
		}
		if len(title) > MaxTitleLen {
			title = title[:MaxTitleLen]
		}
		if err := checkText("title", title, MaxTitleLen, true); err != nil {
			return nil, nil, Incident{}, Item{}, err
		}
		if err := b.add(KindCreated, in.Severity, title); err != nil {
			return nil, nil, Incident{}, Item{}, err
		}
	} else if b.inc.Status == StatusClosed {
		return nil, nil, Incident{}, Item{}, errs.E(errs.Conflict, "incident %s is closed", id)
	}
	if in.AlertID != "" && !slices.Contains(b.inc.Alerts, in.AlertID) {
		if err := b.addAlert(in.AlertID, in.Host, in.RuleID); err != nil {
			return nil, nil, Incident{}, Item{}, err
		}
	}
	if in.DecisionID != "" && !slices.Contains(b.inc.Decisions, in.DecisionID) {
		if err := b.add(KindDecision, in.DecisionID, ""); err != nil {
			return nil, nil, Incident{}, Item{}, err
		}
	}
	if len(b.added) == 0 {
		return nil, nil, *b.inc, Item{}, nil
	}
	ops, conds, err = b.ops(ver)
	if err != nil {
		return nil, nil, Incident{}, Item{}, err
	}
	out := *b.inc
	out.Timeline = slices.Clone(b.inc.Timeline)
	n := len(out.Timeline) - len(b.added)
	for i := n; i < len(out.Timeline); i++ {
		out.Timeline[i].RaftIndex = 0
	}
	return ops, conds, out, out.Timeline[len(out.Timeline)-1], nil
}

// nonEmpty joins rule "on" host, leaving out what is missing.
func nonEmpty(rule, on, host string) []string {
	switch {
	case rule != "" && host != "":
		return []string{rule, on, host}
	case rule != "":
		return []string{rule}
	case host != "":
		return []string{host}
	}
	return nil
}

// findOpen returns the id of the open incident OpenOrAttach attaches to,
// or "".
func (s *Incidents) findOpen(ctx context.Context, in Attach) (string, error) {
	if in.Host == "" && in.RuleID == "" {
		return "", nil
	}
	all, err := s.list(ctx)
	if err != nil {
		return "", err
	}
	best, bestTime := "", time.Time{}
	for _, inc := range all {
		if inc.Status == StatusResolved || inc.Status == StatusClosed {
			continue
		}
		if !(in.Host != "" && slices.Contains(inc.Hosts, in.Host)) && !(in.RuleID != "" && slices.Contains(inc.Rules, in.RuleID)) {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, inc.UpdatedTime)
		if err != nil || t.Before(in.Now.Add(-in.Window)) {
			continue
		}
		if best == "" || t.After(bestTime) {
			best, bestTime = inc.ID, t
		}
	}
	return best, nil
}

// Record commits OpenOrAttach's change on its own, with a system audit
// record (action incidents.write) carrying the items' hashes: for
// callers outside a playbook's transaction.
func (s *Incidents) Record(ctx context.Context, in Attach) (Incident, error) {
	for attempt := 0; ; attempt++ {
		ops, conds, inc, _, err := s.OpenOrAttach(ctx, in)
		if err != nil || ops == nil {
			return inc, err
		}
		e := auditlog.SystemEntry(s.now(), s.node, "incidents.write", `System::"warden"`)
		e.Hashes = PendingHashes(inc)
		cctx, _ := s.audit.Pending(ctx, e)
		idx, err := s.st.Txn(cctx, kv.Txn{Conds: conds, Ops: ops})
		if err == nil {
			for i := range inc.Timeline {
				if inc.Timeline[i].RaftIndex == 0 {
					inc.Timeline[i].RaftIndex = idx
				}
			}
			inc.Version = idx
			return inc, nil
		}
		if !errs.Is(err, errs.Conflict) || attempt >= 16 {
			return Incident{}, err
		}
	}
}
