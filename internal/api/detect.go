package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/warden-sec/warden/internal/detect"
	"github.com/warden-sec/warden/internal/errs"
)

// The detection routes: rules, placeholders, alerts and notifiers (see
// docs/detection.md).

// detectH wraps a detection handler: without the services (a server
// built without them) it answers 503.
func (s *Server) detectH(h handlerFunc) handlerFunc {
	return func(req *request) (int, any, error) {
		if s.cfg.Rules == nil || s.cfg.Alerts == nil || s.cfg.Notifiers == nil {
			return 0, nil, errs.E(errs.Unavailable, "detection is not configured on this server")
		}
		return h(req)
	}
}

// rulesPut takes the rule's YAML as the body (Content-Type
// application/yaml, text/yaml or application/x-yaml; or no type), or
// JSON {"yaml": "..."} (Content-Type application/json).
func (s *Server) rulesPut(req *request) (int, any, error) {
	src, err := req.yamlBody("rule")
	if err != nil {
		return 0, nil, err
	}
	rec, err := s.cfg.Rules.Put(req.Context(), req.PathValue("id"), src)
	if err != nil {
		return 0, nil, err
	}
	rec.YAML = ""
	return http.StatusOK, rec, nil
}

type rulesListResponse struct {
	Rules   []detect.RuleRecord `json:"rules"`
	Version uint64              `json:"version"`
}

func (s *Server) rulesList(req *request) (int, any, error) {
	rs, v, err := s.cfg.Rules.List(req.Context())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rulesListResponse{Rules: rs, Version: v}, nil
}

func (s *Server) rulesGet(req *request) (int, any, error) {
	rec, err := s.cfg.Rules.Get(req.Context(), req.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rec, nil
}

func (s *Server) rulesDelete(req *request) (int, any, error) {
	if err := s.cfg.Rules.Delete(req.Context(), req.PathValue("id")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

type placeholdersBody struct {
	Placeholders map[string][]string `json:"placeholders"`
	Version      uint64              `json:"version,omitempty"`
}

func (s *Server) placeholdersGet(req *request) (int, any, error) {
	p, v, err := s.cfg.Rules.Placeholders(req.Context())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, placeholdersBody{Placeholders: p, Version: v}, nil
}

func (s *Server) placeholdersPut(req *request) (int, any, error) {
	var in struct {
		Placeholders map[string][]string `json:"placeholders"`
	}
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if in.Placeholders == nil {
		in.Placeholders = map[string][]string{}
	}
	v, err := s.cfg.Rules.SetPlaceholders(req.Context(), in.Placeholders)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, placeholdersBody{Placeholders: in.Placeholders, Version: v}, nil
}

type mappingBody struct {
	YAML    string `json:"yaml"`
	Version uint64 `json:"version,omitempty"`
}

func (s *Server) mappingGet(req *request) (int, any, error) {
	m, v, err := s.cfg.Rules.Mapping(req.Context())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, mappingBody{YAML: m, Version: v}, nil
}

func (s *Server) mappingPut(req *request) (int, any, error) {
	var in struct {
		YAML string `json:"yaml"`
	}
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	v, err := s.cfg.Rules.SetMapping(req.Context(), []byte(in.YAML))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, mappingBody{YAML: in.YAML, Version: v}, nil
}

type alertsListResponse struct {
	Alerts []detect.Alert `json:"alerts"`
	Next   string         `json:"next"`
}

// parseSince reads since: an RFC 3339 time, or a Go duration back from now
// ("1h").
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, errs.E(errs.Invalid, "since %q: want an RFC 3339 time or a duration such as 1h", v)
}

func (s *Server) alertsList(req *request) (int, any, error) {
	q := req.URL.Query()
	for k := range q {
		switch k {
		case "status", "level", "rule", "host", "since", "limit", "cursor", "stale":
		default:
			return 0, nil, errs.E(errs.Invalid, "query parameter %q: unknown (status, level, rule, host, since, limit, cursor)", k)
		}
	}
	since, err := parseSince(q.Get("since"), s.now())
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryUint(req.Request, "limit")
	if err != nil {
		return 0, nil, err
	}
	if limit > detect.MaxListLimit {
		return 0, nil, errs.E(errs.Invalid, "limit: at most %d", detect.MaxListLimit)
	}
	as, next, err := s.cfg.Alerts.List(req.Context(), detect.Filter{Status: q.Get("status"), Level: q.Get("level"),
		Rule: q.Get("rule"), Host: q.Get("host"), Since: since, Limit: int(limit), Cursor: q.Get("cursor")})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, alertsListResponse{Alerts: as, Next: next}, nil
}

// alertsCount is GET /v1/alerts/counts: how many alerts there are by
// status and level, without listing them.
func (s *Server) alertsCount(req *request) (int, any, error) {
	if err := noQuery(req); err != nil {
		return 0, nil, err
	}
	c, err := s.cfg.Alerts.Count(req.Context())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, c, nil
}

func (s *Server) alertsGet(req *request) (int, any, error) {
	al, err := s.cfg.Alerts.Get(req.Context(), req.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, al, nil
}

type alertStatusRequest struct {
	Comment string `json:"comment"`
}

func (s *Server) alertsSetStatus(status string) handlerFunc {
	return func(req *request) (int, any, error) {
		var in alertStatusRequest
		if err := req.decode(&in, true); err != nil {
			return 0, nil, err
		}
		set := s.cfg.Alerts.Ack
		if status == detect.StatusClosed {
			set = s.cfg.Alerts.Close
		}
		al, err := set(req.Context(), req.PathValue("id"), req.caller.String(), in.Comment)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, al, nil
	}
}

// Alert stream bounds.
const (
	// MaxAlertStreams bounds the alert streams one server serves at once;
	// one more is answered 429.
	MaxAlertStreams = 64
	// alertStreamPoll is how often a stream looks for changes;
	// alertStreamHeartbeat how often it writes a comment while idle;
	// alertStreamMax how long one stream lasts (the client reconnects with
	// Last-Event-ID and misses nothing).
	alertStreamPoll      = 100 * time.Millisecond
	alertStreamHeartbeat = 15 * time.Second
	alertStreamMax       = time.Hour
)

// alertsStream serves GET /v1/alerts/stream: server-sent events, one
// "alert" event per creation or update, whose id is the change's Raft
// index; a client that reconnects with Last-Event-ID (or ?after=) gets
// every change after it, from any server. Its audit record is committed
// when it opens.
func (s *Server) alertsStream(req *request) (int, any, error) {
	after := s.cfg.Alerts.AppliedIndex()
	from := req.Header.Get("Last-Event-ID")
	if v := req.URL.Query().Get("after"); v != "" {
		from = v
	}
	if from != "" {
		i, err := detect.ParseIndex(from)
		if err != nil {
			return 0, nil, err
		}
		after = i
	}
	return http.StatusOK, &alertStream{s: s, after: after}, nil
}

type alertStream struct {
	s     *Server
	after uint64
}

func (st *alertStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := st.s
	release, ok := streamSlot(w, &s.alertStreams, MaxAlertStreams, "alert streams")
	if !ok {
		return
	}
	defer release()
	ctx, cancel := context.WithTimeout(r.Context(), alertStreamMax)
	defer cancel()
	ctx, end := s.streamContext(ctx)
	defer end()
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // the server's write timeout would cut the stream
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, ": warden alert stream\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	poll := time.NewTicker(alertStreamPoll)
	defer poll.Stop()
	lastWrite := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
		if s.cfg.Core != nil && s.cfg.Core.Sealed() {
			return // a sealed server serves nothing; the client reconnects elsewhere or later
		}
		changes, next, err := s.cfg.Alerts.Changes(ctx, st.after)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Debug("alert stream: poll failed; retrying", "err", err)
			}
			continue
		}
		st.after = next
		for _, c := range changes {
			b, err := json.Marshal(c.Alert)
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(w, "event: alert\nid: %s\ndata: %s\n\n", detect.FormatIndex(c.Index), b); err != nil {
				return
			}
			lastWrite = time.Now()
		}
		if len(changes) == 0 && time.Since(lastWrite) >= alertStreamHeartbeat {
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
			lastWrite = time.Now()
		}
		if len(changes) > 0 || time.Since(lastWrite) < alertStreamPoll {
			if rc.Flush() != nil {
				return
			}
		}
	}
}

type notifierRequest struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	URL      string `json:"url"`
	MinLevel string `json:"min_level"`
	Secret   string `json:"secret"`
}

func (s *Server) notifyPut(req *request) (int, any, error) {
	var in notifierRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if in.Type == "" {
		in.Type = detect.NotifierWebhook
	}
	nt, err := s.cfg.Notifiers.Put(req.Context(), detect.Notifier{Name: in.Name, Type: in.Type, URL: in.URL,
		MinLevel: in.MinLevel, Secret: []byte(in.Secret)})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, nt, nil
}

type notifiersResponse struct {
	Notifiers []detect.Notifier `json:"notifiers"`
}

func (s *Server) notifyList(req *request) (int, any, error) {
	ns, err := s.cfg.Notifiers.List(req.Context())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, notifiersResponse{Notifiers: ns}, nil
}

func (s *Server) notifyDelete(req *request) (int, any, error) {
	if err := s.cfg.Notifiers.Delete(req.Context(), req.PathValue("name")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// streamSlot takes one of max slots counted by n for a long-lived stream,
// or answers 429 (with Retry-After) when all are taken: what one caller
// holding a read permission can make a server keep open is bounded.
func streamSlot(w http.ResponseWriter, n *atomic.Int64, limit int64, what string) (release func(), ok bool) {
	if n.Add(1) > limit {
		n.Add(-1)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("more than %d %s on this server; retry later", limit, what))
		return nil, false
	}
	return func() { n.Add(-1) }, true
}
