package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/cosign"
	"github.com/warden-sec/warden/internal/errs"
)

// Witnesses gets the audit log's checkpoints cosigned by its witnesses
// and keeps the external ones (the server's witness node implements it;
// see internal/cosign).
type Witnesses interface {
	// Cosigned returns the current checkpoint with the cosignatures
	// collected, once want witnesses cosigned (0: those already
	// collected, at once); short of want in time: a result and an
	// Unavailable error naming who refused and why.
	Cosigned(ctx context.Context, want int) (*cosign.Result, error)
	List(ctx context.Context) (*cosign.Listing, error)
	// AddExternal and RemoveExternal commit with the request's record.
	AddExternal(ctx context.Context, w cosign.ExternalWitness) (*cosign.ExternalWitness, error)
	RemoveExternal(ctx context.Context, name string) error
	// Unsealed runs after this node was unsealed: its witness starts and
	// is registered (a failure is retried in the background).
	Unsealed(ctx context.Context) error
}

var auditWitnessWrite = fixed(authz.ActionAuditWitnessWrite, authz.TypeAuditLog, "warden")

// MaxWitnessQuorum bounds ?witnesses=K.
const MaxWitnessQuorum = 100

// auditCheckpoint serves the signed checkpoint with the cosignatures of
// the witnesses that cosigned it (C2SP tlog-cosignature lines after the
// log's signature). ?witnesses=K waits, within the request's deadline and
// at most 10 s, for K of them, else answers 503 naming the witnesses that
// refused and why.
func (s *Server) auditCheckpoint(req *request) (int, any, error) {
	want := 0
	if v := req.URL.Query().Get("witnesses"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > MaxWitnessQuorum || strconv.Itoa(n) != v {
			return 0, nil, errs.E(errs.Invalid, "witnesses: want an integer from 0 to %d, got %q", MaxWitnessQuorum, v)
		}
		want = n
	}
	if s.cfg.Witnesses == nil {
		if want > 0 {
			return 0, nil, errs.E(errs.Unavailable, "witnesses: this server has no witnesses")
		}
		cp, err := s.cfg.Audit.Checkpoint(req.Context())
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, rawText(cp), nil
	}
	// Stop waiting a little before the request's deadline, so the answer
	// says who did not cosign rather than that the deadline passed.
	ctx := req.Context()
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) > 2*time.Second {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-time.Second))
		defer cancel()
	}
	res, err := s.cfg.Witnesses.Cosigned(ctx, want)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rawText(res.Checkpoint), nil
}

func (s *Server) witnesses() (Witnesses, error) {
	if s.cfg.Witnesses == nil {
		return nil, errs.E(errs.Unavailable, "witnesses are not configured on this server")
	}
	return s.cfg.Witnesses, nil
}

// auditWitnessList lists the server and external witnesses, with what
// this node last heard from each.
func (s *Server) auditWitnessList(req *request) (int, any, error) {
	ws, err := s.witnesses()
	if err != nil {
		return 0, nil, err
	}
	l, err := ws.List(req.Context())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, l, nil
}

type witnessAddRequest struct {
	Name        string `json:"name"`
	URL         string `json:"url"`
	VerifierKey string `json:"verifier_key"`
	CACert      string `json:"ca_cert"`
}

// auditWitnessAdd adds an external witness.
func (s *Server) auditWitnessAdd(req *request) (int, any, error) {
	ws, err := s.witnesses()
	if err != nil {
		return 0, nil, err
	}
	var in witnessAddRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	w, err := ws.AddExternal(req.Context(), cosign.ExternalWitness{Name: in.Name, URL: in.URL, VerifierKey: in.VerifierKey, CACert: in.CACert})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, w, nil
}

// auditWitnessRemove removes an external witness.
func (s *Server) auditWitnessRemove(req *request) (int, any, error) {
	ws, err := s.witnesses()
	if err != nil {
		return 0, nil, err
	}
	if err := ws.RemoveExternal(req.Context(), req.PathValue("name")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}
