package api

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/warden-sec/warden/internal/agent/inventory"
	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/compliance"
	"github.com/warden-sec/warden/internal/compliance/assess"
	"github.com/warden-sec/warden/internal/compliance/records"
	"github.com/warden-sec/warden/internal/compliance/signed"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/names"
)

// Compliance routes (docs/compliance.md): what nodes report (inventory,
// assessment results), the check policies they run, attestations of
// manual controls, the evaluated status and signed reports.

// ComplianceSource is what the compliance routes need of the server: the
// live state to evaluate, and the key that signs documents.
type ComplianceSource interface {
	// State assembles the live state, with the audit records the checks
	// cite and their inclusion proofs against the current signed
	// checkpoint.
	State(ctx context.Context) (*compliance.State, error)
	// DocumentSigner is this server's signing key and chain.
	DocumentSigner() (crypto.Signer, []*x509.Certificate, error)
}

// complianceH wraps a compliance handler: without the services it answers
// 503.
func (s *Server) complianceH(h handlerFunc) handlerFunc {
	return func(req *request) (int, any, error) {
		if s.cfg.Records == nil || s.cfg.Compliance == nil {
			return 0, nil, errs.E(errs.Unavailable, "compliance is not configured on this server")
		}
		return h(req)
	}
}

// nodeSelf targets the calling node itself: routes only a node's client
// certificate may use (inventory, results, its check policies).
func nodeSelf(action string) targetFunc {
	return func(r *request) (target, error) {
		c := r.caller
		if c == nil || c.method != "mtls" {
			return target{}, errs.E(errs.Denied, "permission denied: a node sends this with its client certificate, not a token")
		}
		return target{action: action, resource: entity(authz.TypeNode, c.attrs["name"], nil)}, nil
	}
}

func (s *Server) complianceRoutes() []route {
	const ok, noContent = http.StatusOK, http.StatusNoContent
	system := func(action string) targetFunc { return fixed(action, authz.TypeSystem, "warden") }
	h := s.complianceH
	return []route{
		{method: "POST", pattern: "/v1/inventory", name: "inventory.write", target: nodeSelf(authz.ActionInventoryWrite), audit: auditChange, status: ok, h: h(s.inventoryWrite)},
		{method: "GET", pattern: "/v1/nodes/{name}/inventory", name: "inventory.read", target: nodeTarget(authz.ActionInventoryRead), audit: auditRead, status: ok, h: h(s.inventoryRead)},
		{method: "GET", pattern: "/v1/nodes/{name}/inventory/history", name: "inventory.history", target: nodeTarget(authz.ActionInventoryRead), audit: auditRead, status: ok, h: h(s.inventoryHistory)},
		{method: "GET", pattern: "/v1/nodes/{name}/assessment", name: "inventory.assessment", target: nodeTarget(authz.ActionInventoryRead), audit: auditRead, status: ok, h: h(s.assessmentRead)},
		// A page of the fleet's summaries (fleet.go): Node::"*" here, and
		// each name in the handler.
		{method: "GET", pattern: "/v1/inventory/summaries", name: "inventory.summaries", target: nodeTarget(authz.ActionInventoryRead), audit: auditRead, status: ok, h: h(s.inventorySummaries)},
		{method: "GET", pattern: "/v1/compliance/risk", name: "compliance.risk", target: system(authz.ActionComplianceRead), audit: auditRead, status: ok, h: h(s.complianceRisk)},
		{method: "GET", pattern: "/v1/compliance/assessment", name: "compliance.assessment", target: nodeSelf(authz.ActionAssessmentRead), audit: auditNone, status: ok, h: h(s.assessmentBundle)},
		{method: "POST", pattern: "/v1/compliance/results", name: "compliance.results", target: nodeSelf(authz.ActionInventoryWrite), audit: auditChange, status: ok, h: h(s.resultsWrite)},
		{method: "GET", pattern: "/v1/compliance/policies", name: "compliance.policies.list", target: system(authz.ActionComplianceRead), audit: auditRead, status: ok, h: h(s.checkPoliciesList)},
		{method: "PUT", pattern: "/v1/compliance/policies/{name}", name: "compliance.policies.write", target: system(authz.ActionComplianceWrite), audit: auditChange, status: ok, h: h(s.checkPolicyPut)},
		{method: "DELETE", pattern: "/v1/compliance/policies/{name}", name: "compliance.policies.delete", target: system(authz.ActionComplianceWrite), audit: auditChange, status: noContent, h: h(s.checkPolicyDelete)},
		{method: "POST", pattern: "/v1/compliance/attestations", name: "compliance.attest", target: system(authz.ActionComplianceAttest), audit: auditChange, status: ok, h: h(s.attest)},
		{method: "DELETE", pattern: "/v1/compliance/attestations/{id}", name: "compliance.attest.withdraw", target: system(authz.ActionComplianceAttest), audit: auditChange, status: noContent, h: h(s.attestWithdraw)},
		{method: "GET", pattern: "/v1/compliance/attestations", name: "compliance.attestations.list", target: system(authz.ActionComplianceRead), audit: auditRead, status: ok, h: h(s.attestationsList)},
		{method: "GET", pattern: "/v1/compliance/evaluations/{framework}", name: "compliance.evaluation", target: system(authz.ActionComplianceRead), audit: auditRead, status: ok, h: h(s.complianceEvaluation)},
		{method: "GET", pattern: "/v1/compliance/summary", name: "compliance.summary", target: system(authz.ActionComplianceRead), audit: auditRead, status: ok, h: h(s.complianceSummary)},
		{method: "GET", pattern: "/v1/compliance/status", name: "compliance.status", target: system(authz.ActionComplianceRead), audit: auditRead, status: ok, h: h(s.complianceStatus)},
		{method: "POST", pattern: "/v1/compliance/reports", name: "compliance.report", target: system(authz.ActionComplianceRead), audit: auditChange, status: ok, h: h(s.complianceReport),
			timeout: 55 * time.Second},
	}
}

// nodeLimiter admits one request per node and kind per interval (what a
// node's certificate can make the cluster store).
type nodeLimiter struct {
	mu     sync.Mutex
	last   map[string]time.Time
	pruned time.Time // when last was last pruned
}

// allow reports whether key may go now, or how long it must wait.
func (l *nodeLimiter) allow(key string, now time.Time, every time.Duration) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	if len(l.last) > 100_000 && now.Sub(l.pruned) >= every { // forget only what has waited long enough, at most once a period
		l.pruned = now
		for k, t := range l.last {
			if now.Sub(t) >= every {
				delete(l.last, k)
			}
		}
	}
	if t, ok := l.last[key]; ok && now.Sub(t) < every {
		return false, every - now.Sub(t)
	}
	l.last[key] = now
	return true, 0
}

// NodeReportInterval is how often one node may send its inventory, and
// its results for one policy.
const NodeReportInterval = time.Minute

// MaxClockSkew is how far ahead of this server's clock a node's report
// may be dated.
const MaxClockSkew = 10 * time.Minute

func (s *Server) nodeRate(kind, node string) error {
	ok, wait := s.nodeLimit.allow(kind+"/"+node, s.now(), NodeReportInterval)
	if ok {
		return nil
	}
	return errs.WithRetryAfter(errs.E(errs.RateLimited, "node %s sent its %s less than %s ago; send it again later", node, kind, NodeReportInterval), wait)
}

type inventoryResponse struct {
	Stored      bool   `json:"stored"`
	Fingerprint string `json:"fingerprint"`
}

// inventoryWrite is POST /v1/inventory: the calling node's inventory,
// stored when it changed.
func (s *Server) inventoryWrite(req *request) (int, any, error) {
	node := req.caller.attrs["name"]
	if err := s.nodeRate("inventory", node); err != nil {
		return 0, nil, err
	}
	var inv inventory.Inventory
	if err := req.decode(&inv, false); err != nil {
		return 0, nil, err
	}
	if err := inventory.Validate(&inv); err != nil {
		return 0, nil, errs.E(errs.Invalid, "%v", err)
	}
	ctx := req.Context()
	fp := inv.Fingerprint()
	var change json.RawMessage
	if prev, err := s.cfg.Records.Inventory(ctx, node); err == nil {
		var old inventory.Inventory
		if json.Unmarshal(prev.Inventory, &old) == nil {
			if prev.Fingerprint == fp {
				return http.StatusOK, inventoryResponse{Stored: false, Fingerprint: fp}, nil
			}
			change, _ = json.Marshal(inventory.Diff(&old, &inv))
		}
	} else if !errs.Is(err, errs.NotFound) {
		return 0, nil, err
	}
	raw, err := json.Marshal(&inv)
	if err != nil {
		return 0, nil, err
	}
	days, basis := inventory.PatchAge(&inv, s.now())
	sum := records.Summary{OS: inv.OS.PrettyName, Kernel: inv.Kernel, AgentVersion: inv.AgentVersion, Packages: len(inv.Packages),
		Pending: len(inv.Pending), PatchAgeDays: days, PatchBasis: basis, CollectedAt: inv.CollectedAt, Enforcement: inv.Enforcement}
	if sum.OS == "" {
		sum.OS = strings.TrimSpace(inv.OS.Name + " " + inv.OS.Version)
	}
	// What compliance compares with the conduits: sockets reachable from
	// the network (loopback left out), each once.
	listed := map[string]bool{}
	for _, l := range inv.Listening {
		if ip := net.ParseIP(l.Address); ip != nil && ip.IsLoopback() {
			continue
		}
		addr := l.Address
		if strings.Contains(addr, ":") {
			addr = "[" + addr + "]"
		}
		item := l.Proto + " " + addr + ":" + strconv.Itoa(l.Port) + " " + l.Process
		if !listed[item] {
			listed[item] = true
			sum.Listening = append(sum.Listening, item)
		}
	}
	stored, err := s.cfg.Records.PutInventory(ctx, node, fp, raw, sum, change)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, inventoryResponse{Stored: stored, Fingerprint: fp}, nil
}

func (s *Server) inventoryRead(req *request) (int, any, error) {
	inv, err := s.cfg.Records.Inventory(req.Context(), req.PathValue("name"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, inv, nil
}

type historyResponse struct {
	Node    string           `json:"node"`
	Changes []records.Change `json:"changes"`
}

func (s *Server) inventoryHistory(req *request) (int, any, error) {
	node := req.PathValue("name")
	h, err := s.cfg.Records.History(req.Context(), node)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, historyResponse{Node: node, Changes: h}, nil
}

type nodeResultsResponse struct {
	Node    string            `json:"node"`
	Results []records.Results `json:"results"`
}

func (s *Server) assessmentRead(req *request) (int, any, error) {
	node := req.PathValue("name")
	rs, err := s.cfg.Records.NodeResults(req.Context(), node)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, nodeResultsResponse{Node: node, Results: rs}, nil
}

// BundlePolicy is one check policy of the bundle sent to agents.
type BundlePolicy struct {
	Name string `json:"name"`
	YAML string `json:"yaml"`
}

// BundlePayload is what the servers sign for agents.
type BundlePayload struct {
	Policies []BundlePolicy `json:"policies"`
	IssuedAt time.Time      `json:"issued_at"`
}

// SignedBundle is GET /v1/compliance/assessment's answer: the payload's
// exact bytes and their signature.
type SignedBundle struct {
	Payload   []byte            `json:"payload"`
	Signature *signed.Signature `json:"signature"`
}

// What a bundle of check policies may hold: agents refuse more.
const (
	MaxBundlePolicies = 64
	MaxBundleBytes    = 4 << 20
)

// BuiltinPolicyName is the check policy the servers send unless one of
// the same name is stored.
const BuiltinPolicyName = "linux-baseline"

// checkPolicies returns the policies agents run: the built-in one unless
// replaced, and the stored ones, by name.
func (s *Server) checkPolicies(ctx context.Context) ([]BundlePolicy, []records.Policy, error) {
	stored, err := s.cfg.Records.Policies(ctx)
	if err != nil {
		return nil, nil, err
	}
	var out []BundlePolicy
	if !slices.ContainsFunc(stored, func(p records.Policy) bool { return p.Name == BuiltinPolicyName }) {
		out = append(out, BundlePolicy{Name: BuiltinPolicyName, YAML: string(assess.Builtin())})
	}
	for _, p := range stored {
		out = append(out, BundlePolicy{Name: p.Name, YAML: p.YAML})
	}
	slices.SortFunc(out, func(a, b BundlePolicy) int { return strings.Compare(a.Name, b.Name) })
	return out, stored, nil
}

// assessmentBundle is GET /v1/compliance/assessment: the check policies
// the calling node runs, signed by this server.
func (s *Server) assessmentBundle(req *request) (int, any, error) {
	ps, _, err := s.checkPolicies(req.Context())
	if err != nil {
		return 0, nil, err
	}
	// The same policies signed less than a minute ago are sent again as
	// they were: every agent polls this, and a signature costs more than
	// the read.
	h := sha256.New()
	for _, p := range ps {
		h.Write([]byte(p.Name + "\x00" + p.YAML + "\x00"))
	}
	var sum [32]byte
	h.Sum(sum[:0])
	now := s.now()
	s.bundleMu.Lock()
	cached := s.bundle
	s.bundleMu.Unlock()
	if cached != nil && cached.sum == sum && now.Sub(cached.at) >= 0 && now.Sub(cached.at) < time.Minute {
		return http.StatusOK, cached.out, nil
	}
	payload, err := json.Marshal(BundlePayload{Policies: ps, IssuedAt: now.UTC()})
	if err != nil {
		return 0, nil, err
	}
	key, chain, err := s.cfg.Compliance.DocumentSigner()
	if err != nil {
		return 0, nil, errs.Wrap(errs.Unavailable, err, "cannot sign the check policies now")
	}
	sig, err := signed.Sign(key, chain, payload, now)
	if err != nil {
		return 0, nil, err
	}
	out := SignedBundle{Payload: payload, Signature: sig}
	s.bundleMu.Lock()
	s.bundle = &signedBundle{sum: sum, at: now, out: out}
	s.bundleMu.Unlock()
	return http.StatusOK, out, nil
}

// signedBundle is the last bundle this server signed.
type signedBundle struct {
	sum [32]byte
	at  time.Time
	out SignedBundle
}

type resultsRequest struct {
	Policy  string          `json:"policy"`
	RanAt   time.Time       `json:"ran_at"`
	Results []assess.Result `json:"results"`
}

type resultsResponse struct {
	Stored bool `json:"stored"`
}

// resultsWrite is POST /v1/compliance/results: the calling node's results
// of one policy, stored when a status changed (or daily); each changed
// status is a server event.
func (s *Server) resultsWrite(req *request) (int, any, error) {
	node := req.caller.attrs["name"]
	var in resultsRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if in.RanAt.IsZero() {
		return 0, nil, errs.E(errs.Invalid, "ran_at: required (RFC 3339)")
	}
	if in.RanAt.After(s.now().Add(MaxClockSkew)) {
		return 0, nil, errs.E(errs.Invalid, "ran_at: %s is in the future (this server's clock says %s)", in.RanAt.UTC().Format(time.RFC3339), s.now().UTC().Format(time.RFC3339))
	}
	if err := assess.ValidateResults(in.Results); err != nil {
		return 0, nil, errs.E(errs.Invalid, "%v", err)
	}
	// Only results of a policy the servers send, for its checks: title,
	// severity and controls come from the policy, not from the node, so a
	// node can neither invent a policy nor map a check to other controls.
	ps, _, err := s.checkPolicies(req.Context())
	if err != nil {
		return 0, nil, err
	}
	i := slices.IndexFunc(ps, func(p BundlePolicy) bool { return p.Name == in.Policy })
	if i < 0 {
		return 0, nil, errs.E(errs.Invalid, "policy: %q is not a check policy the servers send", in.Policy)
	}
	if err := s.nodeRate("results of "+in.Policy, node); err != nil {
		return 0, nil, err
	}
	pol, err := assess.Parse(ps[i].Name, []byte(ps[i].YAML))
	if err != nil {
		return 0, nil, err
	}
	checks := make(map[string]*assess.Check, len(pol.Checks))
	for j := range pol.Checks {
		checks[pol.Checks[j].ID] = &pol.Checks[j]
	}
	seen := make(map[string]bool, len(in.Results))
	for j := range in.Results {
		r := &in.Results[j]
		c, ok := checks[r.Check]
		if !ok || seen[r.Check] {
			return 0, nil, errs.E(errs.Invalid, "results[%d].check: %q is not a check of policy %s, or is repeated", j, r.Check, in.Policy)
		}
		seen[r.Check] = true
		r.Title, r.Severity, r.Controls = c.Title, c.Severity, c.Controls
	}
	lines := make([]string, 0, len(in.Results))
	for _, r := range in.Results {
		lines = append(lines, r.Check+"\x00"+r.Status)
	}
	slices.Sort(lines)
	d := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	raw, err := json.Marshal(in.Results)
	if err != nil {
		return 0, nil, err
	}
	stored, prev, err := s.cfg.Records.PutResults(req.Context(), node, in.Policy, in.RanAt, hex.EncodeToString(d[:]), raw)
	if err != nil {
		return 0, nil, err
	}
	if stored {
		s.emitAssessmentChanges(node, in.Policy, prev, in.Results)
	}
	return http.StatusOK, resultsResponse{Stored: stored}, nil
}

// emitAssessmentChanges sends a server event for each check whose status
// differs from the stored results (or that did not pass, the first time).
func (s *Server) emitAssessmentChanges(node, policy string, prev *records.Results, cur []assess.Result) {
	before := map[string]string{}
	if prev != nil {
		var old []assess.Result
		if json.Unmarshal(prev.Results, &old) == nil {
			for _, r := range old {
				before[r.Check] = r.Status
			}
		}
	}
	for _, r := range cur {
		was, known := before[r.Check]
		if was == r.Status || (!known && r.Status == assess.StatusPass) {
			continue
		}
		s.cfg.ServerEvents.Emit(events.ActionAssessmentChanged, events.Event{
			"warden.node": node, "warden.policy": policy, "warden.check": r.Check, "warden.severity": r.Severity,
			"warden.status": r.Status, "warden.previous_status": was, events.FieldMessage: r.Message,
		})
	}
}

type checkPolicyInfo struct {
	Name    string    `json:"name"`
	Builtin bool      `json:"builtin"`
	Version uint64    `json:"version,omitempty"`
	Updated time.Time `json:"updated_time,omitzero"`
	Checks  int       `json:"checks"`
	YAML    string    `json:"yaml"`
}

type checkPoliciesResponse struct {
	Policies []checkPolicyInfo `json:"policies"`
}

func (s *Server) checkPoliciesList(req *request) (int, any, error) {
	ps, stored, err := s.checkPolicies(req.Context())
	if err != nil {
		return 0, nil, err
	}
	out := checkPoliciesResponse{Policies: []checkPolicyInfo{}}
	for _, p := range ps {
		info := checkPolicyInfo{Name: p.Name, YAML: p.YAML, Builtin: true}
		if i := slices.IndexFunc(stored, func(r records.Policy) bool { return r.Name == p.Name }); i >= 0 {
			info.Builtin, info.Version, info.Updated = false, stored[i].Version, stored[i].Updated
		}
		if pol, err := assess.Parse(p.Name, []byte(p.YAML)); err == nil {
			info.Checks = len(pol.Checks)
		}
		out.Policies = append(out.Policies, info)
	}
	return http.StatusOK, out, nil
}

// checkPolicyPut is PUT /v1/compliance/policies/{name}: the YAML of a
// check policy (as playbooks are sent), checked before it is stored;
// ?cas=N stores it only if the stored version is N (0: not there).
func (s *Server) checkPolicyPut(req *request) (int, any, error) {
	name := req.PathValue("name")
	if c, err := names.Canonical(name); err != nil || c != name {
		return 0, nil, errs.E(errs.Invalid, "name: %q is not a canonical name", name)
	}
	var cas *uint64
	if v := req.URL.Query().Get("cas"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, nil, errs.E(errs.Invalid, "cas: %q is not a version number", v)
		}
		cas = &n
	}
	src, err := req.yamlBody("check policy")
	if err != nil {
		return 0, nil, err
	}
	p, err := assess.Parse(name, src)
	if err != nil {
		return 0, nil, errs.E(errs.Invalid, "%v", err)
	}
	if p.Name != name {
		return 0, nil, errs.E(errs.Invalid, "policy: the document names %q, the path %q", p.Name, name)
	}
	// What every agent accepts in one bundle (MaxBundlePolicies policies,
	// MaxBundleBytes of YAML): a write past it would make every agent
	// refuse the servers' policies.
	current, _, err := s.checkPolicies(req.Context())
	if err != nil {
		return 0, nil, err
	}
	total, count := len(src), 1
	for _, o := range current {
		if o.Name != name { // the one written replaces it (the built-in included)
			total += len(o.YAML)
			count++
		}
	}
	if count > MaxBundlePolicies || total > MaxBundleBytes {
		return 0, nil, errs.E(errs.Invalid, "policy: with it the servers would send %d policies, %d bytes: at most %d policies and %d bytes (what agents accept)",
			count, total, MaxBundlePolicies, MaxBundleBytes)
	}
	rec, err := s.cfg.Records.PutPolicy(req.Context(), name, string(src), cas)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, checkPolicyInfo{Name: rec.Name, Version: rec.Version, Updated: rec.Updated, Checks: len(p.Checks), YAML: rec.YAML}, nil
}

func (s *Server) checkPolicyDelete(req *request) (int, any, error) {
	if err := s.cfg.Records.DeletePolicy(req.Context(), req.PathValue("name")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// MaxAttestationBytes bounds an attestation's text.
const MaxAttestationBytes = 64 << 10

type attestRequest struct {
	Control string `json:"control"`
	Text    string `json:"text"`
	// Expires is a duration from now ("90d", "2160h") or an RFC 3339
	// time; at most 3 years ahead.
	Expires string `json:"expires"`
}

// attest is POST /v1/compliance/attestations: the caller states that a
// manual control is in place, until it expires.
func (s *Server) attest(req *request) (int, any, error) {
	var in attestRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	_, c, err := compliance.Lookup(in.Control)
	if err != nil {
		return 0, nil, errs.E(errs.Invalid, "control: %q is not a control of the catalog (for example iso27001:5.24 or \"iec62443-3-3:SR 2.12\")", in.Control)
	}
	if !c.Manual {
		return 0, nil, errs.E(errs.Invalid, "control: %s is checked automatically from live state; only manual controls take attestations", in.Control)
	}
	if strings.TrimSpace(in.Text) == "" {
		return 0, nil, errs.E(errs.Invalid, "text: required (what is in place, who checked it)")
	}
	if len(in.Text) > MaxAttestationBytes || !utf8.ValidString(in.Text) {
		return 0, nil, errs.E(errs.Invalid, "text: at most %d bytes of UTF-8", MaxAttestationBytes)
	}
	now := s.now().UTC()
	exp, err := parseExpiry(in.Expires, now)
	if err != nil {
		return 0, nil, err
	}
	sum := sha256.Sum256([]byte(in.Text))
	// Into the record before it commits with the attestation.
	if e := req.entry; e != nil {
		if e.Hashes == nil {
			e.Hashes = map[string]string{}
		}
		e.Hashes["attestation"] = "sha256:" + hex.EncodeToString(sum[:])
	}
	a, err := s.cfg.Records.Attest(req.Context(), records.Attestation{Control: in.Control, Owner: req.caller.String(), Text: in.Text,
		SHA256: hex.EncodeToString(sum[:]), Expires: exp})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, a, nil
}

// parseExpiry reads "90d", a Go duration or an RFC 3339 time.
func parseExpiry(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, errs.E(errs.Invalid, "expires: required (for example 90d, or an RFC 3339 time)")
	}
	var t time.Time
	if n, ok := strings.CutSuffix(v, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d <= 0 {
			return t, errs.E(errs.Invalid, "expires: %q: want a positive number of days, a duration or an RFC 3339 time", v)
		}
		t = now.AddDate(0, 0, d)
	} else if d, err := time.ParseDuration(v); err == nil {
		t = now.Add(d)
	} else if t, err = time.Parse(time.RFC3339, v); err != nil {
		return t, errs.E(errs.Invalid, "expires: %q: want a number of days (90d), a duration or an RFC 3339 time", v)
	}
	if !t.After(now) || t.After(now.AddDate(3, 0, 0)) {
		return t, errs.E(errs.Invalid, "expires: must be in the future and at most 3 years ahead")
	}
	return t.UTC(), nil
}

// attestWithdraw is DELETE /v1/compliance/attestations/{id}.
func (s *Server) attestWithdraw(req *request) (int, any, error) {
	id := req.PathValue("id")
	if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" {
		return 0, nil, errs.E(errs.Invalid, "id: %q is not an attestation id (16 hex digits)", id)
	}
	if err := s.cfg.Records.WithdrawAttestation(req.Context(), id); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

type attestationsResponse struct {
	Attestations []records.Attestation `json:"attestations"`
}

func (s *Server) attestationsList(req *request) (int, any, error) {
	as, err := s.cfg.Records.Attestations(req.Context(), req.URL.Query().Get("control"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, attestationsResponse{Attestations: as}, nil
}

// reportQuery reads framework and zone.
func reportQuery(framework, zone string) (compliance.Framework, error) {
	fw := compliance.Framework(framework)
	if fw != compliance.ISO27001 && fw != compliance.IEC62443 {
		return "", errs.E(errs.Invalid, "framework: %q: want %s or %s", framework, compliance.ISO27001, compliance.IEC62443)
	}
	if zone != "" {
		if c, err := names.Canonical(zone); err != nil || c != zone {
			return "", errs.E(errs.Invalid, "zone: %q is not a canonical name", zone)
		}
	}
	return fw, nil
}

// MaxEvaluations bounds the evaluations (status and reports) a server
// runs at once; more wait their turn until their deadline.
const MaxEvaluations = 2

// evaluate reads the live state and evaluates fw over it, for zone ("":
// the whole cluster), at most MaxEvaluations at once.
func (s *Server) evaluate(ctx context.Context, fw compliance.Framework, zone string) (*compliance.Report, error) {
	select {
	case s.evaluations <- struct{}{}:
		defer func() { <-s.evaluations }()
	case <-ctx.Done():
		return nil, errs.E(errs.Unavailable, "too many compliance evaluations at once on this server; try again")
	}
	st, err := s.cfg.Compliance.State(ctx)
	if err != nil {
		return nil, err
	}
	if zone != "" && !slices.ContainsFunc(st.Zones, func(z compliance.Zone) bool { return z.Name == zone }) {
		return nil, errs.E(errs.NotFound, "zone %q does not exist", zone)
	}
	r, err := compliance.Evaluate(st, fw, zone)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "compliance evaluation")
	}
	return r, nil
}

type summaryResponse struct {
	Frameworks []frameworkSummary `json:"frameworks"`
}

type frameworkSummary struct {
	Framework compliance.Framework `json:"framework"`
	// ChangedAt is when the leader's evaluation last changed a control's
	// status (absent: never evaluated).
	ChangedAt *time.Time         `json:"changed_at,omitempty"`
	Summary   compliance.Summary `json:"summary"`
}

// complianceSummary is GET /v1/compliance/summary: the controls of each
// framework counted by status, from the control states the leader stores
// at each evaluation (--compliance-interval), without evaluating the live
// state (GET /v1/compliance/status does).
func (s *Server) complianceSummary(req *request) (int, any, error) {
	if err := noQuery(req); err != nil {
		return 0, nil, err
	}
	out := summaryResponse{Frameworks: []frameworkSummary{}}
	for _, fw := range compliance.Frameworks() {
		cs, _, err := s.cfg.Records.ControlStates(req.Context(), string(fw))
		if err != nil {
			return 0, nil, err
		}
		f := frameworkSummary{Framework: fw}
		if !cs.Time.IsZero() {
			f.ChangedAt = &cs.Time
		}
		for k, st := range cs.Statuses {
			if !strings.HasPrefix(k, "zone ") { // a zone's requirement, not a control
				f.Summary.Add(st)
			}
		}
		out.Frameworks = append(out.Frameworks, f)
	}
	return http.StatusOK, out, nil
}

// complianceEvaluation is GET /v1/compliance/evaluations/{framework}: the
// leader's last evaluation of the framework as it stored it (compacted:
// no evidence records, at most 10 evidence items per check, the 20 nodes
// of highest risk), without evaluating the live state; 404 before the
// first evaluation.
func (s *Server) complianceEvaluation(req *request) (int, any, error) {
	if err := noQuery(req); err != nil {
		return 0, nil, err
	}
	fw, err := reportQuery(req.PathValue("framework"), "")
	if err != nil {
		return 0, nil, err
	}
	doc, ok, err := s.cfg.Records.Evaluation(req.Context(), string(fw))
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, errs.E(errs.NotFound, "%s has not been evaluated yet: the leader evaluates every --compliance-interval", fw)
	}
	return http.StatusOK, doc, nil
}

// complianceStatus is GET /v1/compliance/status?framework=F[&zone=Z]: the
// evaluation of the live state, unsigned.
func (s *Server) complianceStatus(req *request) (int, any, error) {
	q := req.URL.Query()
	fw, err := reportQuery(q.Get("framework"), q.Get("zone"))
	if err != nil {
		return 0, nil, err
	}
	r, err := s.evaluate(req.Context(), fw, q.Get("zone"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, r, nil
}

type reportRequest struct {
	Framework string `json:"framework"`
	Zone      string `json:"zone"`
	Format    string `json:"format"` // json (default) or html
}

// complianceReport is POST /v1/compliance/reports: a report of the live
// state, with evidence, signed by this server; the document's SHA-256 is
// in the request's audit record (hashes.report).
func (s *Server) complianceReport(req *request) (int, any, error) {
	var in reportRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	fw, err := reportQuery(in.Framework, in.Zone)
	if err != nil {
		return 0, nil, err
	}
	if in.Format == "" {
		in.Format = "json"
	}
	if in.Format != "json" && in.Format != "html" {
		return 0, nil, errs.E(errs.Invalid, "format: %q: want json or html", in.Format)
	}
	r, err := s.evaluate(req.Context(), fw, in.Zone)
	if err != nil {
		return 0, nil, err
	}
	key, chain, err := s.cfg.Compliance.DocumentSigner()
	if err != nil {
		return 0, nil, errs.Wrap(errs.Unavailable, err, "cannot sign the report now")
	}
	doc, err := compliance.SignReport(r, key, chain)
	if err != nil {
		return 0, nil, err
	}
	ct := "application/json"
	if in.Format == "html" {
		if doc, err = compliance.RenderHTML(doc); err != nil {
			return 0, nil, err
		}
		ct = "text/html; charset=utf-8"
		h := req.w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'")
		h.Set("Content-Disposition", `attachment; filename="warden-`+string(fw)+`.html"`)
	}
	sum := sha256.Sum256(doc)
	if e := req.entry; e != nil {
		if e.Hashes == nil {
			e.Hashes = map[string]string{}
		}
		e.Hashes["report"] = "sha256:" + hex.EncodeToString(sum[:])
	}
	return http.StatusOK, derBody{contentType: ct, b: doc}, nil
}
