package api

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/passkey"
	"github.com/warden-sec/warden/internal/users"
)

// People (docs/people.md): user accounts, their passwords and second
// factors. Administrators act with users.read, users.write and
// users.mfa.reset on User::"<name>" (User::"*" to list and create); a user
// acts on their own account with users.self, which the built-in policy
// builtin/user-self grants on oneself.

// userTarget targets User::"<name>" (User::"*" for a route without {name}).
func userTarget(action string) targetFunc {
	all := target{action: action, resource: entity(authz.TypeUser, "*", nil)}
	return func(r *request) (target, error) {
		if r.PathValue("name") == "" {
			return all, nil
		}
		name, err := pathUser(r)
		if err != nil {
			return target{}, err
		}
		return target{action: action, resource: entity(authz.TypeUser, name, types.RecordMap{"name": types.String(name)})}, nil
	}
}

// pathUser returns the {name} of the path, which must be a canonical user
// name. The users service would act on the canonical form of any other
// spelling (BOB is bob), so a policy about User::"bob" must see
// User::"bob": a name that is not canonical, or has no canonical form, is
// refused before authorization (errs.Invalid naming the field), never
// authorized under a resource the change does not touch.
func pathUser(r *request) (string, error) {
	name := r.PathValue("name")
	c, err := names.Canonical(name)
	if err != nil {
		var ne *names.NameError
		if errors.As(err, &ne) {
			return "", errs.E(errs.Invalid, "name: %s", ne.Reason)
		}
		return "", errs.E(errs.Invalid, "name: %v", err)
	}
	if c != name {
		return "", errs.E(errs.Invalid, "name: %q is not a canonical user name; use %q", name, c)
	}
	return name, nil
}

// userUID is how an audit record names the user a request names: by the
// canonical form of the name, which is the user it acts on (Alice is
// User::"alice"); a name that has none (an OpenID Connect user such as an
// email address, or a name the users service refuses) as given, in Cedar's
// quoting, which escapes what could be mistaken for the end of the name.
func userUID(name string) string {
	if c, err := names.Canonical(name); err == nil {
		name = c
	}
	return types.NewEntityUID(authz.TypeUser, types.String(name)).String()
}

// selfUser targets the caller's own User with users.self: what the
// built-in policy lets every user's token do to itself (renew, log out).
func selfUser(r *request) (target, error) {
	name := "mtls:" + r.caller.String() // a certificate is no User: no policy names it
	if r.tok != nil {
		name = r.tok.PrincipalUser()
	}
	return target{action: authz.ActionUsersSelf, resource: entity(authz.TypeUser, name, types.RecordMap{"name": types.String(name)})}, nil
}

// ownAccount reports whether the caller is the user the path names.
func ownAccount(r *request) bool {
	return r.tok != nil && !r.tok.Root && r.tok.User != "" && r.tok.User == r.PathValue("name")
}

// passwordTarget: changing one's own password is users.self (and needs
// the current password); anyone else's is users.write.
func (s *Server) passwordTarget(r *request) (target, error) {
	if ownAccount(r) {
		return userTarget(authz.ActionUsersSelf)(r)
	}
	return s.userWriteTarget(nil)(r)
}

// userWriteTarget targets users.write on User::"<name>" with attributes
// name and groups: the groups the user is in now (read through the users
// service; none for a user that does not exist) and, for a route whose
// requested returns them, the groups the change asks for. The default
// dual-control rule holds a users.write whose groups hold "security": a
// change that makes, changes or removes an approver.
func (s *Server) userWriteTarget(requested func(*request) (name string, groups []string, err error)) targetFunc {
	return func(r *request) (target, error) {
		var (
			name   string
			groups []string
			err    error
		)
		if requested != nil {
			if name, groups, err = requested(r); err != nil {
				return target{}, err
			}
		}
		id := "*" // a create is on User::"*", its name an attribute
		if r.PathValue("name") != "" {
			if name, err = pathUser(r); err != nil {
				return target{}, err
			}
			id = name
		}
		if name != "" && s.cfg.Users != nil {
			u, err := s.cfg.Users.Get(r.Context(), name)
			switch {
			case err == nil:
				groups = append(groups, u.Groups...)
			case !errs.Is(err, errs.NotFound):
				return target{}, err
			}
		}
		set := make([]types.Value, len(groups))
		for i, g := range groups {
			set[i] = types.String(g)
		}
		attrs := types.RecordMap{"groups": types.NewSet(set...)}
		if name != "" {
			attrs["name"] = types.String(name)
		}
		return target{action: authz.ActionUsersWrite, resource: entity(authz.TypeUser, id, attrs)}, nil
	}
}

// canonicalGroups returns the canonical forms of a request's groups (the
// users service stores those: Security is security), or errs.Invalid
// naming the field.
func canonicalGroups(groups []string) ([]string, error) {
	out := make([]string, len(groups))
	for i, g := range groups {
		c, err := names.Canonical(g)
		if err != nil {
			var ne *names.NameError
			if errors.As(err, &ne) {
				return nil, errs.E(errs.Invalid, "groups: %s", ne.Reason)
			}
			return nil, errs.E(errs.Invalid, "groups: %v", err)
		}
		out[i] = c
	}
	return out, nil
}

// createRequested is what a create asks for: the new user's canonical
// name ("" when it has none: the handler refuses it) and groups. The body
// is decoded again by the handler, from the bytes read here.
func createRequested(r *request) (string, []string, error) {
	in := new(userCreateRequest)
	if err := r.decode(in, true); err != nil {
		return "", nil, err
	}
	groups, err := canonicalGroups(in.Groups)
	if err != nil {
		return "", nil, err
	}
	name, err := names.Canonical(in.Name)
	if err != nil {
		name = ""
	}
	return name, groups, nil
}

// updateRequested is the groups an update asks for (none when the body
// has none: the handler refuses it).
func updateRequested(r *request) (string, []string, error) {
	in := new(userUpdateRequest)
	if err := r.decode(in, true); err != nil {
		return "", nil, err
	}
	if in.Groups == nil {
		return "", nil, nil
	}
	groups, err := canonicalGroups(*in.Groups)
	return "", groups, err
}

func (s *Server) usersService() (*users.Service, error) {
	if s.cfg.Users == nil {
		return nil, errs.E(errs.Unavailable, "user accounts are not served by this server")
	}
	return s.cfg.Users, nil
}

// none is the request body of a route that takes none.
type none struct{}

// userCall makes a handler on the users service: it decodes the body into
// a new In (none: the body must be empty), then answers what fn returns,
// 200 with a body or 204 for nil.
func userCall[In any](s *Server, fn func(svc *users.Service, req *request, in *In) (any, error)) handlerFunc {
	return func(req *request) (int, any, error) {
		svc, err := s.usersService()
		if err != nil {
			return 0, nil, err
		}
		in := new(In)
		_, empty := any(in).(*none)
		if err := req.decode(in, empty); err != nil {
			return 0, nil, err
		}
		out, err := fn(svc, req, in)
		if err != nil {
			return 0, nil, err
		}
		if out == nil {
			return http.StatusNoContent, nil, nil
		}
		return http.StatusOK, out, nil
	}
}

// userAction makes a handler that changes the user the path names and
// takes no body.
func (s *Server) userAction(do func(svc *users.Service, req *request, name string) error) handlerFunc {
	return userCall(s, func(svc *users.Service, req *request, _ *none) (any, error) {
		return nil, do(svc, req, req.PathValue("name"))
	})
}

// viewOf answers a user's view, or the error.
func viewOf(u *users.User, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return u.View(), nil
}

type userCreateRequest struct {
	Name     string   `json:"name"`
	Groups   []string `json:"groups"`
	Password string   `json:"password"`
}

func userCreate(svc *users.Service, req *request, in *userCreateRequest) (any, error) {
	var pw []byte
	if in.Password != "" {
		pw = []byte(in.Password)
	}
	if req.entry != nil {
		req.entry.Resource = userUID(in.Name)
	}
	return viewOf(svc.Create(req.Context(), in.Name, in.Groups, pw))
}

type userListResponse struct {
	Users []users.UserView `json:"users"`
	Next  string           `json:"next,omitempty"`
}

func userList(svc *users.Service, req *request, _ *none) (any, error) {
	q := req.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return nil, errs.E(errs.Invalid, "limit: must be a number from 1 to 1000")
		}
		limit = n
	}
	us, next, err := svc.List(req.Context(), q.Get("after"), limit)
	if err != nil {
		return nil, err
	}
	out := userListResponse{Users: make([]users.UserView, len(us)), Next: next}
	for i, u := range us {
		out.Users[i] = u.View()
	}
	return out, nil
}

func userRead(svc *users.Service, req *request, _ *none) (any, error) {
	return viewOf(svc.Get(req.Context(), req.PathValue("name")))
}

type userUpdateRequest struct {
	Groups *[]string `json:"groups"`
}

func userUpdate(svc *users.Service, req *request, in *userUpdateRequest) (any, error) {
	if in.Groups == nil {
		return nil, errs.E(errs.Invalid, "groups: required (the user's new groups; [] for none)")
	}
	return viewOf(svc.Update(req.Context(), req.PathValue("name"), *in.Groups))
}

type passwordRequest struct {
	Password        string `json:"password"`
	CurrentPassword string `json:"current_password"`
}

// userPassword sets a user's password. A user changing their own must
// give the current one: a stolen session alone cannot take the account.
func userPassword(svc *users.Service, req *request, in *passwordRequest) (any, error) {
	name := req.PathValue("name")
	if ownAccount(req) {
		if in.CurrentPassword == "" {
			return nil, errs.E(errs.Invalid, "current_password: required to change one's own password")
		}
		if _, err := svc.CheckLogin(req.Context(), name, in.CurrentPassword, clientKey(req.Request)); err != nil {
			return nil, errs.E(errs.Invalid, "current_password: does not match")
		}
	}
	return nil, svc.SetPassword(req.Context(), name, []byte(in.Password))
}

type totpEnrollResponse struct {
	URI    string `json:"uri"`
	Secret string `json:"secret"`
}

// errReauthenticate refuses a change of second factors to a session
// opened without one, when the user has one.
var errReauthenticate = errs.E(errs.Denied, "re-authenticate with your second factor: this session was opened without one")

// factorChange returns the user the path names if the caller may change
// their second factors (users.self routes: enroll TOTP, confirm it, new
// recovery codes, register a passkey). Once a user has a factor, only a
// caller whose context.auth.mfa is true may: a session opened with the
// password alone (stolen, or left open), a token made from a session
// (token create: context.auth.method token), a single sign-on login
// without the provider's second factor, the root token and node
// certificates are refused, so that the password alone never replaces or
// adds a factor. The first enrollment (no factor yet) is open to any
// session the policies let act on the account, mfa-enroll sessions
// included.
func factorChange(svc *users.Service, req *request) (*users.User, error) {
	u, err := svc.Get(req.Context(), req.PathValue("name"))
	if err != nil {
		return nil, err
	}
	if u.HasMFA() && (req.tok == nil || !req.tok.AuthOf().MFA) {
		return nil, errReauthenticate
	}
	return u, nil
}

func totpEnroll(svc *users.Service, req *request, _ *none) (any, error) {
	if _, err := factorChange(svc, req); err != nil {
		return nil, err
	}
	uri, secret, err := svc.EnrollTOTP(req.Context(), req.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return totpEnrollResponse{URI: uri, Secret: secret}, nil
}

type codeRequest struct {
	Code string `json:"code"`
}

type recoveryCodesResponse struct {
	RecoveryCodes []string `json:"recovery_codes"`
}

// recoveryCodes answers new recovery codes, or the error.
func recoveryCodes(codes []string, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return recoveryCodesResponse{RecoveryCodes: codes}, nil
}

func totpConfirm(svc *users.Service, req *request, in *codeRequest) (any, error) {
	if _, err := factorChange(svc, req); err != nil {
		return nil, err
	}
	return recoveryCodes(svc.ConfirmTOTP(req.Context(), req.PathValue("name"), in.Code))
}

func newRecoveryCodes(svc *users.Service, req *request, _ *none) (any, error) {
	if _, err := factorChange(svc, req); err != nil {
		return nil, err
	}
	return recoveryCodes(svc.NewRecoveryCodes(req.Context(), req.PathValue("name")))
}

// account is the WebAuthn account of a user.
func account(u *users.User) passkey.Account {
	h := sha256.Sum256([]byte("warden-user:" + u.Name))
	a := passkey.Account{Name: u.Name, ID: h[:16]}
	for _, p := range u.Passkeys {
		a.Credentials = append(a.Credentials, p.Credential)
	}
	return a
}

type passkeyBeginResponse struct {
	Options any    `json:"options"`
	State   string `json:"state"`
}

func (s *Server) passkeyRegisterBegin(svc *users.Service, req *request, _ *none) (any, error) {
	u, err := factorChange(svc, req)
	if err != nil {
		return nil, err
	}
	pk, err := s.passkeysFor(req.Context())
	if err != nil {
		return nil, err
	}
	opts, state, err := pk.BeginRegistration(account(u))
	if err != nil {
		return nil, err
	}
	return passkeyBeginResponse{Options: opts, State: state}, nil
}

type passkeyFinishRequest struct {
	Name       string          `json:"name"`
	State      string          `json:"state"`
	Credential json.RawMessage `json:"credential"`
}

func (s *Server) passkeyRegisterFinish(svc *users.Service, req *request, in *passkeyFinishRequest) (any, error) {
	u, err := factorChange(svc, req)
	if err != nil {
		return nil, err
	}
	pk, err := s.passkeysFor(req.Context())
	if err != nil {
		return nil, err
	}
	if len(in.Credential) == 0 {
		return nil, errs.E(errs.Invalid, "credential: required (the authenticator's response)")
	}
	id, cred, err := pk.FinishRegistration(account(u), in.State, in.Credential)
	if err != nil {
		return nil, err
	}
	return nil, svc.AddPasskey(req.Context(), u.Name, in.Name, id, cred)
}

// passkeyRemove removes one of the user's passkeys by its name (a lost
// one); like every factor change, with a session opened with a factor.
func passkeyRemove(svc *users.Service, req *request, _ *none) (any, error) {
	u, err := factorChange(svc, req)
	if err != nil {
		return nil, err
	}
	return nil, svc.RemovePasskey(req.Context(), u.Name, req.PathValue("passkey"))
}
