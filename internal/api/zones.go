package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/warden-sec/warden/internal/authority"
	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/policy"
)

type zoneRequest struct {
	Name  string `json:"name"`
	Level int    `json:"level"`
}

func (s *Server) zoneCreate(req *request) (int, any, error) {
	var in zoneRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	z, err := s.cfg.Nodes.CreateZone(req.Context(), in.Name, in.Level)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, z, nil
}

type zonesResponse struct {
	Zones []authority.Zone `json:"zones"`
}

func (s *Server) zoneList(req *request) (int, any, error) {
	zs, err := s.cfg.Nodes.Zones(req.Context())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, zonesResponse{Zones: zs}, nil
}

type conduitResponse struct {
	authority.Conduit
	PolicyName string `json:"policy"` // in the warden store
}

// conduitCreate writes the conduit as a generated, visible Cedar policy in
// the warden store (audited like any policy change).
func (s *Server) conduitCreate(req *request) (int, any, error) {
	var c authority.Conduit
	if err := req.decode(&c, false); err != nil {
		return 0, nil, err
	}
	if err := s.cfg.Nodes.ValidateConduit(req.Context(), &c); err != nil {
		return 0, nil, err
	}
	if _, err := s.cfg.Policies.WritePolicy(req.Context(), policy.WardenStore, c.PolicyName(), c.Policy()); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, conduitResponse{Conduit: c, PolicyName: c.PolicyName()}, nil
}

type conduitsResponse struct {
	Conduits []conduitResponse `json:"conduits"`
}

// conduitList reads the conduits back from their generated policies in
// the warden store, sorted by policy name. A policy named like a conduit
// whose text is not the one Warden generates (edited by hand) is not a
// conduit and is left out, as compliance leaves it out.
func (s *Server) conduitList(req *request) (int, any, error) {
	names, err := s.cfg.Policies.ListPolicies(req.Context(), policy.WardenStore)
	if err != nil {
		return 0, nil, err
	}
	out := conduitsResponse{Conduits: []conduitResponse{}}
	for _, name := range names {
		if !strings.HasPrefix(name, "conduit.") {
			continue
		}
		p, err := s.cfg.Policies.ReadPolicy(req.Context(), policy.WardenStore, name)
		if errs.Is(err, errs.NotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return 0, nil, err
		}
		if c, ok := authority.ParseConduitPolicy(name, p.Text); ok {
			out.Conduits = append(out.Conduits, conduitResponse{Conduit: c, PolicyName: name})
		}
	}
	slices.SortFunc(out.Conduits, func(a, b conduitResponse) int { return strings.Compare(a.PolicyName, b.PolicyName) })
	return http.StatusOK, out, nil
}

type conduitCheckRequest struct {
	FromNode string `json:"from_node"`
	ToNode   string `json:"to_node"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

type conduitCheckResponse struct {
	Decision string   `json:"decision"`
	FromZone string   `json:"from_zone"`
	ToZone   string   `json:"to_zone"`
	Reasons  []string `json:"reasons"`
	Errors   []string `json:"errors"`
}

// conduitCheck asks whether from_node may connect to to_node on a port:
// Node::"<from>" doing conduit.connect on Node::"<to>", with the nodes'
// zones as attributes and the port and protocol as context. Default deny.
func (s *Server) conduitCheck(req *request) (int, any, error) {
	var in conduitCheckRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if in.Protocol == "" {
		in.Protocol = "tcp"
	}
	if in.Port < 1 || in.Port > 65535 {
		return 0, nil, errs.E(errs.Invalid, "port: must be 1 to 65535, got %d", in.Port)
	}
	fz, err := s.cfg.Nodes.NodeZone(req.Context(), in.FromNode)
	if err != nil {
		return 0, nil, err
	}
	tz, err := s.cfg.Nodes.NodeZone(req.Context(), in.ToNode)
	if err != nil {
		return 0, nil, err
	}
	from, to := authz.NodeEntity(in.FromNode, fz, nil), authz.NodeEntity(in.ToNode, tz, nil)
	es, err := authz.NewEntities(authz.WithZones(from, to)...)
	if err != nil {
		return 0, nil, errs.E(errs.Invalid, "from_node and to_node must differ")
	}
	d, err := s.cfg.Policies.Check(req.Context(), policy.WardenStore, authz.CheckRequest{
		Request: authz.Request{Principal: from.UID, Action: authz.ActionUID(authz.ActionConduitConnect), Resource: to.UID,
			Context: types.NewRecord(types.RecordMap{"port": types.Long(in.Port), "protocol": types.String(in.Protocol)})},
		Entities: es,
	})
	if err != nil {
		return 0, nil, err
	}
	out := conduitCheckResponse{Decision: "deny", FromZone: fz, ToZone: tz, Reasons: d.Reasons, Errors: d.Errors}
	if d.Allow {
		out.Decision = "allow"
	}
	if out.Reasons == nil {
		out.Reasons = []string{}
	}
	if out.Errors == nil {
		out.Errors = []string{}
	}
	return http.StatusOK, out, nil
}
