package compliance

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
)

// tnow is the seeded state's clock.
func tnow() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

// seedReader is a deterministic entropy source: SHA-256 in counter mode
// over a label, so keys and notes repeat from run to run.
type seedReader struct {
	label string
	n     int
	buf   []byte
}

func (r *seedReader) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		h := sha256.Sum256(fmt.Appendf(nil, "%s/%d", r.label, r.n))
		r.n++
		r.buf = append(r.buf, h[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

type nodeStore map[[2]uint64][]byte

func (m nodeStore) GetNode(level uint, index uint64) ([]byte, error) {
	h, ok := m[[2]uint64{uint64(level), index}]
	if !ok {
		return nil, fmt.Errorf("no node (%d, %d)", level, index)
	}
	return h, nil
}

// auditLog is a real little audit log: canonical entries, an RFC 6962
// tree, a signed checkpoint and inclusion proofs.
type auditLog struct {
	leaves [][]byte
	ns     nodeStore
	size   uint64
	root   []byte
	note   []byte
	vkey   string
}

// newAuditLog appends n entries, whose actions name what they record.
func newAuditLog(t testing.TB, actions []string) *auditLog {
	t.Helper()
	now := tnow()
	skey, vkey, err := audit.GenerateSigner("warden.test/audit/c1", &seedReader{label: "log"})
	if err != nil {
		t.Fatal(err)
	}
	l := &auditLog{ns: nodeStore{}, vkey: vkey}
	var hashes [][]byte
	for i, a := range actions {
		e := audit.Entry{Action: a, AuthMethod: "token", Outcome: 200, Principal: "alice",
			RaftIndex: uint64(100 + i), RequestID: fmt.Sprintf("req-%d", i), Resource: "r/" + a,
			SourceAddr: "127.0.0.1", Time: audit.FormatTime(now.Add(-time.Duration(len(actions)-i) * time.Hour))}
		b, err := e.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		l.leaves = append(l.leaves, b)
		hashes = append(hashes, audit.LeafHash(b))
	}
	st, nodes, err := audit.Append(audit.TreeState{}, hashes)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		l.ns[[2]uint64{uint64(n.Level), n.Index}] = n.Hash
	}
	l.size = st.Size
	if l.root, err = st.Root(); err != nil {
		t.Fatal(err)
	}
	if l.note, err = audit.Sign(skey, l.size, l.root); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *auditLog) record(t testing.TB, index uint64, about ...string) AuditRecord {
	t.Helper()
	p, err := audit.InclusionProof(l.ns, index, l.size)
	if err != nil {
		t.Fatal(err)
	}
	return AuditRecord{Index: index, Entry: l.leaves[index], Proof: p, About: about}
}

// seededState is a small cluster: three zones, five nodes, conduits,
// alerts, attestations and audit evidence.
func seededState(t testing.TB) *State {
	t.Helper()
	now := tnow()
	log := newAuditLog(t, []string{"sys.init", "policy.write", "conduit.create", "compliance.attest",
		"transit.rotate", "compliance.attest", "approval.configure", "node.enroll"})
	inv := func(days int, basis string, listening ...string) *InventorySummary {
		return &InventorySummary{OS: "Debian GNU/Linux 13", Kernel: "6.12.0", AgentVersion: "0.17.0", Packages: 412,
			PatchAgeDays: days, PatchBasis: basis, Pending: days / 10, Listening: listening, CollectedAt: now.Add(-2 * time.Hour)}
	}
	good := func(controls ...string) AssessmentResult {
		return AssessmentResult{Check: "time-sync", Title: "Time synchronization runs", Severity: "medium",
			Controls: controls, Status: StatusPass, Message: "chrony enabled"}
	}
	sshRoot := AssessmentResult{Check: "sshd-permit-root-login", Title: "SSH refuses root", Severity: "high",
		Controls: []string{"iso27001:8.5", "iso27001:8.9", "iec62443-3-3:SR 1.1"}, Status: StatusFail,
		Message: "PermitRootLogin yes", Evidence: "/etc/ssh/sshd_config:14: PermitRootLogin yes"}
	sshOK := sshRoot
	sshOK.Status, sshOK.Message, sshOK.Evidence = StatusPass, "PermitRootLogin no", ""
	timeSync := good("iso27001:8.17", "iso27001:8.9", "iec62443-3-3:SR 2.11", "iec62443-3-3:SR 2.11 RE 1", "iec62443-3-3:SR 7.6")
	firewall := AssessmentResult{Check: "firewall-active", Title: "A firewall is active", Severity: "critical",
		Controls: []string{"iso27001:8.20", "iso27001:8.9"}, Status: StatusError, Message: "nft: permission denied"}
	return &State{
		GeneratedAt: now,
		TrustDomain: "warden.test",
		Checkpoint:  Checkpoint{Size: log.size, Root: log.root, Note: string(log.note), Witnesses: 1, LogKey: log.vkey},
		Audit: AuditStatus{Verified: true, ScrubbedAt: now.Add(-3 * time.Hour), Witnesses: 2, Cosigned: 1,
			Sinks: []string{"syslog"}, Size: log.size},
		Nodes: []Node{
			{Name: "web-1", Zone: "dmz", State: "active", CertNotAfter: now.Add(40 * time.Minute), CertTTL: time.Hour,
				Inventory:  inv(3, "pending_updates", "tcp 0.0.0.0:443 nginx", "tcp 127.0.0.1:8080 app"),
				Assessment: []AssessmentResult{sshOK, timeSync}, AssessedAt: now.Add(-time.Hour), LastEventAt: now.Add(-time.Minute), Enforcing: true},
			{Name: "web-2", Zone: "dmz", State: "active", CertNotAfter: now.Add(20 * time.Minute), CertTTL: time.Hour,
				Inventory:  inv(45, "installed_versions", "tcp 0.0.0.0:443 nginx", "tcp 0.0.0.0:22 sshd"),
				Assessment: []AssessmentResult{sshRoot, timeSync, firewall}, AssessedAt: now.Add(-time.Hour), LastEventAt: now.Add(-time.Minute), Enforcing: true},
			{Name: "hist-1", Zone: "plant", State: "active", CertNotAfter: now.Add(30 * time.Minute), CertTTL: time.Hour,
				Inventory:  inv(200, "pending_updates", "tcp [::]:5432 postgres"),
				Assessment: []AssessmentResult{sshOK, timeSync}, AssessedAt: now.Add(-2 * time.Hour), LastEventAt: now.Add(-time.Hour), Enforcing: true},
			{Name: "plc-gw", Zone: "control", State: "active", CertNotAfter: now.Add(50 * time.Minute), CertTTL: time.Hour,
				Inventory:  inv(10, "pending_updates", "tcp 0.0.0.0:502 modbusd"),
				Assessment: []AssessmentResult{sshOK, timeSync}, AssessedAt: now.Add(-time.Hour), LastEventAt: now.Add(-time.Minute), Enforcing: true},
			{Name: "eng-ws", Zone: "control", State: "active", CertNotAfter: now.Add(-time.Minute), CertTTL: time.Hour,
				LastEventAt: now.Add(-48 * time.Hour)},
		},
		Zones: []Zone{{Name: "dmz", Level: 2}, {Name: "plant", Level: 2}, {Name: "control", Level: 3}},
		Conduits: []Conduit{
			{From: "internet", To: "dmz", Port: 443, Protocol: "tcp", MTLS: false},
			{From: "dmz", To: "plant", Port: 5432, Protocol: "tcp", MTLS: true},
			{From: "plant", To: "control", Port: 502, Protocol: "tcp", MTLS: true},
			{From: "corp", To: "control", Port: 22, Protocol: "tcp", MTLS: true},
		},
		Alerts: []Alert{
			{ID: "a-2", Level: "high", RuleID: "ssh-bruteforce", Hosts: []string{"web-2"}},
			{ID: "a-1", Level: "critical", RuleID: "webshell", Hosts: []string{"web-2", "web-1"}},
			{ID: "a-3", Level: "low", RuleID: "port-scan", Hosts: []string{"hist-1"}},
		},
		People: People{Users: 12, WithMFA: 10, RequireMFAGroups: []string{"operators"}, OIDC: true,
			ZoneMFA: map[string]MFAProbe{
				"control": {Required: true},
				"plant":   {Required: true},
				"dmz":     {Required: false, Examples: []string{"group:web-admins"}},
			},
			PasswordHash: "argon2id", MinPasswordLength: 12, Lockout: true, SessionIdle: 15 * time.Minute},
		Governance: Governance{DualControl: true, DualControlActions: []string{"policy.write", "pki.root.rotate"},
			BreakGlass: true, Policies: 9, Roles: 4, DefaultDeny: true},
		PKI: PKI{RootKeyOnline: true, NodeCertTTL: time.Hour, ServerCertTTL: 24 * time.Hour, CRL: true, OCSP: false, RevokedOnRemove: true},
		Keys: []Key{
			{Name: "payments", Type: "aes256-gcm96", Latest: 4, RotatedAt: now.Add(-10 * 24 * time.Hour), AutoRotate: 30 * 24 * time.Hour},
			{Name: "backups", Type: "ed25519", Latest: 1, RotatedAt: now.Add(-400 * 24 * time.Hour)},
		},
		Secrets:   SecretsStatus{Encrypted: true, Keyring: 2, RotatedAt: now.Add(-60 * 24 * time.Hour)},
		Decisions: Decisions{Active: 3, NFTEnforced: 4},
		Attestations: []Attestation{
			{Control: "iso27001:5.24", Owner: "ciso", Text: "Incident response plan v3 approved", SHA256: strings.Repeat("ab", 32),
				Created: now.Add(-30 * 24 * time.Hour), Expires: now.Add(60 * 24 * time.Hour), AuditIndex: 3},
			{Control: "iso27001:5.27", Owner: "ciso", Text: "Lessons learned review 2025", SHA256: strings.Repeat("cd", 32),
				Created: now.Add(-200 * 24 * time.Hour), Expires: now.Add(-10 * 24 * time.Hour), AuditIndex: 5},
			{Control: "iec62443-3-3:SR 1.6", Owner: "ot-lead", Text: "No wireless in the plant", SHA256: strings.Repeat("ef", 32),
				Created: now.Add(-10 * 24 * time.Hour), Expires: now.Add(80 * 24 * time.Hour), AuditIndex: 5},
		},
		Evidence: []AuditRecord{
			log.record(t, 1, "governance:policies", "governance:default_deny"),
			log.record(t, 2, "conduit:plant->control:502/tcp"),
			log.record(t, 3),
			log.record(t, 4, "key:payments"),
			log.record(t, 5),
			log.record(t, 6, "governance:dual_control"),
		},
		Events:   EventsStatus{Stream: true, Rules: 42, Retention: 180 * 24 * time.Hour},
		Response: ResponseStatus{Playbooks: 3, OpenIncidents: 1},
		Cluster:  ClusterStatus{Voters: 3, LastSnapshot: now.Add(-4 * time.Hour), RateLimits: true},
	}
}

// testCA is a CA and a server certificate, from fixed Ed25519 seeds.
type testCA struct {
	root   *x509.Certificate
	key    ed25519.PrivateKey
	chain  []*x509.Certificate
	server ed25519.PrivateKey
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	now := tnow()
	seed := func(s string) ed25519.PrivateKey {
		h := sha256.Sum256([]byte(s))
		return ed25519.NewKeyFromSeed(h[:])
	}
	rootKey, serverKey := seed(name+"/root"), seed(name+"/server")
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " root"},
		NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(365 * 24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(nil, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("spiffe://warden.test/server/s1")
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "s1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(23 * time.Hour), URIs: []*url.URL{u},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err = x509.CreateCertificate(nil, leafTmpl, root, serverKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{root: root, key: rootKey, chain: []*x509.Certificate{leaf}, server: serverKey}
}

func (c *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.root)
	return p
}
