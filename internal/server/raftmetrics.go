package server

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-sec/warden/internal/store"
)

// registerRaftMetrics exports the cluster's health: elections and leader
// changes seen by this node, its indexes and last contact, and, on the
// leader, each follower's replication lag (asked of the follower at scrape
// time over the cluster port).
func registerRaftMetrics(reg prometheus.Registerer, st *store.Store) {
	elections := prometheus.NewCounter(prometheus.CounterOpts{Name: "warden_raft_elections_total",
		Help: "Elections this node started (it became a candidate)."})
	leaderChanges := prometheus.NewCounter(prometheus.CounterOpts{Name: "warden_raft_leader_changes_total",
		Help: "Changes of leader this node observed."})
	reg.MustRegister(elections, leaderChanges)
	ch := make(chan raft.Observation, 16)
	st.Raft().RegisterObserver(raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch d := o.Data.(type) {
		case raft.LeaderObservation:
			return true
		case raft.RaftState:
			return d == raft.Candidate
		}
		return false
	}))
	go func() {
		for o := range ch {
			if _, ok := o.Data.(raft.LeaderObservation); ok {
				leaderChanges.Inc()
			} else {
				elections.Inc()
			}
		}
	}()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "warden_raft_term",
		Help: "This node's current Raft term (each election, won or not, raises it)."}, func() float64 { return float64(st.Raft().CurrentTerm()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "warden_raft_applied_index",
		Help: "Index of the last log applied to this node's state."}, func() float64 { return float64(st.AppliedIndex()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "warden_raft_commit_index",
		Help: "Commit index known to this node."}, func() float64 { return float64(st.Status().CommitIndex) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "warden_raft_is_leader",
		Help: "1 on the leader, else 0."}, func() float64 {
		if st.IsLeader() {
			return 1
		}
		return 0
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "warden_raft_last_contact_seconds",
		Help: "Time since a follower last heard from the leader (0 on the leader)."}, func() float64 {
		lc := st.Status().LastContact
		if lc.IsZero() {
			return 0
		}
		return time.Since(lc).Seconds()
	}))
	reg.MustRegister(&lagCollector{st: st, desc: prometheus.NewDesc("warden_raft_replication_lag_entries",
		"On the leader: its commit index minus what each follower has applied (-1: unreachable).", []string{"peer"}, nil)})
}

type lagCollector struct {
	st   *store.Store
	desc *prometheus.Desc
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	if !c.st.IsLeader() {
		return
	}
	peers, err := c.st.Peers()
	if err != nil {
		return
	}
	commit := c.st.Status().CommitIndex
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range peers {
		if p.ID == c.st.NodeID() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lag := -1.0
			if applied, _, err := c.st.PeerStatus(ctx, p.Address); err == nil {
				lag = 0
				if commit > applied {
					lag = float64(commit - applied)
				}
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, lag, p.ID)
		}()
	}
	wg.Wait()
}
