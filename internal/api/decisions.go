package api

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/errs"
	wresp "github.com/warden-sec/warden/internal/respond"
)

// The decision routes: decisions, the never-block list and the decision
// stream (docs/response.md).

// DefaultMaxDecisionStreams bounds the decision streams one server serves
// at once (every agent and service follows one); one more is answered 429.
const DefaultMaxDecisionStreams = 16384

// decisionHeartbeat is how often an idle decision stream writes a comment
// (followers treat 15 s of silence as a dead connection); decisionCheck how
// often it looks whether the server sealed or the caller was revoked.
const (
	decisionHeartbeat = 5 * time.Second
	decisionCheck     = time.Second
)

// decisionsH wraps a decision handler: without the service it answers 503.
func (s *Server) decisionsH(h handlerFunc) handlerFunc {
	return func(req *request) (int, any, error) {
		if s.cfg.Decisions == nil || s.cfg.DecisionFeed == nil {
			return 0, nil, errs.E(errs.Unavailable, "decisions are not configured on this server")
		}
		return h(req)
	}
}

// respondGate refuses the requests of a quarantined node (but its event
// shipping and its decision stream: it stays watched) and of a banned
// user, naming the decision.
func (s *Server) respondGate(rt *route, c *caller) error {
	f := s.cfg.DecisionFeed
	if f == nil || c == nil || c.root {
		return nil
	}
	if c.method == "mtls" {
		if rt.name == "events.write" || rt.name == "decisions.stream" {
			return nil
		}
		if d, ok := f.Quarantined(c.attrs["name"]); ok {
			return errs.E(errs.Denied, "permission denied: node %s is quarantined by decision %s until %s", c.attrs["name"], d.ID, d.ExpiresAt)
		}
		return nil
	}
	if u := c.attrs["user"]; u != "" {
		if d, ok := f.BannedUser(u); ok {
			return errs.E(errs.Denied, "permission denied: user %s is banned by decision %s until %s", u, d.ID, d.ExpiresAt)
		}
	}
	return nil
}

// quarantined refuses a quarantined node's renewal: its certificate is not
// renewed.
func (s *Server) quarantined(node string) error {
	if f := s.cfg.DecisionFeed; f != nil {
		if d, ok := f.Quarantined(node); ok {
			return errs.E(errs.Denied, "permission denied: node %s is quarantined by decision %s until %s; its certificate is not renewed",
				node, d.ID, d.ExpiresAt)
		}
	}
	return nil
}

func (s *Server) decisionAdd(req *request) (int, any, error) {
	var in wresp.Input
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	d, err := s.cfg.Decisions.Add(req.Context(), in, req.caller.String())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, d, nil
}

type decisionsResponse struct {
	Decisions []wresp.Decision `json:"decisions"`
}

// decisionList is GET /v1/decisions: the stored decisions, newest first;
// ?active=true keeps those in force, and ?node=NAME those that concern the
// node (wresp.Concerns: its quarantine, the bans of its reported
// addresses). The filter reads the node's record, so it is authorized as
// GET /v1/nodes/NAME is (node.read on the node) besides the route's
// decisions.read; an unknown node is 404.
func (s *Server) decisionList(req *request) (int, any, error) {
	q := req.URL.Query()
	active := false
	switch v := q.Get("active"); v {
	case "true":
		active = true
	case "", "false":
	default:
		return 0, nil, errs.E(errs.Invalid, "active: must be true or false")
	}
	node, byNode, err := nodeQuery(q)
	if err != nil {
		return 0, nil, err
	}
	if !byNode {
		ds, err := s.cfg.Decisions.List(req.Context(), active)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, decisionsResponse{Decisions: ds}, nil
	}
	if s.cfg.Nodes == nil {
		return 0, nil, errs.E(errs.Unavailable, "node records are not available on this server")
	}
	// The root token is allowed everything; its use was logged once, for
	// the route's target.
	if !req.caller.root {
		if err := s.authorize(req, target{action: authz.ActionNodeRead, resource: nodeResource(node)}); err != nil {
			return 0, nil, err
		}
	}
	n, err := s.cfg.Nodes.Node(req.Context(), node)
	if err != nil {
		return 0, nil, err
	}
	ds, err := s.cfg.Decisions.ListNode(req.Context(), active, n.Name, n.Addresses)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, decisionsResponse{Decisions: ds}, nil
}

func (s *Server) decisionGet(req *request) (int, any, error) {
	d, err := s.cfg.Decisions.Get(req.Context(), req.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, d, nil
}

func (s *Server) decisionDelete(req *request) (int, any, error) {
	if err := s.cfg.Decisions.Delete(req.Context(), req.PathValue("id")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

func (s *Server) allowAdd(req *request) (int, any, error) {
	var in wresp.AllowInput
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	e, err := s.cfg.Decisions.AddAllow(req.Context(), in, req.caller.String())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, e, nil
}

type allowResponse struct {
	Entries []wresp.AllowEntry `json:"entries"`
}

func (s *Server) allowList(req *request) (int, any, error) {
	es, err := s.cfg.Decisions.ListAllow(req.Context())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, allowResponse{Entries: es}, nil
}

func (s *Server) allowDelete(req *request) (int, any, error) {
	if err := s.cfg.Decisions.DeleteAllow(req.Context(), req.PathValue("id")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// decisionsStream serves GET /v1/decisions/stream?since=REV (or
// Last-Event-ID): server-sent events as docs/response.md describes.
func (s *Server) decisionsStream(req *request) (int, any, error) {
	var since uint64
	from := req.Header.Get("Last-Event-ID")
	if v := req.URL.Query().Get("since"); v != "" {
		from = v
	}
	if from != "" {
		n, err := strconv.ParseUint(from, 10, 64)
		if err != nil {
			return 0, nil, errs.E(errs.Invalid, "since %q: want a decimal revision", from)
		}
		since = n
	}
	st := &decisionStream{s: s, since: since, caller: req.caller.String()}
	if req.tok != nil {
		st.accessor = req.tok.Accessor
	}
	if req.TLS != nil && len(req.TLS.VerifiedChains) > 0 && req.caller != nil && req.caller.method == "mtls" {
		st.serial = hex.EncodeToString(req.TLS.VerifiedChains[0][0].SerialNumber.Bytes())
	}
	return http.StatusOK, st, nil
}

type decisionStream struct {
	s        *Server
	since    uint64
	caller   string // the principal, for the per-caller bound
	serial   string // the caller's certificate, "" for a token
	accessor string // the caller's token, "" for a certificate
}

// MaxDecisionStreamsPerCaller bounds the decision streams one principal
// holds open on one server: an agent or a service needs one, and no caller
// may take the server's slots from the rest of the fleet.
const MaxDecisionStreamsPerCaller = 16

// callerSlot takes one of caller's stream slots, or answers 429.
func (s *Server) callerSlot(w http.ResponseWriter, caller string) (release func(), ok bool) {
	v, _ := s.streamsByCaller.LoadOrStore(caller, new(atomic.Int64))
	n := v.(*atomic.Int64)
	if n.Add(1) > MaxDecisionStreamsPerCaller {
		n.Add(-1)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("%s holds %d decision streams on this server already", caller, MaxDecisionStreamsPerCaller))
		return nil, false
	}
	// The counter stays in the map when it falls to 0: one small entry
	// per principal that ever streamed, bounded by the identities issued.
	return func() { n.Add(-1) }, true
}

// callerGone reports whether a stream's caller lost its credentials:
// a revoked certificate, or a token revoked or expired.
func (st *decisionStream) callerGone() bool {
	s := st.s
	if st.serial != "" && s.cfg.DecisionFeed.RevokedSerial(st.serial) {
		return true
	}
	if st.accessor != "" && s.cfg.Tokens != nil {
		t, err := s.cfg.Tokens.LookupAccessor(st.accessor)
		return err != nil || t.Expired(s.now())
	}
	return false
}

func (st *decisionStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s, f := st.s, st.s.cfg.DecisionFeed
	release, ok := streamSlot(w, &s.decisionStreams, int64(s.cfg.MaxDecisionStreams), "decision streams")
	if !ok {
		return
	}
	defer release()
	mine, ok := s.callerSlot(w, st.caller)
	if !ok {
		return
	}
	defer mine()
	ctx, cancel := s.streamContext(r.Context())
	defer cancel()
	if f.WaitApplied(ctx, f.AppliedIndex()) != nil {
		return
	}
	sub, err := f.Subscribe(st.since)
	if err != nil {
		s.fail(&request{Request: r, w: w, s: s}, err)
		return
	}
	defer sub.Close()
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream lasts as long as the client stays
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if writeBatch(w, &sub.First) != nil || rc.Flush() != nil {
		return
	}
	check := time.NewTicker(decisionCheck)
	defer check.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case b, ok := <-sub.C:
			if !ok {
				return // cut off (too far behind) or the feed stopped: the client resumes
			}
			if writeBatch(w, b) != nil || rc.Flush() != nil {
				return
			}
			last = time.Now()
		case <-check.C:
			if (s.cfg.Core != nil && s.cfg.Core.Sealed()) || st.callerGone() {
				return
			}
			if time.Since(last) >= decisionHeartbeat {
				if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
					return
				}
				last = time.Now()
			}
		}
	}
}

// writeBatch writes a batch: reset (if it is one), its items, then sync.
func writeBatch(w http.ResponseWriter, b *wresp.Batch) error {
	if b.Reset {
		if _, err := fmt.Fprintf(w, "event: reset\ndata: {\"revision\": %d}\n\n", b.Revision); err != nil {
			return err
		}
	}
	for _, it := range b.Items {
		if _, err := fmt.Fprintf(w, "event: %s\nid: %d\ndata: %s\n\n", it.Kind, it.Revision, it.JSON); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "event: sync\nid: %d\ndata: {\"revision\": %d}\n\n", b.Revision, b.Revision)
	return err
}
