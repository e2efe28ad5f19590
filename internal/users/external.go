package users

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/identity"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/store/kv"
)

// ExternalLogin is a login another system vouched for (an OpenID Connect
// provider): the user, their groups and how they authenticated there.
type ExternalLogin struct {
	User   string
	Groups []string
	Auth   identity.AuthInfo
	// Once, when not "", is a storage key that must be absent: it is
	// written with the session, so what it names (a device login's state)
	// opens one session only.
	Once string
}

// ExternalLogin opens the session of a login the provider verified. A
// local user of the same name who is disabled cannot log in this way
// either, and the session is conditioned on that user's record, so a
// concurrent disable revokes it. The groups are the provider's. Members of
// a group that requires a second factor must come with the provider's.
func (s *Service) ExternalLogin(ctx context.Context, in ExternalLogin) (identity.Secret, *identity.Token, error) {
	for try := 0; ; try++ {
		var local *User
		if names.IsCanonical(in.User) {
			u, err := s.read(ctx, in.User)
			if err != nil {
				return "", nil, err
			}
			local = u
		}
		if local != nil && local.Disabled {
			return "", nil, ErrInvalidLogin
		}
		if !in.Auth.MFA && slices.ContainsFunc(in.Groups, func(g string) bool { return slices.Contains(s.mfaGroups, g) }) {
			return "", nil, errs.E(errs.Unauthenticated,
				"a second factor is required for a group of this user, and the identity provider reported none")
		}
		cond := kv.Cond{Key: prefixUser + in.User}
		var ops []kv.Op
		if local != nil {
			// Rewritten unchanged, so that its version moves: a disable
			// racing this login conflicts and revokes the new session.
			rec, err := json.Marshal(local)
			if err != nil {
				return "", nil, err
			}
			cond.Version = local.version
			ops = []kv.Op{{Type: kv.OpPut, Key: prefixUser + in.User, Value: rec}}
		}
		conds := []kv.Cond{cond}
		if in.Once != "" {
			conds = append(conds, kv.Cond{Key: in.Once})
			ops = append(ops, kv.Op{Type: kv.OpPut, Key: in.Once, Value: []byte{}})
		}
		secret, tok, err := s.sess.CreateSession(ctx, identity.SessionRequest{
			User: in.User, Groups: slices.Clone(in.Groups), Auth: in.Auth, TTL: s.ttl, Idle: s.idle,
			DisplayName: in.Auth.Method + " login", BeforeCommit: beforeCommit(ctx),
		}, conds, ops)
		var ce *kv.ConflictError
		if errors.As(err, &ce) && in.Once != "" && ce.Key == in.Once {
			return "", nil, ErrInvalidLogin // used already
		}
		if errs.Is(err, errs.Conflict) && try < maxRetries {
			continue
		}
		return secret, tok, err
	}
}
