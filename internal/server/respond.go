package server

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-sec/warden/internal/authority"
	"github.com/warden-sec/warden/internal/respond"
)

// collectEvery is how often the leader removes old tombstones and expired
// decisions (respond.Decisions.Collect).
const collectEvery = 10 * time.Minute

// response is this server's part of the response: the decision feed that
// serves the decision streams and the API's quarantine checks, and, on
// the leader, the collector of old tombstones.
type response struct {
	decisions *respond.Decisions
	feed      *respond.Feed
	stop      context.CancelFunc
	done      chan struct{}
}

// newResponse builds the decisions service and the feed (started by
// start).
func (s *Server) newResponse(nodes *authority.Nodes, audit respond.Auditor) *response {
	cfg := s.cfg
	d := respond.NewDecisions(respond.Config{
		Storage: s.core, Audit: audit, Node: s.st.NodeID(), Now: cfg.Now,
		NodeAddresses: func(ctx context.Context, name string) ([]string, error) {
			n, err := nodes.Node(ctx, name)
			return n.Addresses, err
		},
		ServerAddrs:      s.serverAddrs,
		EscalationWindow: cfg.EscalationWindow, EscalationFactor: cfg.EscalationFactor, EscalationMax: cfg.EscalationMax,
		MaxPrefix4: cfg.MaxBanPrefix4, MaxPrefix6: cfg.MaxBanPrefix6,
	})
	feed := respond.NewFeed(s.core, cfg.Now, s.log.With("component", "decisions"))
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "warden_decision_streams", Help: "Decision streams (agents and services following decisions) this server serves.",
	}, func() float64 { return float64(feed.Subscribers()) }))
	return &response{decisions: d, feed: feed}
}

// start runs the feed, and the collector while this server leads.
func (r *response) start(s *Server) {
	ctx, cancel := context.WithCancel(context.Background())
	r.stop, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		go r.decisions.RunCollector(ctx, collectEvery, func() bool { return s.st.IsLeader() && !s.core.Sealed() },
			s.log.With("component", "decisions").Warn)
		r.feed.Run(ctx)
	}()
}

func (r *response) close() {
	if r != nil && r.stop != nil {
		r.stop()
		<-r.done
	}
}

// serverAddrs are the addresses no decision may block: this server's API
// and cluster listeners, the Raft configuration's members and the
// cluster's member records (an unspecified listener stands for every
// address of the host's interfaces). Other servers' API listeners are
// known by their cluster address only (member records hold no API
// address): on the same host, the same IP.
func (s *Server) serverAddrs(ctx context.Context) []respond.ServerAddr {
	self := s.st.NodeID()
	var out []respond.ServerAddr
	add := func(name, hostport string) {
		host, _, err := net.SplitHostPort(hostport)
		if err != nil {
			host = hostport
		}
		if host == "localhost" {
			out = append(out, respond.ServerAddr{Name: name, Addr: netip.MustParseAddr("127.0.0.1")},
				respond.ServerAddr{Name: name, Addr: netip.IPv6Loopback()})
			return
		}
		a, err := netip.ParseAddr(host)
		if err != nil {
			return // a host name: not resolved here
		}
		if !a.IsUnspecified() {
			out = append(out, respond.ServerAddr{Name: name, Addr: a.Unmap()})
			return
		}
		ifas, err := net.InterfaceAddrs()
		if err != nil {
			return
		}
		for _, ia := range ifas {
			if pn, ok := ia.(*net.IPNet); ok {
				if a, ok := netip.AddrFromSlice(pn.IP); ok {
					out = append(out, respond.ServerAddr{Name: name, Addr: a.Unmap()})
				}
			}
		}
	}
	add(self, s.cfg.Listen)
	if s.ln != nil {
		add(self, s.ln.Addr().String())
	}
	if s.cfg.ClusterListen != "" {
		add(self, s.cfg.ClusterListen)
		if peers, err := s.st.Peers(); err == nil {
			for _, p := range peers {
				add(p.ID, p.Address)
			}
		}
		if ms, err := s.nodes.Members(ctx); err == nil {
			for _, m := range ms {
				if m.State == authority.MemberActive {
					add(m.ID, m.Address)
				}
			}
		}
	}
	return out
}

// Decisions returns the decisions service (for the playbook responder and
// tests).
func (s *Server) Decisions() *respond.Decisions { return s.response.decisions }

// DecisionFeed returns this server's decision feed.
func (s *Server) DecisionFeed() *respond.Feed { return s.response.feed }
