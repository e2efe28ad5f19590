package compliance

import (
	"slices"
	"testing"
	"time"
)

// zoneState is the seeded cluster reduced to the healthy zone "control"
// (SL-T 3), with every manual requirement attested, so that only the
// properties under test differ between the two variants: conduits into
// the zone all mutual TLS, a second factor required for the zone, and an
// audit log verified and cosigned by a witness.
func zoneState(t *testing.T, hardened bool) *State {
	st := seededState(t)
	now := tnow()
	var nodes []Node
	for _, n := range st.Nodes {
		if n.Name == "plc-gw" {
			nodes = append(nodes, n)
		}
	}
	st.Nodes = nodes
	st.Alerts = nil
	st.People.WithMFA = st.People.Users
	st.PKI.HardwareKeys = true
	st.Keys = st.Keys[:1]
	st.Attestations = nil
	for _, c := range Catalog(IEC62443) {
		if c.Manual {
			st.Attestations = append(st.Attestations, Attestation{Control: Qualified(IEC62443, c.ID), Owner: "ot-lead",
				Text: "reviewed", SHA256: "00", Created: now.Add(-time.Hour), Expires: now.Add(time.Hour), AuditIndex: 5})
		}
	}
	for i := range st.Conduits {
		if st.Conduits[i].To == "control" {
			st.Conduits[i].MTLS = hardened
		}
	}
	st.People.ZoneMFA = map[string]MFAProbe{"control": {Required: hardened}}
	st.Audit.Verified = hardened
	st.Audit.Cosigned = 0
	if hardened {
		st.Audit.Cosigned = 1
	}
	return st
}

func zoneOf(t *testing.T, r *Report, name string) ZoneLevel {
	t.Helper()
	for _, z := range r.Zones {
		if z.Name == name {
			return z
		}
	}
	t.Fatalf("no zone %s in the report", name)
	return ZoneLevel{}
}

// TestSLAHardenedZoneIsHigher is the acceptance test: a zone with
// mutual-TLS-only conduits, a second factor required and a verified,
// witnessed audit log reaches a higher SL-A than the same zone without,
// and the report names the requirements that differ.
func TestSLAHardenedZoneIsHigher(t *testing.T) {
	good, err := Evaluate(zoneState(t, true), IEC62443, "control")
	if err != nil {
		t.Fatal(err)
	}
	bad, err := Evaluate(zoneState(t, false), IEC62443, "control")
	if err != nil {
		t.Fatal(err)
	}
	g, b := zoneOf(t, good, "control"), zoneOf(t, bad, "control")
	if g.SLT != 3 || b.SLT != 3 {
		t.Fatalf("SL-T %d and %d, want 3", g.SLT, b.SLT)
	}
	if want := [7]int{4, 4, 4, 4, 4, 4, 4}; g.SLA != want {
		t.Errorf("hardened SL-A %v, want %v; below target: %+v", g.SLA, want, g.BelowTarget)
	}
	if len(g.BelowTarget) != 0 {
		t.Errorf("hardened zone below target: %+v", g.BelowTarget)
	}
	// Without: conduits (SR 1.13, SR 3.1, SR 4.1 at SL 1) and the audit
	// log (SR 2.8, SR 6.1 at SL 1) leave FR 1 to 4 and FR 6 at 0; FR 5 and
	// FR 7 do not depend on them.
	if want := [7]int{0, 0, 0, 0, 4, 0, 4}; b.SLA != want {
		t.Errorf("plain SL-A %v, want %v", b.SLA, want)
	}
	for fr := range 7 {
		if g.SLA[fr] < b.SLA[fr] {
			t.Errorf("FR %d: hardened %d below plain %d", fr+1, g.SLA[fr], b.SLA[fr])
		}
	}
	var named []string
	for _, gap := range b.BelowTarget {
		named = append(named, gap.Requirement+"/"+gap.Check)
	}
	for _, want := range []string{
		"SR 1.1 RE 2/mfa-zone",
		"SR 1.2/conduits-mtls",
		"SR 1.13/conduits-mtls",
		"SR 2.8/audit-verified",
		"SR 2.8 RE 1/audit-witnessed",
		"SR 2.12/audit-witnessed",
		"SR 3.1/conduits-mtls",
		"SR 3.1 RE 1/conduits-mtls",
		"SR 3.9/audit-verified",
		"SR 4.1/conduits-mtls",
		"SR 6.1/audit-verified",
	} {
		if !slices.Contains(named, want) {
			t.Errorf("the plain zone's gaps do not name %s; they are %v", want, named)
		}
	}
	for _, gap := range b.BelowTarget {
		if gap.SL > 3 || gap.Why == "" {
			t.Errorf("gap %+v: above SL-T or without a reason", gap)
		}
	}
}

// TestSLAManualNeedsAttestation: a manual requirement counts only while
// attested and unexpired.
func TestSLAManualNeedsAttestation(t *testing.T) {
	for _, c := range []struct {
		name    string
		expires time.Duration
		want    int
	}{
		{"attested", time.Hour, 4},
		{"expired", -time.Second, 0},
		{"expires now", 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := zoneState(t, true)
			for i := range st.Attestations {
				if st.Attestations[i].Control == "iec62443-3-3:SR 5.3" {
					st.Attestations[i].Expires = st.GeneratedAt.Add(c.expires)
				}
			}
			r, err := Evaluate(st, IEC62443, "control")
			if err != nil {
				t.Fatal(err)
			}
			z := zoneOf(t, r, "control")
			if z.SLA[4] != c.want {
				t.Errorf("FR 5 SL-A %d, want %d", z.SLA[4], c.want)
			}
			if c.want == 0 && !slices.ContainsFunc(z.BelowTarget, func(g Gap) bool {
				return g.Requirement == "SR 5.3" && g.Check == "attestation"
			}) {
				t.Errorf("gaps %+v do not name SR 5.3's attestation", z.BelowTarget)
			}
		})
	}
}

// TestSLALevels: a failure at a requirement of level L caps the FR at L-1.
func TestSLALevels(t *testing.T) {
	for _, c := range []struct {
		name  string
		spoil func(*State)
		fr    int
		want  int
		also  map[int]int // other FRs it lowers: FR -> SL-A
	}{
		{"no hardware keys caps FR 1 at 2 (SR 1.5 RE 1 is SL 3)", func(s *State) { s.PKI.HardwareKeys = false }, 1, 2, nil},
		{"a user without MFA caps FR 1 at 0 (SR 1.5 is SL 1) and FR 2 at 3 (SR 2.12 RE 1)", func(s *State) { s.People.WithMFA-- }, 1, 0, map[int]int{2: 3}},
		{"no break glass caps FR 2 at 2 (SR 2.1 RE 3 is SL 3)", func(s *State) { s.Governance.BreakGlass = false }, 2, 2, nil},
		{"no dual control caps FR 2 at 3 (SR 2.1 RE 4 is SL 4) and FR 1 at 1 (SR 1.13 RE 1)", func(s *State) { s.Governance.DualControl = false }, 2, 3, map[int]int{1: 1}},
		{"no snapshot caps FR 7 at 0", func(s *State) { s.Cluster.LastSnapshot = time.Time{} }, 7, 0, nil},
		{"no roles caps FR 2 at 1", func(s *State) { s.Governance.Roles = 0 }, 2, 1, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := zoneState(t, true)
			c.spoil(st)
			r, err := Evaluate(st, IEC62443, "control")
			if err != nil {
				t.Fatal(err)
			}
			z := zoneOf(t, r, "control")
			if z.SLA[c.fr-1] != c.want {
				t.Errorf("FR %d SL-A %d, want %d (vector %v)", c.fr, z.SLA[c.fr-1], c.want, z.SLA)
			}
			if c.want < 3 && len(z.BelowTarget) == 0 {
				t.Error("below target without gaps")
			}
			for fr := 1; fr <= 7; fr++ {
				want, lowered := c.also[fr]
				if fr == c.fr {
					continue
				}
				if !lowered {
					want = 4
				}
				if z.SLA[fr-1] != want {
					t.Errorf("FR %d SL-A %d, want %d", fr, z.SLA[fr-1], want)
				}
			}
			for _, g := range z.BelowTarget {
				if _, lowered := c.also[g.FR]; g.FR != c.fr && !lowered {
					t.Errorf("gap %+v in an FR the change does not touch", g)
				}
			}
		})
	}
}
