package api

import (
	"net/http"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/identity"
)

type tokenResponse struct {
	Token          string   `json:"token,omitempty"`
	Accessor       string   `json:"accessor"`
	DisplayName    string   `json:"display_name"`
	Policies       []string `json:"policies"`
	ParentAccessor string   `json:"parent_accessor"`
	CreatedTime    string   `json:"created_time"`
	ExpireTime     string   `json:"expire_time"`
	TTL            string   `json:"ttl"`
	Root           bool     `json:"root"`
	User           string   `json:"user"`
	Groups         []string `json:"groups"`
	Principal      string   `json:"principal"`
}

func (s *Server) tokenView(t *identity.Token, secret identity.Secret) tokenResponse {
	now := s.now()
	r := tokenResponse{Token: secret.Reveal(), Accessor: t.Accessor, DisplayName: t.DisplayName,
		Policies: t.Policies, ParentAccessor: t.ParentAccessor, Root: t.Root,
		CreatedTime: t.CreatedTime.UTC().Format(time.RFC3339Nano)}
	r.User, r.Groups = t.User, t.Groups
	if r.Groups == nil {
		r.Groups = []string{}
	}
	r.Principal = `User::"` + t.PrincipalUser() + `"`
	if t.Root {
		r.Principal = `Root::"root"`
	}
	if r.Policies == nil {
		r.Policies = []string{}
	}
	if !t.ExpireTime.IsZero() {
		r.ExpireTime = t.ExpireTime.UTC().Format(time.RFC3339Nano)
		r.TTL = t.TTL(now).Round(time.Second).String()
	}
	return r
}

type tokenCreateRequest struct {
	TTL         string   `json:"ttl"`
	DisplayName string   `json:"display_name"`
	User        string   `json:"user"`
	Groups      []string `json:"groups"`
}

// tokenCreateTarget decodes the body (kept for the handler) and targets
// Token::"<user>" with attributes user and groups, the principal the new
// token will have: policies decide who may mint tokens for whom.
func tokenCreateTarget(req *request) (target, error) {
	in := new(tokenCreateRequest)
	if err := req.decode(in, true); err != nil {
		return target{}, err
	}
	req.parsed = in
	if req.tok == nil {
		return target{}, needToken
	}
	user, groups := in.User, in.Groups
	if user == "" {
		user, groups = req.tok.PrincipalUser(), req.tok.Groups
	}
	gs := make([]types.Value, len(groups))
	for i, g := range groups {
		gs[i] = types.String(g)
	}
	return target{action: authz.ActionTokenCreate, resource: entity(authz.TypeToken, user,
		types.RecordMap{"user": types.String(user), "groups": types.NewSet(gs...)})}, nil
}

// selfTarget: looking up one's own token is token.lookup on Token::"self".
var selfTarget = fixed(authz.ActionTokenLookup, authz.TypeToken, "self")

func (s *Server) tokenCreate(req *request) (int, any, error) {
	in, _ := req.parsed.(*tokenCreateRequest)
	if in == nil {
		in = new(tokenCreateRequest)
		if err := req.decode(in, true); err != nil {
			return 0, nil, err
		}
	}
	var ttl time.Duration
	if in.TTL != "" {
		d, err := time.ParseDuration(in.TTL)
		if err != nil || d <= 0 {
			return 0, nil, errs.E(errs.Invalid, "ttl: must be a positive Go duration such as 30m or 1h, got %q", in.TTL)
		}
		ttl = d
	}
	secret, t, err := s.cfg.Tokens.Create(req.Context(), req.tok, identity.CreateRequest{TTL: ttl, DisplayName: in.DisplayName, User: in.User, Groups: in.Groups})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.tokenView(t, secret), nil
}

func (s *Server) tokenLookupSelf(req *request) (int, any, error) {
	if req.tok == nil {
		return 0, nil, needToken
	}
	return http.StatusOK, s.tokenView(req.tok, ""), nil
}

type tokenRef struct {
	Token    string `json:"token"`
	Accessor string `json:"accessor"`
}

func (s *Server) lookupRef(req *request) (*identity.Token, error) {
	var in tokenRef
	if err := req.decode(&in, false); err != nil {
		return nil, err
	}
	switch {
	case in.Token != "" && in.Accessor != "":
		return nil, errs.E(errs.Invalid, "give either token or accessor, not both")
	case in.Token != "":
		return s.cfg.Tokens.LookupToken(in.Token)
	case in.Accessor != "":
		return s.cfg.Tokens.LookupAccessor(in.Accessor)
	}
	return nil, errs.E(errs.Invalid, "token or accessor: one is required")
}

func (s *Server) tokenLookup(req *request) (int, any, error) {
	t, err := s.lookupRef(req)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.tokenView(t, ""), nil
}

func (s *Server) tokenRevoke(req *request) (int, any, error) {
	t, err := s.lookupRef(req)
	if err != nil {
		return 0, nil, err
	}
	if err := s.cfg.Tokens.Revoke(req.Context(), t.Accessor); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

type whoamiResponse struct {
	Principal  string            `json:"principal"`
	AuthMethod string            `json:"auth_method"`
	Attributes map[string]string `json:"attributes"`
}

// whoami describes the caller: token or client certificate.
func (s *Server) whoami(req *request) (int, any, error) {
	attrs := req.caller.attrs
	if attrs == nil {
		attrs = map[string]string{}
	}
	return http.StatusOK, whoamiResponse{Principal: req.caller.String(), AuthMethod: req.caller.method, Attributes: attrs}, nil
}
