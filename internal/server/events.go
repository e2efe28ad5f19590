package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/events"
)

// eventPlane runs this server's event plane: started once the server can
// secure it (at Start alone; in cluster mode once this node has its
// cluster certificate), retried until it runs, closed at Close.
type eventPlane struct {
	s     *Server
	once  sync.Once
	ready chan struct{} // closed when p is set
	p     *events.Plane
	ctx   context.Context
	stop  context.CancelFunc
	done  chan struct{}
}

func newEventPlane(s *Server) *eventPlane {
	ctx, cancel := context.WithCancel(context.Background())
	return &eventPlane{s: s, ready: make(chan struct{}), ctx: ctx, stop: cancel, done: make(chan struct{})}
}

// kick starts the plane (once).
// started reports whether the event plane is serving.
func (e *eventPlane) started() bool {
	select {
	case <-e.ready:
		return e.p != nil
	default:
		return false
	}
}

func (e *eventPlane) kick() {
	e.once.Do(func() { go e.run() })
}

func (e *eventPlane) run() {
	defer close(e.done)
	for attempt := 0; ; attempt++ {
		p, err := e.open()
		if err == nil {
			e.p = p
			e.s.api.SetEventPlane(p)
			close(e.ready)
			e.s.log.Info("event plane running", "replicas", p.Replicas(), "nats_cluster", p.ClusterAddr(),
				"nats_client", p.ClientAddr(), "external", e.s.cfg.EventsNATSURL != "")
			if f := e.s.cfg.OnEventPlane; f != nil {
				f(p)
			}
			return
		}
		if e.ctx.Err() != nil {
			return
		}
		e.s.log.Error("event plane: could not start; retrying", "err", err, "attempt", attempt+1)
		select {
		case <-e.ctx.Done():
			return
		case <-time.After(min(time.Duration(attempt+1)*time.Second, 30*time.Second)):
		}
	}
}

func (e *eventPlane) open() (*events.Plane, error) {
	s := e.s
	cfg := events.PlaneConfig{
		Dir:        filepath.Join(s.cfg.DataDir, "events"),
		ServerName: s.eventsNode(),
		MaxAge:     s.cfg.EventsMaxAge, MaxBytes: s.cfg.EventsMaxBytes,
		Compression: s.cfg.EventsCompression,
		URL:         s.cfg.EventsNATSURL, CredsFile: s.cfg.EventsNATSCreds,
		Logger: s.log,
	}
	if s.cn != nil && cfg.URL == "" {
		tc := s.natsTLS()
		cfg.ClusterListen, cfg.ClusterTLS = s.cfg.EventsNATSClusterListen, tc
		cfg.Routes = s.cfg.EventsNATSRoutes
		if len(cfg.Routes) == 0 && cfg.ClusterListen != "" {
			// Alone, a JetStream server needs a route to form a cluster:
			// its own (NATS ignores it) until others route to it.
			cfg.Routes = []string{cfg.ClusterListen}
		}
		cfg.ClientListen, cfg.ClientTLS = s.cfg.EventsNATSListen, tc
	} else if s.cfg.EventsNATSListen != "" || s.cfg.EventsNATSClusterListen != "" {
		if cfg.URL != "" {
			return nil, errors.New("events: --events-nats-url runs no embedded NATS server: drop --events-nats-listen and --events-nats-cluster-listen")
		}
		return nil, errors.New("events: --events-nats-listen and --events-nats-cluster-listen need cluster mode (--node-id, --cluster-listen): their mutual TLS uses the servers' cluster certificates")
	}
	ctx, cancel := context.WithTimeout(e.ctx, 60*time.Second)
	defer cancel()
	return events.OpenPlane(ctx, cfg)
}

// natsTLS secures the embedded NATS server's ports in cluster mode: this
// node's cluster certificate both ways, and only the servers of this
// cluster as peers (a chain to its trust bundle, a server identity of its
// trust domain, not expired nor revoked). Node and service certificates
// of the same CA are refused.
func (s *Server) natsTLS() *tls.Config {
	cn := s.cn
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAnyClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := cn.cert(); c != nil {
				return c, nil
			}
			return nil, errNoClusterCert
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := cn.cert(); c != nil {
				return c, nil
			}
			return nil, errNoClusterCert
		},
		// The chain is verified in VerifyConnection against the current
		// trust bundle, on both sides of a route.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err := cn.verifyPeer(cs, x509.ExtKeyUsageClientAuth); err != nil {
				return err
			}
			if err := cn.verifyPeer(cs, x509.ExtKeyUsageServerAuth); err != nil {
				return err
			}
			_, err := s.gate.Identify(&cs)
			return err
		},
	}
}

// eventsNode is the name this server's own events carry (host.name), and
// its embedded NATS server's name.
func (s *Server) eventsNode() string {
	if s.cfg.NodeID != "" {
		return s.cfg.NodeID
	}
	if id := s.st.NodeID(); id != "" {
		return id
	}
	return "warden"
}

// eventsAgentID is the identity this server's own events carry (agent.id).
func (s *Server) eventsAgentID() string {
	td := s.cfg.TrustDomain
	if td == "" {
		td = "warden.local"
	}
	return "spiffe://" + td + "/server/" + s.eventsNode()
}

func (e *eventPlane) close() {
	e.stop()
	e.once.Do(func() { close(e.done) }) // never started
	<-e.done
	if e.p != nil {
		e.s.api.SetEventPlane(nil)
		_ = e.p.Close()
	}
}

// EventPlane returns the event plane, or nil while it is not running.
// The detection runtime takes it from here (or from Config.OnEventPlane).
func (s *Server) EventPlane() *events.Plane {
	select {
	case <-s.events.ready:
		return s.events.p
	default:
		return nil
	}
}

// EventPlaneReady is closed once EventPlane returns the plane.
func (s *Server) EventPlaneReady() <-chan struct{} { return s.events.ready }

// appender is the emitter's view of the plane (nil while none).
func (s *Server) appender() events.Appender {
	if p := s.EventPlane(); p != nil {
		return p
	}
	return nil
}

// hostPortOK checks a listen address flag.
func hostPortOK(flag, addr string) error {
	if addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return errors.New("server: " + flag + " " + addr + ": want host:port")
	}
	return nil
}
