// Package server assembles a Warden server: data directory, TLS, the
// replicated store, the barrier, the services and the HTTP API, and runs it.
// It is the one place that wires packages together; it holds no domain logic.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/warden-sec/warden/internal/api"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/authority"
	"github.com/warden-sec/warden/internal/compliance/records"
	"github.com/warden-sec/warden/internal/core"
	"github.com/warden-sec/warden/internal/decisionlog"
	"github.com/warden-sec/warden/internal/detect"
	"github.com/warden-sec/warden/internal/detect/webhook"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/identity"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/pki"
	"github.com/warden-sec/warden/internal/policy"
	"github.com/warden-sec/warden/internal/raftnet"
	"github.com/warden-sec/warden/internal/secrets"
	"github.com/warden-sec/warden/internal/store"
	"github.com/warden-sec/warden/internal/users"
)

// Config configures a server.
type Config struct {
	DataDir string
	Listen  string // host:port; port 0 picks a free port
	TLSCert string // optional; with TLSKey, replaces the bootstrap certificate
	TLSKey  string
	Logger  *slog.Logger

	RateLimit       float64 // per client requests/s; 0: default; <0: off
	MaxRequestBytes int64
	// RequestTimeout bounds a request, its body included (0: 10s).
	RequestTimeout time.Duration
	// MetricsPublic serves /metrics without credentials.
	MetricsPublic bool
	// DecisionLog, if set, is a file (JSON lines, mode 0600) of the decision
	// API's decisions, of which DecisionLogSample (0 to 1) are logged.
	DecisionLog       string
	DecisionLogSample float64
	Now               func() time.Time // clock for token expiry and timestamps; default time.Now

	// Audit sinks, besides the Merkle log: each is required unless marked
	// best-effort.
	AuditFile             string
	AuditFileBestEffort   bool
	AuditStdout           bool
	AuditStdoutBestEffort bool
	// AuditScrubInterval is how often the stored audit tree is checked
	// again in the background (0: auditlog.DefaultScrubInterval); it is
	// also checked at start and before the first checkpoint.
	AuditScrubInterval time.Duration
	// AuditMaxMergeDelay is the audit log's maximum merge delay: records
	// of reads, denies and failures are acknowledged from a local journal
	// (<data dir>/audit-journal) and merged into the replicated log within
	// it (0: auditlog.DefaultMaxMergeDelay, 1s). See docs/audit.md.
	AuditMaxMergeDelay time.Duration

	// TrustDomain of the identities this cluster issues, fixed at init
	// (default warden.local).
	TrustDomain string
	// CAKeyType of the CAs init creates: "" or "ec-p256" (default), or
	// "ed25519". CAImportCert/Key/Chain (PEM) give an operator's CA instead
	// (see authority.InitOptions). Checked at start, used at init.
	CAKeyType                                string
	CAImportCert, CAImportKey, CAImportChain []byte

	// Cluster mode: NodeID (a canonical name, unique in the cluster) and
	// ClusterListen (host:port for Raft and forwarded requests, mutual TLS
	// with certificates from the cluster's CA). Without them the server is
	// a standalone node that cannot be joined.
	NodeID        string
	ClusterListen string
	// Raft tuning (0: defaults). Snapshots are taken when SnapshotThreshold
	// logs have accumulated, checked every SnapshotInterval; TrailingLogs
	// stay after a snapshot for followers that lag a little.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// RaftLogBytes bounds the Raft log in bytes (store.Config.LogBytes;
	// 0: the state database's size, at least 64 MiB).
	RaftLogBytes uint64
	// RetryJoin lists API addresses of cluster members this node, while it
	// has no cluster state, asks again and again to admit it, with the token
	// in RetryJoinToken (allowed raft.join) and trusting RetryJoinCA (PEM;
	// nil: the system's roots). Unseal it afterwards as usual.
	RetryJoin      []string
	RetryJoinToken string
	RetryJoinCA    []byte
	// Raft's timeouts in cluster mode (see DefaultHeartbeatTimeout). A
	// follower that has not heard from the leader for HeartbeatTimeout
	// starts an election (checked at random intervals between one and two
	// HeartbeatTimeouts); ElectionTimeout bounds a candidate's round before
	// it tries again; a leader that has not heard from a majority for
	// LeaderLeaseTimeout steps down. 0: ElectionTimeout and
	// LeaderLeaseTimeout are HeartbeatTimeout, and HeartbeatTimeout is
	// DefaultHeartbeatTimeout, or ElectionTimeout if only that is set (as
	// before the three were separate). Raft requires LeaderLeaseTimeout <=
	// HeartbeatTimeout <= ElectionTimeout.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	// NotifyMinBackoff is the wait after a failed notification's first
	// attempt, doubled after each (0: 1s; see detect.NotifyConfig).
	NotifyMinBackoff time.Duration
	// ServerCertTTL is the lifetime of the server certificates this node
	// issues (cluster mode; default authority.DefaultServerCertTTL, 24h).
	// Each node renews its own at half its lifetime.
	ServerCertTTL time.Duration

	// The event plane (docs/detection-stream.md). By default an embedded
	// NATS server with JetStream, reached in-process, with no port open.
	// In cluster mode EventsNATSClusterListen is its route port (mutual
	// TLS with the cluster certificates) and EventsNATSRoutes the route
	// ports of the other servers; EventsNATSListen opens a client port
	// (same TLS; cluster mode only). EventsNATSURL (with the credentials
	// file EventsNATSCreds) uses an external NATS cluster instead.
	EventsNATSListen        string
	EventsNATSClusterListen string
	EventsNATSRoutes        []string
	EventsNATSURL           string
	EventsNATSCreds         string
	// Retention of the stream (0: events.DefaultMaxAge, 7 days, and
	// events.DefaultMaxBytes, 10 GiB; the oldest batches go first).
	EventsMaxAge   time.Duration
	EventsMaxBytes int64
	// EventsMaxBatchBytes bounds one batch (0: 4 MiB).
	EventsMaxBatchBytes int64
	// EventsCompression stores the stream with S2 (fixed when the stream
	// is created).
	EventsCompression bool
	// OnEventPlane, if set, is called once (in its own goroutine) with
	// the event plane when it runs: the detection runtime's hook. See
	// also Server.EventPlane and EventPlaneReady.
	OnEventPlane func(*events.Plane)
	// DetectPartitions is how many partitions detection's work is split
	// into (0: runtime.DefaultPartitions, 16; every server of a cluster
	// must agree); -1 runs no detection on this server.
	DetectPartitions int

	// Decisions (docs/response.md): repeat offenders' bans last
	// EscalationFactor times longer for each earlier ban within
	// EscalationWindow, up to EscalationMax; a ban's range is at most
	// MaxBanPrefix4 / MaxBanPrefix6 bits wide; MaxDecisionStreams bounds the
	// decision streams served at once. 0: the defaults of respond and api.
	EscalationWindow             time.Duration
	EscalationFactor             float64
	EscalationMax                time.Duration
	MaxBanPrefix4, MaxBanPrefix6 int
	MaxDecisionStreams           int

	// TransitScheduleInterval is how often the leader rotates and retires
	// the transit keys that are due (0: one minute).
	TransitScheduleInterval time.Duration

	// Dual control (docs/governance.md). DualControl turns it on in the
	// initialization this server does (dev, or an init it serves);
	// RequestTTL is how long a request waits for approvals and its run
	// (0: 24h); members of BreakGlassGroup act without approvals, raising
	// a critical alert.
	DualControl     bool
	RequestTTL      time.Duration
	BreakGlassGroup string
	// People (docs/people.md). Members of RequireMFAGroups must log in
	// with a second factor; SessionTTL and SessionIdle bound login
	// sessions (0: 8h and 1h); WebAuthnRPID and WebAuthnOrigins make the
	// passkeys' relying party ("": no passkeys).
	RequireMFAGroups []string
	SessionTTL       time.Duration
	SessionIdle      time.Duration
	WebAuthnRPID     string
	WebAuthnOrigins  []string
	// OIDCDevicePollWait is how long one poll of a device login waits for
	// the user's approval before answering pending (0: 25s).
	OIDCDevicePollWait time.Duration
	// WitnessInterval is how often the leader has the audit log's latest
	// checkpoint cosigned by every witness, when the log grew (0:
	// DefaultWitnessInterval; < 0: only when a checkpoint is asked for).
	WitnessInterval time.Duration
	// ComplianceInterval is how often the leader evaluates the compliance
	// controls, raises compliance_regression events and stores the risk
	// scores (docs/compliance.md; 0: DefaultComplianceInterval; < 0:
	// never). The first evaluation of a leadership runs within
	// ComplianceStartDelay.
	ComplianceInterval time.Duration
}

// DefaultHeartbeatTimeout is Raft's heartbeat timeout in cluster mode. A
// dead leader is replaced in about two to three times this (both survivors
// of a three-node cluster must notice before one of them can win a vote);
// a follower that hears nothing for this long, because the machine or its
// disk stalls, starts an election that was not needed.
const DefaultHeartbeatTimeout = 200 * time.Millisecond

// raftTimeouts returns the heartbeat, election and leader lease timeouts
// cfg asks for, with the defaults Config documents.
func raftTimeouts(cfg Config) (hb, election, lease time.Duration) {
	hb, election, lease = cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout
	if hb <= 0 {
		hb = DefaultHeartbeatTimeout
		if election > 0 {
			hb = election
		}
	}
	if election <= 0 {
		election = hb
	}
	if lease <= 0 {
		lease = hb
	}
	return hb, election, lease
}

// Server is a running Warden server.
type Server struct {
	cfg    Config
	log    *slog.Logger
	st     *store.Store
	core   *core.Core
	tokens *identity.Service
	audit  *auditlog.Service
	api    *api.Server
	http   *http.Server
	ln     net.Listener
	caFile string
	done   chan error
	nodes  *authority.Nodes
	// docSigner signs compliance documents on a standalone server
	// (DocumentSigner).
	docSigner docSigner
	ca        *authority.Service
	policies  *policy.Service
	users     *users.Service
	records   *records.Service // compliance records (compliance.go)
	lastEvent lastEventCache   // nodes' last event times (compliance.go)
	now       func() time.Time
	cn        *clusterNode          // cluster mode only
	cluster   *cluster              // cluster mode only
	gate      *peerGate             // cluster mode only
	trans     *raftnet.NetTransport // cluster mode only
	wit       *witnessNode          // this node's witness and the cosigning of its checkpoints

	stopJoin  context.CancelFunc // ends --retry-join attempts
	stopScrub context.CancelFunc // ends the audit log's background checks
	scrubDone chan struct{}      // closed when they have ended

	poolMu sync.Mutex
	pool   *x509.CertPool // client CAs, while unsealed

	decisions *decisionlog.Logger // nil without Config.DecisionLog

	rules      *detect.Rules
	alerts     *detect.Alerts
	notifiers  *detect.Notifiers
	stopNotify context.CancelFunc // ends the notification delivery loop
	// stopCompliance ends the compliance evaluation loop.
	stopCompliance context.CancelFunc
	complianceDone chan struct{}
	notifyDone     chan struct{}
	events         *eventPlane     // the event plane, started at Start (or once certified)
	emitter        *events.Emitter // this server's own events
	detection      *detection      // the detection runtime, started at Start
	response       *response       // decisions, their feed and collector
	playbooks      *playbooks      // the playbooks and their responder (playbooks.go)
	transit        *transitKeys    // the transit engine and its schedule (transit.go)
	approvals      *approvals      // dual control's requests (approvals.go)
	reg            *prometheus.Registry
}

func (s *Server) clientCAs(ca *authority.Service) (*x509.CertPool, error) {
	s.poolMu.Lock()
	defer s.poolMu.Unlock()
	if s.pool != nil {
		return s.pool, nil
	}
	if s.core.Sealed() {
		return nil, nil
	}
	p, err := ca.ClientCAs()
	if err != nil {
		return nil, err
	}
	s.pool = p
	return p, nil
}

// New opens the data dir and the store, and prepares the API. It does not
// listen yet; call Start.
func New(cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("server: --data-dir is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8200"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: data dir: %w", err)
	}
	s := &Server{cfg: cfg, log: log, done: make(chan error, 1), now: cfg.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if len(cfg.RetryJoin) > 0 && (cfg.NodeID == "" || cfg.RetryJoinToken == "") {
		return nil, errors.New("server: --retry-join needs cluster mode (--node-id, --cluster-listen) and a join token (--retry-join-token-file)")
	}
	if cfg.RequestTTL < 0 {
		return nil, fmt.Errorf("server: --request-ttl %s: must be positive", cfg.RequestTTL)
	}
	for _, g := range cfg.RequireMFAGroups {
		if c, err := names.Canonical(g); err != nil || c != g {
			if err == nil {
				err = fmt.Errorf("use %q", c)
			}
			return nil, fmt.Errorf("server: --require-mfa-group %q: not a canonical group name: %w", g, err)
		}
	}
	if (cfg.NodeID == "") != (cfg.ClusterListen == "") {
		return nil, errors.New("server: --node-id and --cluster-listen go together")
	}
	if cfg.NodeID != "" {
		if id, err := names.Canonical(cfg.NodeID); err != nil || id != cfg.NodeID {
			if err == nil {
				err = fmt.Errorf("use %q", id)
			}
			return nil, fmt.Errorf("server: --node-id: %w", err)
		}
		host, _, err := net.SplitHostPort(cfg.ClusterListen)
		if err != nil || host == "" || net.ParseIP(host).IsUnspecified() {
			return nil, fmt.Errorf("server: --cluster-listen %q: give the host:port other nodes reach this one on", cfg.ClusterListen)
		}
	}

	for flag, addr := range map[string]string{"--events-nats-listen": cfg.EventsNATSListen,
		"--events-nats-cluster-listen": cfg.EventsNATSClusterListen} {
		if err := hostPortOK(flag, addr); err != nil {
			return nil, err
		}
	}
	if cfg.EventsNATSURL == "" && cfg.EventsNATSCreds != "" {
		return nil, errors.New("server: --events-nats-creds goes with --events-nats-url")
	}
	if cfg.NodeID == "" && (cfg.EventsNATSListen != "" || cfg.EventsNATSClusterListen != "" || len(cfg.EventsNATSRoutes) > 0) {
		return nil, errors.New("server: --events-nats-listen, --events-nats-cluster-listen and --events-nats-routes need cluster mode (--node-id, --cluster-listen)")
	}
	s.events = newEventPlane(s)

	certFile, keyFile := cfg.TLSCert, cfg.TLSKey
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("server: --tls-cert and --tls-key go together")
	}
	if certFile == "" {
		var created bool
		var err error
		certFile, keyFile, s.caFile, created, err = bootstrapTLS(filepath.Join(cfg.DataDir, "tls"), time.Now())
		if err != nil {
			return nil, fmt.Errorf("server: bootstrap TLS: %w", err)
		}
		if created {
			log.Info("created bootstrap TLS certificate", "ca_cert", s.caFile)
		}
	}
	tlsCfg, err := tlsConfig(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	var trans *raftnet.NetTransport
	if cfg.NodeID != "" {
		if s.cn, err = loadClusterNode(filepath.Join(cfg.DataDir, "cluster"), cfg.NodeID, sanHosts(cfg.Listen, cfg.ClusterListen)); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		if err := s.clusterTLS(tlsCfg, cfg.TLSCert != ""); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		s.gate = &peerGate{now: s.now}
		if trans, err = clusterTransport(s.cn, cfg.ClusterListen, s.gate); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}

	reg := prometheus.NewRegistry()
	s.reg = reg
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	applyLatency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "warden_raft_apply_duration_seconds", Help: "Latency of Raft applies (one transaction).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	})
	reg.MustRegister(applyLatency)

	scfg := store.Config{
		Dir:               filepath.Join(cfg.DataDir, "store"),
		Logger:            log,
		ApplyObserver:     func(d time.Duration) { applyLatency.Observe(d.Seconds()) },
		SnapshotThreshold: cfg.SnapshotThreshold,
		SnapshotInterval:  cfg.SnapshotInterval,
		TrailingLogs:      cfg.TrailingLogs,
		LogBytes:          cfg.RaftLogBytes,
		OnRestore:         func() { s.core.AfterRestore(); s.audit.AfterRestore() },
	}
	if trans != nil {
		scfg.NodeID, scfg.Transport = cfg.NodeID, trans
		scfg.HeartbeatTimeout, scfg.ElectionTimeout, scfg.LeaderLeaseTimeout = raftTimeouts(cfg)
	}
	s.st, err = store.Open(scfg)
	if err != nil {
		if trans != nil {
			trans.Close()
		}
		return nil, fmt.Errorf("server: open store: %w", err)
	}
	if s.gate != nil {
		s.gate.st.Store(s.st)
	}
	s.trans = trans
	s.core = core.New(core.Config{Store: s.st, Now: cfg.Now})
	s.emitter = events.NewEmitter(s.eventsNode(), s.eventsAgentID(), s.appender, log, s.now)
	// The CA options matter only to an init still to come: check them at
	// start then (a bad --import-ca-* fails at once), and not on every
	// start of an initialized server (the check makes trial CAs).
	if initialized, err := s.core.Initialized(); err == nil && !initialized {
		if err := authority.CheckInitOptions(s.caInit()); err != nil {
			s.st.Close()
			return nil, fmt.Errorf("server: CA options: %w", err)
		}
	}
	s.tokens = identity.New(s.core, cfg.Now, nil)
	s.core.OnSeal(s.tokens.Forget)
	kv := secrets.New(s.core, cfg.Now)
	s.core.OnSeal(kv.Forget)
	pol := policy.New(s.core, cfg.Now)
	sinkFailures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warden_audit_sink_failures_total", Help: "Failed audit sink writes by sink.",
	}, []string{"sink"})
	reg.MustRegister(sinkFailures)
	var sinks []*auditlog.Sink
	if cfg.AuditFile != "" {
		fs, err := auditlog.FileSink(cfg.AuditFile, !cfg.AuditFileBestEffort)
		if err != nil {
			s.st.Close()
			return nil, fmt.Errorf("server: %w", err)
		}
		sinks = append(sinks, fs)
	}
	if cfg.AuditStdout {
		sinks = append(sinks, auditlog.WriterSink("stdout", os.Stdout, !cfg.AuditStdoutBestEffort))
	}
	journal, err := auditlog.OpenJournal(filepath.Join(cfg.DataDir, "audit-journal"))
	if err != nil {
		for _, k := range sinks {
			k.Close()
		}
		s.st.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	alog, err := auditlog.New(s.core, s.st, auditlog.Options{Sinks: sinks, Logger: log,
		SinkCursorDir: filepath.Join(cfg.DataDir, "audit-sinks"),
		OnSinkFailure: func(name string) { sinkFailures.WithLabelValues(name).Inc() },
		OnDamaged: func(err error) {
			s.emitter.Emit(events.ActionAuditVerificationFailed, events.Event{events.FieldMessage: err.Error()})
		},
		Journal: journal, NodeID: s.st.NodeID(), MaxMergeDelay: cfg.AuditMaxMergeDelay})
	if err != nil {
		for _, k := range sinks {
			k.Close()
		}
		journal.Close()
		s.st.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	s.audit = alog
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "warden_audit_journal_unmerged", Help: "Audit records in this node's journal not yet merged into the replicated log.",
	}, func() float64 { return float64(alog.Unmerged()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "warden_audit_damaged", Help: "1 while this server's stored audit log is marked damaged (see the ERROR log).",
	}, func() float64 {
		if alog.Damaged() != nil {
			return 1
		}
		return 0
	}))
	ca := authority.New(s.core)
	s.ca = ca
	s.core.OnSeal(ca.Forget)
	nodes := authority.NewNodes(s.core, ca, cfg.Now)
	s.nodes = nodes
	s.core.OnSeal(alog.Forget)
	s.core.OnSeal(pol.Forget)
	var clusterAPI api.Cluster
	if s.cn != nil {
		s.cluster = newCluster(s, s.cn, cfg.ServerCertTTL)
		clusterAPI = s.cluster
		registerRaftMetrics(reg, s.st)
	}
	if cfg.DecisionLog != "" {
		dl, err := decisionlog.Open(cfg.DecisionLog, decisionlog.Options{Sample: cfg.DecisionLogSample, Metrics: reg,
			OnError: func(err error) { log.Error("decision log: write failed; entries lost", "err", err) }})
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		s.decisions = dl
	}
	s.rules = detect.NewRules(s.core, cfg.Now)
	s.core.OnSeal(s.rules.Forget)
	s.alerts = detect.NewAlerts(s.core, alog, s.st.NodeID(), cfg.Now)
	s.core.OnSeal(s.alerts.Forget)
	notifications := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warden_notifications_total", Help: "Alert notification attempts by outcome (delivered, failed, abandoned, dropped).",
	}, []string{"outcome"})
	reg.MustRegister(notifications)
	s.notifiers = detect.NewNotifiers(s.core, alog, s.st.NodeID(), cfg.Now, &webhook.Sender{},
		detect.NotifyConfig{MinBackoff: cfg.NotifyMinBackoff, Logger: log,
			Outcome: func(o string) { notifications.WithLabelValues(o).Inc() }})
	s.wit = newWitnessNode(s, cfg.WitnessInterval)
	s.response = s.newResponse(nodes, alog)
	s.transit = s.newTransit(alog)
	s.approvals = s.newApprovals(alog)
	s.users = s.newUsers()
	s.policies = pol
	s.records = records.New(s.core, cfg.Now)
	s.api = api.New(api.Config{
		Rules: s.rules, Alerts: s.alerts, Notifiers: s.notifiers,
		Decisions: s.response.decisions, DecisionFeed: s.response.feed, MaxDecisionStreams: cfg.MaxDecisionStreams,
		Cluster: clusterAPI,
		Core:    s.core, Tokens: s.tokens, KV: kv, Policies: pol, Audit: alog, CA: ca, Nodes: nodes, CAInit: s.caInit(), Logger: log,
		Metrics: reg, Gather: reg, MetricsPublic: cfg.MetricsPublic,
		RateLimit: cfg.RateLimit, MaxRequestBytes: cfg.MaxRequestBytes, RequestTimeout: cfg.RequestTimeout, Now: cfg.Now,
		DecisionLog:         decisionLogger(s.decisions),
		EventsMaxBatchBytes: cfg.EventsMaxBatchBytes, ServerEvents: s.emitter,
		Incidents: s.newIncidents(alog),
		Playbooks: s.newPlaybooks(nodes, alog),
		Transit:   s.transit.eng,
		Approvals: s.approvals.svc, BreakGlassGroup: cfg.BreakGlassGroup, DualControlAtInit: cfg.DualControl,
		Witnesses: s.wit,
		Records:   s.records, Compliance: complianceState{s},
		Users: s.users, WebAuthnRPID: cfg.WebAuthnRPID, WebAuthnOrigins: cfg.WebAuthnOrigins,
		DevicePollWait: cfg.OIDCDevicePollWait,
	})
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "warden_events_server_dropped_total", Help: "This server's own events dropped (queue full, or no event plane yet).",
	}, func() float64 { return float64(s.emitter.Dropped()) }))
	// Client certificates are verified against the cluster's trust bundle,
	// which can be read only while unsealed: each handshake takes the
	// current pool (cached until the server seals).
	base := tlsCfg.Clone()
	// HTTP/1.1 only, with keep-alive: HTTP/2 answered half as many
	// decisions per second here (h2load, docs/BENCHMARKS.md "Decision API
	// fast path"); the configs returned below decide what ALPN offers.
	base.NextProtos = []string{"http/1.1"}
	tlsCfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		pool, err := s.clientCAs(ca)
		if err != nil || pool == nil {
			return base, nil // sealed or not initialized: no client authentication
		}
		c := base.Clone()
		c.ClientAuth, c.ClientCAs = tls.VerifyClientCertIfGiven, pool
		return c, nil
	}
	s.core.OnSeal(func() { s.poolMu.Lock(); s.pool = nil; s.poolMu.Unlock() })
	s.http = &http.Server{
		Handler:           s.api,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// net/http reports here what no handler sees: TLS handshake
		// failures, panics outside the API's recovery, broken connections.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError),
	}
	// Streams are never idle: Shutdown would wait for them until its
	// deadline while their clients should be reconnecting elsewhere.
	s.http.RegisterOnShutdown(s.api.EndStreams)
	return s, nil
}

// Start listens and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	s.ln = ln
	go func() {
		err := s.http.ServeTLS(ln, "", "")
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	s.log.Info("listening", "addr", "https://"+ln.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	s.stopScrub = cancel
	s.scrubDone = make(chan struct{})
	go func() {
		defer close(s.scrubDone)
		s.audit.Run(ctx, s.cfg.AuditScrubInterval)
	}()
	// The event plane starts now alone; in cluster mode once this node
	// has its cluster certificate, which secures the plane's routes.
	if s.cn == nil || s.cn.cert() != nil {
		s.events.kick()
	} else {
		prev := s.cn.installed
		s.cn.installed = func() {
			if prev != nil {
				prev()
			}
			s.events.kick()
		}
	}
	if s.cluster != nil {
		s.cluster.start()
	}
	s.startDetection(s.reg)
	s.response.start(s)
	s.playbooks.start(s)
	s.transit.start(s)
	s.approvals.start(s)
	s.wit.start()
	if iv := s.cfg.ComplianceInterval; iv >= 0 {
		if iv == 0 {
			iv = DefaultComplianceInterval
		}
		cctx, ccancel := context.WithCancel(context.Background())
		s.stopCompliance, s.complianceDone = ccancel, make(chan struct{})
		go func() {
			defer close(s.complianceDone)
			s.runCompliance(cctx, iv)
		}()
	}
	nctx, ncancel := context.WithCancel(context.Background())
	s.stopNotify, s.notifyDone = ncancel, make(chan struct{})
	go func() {
		defer close(s.notifyDone)
		// Only the leader delivers notifications, and only while unsealed.
		s.notifiers.Run(nctx, func() bool { return s.st.IsLeader() && !s.core.Sealed() })
	}()
	if len(s.cfg.RetryJoin) > 0 && s.cn != nil && !s.st.HasState() {
		ctx, cancel := context.WithCancel(context.Background())
		s.stopJoin = cancel
		go s.retryJoin(ctx)
	}
	return nil
}

// Addr is the https URL the server listens on.
func (s *Server) Addr() string { return "https://" + s.ln.Addr().String() }

// CAFile is the bootstrap CA certificate clients should trust ("" when an
// operator certificate is used).
func (s *Server) CAFile() string { return s.caFile }

// Core returns the core (for --dev and tests).
func (s *Server) Core() *core.Core { return s.core }

// Tokens returns the token service (for --dev and tests).
func (s *Server) Tokens() *identity.Service { return s.tokens }

// API returns the HTTP handler (for tests that walk routes).
func (s *Server) API() *api.Server { return s.api }

// Audit returns the audit log service (for tests that change state without
// a request: each change needs its record, see auditlog.Service.Pending).
func (s *Server) Audit() *auditlog.Service { return s.audit }

// Rules returns the detection rules service (for the detection runtime).
func (s *Server) Rules() *detect.Rules { return s.rules }

// Alerts returns the alerts service (for the detection runtime).
func (s *Server) Alerts() *detect.Alerts { return s.alerts }

// Notifiers returns the notifications service.
func (s *Server) Notifiers() *detect.Notifiers { return s.notifiers }

// Store returns the store.
func (s *Server) Store() *store.Store { return s.st }

// Done reports the serve loop's end.
func (s *Server) Done() <-chan error { return s.done }

// Close stops serving, seals and closes the store.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if s.ln != nil {
		err = s.http.Shutdown(ctx)
	}
	if s.stopJoin != nil {
		s.stopJoin()
	}
	if s.stopScrub != nil {
		s.stopScrub()
		<-s.scrubDone
	}
	if s.stopNotify != nil {
		s.stopNotify()
		<-s.notifyDone
	}
	if s.stopCompliance != nil {
		s.stopCompliance()
		<-s.complianceDone
	}
	if s.cluster != nil {
		s.cluster.close()
	}
	s.detection.close()
	s.response.close()
	s.playbooks.close()
	s.transit.close()
	s.approvals.close()
	s.wit.close()
	s.emitter.Close()
	s.events.close()
	s.api.Close()
	// Merge what the journal holds while the keys are still in memory; what
	// this misses is merged after the next unseal.
	if !s.core.Sealed() {
		if ferr := s.audit.Flush(ctx); ferr != nil {
			s.log.Warn("audit journal: merge at shutdown failed; it resumes after the next unseal", "err", ferr)
		}
	}
	s.core.Seal()
	return errors.Join(err, s.decisions.Close(), s.audit.Close(), s.st.Close())
}

// DevInit initializes with one share and unseals (for --dev). It returns the
// unseal key and the root token.
func (s *Server) DevInit(ctx context.Context) (string, identity.Secret, error) {
	if err := s.st.WaitLeader(ctx); err != nil {
		return "", "", err
	}
	entry := auditlog.SystemEntry(s.now(), s.st.NodeID(), "sys.init", `System::"warden"`)
	keys, root, err := api.Initialize(ctx, s.core, s.tokens, s.audit, entry, 1, 1, s.caInit(), s.cfg.DualControl)
	if err != nil {
		return "", "", err
	}
	if _, err := s.core.Unseal(ctx, keys[0]); err != nil {
		return "", "", err
	}
	return keys[0], root, nil
}

// caInit is how init makes the CA.
func (s *Server) caInit() authority.InitOptions {
	return authority.InitOptions{TrustDomain: s.cfg.TrustDomain, KeyType: pki.KeyType(s.cfg.CAKeyType),
		ImportCert: s.cfg.CAImportCert, ImportKey: s.cfg.CAImportKey, ImportChain: s.cfg.CAImportChain}
}

// decisionLogger keeps a nil *decisionlog.Logger out of the interface.
func decisionLogger(l *decisionlog.Logger) api.DecisionLogger {
	if l == nil {
		return nil
	}
	return l
}
