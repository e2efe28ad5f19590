package api

import (
	"maps"
	"net/http"
	"strings"

	"github.com/warden-sec/warden/internal/errs"
	wresp "github.com/warden-sec/warden/internal/respond"
)

// The incident routes (docs/response.md, "Incidents and reports"). Each
// change's audit record carries the SHA-256 of the timeline items it adds
// (wresp.ItemHashNames), which the report proves.

// incidentsH wraps an incident handler: without the service it answers 503.
func (s *Server) incidentsH(h handlerFunc) handlerFunc {
	return func(req *request) (int, any, error) {
		if s.cfg.Incidents == nil {
			return 0, nil, errs.E(errs.Unavailable, "incidents are not configured on this server")
		}
		status, body, err := h(req)
		if err != nil && req.entry != nil {
			// A refused change records no item hash: the items were not stored.
			maps.DeleteFunc(req.entry.Hashes, func(k, _ string) bool { return strings.HasPrefix(k, wresp.ItemHashName) })
		}
		return status, body, err
	}
}

type incidentsListResponse struct {
	Incidents []wresp.Incident `json:"incidents"`
}

func (s *Server) incidentsList(req *request) (int, any, error) {
	q := req.URL.Query()
	for k := range q {
		switch k {
		case "status", "severity", "stale":
		default:
			return 0, nil, errs.E(errs.Invalid, "query parameter %q: unknown (status, severity)", k)
		}
	}
	l, err := s.cfg.Incidents.List(req.Context(), wresp.Filter{Status: q.Get("status"), Severity: q.Get("severity")})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, incidentsListResponse{Incidents: l}, nil
}

func (s *Server) incidentsCreate(req *request) (int, any, error) {
	var in wresp.CreateInput
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	inc, err := s.cfg.Incidents.Create(req.Context(), in, req.caller.String(), req.entry)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, inc, nil
}

func (s *Server) incidentsGet(req *request) (int, any, error) {
	inc, err := s.cfg.Incidents.Get(req.Context(), req.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, inc, nil
}

func (s *Server) incidentsUpdate(req *request) (int, any, error) {
	var in wresp.UpdateInput
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	inc, err := s.cfg.Incidents.Update(req.Context(), req.PathValue("id"), in, req.caller.String(), req.entry)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, inc, nil
}

type incidentCommentRequest struct {
	Comment string `json:"comment"`
}

func (s *Server) incidentsComment(req *request) (int, any, error) {
	var in incidentCommentRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	inc, err := s.cfg.Incidents.Comment(req.Context(), req.PathValue("id"), in.Comment, req.caller.String(), req.entry)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, inc, nil
}

func (s *Server) incidentsClose(req *request) (int, any, error) {
	var in incidentCommentRequest
	if err := req.decode(&in, true); err != nil {
		return 0, nil, err
	}
	inc, err := s.cfg.Incidents.Close(req.Context(), req.PathValue("id"), in.Comment, req.caller.String(), req.entry)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, inc, nil
}

// incidentsReport answers the report as its canonical JSON
// (?format=json, the default) or its Markdown rendering (?format=md).
func (s *Server) incidentsReport(req *request) (int, any, error) {
	q := req.URL.Query()
	for k := range q {
		if k != "format" && k != "stale" {
			return 0, nil, errs.E(errs.Invalid, "query parameter %q: unknown (format)", k)
		}
	}
	format := q.Get("format")
	if format != "" && format != "json" && format != "md" {
		return 0, nil, errs.E(errs.Invalid, "format %q: want json or md", format)
	}
	r, err := s.cfg.Incidents.Report(req.Context(), s.cfg.Audit, req.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if format == "md" {
		b, err := r.Markdown()
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, derBody{contentType: "text/markdown; charset=utf-8", b: b}, nil
	}
	b, err := r.JSON()
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, derBody{contentType: "application/json", b: b}, nil
}

// Incidents returns the incidents service the routes serve (nil without).
func (s *Server) Incidents() *wresp.Incidents { return s.cfg.Incidents }
