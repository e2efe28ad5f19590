package respond

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/detect"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store/kv"
)

// The responder runs the playbooks: on the leader, it follows the alerts'
// changes and, the first time it sees an alert created after a playbook
// was put, takes that playbook's actions for it. Everything one alert
// causes (decisions, node revocations, the incident, notifications, the
// playbooks' rate counters, the record of the run and the cursor) commits
// in one transaction with one audit record, conditioned on the run's
// record not existing yet: a crash before the commit repeats nothing that
// was done (nothing was), and one after it does nothing twice (the record
// exists).

// Action outcomes, in the run's record and in notifications.
const (
	OutcomeDone      = "done"      // taken (a decision pending approval is "pending")
	OutcomePending   = "pending"   // a decision waiting for approval
	OutcomeSimulated = "simulated" // mode simulate: a simulated decision, or nothing
	OutcomeRefused   = "refused"   // refused (the never-block list, an unknown node…); see note
	OutcomeSkipped   = "skipped"   // not applicable to this alert; see note
	OutcomeLimited   = "limited"   // the playbook's actions_per_hour was reached
)

// AlertFeed gives the alerts' changes (*detect.Alerts).
type AlertFeed interface {
	Changes(ctx context.Context, after uint64) ([]detect.Change, uint64, error)
}

// DecisionPreparer prepares decisions (*Decisions).
type DecisionPreparer interface {
	Prepare(ctx context.Context, in Input, by string, now time.Time) (Decision, []kv.Op, []kv.Cond, error)
}

// IncidentOpener opens or attaches to incidents (*Incidents).
type IncidentOpener interface {
	OpenOrAttach(ctx context.Context, in Attach) ([]kv.Op, []kv.Cond, Incident, Item, error)
}

// NotifyQueuer queues notifications (*detect.Notifiers).
type NotifyQueuer interface {
	QueueOp(ctx context.Context, name, delivery, alertID string, body json.RawMessage, now time.Time) (kv.Op, error)
}

// NodeRevoker revokes nodes and tells their zones (*authority.Nodes).
type NodeRevoker interface {
	RevokeOps(ctx context.Context, name string) ([]kv.Op, []kv.Cond, error)
	NodeZone(ctx context.Context, name string) (string, error)
}

var (
	_ AlertFeed        = (*detect.Alerts)(nil)
	_ DecisionPreparer = (*Decisions)(nil)
	_ IncidentOpener   = (*Incidents)(nil)
	_ NotifyQueuer     = (*detect.Notifiers)(nil)
)

// ResponderConfig wires a Responder. Every service is required but
// Logger and Now.
type ResponderConfig struct {
	Storage   Storage
	Audit     Auditor
	Node      string // this server, in the audit records
	Alerts    AlertFeed
	Playbooks *Playbooks
	Decisions DecisionPreparer
	Incidents IncidentOpener
	Notify    NotifyQueuer
	Nodes     NodeRevoker
	Now       func() time.Time
	Poll      time.Duration // how often the leader looks for changes (default 250ms)
	Logger    *slog.Logger
}

// Responder runs playbooks on new alerts. Run it on every server: only
// the leader acts. Safe for concurrent use: steps run one at a time.
type Responder struct {
	cfg ResponderConfig
	log *slog.Logger

	mu    sync.Mutex
	after uint64 // the alerts' changes up to here were handled
	ready bool   // after was read from the stored cursor
}

// NewResponder returns a responder.
func NewResponder(cfg ResponderConfig) *Responder {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Responder{cfg: cfg, log: log.With("component", "playbooks")}
}

// Run steps every Poll while isLeader says this server leads, until ctx
// ends.
func (r *Responder) Run(ctx context.Context, isLeader func() bool) {
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	for {
		if isLeader() {
			if _, err := r.Step(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("playbooks: a pass failed; retrying", "err", err)
			}
		} else {
			r.mu.Lock()
			r.ready = false // a new leader term starts from the stored cursor
			r.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type cursorRecord struct {
	After uint64 `json:"after"`
}

// Step handles the alerts changed since the last step, in the order of
// their changes, and returns how many runs it committed. An error leaves
// the alerts from the one that failed on for the next step.
func (r *Responder) Step(ctx context.Context) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ready {
		e, err := r.cfg.Storage.Get(ctx, keyCursor)
		switch {
		case errs.Is(err, errs.NotFound):
			r.after = 0
		case err != nil:
			return 0, err
		default:
			var c cursorRecord
			if err := json.Unmarshal(e.Value, &c); err != nil {
				return 0, fmt.Errorf("respond: decode the playbooks' cursor: %w", err)
			}
			r.after = c.After
		}
		r.ready = true
	}
	changes, next, err := r.cfg.Alerts.Changes(ctx, r.after)
	if err != nil || len(changes) == 0 {
		if err == nil {
			r.after = next
		}
		return 0, err
	}
	pbs, err := r.enabled(ctx)
	if err != nil {
		return 0, err
	}
	runs := 0
	for _, ch := range changes {
		if len(pbs) > 0 {
			did, err := r.handle(ctx, ch, pbs)
			if err != nil {
				return runs, fmt.Errorf("alert %s: %w", ch.Alert.ID, err)
			}
			if did {
				runs++
			}
		}
		r.after = max(r.after, ch.Index)
	}
	r.after = max(r.after, next)
	return runs, nil
}

// loaded is a stored playbook, parsed.
type loaded struct {
	rec     PlaybookRecord
	p       *Playbook
	created time.Time
}

// enabled returns the enabled playbooks, parsed, by name.
func (r *Responder) enabled(ctx context.Context) ([]loaded, error) {
	recs, err := r.cfg.Playbooks.all(ctx)
	if err != nil {
		return nil, err
	}
	var out []loaded
	for _, rec := range recs {
		if !rec.Enabled {
			continue
		}
		p, err := Parse([]byte(rec.YAML), nil) // a sink deleted since is reported at its notify
		if err != nil {
			r.log.Error("playbooks: a stored playbook no longer parses; skipped", "playbook", rec.Name, "err", err)
			continue
		}
		created, err := time.Parse(time.RFC3339Nano, rec.CreatedTime)
		if err != nil {
			r.log.Error("playbooks: a stored playbook has no creation time; skipped", "playbook", rec.Name)
			continue
		}
		out = append(out, loaded{rec: rec, p: p, created: created})
	}
	return out, nil
}

// Run is the record of what the playbooks did for one alert
// (respond/playbooks-runs/<alert id>).
type Run struct {
	AlertID   string      `json:"alert_id"`
	Time      string      `json:"time"`
	Playbooks []RunReport `json:"playbooks"`
}

// RunReport is what one playbook did for an alert.
type RunReport struct {
	Name    string         `json:"name"`
	Mode    string         `json:"mode"`
	Owner   string         `json:"owner"`
	Actions []ActionReport `json:"actions"`
}

// ActionReport is the outcome of one action.
type ActionReport struct {
	Action     string `json:"action"`
	Outcome    string `json:"outcome"`
	DecisionID string `json:"decision_id,omitempty"`
	Target     string `json:"target,omitempty"`
	Note       string `json:"note,omitempty"`
}

type rateRecord struct {
	WindowStart string `json:"window_start"`
	Count       int    `json:"count"`
}

// maxRunRetries bounds the attempts at one alert's transaction when it
// conflicts with other changes.
const maxRunRetries = 8

// handle runs the playbooks that match the change's alert, once: it
// reports whether it committed a run.
func (r *Responder) handle(ctx context.Context, ch detect.Change, pbs []loaded) (bool, error) {
	al := ch.Alert
	created, err := time.Parse(time.RFC3339Nano, al.Created)
	if err != nil {
		return false, nil // not an alert Warden wrote
	}
	var zones map[string]string
	zoneOf := func(host string) string {
		if zones == nil {
			zones = map[string]string{}
		}
		z, ok := zones[host]
		if !ok {
			z, _ = r.cfg.Nodes.NodeZone(ctx, host)
			zones[host] = z
		}
		return z
	}
	var match []loaded
	for _, pb := range pbs {
		if !created.Before(pb.created) && pb.p.On.Matches(&al, zoneOf) {
			match = append(match, pb)
		}
	}
	if len(match) == 0 {
		return false, nil
	}
	for attempt := 0; ; attempt++ {
		t, hashes, err := r.prepare(ctx, ch, match)
		if err != nil || t == nil {
			return false, err
		}
		now := r.cfg.Now()
		entry := auditlog.SystemEntry(now, r.cfg.Node, "playbook.run", `Alert::"`+al.ID+`"`)
		entry.Hashes = hashes
		actx, _ := r.cfg.Audit.Pending(ctx, entry)
		_, err = r.cfg.Storage.Txn(actx, *t)
		if err == nil {
			return true, nil
		}
		if !errs.Is(err, errs.Conflict) || attempt >= maxRunRetries {
			return false, err
		}
	}
}

// prepare returns the transaction of one alert's run and the hashes its
// audit record carries (the incident's new timeline items), or nil when
// the alert was handled already.
func (r *Responder) prepare(ctx context.Context, ch detect.Change, match []loaded) (*kv.Txn, map[string]string, error) {
	al := ch.Alert
	runKey := prefixRun + al.ID
	if _, err := r.cfg.Storage.Get(ctx, runKey); err == nil {
		return nil, nil, nil
	} else if !errs.Is(err, errs.NotFound) {
		return nil, nil, err
	}
	now := r.cfg.Now()
	t := &kv.Txn{Conds: []kv.Cond{{Key: runKey, Version: 0}}}
	run := Run{AlertID: al.ID, Time: now.UTC().Format(time.RFC3339Nano)}
	banned := map[string]string{} // target → playbook that acted on it for this alert
	incidentBy := ""              // the playbook that opened or attached the incident
	var notifies []func(run *Run) error
	var hashes map[string]string // the incident's new items
	for _, pb := range match {
		rate, rateVer, err := r.rate(ctx, pb.rec.Name, now)
		if err != nil {
			return nil, nil, err
		}
		counted := 0
		rep := RunReport{Name: pb.rec.Name, Mode: pb.p.Mode, Owner: pb.rec.Owner}
		origin := "playbook:" + pb.rec.Name
		simulate := pb.p.Mode == ModeSimulate
		var firstDecision string
		for _, a := range pb.p.Actions {
			ar := ActionReport{Action: a.Kind}
			limited := a.Kind != ActionNotify && rate.Count+counted >= pb.p.ActionsPerHour
			switch {
			case a.Kind == ActionNotify:
				ar.Target = a.Sink
				idx := len(rep.Actions)
				pbName, sink := pb.rec.Name, a.Sink
				notifies = append(notifies, func(run *Run) error {
					op, err := r.notifyOp(ctx, run, pbName, sink, al, now)
					if errs.Is(err, errs.NotFound) || errs.Is(err, errs.Invalid) {
						setOutcome(run, pbName, idx, OutcomeRefused, err.Error())
						return nil
					}
					if err != nil {
						return err
					}
					setOutcome(run, pbName, idx, OutcomeDone, "")
					t.Ops = append(t.Ops, op)
					return nil
				})
				ar.Outcome = OutcomeDone
			case limited:
				ar.Outcome, ar.Note = OutcomeLimited, fmt.Sprintf("limit of %d actions per hour reached", pb.p.ActionsPerHour)
			case a.Kind == ActionBan || a.Kind == ActionQuarantine:
				in := Input{Type: a.Kind, Duration: a.Duration.String(), Zone: a.Zone, Reason: a.Reason,
					Simulated: simulate, AlertID: al.ID, Origin: origin, PendingApproval: a.Approval}
				if in.Reason == "" {
					in.Reason = al.RuleTitle
				}
				if a.Kind == ActionBan {
					ip, note := SourceIP(&al)
					in.Target.IP, ar.Target = ip, ip
					if ip == "" {
						ar.Outcome, ar.Note = OutcomeSkipped, note
						break
					}
				} else {
					host, note := alertHost(&al)
					in.Target.Node, ar.Target = host, host
					if host == "" {
						ar.Outcome, ar.Note = OutcomeSkipped, note
						break
					}
				}
				key := a.Kind + " " + ar.Target
				if by, ok := banned[key]; ok {
					ar.Outcome, ar.Note = OutcomeSkipped, "already decided for this alert by playbook "+by
					break
				}
				d, ops, conds, err := r.cfg.Decisions.Prepare(ctx, in, pb.rec.Owner, now)
				if errs.Is(err, errs.Conflict) || errs.Is(err, errs.Invalid) || errs.Is(err, errs.NotFound) {
					ar.Outcome, ar.Note = OutcomeRefused, err.Error()
					r.log.Warn("playbooks: decision refused", "playbook", pb.rec.Name, "alert", al.ID, "type", a.Kind,
						"target", ar.Target, "reason", err.Error())
					break
				}
				if err != nil {
					return nil, nil, err
				}
				banned[key] = pb.rec.Name
				t.Ops, t.Conds = append(t.Ops, ops...), append(t.Conds, conds...)
				ar.DecisionID = d.ID
				ar.Outcome = OutcomeDone
				switch {
				case d.PendingApproval:
					ar.Outcome = OutcomePending
				case d.Simulated:
					ar.Outcome = OutcomeSimulated
				}
				if firstDecision == "" {
					firstDecision = d.ID
				}
				counted++
			case a.Kind == ActionRevoke:
				host, note := alertHost(&al)
				ar.Target = host
				if host == "" {
					ar.Outcome, ar.Note = OutcomeSkipped, note
					break
				}
				if simulate {
					ar.Outcome = OutcomeSimulated
					break
				}
				ops, conds, err := r.cfg.Nodes.RevokeOps(ctx, host)
				if errs.Is(err, errs.NotFound) || errs.Is(err, errs.Invalid) {
					ar.Outcome, ar.Note = OutcomeRefused, err.Error()
					break
				}
				if err != nil {
					return nil, nil, err
				}
				if ops == nil {
					ar.Outcome, ar.Note = OutcomeSkipped, "the node is revoked already"
					break
				}
				t.Ops, t.Conds = append(t.Ops, ops...), append(t.Conds, conds...)
				ar.Outcome = OutcomeDone
				counted++
			case a.Kind == ActionIncident:
				if incidentBy != "" {
					ar.Outcome, ar.Note = OutcomeSkipped, "the alert's incident was handled by playbook "+incidentBy
					break
				}
				if simulate {
					ar.Outcome = OutcomeSimulated
					break
				}
				sev := a.Severity
				if sev == "" {
					sev = al.Level
				}
				host, _ := alertHost(&al)
				ops, conds, inc, _, err := r.cfg.Incidents.OpenOrAttach(ctx, Attach{Title: al.RuleTitle, Severity: sev,
					Actor: origin, AlertID: al.ID, DecisionID: firstDecision, Host: host, RuleID: al.RuleID,
					Window: a.Window, Now: now})
				if errs.Is(err, errs.Invalid) || errs.Is(err, errs.NotFound) {
					ar.Outcome, ar.Note = OutcomeRefused, err.Error()
					break
				}
				if err != nil {
					return nil, nil, err
				}
				t.Ops, t.Conds = append(t.Ops, ops...), append(t.Conds, conds...)
				ar.Target = inc.ID
				hashes = PendingHashes(inc)
				ar.Outcome = OutcomeDone
				incidentBy = pb.rec.Name
				counted++
			}
			rep.Actions = append(rep.Actions, ar)
		}
		if counted > 0 {
			rate.Count += counted
			t.Conds = append(t.Conds, kv.Cond{Key: prefixRate + pb.rec.Name, Version: rateVer})
			t.Ops = append(t.Ops, kv.Op{Type: kv.OpPut, Key: prefixRate + pb.rec.Name, Value: playbookJSON(rate)})
		}
		run.Playbooks = append(run.Playbooks, rep)
	}
	for _, n := range notifies {
		if err := n(&run); err != nil {
			return nil, nil, err
		}
	}
	t.Ops = append(t.Ops,
		kv.Op{Type: kv.OpPut, Key: runKey, Value: playbookJSON(run)},
		kv.Op{Type: kv.OpPut, Key: keyCursor, Value: playbookJSON(cursorRecord{After: ch.Index})})
	return t, hashes, nil
}

func setOutcome(run *Run, playbook string, idx int, outcome, note string) {
	for i := range run.Playbooks {
		if run.Playbooks[i].Name == playbook && idx < len(run.Playbooks[i].Actions) {
			run.Playbooks[i].Actions[idx].Outcome, run.Playbooks[i].Actions[idx].Note = outcome, note
		}
	}
}

// rate returns playbook name's counter for the hour now falls in, and the
// store version of its key.
func (r *Responder) rate(ctx context.Context, name string, now time.Time) (rateRecord, uint64, error) {
	e, err := r.cfg.Storage.Get(ctx, prefixRate+name)
	if errs.Is(err, errs.NotFound) {
		return rateRecord{WindowStart: now.UTC().Format(time.RFC3339Nano)}, 0, nil
	}
	if err != nil {
		return rateRecord{}, 0, err
	}
	var rr rateRecord
	if err := json.Unmarshal(e.Value, &rr); err != nil {
		return rateRecord{}, 0, fmt.Errorf("respond: decode the rate of playbook %s: %w", name, err)
	}
	start, err := time.Parse(time.RFC3339Nano, rr.WindowStart)
	if err != nil || now.Sub(start) >= time.Hour || now.Before(start) {
		rr = rateRecord{WindowStart: now.UTC().Format(time.RFC3339Nano)}
	}
	return rr, e.Version, nil
}

// notifyBody is what a playbook's notification sends: the alert (as the
// alerts' notifications do) and what the playbooks did for it.
type notifyBody struct {
	detect.Alert
	Playbook string      `json:"playbook"`
	Run      []RunReport `json:"playbook_run"`
}

func (r *Responder) notifyOp(ctx context.Context, run *Run, playbook, sink string, al detect.Alert, now time.Time) (kv.Op, error) {
	body, err := json.Marshal(notifyBody{Alert: al, Playbook: playbook, Run: run.Playbooks})
	if err != nil {
		return kv.Op{}, err
	}
	delivery := al.ID + ".playbook." + playbook + "." + sink
	return r.cfg.Notify.QueueOp(ctx, sink, delivery, al.ID, body, now)
}

// SourceIP returns the address an alert's ban targets: its group's
// source.ip, else the first of its events that has one; or "" and why
// not.
func SourceIP(al *detect.Alert) (string, string) {
	if ip := al.Group["source.ip"]; ip != "" {
		return checkIP(ip)
	}
	for _, raw := range al.Events {
		var ev map[string]any
		if json.Unmarshal(raw, &ev) != nil {
			continue
		}
		if s, ok := ev["source.ip"].(string); ok && s != "" {
			return checkIP(s)
		}
		if src, ok := ev["source"].(map[string]any); ok {
			if s, ok := src["ip"].(string); ok && s != "" {
				return checkIP(s)
			}
		}
	}
	return "", "the alert has no source.ip"
}

func checkIP(s string) (string, string) {
	if _, err := netip.ParseAddr(s); err != nil {
		return "", "the alert's source.ip " + strconv.Quote(s) + " is not an IP address"
	}
	return s, ""
}

// alertHost returns the node an alert is about: its group's host.name
// (detection rules group by host), else its only host; or "" and why not.
func alertHost(al *detect.Alert) (string, string) {
	if h := al.Group["host.name"]; h != "" {
		return h, ""
	}
	switch len(al.Hosts) {
	case 0:
		return "", "the alert names no host"
	case 1:
		return al.Hosts[0], ""
	}
	return "", "the alert spans " + strconv.Itoa(len(al.Hosts)) + " hosts (" + strings.Join(slices.Clone(al.Hosts[:min(3, len(al.Hosts))]), ", ") + "…); it acts on one host only"
}
