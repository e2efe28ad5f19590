package api

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-sec/warden/internal/core"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	allows   prometheus.Counter
	denies   prometheus.Counter
	checks   *prometheus.CounterVec

	authFailures          *prometheus.CounterVec
	authThrottled         prometheus.Counter
	failureRecordsDropped prometheus.Counter
	panics                prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, c *core.Core) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "warden_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
	}
	m.allows = prometheus.NewCounter(prometheus.CounterOpts{Name: "warden_authz_api_allows_total", Help: "Warden API requests allowed by policy (root excluded)."})
	m.denies = prometheus.NewCounter(prometheus.CounterOpts{Name: "warden_authz_api_denies_total", Help: "Warden API requests denied by policy."})
	m.checks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_authz_decisions_total", Help: "Decisions of the decision API by store and outcome."}, []string{"store", "decision"})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_http_auth_failures_total",
		Help: "Requests that failed before their caller was authenticated, by reason (authenticate, or the credential route)."}, []string{"reason"})
	m.authThrottled = prometheus.NewCounter(prometheus.CounterOpts{Name: "warden_http_auth_throttled_total",
		Help: "Requests answered 429 because their address had used its budget of failed authentications."})
	m.failureRecordsDropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "warden_audit_failure_records_dropped_total",
		Help: "Aggregated records of failed unauthenticated requests that could not be committed."})
	m.panics = prometheus.NewCounter(prometheus.CounterOpts{Name: "warden_http_panics_total",
		Help: "Requests whose handler panicked (answered 500, logged at ERROR)."})
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.allows, m.denies, m.checks,
			m.authFailures, m.authThrottled, m.failureRecordsDropped, m.panics,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "warden_sealed", Help: "1 if this server is sealed, 0 if unsealed.",
			}, func() float64 {
				if c.Sealed() {
					return 1
				}
				return 0
			}))
	}
	return m
}

// route returns an observer for one route. The histogram's labels are
// resolved once here; counters per status code are made on first use, so
// /metrics lists only the codes a route has actually answered.
func (m *metrics) route(name string) func(status int, d time.Duration) {
	hist := m.latency.WithLabelValues(name)
	var byCode [600]atomic.Pointer[prometheus.Counter]
	return func(status int, d time.Duration) {
		hist.Observe(d.Seconds())
		if status <= 0 || status >= len(byCode) {
			m.requests.WithLabelValues(name, strconv.Itoa(status)).Inc()
			return
		}
		c := byCode[status].Load()
		if c == nil {
			cc := m.requests.WithLabelValues(name, strconv.Itoa(status))
			c = &cc
			byCode[status].Store(c)
		}
		(*c).Inc()
	}
}

// metricsRead serves the Prometheus exposition of the server's registry
// (the route exists only when Config.Gather is set).
func (s *Server) metricsRead(req *request) (int, any, error) {
	return http.StatusOK, s.exposition, nil
}
