package api

import (
	"strconv"
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
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.allows, m.denies, m.checks,
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

// route returns an observer for one route; label lookups for the latency
// histogram are done once here, not per request.
func (m *metrics) route(name string) func(status int, d time.Duration) {
	hist := m.latency.WithLabelValues(name)
	var byCode [600]prometheus.Counter
	for _, c := range []int{200, 204, 400, 401, 403, 404, 405, 409, 412, 413, 429, 500, 501, 503} {
		byCode[c] = m.requests.WithLabelValues(name, strconv.Itoa(c))
	}
	return func(status int, d time.Duration) {
		hist.Observe(d.Seconds())
		if status > 0 && status < len(byCode) && byCode[status] != nil {
			byCode[status].Inc()
			return
		}
		m.requests.WithLabelValues(name, strconv.Itoa(status)).Inc()
	}
}
