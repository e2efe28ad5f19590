package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-sec/warden/internal/agent/fim"
	"github.com/warden-sec/warden/internal/agent/tail"
)

// collector exposes the agent's counters to Prometheus, read at scrape
// time (no package-level metrics).
type collector struct{ d *daemon }

var _ prometheus.Collector = (*collector)(nil)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("warden_agent_"+name, help, labels, nil)
}

var (
	descEventsSpooled  = desc("events_spooled_total", "Events written to the spool.")
	descEventsSent     = desc("events_sent_total", "Events in batches a server acknowledged.")
	descBatchesAcked   = desc("batches_acked_total", "Batches acknowledged by a server (200), duplicates included.")
	descBatchesDup     = desc("batches_duplicate_total", "Acknowledged batches the server already had.")
	descBatchesRefused = desc("batches_refused_total", "Batches refused for good (400, 413) and dropped.")
	descEventsRefused  = desc("events_refused_total", "Events in refused batches.")
	descSendErrors     = desc("send_errors_total", "Failed attempts to send a batch (network, 5xx).")
	descRateLimited    = desc("rate_limited_total", "429 answers.")
	descSpoolBytes     = desc("spool_bytes", "Size of the spool's files.")
	descSpoolBatches   = desc("spool_batches", "Batches in the spool, not yet acknowledged.")
	descDropped        = desc("spool_dropped_events_total", "Events dropped from a full spool.")
	descRenewFailures  = desc("renewal_failures_total", "Failed certificate renewal attempts.")
	descSrcEvents      = desc("source_events_total", "Events handed over by a source.", "source")
	descSrcLines       = desc("source_lines_total", "Lines read by a file source.", "source")
	descSrcParseErrors = desc("source_parse_errors_total", "Lines that did not parse (shipped raw with error.message).", "source")
	descSrcExcluded    = desc("source_excluded_lines_total", "Lines skipped by exclude patterns.", "source")
	descSrcTruncated   = desc("source_truncated_lines_total", "Lines cut at 64 KiB.", "source")
	descSrcRotations   = desc("source_rotations_total", "Rotations and truncations followed.", "source")
	descSrcBlank       = desc("source_blank_lines_total", "Empty or all-blank lines skipped.", "source")
	descFIMFiles       = desc("fim_files", "Files in a FIM source's baseline.", "source")
	descFIMSkipped     = desc("fim_skipped_files", "Files not tracked because of the baseline's bound (last scan).", "source")
	descFIMUnhashed    = desc("fim_unhashed_files", "Files too large to hash, tracked by size and mtime.", "source")
	descFIMScans       = desc("fim_scans_total", "Full scans done by a FIM source.", "source")
	descEnfApplied     = desc("decisions_enforced", "Decisions applied to the firewall at the last reconciliation.")
	descEnfElements    = desc("firewall_elements", "Elements (addresses and ranges) wanted in the ban sets at the last reconciliation.")
	descEnfRefused     = desc("decisions_refused_total", "Decisions not applied because they hit the never-block list or a server's address, or do not parse.")
	descEnfFailures    = desc("firewall_errors_total", "Reconciliations of the ban sets that failed (retried).")
	descEnfReconciles  = desc("firewall_reconciliations_total", "Reconciliations of the ban sets with the decisions.")
)

// Describe sends the descriptions of every metric.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEventsSpooled, descEventsSent, descBatchesAcked, descBatchesDup,
		descBatchesRefused, descEventsRefused, descSendErrors, descRateLimited, descSpoolBytes, descSpoolBatches,
		descDropped, descRenewFailures, descSrcEvents, descSrcLines, descSrcParseErrors, descSrcExcluded,
		descSrcTruncated, descSrcRotations, descSrcBlank, descFIMFiles, descFIMSkipped, descFIMUnhashed, descFIMScans,
		descEnfApplied, descEnfElements, descEnfRefused, descEnfFailures, descEnfReconciles} {
		ch <- d
	}
}

// Collect reads the counters.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(descRenewFailures, c.d.renewFailures.Load())
	c.d.mu.Lock()
	s, enf := c.d.shipper, c.d.enf
	stats := map[string]tail.Stats{}
	fims := map[string]fim.Stats{}
	for name, b := range c.d.built {
		switch src := b.src.(type) {
		case *tail.Tail:
			stats[name] = src.Stats()
		case *fim.FIM:
			fims[name] = src.Stats()
		}
	}
	c.d.mu.Unlock()
	if enf != nil {
		gauge(descEnfApplied, float64(enf.applied.Load()))
		gauge(descEnfElements, float64(enf.elements.Load()))
		counter(descEnfRefused, enf.refusals.Load())
		counter(descEnfFailures, enf.failures.Load())
		counter(descEnfReconciles, enf.reconcile.Load())
	}
	if s == nil {
		return
	}
	st := s.Stats()
	counter(descEventsSpooled, st.EventsSpooled)
	counter(descEventsSent, st.EventsSent)
	counter(descBatchesAcked, st.BatchesAcked)
	counter(descBatchesDup, st.BatchesDuplicate)
	counter(descBatchesRefused, st.BatchesRefused)
	counter(descEventsRefused, st.EventsRefused)
	counter(descSendErrors, st.SendErrors)
	counter(descRateLimited, st.RateLimited)
	counter(descDropped, st.Dropped)
	gauge(descSpoolBytes, float64(st.SpoolBytes))
	gauge(descSpoolBatches, float64(st.SpoolBatches))
	for name, n := range st.PerSource {
		counter(descSrcEvents, n, name)
	}
	for name, t := range stats {
		counter(descSrcLines, t.Lines, name)
		counter(descSrcParseErrors, t.ParseErrors, name)
		counter(descSrcExcluded, t.Excluded, name)
		counter(descSrcTruncated, t.Truncated, name)
		counter(descSrcRotations, t.Rotations, name)
		counter(descSrcBlank, t.Blank, name)
	}
	for name, f := range fims {
		ch <- prometheus.MustNewConstMetric(descFIMFiles, prometheus.GaugeValue, float64(f.Files), name)
		ch <- prometheus.MustNewConstMetric(descFIMSkipped, prometheus.GaugeValue, float64(f.Skipped), name)
		ch <- prometheus.MustNewConstMetric(descFIMUnhashed, prometheus.GaugeValue, float64(f.Unhashed), name)
		counter(descFIMScans, uint64(f.Scans), name)
	}
}
