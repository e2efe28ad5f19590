package compliance

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/audit"
)

// Check statuses, and control statuses (which add manual and attested).
const (
	StatusPass          = "pass"
	StatusFail          = "fail"
	StatusError         = "error"
	StatusNotApplicable = "not_applicable"
	StatusManual        = "manual"
	StatusAttested      = "attested"
)

// Thresholds of the checks. The documentation states each.
const (
	// MaxPatchAgeDays is the patch age a node may reach (check patch-age).
	MaxPatchAgeDays = 30
	// MaxReportAge is how recent a node's inventory, events and
	// assessment must be (checks nodes-reporting, assessment-present).
	MaxReportAge = 24 * time.Hour
	// MaxScrubAge is how recent the audit log's full verification must be.
	MaxScrubAge = 7 * 24 * time.Hour
	// MaxSnapshotAge is how recent the last state snapshot must be.
	MaxSnapshotAge = 24 * time.Hour
	// MaxNodeCertTTL and MaxServerCertTTL bound certificate lifetimes.
	MaxNodeCertTTL   = 24 * time.Hour
	MaxServerCertTTL = 72 * time.Hour
	// DefaultKeyRotation is the period of a transit key without
	// automatic rotation, and of the barrier keyring.
	DefaultKeyRotation = 365 * 24 * time.Hour
	// MinEventRetention is the shortest acceptable event retention.
	MinEventRetention = 90 * 24 * time.Hour
	// MinPasswordLength is the shortest acceptable minimum password length.
	MinPasswordLength = 12
	// MaxSessionIdle is the longest acceptable session idle timeout.
	MaxSessionIdle = 30 * time.Minute
	// MinVoters is the number of voting servers that keeps the state
	// available and durable through the loss of one.
	MinVoters = 3
)

// Evidence is one record a check looked at.
type Evidence struct {
	// Kind is what the record is: node, conduit, zone, key, attestation,
	// assessment, people, governance, pki, audit, checkpoint, events,
	// secrets, cluster, response, alert.
	Kind string `json:"kind"`
	// Ref names the record within its kind (a node's name, a conduit as
	// "from->to:port/proto", "dual_control", ...).
	Ref string `json:"ref"`
	// Detail is what the check saw in it.
	Detail string `json:"detail,omitempty"`
	// AuditIndex is the index of an audit record (kind "audit" or
	// "attestation"); the report's Evidence holds it with its proof.
	AuditIndex *uint64 `json:"audit_index,omitempty"`
}

// CheckDef is an automated check.
type CheckDef struct {
	ID string `json:"id"`
	// Tests says, in words, what the check tests.
	Tests    string `json:"tests"`
	Severity string `json:"severity"` // low | medium | high | critical
	run      func(*scope) outcome
}

// outcome is a check's verdict.
type outcome struct {
	status   string
	message  string
	evidence []Evidence
}

func pass(msg string, ev ...Evidence) outcome { return outcome{StatusPass, msg, ev} }
func fail(msg string, ev ...Evidence) outcome { return outcome{StatusFail, msg, ev} }
func notApplicable(msg string, ev ...Evidence) outcome {
	return outcome{StatusNotApplicable, msg, ev}
}

func verdict(ok bool, yes, no string, ev ...Evidence) outcome {
	if ok {
		return pass(yes, ev...)
	}
	return fail(no, ev...)
}

// scope is what a check looks at: the whole cluster (zone "") or one zone.
type scope struct {
	st       *State
	fw       Framework
	zone     string
	nodes    []Node    // the nodes of the scope, by name
	conduits []Conduit // the conduits into the scope, sorted
	zones    []Zone    // the zones of the scope, by name
	control  string    // the qualified ID of the control being evaluated
	// mapped are the controls some assessment result of the scope names.
	mapped map[string]bool
	// about maps "<kind>:<ref>" to the audit records of st.Evidence about
	// it.
	about map[string][]uint64
}

func newScope(st *State, fw Framework, zone string) *scope {
	s := &scope{st: st, fw: fw, zone: zone}
	for _, n := range st.Nodes {
		if zone == "" || n.Zone == zone {
			s.nodes = append(s.nodes, n)
		}
	}
	slices.SortFunc(s.nodes, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	s.mapped = map[string]bool{}
	for i := range s.nodes {
		// Sorted once per scope, not per control (the scope's copy; the
		// State is never modified).
		rs := slices.Clone(s.nodes[i].Assessment)
		slices.SortFunc(rs, func(a, b AssessmentResult) int { return strings.Compare(a.Check, b.Check) })
		s.nodes[i].Assessment = rs
		for _, r := range rs {
			for _, c := range r.Controls {
				s.mapped[c] = true
			}
		}
	}
	s.about = map[string][]uint64{}
	for _, rec := range st.Evidence {
		for _, a := range rec.About {
			s.about[a] = append(s.about[a], rec.Index)
		}
	}
	for _, c := range st.Conduits {
		if zone == "" || c.To == zone {
			s.conduits = append(s.conduits, c)
		}
	}
	slices.SortFunc(s.conduits, func(a, b Conduit) int { return strings.Compare(conduitRef(a), conduitRef(b)) })
	for _, z := range st.Zones {
		if zone == "" || z.Name == zone {
			s.zones = append(s.zones, z)
		}
	}
	slices.SortFunc(s.zones, func(a, b Zone) int { return strings.Compare(a.Name, b.Name) })
	return s
}

func (s *scope) now() time.Time { return s.st.GeneratedAt }

// conduitRef names a conduit: "from->to:port/proto", "*" for any port,
// "any" for any protocol.
func conduitRef(c Conduit) string {
	port := "*"
	if c.Port != 0 {
		port = strconv.Itoa(c.Port)
	}
	proto := c.Protocol
	if proto == "" {
		proto = "any"
	}
	return c.From + "->" + c.To + ":" + port + "/" + proto
}

func ev(kind, ref, detail string) Evidence { return Evidence{Kind: kind, Ref: ref, Detail: detail} }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func days(d time.Duration) int { return int(d / (24 * time.Hour)) }

// checkDefs returns every automated check by ID.
func checkDefs() map[string]CheckDef {
	defs := []CheckDef{
		{ID: "default-deny", Severity: "critical",
			Tests: "A request that no authorization policy permits is denied.",
			run: func(s *scope) outcome {
				g := s.st.Governance
				return verdict(g.DefaultDeny, "requests are denied unless a policy permits them",
					"requests are not denied by default", ev("governance", "default_deny", yesNo(g.DefaultDeny)))
			}},
		{ID: "policies-defined", Severity: "medium",
			Tests: "Access is granted by at least one explicit authorization policy.",
			run: func(s *scope) outcome {
				g := s.st.Governance
				return verdict(g.Policies > 0, fmt.Sprintf("%d policies grant access", g.Policies),
					"no authorization policy is defined", ev("governance", "policies", strconv.Itoa(g.Policies)))
			}},
		{ID: "roles-defined", Severity: "low",
			Tests: "Policies grant permissions to roles (groups), not only to individual principals.",
			run: func(s *scope) outcome {
				g := s.st.Governance
				return verdict(g.Roles > 0, fmt.Sprintf("%d roles", g.Roles), "no role is defined",
					ev("governance", "roles", strconv.Itoa(g.Roles)))
			}},
		{ID: "dual-control", Severity: "high",
			Tests: "Sensitive actions require approval by a second person (M-of-N dual control).",
			run: func(s *scope) outcome {
				g := s.st.Governance
				e := ev("governance", "dual_control", strings.Join(g.DualControlActions, ", "))
				if !g.DualControl || len(g.DualControlActions) == 0 {
					return fail("no action requires dual control", e)
				}
				return pass(fmt.Sprintf("%d actions require approval", len(g.DualControlActions)), e)
			}},
		{ID: "break-glass", Severity: "medium",
			Tests: "An audited break-glass procedure lets an operator override access control in an emergency.",
			run: func(s *scope) outcome {
				g := s.st.Governance
				return verdict(g.BreakGlass, "break glass is configured and audited", "no break-glass procedure is configured",
					ev("governance", "break_glass", yesNo(g.BreakGlass)))
			}},
		{ID: "human-auth", Severity: "critical",
			Tests: "People authenticate (local accounts or single sign-on) and anonymous requests are denied.",
			run: func(s *scope) outcome {
				p, g := s.st.People, s.st.Governance
				e := []Evidence{ev("people", "users", strconv.Itoa(p.Users)), ev("people", "oidc", yesNo(p.OIDC)),
					ev("governance", "default_deny", yesNo(g.DefaultDeny))}
				if p.Users == 0 && !p.OIDC {
					return fail("no local user and no single sign-on: people cannot authenticate", e...)
				}
				return verdict(g.DefaultDeny, "people authenticate and anonymous requests are denied",
					"requests are not denied by default", e...)
			}},
		{ID: "sso", Severity: "low",
			Tests: "People's accounts are managed centrally through single sign-on (OIDC).",
			run: func(s *scope) outcome {
				p := s.st.People
				return verdict(p.OIDC, "single sign-on is configured", "accounts are local only",
					ev("people", "oidc", yesNo(p.OIDC)))
			}},
		{ID: "passwords-argon2", Severity: "high",
			Tests: "Local passwords are stored only as Argon2id hashes.",
			run: func(s *scope) outcome {
				p := s.st.People
				e := ev("people", "password_hash", p.PasswordHash)
				if p.Users == 0 {
					return notApplicable("no local user", e)
				}
				return verdict(p.PasswordHash == "argon2id", "passwords are Argon2id hashes",
					fmt.Sprintf("password hashing is %q, not argon2id", p.PasswordHash), e)
			}},
		{ID: "password-policy", Severity: "medium",
			Tests: fmt.Sprintf("Local passwords must have at least %d characters.", MinPasswordLength),
			run: func(s *scope) outcome {
				p := s.st.People
				e := ev("people", "min_password_length", strconv.Itoa(p.MinPasswordLength))
				if p.Users == 0 {
					return notApplicable("no local user", e)
				}
				return verdict(p.MinPasswordLength >= MinPasswordLength,
					fmt.Sprintf("minimum length %d", p.MinPasswordLength),
					fmt.Sprintf("minimum length %d, below %d", p.MinPasswordLength, MinPasswordLength), e)
			}},
		{ID: "mfa-coverage", Severity: "high",
			Tests: "Every local user has a second factor (TOTP or passkey) enrolled.",
			run: func(s *scope) outcome {
				p := s.st.People
				e := ev("people", "mfa", fmt.Sprintf("%d of %d users", p.WithMFA, p.Users))
				if p.Users == 0 {
					return notApplicable("no local user", e)
				}
				return verdict(p.WithMFA >= p.Users, "every user has a second factor",
					fmt.Sprintf("%d of %d users have no second factor", p.Users-p.WithMFA, p.Users), e)
			}},
		{ID: "mfa-zone", Severity: "high",
			Tests: "Every policy granting access to the zone's nodes requires a second factor.",
			run: func(s *scope) outcome {
				if len(s.zones) == 0 {
					return notApplicable("no zone")
				}
				var e []Evidence
				var missing []string
				for _, z := range s.zones {
					m, ok := s.st.People.ZoneMFA[z.Name]
					d := "second factor required"
					if !ok || !m.Required {
						missing = append(missing, z.Name)
						d = "reachable without a second factor"
						if len(m.Examples) > 0 {
							d += ": " + strings.Join(m.Examples, ", ")
						}
					}
					e = append(e, ev("zone", z.Name, d))
				}
				if len(missing) > 0 {
					return fail("zone "+strings.Join(missing, ", ")+" is reachable without a second factor", e...)
				}
				return pass("a second factor is required for every zone", e...)
			}},
		{ID: "login-throttle", Severity: "medium",
			Tests: "Repeated failed logins are throttled or locked out.",
			run: func(s *scope) outcome {
				p := s.st.People
				return verdict(p.Lockout, "failed logins are throttled", "failed logins are not limited",
					ev("people", "lockout", yesNo(p.Lockout)))
			}},
		{ID: "session-idle", Severity: "low",
			Tests: fmt.Sprintf("Idle login sessions end after at most %s.", MaxSessionIdle),
			run: func(s *scope) outcome {
				p := s.st.People
				e := ev("people", "session_idle", p.SessionIdle.String())
				return verdict(p.SessionIdle > 0 && p.SessionIdle <= MaxSessionIdle,
					"idle sessions end after "+p.SessionIdle.String(), "idle sessions do not end soon enough", e)
			}},
		{ID: "node-identity", Severity: "high",
			Tests: "Every active node of the scope holds its own unexpired certificate from the cluster's CA.",
			run: func(s *scope) outcome {
				if len(s.nodes) == 0 {
					return notApplicable("no node")
				}
				var e []Evidence
				var bad []string
				for _, n := range s.nodes {
					d := "certificate valid until " + n.CertNotAfter.UTC().Format(time.RFC3339)
					if n.State == "active" && !n.CertNotAfter.After(s.now()) {
						bad = append(bad, n.Name)
						d = "certificate expired " + n.CertNotAfter.UTC().Format(time.RFC3339)
					} else if n.State != "active" {
						d = "node " + n.State
					}
					e = append(e, ev("node", n.Name, d))
				}
				if len(bad) > 0 {
					return fail("active nodes without a valid certificate: "+strings.Join(bad, ", "), e...)
				}
				return pass("every active node holds a valid certificate", e...)
			}},
		{ID: "cert-ttl", Severity: "medium",
			Tests: fmt.Sprintf("Node certificates live at most %s and server certificates at most %s, so a key is short-lived.", MaxNodeCertTTL, MaxServerCertTTL),
			run: func(s *scope) outcome {
				p := s.st.PKI
				e := []Evidence{ev("pki", "node_cert_ttl", p.NodeCertTTL.String()), ev("pki", "server_cert_ttl", p.ServerCertTTL.String())}
				ok := p.NodeCertTTL > 0 && p.NodeCertTTL <= MaxNodeCertTTL && p.ServerCertTTL > 0 && p.ServerCertTTL <= MaxServerCertTTL
				return verdict(ok, "certificates are short-lived", "certificate lifetimes are too long or unknown", e...)
			}},
		{ID: "pki-revocation", Severity: "high",
			Tests: "Revocation is published (CRL or OCSP) and removing a node revokes its certificate.",
			run: func(s *scope) outcome {
				p := s.st.PKI
				e := []Evidence{ev("pki", "crl", yesNo(p.CRL)), ev("pki", "ocsp", yesNo(p.OCSP)), ev("pki", "revoked_on_remove", yesNo(p.RevokedOnRemove))}
				return verdict((p.CRL || p.OCSP) && p.RevokedOnRemove, "revocation is published and applied on removal",
					"revocation is not published, or removal does not revoke", e...)
			}},
		{ID: "hardware-keys", Severity: "medium",
			Tests: "The CA's and servers' private keys are held in hardware (HSM or TPM).",
			run: func(s *scope) outcome {
				p := s.st.PKI
				return verdict(p.HardwareKeys, "keys are in hardware", "keys are held in software",
					ev("pki", "hardware_keys", yesNo(p.HardwareKeys)))
			}},
		{ID: "conduits-mtls", Severity: "high",
			Tests: "Every conduit into the zone is declared authenticated and protected by mutual TLS (conduit create --mtls).",
			run: func(s *scope) outcome {
				if len(s.conduits) == 0 {
					return notApplicable("no conduit into the scope")
				}
				// The flag is the operator's declaration, which
				// pkg/middleware enforces for the flows that use it; the
				// check does not observe the traffic, and says so.
				var e []Evidence
				var plain []string
				for _, c := range s.conduits {
					d := "declared mTLS"
					if !c.MTLS {
						d = "no declared mTLS"
						plain = append(plain, conduitRef(c))
					}
					e = append(e, ev("conduit", conduitRef(c), d))
				}
				if len(plain) > 0 {
					return fail("conduits without declared mTLS: "+strings.Join(plain, ", "), e...)
				}
				return pass(fmt.Sprintf("all %d conduits declare mTLS", len(s.conduits)), e...)
			}},
		{ID: "zones-assigned", Severity: "medium",
			Tests: "Every node belongs to a declared zone.",
			run: func(s *scope) outcome {
				if len(s.nodes) == 0 {
					return notApplicable("no node")
				}
				declared := map[string]bool{}
				for _, z := range s.st.Zones {
					declared[z.Name] = true
				}
				var e []Evidence
				var bad []string
				for _, n := range s.nodes {
					if !declared[n.Zone] {
						bad = append(bad, n.Name)
						e = append(e, ev("node", n.Name, "in no declared zone"))
						continue
					}
					e = append(e, ev("node", n.Name, "zone "+n.Zone))
				}
				if len(bad) > 0 {
					return fail("nodes outside any declared zone: "+strings.Join(bad, ", "), e...)
				}
				return pass("every node is in a declared zone", e...)
			}},
		{ID: "zone-boundary", Severity: "high",
			Tests: "Flows into the zone are only the declared conduits, each naming a port and protocol.",
			run: func(s *scope) outcome {
				var e []Evidence
				var open []string
				for _, c := range s.conduits {
					d := "explicit port and protocol"
					if c.Port == 0 || c.Protocol == "" {
						d = "any port or protocol"
						open = append(open, conduitRef(c))
					}
					e = append(e, ev("conduit", conduitRef(c), d))
				}
				if len(s.zones) == 0 && len(s.conduits) == 0 {
					return notApplicable("no zone")
				}
				if len(open) > 0 {
					return fail("conduits open to any port or protocol: "+strings.Join(open, ", "), e...)
				}
				return pass(fmt.Sprintf("%d explicit conduits", len(s.conduits)), e...)
			}},
		{ID: "nodes-enforce", Severity: "high",
			Tests: "Every node of the scope enforces the cluster's decisions in its firewall.",
			run: func(s *scope) outcome {
				return everyNode(s, func(n Node) (bool, string) {
					if n.Enforcing {
						return true, "enforcing"
					}
					return false, "not enforcing"
				}, "every node enforces decisions", "nodes not enforcing decisions: ")
			}},
		{ID: "listening-ports", Severity: "medium",
			Tests: "Every port a node listens on beyond loopback is the port of a conduit into its zone.",
			run:   listeningPorts},
		{ID: "audit-verified", Severity: "critical",
			Tests: fmt.Sprintf("The audit log was fully verified against its signed checkpoints within %d days and no damage was found.", days(MaxScrubAge)),
			run: func(s *scope) outcome {
				a := s.st.Audit
				e := []Evidence{ev("audit", "verified", yesNo(a.Verified)), ev("audit", "scrubbed_at", a.ScrubbedAt.UTC().Format(time.RFC3339))}
				switch {
				case a.Damage != "":
					return fail("the audit log is damaged: "+a.Damage, e...)
				case !a.Verified:
					return fail("the audit log has not been verified", e...)
				case a.ScrubbedAt.IsZero() || s.now().Sub(a.ScrubbedAt) > MaxScrubAge:
					return fail("the last verification is older than "+strconv.Itoa(days(MaxScrubAge))+" days", e...)
				}
				return pass("the audit log verified", e...)
			}},
		{ID: "audit-checkpoint-signed", Severity: "high",
			Tests: "The report's checkpoint is a note signed by the log's key whose size and root are the report's.",
			run: func(s *scope) outcome {
				cp := s.st.Checkpoint
				e := ev("checkpoint", strconv.FormatUint(cp.Size, 10), fmt.Sprintf("root %x", cp.Root))
				if cp.Note == "" || cp.LogKey == "" {
					return fail("no signed checkpoint", e)
				}
				c, err := audit.Open([]byte(cp.Note), cp.LogKey)
				if err != nil {
					return fail("the checkpoint note does not verify: "+err.Error(), e)
				}
				if c.Size != cp.Size || string(c.Root) != string(cp.Root) {
					return fail("the signed note is for another tree", e)
				}
				return pass("checkpoint signed by "+c.Origin, e)
			}},
		{ID: "audit-witnessed", Severity: "high",
			Tests: "At least one independent witness cosigned the report's checkpoint.",
			run: func(s *scope) outcome {
				a := s.st.Audit
				e := ev("audit", "witnesses", fmt.Sprintf("%d cosigned of %d registered", a.Cosigned, a.Witnesses))
				return verdict(a.Cosigned >= 1, fmt.Sprintf("%d witnesses cosigned", a.Cosigned), "no witness cosigned the checkpoint", e)
			}},
		{ID: "audit-sinks", Severity: "medium",
			Tests: "The audit log is copied to at least one sink outside the cluster.",
			run: func(s *scope) outcome {
				a := s.st.Audit
				e := ev("audit", "sinks", strings.Join(a.Sinks, ", "))
				return verdict(len(a.Sinks) > 0, fmt.Sprintf("%d sinks", len(a.Sinks)), "no audit sink", e)
			}},
		{ID: "events-stream", Severity: "high",
			Tests: "Security events are collected centrally and detection rules evaluate them.",
			run: func(s *scope) outcome {
				v := s.st.Events
				e := []Evidence{ev("events", "stream", yesNo(v.Stream)), ev("events", "rules", strconv.Itoa(v.Rules))}
				return verdict(v.Stream && v.Rules > 0, fmt.Sprintf("event stream up with %d rules", v.Rules),
					"no event stream or no detection rule", e...)
			}},
		{ID: "events-retention", Severity: "medium",
			Tests: fmt.Sprintf("Security events are kept at least %d days.", days(MinEventRetention)),
			run: func(s *scope) outcome {
				v := s.st.Events
				return verdict(v.Retention >= MinEventRetention, fmt.Sprintf("kept %d days", days(v.Retention)),
					fmt.Sprintf("kept %d days", days(v.Retention)), ev("events", "retention", v.Retention.String()))
			}},
		{ID: "nodes-reporting", Severity: "medium",
			Tests: fmt.Sprintf("Every node of the scope sent its inventory and security events within %s.", MaxReportAge),
			run: func(s *scope) outcome {
				return everyNode(s, func(n Node) (bool, string) {
					var why []string
					if n.Inventory == nil || s.now().Sub(n.Inventory.CollectedAt) > MaxReportAge {
						why = append(why, "no recent inventory")
					}
					if n.LastEventAt.IsZero() || s.now().Sub(n.LastEventAt) > MaxReportAge {
						why = append(why, "no recent events")
					}
					if len(why) > 0 {
						return false, strings.Join(why, ", ")
					}
					return true, "inventory and events recent"
				}, "every node reports", "nodes not reporting: ")
			}},
		{ID: "inventory-present", Severity: "medium",
			Tests: "Every node of the scope has reported its inventory of software and listening services.",
			run: func(s *scope) outcome {
				return everyNode(s, func(n Node) (bool, string) {
					if n.Inventory == nil {
						return false, "no inventory"
					}
					return true, fmt.Sprintf("%d packages, %s", n.Inventory.Packages, n.Inventory.OS)
				}, "every node has an inventory", "nodes without inventory: ")
			}},
		{ID: "patch-age", Severity: "high",
			Tests: fmt.Sprintf("Every node with an inventory has a patch age of at most %d days.", MaxPatchAgeDays),
			run: func(s *scope) outcome {
				var e []Evidence
				var old []string
				for _, n := range s.nodes {
					if n.Inventory == nil {
						continue
					}
					d := fmt.Sprintf("%d days (%s)", n.Inventory.PatchAgeDays, n.Inventory.PatchBasis)
					if n.Inventory.PatchAgeDays > MaxPatchAgeDays {
						old = append(old, n.Name)
					}
					e = append(e, ev("node", n.Name, d))
				}
				if len(e) == 0 {
					return notApplicable("no node has an inventory")
				}
				if len(old) > 0 {
					return fail("nodes with patches older than "+strconv.Itoa(MaxPatchAgeDays)+" days: "+strings.Join(old, ", "), e...)
				}
				return pass("every node is patched", e...)
			}},
		{ID: "assessment-present", Severity: "medium",
			Tests: fmt.Sprintf("Every node of the scope ran the configuration assessment within %s.", MaxReportAge),
			run: func(s *scope) outcome {
				return everyNode(s, func(n Node) (bool, string) {
					if len(n.Assessment) == 0 || n.AssessedAt.IsZero() {
						return false, "never assessed"
					}
					if s.now().Sub(n.AssessedAt) > MaxReportAge {
						return false, "assessed " + n.AssessedAt.UTC().Format(time.RFC3339)
					}
					return true, fmt.Sprintf("%d results, %s", len(n.Assessment), n.AssessedAt.UTC().Format(time.RFC3339))
				}, "every node was assessed recently", "nodes not assessed recently: ")
			}},
		{ID: "host-assessment", Severity: "high",
			Tests: "The agents' configuration checks mapped to this control pass on every node of the scope.",
			run:   hostAssessment},
		{ID: "keys-rotated", Severity: "medium",
			Tests: fmt.Sprintf("Every transit key was rotated within its rotation period (%d days without one).", days(DefaultKeyRotation)),
			run: func(s *scope) outcome {
				keys := slices.Clone(s.st.Keys)
				if len(keys) == 0 {
					return notApplicable("no transit key")
				}
				slices.SortFunc(keys, func(a, b Key) int { return strings.Compare(a.Name, b.Name) })
				var e []Evidence
				var stale []string
				for _, k := range keys {
					period := k.AutoRotate
					if period <= 0 {
						period = DefaultKeyRotation
					}
					d := fmt.Sprintf("version %d rotated %s, period %s", k.Latest, k.RotatedAt.UTC().Format(time.RFC3339), period)
					if k.RotatedAt.IsZero() || s.now().Sub(k.RotatedAt) > period {
						stale = append(stale, k.Name)
					}
					e = append(e, ev("key", k.Name, d))
				}
				if len(stale) > 0 {
					return fail("keys past their rotation period: "+strings.Join(stale, ", "), e...)
				}
				return pass("every key is within its rotation period", e...)
			}},
		{ID: "barrier-encrypted", Severity: "critical",
			Tests: fmt.Sprintf("Stored values are encrypted by the barrier, whose newest key is less than %d days old.", days(DefaultKeyRotation)),
			run: func(s *scope) outcome {
				x := s.st.Secrets
				e := []Evidence{ev("secrets", "encrypted", yesNo(x.Encrypted)),
					ev("secrets", "keyring", fmt.Sprintf("%d keys, newest %s", x.Keyring, x.RotatedAt.UTC().Format(time.RFC3339)))}
				switch {
				case !x.Encrypted || x.Keyring < 1:
					return fail("stored values are not encrypted", e...)
				case x.RotatedAt.IsZero() || s.now().Sub(x.RotatedAt) > DefaultKeyRotation:
					return fail("the barrier key was not rotated within a year", e...)
				}
				return pass("stored values are encrypted", e...)
			}},
		{ID: "playbooks", Severity: "medium",
			Tests: "At least one incident response playbook is enabled.",
			run: func(s *scope) outcome {
				r := s.st.Response
				return verdict(r.Playbooks > 0, fmt.Sprintf("%d playbooks", r.Playbooks), "no response playbook",
					ev("response", "playbooks", strconv.Itoa(r.Playbooks)))
			}},
		{ID: "alerts-triaged", Severity: "high",
			Tests: "No critical alert is open on the scope's nodes.",
			run: func(s *scope) outcome {
				inScope := map[string]bool{}
				for _, n := range s.nodes {
					inScope[n.Name] = true
				}
				var e []Evidence
				for _, a := range sortedAlerts(s.st.Alerts) {
					if a.Level != "critical" || !slices.ContainsFunc(a.Hosts, func(h string) bool { return inScope[h] }) {
						continue
					}
					e = append(e, ev("alert", a.ID, a.RuleID+" on "+strings.Join(a.Hosts, ", ")))
				}
				if len(e) > 0 {
					return fail(fmt.Sprintf("%d critical alerts open", len(e)), e...)
				}
				return pass("no critical alert open")
			}},
		{ID: "backups", Severity: "high",
			Tests: fmt.Sprintf("A snapshot of the cluster's state was taken within %s.", MaxSnapshotAge),
			run: func(s *scope) outcome {
				c := s.st.Cluster
				e := ev("cluster", "last_snapshot", c.LastSnapshot.UTC().Format(time.RFC3339))
				return verdict(!c.LastSnapshot.IsZero() && s.now().Sub(c.LastSnapshot) <= MaxSnapshotAge,
					"recent snapshot", "no recent snapshot", e)
			}},
		{ID: "replicated", Severity: "high",
			Tests: fmt.Sprintf("The state is replicated on at least %d voting servers.", MinVoters),
			run: func(s *scope) outcome {
				c := s.st.Cluster
				return verdict(c.Voters >= MinVoters, fmt.Sprintf("%d voters", c.Voters), fmt.Sprintf("only %d voters", c.Voters),
					ev("cluster", "voters", strconv.Itoa(c.Voters)))
			}},
		{ID: "rate-limits", Severity: "medium",
			Tests: "The API limits request rates and body sizes.",
			run: func(s *scope) outcome {
				c := s.st.Cluster
				return verdict(c.RateLimits, "limits enforced", "no rate limits", ev("cluster", "rate_limits", yesNo(c.RateLimits)))
			}},
	}
	m := make(map[string]CheckDef, len(defs))
	for _, d := range defs {
		m[d.ID] = d
	}
	return m
}

// everyNode passes when ok holds for every node of the scope.
func everyNode(s *scope, ok func(Node) (bool, string), yes, noPrefix string) outcome {
	if len(s.nodes) == 0 {
		return notApplicable("no node")
	}
	var e evidenceList
	var bad []string
	nbad := 0
	for _, n := range s.nodes {
		good, d := ok(n)
		if !good {
			if nbad++; len(bad) < MaxListed {
				bad = append(bad, n.Name)
			}
		}
		e.add(func() Evidence { return ev("node", n.Name, d) })
	}
	if nbad > 0 {
		if nbad > len(bad) {
			bad = append(bad, fmt.Sprintf("and %d more", nbad-len(bad)))
		}
		return fail(noPrefix+strings.Join(bad, ", "), e.list()...)
	}
	return pass(yes, e.list()...)
}

// evidenceList keeps the first MaxCheckEvidence items of a check's
// evidence and counts the rest, without building them.
type evidenceList struct {
	items []Evidence
	more  int
}

func (l *evidenceList) add(item func() Evidence) {
	if len(l.items) < MaxCheckEvidence {
		l.items = append(l.items, item())
	} else {
		l.more++
	}
}

func (l *evidenceList) list() []Evidence {
	if l.more == 0 {
		return l.items
	}
	return append(l.items, moreEvidence(l.more))
}

// MaxListed bounds the names a check's message lists; it says how many
// more there are.
const MaxListed = 20

func sortedAlerts(as []Alert) []Alert {
	as = slices.Clone(as)
	slices.SortFunc(as, func(a, b Alert) int { return strings.Compare(a.ID, b.ID) })
	return as
}

// hostAssessment evaluates the assessment results that list the control.
// A result "error" is a failure, and so is a node of the scope without a
// result for the control (never assessed, or its agent runs no check
// mapped to it): one node passing does not vouch for the others.
func hostAssessment(s *scope) outcome {
	if len(s.nodes) == 0 {
		return notApplicable("no node")
	}
	var e evidenceList
	var failed, missing []string
	nfailed, nmissing, passed := 0, 0, 0
	for _, n := range s.nodes {
		results := 0
		for _, r := range n.Assessment {
			if !slices.Contains(r.Controls, s.control) {
				continue
			}
			results++
			e.add(func() Evidence {
				d := r.Status
				if r.Message != "" {
					d += ": " + r.Message
				}
				return ev("assessment", n.Name+"/"+r.Check, d)
			})
			switch r.Status {
			case StatusPass:
				passed++
			case StatusNotApplicable:
			default:
				if nfailed++; len(failed) < MaxListed {
					failed = append(failed, n.Name+"/"+r.Check)
				}
			}
		}
		if results == 0 {
			if nmissing++; len(missing) < MaxListed {
				missing = append(missing, n.Name)
			}
			e.add(func() Evidence {
				d := "no assessment result for this control"
				if len(n.Assessment) == 0 {
					d = "not assessed"
				}
				return ev("node", n.Name, d)
			})
		}
	}
	if nfailed > len(failed) {
		failed = append(failed, fmt.Sprintf("and %d more", nfailed-len(failed)))
	}
	if nmissing > len(missing) {
		missing = append(missing, fmt.Sprintf("and %d more", nmissing-len(missing)))
	}
	var why []string
	if nfailed > 0 {
		why = append(why, "failing or erroring checks: "+strings.Join(failed, ", "))
	}
	if nmissing > 0 {
		why = append(why, "nodes without a result: "+strings.Join(missing, ", "))
	}
	switch {
	case len(why) > 0:
		return fail(strings.Join(why, "; "), e.list()...)
	case passed > 0:
		return pass(fmt.Sprintf("%d results pass", passed), e.list()...)
	}
	return notApplicable("no mapped check applies to these nodes", e.list()...)
}

// listeningPorts compares every node's listening sockets with the
// conduits into its zone.
func listeningPorts(s *scope) outcome {
	var e []Evidence
	var bad []string
	seen := 0
	for _, n := range s.nodes {
		if n.Inventory == nil {
			continue
		}
		seen++
		var extra []string
		for _, l := range n.Inventory.Listening {
			proto, port, ok := parseListening(l)
			if !ok {
				continue
			}
			allowed := slices.ContainsFunc(s.st.Conduits, func(c Conduit) bool {
				return c.To == n.Zone && n.Zone != "" && (c.Port == 0 || c.Port == port) &&
					(c.Protocol == "" || c.Protocol == proto)
			})
			if !allowed {
				extra = append(extra, fmt.Sprintf("%s/%d", proto, port))
			}
		}
		if len(extra) > 0 {
			bad = append(bad, n.Name)
			e = append(e, ev("node", n.Name, "listens outside its conduits: "+strings.Join(extra, ", ")))
		} else {
			e = append(e, ev("node", n.Name, "listens only on conduit ports"))
		}
	}
	if seen == 0 {
		return notApplicable("no node has an inventory")
	}
	if len(bad) > 0 {
		return fail("nodes listening on ports no conduit allows: "+strings.Join(bad, ", "), e...)
	}
	return pass("nodes listen only on conduit ports", e...)
}

// parseListening parses "proto address:port [process]" and reports
// whether the socket listens beyond loopback. proto is "tcp" or "udp".
func parseListening(l string) (proto string, port int, ok bool) {
	f := strings.Fields(l)
	if len(f) < 2 {
		return "", 0, false
	}
	proto = strings.TrimSuffix(f[0], "6")
	if proto != "tcp" && proto != "udp" {
		return "", 0, false
	}
	i := strings.LastIndexByte(f[1], ':')
	if i < 0 {
		return "", 0, false
	}
	host := strings.Trim(f[1][:i], "[]")
	port, err := strconv.Atoi(f[1][i+1:])
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, false
	}
	if host == "::1" || host == "localhost" || strings.HasPrefix(host, "127.") {
		return "", 0, false
	}
	return proto, port, true
}
