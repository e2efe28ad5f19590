package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-sec/warden/internal/detect"
	"github.com/warden-sec/warden/internal/detect/runtime"
	"github.com/warden-sec/warden/internal/sigma"
)

// DetectBucket is the replicated key-value bucket of the detection
// runtime: partition leases and checkpoints (docs/detection-partitions.md).
const DetectBucket = "warden-detect"

// detection runs the detection runtime of this server: once the event
// plane runs, it consumes the stream, owns its share of the partitions
// and records alerts through the store (a follower's are forwarded).
type detection struct {
	stop context.CancelFunc
	done chan struct{}
}

// startDetection starts the runtime in the background; it waits for the
// event plane, and keeps trying while the cluster is sealed or the
// plane's bucket is not ready. Config.DetectPartitions = -1 turns it off.
func (s *Server) startDetection(reg prometheus.Registerer) {
	ctx, cancel := context.WithCancel(context.Background())
	s.detection = &detection{stop: cancel, done: make(chan struct{})}
	if s.cfg.DetectPartitions < 0 {
		close(s.detection.done)
		return
	}
	go func() {
		defer close(s.detection.done)
		select {
		case <-s.EventPlaneReady():
		case <-ctx.Done():
			return
		}
		plane := s.EventPlane()
		log := s.log.With("component", "detect")
		for attempt := 0; ; attempt++ {
			kv, err := plane.KV(ctx, DetectBucket)
			if err == nil {
				rt, err := runtime.New(runtime.Config{
					Node: s.st.NodeID(), Stream: plane, KV: kv,
					Rules:        s.rules,
					RulesChanged: s.rules.Changes(ctx, time.Second),
					Alerts:       alertSink{s.alerts},
					Partitions:   s.cfg.DetectPartitions,
					Logger:       log, Metrics: reg,
				})
				if err != nil {
					log.Error("detection does not run", "err", err)
					return
				}
				_ = rt.Run(ctx)
				return
			}
			wait := min(time.Second<<min(attempt, 4), 15*time.Second)
			log.Warn("detection: the runtime's bucket is not ready; retrying", "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
}

func (d *detection) close() {
	if d != nil {
		d.stop()
		<-d.done
	}
}

// alertSink records the runtime's hits as alerts, many in one commit.
type alertSink struct{ a *detect.Alerts }

func (k alertSink) Record(ctx context.Context, h sigma.Hit) error {
	_, err := k.a.Record(ctx, h)
	return err
}

func (k alertSink) RecordBatch(ctx context.Context, hits []sigma.Hit) error {
	return k.a.RecordBatch(ctx, hits)
}

var _ runtime.BatchSink = alertSink{}
