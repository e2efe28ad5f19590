package api

import (
	"encoding/json"
	"net/http"

	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/decisionlog"
	"github.com/warden-sec/warden/internal/errs"
)

type storeCreateRequest struct {
	Name string `json:"name"`
}

type storesResponse struct {
	Stores []string `json:"stores"`
}

func (s *Server) storeList(req *request) (int, any, error) {
	names, err := s.cfg.Policies.ListStores(req.Context())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, storesResponse{Stores: names}, nil
}

func (s *Server) storeCreate(req *request) (int, any, error) {
	var in storeCreateRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if err := s.cfg.Policies.CreateStore(req.Context(), in.Name); err != nil {
		return 0, nil, err
	}
	s.log.Info("policy store created", "store", in.Name, "principal", req.caller.String(), "request_id", req.id)
	return http.StatusNoContent, nil, nil
}

func (s *Server) storeDelete(req *request) (int, any, error) {
	if err := s.cfg.Policies.DeleteStore(req.Context(), req.PathValue("store")); err != nil {
		return 0, nil, err
	}
	s.log.Info("policy store deleted", "store", req.PathValue("store"), "principal", req.caller.String(), "request_id", req.id)
	return http.StatusNoContent, nil, nil
}

type policiesResponse struct {
	Policies []string `json:"policies"`
}

func (s *Server) policyList(req *request) (int, any, error) {
	names, err := s.cfg.Policies.ListPolicies(req.Context(), req.PathValue("store"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, policiesResponse{Policies: names}, nil
}

func (s *Server) policyRead(req *request) (int, any, error) {
	p, err := s.cfg.Policies.ReadPolicy(req.Context(), req.PathValue("store"), req.PathValue("name"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, p, nil
}

type policyWriteRequest struct {
	Policy string `json:"policy"`
}

func (s *Server) policyWrite(req *request) (int, any, error) {
	var in policyWriteRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	p, err := s.cfg.Policies.WritePolicy(req.Context(), req.PathValue("store"), req.PathValue("name"), in.Policy)
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("policy written", "store", p.Store, "policy", p.Name, "version", p.Version,
		"principal", req.caller.String(), "request_id", req.id)
	return http.StatusOK, p, nil
}

func (s *Server) policyDelete(req *request) (int, any, error) {
	if err := s.cfg.Policies.DeletePolicy(req.Context(), req.PathValue("store"), req.PathValue("name")); err != nil {
		return 0, nil, err
	}
	s.log.Info("policy deleted", "store", req.PathValue("store"), "policy", req.PathValue("name"),
		"principal", req.caller.String(), "request_id", req.id)
	return http.StatusNoContent, nil, nil
}

type schemaWriteRequest struct {
	Schema string `json:"schema"`
}

func (s *Server) schemaWrite(req *request) (int, any, error) {
	var in schemaWriteRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if err := s.cfg.Policies.WriteSchema(req.Context(), req.PathValue("store"), in.Schema); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

type entitiesResponse struct {
	Entities int `json:"entities"`
}

// entitiesWrite takes a Cedar JSON entity array as the body.
func (s *Server) entitiesWrite(req *request) (int, any, error) {
	body, err := req.readBody()
	if err != nil {
		return 0, nil, err
	}
	n, err := s.cfg.Policies.WriteEntities(req.Context(), req.PathValue("store"), body)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, entitiesResponse{Entities: n}, nil
}

type decisionResponse struct {
	Decision string   `json:"decision"`
	Reasons  []string `json:"reasons"`
	Errors   []string `json:"errors"`
}

func (s *Server) decide(req *request, store string, body []byte) (decisionResponse, error) {
	cr, err := authz.DecodeCheckRequestCached(body, s.entitySets)
	if err != nil {
		return decisionResponse{}, errs.Wrap(errs.Invalid, err, "%s", err.Error())
	}
	d, err := s.cfg.Policies.Check(req.Context(), store, cr)
	if err != nil {
		return decisionResponse{}, err
	}
	out := decisionResponse{Decision: "deny", Reasons: d.Reasons, Errors: d.Errors}
	if d.Allow {
		out.Decision = "allow"
	}
	if out.Reasons == nil {
		out.Reasons = []string{}
	}
	if out.Errors == nil {
		out.Errors = []string{}
	}
	s.metrics.checks.WithLabelValues(store, out.Decision).Inc()
	if s.cfg.DecisionLog != nil {
		s.cfg.DecisionLog.Log(decisionlog.Entry{
			Time: s.now(), Store: store, RequestID: req.id,
			Principal: cr.Principal, Action: cr.Action, Resource: cr.Resource,
			Allow: d.Allow, Reasons: d.Reasons,
		})
	}
	return out, nil
}

func (s *Server) check(req *request) (int, any, error) {
	body, err := req.readBody()
	if err != nil {
		return 0, nil, err
	}
	out, err := s.decide(req, req.PathValue("store"), body)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, out, nil
}

// MaxBatch bounds the requests of one check-batch call.
const MaxBatch = 1000

type batchRequest struct {
	Requests []json.RawMessage `json:"requests"`
}

type batchResponse struct {
	Results []decisionResponse `json:"results"`
}

func (s *Server) checkBatch(req *request) (int, any, error) {
	var in batchRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if len(in.Requests) == 0 || len(in.Requests) > MaxBatch {
		return 0, nil, errs.E(errs.Invalid, "requests: must hold 1 to %d check requests", MaxBatch)
	}
	out := batchResponse{Results: make([]decisionResponse, len(in.Requests))}
	for i, raw := range in.Requests {
		d, err := s.decide(req, req.PathValue("store"), raw)
		if err != nil {
			return 0, nil, errs.E(errs.CodeOf(err), "requests[%d]: %s", i, err.Error())
		}
		out.Results[i] = d
	}
	return http.StatusOK, out, nil
}
