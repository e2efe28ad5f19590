package server_test

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/server"
)

// BenchmarkEventsIngest: simulated agents (8 nodes, each posting its
// batches in order over its own mutual-TLS connection) send gzipped
// batches of 500 sshd events to one real server, which stores each in the
// embedded JetStream stream. Reported: events/s stored.
//
//	go test ./internal/server -run XXX -bench EventsIngest -benchtime 400x
func BenchmarkEventsIngest(b *testing.B) {
	for _, compress := range []bool{false, true} {
		b.Run(fmt.Sprintf("s2=%v", compress), func(b *testing.B) {
			h := start(b, b.TempDir(), func(c *server.Config) { c.EventsCompression = compress })
			_, root := h.initUnseal(1, 1)
			waitPlane(b, h.srv)
			const agents, perBatch = 8, 500
			body := gz(b, sshLines(perBatch, ""))
			type agent struct {
				e   enrolled
				seq uint64
			}
			as := make([]*agent, agents)
			for i := range as {
				as[i] = &agent{e: h.enroll(root, fmt.Sprint("bench-", i), "1h")}
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			t0 := time.Now()
			for _, a := range as {
				wg.Add(1)
				go func(a *agent) {
					defer wg.Done()
					cl := h.nodeClient(a.e)
					defer cl.CloseIdleConnections()
					for next.Add(1) <= int64(b.N) {
						a.seq++
						req := h.postBatchReq(a.seq, body)
						res, err := cl.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						res.Body.Close()
						if res.StatusCode != 200 {
							b.Errorf("status %d", res.StatusCode)
							return
						}
					}
				}(a)
			}
			wg.Wait()
			el := time.Since(t0)
			b.StopTimer()
			b.ReportMetric(float64(b.N*perBatch)/el.Seconds(), "events/s")
			b.ReportMetric(float64(len(body)), "gzip-bytes/batch")
			// What the stream takes on disk per batch (S2 or not).
			var disk int64
			filepath.WalkDir(filepath.Join(h.dir, "events"), func(path string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && strings.Contains(path, "WARDEN_EVENTS") {
					if fi, err := d.Info(); err == nil {
						disk += fi.Size()
					}
				}
				return nil
			})
			b.ReportMetric(float64(disk)/float64(b.N), "disk-bytes/batch")
		})
	}
}
