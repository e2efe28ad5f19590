package compliance

import "time"

// State is the snapshot of live state a report is computed from. The
// server assembles it; compliance only reads it (slices and maps are
// never modified). Zero values mean "not known" or "not configured", and
// checks that need them fail or are not applicable, never pass.
type State struct {
	// GeneratedAt is when the snapshot was taken: the only clock the
	// evaluation knows (ages, expiries and recency are relative to it).
	// Required.
	GeneratedAt time.Time `json:"generated_at"`
	// TrustDomain is the cluster's SPIFFE trust domain.
	TrustDomain string `json:"trust_domain"`
	// Checkpoint is the audit log's signed checkpoint the report is
	// computed against; Evidence proofs are against it.
	Checkpoint Checkpoint `json:"checkpoint"`
	// Audit is the state of the audit log.
	Audit AuditStatus `json:"audit"`
	// Nodes are the enrolled nodes.
	Nodes []Node `json:"nodes"`
	// Zones are the network zones with their target security level.
	Zones []Zone `json:"zones"`
	// Conduits are the allowed flows between zones.
	Conduits []Conduit `json:"conduits"`
	// Alerts are the open (not closed) alerts.
	Alerts []Alert `json:"alerts"`
	// People is the state of human users and their authentication.
	People People `json:"people"`
	// Governance is the state of authorization policy and approvals.
	Governance Governance `json:"governance"`
	// PKI is the state of the cluster's certificate authority.
	PKI PKI `json:"pki"`
	// Keys are the transit engine's named keys.
	Keys []Key `json:"keys"`
	// Secrets is the state of the barrier that encrypts stored values.
	Secrets SecretsStatus `json:"secrets"`
	// Decisions is the state of enforcement decisions (bans, quarantines).
	Decisions Decisions `json:"decisions"`
	// Attestations are the stored attestations of manual controls,
	// expired ones included (they are reported as expired).
	Attestations []Attestation `json:"attestations"`
	// Evidence are audit records with inclusion proofs against
	// Checkpoint. Checks cite them by index: an attestation's record by
	// Attestation.AuditIndex, any other record through its About list.
	Evidence []AuditRecord `json:"evidence"`
	// Events is the state of the event plane and detection.
	Events EventsStatus `json:"events"`
	// Response is the state of incident response.
	Response ResponseStatus `json:"response"`
	// Cluster is the state of the server cluster itself.
	Cluster ClusterStatus `json:"cluster"`
}

// Checkpoint is the audit log checkpoint a report is computed against.
type Checkpoint struct {
	// Size is the number of entries the checkpoint covers.
	Size uint64 `json:"size"`
	// Root is its RFC 6962 root hash (32 bytes).
	Root []byte `json:"root"`
	// Note is the signed note text (c2sp.org/tlog-checkpoint), witness
	// cosignatures included.
	Note string `json:"note"`
	// Witnesses is how many witness cosignatures the note carries.
	Witnesses int `json:"witnesses"`
	// LogKey is the note verifier key of the log
	// ("<origin>+<hash>+<base64>").
	LogKey string `json:"log_key"`
}

// AuditStatus is the state of the audit log.
type AuditStatus struct {
	// Verified: the last full verification (scrub) of the stored log
	// against its signed checkpoints found no damage.
	Verified bool `json:"verified"`
	// ScrubbedAt is when that verification ran.
	ScrubbedAt time.Time `json:"scrubbed_at"`
	// Damage describes damage found, empty when none.
	Damage string `json:"damage,omitempty"`
	// Witnesses is the number of registered witnesses.
	Witnesses int `json:"witnesses"`
	// Cosigned is how many witnesses cosigned Checkpoint.
	Cosigned int `json:"cosigned"`
	// Sinks are the configured external copies of the log (names).
	Sinks []string `json:"sinks"`
	// Size is the log's current size.
	Size uint64 `json:"size"`
}

// Node is an enrolled node.
type Node struct {
	// Name is the node's canonical name.
	Name string `json:"name"`
	// Zone is the zone the node belongs to, empty when none.
	Zone string `json:"zone"`
	// State is the node's state: "active", "quarantined", "revoked", ...
	State string `json:"state"`
	// CertNotAfter is when the node's current certificate expires.
	CertNotAfter time.Time `json:"cert_not_after"`
	// CertTTL is the lifetime of the node's current certificate.
	CertTTL time.Duration `json:"cert_ttl"`
	// Inventory is the summary of the node's latest inventory, nil when
	// it never sent one.
	Inventory *InventorySummary `json:"inventory,omitempty"`
	// Assessment are the results of the node's latest configuration
	// assessment.
	Assessment []AssessmentResult `json:"assessment,omitempty"`
	// AssessedAt is when that assessment ran (zero: never).
	AssessedAt time.Time `json:"assessed_at"`
	// LastEventAt is when the node last sent security events (zero:
	// never).
	LastEventAt time.Time `json:"last_event_at"`
	// Enforcing: the node's agent enforces decisions (nftables sets
	// present and in sync).
	Enforcing bool `json:"enforcing"`
}

// InventorySummary is what a report needs of a node's inventory.
type InventorySummary struct {
	OS           string `json:"os"`
	Kernel       string `json:"kernel"`
	AgentVersion string `json:"agent_version"`
	Packages     int    `json:"packages"`
	// PatchAgeDays and PatchBasis are inventory.PatchAge's result
	// (basis "pending_updates", "installed_versions" or "unknown").
	PatchAgeDays int    `json:"patch_age_days"`
	PatchBasis   string `json:"patch_basis"`
	// Pending is the number of pending updates.
	Pending int `json:"pending"`
	// Listening are the listening sockets as "proto address:port
	// process", for example "tcp 0.0.0.0:22 sshd" (IPv6 addresses in
	// brackets).
	Listening   []string  `json:"listening"`
	CollectedAt time.Time `json:"collected_at"`
}

// AssessmentResult is one check of a node's configuration assessment:
// the same JSON fields as the agent's assess.Result.
type AssessmentResult struct {
	Check    string   `json:"check"`
	Title    string   `json:"title"`
	Severity string   `json:"severity"` // low | medium | high | critical
	Controls []string `json:"controls"` // "iso27001:8.5", "iec62443-3-3:SR 1.1 RE 2"
	Status   string   `json:"status"`   // pass | fail | error | not_applicable
	Message  string   `json:"message"`
	Evidence string   `json:"evidence,omitempty"`
}

// Zone is a network zone.
type Zone struct {
	Name string `json:"name"`
	// Level is the target security level SL-T (0 to 4; 0: none set).
	Level int `json:"level"`
}

// Conduit is an allowed flow into zone To from zone From.
type Conduit struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Port     int    `json:"port"`     // 0: any port
	Protocol string `json:"protocol"` // "tcp", "udp", "" (any)
	// MTLS: the flow is authenticated by mutual TLS with Warden's
	// certificates.
	MTLS bool `json:"mtls"`
}

// Alert is an open alert.
type Alert struct {
	ID     string   `json:"id"`
	Level  string   `json:"level"` // critical | high | medium | low
	RuleID string   `json:"rule_id"`
	Hosts  []string `json:"hosts"` // node names it concerns
}

// People is the state of human users and their authentication.
type People struct {
	// Users is the number of local users; WithMFA how many of them have a
	// second factor (TOTP or passkey) enrolled.
	Users   int `json:"users"`
	WithMFA int `json:"with_mfa"`
	// RequireMFAGroups are the groups whose policies require a second
	// factor.
	RequireMFAGroups []string `json:"require_mfa_groups"`
	// OIDC: single sign-on with an identity provider is configured.
	OIDC bool `json:"oidc"`
	// ZoneMFA tells, per zone name, whether every policy that grants
	// access to the zone's nodes requires a second factor.
	ZoneMFA map[string]MFAProbe `json:"zone_mfa"`
	// PasswordHash is the password hashing scheme ("argon2id").
	PasswordHash string `json:"password_hash"`
	// MinPasswordLength is the enforced minimum password length.
	MinPasswordLength int `json:"min_password_length"`
	// Lockout: repeated failed logins are throttled or locked out.
	Lockout bool `json:"lockout"`
	// SessionIdle is the idle timeout of login sessions (0: none).
	SessionIdle time.Duration `json:"session_idle"`
}

// MFAProbe is the answer to "does reaching this zone need a second
// factor?".
type MFAProbe struct {
	Required bool `json:"required"`
	// Examples are principals or policies that reach the zone without a
	// second factor (when Required is false), or that were probed.
	Examples []string `json:"examples,omitempty"`
}

// Governance is the state of authorization policy and approvals.
type Governance struct {
	// DualControl: some actions require M-of-N approval;
	// DualControlActions lists them.
	DualControl        bool     `json:"dual_control"`
	DualControlActions []string `json:"dual_control_actions"`
	// BreakGlass: an audited break-glass procedure is configured.
	BreakGlass bool `json:"break_glass"`
	// Policies is the number of authorization policies; Roles the number
	// of roles (groups) they grant to.
	Policies int `json:"policies"`
	Roles    int `json:"roles"`
	// DefaultDeny: a request no policy permits is denied.
	DefaultDeny bool `json:"default_deny"`
}

// PKI is the state of the cluster's certificate authority.
type PKI struct {
	// RootKeyOnline: the root CA key is held by the servers (not
	// offline).
	RootKeyOnline bool          `json:"root_key_online"`
	NodeCertTTL   time.Duration `json:"node_cert_ttl"`
	ServerCertTTL time.Duration `json:"server_cert_ttl"`
	// CRL and OCSP: revocation is published by these means.
	CRL  bool `json:"crl"`
	OCSP bool `json:"ocsp"`
	// RevokedOnRemove: removing a node revokes its certificate.
	RevokedOnRemove bool `json:"revoked_on_remove"`
	// HardwareKeys: the CA and server keys live in hardware (HSM/TPM).
	HardwareKeys bool `json:"hardware_keys"`
}

// Key is a transit key.
type Key struct {
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	Latest    int       `json:"latest"`
	RotatedAt time.Time `json:"rotated_at"`
	// AutoRotate is the rotation period; 0 means none, and then the key
	// must have been rotated within a year.
	AutoRotate time.Duration `json:"auto_rotate"`
}

// SecretsStatus is the state of the barrier.
type SecretsStatus struct {
	// Encrypted: values are encrypted by the barrier before storage.
	Encrypted bool `json:"encrypted"`
	// Keyring is the number of barrier keys; RotatedAt when the newest
	// was added.
	Keyring   int       `json:"keyring"`
	RotatedAt time.Time `json:"rotated_at"`
}

// Decisions is the state of enforcement decisions.
type Decisions struct {
	Active int `json:"active"`
	// NFTEnforced is the number of nodes enforcing decisions.
	NFTEnforced int `json:"nft_enforced"`
}

// Attestation is a person's statement that a manual control is in place.
type Attestation struct {
	// Control is the qualified control ID: "iso27001:5.24",
	// "iec62443-3-3:SR 1.6".
	Control string `json:"control"`
	// Zone restricts the attestation to one zone; empty: every zone.
	Zone  string `json:"zone,omitempty"`
	Owner string `json:"owner"`
	Text  string `json:"text"`
	// SHA256 is the hex SHA-256 of the attested document.
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// AuditIndex is the index of the audit record of the attestation;
	// State.Evidence must hold it.
	AuditIndex uint64 `json:"audit_index"`
}

// AuditRecord is an audit log entry with its inclusion proof.
type AuditRecord struct {
	Index uint64 `json:"index"`
	// Entry is the leaf's bytes (the entry's canonical JSON).
	Entry []byte `json:"entry"`
	// Proof is the RFC 6962 inclusion proof of Entry at Index in the
	// tree of the report's checkpoint.
	Proof [][]byte `json:"proof"`
	// About lists the report evidence the record supports, as
	// "<kind>:<ref>" of an evidence item (for example "conduit:dmz->db:5432/tcp",
	// "key:payments", "governance:dual_control"); a check that cites such
	// an item also cites the record.
	About []string `json:"about,omitempty"`
}

// EventsStatus is the state of the event plane.
type EventsStatus struct {
	// Stream: the event stream accepts and stores events.
	Stream bool `json:"stream"`
	// Rules is the number of enabled detection rules.
	Rules int `json:"rules"`
	// Retention is how long events are kept.
	Retention time.Duration `json:"retention"`
}

// ResponseStatus is the state of incident response.
type ResponseStatus struct {
	// Playbooks is the number of enabled response playbooks.
	Playbooks int `json:"playbooks"`
	// OpenIncidents is the number of open incidents.
	OpenIncidents int `json:"open_incidents"`
}

// ClusterStatus is the state of the server cluster.
type ClusterStatus struct {
	// Voters is the number of voting servers (copies of the state).
	Voters int `json:"voters"`
	// LastSnapshot is when the last state snapshot (backup) was taken.
	LastSnapshot time.Time `json:"last_snapshot"`
	// RateLimits: request rate limits and body size limits are enforced.
	RateLimits bool `json:"rate_limits"`
}
