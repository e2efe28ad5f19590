package compliance

import (
	"fmt"
	"strings"
)

// Framework names a control catalog.
type Framework string

// The frameworks.
const (
	// ISO27001 is ISO/IEC 27001:2022 Annex A.
	ISO27001 Framework = "iso27001"
	// IEC62443 is IEC 62443-3-3 (system security requirements and
	// security levels).
	IEC62443 Framework = "iec62443-3-3"
)

// Frameworks lists the frameworks.
func Frameworks() []Framework { return []Framework{ISO27001, IEC62443} }

// Control is a control (ISO 27001) or a requirement (IEC 62443-3-3: a
// system requirement "SR 1.1" or one of its enhancements "SR 1.1 RE 1").
type Control struct {
	// ID is the control's number: "5.15", "SR 1.1", "SR 1.1 RE 2".
	ID    string `json:"id"`
	Title string `json:"title"`
	// Description says, in Warden's words, what the control asks for and
	// how Warden evidences it.
	Description string `json:"description"`
	// Family groups controls in reports: the ISO theme or the 62443 FR.
	Family string `json:"family"`
	// FR is the 62443 foundational requirement (1 to 7); 0 for ISO.
	FR int `json:"fr,omitempty"`
	// SL is the lowest 62443 security level (1 to 4) that requires this
	// SR or RE; 0 for ISO.
	SL int `json:"sl,omitempty"`
	// Manual: the control needs a person's attestation; its checks, if
	// any, can only make it fail.
	Manual bool `json:"manual"`
	// Checks are its automated checks.
	Checks []CheckDef `json:"checks"`
}

// Qualified returns the control's ID prefixed by its framework, as
// assessment results and attestations name it: "iso27001:5.15".
func Qualified(fw Framework, id string) string { return string(fw) + ":" + id }

// ParseQualified splits a qualified control ID and checks that the
// control is in the catalog.
func ParseQualified(q string) (Framework, string, error) {
	fw, c, err := Lookup(q)
	if err != nil {
		return "", "", err
	}
	return fw, c.ID, nil
}

// Lookup returns the control a qualified ID names ("iso27001:5.24").
func Lookup(q string) (Framework, Control, error) {
	fw, id, ok := strings.Cut(q, ":")
	if !ok {
		return "", Control{}, fmt.Errorf("compliance: control %q: want framework:id, e.g. iso27001:5.24", q)
	}
	for _, c := range Catalog(Framework(fw)) {
		if c.ID == id {
			return Framework(fw), c, nil
		}
	}
	return "", Control{}, fmt.Errorf("compliance: control %q is not in the catalog", q)
}

// frNames are the foundational requirements of IEC 62443-3-3.
func frNames() [8]string {
	return [8]string{"",
		"FR 1 Identification and authentication control",
		"FR 2 Use control",
		"FR 3 System integrity",
		"FR 4 Data confidentiality",
		"FR 5 Restricted data flow",
		"FR 6 Timely response to events",
		"FR 7 Resource availability",
	}
}

// Catalog returns the controls of fw in catalog order; nil for an unknown
// framework. Each call returns a fresh slice.
func Catalog(fw Framework) []Control {
	switch fw {
	case ISO27001:
		return isoCatalog()
	case IEC62443:
		return iecCatalog()
	}
	return nil
}

// manual marks a control as needing attestation in a check list.
const manual = "manual"

func build(defs map[string]CheckDef, c Control, checks []string) Control {
	for _, id := range checks {
		if id == manual {
			c.Manual = true
			continue
		}
		d, ok := defs[id]
		if !ok {
			panic("compliance: catalog names unknown check " + id) // a programming error, caught by tests
		}
		c.Checks = append(c.Checks, d)
	}
	return c
}

func isoCatalog() []Control {
	defs := checkDefs()
	const org, tech = "5 Organizational controls", "8 Technological controls"
	var out []Control
	add := func(id, family, title, desc string, checks ...string) {
		out = append(out, build(defs, Control{ID: id, Title: title, Description: desc, Family: family}, checks))
	}
	add("5.9", org, "Inventory of assets",
		"The organization knows which systems it runs and what software they carry. Warden's agents report each node's packages, services and addresses.",
		"inventory-present", "nodes-reporting")
	add("5.15", org, "Access control",
		"Rules decide who may reach which information and systems, and everything else is refused. Warden evaluates a policy on every request and denies by default.",
		"default-deny", "policies-defined")
	add("5.16", org, "Identity management",
		"Every person and system has its own identity, managed over its whole life. Warden issues each node its own certificate and manages people's accounts.",
		"human-auth", "node-identity")
	add("5.17", org, "Authentication information",
		"Passwords and other secrets used to authenticate are issued, stored and protected properly. Warden stores Argon2id hashes and tracks second-factor enrolment.",
		"passwords-argon2", "password-policy", "mfa-coverage")
	add("5.18", org, "Access rights",
		"Access rights are granted, reviewed and removed according to policy, with sensitive rights under extra scrutiny. Warden grants rights only through policies and can require a second approver.",
		"default-deny", "policies-defined", "dual-control")
	add("5.24", org, "Incident management planning and preparation",
		"Responsibilities and procedures for handling incidents are defined in advance. Playbooks are checked; the plan itself is attested.",
		manual, "playbooks")
	add("5.25", org, "Assessment and decision on information security events",
		"Security events are assessed to decide whether they are incidents. Warden collects events centrally, evaluates detection rules and raises alerts.",
		"events-stream", "alerts-triaged")
	add("5.26", org, "Response to information security incidents",
		"Incidents are answered following documented procedures. Warden runs playbooks and enforces its decisions on every node.",
		"playbooks", "nodes-enforce")
	add("5.27", org, "Learning from information security incidents",
		"What incidents teach is used to strengthen controls. This is a human process and is attested.",
		manual)
	add("5.28", org, "Collection of evidence",
		"Evidence about events is collected and kept so that it stays trustworthy. Warden's audit log is a Merkle tree with signed, witnessed checkpoints.",
		"audit-verified", "audit-checkpoint-signed", "audit-witnessed")
	add("8.2", tech, "Privileged access rights",
		"Privileged rights are restricted and controlled. Warden can require dual control for sensitive actions and audits any break-glass use.",
		"dual-control", "break-glass")
	add("8.3", tech, "Information access restriction",
		"Access to information follows the access control policy. Warden enforces policies per request, and zones can require a second factor.",
		"default-deny", "policies-defined", "mfa-zone")
	add("8.5", tech, "Secure authentication",
		"Authentication is strong enough for the access it grants. Warden checks password hashing, throttling of failed logins and second factors for zones.",
		"mfa-zone", "passwords-argon2", "login-throttle")
	add("8.8", tech, "Management of technical vulnerabilities",
		"Vulnerabilities are found and fixed in time. Warden measures each node's patch age and runs configuration checks on it.",
		"patch-age")
	add("8.9", tech, "Configuration management",
		"Security configurations are defined, applied and watched for drift. Warden's agents run the signed assessment policies and report the results.",
		"assessment-present", "host-assessment")
	add("8.13", tech, "Information backup",
		"Backups are taken and kept so that data can be restored. Warden replicates its state on several servers and takes snapshots.",
		"backups", "replicated")
	add("8.15", tech, "Logging",
		"Logs of activities are produced, kept and protected. Warden's audit log is verified, checkpointed, witnessed and copied to sinks.",
		"audit-verified", "audit-checkpoint-signed", "audit-witnessed", "audit-sinks", "events-retention")
	add("8.16", tech, "Monitoring activities",
		"Networks and systems are watched for anomalous behaviour. Warden's agents ship events that detection rules evaluate.",
		"events-stream", "nodes-reporting")
	add("8.17", tech, "Clock synchronization",
		"Clocks are synchronized to an agreed source so records can be correlated. Warden's agents check that time synchronization runs.",
		"host-assessment")
	add("8.20", tech, "Networks security",
		"Networks are secured and managed to protect the systems on them. Warden requires mutual TLS on conduits and enforces firewall decisions.",
		"conduits-mtls", "nodes-enforce", "listening-ports")
	add("8.22", tech, "Segregation of networks",
		"Groups of systems are separated into network segments. Warden assigns nodes to zones joined only by declared conduits.",
		"zones-assigned", "zone-boundary")
	add("8.24", tech, "Use of cryptography",
		"Cryptography is used according to rules, including key management. Warden checks barrier encryption, key rotation and certificate lifetimes.",
		"barrier-encrypted", "keys-rotated", "cert-ttl")
	add("8.32", tech, "Change management",
		"Changes to systems are controlled. Every change to Warden's state is audited, and sensitive ones can require approval.",
		"audit-verified", "dual-control")
	return out
}

func iecCatalog() []Control {
	defs := checkDefs()
	names := frNames()
	var out []Control
	add := func(fr, sl int, id, title, desc string, checks ...string) {
		out = append(out, build(defs, Control{ID: id, Title: title, Description: desc, Family: names[fr], FR: fr, SL: sl}, checks))
	}
	// FR 1
	add(1, 1, "SR 1.1", "People are identified and authenticated",
		"Every person using the system is identified and authenticated before access.", "human-auth")
	add(1, 2, "SR 1.1 RE 1", "Each person has an individual identity",
		"People authenticate with their own accounts, never shared ones.", manual, "human-auth")
	add(1, 3, "SR 1.1 RE 2", "Second factor from untrusted networks",
		"Access to the zone needs a second factor.", "mfa-zone")
	add(1, 4, "SR 1.1 RE 3", "Second factor from every network",
		"Every person has a second factor and the zone demands it.", "mfa-zone", "mfa-coverage")
	add(1, 2, "SR 1.2", "Software and devices are identified and authenticated",
		"Nodes and services prove their identity to each other.", "node-identity", "conduits-mtls")
	add(1, 3, "SR 1.2 RE 1", "Each device has an individual identity",
		"Every node holds a certificate of its own.", "node-identity")
	add(1, 1, "SR 1.3", "Account management",
		"Accounts are created, changed and removed by authorized people.", "human-auth", "policies-defined")
	add(1, 3, "SR 1.3 RE 1", "Unified account management",
		"Accounts are managed in one place.", "sso")
	add(1, 1, "SR 1.4", "Identifier management",
		"Identifiers of people and devices are managed and unique.", "node-identity")
	add(1, 1, "SR 1.5", "Authenticator management",
		"Passwords, keys and second factors are issued, stored and changed safely.", "passwords-argon2", "mfa-coverage", "cert-ttl")
	add(1, 3, "SR 1.5 RE 1", "Hardware protection of device credentials",
		"Private keys of devices and servers are kept in hardware.", "hardware-keys")
	add(1, 1, "SR 1.6", "Wireless access management",
		"Wireless access is identified and authenticated.", manual)
	add(1, 2, "SR 1.6 RE 1", "Unique identification of wireless users",
		"Wireless users and devices are individually identified.", manual)
	add(1, 1, "SR 1.7", "Strength of passwords",
		"Passwords meet a minimum strength.", "password-policy")
	add(1, 3, "SR 1.7 RE 1", "Password generation and lifetime for people",
		"People's passwords follow generation and lifetime rules.", manual, "password-policy")
	add(1, 4, "SR 1.7 RE 2", "Password generation and lifetime for all users",
		"Every account's password follows generation and lifetime rules.", manual, "password-policy")
	add(1, 2, "SR 1.8", "Public key infrastructure certificates",
		"Certificates come from a managed PKI that publishes revocation.", "pki-revocation", "node-identity")
	add(1, 2, "SR 1.9", "Strength of public key authentication",
		"Certificates are validated, revocation honoured and lifetimes short.", "cert-ttl", "pki-revocation")
	add(1, 4, "SR 1.9 RE 1", "Hardware protection of public key authentication",
		"Keys used for public key authentication are kept in hardware.", "hardware-keys")
	add(1, 1, "SR 1.10", "Authenticator feedback",
		"Authentication does not reveal secrets while they are typed.", manual)
	add(1, 1, "SR 1.11", "Unsuccessful login attempts",
		"Repeated failed logins are limited.", "login-throttle")
	add(1, 1, "SR 1.12", "System use notification",
		"A notice is shown before access.", manual)
	add(1, 1, "SR 1.13", "Access via untrusted networks",
		"Access from outside the zone is authenticated and controlled.", "conduits-mtls", "default-deny")
	add(1, 2, "SR 1.13 RE 1", "Approval of access from untrusted networks",
		"Remote access needs explicit approval.", "dual-control")
	// FR 2
	add(2, 1, "SR 2.1", "Authorization enforcement",
		"Every action is checked against the permissions of who asks.", "default-deny", "policies-defined")
	add(2, 2, "SR 2.1 RE 1", "Authorization for all users",
		"People, nodes and services are all subject to authorization.", "default-deny", "conduits-mtls")
	add(2, 2, "SR 2.1 RE 2", "Permissions mapped to roles",
		"Permissions are granted to roles.", "roles-defined")
	add(2, 3, "SR 2.1 RE 3", "Supervisor override",
		"An audited override exists for emergencies.", "break-glass")
	add(2, 4, "SR 2.1 RE 4", "Dual approval",
		"Sensitive actions need two people.", "dual-control")
	add(2, 1, "SR 2.2", "Wireless use control",
		"Wireless use is authorized and monitored.", manual)
	add(2, 3, "SR 2.2 RE 1", "Unauthorized wireless devices",
		"Unauthorized wireless devices are found and reported.", manual)
	add(2, 1, "SR 2.3", "Portable and mobile devices",
		"Portable and mobile devices are restricted.", manual)
	add(2, 3, "SR 2.3 RE 1", "Security status of portable devices",
		"Portable devices are checked before they connect.", manual)
	add(2, 1, "SR 2.4", "Mobile code",
		"Code that moves between systems is restricted.", manual)
	add(2, 3, "SR 2.4 RE 1", "Integrity of mobile code",
		"Mobile code is checked for integrity before it runs.", manual)
	add(2, 1, "SR 2.5", "Session lock",
		"Idle sessions lock.", "session-idle")
	add(2, 2, "SR 2.6", "Remote session termination",
		"Remote sessions end after inactivity or on demand.", manual, "session-idle")
	add(2, 3, "SR 2.7", "Concurrent session control",
		"The number of concurrent sessions is limited.", manual)
	add(2, 1, "SR 2.8", "Auditable events",
		"Security-relevant actions are recorded.", "audit-verified")
	add(2, 3, "SR 2.8 RE 1", "Central, system-wide audit trail",
		"Audit records are collected centrally into one trail that independent parties can check.",
		"audit-verified", "audit-checkpoint-signed", "audit-witnessed", "events-stream")
	add(2, 1, "SR 2.9", "Audit storage capacity",
		"Enough storage is allotted to audit records.", "audit-verified", "audit-sinks")
	add(2, 3, "SR 2.9 RE 1", "Warning before audit storage fills",
		"Operators are warned before audit storage runs out.", manual)
	add(2, 1, "SR 2.10", "Response to audit processing failures",
		"The system reacts safely when audit recording fails (Warden refuses the operation).", "audit-verified")
	add(2, 2, "SR 2.11", "Timestamps",
		"Audit records carry timestamps.", "audit-verified", "host-assessment")
	add(2, 3, "SR 2.11 RE 1", "Internal time synchronization",
		"System clocks are synchronized.", "host-assessment")
	add(2, 4, "SR 2.11 RE 2", "Protected time source",
		"Changes to the time source are detected and reported.", manual)
	add(2, 3, "SR 2.12", "Non-repudiation",
		"Who did what cannot later be denied.", "audit-checkpoint-signed", "audit-witnessed")
	add(2, 4, "SR 2.12 RE 1", "Non-repudiation for all users",
		"Non-repudiation covers every account, each with a second factor.", "audit-checkpoint-signed", "audit-witnessed", "mfa-coverage")
	// FR 3
	add(3, 1, "SR 3.1", "Communication integrity",
		"Data in transit is protected from modification.", "conduits-mtls")
	add(3, 3, "SR 3.1 RE 1", "Cryptographic integrity protection",
		"Integrity in transit is protected by cryptography.", "conduits-mtls")
	add(3, 1, "SR 3.2", "Malicious code protection",
		"Malicious code is prevented, detected and removed.", manual)
	add(3, 2, "SR 3.2 RE 1", "Malicious code protection at entry and exit points",
		"Protection applies where data enters or leaves the zone.", manual)
	add(3, 3, "SR 3.2 RE 2", "Central management of malicious code protection",
		"Protection is centrally managed and reports centrally.", manual)
	add(3, 2, "SR 3.3", "Security functionality verification",
		"Security functions are verified to work.", "assessment-present", "audit-verified")
	add(3, 3, "SR 3.3 RE 1", "Automated verification",
		"Verification is automated.", "assessment-present")
	add(3, 4, "SR 3.3 RE 2", "Verification during normal operation",
		"Verification runs during operation without disruption.", manual, "assessment-present")
	add(3, 2, "SR 3.4", "Software and information integrity",
		"Unauthorized changes to software and data are detected.", "audit-verified", "inventory-present")
	add(3, 3, "SR 3.4 RE 1", "Notification of integrity violations",
		"Integrity violations are reported automatically.", "events-stream", "audit-verified")
	add(3, 1, "SR 3.5", "Input validation",
		"Inputs are validated.", manual)
	add(3, 1, "SR 3.6", "Deterministic output",
		"Outputs go to a known state when operation is disrupted.", manual)
	add(3, 2, "SR 3.7", "Error handling",
		"Errors are handled without revealing exploitable detail.", manual)
	add(3, 2, "SR 3.8", "Session integrity",
		"Sessions are protected from hijacking and injection.", manual, "conduits-mtls")
	add(3, 3, "SR 3.8 RE 1", "Session IDs invalidated at logout",
		"Session identifiers stop working when sessions end.", manual)
	add(3, 3, "SR 3.8 RE 2", "Unique session IDs",
		"Each session gets a unique identifier.", manual)
	add(3, 4, "SR 3.8 RE 3", "Random session IDs",
		"Session identifiers are unpredictable.", manual)
	add(3, 2, "SR 3.9", "Protection of audit information",
		"Audit records and tools are protected from unauthorized change.", "audit-verified", "audit-checkpoint-signed")
	add(3, 4, "SR 3.9 RE 1", "Audit records on write-once media",
		"Audit records are kept where they cannot be rewritten.", manual, "audit-witnessed", "audit-sinks")
	// FR 4
	add(4, 1, "SR 4.1", "Information confidentiality",
		"Information is kept confidential at rest and in transit.", "barrier-encrypted", "conduits-mtls")
	add(4, 2, "SR 4.1 RE 1", "Confidentiality at rest and over untrusted networks",
		"Stored data is encrypted and traffic over untrusted networks too.", "barrier-encrypted", "conduits-mtls")
	add(4, 4, "SR 4.1 RE 2", "Confidentiality across zone boundaries",
		"Every flow crossing a zone boundary is encrypted.", "conduits-mtls")
	add(4, 2, "SR 4.2", "Information persistence",
		"Data is purged from components before they leave service.", manual)
	add(4, 3, "SR 4.2 RE 1", "Purging of shared memory",
		"Shared memory is cleared before reuse.", manual)
	add(4, 1, "SR 4.3", "Use of cryptography",
		"Cryptography follows accepted practice, including key management.", "barrier-encrypted", "keys-rotated", "cert-ttl")
	// FR 5
	add(5, 1, "SR 5.1", "Network segmentation",
		"Control system networks are segmented from others.", "zones-assigned")
	add(5, 2, "SR 5.1 RE 1", "Physical network segmentation",
		"Segmentation is physical.", manual)
	add(5, 3, "SR 5.1 RE 2", "Independence from other networks",
		"The zone keeps working without networks outside it.", manual)
	add(5, 4, "SR 5.1 RE 3", "Isolation of critical networks",
		"Critical networks are logically and physically isolated.", manual)
	add(5, 1, "SR 5.2", "Zone boundary protection",
		"Traffic across zone boundaries is monitored and controlled.", "zone-boundary")
	add(5, 2, "SR 5.2 RE 1", "Deny by default, allow by exception",
		"Only declared flows cross the boundary.", "default-deny", "zone-boundary", "nodes-enforce")
	add(5, 3, "SR 5.2 RE 2", "Island mode",
		"The zone can be cut off from others on demand.", manual)
	add(5, 3, "SR 5.2 RE 3", "Fail close",
		"If boundary protection fails, traffic stops.", manual)
	add(5, 1, "SR 5.3", "Person-to-person communication restrictions",
		"General-purpose messaging across the boundary is restricted.", manual)
	add(5, 3, "SR 5.3 RE 1", "No person-to-person communication",
		"General-purpose messaging across the boundary is forbidden.", manual)
	add(5, 1, "SR 5.4", "Application partitioning",
		"Applications are partitioned by criticality.", manual, "listening-ports")
	// FR 6
	add(6, 1, "SR 6.1", "Audit log accessibility",
		"Authorized people can read the audit log.", "audit-verified")
	add(6, 3, "SR 6.1 RE 1", "Programmatic access to audit logs",
		"Tools can read and verify the audit log through an interface.", "audit-checkpoint-signed")
	add(6, 2, "SR 6.2", "Continuous monitoring",
		"The system is monitored continuously for security events.", "events-stream", "nodes-reporting")
	// FR 7
	add(7, 1, "SR 7.1", "Denial of service protection",
		"The system keeps its essential functions under overload.", "rate-limits")
	add(7, 2, "SR 7.1 RE 1", "Managing communication loads",
		"Communication load is limited.", "rate-limits")
	add(7, 3, "SR 7.1 RE 2", "Limiting effects on other systems",
		"The system cannot be used to flood others.", manual)
	add(7, 1, "SR 7.2", "Resource management",
		"Resources are limited so that one use cannot exhaust them.", manual, "rate-limits")
	add(7, 1, "SR 7.3", "Control system backup",
		"Backups are taken.", "backups")
	add(7, 2, "SR 7.3 RE 1", "Backup verification",
		"Backups are verified to restore.", manual, "backups")
	add(7, 3, "SR 7.3 RE 2", "Backup automation",
		"Backups are automatic.", "backups", "replicated")
	add(7, 1, "SR 7.4", "Recovery and reconstitution",
		"The system returns to a known secure state after a failure.", "replicated")
	add(7, 1, "SR 7.5", "Emergency power",
		"Power loss does not leave the system insecure.", manual)
	add(7, 1, "SR 7.6", "Network and security configuration settings",
		"Security settings are set to recommended values and checked.", "assessment-present", "host-assessment")
	add(7, 3, "SR 7.6 RE 1", "Machine-readable configuration reports",
		"Current security settings can be reported in machine-readable form.", "assessment-present")
	add(7, 1, "SR 7.7", "Least functionality",
		"Unneeded functions, ports and services are disabled.", "listening-ports")
	add(7, 2, "SR 7.8", "Component inventory",
		"An inventory of components is kept.", "inventory-present", "nodes-reporting")
	return out
}
