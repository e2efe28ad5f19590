package api

import (
	"context"
	"slices"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/policy"
)

// ProbeUser is a user the MFA probe asks about: name and groups.
type ProbeUser struct {
	Name   string
	Groups []string
}

// MFAProbeLimit bounds the users one probe asks about (stand-ins for
// groups come on top).
const MFAProbeLimit = 1000

// zoneActions are the actions on a zone's nodes that the probe asks
// about: what a person can do to the zone through Warden.
func zoneActions() []string {
	return []string{authz.ActionNodeRead, authz.ActionNodeRevoke, authz.ActionNodeList, authz.ActionInventoryRead}
}

// ProbeMFA asks the warden store's policies, for each of users (the
// caller bounds them: MFAProbeLimit users and a stand-in per group), whether a session without a second factor
// (context.auth.mfa false, logged in by password) may act on a node of
// zone. It returns the user/action pairs that may, as "user: action" (at
// most 10), and how many users it asked about. None means the policies
// require a second factor for every person's access to the zone
// (docs/compliance.md, "MFA per zone"). The root token is no person's
// and is not asked about.
func (s *Server) ProbeMFA(ctx context.Context, zone string, users []ProbeUser) (allowed []string, asked int, err error) {
	node := authz.NodeEntity("compliance-probe", zone, nil)
	auth := types.NewRecord(types.RecordMap{"method": types.String("password"), "mfa": types.False,
		"mfa_method": types.String(""), "time": types.Long(s.now().Unix())})
	reqCtx := types.NewRecord(types.RecordMap{"source_ip": types.String("127.0.0.1"), "mtls": types.False,
		"time": types.Long(s.now().Unix()), "auth": auth})
	for _, u := range users {
		asked++
		uid := types.NewEntityUID(authz.TypeUser, types.String(u.Name))
		ents := []types.Entity{node}
		parents := make([]types.EntityUID, 0, len(u.Groups))
		for _, g := range u.Groups {
			p := types.NewEntityUID(authz.TypeGroup, types.String(g))
			parents = append(parents, p)
			ents = append(ents, types.Entity{UID: p})
		}
		ents = append(ents, types.Entity{UID: uid, Parents: types.NewEntityUIDSet(parents...),
			Attributes: types.NewRecord(types.RecordMap{"name": types.String(u.Name)})})
		es, err := authz.NewEntities(authz.WithZones(ents...)...)
		if err != nil {
			return nil, asked, err
		}
		for _, a := range zoneActions() {
			d, err := s.cfg.Policies.Check(ctx, policy.WardenStore, authz.CheckRequest{
				Request:  authz.Request{Principal: uid, Action: authz.ActionUID(a), Resource: node.UID, Context: reqCtx},
				Entities: es,
			})
			if err != nil {
				return nil, asked, err
			}
			if d.Allow && len(allowed) < 10 {
				allowed = append(allowed, u.Name+": "+a)
			}
		}
	}
	return slices.Clip(allowed), asked, nil
}

// OIDCConfigured reports whether single sign-on with an OpenID Connect
// provider is configured.
func (s *Server) OIDCConfigured(ctx context.Context) (bool, error) {
	_, err := s.cfg.Core.Get(ctx, keyOIDCConfig)
	if errs.Is(err, errs.NotFound) {
		return false, nil
	}
	return err == nil, err
}
