package respond

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/periodic"
	"github.com/warden-sec/warden/internal/store/kv"
	"github.com/warden-sec/warden/pkg/client"
)

// Decision and AllowEntry are the wire types of pkg/client: the API, the
// stream and the store hold the same JSON.
type (
	Decision   = client.DecisionRecord
	Target     = client.DecisionTarget
	AllowEntry = client.AllowEntry
)

// Decision types.
const (
	TypeBan        = "ban"
	TypeQuarantine = "quarantine"
)

// Keys. Everything of the response lives under "respond/".
const (
	prefixDecisions = "respond/decisions/"
	prefixAllow     = "respond/allow/"
	prefixOffenders = "respond/offenders/"
	keyHorizon      = "respond/horizon"
	prefixRevoked   = "pki/revoked/" // authority's revocations, streamed
	maxRetries      = 16
	maxReason       = 1024
	// maxOffenderBans is how many ban times an offender record keeps.
	maxOffenderBans = 16
)

// Defaults of Config.
const (
	DefaultEscalationWindow = 24 * time.Hour
	DefaultEscalationFactor = 2
	DefaultEscalationMax    = 168 * time.Hour
	// DefaultRetention is how long tombstones and expired decisions are
	// kept before the collector removes them (and raises the horizon).
	DefaultRetention = 24 * time.Hour
)

// Input is a decision as asked for (POST /v1/decisions, or a playbook).
type Input struct {
	Type      string `json:"type"`
	Target    Target `json:"target"`
	Duration  string `json:"duration"`
	Zone      string `json:"zone"`
	Reason    string `json:"reason"`
	Simulated bool   `json:"simulated"`
	AlertID   string `json:"alert_id"`
	// Set by the server, never from a request body.
	Origin          string `json:"-"` // "" means "manual"
	PendingApproval bool   `json:"-"`
}

// ServerAddr is an address of a server of the cluster: never banned.
type ServerAddr struct {
	Name string
	Addr netip.Addr
}

// Config configures Decisions. Zero fields take the defaults above.
type Config struct {
	Storage Storage
	Audit   Auditor
	// Node names this server in the records of the changes it makes on its
	// own (the collector).
	Node string
	Now  func() time.Time
	// NodeAddresses returns the addresses node name reported, or
	// errs.NotFound when no such node exists. Required for quarantines and
	// node entries of the never-block list.
	NodeAddresses func(ctx context.Context, name string) ([]string, error)
	// ServerAddrs returns the servers' own addresses (nil: none known).
	ServerAddrs func(ctx context.Context) []ServerAddr

	EscalationWindow time.Duration
	EscalationFactor float64
	EscalationMax    time.Duration
	// MaxPrefix4 and MaxPrefix6 are the widest ranges a ban may take.
	MaxPrefix4, MaxPrefix6 int
	Retention              time.Duration
}

// Decisions stores decisions and the never-block list. Safe for
// concurrent use.
type Decisions struct {
	cfg Config
}

// NewDecisions returns the decisions service.
func NewDecisions(cfg Config) *Decisions {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.EscalationWindow <= 0 {
		cfg.EscalationWindow = DefaultEscalationWindow
	}
	if cfg.EscalationFactor < 1 {
		cfg.EscalationFactor = DefaultEscalationFactor
	}
	if cfg.EscalationMax <= 0 {
		cfg.EscalationMax = DefaultEscalationMax
	}
	if cfg.MaxPrefix4 <= 0 {
		cfg.MaxPrefix4 = DefaultMaxPrefix4
	}
	if cfg.MaxPrefix6 <= 0 {
		cfg.MaxPrefix6 = DefaultMaxPrefix6
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.ServerAddrs == nil {
		cfg.ServerAddrs = func(context.Context) []ServerAddr { return nil }
	}
	return &Decisions{cfg: cfg}
}

// timeFormat is RFC 3339 UTC with a fixed nine-digit fraction, so that
// times sort as text.
const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

func rfc3339(t time.Time) string { return t.UTC().Format(timeFormat) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// Active reports whether d is in force at now: not deleted, not pending
// approval, and not expired. Simulated decisions are active (and
// streamed) but never enforced.
func Active(d Decision, now time.Time) bool {
	return !d.Deleted && !d.PendingApproval && now.Before(parseTime(d.ExpiresAt))
}

func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

var (
	decisionID = regexp.MustCompile(`^dec-[0-9a-f]{16}$`)
	allowID    = regexp.MustCompile(`^allow-[0-9a-f]{16}$`)
	alertIDRE  = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// offender is the record of the bans of one value.
type offender struct {
	Value string   `json:"value"`
	Bans  []string `json:"bans"` // RFC 3339 times, newest last
}

// Prepare validates in and returns the decision it would store, the
// operations and conditions that store it (with the offender record), or
// a 400 (errs.Invalid, naming the field) or 409 (errs.Conflict, naming the
// never-block entry or server it hits). by is the principal. Nothing is
// written: the caller commits the operations with an audit record, sets
// the decision's Revision to the commit's index, and on a conflict (the
// offender record changed) calls Prepare again, as Add does.
func (d *Decisions) Prepare(ctx context.Context, in Input, by string, now time.Time) (Decision, []kv.Op, []kv.Cond, error) {
	dec, err := d.validate(ctx, in, now)
	if err != nil {
		return Decision{}, nil, nil, err
	}
	if err := d.checkAllowed(ctx, &dec); err != nil {
		return Decision{}, nil, nil, err
	}
	dec.ID, dec.CreatedBy, dec.CreatedTime = newID("dec-"), by, rfc3339(now)
	dur, _ := time.ParseDuration(in.Duration)
	var ops []kv.Op
	var conds []kv.Cond
	if !dec.Simulated {
		// Repeat offenders: every earlier (enforced) ban of the same value
		// within the window doubles (by default) the duration, up to the cap.
		key := prefixOffenders + hex.EncodeToString([]byte(targetValue(dec.Target)))
		off := offender{Value: targetValue(dec.Target)}
		var ver uint64
		e, err := d.cfg.Storage.Get(ctx, key)
		switch {
		case err == nil:
			if err := json.Unmarshal(e.Value, &off); err != nil {
				return Decision{}, nil, nil, fmt.Errorf("respond: decode %s: %w", key, err)
			}
			ver = e.Version
		case !errs.Is(err, errs.NotFound):
			return Decision{}, nil, nil, err
		}
		for _, t := range off.Bans {
			if at := parseTime(t); !at.IsZero() && now.Sub(at) < d.cfg.EscalationWindow {
				dec.Escalation++
			}
		}
		dur = d.escalate(dur, dec.Escalation)
		off.Bans = append(off.Bans, rfc3339(now))
		if len(off.Bans) > maxOffenderBans {
			off.Bans = off.Bans[len(off.Bans)-maxOffenderBans:]
		}
		ob, _ := json.Marshal(off)
		ops = append(ops, kv.Op{Type: kv.OpPut, Key: key, Value: ob})
		conds = append(conds, kv.Cond{Key: key, Version: ver})
	}
	dec.Duration = dur.String()
	dec.ExpiresAt = rfc3339(now.Add(dur))
	b, _ := json.Marshal(dec)
	ops = append(ops, kv.Op{Type: kv.OpPut, Key: prefixDecisions + dec.ID, Value: b})
	conds = append(conds, kv.Cond{Key: prefixDecisions + dec.ID, Version: 0})
	return dec, ops, conds, nil
}

// escalate returns dur × factor^n, capped at the maximum (a requested
// duration longer than the cap is kept as asked).
func (d *Decisions) escalate(dur time.Duration, n int) time.Duration {
	if n == 0 {
		return dur
	}
	limit := max(d.cfg.EscalationMax, dur)
	f := float64(dur) * math.Pow(d.cfg.EscalationFactor, float64(n))
	if f >= float64(limit) || math.IsInf(f, 0) || math.IsNaN(f) {
		return limit
	}
	return time.Duration(f)
}

// validate checks and normalises in into the decision it asks for (id,
// times and duration still unset).
func (d *Decisions) validate(ctx context.Context, in Input, now time.Time) (Decision, error) {
	dec := Decision{Type: in.Type, Zone: in.Zone, Reason: in.Reason, Simulated: in.Simulated, AlertID: in.AlertID,
		Origin: in.Origin, PendingApproval: in.PendingApproval}
	if dec.Origin == "" {
		dec.Origin = "manual"
	}
	dur, err := time.ParseDuration(in.Duration)
	switch {
	case in.Duration == "":
		return Decision{}, errs.E(errs.Invalid, "duration: required (a Go duration such as 4h)")
	case err != nil:
		return Decision{}, errs.E(errs.Invalid, "duration %q: not a Go duration such as 4h", in.Duration)
	case dur <= 0:
		return Decision{}, errs.E(errs.Invalid, "duration %q: must be positive", in.Duration)
	}
	if len(in.Reason) > maxReason {
		return Decision{}, errs.E(errs.Invalid, "reason: %d bytes, at most %d", len(in.Reason), maxReason)
	}
	if in.AlertID != "" && !alertIDRE.MatchString(in.AlertID) {
		return Decision{}, errs.E(errs.Invalid, "alert_id %q: want 32 lowercase hex digits", in.AlertID)
	}
	if in.Zone != "" {
		z, err := names.Canonical(in.Zone)
		if err != nil || z != in.Zone {
			return Decision{}, errs.E(errs.Invalid, "zone %q: not a canonical zone name", in.Zone)
		}
	}
	t := in.Target
	set := 0
	for _, v := range []string{t.IP, t.CIDR, t.Node, t.User} {
		if v != "" {
			set++
		}
	}
	switch in.Type {
	case TypeBan:
		if set != 1 || t.Node != "" {
			return Decision{}, errs.E(errs.Invalid, "target: a ban takes exactly one of target.ip, target.cidr, target.user")
		}
		switch {
		case t.IP != "":
			a, err := ParseBanIP("target.ip", t.IP)
			if err != nil {
				return Decision{}, err
			}
			if a.IsUnspecified() {
				return Decision{}, errs.E(errs.Invalid, "target.ip %q: the unspecified address cannot be banned", t.IP)
			}
			dec.Target.IP = a.String()
		case t.CIDR != "":
			p, err := ParseBanPrefix("target.cidr", t.CIDR, d.cfg.MaxPrefix4, d.cfg.MaxPrefix6)
			if err != nil {
				return Decision{}, err
			}
			dec.Target.CIDR = p.String()
		default:
			if len(t.User) > 256 || strings.ContainsAny(t.User, "\x00\n\r\"") {
				return Decision{}, errs.E(errs.Invalid, "target.user: at most 256 bytes, no quotes or control characters")
			}
			dec.Target.User = t.User
		}
	case TypeQuarantine:
		if set != 1 || t.Node == "" {
			return Decision{}, errs.E(errs.Invalid, "target: a quarantine takes exactly target.node")
		}
		n, err := names.Canonical(t.Node)
		if err != nil {
			return Decision{}, errs.E(errs.Invalid, "target.node %q: %s", t.Node, err.Error())
		}
		if d.cfg.NodeAddresses == nil {
			return Decision{}, errs.E(errs.Unavailable, "quarantine: node records are not available on this server")
		}
		addrs, err := d.cfg.NodeAddresses(ctx, n)
		if errs.Is(err, errs.NotFound) {
			return Decision{}, errs.E(errs.Invalid, "target.node %q: no such node", t.Node)
		}
		if err != nil {
			return Decision{}, err
		}
		dec.Target.Node = n
		dec.Addresses = append([]string{}, addrs...)
	case "":
		return Decision{}, errs.E(errs.Invalid, "type: required (ban or quarantine)")
	default:
		return Decision{}, errs.E(errs.Invalid, "type %q: want ban or quarantine", in.Type)
	}
	return dec, nil
}

// checkAllowed refuses (errs.Conflict) a ban that would block a server or
// something on the never-block list, naming what it hits, and a
// quarantine of a node on the list. A quarantined node's reported
// addresses that hit a server or the list are withheld (moved to
// WithheldAddresses) rather than refusing the quarantine: the addresses
// are the node's own claim, and a node must not make itself impossible to
// quarantine by claiming a server's address.
func (d *Decisions) checkAllowed(ctx context.Context, dec *Decision) error {
	if dec.Target.User != "" {
		return nil // a user ban blocks no address
	}
	entries, err := d.listAllow(ctx)
	if err != nil {
		return err
	}
	type guard struct {
		p    netip.Prefix
		what string // "the address of server n1", "never-block entry allow-… (10.0.0.0/8, "office")"
	}
	var guards []guard
	for _, sa := range d.cfg.ServerAddrs(ctx) {
		guards = append(guards, guard{netip.PrefixFrom(sa.Addr, sa.Addr.BitLen()), "the address of server " + sa.Name})
	}
	for _, e := range entries {
		if e.Node == "" {
			if p, err := netip.ParsePrefix(e.CIDR); err == nil {
				guards = append(guards, guard{p, fmt.Sprintf("never-block entry %s (%s, %q)", e.ID, e.CIDR, e.Reason)})
			}
			continue
		}
		if e.Node == dec.Target.Node {
			return errs.E(errs.Conflict, "decision refused: node %s is never-block entry %s (node %s, %q)", dec.Target.Node, e.ID, e.Node, e.Reason)
		}
		if d.cfg.NodeAddresses == nil {
			continue
		}
		addrs, err := d.cfg.NodeAddresses(ctx, e.Node)
		if errs.Is(err, errs.NotFound) {
			continue
		}
		if err != nil {
			return err
		}
		for _, a := range parseAddrs(addrs) {
			guards = append(guards, guard{netip.PrefixFrom(a, a.BitLen()),
				fmt.Sprintf("%s, an address of never-block entry %s (node %s, %q)", a, e.ID, e.Node, e.Reason)})
		}
	}
	hit := func(r netip.Prefix) (string, bool) {
		for _, g := range guards {
			if r.Overlaps(g.p) {
				return g.what, true
			}
		}
		return "", false
	}
	if r, ok := targetPrefix(dec.Target); ok {
		if what, ok := hit(r); ok {
			return errs.E(errs.Conflict, "decision refused: %s hits %s", describe(*dec, r), what)
		}
	}
	kept := dec.Addresses[:0:0]
	for _, a := range parseAddrs(dec.Addresses) {
		if _, ok := hit(netip.PrefixFrom(a, a.BitLen())); ok {
			dec.WithheldAddresses = append(dec.WithheldAddresses, a.String())
			continue
		}
		kept = append(kept, a.String())
	}
	if dec.Target.Node != "" {
		dec.Addresses = kept
	}
	return nil
}

// describe names the range r of dec's target in a refusal.
func describe(dec Decision, r netip.Prefix) string {
	switch {
	case dec.Target.IP != "":
		return dec.Target.IP
	case dec.Target.CIDR != "":
		return dec.Target.CIDR
	}
	return r.String()
}

// Add validates in, stores the decision with the audit record ctx carries
// and returns it with its revision. Errors as Prepare's.
func (d *Decisions) Add(ctx context.Context, in Input, by string) (Decision, error) {
	for attempt := 0; ; attempt++ {
		dec, ops, conds, err := d.Prepare(ctx, in, by, d.cfg.Now())
		if err != nil {
			return Decision{}, err
		}
		rev, err := d.cfg.Storage.Txn(ctx, kv.Txn{Conds: conds, Ops: ops})
		if err == nil {
			dec.Revision = rev
			return dec, nil
		}
		if !errs.Is(err, errs.Conflict) || attempt >= maxRetries {
			return Decision{}, err
		}
	}
}

func decodeDecision(e kv.Entry) (Decision, error) {
	var d Decision
	if err := json.Unmarshal(e.Value, &d); err != nil {
		return Decision{}, fmt.Errorf("respond: decode %s: %w", e.Key, err)
	}
	d.Revision = e.Version
	return d, nil
}

func checkDecisionID(id string) error {
	if !decisionID.MatchString(id) {
		return errs.E(errs.Invalid, "id %q: want dec- and 16 lowercase hex digits", id)
	}
	return nil
}

// Get returns decision id (errs.NotFound when absent or deleted).
func (d *Decisions) Get(ctx context.Context, id string) (Decision, error) {
	dec, _, err := d.get(ctx, id)
	return dec, err
}

func (d *Decisions) get(ctx context.Context, id string) (Decision, uint64, error) {
	if err := checkDecisionID(id); err != nil {
		return Decision{}, 0, err
	}
	e, err := d.cfg.Storage.Get(ctx, prefixDecisions+id)
	if errs.Is(err, errs.NotFound) {
		return Decision{}, 0, errs.E(errs.NotFound, "decision %s not found", id)
	}
	if err != nil {
		return Decision{}, 0, err
	}
	dec, err := decodeDecision(e)
	if err != nil {
		return Decision{}, 0, err
	}
	if dec.Deleted {
		return Decision{}, 0, errs.E(errs.NotFound, "decision %s not found (deleted)", id)
	}
	return dec, e.Version, nil
}

// List returns the stored decisions (no tombstones), newest first; with
// active, only those in force now.
func (d *Decisions) List(ctx context.Context, active bool) ([]Decision, error) {
	return d.list(ctx, active, nil)
}

// ListNode is List of the decisions that concern the node named node,
// whose reported addresses are addrs (see Concerns): its quarantine and
// the bans of its addresses. Addresses that do not parse are left out.
// The caller checks that the node exists and reads its addresses.
func (d *Decisions) ListNode(ctx context.Context, active bool, node string, addrs []string) ([]Decision, error) {
	as := parseAddrs(addrs)
	return d.list(ctx, active, func(dec Decision) bool { return Concerns(dec, node, as) })
}

// list is List of the decisions keep keeps (nil: all).
func (d *Decisions) list(ctx context.Context, active bool, keep func(Decision) bool) ([]Decision, error) {
	es, err := d.cfg.Storage.List(ctx, prefixDecisions, 0)
	if err != nil {
		return nil, err
	}
	now := d.cfg.Now()
	out := []Decision{}
	for _, e := range es {
		dec, err := decodeDecision(e)
		if err != nil {
			return nil, err
		}
		if dec.Deleted || (active && !Active(dec, now)) || (keep != nil && !keep(dec)) {
			continue
		}
		out = append(out, dec)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CreatedTime != out[j].CreatedTime {
			return out[i].CreatedTime > out[j].CreatedTime
		}
		if out[i].Revision != out[j].Revision {
			return out[i].Revision > out[j].Revision
		}
		return out[i].ID > out[j].ID
	})
	return out, nil
}

// Delete lifts decision id: it writes its tombstone (the decision marked
// deleted), which the stream carries to every follower.
func (d *Decisions) Delete(ctx context.Context, id string) error {
	for attempt := 0; ; attempt++ {
		dec, ver, err := d.get(ctx, id)
		if err != nil {
			return err
		}
		dec.Deleted, dec.DeletedTime, dec.Revision = true, rfc3339(d.cfg.Now()), 0
		b, _ := json.Marshal(dec)
		_, err = d.cfg.Storage.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: prefixDecisions + id, Version: ver}},
			Ops: []kv.Op{{Type: kv.OpPut, Key: prefixDecisions + id, Value: b}}})
		if err == nil || !errs.Is(err, errs.Conflict) || attempt >= maxRetries {
			return err
		}
	}
}

// horizon is the record of respond/horizon.
type horizon struct {
	Revision uint64 `json:"revision"`
}

// Collect removes, in one change made by this server with its own audit
// record, the tombstones and the decisions expired for longer than the
// retention, the never-block tombstones as old, and the offender records
// with no ban within the escalation window; it raises respond/horizon to
// the highest revision it removed, so that a stream resumed from below it
// starts again from a full state. It returns how many keys it removed.
// Run it on the leader only.
func (d *Decisions) Collect(ctx context.Context) (int, error) {
	now := d.cfg.Now()
	cut := now.Add(-d.cfg.Retention)
	var ops []kv.Op
	var conds []kv.Cond
	var top uint64
	// What is old under each prefix; a value that does not decode is left
	// for an operator to see (offender records, which nobody reads, go).
	old := []struct {
		prefix string
		old    func(b []byte) bool
	}{
		{prefixDecisions, func(b []byte) bool {
			var d Decision
			return json.Unmarshal(b, &d) == nil && ((d.Deleted && parseTime(d.DeletedTime).Before(cut)) ||
				(!d.Deleted && !d.PendingApproval && parseTime(d.ExpiresAt).Before(cut)))
		}},
		{prefixAllow, func(b []byte) bool {
			var a AllowEntry
			return json.Unmarshal(b, &a) == nil && a.Deleted && parseTime(a.DeletedTime).Before(cut)
		}},
		{prefixOffenders, func(b []byte) bool {
			var o offender
			return json.Unmarshal(b, &o) != nil || len(o.Bans) == 0 || now.Sub(parseTime(o.Bans[len(o.Bans)-1])) >= d.cfg.EscalationWindow
		}},
	}
	for _, o := range old {
		es, err := d.cfg.Storage.List(ctx, o.prefix, 0)
		if err != nil {
			return 0, err
		}
		for _, e := range es {
			if !o.old(e.Value) {
				continue
			}
			ops = append(ops, kv.Op{Type: kv.OpDelete, Key: e.Key})
			conds = append(conds, kv.Cond{Key: e.Key, Version: e.Version})
			if o.prefix != prefixOffenders {
				top = max(top, e.Version)
			}
		}
	}
	if len(ops) == 0 {
		return 0, nil
	}
	if len(ops) > kv.MaxTxnOps-2 {
		ops, conds = ops[:kv.MaxTxnOps-2], conds[:kv.MaxTxnOps-2]
		top = 0
		for _, c := range conds {
			if strings.HasPrefix(c.Key, prefixDecisions) || strings.HasPrefix(c.Key, prefixAllow) {
				top = max(top, c.Version)
			}
		}
	}
	n := len(ops)
	if top > 0 {
		hv := uint64(0)
		if e, err := d.cfg.Storage.Get(ctx, keyHorizon); err == nil {
			var h horizon
			if json.Unmarshal(e.Value, &h) == nil {
				top = max(top, h.Revision)
			}
			hv = e.Version
		} else if !errs.Is(err, errs.NotFound) {
			return 0, err
		}
		hb, _ := json.Marshal(horizon{Revision: top})
		ops = append(ops, kv.Op{Type: kv.OpPut, Key: keyHorizon, Value: hb})
		conds = append(conds, kv.Cond{Key: keyHorizon, Version: hv})
	}
	entry := auditlog.SystemEntry(now, d.cfg.Node, "decision.collect", `System::"warden"`)
	ctx, _ = d.cfg.Audit.Pending(ctx, entry)
	if _, err := d.cfg.Storage.Txn(ctx, kv.Txn{Conds: conds, Ops: ops}); err != nil {
		return 0, err
	}
	return n, nil
}

// RunCollector calls Collect every interval while leader() holds, until
// ctx ends. Errors are logged by logf (they are retried next time).
func (d *Decisions) RunCollector(ctx context.Context, interval time.Duration, leader func() bool, logf func(msg string, args ...any)) {
	periodic.WhileLeader(ctx, interval, leader, func(ctx context.Context) error {
		_, err := d.Collect(ctx)
		return err
	}, func(err error) {
		if logf != nil {
			logf("decisions: collecting old tombstones failed; retrying later", "err", err)
		}
	})
}
