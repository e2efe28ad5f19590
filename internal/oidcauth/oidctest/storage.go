package oidctest

import (
	"context"
	"sync"

	"github.com/zitadel/oidc/v3/example/server/storage"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// userStore implements storage.UserStore over the provider's users.
type userStore struct{ users map[string]*storage.User }

func (s userStore) GetUserByID(id string) *storage.User         { return s.users[id] }
func (s userStore) GetUserByUsername(name string) *storage.User { return s.users[name] }
func (s userStore) ExampleClientID() string                     { return storage.ServiceUserID }

// opStorage is the example storage with three additions: clients may use
// the device grant (the example's WebClient cannot be declared with it),
// users have a "groups" claim (in the ID token and at userinfo), and some
// users log in with a second factor (their "amr").
type opStorage struct {
	*storage.Storage
	groups map[string][]string // by subject
	amr    map[string][]string // by subject

	// dev orders the device states: the example storage hands the
	// provider its own *DeviceAuthorizationState, which the provider reads
	// without the storage's lock while an approval writes it (a data race
	// under -race). Here the provider gets a copy, taken under dev, and
	// approvals write under dev too.
	dev sync.Mutex
}

func (s *opStorage) GetDeviceAuthorizatonState(ctx context.Context, clientID, deviceCode string) (*op.DeviceAuthorizationState, error) {
	s.dev.Lock()
	defer s.dev.Unlock()
	st, err := s.Storage.GetDeviceAuthorizatonState(ctx, clientID, deviceCode)
	if err != nil {
		return nil, err
	}
	c := *st
	return &c, nil
}

func (s *opStorage) GetDeviceAuthorizationByUserCode(ctx context.Context, userCode string) (*op.DeviceAuthorizationState, error) {
	s.dev.Lock()
	defer s.dev.Unlock()
	st, err := s.Storage.GetDeviceAuthorizationByUserCode(ctx, userCode)
	if err != nil {
		return nil, err
	}
	c := *st
	return &c, nil
}

func (s *opStorage) CompleteDeviceAuthorization(ctx context.Context, userCode, subject string) error {
	s.dev.Lock()
	defer s.dev.Unlock()
	return s.Storage.CompleteDeviceAuthorization(ctx, userCode, subject)
}

func (s *opStorage) DenyDeviceAuthorization(ctx context.Context, userCode string) error {
	s.dev.Lock()
	defer s.dev.Unlock()
	return s.Storage.DenyDeviceAuthorization(ctx, userCode)
}

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return deviceGrantClient{c}, nil
}

type deviceGrantClient struct{ op.Client }

func (c deviceGrantClient) GrantTypes() []zoidc.GrantType {
	return append(c.Client.GrantTypes(), zoidc.GrantTypeDeviceCode)
}

func (s *opStorage) SetUserinfoFromRequest(ctx context.Context, ui *zoidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	if g, ok := s.groups[req.GetSubject()]; ok {
		ui.AppendClaims("groups", g)
	}
	return nil
}

func (s *opStorage) SetUserinfoFromToken(ctx context.Context, ui *zoidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, ui, tokenID, subject, origin); err != nil {
		return err
	}
	if g, ok := s.groups[ui.Subject]; ok {
		ui.AppendClaims("groups", g)
	}
	return nil
}

func (s *opStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	r, err := s.Storage.AuthRequestByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	if amr, ok := s.amr[r.GetSubject()]; ok {
		return amrRequest{r, amr}, nil
	}
	return r, nil
}

type amrRequest struct {
	op.AuthRequest
	amr []string
}

func (r amrRequest) GetAMR() []string { return r.amr }
