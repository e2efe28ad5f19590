package compliance

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// ReportFormat is the Format of every report this package writes.
const ReportFormat = "warden-compliance-report/v1"

// Report is a compliance report: the evaluation of one framework's
// controls over a State, for the whole cluster or one zone.
type Report struct {
	Format      string    `json:"format"`
	Framework   Framework `json:"framework"`
	Zone        string    `json:"zone,omitempty"`
	GeneratedAt time.Time `json:"generated_at"`
	TrustDomain string    `json:"trust_domain"`
	// Checkpoint is the audit checkpoint the report was computed
	// against; Evidence proofs are against it.
	Checkpoint Checkpoint      `json:"checkpoint"`
	Summary    Summary         `json:"summary"`
	Controls   []ControlResult `json:"controls"`
	// Zones are the 62443 security levels per zone (empty for ISO).
	Zones []ZoneLevel `json:"zones,omitempty"`
	Risk  Risk        `json:"risk"`
	// PatchAge is the histogram of the scope's nodes' patch ages.
	PatchAge []Bucket `json:"patch_age"`
	// Evidence are the audit records the checks cite, by index.
	Evidence []AuditRecord `json:"evidence"`
}

// Summary counts controls by status.
type Summary struct {
	Controls      int `json:"controls"`
	Pass          int `json:"pass"`
	Fail          int `json:"fail"`
	NotApplicable int `json:"not_applicable"`
	Manual        int `json:"manual"`
	Attested      int `json:"attested"`
}

// Add counts one control of status st.
func (s *Summary) Add(st string) {
	s.Controls++
	switch st {
	case StatusPass:
		s.Pass++
	case StatusFail:
		s.Fail++
	case StatusNotApplicable:
		s.NotApplicable++
	case StatusManual:
		s.Manual++
	case StatusAttested:
		s.Attested++
	}
}

// ControlResult is a control's evaluation.
type ControlResult struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Family      string `json:"family"`
	FR          int    `json:"fr,omitempty"`
	SL          int    `json:"sl,omitempty"`
	Manual      bool   `json:"manual"`
	// Status is pass, fail, not_applicable, manual or attested.
	Status string        `json:"status"`
	Checks []CheckResult `json:"checks"`
	// Attestation is the unexpired attestation in force, if any.
	Attestation *AttestationRef `json:"attestation,omitempty"`
}

// CheckResult is a check's evaluation.
type CheckResult struct {
	ID       string     `json:"id"`
	Tests    string     `json:"tests"`
	Severity string     `json:"severity"`
	Status   string     `json:"status"` // pass | fail | not_applicable
	Message  string     `json:"message"`
	Evidence []Evidence `json:"evidence"`
}

// AttestationRef is the attestation a manual control rests on.
type AttestationRef struct {
	Owner      string    `json:"owner"`
	Text       string    `json:"text"`
	SHA256     string    `json:"sha256"`
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"expires"`
	AuditIndex uint64    `json:"audit_index"`
}

// ZoneLevel is a zone's achieved security level vector beside its target.
type ZoneLevel struct {
	Name string `json:"name"`
	// SLT is the target level (the zone's Level), for every FR.
	SLT int `json:"sl_t"`
	// SLA is the achieved level per FR: SLA[0] is FR 1.
	SLA [7]int `json:"sl_a"`
	// BelowTarget lists the unsatisfied requirements at or below SL-T in
	// each FR whose SL-A is below SL-T.
	BelowTarget []Gap `json:"below_target"`
}

// Gap is a requirement keeping an FR below target.
type Gap struct {
	FR          int    `json:"fr"`
	Requirement string `json:"requirement"`
	SL          int    `json:"sl"`
	// Check is the failing check, or "attestation" for a manual
	// requirement without an unexpired attestation.
	Check string `json:"check"`
	Why   string `json:"why"`
}

// Bucket is one bar of the patch-age histogram.
type Bucket struct {
	Label string `json:"label"`
	// Min and Max bound the patch age in days (inclusive; Max -1: no
	// bound; both -1: nodes whose patch age is unknown).
	Min   int `json:"min"`
	Max   int `json:"max"`
	Nodes int `json:"nodes"`
}

// Evaluate evaluates fw's controls over st, for the zone named (""
// for the whole cluster). It neither reads a clock nor modifies st.
// Errors: a nil State, a zero GeneratedAt, an unknown framework or zone.
func Evaluate(st *State, fw Framework, zone string) (*Report, error) {
	if st == nil {
		return nil, errors.New("compliance: no state")
	}
	if st.GeneratedAt.IsZero() {
		return nil, errors.New("compliance: state: generated_at missing")
	}
	catalog := Catalog(fw)
	if catalog == nil {
		return nil, fmt.Errorf("compliance: framework %q: want %s or %s", fw, ISO27001, IEC62443)
	}
	if zone != "" && !slices.ContainsFunc(st.Zones, func(z Zone) bool { return z.Name == zone }) {
		return nil, fmt.Errorf("compliance: zone %q does not exist", zone)
	}
	r := &Report{
		Format:      ReportFormat,
		Framework:   fw,
		Zone:        zone,
		GeneratedAt: st.GeneratedAt.UTC(),
		TrustDomain: st.TrustDomain,
		Checkpoint:  st.Checkpoint,
	}
	r.Controls = evaluateControls(st, fw, zone, catalog)
	for _, c := range r.Controls {
		r.Summary.Add(c.Status)
	}
	sc := newScope(st, fw, zone)
	if fw == IEC62443 {
		for _, z := range sc.zones {
			r.Zones = append(r.Zones, zoneLevel(st, z, catalog))
		}
	}
	r.Risk = risk(st, sc)
	r.PatchAge = patchAge(sc.nodes)
	r.Evidence = citedEvidence(st, r)
	if err := checkCitations(r); err != nil {
		return nil, err
	}
	return r, nil
}

// evaluateControls evaluates every control of the catalog in one scope.
func evaluateControls(st *State, fw Framework, zone string, catalog []Control) []ControlResult {
	sc := newScope(st, fw, zone)
	defs := checkDefs()
	out := make([]ControlResult, 0, len(catalog))
	for _, c := range catalog {
		sc.control = Qualified(fw, c.ID)
		checks := c.Checks
		if !slices.ContainsFunc(checks, func(d CheckDef) bool { return d.ID == "host-assessment" }) && mapped(sc) {
			checks = append(slices.Clone(checks), defs["host-assessment"])
		}
		cr := ControlResult{ID: c.ID, Title: c.Title, Description: c.Description, Family: c.Family,
			FR: c.FR, SL: c.SL, Manual: c.Manual, Checks: []CheckResult{}}
		failed, applicable := false, false
		for _, d := range checks {
			o := d.run(sc)
			e := withAudit(sc, capEvidence(o.evidence))
			if e == nil {
				e = []Evidence{}
			}
			cr.Checks = append(cr.Checks, CheckResult{ID: d.ID, Tests: d.Tests, Severity: d.Severity,
				Status: o.status, Message: o.message, Evidence: e})
			switch o.status {
			case StatusFail:
				failed = true
			case StatusPass:
				applicable = true
			}
		}
		att := attestation(st, sc.control, zone)
		if att != nil {
			cr.Attestation = &AttestationRef{Owner: att.Owner, Text: att.Text, SHA256: att.SHA256,
				Created: att.Created.UTC(), Expires: att.Expires.UTC(), AuditIndex: att.AuditIndex}
		}
		switch {
		case failed:
			cr.Status = StatusFail
		case c.Manual && att != nil:
			cr.Status = StatusAttested
		case c.Manual:
			cr.Status = StatusManual
		case !applicable:
			cr.Status = StatusNotApplicable
		default:
			cr.Status = StatusPass
		}
		out = append(out, cr)
	}
	return out
}

// mapped reports whether an assessment result of the scope's nodes lists
// the scope's control.
func mapped(sc *scope) bool { return sc.mapped[sc.control] }

// attestation returns the unexpired attestation of control for zone
// (one without a zone applies to every zone), the latest expiring first.
func attestation(st *State, control, zone string) *Attestation {
	var best *Attestation
	for i := range st.Attestations {
		a := &st.Attestations[i]
		if a.Control != control || (a.Zone != "" && a.Zone != zone) {
			continue
		}
		if a.Created.After(st.GeneratedAt) || !a.Expires.After(st.GeneratedAt) {
			continue
		}
		if best == nil || a.Expires.After(best.Expires) || (a.Expires.Equal(best.Expires) && a.AuditIndex > best.AuditIndex) {
			best = a
		}
	}
	return best
}

// MaxCheckEvidence bounds the evidence items of one check in a report
// (a check over 10,000 nodes cites the first ones in name order and says
// how many more there were); the message counts them all.
const MaxCheckEvidence = 100

// capEvidence keeps the first MaxCheckEvidence items and one that counts
// the rest.
func capEvidence(evidence []Evidence) []Evidence {
	n := len(evidence)
	if n <= MaxCheckEvidence || (n == MaxCheckEvidence+1 && evidence[n-1].Kind == "more") {
		return evidence
	}
	return append(slices.Clip(evidence[:MaxCheckEvidence]), moreEvidence(n-MaxCheckEvidence))
}

// moreEvidence is the item that counts the evidence left out.
func moreEvidence(n int) Evidence {
	return Evidence{Kind: "more", Ref: strconv.Itoa(n), Detail: fmt.Sprintf("%d more items of the same kinds, not listed", n)}
}

// withAudit adds to evidence the audit records (of st.Evidence) about
// each item, as items of kind "audit".
func withAudit(sc *scope, evidence []Evidence) []Evidence {
	if len(sc.about) == 0 {
		return evidence
	}
	var out []Evidence
	for _, e := range evidence {
		out = append(out, e)
		key := e.Kind + ":" + e.Ref
		for _, idx := range sc.about[key] {
			out = append(out, Evidence{Kind: "audit", Ref: strconv.FormatUint(idx, 10), Detail: "record about " + key, AuditIndex: &idx})
		}
	}
	return out
}

// zoneLevel computes a zone's SL-A vector and the gaps below SL-T.
func zoneLevel(st *State, z Zone, catalog []Control) ZoneLevel {
	results := evaluateControls(st, IEC62443, z.Name, catalog)
	zl := ZoneLevel{Name: z.Name, SLT: z.Level, BelowTarget: []Gap{}}
	for fr := 1; fr <= 7; fr++ {
		// lowest is the lowest level of an unsatisfied requirement of fr.
		lowest := 5
		for _, c := range results {
			if c.FR == fr && !satisfied(c) && c.SL < lowest {
				lowest = c.SL
			}
		}
		zl.SLA[fr-1] = lowest - 1
		if zl.SLA[fr-1] >= z.Level {
			continue
		}
		for _, c := range results {
			if c.FR != fr || satisfied(c) || c.SL > z.Level {
				continue
			}
			zl.BelowTarget = append(zl.BelowTarget, gaps(c)...)
		}
	}
	return zl
}

// satisfied: a requirement counts toward SL-A when it passes, does not
// apply, or is manual and attested.
func satisfied(c ControlResult) bool {
	return c.Status == StatusPass || c.Status == StatusNotApplicable || c.Status == StatusAttested
}

func gaps(c ControlResult) []Gap {
	var out []Gap
	for _, ch := range c.Checks {
		if ch.Status == StatusFail {
			out = append(out, Gap{FR: c.FR, Requirement: c.ID, SL: c.SL, Check: ch.ID, Why: ch.Message})
		}
	}
	if len(out) == 0 && c.Manual {
		out = append(out, Gap{FR: c.FR, Requirement: c.ID, SL: c.SL, Check: "attestation",
			Why: "manual requirement without an unexpired attestation"})
	}
	return out
}

// patchAge buckets the nodes' patch ages.
func patchAge(nodes []Node) []Bucket {
	bs := []Bucket{
		{Label: "0-7 days", Min: 0, Max: 7},
		{Label: "8-30 days", Min: 8, Max: 30},
		{Label: "31-90 days", Min: 31, Max: 90},
		{Label: "91-180 days", Min: 91, Max: 180},
		{Label: "over 180 days", Min: 181, Max: -1},
		{Label: "unknown", Min: -1, Max: -1},
	}
	for _, n := range nodes {
		if n.Inventory == nil || n.Inventory.PatchBasis == "unknown" || n.Inventory.PatchBasis == "" {
			bs[len(bs)-1].Nodes++
			continue
		}
		d := n.Inventory.PatchAgeDays
		for i := range bs[:len(bs)-1] {
			if d >= bs[i].Min && (bs[i].Max < 0 || d <= bs[i].Max) {
				bs[i].Nodes++
				break
			}
		}
	}
	return bs
}

// checkCitations refuses a report citing an audit record that State.Evidence
// lacks (only an attestation can: other citations come from the records):
// such a report would not verify.
func checkCitations(r *Report) error {
	have := map[uint64]bool{}
	for _, e := range r.Evidence {
		have[e.Index] = true
	}
	for _, c := range r.Controls {
		if a := c.Attestation; a != nil && !have[a.AuditIndex] {
			return fmt.Errorf("compliance: the attestation of %s cites audit record %d, which State.Evidence lacks", c.ID, a.AuditIndex)
		}
	}
	return nil
}

// citedEvidence returns the records of st.Evidence that the report
// cites, by index.
func citedEvidence(st *State, r *Report) []AuditRecord {
	cited := citedIndexes(r)
	out := []AuditRecord{}
	seen := map[uint64]bool{}
	for _, rec := range st.Evidence {
		if cited[rec.Index] && !seen[rec.Index] {
			seen[rec.Index] = true
			out = append(out, rec)
		}
	}
	slices.SortFunc(out, func(a, b AuditRecord) int {
		switch {
		case a.Index < b.Index:
			return -1
		case a.Index > b.Index:
			return 1
		}
		return 0
	})
	return out
}

// citedIndexes returns the audit indexes a report cites: in check
// evidence and attestations.
func citedIndexes(r *Report) map[uint64]bool {
	cited := map[uint64]bool{}
	for _, c := range r.Controls {
		if c.Attestation != nil {
			cited[c.Attestation.AuditIndex] = true
		}
		for _, ch := range c.Checks {
			for _, e := range ch.Evidence {
				if e.AuditIndex != nil {
					cited[*e.AuditIndex] = true
				}
			}
		}
	}
	return cited
}
