package api

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/warden-sec/warden/internal/approval"
	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/authority"
	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/core"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/identity"
	"github.com/warden-sec/warden/internal/policy"
	"github.com/warden-sec/warden/internal/store"
	"github.com/warden-sec/warden/internal/version"
)

type healthResponse struct {
	Initialized   bool   `json:"initialized"`
	Sealed        bool   `json:"sealed"`
	Standby       bool   `json:"standby"`
	Version       string `json:"version"`
	ServerTimeUTC int64  `json:"server_time_utc"`
	Role          string `json:"role"`         // leader, follower or standby
	LastContact   string `json:"last_contact"` // followers: time since the leader was last heard, a Go duration
	AppliedIndex  uint64 `json:"applied_index"`
	CommitIndex   uint64 `json:"commit_index"`
}

func (s *Server) health(req *request) (int, any, error) {
	st, err := s.cfg.Core.Status()
	if err != nil {
		return 0, nil, err
	}
	rs := s.cfg.Core.Store().Status()
	body := healthResponse{Initialized: st.Initialized, Sealed: st.Sealed, Standby: rs.Role != store.RoleLeader,
		Version: version.String(), ServerTimeUTC: s.now().Unix(), Role: string(rs.Role),
		AppliedIndex: rs.AppliedIndex, CommitIndex: rs.CommitIndex}
	if !rs.LastContact.IsZero() {
		body.LastContact = time.Since(rs.LastContact).Round(time.Millisecond).String()
	}
	switch {
	case !st.Initialized:
		return http.StatusNotImplemented, body, nil
	case st.Sealed:
		return http.StatusServiceUnavailable, body, nil
	}
	return http.StatusOK, body, nil
}

func (s *Server) sealStatus(req *request) (int, any, error) {
	st, err := s.cfg.Core.Status()
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, st, nil
}

type initRequest struct {
	KeyShares    int `json:"key_shares"`
	KeyThreshold int `json:"key_threshold"`
	// DualControl turns dual control on (docs/governance.md).
	DualControl bool `json:"dual_control"`
}

type initResponse struct {
	UnsealKeys []string `json:"unseal_keys"`
	RootToken  string   `json:"root_token"`
}

func (s *Server) initialize(req *request) (int, any, error) {
	var in initRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if s.cfg.Cluster != nil {
		if err := core.ValidateSealParams(in.KeyShares, in.KeyThreshold); err != nil {
			return 0, nil, err
		}
		if err := s.cfg.Cluster.BeforeInit(req.Context()); err != nil {
			return 0, nil, storeError(err)
		}
	}
	// Nobody is authenticated before init: the record names the request.
	entry := &audit.Entry{Time: audit.FormatTime(s.now()), Action: "sys.init", AuthMethod: "none",
		SourceAddr: clientKey(req.Request), RequestID: req.id, Resource: systemResource, Outcome: http.StatusOK}
	keys, root, err := Initialize(req.Context(), s.cfg.Core, s.cfg.Tokens, s.cfg.Audit, entry, in.KeyShares, in.KeyThreshold, s.cfg.CAInit,
		in.DualControl || s.cfg.DualControlAtInit)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, initResponse{UnsealKeys: keys, RootToken: root.Reveal()}, nil
}

// systemResource is the cluster itself, as authorization names it.
var systemResource = types.NewEntityUID(authz.TypeSystem, "warden").String()

// Initialize runs init: the seal, the keyring, the token key, the root
// token and entry, the dual-control setting and, with dualControl, dual
// control on and the warden store's default approval rule (the policy
// policy.DualControlName) with the roles of dual control
// (policy.DualControlRolesName), the record of the init, committed together. It returns the unseal keys
// and the root token. The server stays sealed.
func Initialize(ctx context.Context, c *core.Core, tokens *identity.Service, alog *auditlog.Service, entry *audit.Entry,
	shares, threshold int, ca authority.InitOptions, dualControl bool) ([]string, identity.Secret, error) {
	var root identity.Secret
	created, _ := time.Parse(time.RFC3339Nano, entry.Time) // the init's own time
	res, err := c.Init(ctx, shares, threshold, func(enc core.Encrypter, clusterID string) ([]store.Op, store.AuditLeaf, error) {
		ops, sec, err := tokens.Bootstrap(enc)
		if err != nil {
			return nil, store.AuditLeaf{}, err
		}
		root = sec
		aops, err := auditlog.Bootstrap(enc, clusterID)
		if err != nil {
			return nil, store.AuditLeaf{}, err
		}
		cops, err := authority.Bootstrap(enc, ca)
		if err != nil {
			return nil, store.AuditLeaf{}, err
		}
		dops, err := approval.Bootstrap(enc, dualControl)
		if err != nil {
			return nil, store.AuditLeaf{}, err
		}
		var pops []store.Op
		if dualControl {
			pops, err = policy.BootstrapPolicies(enc, map[string]string{policy.DualControlName: policy.DualControlDefaults(),
				policy.DualControlRolesName: policy.DualControlRoles()}, created)
			if err != nil {
				return nil, store.AuditLeaf{}, err
			}
		}
		leaf, err := alog.InitLeaf(enc, entry)
		return slices.Concat(ops, aops, cops, dops, pops), leaf, err
	})
	if err != nil {
		return nil, "", err
	}
	res.RootKey.Zero()
	return res.UnsealKeys, root, nil
}

type unsealRequest struct {
	Key   string `json:"key"`
	Reset bool   `json:"reset"`
}

func (s *Server) unseal(req *request) (int, any, error) {
	var in unsealRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if in.Reset {
		if in.Key != "" {
			return 0, nil, errs.E(errs.Invalid, "key: give either key or reset, not both")
		}
		st, err := s.cfg.Core.ResetUnseal()
		return http.StatusOK, st, err
	}
	st, err := s.cfg.Core.Unseal(req.Context(), in.Key)
	if err != nil {
		return 0, nil, err
	}
	if !st.Sealed {
		s.log.Info("unsealed")
		if s.cfg.Cluster != nil {
			if err := s.cfg.Cluster.Unsealed(req.Context()); err != nil {
				s.log.Error("unsealed, but this node's cluster certificate could not be issued", "err", err)
			}
		}
		if s.cfg.Witnesses != nil {
			if err := s.cfg.Witnesses.Unsealed(req.Context()); err != nil {
				s.log.Warn("unsealed, but this node's audit witness is not running yet; retrying in the background", "err", err)
			}
		}
	}
	return http.StatusOK, st, nil
}

func (s *Server) seal(req *request) (int, any, error) {
	// Once sealed nothing can be committed: record the seal first.
	req.entry.Outcome = http.StatusNoContent
	if err := s.cfg.Audit.Record(req.Context(), req.entry); err != nil {
		return 0, nil, errs.Wrap(errs.Unavailable, err, "the audit log is unavailable; not sealing")
	}
	req.entry = nil
	s.cfg.Core.Seal()
	s.log.Warn("sealed by API request", "principal", req.caller.String(), "request_id", req.id)
	return http.StatusNoContent, nil, nil
}

type keyStatusResponse struct {
	Term        uint32    `json:"term"`
	InstallTime time.Time `json:"install_time"`
}

func (s *Server) rotate(req *request) (int, any, error) {
	ks, err := s.cfg.Core.Rotate(req.Context())
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("data key rotated", "term", ks.Term, "request_id", req.id)
	return http.StatusOK, keyStatusResponse(ks), nil
}

func (s *Server) keyStatus(req *request) (int, any, error) {
	ks, err := s.cfg.Core.KeyStatus()
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, keyStatusResponse(ks), nil
}

// pemText marks a handler result written as application/x-pem-file.
type pemText []byte

// pkiCA serves the trust bundle (public: it is what everyone must trust).
func (s *Server) pkiCA(req *request) (int, any, error) {
	b, err := s.cfg.CA.Bundle()
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, pemText(b), nil
}
