// Package records keeps the compliance data of the cluster in its
// replicated storage: what each node reported (its latest inventory with a
// short change history, and its latest assessment results per policy), the
// check policies the servers send to agents, the attestations of manual
// controls, the last evaluated status of each control (so a control
// that goes from pass to fail can raise an alert), and the risk scores of
// the last evaluation.
//
// It stores what it is given, as given: the API validates inventories,
// results and policies before they reach it, and package compliance
// evaluates them. It knows nothing of HTTP or Raft; every write is one
// transaction through Storage, which carries the caller's audit record.
package records

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store/kv"
)

// Storage is the encrypted, replicated view (core.Core).
type Storage interface {
	Get(ctx context.Context, key string) (kv.Entry, error)
	// GetMany reads the keys that exist, in the order given, in one
	// linearizable read.
	GetMany(ctx context.Context, keys []string) ([]kv.Entry, error)
	List(ctx context.Context, prefix string, limit int) ([]kv.Entry, error)
	ListKeys(ctx context.Context, prefix string, limit int) ([]kv.Entry, error)
	Txn(ctx context.Context, t kv.Txn) (uint64, error)
}

const (
	prefixInventory = "compliance/inventory/"         // + node → Inventory
	prefixSummary   = "compliance/inventory-summary/" // + node → Summary
	prefixHistory   = "compliance/inventory-history/" // + node + "/" + 20-digit unix nanos → Change
	prefixResults   = "compliance/results/"           // + node + "/" + policy → Results
	prefixPolicy    = "compliance/policy/"            // + name → Policy
	prefixAttest    = "compliance/attestation/"       // + control + "/" + id → Attestation
	prefixControls  = "compliance/controls/"          // + framework → ControlStates
	keyRisk         = "compliance/risk"               // → RiskScores
	prefixLastEval  = "compliance/last/"              // + framework → the last evaluation, compacted
)

// HistoryKeep is how many inventory changes are kept per node.
const HistoryKeep = 50

// ResultsRefresh is how old a node's stored results may get before an
// unchanged report is stored again (so "assessed at" stays fresh without a
// write per run).
const ResultsRefresh = 24 * time.Hour

// Service reads and writes the records. Safe for concurrent use.
type Service struct {
	st  Storage
	now func() time.Time
}

// New returns the service; now nil means time.Now.
func New(st Storage, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{st: st, now: now}
}

// Inventory is a node's latest inventory as it reported it.
type Inventory struct {
	Node        string          `json:"node"`
	Fingerprint string          `json:"fingerprint"`
	Received    time.Time       `json:"received_time"`
	Inventory   json.RawMessage `json:"inventory"`
}

// Summary is the part of a node's inventory that compliance evaluates,
// kept apart so that evaluating a large fleet reads little.
type Summary struct {
	Node         string    `json:"node"`
	OS           string    `json:"os"`
	Kernel       string    `json:"kernel"`
	AgentVersion string    `json:"agent_version"`
	Packages     int       `json:"packages"`
	Pending      int       `json:"pending_updates"`
	PatchAgeDays int       `json:"patch_age_days"`
	PatchBasis   string    `json:"patch_basis"`
	Listening    []string  `json:"listening"`
	Enforcement  string    `json:"enforcement,omitempty"`
	CollectedAt  time.Time `json:"collected_at"`
	Received     time.Time `json:"received_time"`
}

// Change is one entry of a node's inventory history.
type Change struct {
	Time        time.Time       `json:"time"`
	Fingerprint string          `json:"fingerprint"`
	Change      json.RawMessage `json:"change,omitempty"` // null for the first inventory
}

// PutInventory stores node's inventory unless its fingerprint is the one
// stored; it reports whether it stored it. change (the difference from the
// stored one; nil for the first) goes into the history, which keeps the
// last HistoryKeep changes.
func (s *Service) PutInventory(ctx context.Context, node, fingerprint string, inv json.RawMessage, sum Summary, change json.RawMessage) (bool, error) {
	key := prefixInventory + node
	cur, err := s.st.Get(ctx, key)
	var version uint64
	switch {
	case err == nil:
		var old Inventory
		if json.Unmarshal(cur.Value, &old) == nil && old.Fingerprint == fingerprint {
			return false, nil
		}
		version = cur.Version
	case !errs.Is(err, errs.NotFound):
		return false, err
	}
	now := s.now().UTC()
	rec, err := json.Marshal(Inventory{Node: node, Fingerprint: fingerprint, Received: now, Inventory: inv})
	if err != nil {
		return false, err
	}
	sum.Node, sum.Received = node, now
	sb, err := json.Marshal(sum)
	if err != nil {
		return false, err
	}
	hb, err := json.Marshal(Change{Time: now, Fingerprint: fingerprint, Change: change})
	if err != nil {
		return false, err
	}
	hprefix := prefixHistory + node + "/"
	ops := []kv.Op{
		{Type: kv.OpPut, Key: key, Value: rec},
		{Type: kv.OpPut, Key: prefixSummary + node, Value: sb},
		{Type: kv.OpPut, Key: hprefix + fmt.Sprintf("%020d", now.UnixNano()), Value: hb},
	}
	old, err := s.st.ListKeys(ctx, hprefix, 0)
	if err != nil {
		return false, err
	}
	for i := 0; i+HistoryKeep <= len(old); i++ { // keep HistoryKeep-1 old ones plus the new one
		ops = append(ops, kv.Op{Type: kv.OpDelete, Key: old[i].Key})
	}
	_, err = s.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: key, Version: version}}, Ops: ops})
	if errs.Is(err, errs.Conflict) {
		return false, errs.E(errs.Conflict, "inventory of %s: changed by another request; send it again", node)
	}
	return err == nil, err
}

// Inventory returns node's latest inventory (errs.NotFound if none).
func (s *Service) Inventory(ctx context.Context, node string) (*Inventory, error) {
	e, err := s.st.Get(ctx, prefixInventory+node)
	if errs.Is(err, errs.NotFound) {
		return nil, errs.E(errs.NotFound, "node %s has not reported an inventory", node)
	}
	if err != nil {
		return nil, err
	}
	var inv Inventory
	if err := json.Unmarshal(e.Value, &inv); err != nil {
		return nil, err
	}
	return &inv, nil
}

// Summaries returns every node's inventory summary, by node name.
func (s *Service) Summaries(ctx context.Context) (map[string]Summary, error) {
	es, err := s.st.List(ctx, prefixSummary, 0)
	if err != nil {
		return nil, err
	}
	return decodeSummaries(es)
}

// decodeSummaries decodes stored summaries, by the node name of their key.
func decodeSummaries(es []kv.Entry) (map[string]Summary, error) {
	out := make(map[string]Summary, len(es))
	for _, e := range es {
		var sum Summary
		if err := json.Unmarshal(e.Value, &sum); err != nil {
			return nil, err
		}
		out[strings.TrimPrefix(e.Key, prefixSummary)] = sum
	}
	return out, nil
}

// MaxSummaryNames bounds the names SummariesOf reads at once.
const MaxSummaryNames = 100

// SummariesOf returns the inventory summaries of the named nodes (at most
// MaxSummaryNames), by node name; a node without one is absent. Only
// their keys are read, in one linearizable read.
func (s *Service) SummariesOf(ctx context.Context, nodes []string) (map[string]Summary, error) {
	if len(nodes) > MaxSummaryNames {
		return nil, errs.E(errs.Invalid, "names: %d, at most %d", len(nodes), MaxSummaryNames)
	}
	keys := make([]string, len(nodes))
	for i, n := range nodes {
		keys[i] = prefixSummary + n
	}
	es, err := s.st.GetMany(ctx, keys)
	if err != nil {
		return nil, err
	}
	return decodeSummaries(es)
}

// History returns node's inventory changes, newest first.
func (s *Service) History(ctx context.Context, node string) ([]Change, error) {
	es, err := s.st.List(ctx, prefixHistory+node+"/", 0)
	if err != nil {
		return nil, err
	}
	out := make([]Change, 0, len(es))
	for i := len(es) - 1; i >= 0; i-- {
		var c Change
		if err := json.Unmarshal(es[i].Value, &c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Results are a node's latest assessment results for one policy.
type Results struct {
	Node     string    `json:"node"`
	Policy   string    `json:"policy"`
	RanAt    time.Time `json:"ran_at"`
	Received time.Time `json:"received_time"`
	// Statuses is the digest of the checks' statuses, which decides
	// whether a new report is stored.
	Statuses string          `json:"statuses"`
	Results  json.RawMessage `json:"results"`
}

// PutResults stores node's results for policy when their statuses
// (digest) differ from the stored ones or the stored ones are older than
// ResultsRefresh. It returns whether it stored them and the results they
// replace (nil if none).
func (s *Service) PutResults(ctx context.Context, node, policy string, ranAt time.Time, digest string, results json.RawMessage) (bool, *Results, error) {
	key := prefixResults + node + "/" + policy
	now := s.now().UTC()
	var prev *Results
	var version uint64
	cur, err := s.st.Get(ctx, key)
	switch {
	case err == nil:
		prev = new(Results)
		if err := json.Unmarshal(cur.Value, prev); err != nil {
			return false, nil, err
		}
		if prev.Statuses == digest && now.Sub(prev.Received) < ResultsRefresh {
			return false, prev, nil
		}
		version = cur.Version
	case !errs.Is(err, errs.NotFound):
		return false, nil, err
	}
	b, err := json.Marshal(Results{Node: node, Policy: policy, RanAt: ranAt.UTC(), Received: now, Statuses: digest, Results: results})
	if err != nil {
		return false, nil, err
	}
	_, err = s.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: key, Version: version}}, Ops: []kv.Op{{Type: kv.OpPut, Key: key, Value: b}}})
	if errs.Is(err, errs.Conflict) {
		return false, nil, errs.E(errs.Conflict, "results of %s for %s: changed by another request; send them again", node, policy)
	}
	return err == nil, prev, err
}

// NodeResults returns node's results, one per policy.
func (s *Service) NodeResults(ctx context.Context, node string) ([]Results, error) {
	return s.results(ctx, prefixResults+node+"/")
}

// AllResults returns every node's results.
func (s *Service) AllResults(ctx context.Context) ([]Results, error) {
	return s.results(ctx, prefixResults)
}

func (s *Service) results(ctx context.Context, prefix string) ([]Results, error) {
	es, err := s.st.List(ctx, prefix, 0)
	if err != nil {
		return nil, err
	}
	out := make([]Results, 0, len(es))
	for _, e := range es {
		var r Results
		if err := json.Unmarshal(e.Value, &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Policy is a stored check policy (YAML, validated by the API).
type Policy struct {
	Name    string    `json:"name"`
	YAML    string    `json:"yaml"`
	Version uint64    `json:"version"` // counts the writes of this policy
	Updated time.Time `json:"updated_time"`
}

// PutPolicy stores a check policy; cas, when not nil, is the version the
// stored one must have (0: must not exist).
func (s *Service) PutPolicy(ctx context.Context, name, text string, cas *uint64) (*Policy, error) {
	key := prefixPolicy + name
	var version, n uint64
	cur, err := s.st.Get(ctx, key)
	switch {
	case err == nil:
		var old Policy
		if err := json.Unmarshal(cur.Value, &old); err != nil {
			return nil, err
		}
		version, n = cur.Version, old.Version
	case !errs.Is(err, errs.NotFound):
		return nil, err
	}
	if cas != nil && *cas != n {
		return nil, errs.E(errs.Conflict, "policy %s: version is %d, not %d", name, n, *cas)
	}
	p := &Policy{Name: name, YAML: text, Version: n + 1, Updated: s.now().UTC()}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if _, err := s.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: key, Version: version}}, Ops: []kv.Op{{Type: kv.OpPut, Key: key, Value: b}}}); err != nil {
		if errs.Is(err, errs.Conflict) {
			return nil, errs.E(errs.Conflict, "policy %s: changed by another request", name)
		}
		return nil, err
	}
	return p, nil
}

// DeletePolicy deletes a stored check policy.
func (s *Service) DeletePolicy(ctx context.Context, name string) error {
	key := prefixPolicy + name
	cur, err := s.st.Get(ctx, key)
	if errs.Is(err, errs.NotFound) {
		return errs.E(errs.NotFound, "no check policy %s", name)
	}
	if err != nil {
		return err
	}
	_, err = s.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: key, Version: cur.Version}}, Ops: []kv.Op{{Type: kv.OpDelete, Key: key}}})
	return err
}

// Policies returns the stored check policies, by name.
func (s *Service) Policies(ctx context.Context) ([]Policy, error) {
	es, err := s.st.List(ctx, prefixPolicy, 0)
	if err != nil {
		return nil, err
	}
	out := make([]Policy, 0, len(es))
	for _, e := range es {
		var p Policy
		if err := json.Unmarshal(e.Value, &p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Attestation is an owner's statement that a manual control is in place,
// valid until it expires.
type Attestation struct {
	ID      string    `json:"id"`
	Control string    `json:"control"` // "iso27001:5.24", "iec62443-3-3:SR 2.12"
	Owner   string    `json:"owner"`   // the principal who attested
	Text    string    `json:"text"`
	SHA256  string    `json:"sha256"` // of Text
	Created time.Time `json:"created_time"`
	Expires time.Time `json:"expires_time"`
}

// Attest stores a (validated) attestation; it sets ID and Created.
func (s *Service) Attest(ctx context.Context, a Attestation) (*Attestation, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	a.ID = hex.EncodeToString(b[:])
	a.Created = s.now().UTC()
	v, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	key := prefixAttest + a.Control + "/" + a.ID
	if _, err := s.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: key}}, Ops: []kv.Op{{Type: kv.OpPut, Key: key, Value: v}}}); err != nil {
		return nil, err
	}
	return &a, nil
}

// AttestationKey is the storage key of a; its version is the Raft index
// of the attestation's record.
func AttestationKey(a Attestation) string { return prefixAttest + a.Control + "/" + a.ID }

// WithdrawAttestation deletes attestation id: its control no longer
// rests on it (its audit records stay).
func (s *Service) WithdrawAttestation(ctx context.Context, id string) error {
	es, err := s.st.ListKeys(ctx, prefixAttest, 0)
	if err != nil {
		return err
	}
	for _, e := range es {
		if strings.HasSuffix(e.Key, "/"+id) {
			_, err := s.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: e.Key, Version: e.Version}}, Ops: []kv.Op{{Type: kv.OpDelete, Key: e.Key}}})
			return err
		}
	}
	return errs.E(errs.NotFound, "no attestation %s", id)
}

// Attestations returns the attestations, of every control when control is
// empty.
func (s *Service) Attestations(ctx context.Context, control string) ([]Attestation, error) {
	prefix := prefixAttest
	if control != "" {
		prefix += control + "/"
	}
	es, err := s.st.List(ctx, prefix, 0)
	if err != nil {
		return nil, err
	}
	out := make([]Attestation, 0, len(es))
	for _, e := range es {
		var a Attestation
		if err := json.Unmarshal(e.Value, &a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// ControlStates are the statuses of a framework's controls (and of the
// 62443 requirements per zone) at the last evaluation: key → status.
type ControlStates struct {
	Framework string            `json:"framework"`
	Time      time.Time         `json:"time"`
	Statuses  map[string]string `json:"statuses"`
}

// ControlStates returns the last stored states of framework (zero value if
// none) and their version.
func (s *Service) ControlStates(ctx context.Context, framework string) (ControlStates, uint64, error) {
	e, err := s.st.Get(ctx, prefixControls+framework)
	if errs.Is(err, errs.NotFound) {
		return ControlStates{Framework: framework}, 0, nil
	}
	if err != nil {
		return ControlStates{}, 0, err
	}
	var cs ControlStates
	if err := json.Unmarshal(e.Value, &cs); err != nil {
		return ControlStates{}, 0, err
	}
	return cs, e.Version, nil
}

// PutControlStates stores cs if the stored version is still version.
func (s *Service) PutControlStates(ctx context.Context, cs ControlStates, version uint64) error {
	b, err := json.Marshal(cs)
	if err != nil {
		return err
	}
	key := prefixControls + cs.Framework
	_, err = s.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: key, Version: version}}, Ops: []kv.Op{{Type: kv.OpPut, Key: key, Value: b}}})
	return err
}

// RiskScores are the risk scores (0 to 100, package compliance's
// formula: compliance.NodeRisk, compliance.ZoneRisk) of every node and
// zone at the leader's last evaluation, without the items they sum.
type RiskScores struct {
	EvaluatedAt time.Time      `json:"evaluated_at"`
	Nodes       map[string]int `json:"nodes"`
	Zones       map[string]int `json:"zones"`
}

// Risk returns the stored scores, and false when no evaluation stored any.
func (s *Service) Risk(ctx context.Context) (RiskScores, bool, error) {
	r, _, err := s.risk(ctx)
	return r, err == nil && !r.EvaluatedAt.IsZero(), err
}

func (s *Service) risk(ctx context.Context) (RiskScores, uint64, error) {
	e, err := s.st.Get(ctx, keyRisk)
	if errs.Is(err, errs.NotFound) {
		return RiskScores{}, 0, nil
	}
	if err != nil {
		return RiskScores{}, 0, err
	}
	var r RiskScores
	if err := json.Unmarshal(e.Value, &r); err != nil {
		return RiskScores{}, 0, err
	}
	return r, e.Version, nil
}

// PutRisk stores r in place of the stored scores, unless those are of a
// later evaluation (a leader deposed mid-evaluation does not undo its
// successor's). ctx carries the write's audit record.
func (s *Service) PutRisk(ctx context.Context, r RiskScores) error {
	cur, version, err := s.risk(ctx)
	if err != nil {
		return err
	}
	if cur.EvaluatedAt.After(r.EvaluatedAt) {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = s.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: keyRisk, Version: version}}, Ops: []kv.Op{{Type: kv.OpPut, Key: keyRisk, Value: b}}})
	return err
}

// MaxEvaluationBytes bounds a stored evaluation (PutEvaluation).
const MaxEvaluationBytes = 1 << 20

// PutEvaluation stores doc (JSON: the leader's last evaluation of
// framework, compacted by the caller) in place of the previous one; ctx
// carries the write's audit record. A document over MaxEvaluationBytes is
// refused.
func (s *Service) PutEvaluation(ctx context.Context, framework string, doc json.RawMessage) error {
	if len(doc) > MaxEvaluationBytes {
		return errs.E(errs.Invalid, "evaluation of %s: %d bytes, at most %d", framework, len(doc), MaxEvaluationBytes)
	}
	_, err := s.st.Txn(ctx, kv.Txn{Ops: []kv.Op{{Type: kv.OpPut, Key: prefixLastEval + framework, Value: doc}}})
	return err
}

// Evaluation returns the stored last evaluation of framework (PutEvaluation)
// and whether there is one.
func (s *Service) Evaluation(ctx context.Context, framework string) (json.RawMessage, bool, error) {
	e, err := s.st.Get(ctx, prefixLastEval+framework)
	if errs.Is(err, errs.NotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return e.Value, true, nil
}
