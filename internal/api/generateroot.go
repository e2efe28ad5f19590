package api

import (
	"context"
	"crypto/hpke"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/warden-sec/warden/internal/api/handler"
	"github.com/warden-sec/warden/internal/core"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/identity"
)

// Root token generation (docs/governance.md "Generate root"). A quorum of
// unseal keys authorizes it, not a token, so its routes are public like
// unseal; but the cluster is unsealed, so every step that changes the
// attempt commits its record before it takes effect (core.RootGenHooks),
// and failures before that are counted against the caller's address like
// any unauthenticated failure (pipeline.serve, failUnauthenticated).

// Record actions of root generation beyond the route names.
const (
	actionGenerateRootInit     = "sys.generate-root.init"
	actionGenerateRootUpdate   = "sys.generate-root.update"
	actionGenerateRootCancel   = "sys.generate-root.cancel"
	actionGenerateRootComplete = "sys.generate-root.complete"
)

type generateRootInitRequest struct {
	PublicKey string `json:"public_key"`
}

type generateRootKeyRequest struct {
	Nonce string `json:"nonce"`
	Key   string `json:"key"`
}

// generateRootResponse is the attempt's status. The nonce is only in the
// answer to init (the requester passes it to the key holders); the token
// only ever encrypted to the requester's key.
type generateRootResponse struct {
	Started        bool   `json:"started"`
	Nonce          string `json:"nonce,omitempty"`
	Progress       int    `json:"progress"`
	Required       int    `json:"required"`
	Fingerprint    string `json:"public_key_fingerprint,omitempty"`
	StartedAt      string `json:"started_at,omitempty"`
	ExpiresAt      string `json:"expires_at,omitempty"`
	Complete       bool   `json:"complete"`
	EncryptedToken string `json:"encrypted_token,omitempty"`
	TokenAccessor  string `json:"token_accessor,omitempty"`
}

func generateRootView(st core.RootGenStatus) generateRootResponse {
	r := generateRootResponse{Started: st.Started, Progress: st.Progress, Required: st.Required, Fingerprint: st.Fingerprint,
		Complete: st.Complete, TokenAccessor: st.TokenAccessor}
	if st.Started {
		r.StartedAt, r.ExpiresAt = st.StartedAt.UTC().Format(time.RFC3339), st.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if len(st.EncryptedToken) > 0 {
		r.EncryptedToken = base64.StdEncoding.EncodeToString(st.EncryptedToken)
	}
	return r
}

// parseGenerateRootInit decodes the body of POST
// /v1/sys/generate-root/attempt.
func parseGenerateRootInit(body []byte) (hpke.PublicKey, error) {
	var in generateRootInitRequest
	if err := handler.DecodeJSON(body, &in, false); err != nil {
		return nil, err
	}
	return core.ParseGenerateRootPublicKey(in.PublicKey)
}

// parseGenerateRootKey decodes the body of an update (nonce and key, both
// required) or of a cancel (exactly one of them), checking their form; core
// checks them against the attempt and the cluster.
func parseGenerateRootKey(body []byte, update bool) (generateRootKeyRequest, error) {
	var in generateRootKeyRequest
	if err := handler.DecodeJSON(body, &in, false); err != nil {
		return generateRootKeyRequest{}, err
	}
	if !update {
		switch {
		case in.Nonce != "" && in.Key != "":
			return generateRootKeyRequest{}, errs.E(errs.Invalid, "nonce, key: give one, not both")
		case in.Nonce == "" && in.Key == "":
			return generateRootKeyRequest{}, errs.E(errs.Invalid, "nonce: required (or key: one of the cluster's unseal keys)")
		}
	}
	if update || in.Nonce != "" {
		if _, err := core.ParseGenerateRootNonce(in.Nonce); err != nil {
			return generateRootKeyRequest{}, err
		}
	}
	if update || in.Key != "" {
		share, err := core.ParseShare(in.Key)
		if err != nil {
			return generateRootKeyRequest{}, err
		}
		clear(share)
	}
	return in, nil
}

// generateRootHooks commits the records of root generation on req's
// behalf: each step's own record, committed before the step takes effect,
// and the completion's, which rides with the new token's transaction.
func (s *Server) generateRootHooks(req *request, method string) core.RootGenHooks {
	fill := func(action string, st core.RootGenStatus) {
		e := req.entry
		e.Action, e.AuthMethod, e.Resource = action, method, systemResource
		e.Hashes = map[string]string{"requester_key": st.Fingerprint}
	}
	return core.RootGenHooks{
		Record: func(ctx context.Context, ev core.RootGenEvent) error {
			if req.entry == nil {
				return errs.E(errs.Internal, "root generation: no audit record for the request")
			}
			action, outcome := actionGenerateRootUpdate, http.StatusOK
			switch ev.Step {
			case core.RootGenStarted:
				action = actionGenerateRootInit
			case core.RootGenCancelled:
				action, outcome = actionGenerateRootCancel, http.StatusNoContent
			case core.RootGenReset:
				outcome = statusFor(ev.Err)
			}
			fill(action, ev.Status)
			req.entry.Outcome = outcome
			if ev.Err != nil {
				req.entry.Error = ev.Err.Error()
			}
			if err := s.cfg.Audit.Record(ctx, req.entry); err != nil {
				s.log.Error("audit record of a root generation step not committed; refusing the step",
					"request_id", req.id, "step", string(ev.Step), "err", err)
				return errs.Wrap(errs.Unavailable, err, "the audit log is unavailable; the request was refused")
			}
			req.entry = nil // committed: the pipeline must not commit it again
			s.log.Info("root generation", "step", string(ev.Step), "progress", ev.Status.Progress, "required", ev.Status.Required,
				"requester_key", ev.Status.Fingerprint, "request_id", req.id)
			return nil
		},
		Mint: func(ctx context.Context, st core.RootGenStatus) (string, string, error) {
			if req.entry == nil {
				return "", "", errs.E(errs.Internal, "root generation: no audit record for the request")
			}
			sec, tok, err := s.cfg.Tokens.CreateRoot(ctx, func(t *identity.Token) {
				fill(actionGenerateRootComplete, st)
				req.entry.Resource = `Token::"` + t.Accessor + `"`
			})
			if err != nil {
				return "", "", err
			}
			s.log.Warn("a new root token was generated by a quorum of unseal keys", "accessor", tok.Accessor,
				"requester_key", st.Fingerprint, "request_id", req.id)
			return sec.Reveal(), tok.Accessor, nil
		},
	}
}

func (s *Server) generateRootStatus(req *request) (int, any, error) {
	st, err := s.cfg.Core.GenerateRootStatus()
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, generateRootView(st), nil
}

func (s *Server) generateRootInit(req *request) (int, any, error) {
	body, err := req.readBody()
	if err != nil {
		return 0, nil, err
	}
	pub, err := parseGenerateRootInit(body)
	if err != nil {
		return 0, nil, err
	}
	nonce, st, err := s.cfg.Core.GenerateRootInit(req.Context(), pub, s.generateRootHooks(req, "none"))
	if err != nil {
		return 0, nil, err
	}
	r := generateRootView(st)
	r.Nonce = nonce
	return http.StatusOK, r, nil
}

func (s *Server) generateRootUpdate(req *request) (int, any, error) {
	body, err := req.readBody()
	if err != nil {
		return 0, nil, err
	}
	in, err := parseGenerateRootKey(body, true)
	clear(body)
	if err != nil {
		return 0, nil, err
	}
	st, err := s.cfg.Core.GenerateRootUpdate(req.Context(), in.Nonce, in.Key, s.generateRootHooks(req, "unseal-key"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, generateRootView(st), nil
}

func (s *Server) generateRootCancel(req *request) (int, any, error) {
	body, err := req.readBody()
	if err != nil {
		return 0, nil, err
	}
	in, err := parseGenerateRootKey(body, false)
	clear(body)
	if err != nil {
		return 0, nil, err
	}
	method := "none"
	if in.Key != "" {
		method = "unseal-key"
	}
	if err := s.cfg.Core.GenerateRootCancel(req.Context(), in.Nonce, in.Key, s.generateRootHooks(req, method)); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}
