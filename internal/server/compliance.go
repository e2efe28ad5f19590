package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/api"
	"github.com/warden-sec/warden/internal/approval"
	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/authority"
	"github.com/warden-sec/warden/internal/compliance"
	"github.com/warden-sec/warden/internal/compliance/records"
	"github.com/warden-sec/warden/internal/cosign"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/identity"
	"github.com/warden-sec/warden/internal/policy"
	"github.com/warden-sec/warden/internal/respond"
	"github.com/warden-sec/warden/internal/users"
)

// complianceState assembles compliance.State from the live services
// (docs/compliance.md, "Where the evidence comes from"). It implements
// api.ComplianceSource.
type complianceState struct {
	s *Server
}

var _ api.ComplianceSource = complianceState{}

// DefaultComplianceInterval is how often the leader evaluates the
// controls (--compliance-interval).
const DefaultComplianceInterval = time.Hour

// WitnessRecent is how recently a witness must have cosigned the log for
// compliance to count it (docs/compliance.md).
const WitnessRecent = time.Hour

// maxStateAlerts bounds the open alerts one evaluation reads.
const maxStateAlerts = 10_000

// DocumentSigner is the server's (Server.DocumentSigner).
func (c complianceState) DocumentSigner() (crypto.Signer, []*x509.Certificate, error) {
	return c.s.DocumentSigner()
}

// State reads the live state, with the audit records of the
// attestations, zones, conduits and the dual-control setting and their
// inclusion proofs against the checkpoint it read (a handful of records:
// attestations cite theirs, so even an unsigned status needs them).
func (c complianceState) State(ctx context.Context) (*compliance.State, error) {
	s := c.s
	now := s.now().UTC().Truncate(time.Second) // the report's signing time, which signatures keep to the second
	st := &compliance.State{GeneratedAt: now}
	if td, err := s.ca.TrustDomain(); err == nil {
		st.TrustDomain = td
	}

	// The audit log and its checkpoint, with the witnesses' cosignatures.
	alog := s.audit
	note, cosigners, err := c.checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	_, vkey, err := alog.Verifier()
	if err != nil {
		return nil, err
	}
	cp, err := audit.Open(note, vkey)
	if err != nil {
		return nil, err
	}
	// Witnessed: how many witnesses other than this server's own
	// cosigned a checkpoint of this log within WitnessRecent (the one in
	// the report may be newer than their last cosignature: every request
	// grows the log).
	own := cosign.ServerID(s.st.NodeID())
	lines := 0
	for _, id := range cosigners {
		if id != own {
			lines++
		}
	}
	st.Checkpoint = compliance.Checkpoint{Size: cp.Size, Root: cp.Root, Note: string(note), Witnesses: lines, LogKey: vkey}
	st.Audit = compliance.AuditStatus{Verified: alog.Damaged() == nil, Size: cp.Size}
	if d := alog.Damaged(); d != nil {
		st.Audit.Damage = d.Error()
	}
	st.Audit.ScrubbedAt = alog.LastScrub()
	recent := func(ws *cosign.WitnessStatus) bool {
		return ws != nil && !ws.Cosigned.IsZero() && now.Sub(ws.Cosigned) <= WitnessRecent
	}
	if l, err := s.wit.List(ctx); err == nil {
		for _, w := range l.Servers {
			if w.Member && cosign.ServerID(w.Node) != own {
				st.Audit.Witnesses++
				if recent(w.Status) {
					st.Audit.Cosigned++
				}
			}
		}
		for _, w := range l.External {
			st.Audit.Witnesses++
			if recent(w.Status) {
				st.Audit.Cosigned++
			}
		}
	}
	if s.cfg.AuditFile != "" {
		st.Audit.Sinks = append(st.Audit.Sinks, "file")
	}
	if s.cfg.AuditStdout {
		st.Audit.Sinks = append(st.Audit.Sinks, "stdout")
	}

	// Nodes, with what their agents reported.
	nodes, err := s.nodes.List(ctx)
	if err != nil {
		return nil, err
	}
	sums, err := s.records.Summaries(ctx)
	if err != nil {
		return nil, err
	}
	results, err := s.records.AllResults(ctx)
	if err != nil {
		return nil, err
	}
	current := map[string]bool{api.BuiltinPolicyName: true}
	stored, err := s.records.Policies(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range stored {
		current[p.Name] = true
	}
	byNode := map[string][]records.Results{}
	for _, r := range results {
		byNode[r.Node] = append(byNode[r.Node], r)
	}
	for _, n := range nodes {
		if n.State == authority.NodePending {
			continue
		}
		cn := compliance.Node{Name: n.Name, Zone: n.Zone, State: n.State, CertNotAfter: n.NotAfter}
		if d, err := time.ParseDuration(n.CertTTL); err == nil {
			cn.CertTTL = d
		}
		if q, ok := s.response.feed.Quarantined(n.Name); ok && q.ID != "" {
			cn.State = "quarantined"
		}
		if sum, ok := sums[n.Name]; ok {
			cn.Inventory = &compliance.InventorySummary{OS: sum.OS, Kernel: sum.Kernel, AgentVersion: sum.AgentVersion, Packages: sum.Packages,
				PatchAgeDays: sum.PatchAgeDays, PatchBasis: sum.PatchBasis, Pending: sum.Pending, Listening: sum.Listening, CollectedAt: sum.CollectedAt}
			cn.Enforcing = sum.Enforcement == "nftables"
		}
		for _, r := range byNode[n.Name] {
			if !current[r.Policy] {
				continue // a policy deleted since: its results no longer count
			}
			var rs []compliance.AssessmentResult
			if err := json.Unmarshal(r.Results, &rs); err != nil {
				return nil, err
			}
			cn.Assessment = append(cn.Assessment, rs...)
			// When the servers received them, not the node's own date.
			if r.Received.After(cn.AssessedAt) {
				cn.AssessedAt = r.Received
			}
		}
		st.Nodes = append(st.Nodes, cn)
	}
	c.lastEvents(ctx, st.Nodes)

	// Zones and conduits.
	zones, err := s.nodes.Zones(ctx)
	if err != nil {
		return nil, err
	}
	for _, z := range zones {
		st.Zones = append(st.Zones, compliance.Zone{Name: z.Name, Level: z.Level})
	}
	pols, err := s.policies.ListPolicies(ctx, policy.WardenStore)
	if err != nil {
		return nil, err
	}
	type cited struct {
		key   string // storage key whose version is the Raft index of its last write
		about string
	}
	var cites []cited
	// Each policy of the warden store read once: conduits from their
	// generated text, roles from the groups the others name.
	roles := map[string]bool{}
	for _, name := range pols {
		if strings.HasPrefix(name, "builtin/") {
			continue
		}
		p, err := s.policies.ReadPolicy(ctx, policy.WardenStore, name)
		if err != nil {
			return nil, err
		}
		st.Governance.Policies++
		for _, g := range groupsNamed(p.Text) {
			roles[g] = true
		}
		cd, ok := authority.ParseConduitPolicy(name, p.Text)
		if !ok {
			continue
		}
		c := compliance.Conduit{From: cd.From, To: cd.To, Port: cd.Port, Protocol: cd.Protocol, MTLS: cd.MTLS}
		st.Conduits = append(st.Conduits, c)
		cites = append(cites, cited{policy.Key(policy.WardenStore, name), "conduit:" + compliance.ConduitRef(c)})
	}
	for _, z := range zones {
		cites = append(cites, cited{authority.ZoneKey(z.Name), "zone:" + z.Name})
	}

	// Open alerts.
	open, err := s.alerts.Unclosed(ctx, maxStateAlerts)
	if err != nil {
		return nil, err
	}
	for _, a := range open {
		st.Alerts = append(st.Alerts, compliance.Alert{ID: a.ID, Level: a.Level, RuleID: a.RuleID, Hosts: a.Hosts})
	}

	// Governance.
	dual, err := s.approvals.svc.Enabled()
	if err != nil {
		return nil, err
	}
	st.Governance.DualControl, st.Governance.BreakGlass, st.Governance.DefaultDeny = dual, s.cfg.BreakGlassGroup != "", true
	if dual {
		cites = append(cites, cited{approval.ConfigKey, "governance:dual_control"})
	}
	st.Governance.Roles = len(roles)

	// People, with the groups the policies name.
	groups := slices.Sorted(maps.Keys(roles))
	pp, err := c.people(ctx, zones, groups)
	if err != nil {
		return nil, err
	}
	st.People = pp

	// PKI: the root's key is destroyed at init (docs/security.md).
	st.PKI = compliance.PKI{NodeCertTTL: authority.DefaultCertTTL, CRL: true, OCSP: true, RevokedOnRemove: s.cn != nil}
	st.PKI.ServerCertTTL = s.cfg.ServerCertTTL
	if st.PKI.ServerCertTTL == 0 {
		st.PKI.ServerCertTTL = authority.DefaultServerCertTTL
	}

	// Keys and the barrier.
	if eng := s.transit.eng; eng != nil {
		names, err := eng.List(ctx)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			k, err := eng.Key(ctx, name)
			if err != nil {
				return nil, err
			}
			ck := compliance.Key{Name: k.Name, Type: string(k.Type), Latest: k.Latest, AutoRotate: k.AutoRotatePeriod}
			for _, v := range k.Versions {
				if v.Number == k.Latest {
					ck.RotatedAt = v.Created
				}
			}
			st.Keys = append(st.Keys, ck)
		}
	}
	if ks, err := s.core.KeyStatus(); err == nil {
		st.Secrets = compliance.SecretsStatus{Encrypted: true, Keyring: int(ks.Term), RotatedAt: ks.InstallTime}
	}

	// Decisions, events, response, cluster.
	if ds, err := s.response.decisions.List(ctx, true); err == nil {
		st.Decisions.Active = len(ds)
	}
	st.Events = compliance.EventsStatus{Stream: s.events.started(), Retention: s.cfg.EventsMaxAge}
	if st.Events.Retention == 0 {
		st.Events.Retention = events.DefaultMaxAge
	}
	if rs, _, err := s.rules.List(ctx); err == nil {
		st.Events.Rules = len(rs)
	}
	if s.playbooks != nil {
		if pbs, err := s.playbooks.svc.List(ctx); err == nil {
			st.Response.Playbooks = len(pbs)
		}
	}
	if inc, err := s.Incidents().List(ctx, respond.Filter{Status: "open"}); err == nil {
		st.Response.OpenIncidents = len(inc)
	}
	if peers, err := s.st.Peers(); err == nil {
		for _, p := range peers {
			if p.Voter {
				st.Cluster.Voters++
			}
		}
	}
	st.Cluster.RateLimits = s.cfg.RateLimit >= 0

	// Attestations, each with the Raft index of its record.
	as, err := s.records.Attestations(ctx, "")
	if err != nil {
		return nil, err
	}
	var attIdx []int
	for _, a := range as {
		// To the second, as GeneratedAt: made in the same second as the
		// report, it is in force.
		st.Attestations = append(st.Attestations, compliance.Attestation{Control: a.Control, Owner: a.Owner, Text: a.Text, SHA256: a.SHA256,
			Created: a.Created.UTC().Truncate(time.Second), Expires: a.Expires})
		attIdx = append(attIdx, len(cites))
		cites = append(cites, cited{records.AttestationKey(a), ""})
	}

	// Evidence: the record of the last write of each cited key, proved
	// against the checkpoint.
	proved := map[uint64]int{} // leaf index → position in st.Evidence
	provable := make([]bool, len(st.Attestations))
	for i, ct := range cites {
		e, err := s.core.Get(ctx, ct.key)
		if err != nil {
			continue // gone since it was listed
		}
		entries, err := alog.EntriesAt(ctx, e.Version)
		if err != nil || len(entries) == 0 {
			continue // archived or pruned: not provable here
		}
		se := entries[0]
		if se.Altered != nil || se.Index >= cp.Size {
			continue
		}
		pos, ok := proved[se.Index]
		if !ok {
			proof, err := alog.InclusionProof(se.Index, cp.Size)
			if err != nil {
				return nil, err
			}
			pos = len(st.Evidence)
			proved[se.Index] = pos
			st.Evidence = append(st.Evidence, compliance.AuditRecord{Index: se.Index, Entry: se.Leaf, Proof: proof})
		}
		if ct.about != "" {
			st.Evidence[pos].About = append(st.Evidence[pos].About, ct.about)
		}
		if j := slices.Index(attIdx, i); j >= 0 {
			st.Attestations[j].AuditIndex = se.Index
			provable[j] = true
		}
	}
	// An attestation whose record cannot be proved against this checkpoint
	// (archived, pruned, not yet covered) is left out: its control reads
	// as waiting for an attestation rather than failing the evaluation.
	kept := st.Attestations[:0]
	for j, a := range st.Attestations {
		if provable[j] {
			kept = append(kept, a)
		}
	}
	st.Attestations = kept
	return st, nil
}

// LastEventsTimeout bounds the event-stream lookups of one evaluation.
const LastEventsTimeout = 5 * time.Second

// lastEvents sets each node's LastEventAt from the event stream (at most
// 16 lookups at a time; none without an event plane).
func (c complianceState) lastEvents(ctx context.Context, nodes []compliance.Node) {
	if !c.s.events.started() {
		return
	}
	p := c.s.events.p
	// Bounded in time as a whole: a stream that does not answer (a
	// JetStream election) leaves the remaining nodes without a time,
	// which the checks read as not reporting.
	ctx, cancel := context.WithTimeout(ctx, LastEventsTimeout)
	defer cancel()
	now := c.s.now()
	c.s.lastEvent.prune(now)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range nodes {
		if t, ok := c.s.lastEvent.get(nodes[i].Name, now); ok {
			nodes[i].LastEventAt = t
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if t, err := p.LastBatchTime(ctx, nodes[i].Name); err == nil {
				nodes[i].LastEventAt = t
				c.s.lastEvent.put(nodes[i].Name, t, now)
			}
		}()
	}
	wg.Wait()
}

// LastEventReuse is how long an evaluation reuses a node's last event time
// that an earlier one read from the stream: the checks that read it count
// hours, and a fleet's lookups are the larger part of assembling the state.
const LastEventReuse = time.Minute

// lastEventCache holds the nodes' last event times read from the stream,
// with when they were read. Safe for concurrent use.
type lastEventCache struct {
	mu sync.Mutex
	m  map[string][2]time.Time // node → {last event, read at}
}

func (c *lastEventCache) get(node string, now time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[node]
	if !ok || now.Sub(v[1]) >= LastEventReuse || now.Before(v[1]) {
		return time.Time{}, false
	}
	return v[0], true
}

func (c *lastEventCache) put(node string, last, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string][2]time.Time{}
	}
	c.m[node] = [2]time.Time{last, now}
}

// prune drops the times too old to reuse: the cache holds at most the
// nodes read within a minute.
func (c *lastEventCache) prune(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.m {
		if now.Sub(v[1]) >= LastEventReuse || now.Before(v[1]) {
			delete(c.m, k)
		}
	}
}

// checkpoint returns the log's current signed checkpoint (which covers
// every committed record, so the records a report cites can be proved),
// with the witnesses' cosignatures when they cosigned that same
// checkpoint, and who did.
func (c complianceState) checkpoint(ctx context.Context) ([]byte, []string, error) {
	note, err := c.s.audit.Checkpoint(ctx)
	if err != nil {
		return nil, nil, err
	}
	if c.s.wit != nil {
		if res, err := c.s.wit.Cosigned(ctx, 0); err == nil && res != nil && bytes.HasPrefix(res.Checkpoint, note) {
			return res.Checkpoint, res.Cosigners, nil
		}
	}
	return note, nil, nil
}

// people is the state of users: counts, second factors, and per zone
// whether the policies let a person without a second factor act on the
// zone's nodes (api.Server.ProbeMFA).
func (c complianceState) people(ctx context.Context, zones []authority.Zone, policyGroups []string) (compliance.People, error) {
	s := c.s
	pp := compliance.People{RequireMFAGroups: s.cfg.RequireMFAGroups, PasswordHash: "argon2id",
		MinPasswordLength: users.MinPasswordRunes, Lockout: true, SessionIdle: s.cfg.SessionIdle, ZoneMFA: map[string]compliance.MFAProbe{}}
	if pp.SessionIdle == 0 {
		pp.SessionIdle = identity.DefaultSessionIdle
	}
	// Who is asked: every enabled user not in a group that requires a
	// second factor at login (their sessions always have one), then one
	// stand-in per group the policies name and one in no group, so that
	// a policy granting a group (or everyone) is seen even before anyone
	// is in it. Users past MFAProbeLimit are not asked: the zone then
	// counts as not requiring MFA (fail closed).
	requires := func(groups []string) bool {
		return slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(s.cfg.RequireMFAGroups, g) })
	}
	var probe []api.ProbeUser
	truncated := false
	after := ""
	for {
		us, next, err := s.users.List(ctx, after, 1000)
		if err != nil {
			return pp, err
		}
		for _, u := range us {
			pp.Users++
			if u.TOTP != nil || len(u.Passkeys) > 0 {
				pp.WithMFA++
			}
			if u.Disabled || requires(u.Groups) {
				continue
			}
			if len(probe) < api.MFAProbeLimit {
				probe = append(probe, api.ProbeUser{Name: u.Name, Groups: u.Groups})
			} else {
				truncated = true
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	probe = append(probe, api.ProbeUser{Name: "compliance-probe (in no group)"})
	for _, g := range policyGroups {
		if !requires([]string{g}) {
			probe = append(probe, api.ProbeUser{Name: "compliance-probe (in group " + g + ")", Groups: []string{g}})
		}
	}
	if cfg, err := s.api.OIDCConfigured(ctx); err == nil {
		pp.OIDC = cfg
	}
	for _, z := range zones {
		allowed, asked, err := s.api.ProbeMFA(ctx, z.Name, probe)
		if err != nil {
			return pp, err
		}
		p := compliance.MFAProbe{Required: len(allowed) == 0 && !truncated}
		switch {
		case len(allowed) > 0:
			p.Examples = allowed
		case truncated:
			p.Examples = []string{"more than " + strconv.Itoa(api.MFAProbeLimit) + " users: not all were asked, so a second factor is not shown to be required"}
		default:
			p.Examples = []string{"asked about " + strconv.Itoa(asked) + " users and group stand-ins: none may act on the zone's nodes without a second factor"}
		}
		pp.ZoneMFA[z.Name] = p
	}
	return pp, nil
}

// groupsNamed returns the groups a policy text names (Group::"…").
func groupsNamed(text string) []string {
	var out []string
	for rest := text; ; {
		i := strings.Index(rest, `Group::"`)
		if i < 0 {
			return out
		}
		rest = rest[i+len(`Group::"`):]
		j := strings.IndexByte(rest, '"')
		if j < 0 {
			return out
		}
		out = append(out, rest[:j])
		rest = rest[j:]
	}
}

// ComplianceStartDelay is how soon a server that becomes leader (or is
// unsealed while leading) runs its first evaluation, rather than a whole
// --compliance-interval later: the risk scores and control states it
// stores are then at most this old when a new leader takes over.
const ComplianceStartDelay = time.Minute

// runCompliance evaluates both frameworks on the leader, first within
// ComplianceStartDelay of its leadership (or of its unseal), then every
// interval, and raises a compliance_regression event for each control (and
// each zone's 62443 requirement) that passed at the last evaluation and
// fails now; the statuses and the risk scores are stored, with a system
// audit record, so the next leader compares with the same ones and the
// console reads the scores.
func (s *Server) runCompliance(ctx context.Context, interval time.Duration) {
	check := min(interval, ComplianceStartDelay)
	t := time.NewTicker(check)
	defer t.Stop()
	var last time.Time // the tick of this leadership's last evaluation; zero: none yet
	for {
		var tick time.Time
		select {
		case <-ctx.Done():
			return
		case tick = <-t.C:
		}
		if !s.st.IsLeader() || s.core.Sealed() {
			last = time.Time{}
			continue
		}
		// Ticks come every check; half a check of slack keeps a late tick
		// from postponing an evaluation by a whole check.
		if !last.IsZero() && tick.Sub(last) < interval-check/2 {
			continue
		}
		last = tick
		if err := s.EvaluateCompliance(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("compliance evaluation failed", "err", err)
		}
	}
}

// EvaluateCompliance runs one evaluation of the leader's compliance loop
// (runCompliance) now: both frameworks over the live state, a
// compliance_regression event for each control that passed at the last
// evaluation and fails now, and the statuses and risk scores stored with
// a system audit record. It is for a server whose loop is off
// (Config.ComplianceInterval < 0), such as a test's, and is meant for the
// leader while unsealed, as the loop runs. It is not coordinated with a
// running loop: of two concurrent writes of a framework's statuses, the
// second fails on their version.
func (s *Server) EvaluateCompliance(ctx context.Context) error {
	st, err := complianceState{s}.State(ctx)
	if err != nil {
		return err
	}
	var risk *compliance.Risk // the same for every framework over the whole cluster
	for _, fw := range compliance.Frameworks() {
		r, err := compliance.Evaluate(st, fw, "")
		if err != nil {
			return err
		}
		if risk == nil {
			risk = &r.Risk
		}
		cur := map[string]string{}
		for _, c := range r.Controls {
			cur[c.ID] = c.Status
		}
		if fw == compliance.IEC62443 {
			// Every requirement of every zone, passing or not, so that a
			// zone's requirement that regresses is seen the first time.
			for _, z := range st.Zones {
				rz, err := compliance.Evaluate(st, fw, z.Name)
				if err != nil {
					return err
				}
				for _, c := range rz.Controls {
					cur["zone "+z.Name+" "+c.ID] = c.Status
				}
			}
		}
		if err := s.storeEvaluation(ctx, r); err != nil {
			s.log.Warn("compliance: cannot store the evaluation", "framework", fw, "err", err)
		}
		prev, version, err := s.records.ControlStates(ctx, string(fw))
		if err != nil {
			return err
		}
		for k, status := range cur {
			if status == compliance.StatusFail && prev.Statuses[k] == compliance.StatusPass {
				ev := events.Event{"warden.framework": string(fw), "warden.control": k, events.FieldMessage: "control " + k + " of " + string(fw) + " passed at the last evaluation and fails now"}
				if zone, req, ok := strings.Cut(strings.TrimPrefix(k, "zone "), " "); ok && strings.HasPrefix(k, "zone ") {
					ev["warden.zone"], ev["warden.control"] = zone, req
				}
				s.emitter.Emit(events.ActionComplianceRegression, ev)
			}
		}
		if maps.Equal(prev.Statuses, cur) {
			continue
		}
		wctx := s.evaluationRecord(ctx)
		if err := s.records.PutControlStates(wctx, records.ControlStates{Framework: string(fw), Time: st.GeneratedAt, Statuses: cur}, version); err != nil {
			return err
		}
	}
	if risk == nil {
		return nil
	}
	// The scores alone (the console's fleet page reads them by name: GET
	// /v1/compliance/risk), stored at every evaluation so that their time
	// is the last evaluation's.
	rs := records.RiskScores{EvaluatedAt: st.GeneratedAt, Nodes: make(map[string]int, len(risk.Nodes)), Zones: make(map[string]int, len(risk.Zones))}
	for _, n := range risk.Nodes {
		rs.Nodes[n.Ref] = n.Score
	}
	for _, z := range risk.Zones {
		rs.Zones[z.Ref] = z.Score
	}
	wctx := s.evaluationRecord(ctx)
	return s.records.PutRisk(wctx, rs)
}

// Bounds of a stored evaluation (storeEvaluation): what a dashboard shows.
const (
	storedRiskNodes = 20 // the nodes of highest risk
	storedEvidence  = 10 // evidence items per check
)

// storeEvaluation stores r, compacted, as the last evaluation of its
// framework (GET /v1/compliance/evaluations/{framework}): the evidence
// records and their proofs left out, at most storedEvidence evidence items
// per check and the storedRiskNodes nodes of highest risk. A live
// evaluation (GET /v1/compliance/status) or a signed report has it all.
func (s *Server) storeEvaluation(ctx context.Context, r *compliance.Report) error {
	c := *r
	c.Evidence = nil
	c.Controls = make([]compliance.ControlResult, len(r.Controls))
	for i, ctl := range r.Controls {
		ctl.Checks = slices.Clone(ctl.Checks)
		for j := range ctl.Checks {
			ctl.Checks[j].Evidence = ctl.Checks[j].Evidence[:min(len(ctl.Checks[j].Evidence), storedEvidence)]
		}
		c.Controls[i] = ctl
	}
	nodes := slices.Clone(r.Risk.Nodes)
	slices.SortStableFunc(nodes, func(a, b compliance.RiskScore) int { return b.Score - a.Score })
	c.Risk.Nodes = nodes[:min(len(nodes), storedRiskNodes)]
	doc, err := json.Marshal(c)
	if err != nil {
		return err
	}
	wctx := s.evaluationRecord(ctx)
	return s.records.PutEvaluation(wctx, string(r.Framework), doc)
}

// evaluationRecord returns ctx carrying the pending system audit record of
// a write the compliance evaluation makes.
func (s *Server) evaluationRecord(ctx context.Context) context.Context {
	wctx, _ := s.audit.Pending(ctx, auditlog.SystemEntry(s.now(), s.st.NodeID(), "compliance.evaluate", `System::"warden"`))
	return wctx
}
