package api

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/names"
)

// Defaults of the event routes.
const (
	// DefaultEventsInFlight bounds the batches a server stores at once;
	// one more is answered 429 with Retry-After.
	DefaultEventsInFlight = 64
	// DefaultSearchWindow is a search's window when since is not given.
	DefaultSearchWindow = time.Hour
	// tailHeartbeat is how often a tail with nothing to send writes a
	// comment line, so proxies and the client see the stream alive.
	tailHeartbeat = 15 * time.Second
)

// eventMetrics count what POST /v1/events takes and refuses.
type eventMetrics struct {
	batches     *prometheus.CounterVec // outcome: accepted, duplicate, refused
	events      *prometheus.CounterVec // outcome: accepted, duplicate, refused
	bytes       prometheus.Counter
	dropped     *prometheus.CounterVec // host
	parseErrors *prometheus.CounterVec // host, path
}

func newEventMetrics(reg prometheus.Registerer) *eventMetrics {
	m := &eventMetrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_events_batches_total",
			Help: "Event batches received, by outcome (accepted, duplicate, refused, overloaded)."}, []string{"outcome"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_events_total",
			Help: "Events received, by outcome (accepted, duplicate)."}, []string{"outcome"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "warden_events_bytes_total",
			Help: "Decompressed bytes of the accepted batches."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_events_agent_dropped_total",
			Help: "Events agents report they dropped from a full spool, by host."}, []string{"host"}),
		parseErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_events_parse_errors_total",
			Help: "Raw events with error.message (lines an agent could not parse), by host and log.file.path."}, []string{"host", "path"}),
	}
	if reg != nil {
		reg.MustRegister(m.batches, m.events, m.bytes, m.dropped, m.parseErrors)
	}
	return m
}

// SetEventPlane gives the API the event plane once it runs (nil: the event
// routes answer 503).
func (s *Server) SetEventPlane(p *events.Plane) { s.plane.Store(p) }

func (s *Server) eventPlane() (*events.Plane, error) {
	p := s.plane.Load()
	if p == nil {
		return nil, errs.E(errs.Unavailable, "the event plane is not running on this server yet")
	}
	return p, nil
}

// eventsWriteTarget: a node sends its own events, events.write on itself.
// Other callers cannot: host.name and agent.id come from the certificate.
func eventsWriteTarget(r *request) (target, error) {
	c := r.caller
	if c == nil || c.method != "mtls" {
		return target{}, errs.E(errs.Denied, "permission denied: events are sent with a node's client certificate, not a token")
	}
	return target{action: authz.ActionEventsWrite, resource: entity(authz.TypeNode, c.attrs["name"], nil)}, nil
}

var epochRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// eventsWrite is POST /v1/events: a batch of the caller's events.
func (s *Server) eventsWrite(req *request) (int, any, error) {
	p, err := s.eventPlane()
	if err != nil {
		return 0, nil, err
	}
	h := req.Header
	epoch := h.Get("Warden-Batch-Epoch")
	if !epochRE.MatchString(epoch) {
		return 0, nil, errs.E(errs.Invalid, "Warden-Batch-Epoch: want 16 lowercase hex characters")
	}
	seq, err := strconv.ParseUint(h.Get("Warden-Batch-Seq"), 10, 64)
	if err != nil || seq == 0 {
		return 0, nil, errs.E(errs.Invalid, "Warden-Batch-Seq: want a decimal number from 1")
	}
	var dropped uint64
	if d := h.Get("Warden-Dropped"); d != "" {
		if dropped, err = strconv.ParseUint(d, 10, 64); err != nil {
			return 0, nil, errs.E(errs.Invalid, "Warden-Dropped: want a decimal count")
		}
	}
	var gzipped bool
	switch enc := strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding"))); enc {
	case "gzip":
		gzipped = true
	case "", "identity":
	default:
		return 0, nil, errs.E(errs.Invalid, "Content-Encoding %q: send gzip or identity", enc)
	}
	select {
	case s.eventSlots <- struct{}{}:
		defer func() { <-s.eventSlots }()
	default:
		s.evm.batches.WithLabelValues("overloaded").Inc()
		return 0, nil, errs.E(errs.RateLimited, "the server is storing as many batches as it can; retry later")
	}
	node, agentID := req.caller.attrs["name"], req.caller.attrs["spiffe_id"]
	lines, stats, err := events.ReadBatch(req.Body, gzipped, s.cfg.EventsMaxBatchBytes,
		events.Stamp{Host: node, AgentID: agentID, Ingested: s.now()})
	if err != nil {
		s.evm.batches.WithLabelValues("refused").Inc()
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return 0, nil, errs.E(errs.TooLarge, "batch: the body is larger than %d bytes (compressed); send smaller batches", mbe.Limit)
		case errors.Is(err, events.ErrBatchTooLarge):
			return 0, nil, errs.E(errs.TooLarge, "%s", err.Error())
		}
		return 0, nil, errs.E(errs.Invalid, "%s", err.Error())
	}
	streamSeq, dup, err := p.Append(req.Context(), node, agentID, epoch, seq, lines)
	if err != nil {
		if req.Context().Err() != nil {
			// The client went away (or the request's deadline passed):
			// the batch may or may not be stored; its retry is deduplicated.
			s.log.Info("events: a batch's request ended before it was stored", "node", node, "err", err, "request_id", req.id)
		} else {
			s.log.Error("events: could not store a batch", "node", node, "err", err, "request_id", req.id)
		}
		return 0, nil, errs.E(errs.Unavailable, "the event stream did not take the batch; retry")
	}
	if dup {
		s.evm.batches.WithLabelValues("duplicate").Inc()
		s.evm.events.WithLabelValues("duplicate").Add(float64(stats.Events))
	} else {
		s.evm.batches.WithLabelValues("accepted").Inc()
		s.evm.events.WithLabelValues("accepted").Add(float64(stats.Events))
		s.evm.bytes.Add(float64(stats.Bytes))
		for path, n := range stats.ParseErrors {
			s.evm.parseErrors.WithLabelValues(node, path).Add(float64(n))
		}
		if dropped > 0 {
			s.evm.dropped.WithLabelValues(node).Add(float64(dropped))
			s.log.Warn("agent dropped events from its full spool", "node", node, "dropped", dropped)
		}
	}
	return http.StatusOK, map[string]any{"events": stats.Events, "duplicate": dup, "stream_seq": streamSeq}, nil
}

// searchParams reads since, until and limit.
func searchParams(req *request, now time.Time) (events.SearchOptions, error) {
	q := req.URL.Query()
	var o events.SearchOptions
	var err error
	if o.Query, err = events.ParseQuery(q.Get("query")); err != nil {
		return o, errs.E(errs.Invalid, "%s", err.Error())
	}
	if o.Since, err = parseWhen("since", q.Get("since"), now, now.Add(-DefaultSearchWindow)); err != nil {
		return o, err
	}
	if o.Until, err = parseWhen("until", q.Get("until"), now, time.Time{}); err != nil {
		return o, err
	}
	if !o.Until.IsZero() && o.Until.Before(o.Since) {
		return o, errs.E(errs.Invalid, "until is before since")
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > events.MaxSearchLimit {
			return o, errs.E(errs.Invalid, "limit: want 1 to %d", events.MaxSearchLimit)
		}
		o.Limit = n
	}
	o.Node = q.Get("host")
	return o, nil
}

// parseWhen reads a time: RFC 3339, or a duration back from now ("1h").
func parseWhen(name, v string, now, def time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return time.Time{}, errs.E(errs.Invalid, "%s: want an RFC 3339 time or a duration back from now (1h)", name)
	}
	return now.Add(-d), nil
}

// eventsSearch is GET /v1/events.
func (s *Server) eventsSearch(req *request) (int, any, error) {
	p, err := s.eventPlane()
	if err != nil {
		return 0, nil, err
	}
	o, err := searchParams(req, s.now())
	if err != nil {
		return 0, nil, err
	}
	res, err := p.Search(req.Context(), o)
	if err != nil {
		if req.Context().Err() != nil {
			return 0, nil, errs.E(errs.Unavailable, "search: the window took longer than the request's deadline; narrow it (since, until, host)")
		}
		return 0, nil, errs.Wrap(errs.Internal, err, "search")
	}
	if res.Events == nil {
		res.Events = []events.Event{}
	}
	return http.StatusOK, res, nil
}

// eventsTail is GET /v1/events/tail: server-sent events, one "event" per
// matching event stored from now on, a comment line every 15 s, until the
// client goes.
func (s *Server) eventsTail(req *request) (int, any, error) {
	p, err := s.eventPlane()
	if err != nil {
		return 0, nil, err
	}
	o, err := searchParams(req, s.now())
	if err != nil {
		return 0, nil, err
	}
	last, err := p.LastSeq(req.Context())
	if err != nil {
		return 0, nil, errs.Wrap(errs.Unavailable, err, "the event stream")
	}
	return http.StatusOK, tailStream{s: s, p: p, from: last + 1, o: o}, nil
}

// MaxEventTails bounds the event tails one server serves at once; one more
// is answered 429.
const MaxEventTails = 64

type tailStream struct {
	s    *Server
	p    *events.Plane
	from uint64
	o    events.SearchOptions
}

func (t tailStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	release, ok := streamSlot(w, &t.s.eventTails, MaxEventTails, "event tails")
	if !ok {
		return
	}
	defer release()
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a tail lasts as long as the client stays
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, ": tail\n\n")
	_ = rc.Flush()
	ctx, cancel := t.s.streamContext(r.Context())
	defer cancel()
	out := make(chan []byte, 256)
	go func() {
		defer close(out)
		_ = t.p.ConsumeWith(ctx, t.from, events.ConsumeOptions{Node: t.o.Node}, func(b events.Batch) error {
			for _, ev := range b.Events {
				if !t.o.Query.Match(ev) {
					continue
				}
				ev[events.FieldStreamSeq] = b.StreamSeq
				js, err := json.Marshal(ev)
				if err != nil {
					continue
				}
				select {
				case out <- js:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	}()
	hb := time.NewTicker(tailHeartbeat)
	defer hb.Stop()
	for {
		select {
		case js, ok := <-out:
			if !ok {
				return
			}
			if _, err := fmt.Fprintf(w, "event: event\ndata: %s\n\n", js); err != nil {
				return
			}
			// Flush at once when nothing else waits.
			if len(out) == 0 {
				if rc.Flush() != nil {
					return
				}
			}
		case <-hb.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// serverEvent emits a server event about a client certificate: the
// address, and the node it names (user.name) when it names one.
func (s *Server) serverEvent(r *http.Request, action string, cert *x509.Certificate) {
	ev := events.Event{events.FieldSourceIP: clientKey(r)}
	if len(cert.URIs) == 1 {
		if _, _, name, err := names.ParseSPIFFEID(cert.URIs[0].String()); err == nil {
			ev[events.FieldUserName] = name
		}
		ev["tls.client.x509.subject.uri"] = cert.URIs[0].String()
	}
	ev["tls.client.x509.serial_number"] = hex.EncodeToString(cert.SerialNumber.Bytes())
	s.cfg.ServerEvents.Emit(action, ev)
}
