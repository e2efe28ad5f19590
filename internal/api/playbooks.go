package api

import (
	"mime"
	"net/http"
	"strings"

	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/errs"
	wresp "github.com/warden-sec/warden/internal/respond"
)

// The playbook routes and the approval of pending decisions (see
// docs/response.md "Playbooks").

// playbooksH wraps a playbook handler: without the service it answers 503.
func (s *Server) playbooksH(h handlerFunc) handlerFunc {
	return func(req *request) (int, any, error) {
		if s.cfg.Playbooks == nil {
			return 0, nil, errs.E(errs.Unavailable, "playbooks are not configured on this server")
		}
		return h(req)
	}
}

type yamlPutRequest struct {
	YAML string `json:"yaml"`
}

// yamlBody reads a YAML document sent as the body (Content-Type
// application/yaml, text/yaml or application/x-yaml; or no type), or as
// JSON {"yaml": "..."} (Content-Type application/json). what names it in
// errors ("rule", "playbook").
func (req *request) yamlBody(what string) ([]byte, error) {
	var src []byte
	ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var in yamlPutRequest
		if err := req.decode(&in, false); err != nil {
			return nil, err
		}
		src = []byte(in.YAML)
	case "", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain":
		b, err := req.readBody()
		if err != nil {
			return nil, err
		}
		src = b
	default:
		return nil, errs.E(errs.Invalid, "Content-Type %q: send the %s as application/yaml, or as application/json {\"yaml\": \"...\"}", ct, what)
	}
	if len(strings.TrimSpace(string(src))) == 0 {
		return nil, errs.E(errs.Invalid, "body: the %s's YAML is required", what)
	}
	return src, nil
}

// playbooksPut stores a playbook owned by the caller: the YAML of the
// body, or with ?builtin=true (and no body) the built-in one.
func (s *Server) playbooksPut(req *request) (int, any, error) {
	q := req.URL.Query()
	for k := range q {
		if k != "builtin" {
			return 0, nil, errs.E(errs.Invalid, "query parameter %q: unknown (builtin)", k)
		}
	}
	var src []byte
	switch q.Get("builtin") {
	case "true":
		b, err := req.readBody()
		if err != nil {
			return 0, nil, err
		}
		if len(strings.TrimSpace(string(b))) > 0 {
			return 0, nil, errs.E(errs.Invalid, "body: send no body with builtin=true")
		}
		src = wresp.Builtin()
	case "", "false":
		b, err := req.yamlBody("playbook")
		if err != nil {
			return 0, nil, err
		}
		src = b
	default:
		return 0, nil, errs.E(errs.Invalid, "builtin %q: want true or false", q.Get("builtin"))
	}
	if err := s.mayRun(req, src); err != nil {
		return 0, nil, err
	}
	rec, err := s.cfg.Playbooks.Put(req.Context(), src, req.caller.String())
	if err != nil {
		return 0, nil, err
	}
	rec.YAML = ""
	return http.StatusOK, rec, nil
}

type playbooksListResponse struct {
	Playbooks []wresp.PlaybookRecord `json:"playbooks"`
}

func (s *Server) playbooksList(req *request) (int, any, error) {
	ps, err := s.cfg.Playbooks.List(req.Context())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, playbooksListResponse{Playbooks: ps}, nil
}

func (s *Server) playbooksGet(req *request) (int, any, error) {
	rec, err := s.cfg.Playbooks.Get(req.Context(), req.PathValue("name"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rec, nil
}

func (s *Server) playbooksDelete(req *request) (int, any, error) {
	if err := s.cfg.Playbooks.Delete(req.Context(), req.PathValue("name")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// decisionsApprove activates a decision pending approval; the caller must
// not be the owner of the playbook that made it.
func (s *Server) decisionsApprove(req *request) (int, any, error) {
	var in struct{}
	if err := req.decode(&in, true); err != nil {
		return 0, nil, err
	}
	d, err := s.cfg.Playbooks.Approve(req.Context(), req.PathValue("id"), req.caller.String())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, d, nil
}

// playbookNeeds is what each kind of playbook action does on its owner's
// authority: the action a policy must permit the owner, and on what.
var playbookNeeds = map[string]target{
	wresp.ActionBan:        {action: authz.ActionDecisionsWrite, resource: entity(authz.TypeSystem, "warden", nil)},
	wresp.ActionQuarantine: {action: authz.ActionDecisionsWrite, resource: entity(authz.TypeSystem, "warden", nil)},
	// Any node: a policy that permits revoking only some nodes does not
	// let its holder automate revocations of whichever host alerts.
	wresp.ActionRevoke:   {action: authz.ActionNodeRevoke, resource: entity(authz.TypeNode, "*", nil)},
	wresp.ActionNotify:   {action: authz.ActionNotifyWrite, resource: entity(authz.TypeSystem, "warden", nil)},
	wresp.ActionIncident: {action: authz.ActionIncidentsWrite, resource: entity(authz.TypeSystem, "warden", nil)},
}

// mayRun refuses a playbook whose actions its author could not take by
// hand: playbooks.write alone must not become a way to ban, quarantine or
// revoke. A playbook that does not parse passes here; Put names its error.
func (s *Server) mayRun(req *request, src []byte) error {
	pb, err := wresp.Parse(src, func(string) bool { return true })
	if err != nil {
		return nil
	}
	for i, a := range pb.Actions {
		need, ok := playbookNeeds[a.Kind]
		if !ok {
			return errs.E(errs.Internal, "playbook actions[%d]: no authorization declared for %q", i, a.Kind)
		}
		if err := s.authorize(req, need); err != nil {
			return errs.Wrap(errs.Denied, err, "playbook line %d, actions[%d] (%s): %v (a playbook's owner must be allowed its actions by hand)",
				a.Line, i, a.Kind, err)
		}
	}
	return nil
}
