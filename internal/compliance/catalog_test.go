package compliance

import (
	"slices"
	"strings"
	"testing"
)

// TestCatalogCovers checks the controls the issue requires are present,
// IDs are unique, every control has a check or is manual, and each RE's
// level is at least its SR's.
func TestCatalogCovers(t *testing.T) {
	required := map[Framework][]string{
		ISO27001: {"5.15", "5.16", "5.17", "5.18", "5.24", "5.25", "5.26", "5.27", "5.28", "8.2", "8.3", "8.5", "8.8",
			"8.9", "8.13", "8.15", "8.16", "8.17", "8.20", "8.22", "8.24", "8.32"},
		IEC62443: {"SR 1.1", "SR 1.1 RE 1", "SR 1.1 RE 2", "SR 1.1 RE 3", "SR 1.2", "SR 1.2 RE 1", "SR 1.3", "SR 1.4",
			"SR 1.5", "SR 1.7", "SR 1.7 RE 1", "SR 1.8", "SR 1.9", "SR 1.11", "SR 1.13", "SR 2.1", "SR 2.1 RE 1",
			"SR 2.8", "SR 2.9", "SR 2.11", "SR 2.11 RE 1", "SR 2.12", "SR 3.1", "SR 3.1 RE 1", "SR 3.3", "SR 3.4",
			"SR 3.4 RE 1", "SR 3.9", "SR 3.9 RE 1", "SR 4.1", "SR 4.3", "SR 5.1", "SR 5.1 RE 1", "SR 5.2", "SR 5.2 RE 1",
			"SR 6.1", "SR 6.2", "SR 7.1", "SR 7.3", "SR 7.6", "SR 7.8"},
	}
	for fw, ids := range required {
		cat := Catalog(fw)
		seen := map[string]Control{}
		for _, c := range cat {
			if _, dup := seen[c.ID]; dup {
				t.Errorf("%s: duplicate %s", fw, c.ID)
			}
			seen[c.ID] = c
			if len(c.Checks) == 0 && !c.Manual {
				t.Errorf("%s %s: neither checks nor manual", fw, c.ID)
			}
			if c.Title == "" || c.Description == "" || c.Family == "" {
				t.Errorf("%s %s: title, description or family missing", fw, c.ID)
			}
			for _, d := range c.Checks {
				if d.Tests == "" || d.run == nil || !slices.Contains([]string{"low", "medium", "high", "critical"}, d.Severity) {
					t.Errorf("%s %s: check %s incomplete", fw, c.ID, d.ID)
				}
			}
			if fw == IEC62443 {
				if c.FR < 1 || c.FR > 7 || c.SL < 1 || c.SL > 4 {
					t.Errorf("%s: FR %d SL %d", c.ID, c.FR, c.SL)
				}
				if sr, _, isRE := strings.Cut(c.ID, " RE "); isRE && seen[sr].SL > c.SL {
					t.Errorf("%s at SL %d below its SR's %d", c.ID, c.SL, seen[sr].SL)
				}
			}
		}
		for _, id := range ids {
			if _, ok := seen[id]; !ok {
				t.Errorf("%s: %s missing", fw, id)
			}
		}
		if _, _, err := ParseQualified(Qualified(fw, ids[0])); err != nil {
			t.Error(err)
		}
	}
	if Catalog("nist") != nil {
		t.Error("an unknown framework has a catalog")
	}
	for _, q := range []string{"iso27001", "iso27001:9.99", "nist:1.1", ":5.15"} {
		if _, _, err := ParseQualified(q); err == nil {
			t.Errorf("ParseQualified(%q) succeeded", q)
		}
	}
}

func TestEvaluateErrors(t *testing.T) {
	st := seededState(t)
	noProof := seededState(t)
	noProof.Evidence = noProof.Evidence[:2]
	for _, c := range []struct {
		name string
		st   *State
		fw   Framework
		zone string
		want string
	}{
		{"nil state", nil, ISO27001, "", "no state"},
		{"no time", &State{}, ISO27001, "", "generated_at"},
		{"framework", st, "nist", "", `framework "nist"`},
		{"zone", st, IEC62443, "nowhere", `zone "nowhere"`},
		{"attestation without its record", noProof, ISO27001, "", "the attestation of 5.24 cites audit record 3, which State.Evidence lacks"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Evaluate(c.st, c.fw, c.zone); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}

func control(t *testing.T, r *Report, id string) ControlResult {
	t.Helper()
	for _, c := range r.Controls {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no control %s", id)
	return ControlResult{}
}

func check(t *testing.T, c ControlResult, id string) CheckResult {
	t.Helper()
	for _, ch := range c.Checks {
		if ch.ID == id {
			return ch
		}
	}
	t.Fatalf("control %s has no check %s", c.ID, id)
	return CheckResult{}
}

func TestChecks(t *testing.T) {
	st := seededState(t)
	r, err := Evaluate(st, ISO27001, "")
	if err != nil {
		t.Fatal(err)
	}
	// An assessment error is a failure, never a pass.
	fw := check(t, control(t, r, "8.20"), "host-assessment")
	if fw.Status != StatusFail || !strings.Contains(fw.Message, "web-2/firewall-active") {
		t.Errorf("8.20 host-assessment: %+v", fw)
	}
	// Assessment results contribute to every control they list: 8.5 has
	// no host-assessment check of its own.
	if ch := check(t, control(t, r, "8.5"), "host-assessment"); ch.Status != StatusFail {
		t.Errorf("8.5 host-assessment: %+v", ch)
	}
	// Manual: attested while unexpired, else manual.
	if c := control(t, r, "5.24"); c.Status != StatusAttested || c.Attestation == nil || c.Attestation.AuditIndex != 3 {
		t.Errorf("5.24: %+v", c)
	}
	if c := control(t, r, "5.27"); c.Status != StatusManual || c.Attestation != nil {
		t.Errorf("5.27 (expired attestation): %+v", c)
	}
	// Audit records are cited through About.
	dc := check(t, control(t, r, "5.18"), "dual-control")
	if !slices.ContainsFunc(dc.Evidence, func(e Evidence) bool { return e.AuditIndex != nil && *e.AuditIndex == 6 }) {
		t.Errorf("dual-control does not cite record 6: %+v", dc.Evidence)
	}
	// The checkpoint is verified during evaluation.
	if ch := check(t, control(t, r, "5.28"), "audit-checkpoint-signed"); ch.Status != StatusPass {
		t.Errorf("checkpoint: %+v", ch)
	}
	st.Checkpoint.Root = append([]byte{}, st.Checkpoint.Root...)
	st.Checkpoint.Root[0] ^= 1
	r2, _ := Evaluate(st, ISO27001, "")
	if ch := check(t, control(t, r2, "5.28"), "audit-checkpoint-signed"); ch.Status != StatusFail {
		t.Errorf("checkpoint for another tree: %+v", ch)
	}
	// A zone's report looks only at its nodes and conduits.
	rz, err := Evaluate(seededState(t), ISO27001, "plant")
	if err != nil {
		t.Fatal(err)
	}
	if ch := check(t, control(t, rz, "8.20"), "conduits-mtls"); ch.Status != StatusPass || len(ch.Evidence) < 1 {
		t.Errorf("plant conduits: %+v", ch)
	}
	if len(rz.Risk.Nodes) != 1 || rz.Risk.Nodes[0].Ref != "hist-1" || len(rz.Risk.Zones) != 1 {
		t.Errorf("plant risk: %+v", rz.Risk)
	}
}

func TestParseListening(t *testing.T) {
	for _, c := range []struct {
		in    string
		proto string
		port  int
		ok    bool
	}{
		{"tcp 0.0.0.0:22 sshd", "tcp", 22, true},
		{"tcp6 [::]:443 nginx", "tcp", 443, true},
		{"udp 10.0.0.5:123", "udp", 123, true},
		{"tcp 127.0.0.1:8080 app", "", 0, false},
		{"tcp6 [::1]:25 exim", "", 0, false},
		{"tcp 0.0.0.0:99999", "", 0, false},
		{"raw 0.0.0.0:1", "", 0, false},
		{"tcp", "", 0, false},
		{"tcp nonsense", "", 0, false},
	} {
		proto, port, ok := parseListening(c.in)
		if proto != c.proto || port != c.port || ok != c.ok {
			t.Errorf("parseListening(%q) = %q, %d, %v", c.in, proto, port, ok)
		}
	}
}
