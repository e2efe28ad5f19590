package api

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/compliance/records"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/names"
)

// Batch reads for a page of the fleet (the console's fleet page, which
// pages GET /v1/nodes by 100): the named nodes' inventory summaries and
// risk scores, never the whole fleet's.

// MaxBatchNames bounds the node names of one batch read.
const MaxBatchNames = records.MaxSummaryNames

// nodeResource is the resource Node::"<name>" that the node routes
// authorize (nodeTarget), with attributes name and zone ("": the routes
// do not look the node up before deciding).
func nodeResource(name string) types.Entity {
	return entity(authz.TypeNode, name, types.RecordMap{"name": types.String(name), "zone": types.String("")})
}

// parseNameList parses the value of ?names=: 1 to MaxBatchNames node names
// separated by commas, each canonical (names.Canonical leaves it as it is)
// and none repeated. Errors name the field and the name's index.
func parseNameList(s string) ([]string, error) {
	if s == "" {
		return nil, errs.E(errs.Invalid, "names: empty; give 1 to %d node names separated by commas", MaxBatchNames)
	}
	// Counted before splitting: a long list is refused without being split.
	if n := strings.Count(s, ",") + 1; n > MaxBatchNames {
		return nil, errs.E(errs.Invalid, "names: %d names, at most %d", n, MaxBatchNames)
	}
	list := strings.Split(s, ",")
	seen := make(map[string]bool, len(list))
	for i, n := range list {
		if c, err := names.Canonical(n); err != nil || c != n {
			return nil, errs.E(errs.Invalid, "names[%d]: %q is not a canonical node name", i, clip(n))
		}
		if seen[n] {
			return nil, errs.E(errs.Invalid, "names[%d]: %q is repeated", i, n)
		}
		seen[n] = true
	}
	return list, nil
}

// clip shortens what an error quotes of the caller's input.
func clip(s string) string {
	const keep = 80
	if len(s) <= keep {
		return s
	}
	return s[:keep] + "..."
}

// batchQuery reads a batch route's query: names (once; given reports
// whether it was sent) and nothing else but stale, which every GET takes.
func batchQuery(q url.Values) (list []string, given bool, err error) {
	for k, vs := range q {
		switch k {
		case "names":
			if len(vs) != 1 {
				return nil, false, errs.E(errs.Invalid, "names: given %d times; give it once, the names separated by commas", len(vs))
			}
		case "stale":
		default:
			return nil, false, errs.E(errs.Invalid, "query parameter %q: unknown (names)", clip(k))
		}
	}
	if !q.Has("names") {
		return nil, false, nil
	}
	list, err = parseNameList(q.Get("names"))
	return list, true, err
}

type summariesResponse struct {
	Summaries map[string]records.Summary `json:"summaries"`
}

// inventorySummaries is GET /v1/inventory/summaries?names=a,b,c: the
// inventory summaries of the named nodes (a node without one is absent).
// The route's target is Node::"*" (a read across the fleet, as listing
// is); each name is authorized too, as GET /v1/nodes/{name}/inventory
// authorizes it, so that a forbid or a condition on one node holds here:
// one name denied denies the request, naming it.
func (s *Server) inventorySummaries(req *request) (int, any, error) {
	list, given, err := batchQuery(req.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	if !given {
		return 0, nil, errs.E(errs.Invalid, "names: required; give 1 to %d node names separated by commas", MaxBatchNames)
	}
	// The root token is allowed everything; its use was logged once, for
	// the route's target.
	if !req.caller.root {
		for _, n := range list {
			if err := s.authorize(req, target{action: authz.ActionInventoryRead, resource: nodeResource(n)}); err != nil {
				return 0, nil, err
			}
		}
	}
	recordNodes(req, list)
	sums, err := s.cfg.Records.SummariesOf(req.Context(), list)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, summariesResponse{Summaries: sums}, nil
}

// recordNodes names the nodes a batch read is about in its audit record's
// resource (the route's target is Node::"*" or the system), so that the
// log says whose data was read, as the per-node routes do. At most
// MaxBatchNames canonical names: well under an entry's size limit.
func recordNodes(req *request, names []string) {
	if len(names) == 0 {
		return
	}
	rs := make([]string, len(names))
	for i, n := range names {
		rs[i] = string(authz.TypeNode) + "::" + strconv.Quote(n)
	}
	req.entry.Resource = strings.Join(rs, ", ")
}

type riskResponse struct {
	// EvaluatedAt is absent before the first evaluation.
	EvaluatedAt time.Time      `json:"evaluated_at,omitzero"`
	Nodes       map[string]int `json:"nodes"`
	Zones       map[string]int `json:"zones"`
}

// complianceRisk is GET /v1/compliance/risk[?names=a,b]: the risk scores
// of the leader's last evaluation, of the named nodes (a node the
// evaluation did not score is absent) and of every zone; empty maps and no
// evaluated_at before the first evaluation.
func (s *Server) complianceRisk(req *request) (int, any, error) {
	list, _, err := batchQuery(req.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	recordNodes(req, list)
	r, ok, err := s.cfg.Records.Risk(req.Context())
	if err != nil {
		return 0, nil, err
	}
	out := riskResponse{Nodes: make(map[string]int, len(list)), Zones: map[string]int{}}
	if !ok {
		return http.StatusOK, out, nil
	}
	out.EvaluatedAt = r.EvaluatedAt.UTC()
	for _, n := range list {
		if v, found := r.Nodes[n]; found {
			out.Nodes[n] = v
		}
	}
	if r.Zones != nil {
		out.Zones = r.Zones
	}
	return http.StatusOK, out, nil
}
