package runtime

import "github.com/prometheus/client_golang/prometheus"

// metrics are the runtime's Prometheus series. They are always updated;
// they are registered only when Config.Metrics is set.
type metrics struct {
	events       prometheus.Counter
	matches      prometheus.Counter
	hits         prometheus.Counter
	recorded     prometheus.Counter
	retried      prometheus.Counter
	owned        prometheus.Gauge
	ckptAge      prometheus.Gauge
	lag          prometheus.Gauge
	checkpoints  prometheus.Counter
	ckptErrors   prometheus.Counter
	takeovers    prometheus.Counter
	lost         prometheus.Counter
	stateErrors  prometheus.Counter
	rulesLoaded  prometheus.Gauge
	compileFails prometheus.Counter
	cut          *prometheus.GaugeVec
	groups       prometheus.Gauge
	skipped      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "warden", Subsystem: "detect", Name: name, Help: help})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "warden", Subsystem: "detect", Name: name, Help: help})
	}
	m := &metrics{
		events:       c("events_total", "Events read from the stream and matched against the rules (replays included)."),
		matches:      c("matches_total", "Detection rule matches."),
		hits:         c("hits_total", "Hits (alerts to create or update) produced by the correlators, before coalescing."),
		recorded:     c("hits_recorded_total", "Hits recorded in the alert store after coalescing."),
		retried:      c("hits_record_retries_total", "Failed attempts to record a hit; each is retried, never dropped."),
		owned:        g("partitions_owned", "Partitions this server owns."),
		ckptAge:      g("checkpoint_age_seconds", "Age of the oldest checkpoint among the partitions this server owns."),
		lag:          g("consumer_lag", "Stream batches not yet applied: the stream's last sequence minus the consumer's position."),
		checkpoints:  c("checkpoints_total", "Partition checkpoints written."),
		ckptErrors:   c("checkpoint_errors_total", "Partition checkpoints that failed for another reason than a lost partition (retried)."),
		takeovers:    c("partition_acquired_total", "Partitions this server took ownership of."),
		lost:         c("partition_lost_total", "Partitions this server lost to another (fenced off: state dropped)."),
		stateErrors:  c("state_restore_errors_total", "Checkpointed correlator state that could not be restored (the partition restarts empty)."),
		rulesLoaded:  g("rules_version", "Version of the rule set in use."),
		compileFails: c("rules_compile_errors_total", "Rule sets that failed to load or compile (the previous set stays in use)."),
		cut: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "warden", Subsystem: "detect", Name: "correlator_cut",
			Help: "What the correlators of the partitions owned here cut or ignored since each partition began (sigma.Stats; it moves with the partitions): late, groups_evicted, values_cut, events_cut, no_time."},
			[]string{"kind"}),
		groups:  g("correlator_groups", "Correlation and dedup groups held by the partitions owned here."),
		skipped: c("batches_expired_total", "Batches removed from the stream (retention) before a partition applied them: detection never saw them."),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{m.events, m.matches, m.hits, m.recorded, m.retried, m.owned,
			m.ckptAge, m.lag, m.checkpoints, m.ckptErrors, m.takeovers, m.lost, m.stateErrors, m.rulesLoaded, m.compileFails, m.cut, m.groups, m.skipped} {
			if err := reg.Register(col); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
