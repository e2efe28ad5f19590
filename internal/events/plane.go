package events

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream layout: one stream, one subject per node, one message per batch.
const (
	StreamName    = "WARDEN_EVENTS"
	SubjectPrefix = "warden.events."

	// Headers of a batch message.
	HeaderNode    = "Warden-Node"
	HeaderAgentID = "Warden-Agent-Id"
	HeaderEpoch   = "Warden-Batch-Epoch"
	HeaderSeq     = "Warden-Batch-Seq"
	HeaderCount   = "Warden-Events"

	// Defaults of PlaneConfig.
	DefaultMaxAge   = 7 * 24 * time.Hour
	DefaultMaxBytes = 10 << 30
	// DefaultReplicas is the replication of the stream and of KV buckets
	// in a cluster (fewer while fewer servers have joined).
	DefaultReplicas = 3
)

// ErrClosed is returned by a Plane that was closed.
var ErrClosed = errors.New("events: the event plane is closed")

// Batch is one stored batch: the events of one POST /v1/events, with the
// stream sequence of its message (what alerts' event_refs name).
type Batch struct {
	StreamSeq uint64
	Node      string
	Events    []Event
	// Time is when the batch was stored (the message's stream time).
	Time time.Time
}

// PlaneConfig configures a Plane. With URL empty the plane runs an
// embedded NATS server in this process (JetStream on, file storage under
// Dir) and connects to it in-process; with URL set it connects to an
// external NATS cluster instead and runs no server.
type PlaneConfig struct {
	// Dir holds the embedded server's JetStream store.
	Dir string
	// ServerName names the embedded server (unique in a cluster: the
	// Warden node ID).
	ServerName string
	// ClientListen is host:port of the embedded server's client port, or
	// "" for none (the default: Warden's server talks to its embedded NATS
	// in-process and needs no port). It needs ClientTLS.
	ClientListen string
	// ClientTLS secures the client port: the caller sets certificates and
	// the verification of clients' certificates (mutual TLS).
	ClientTLS *tls.Config
	// ClusterListen is host:port of the embedded server's route port ("":
	// no cluster); Routes are the route ports of the other servers
	// (host:port). ClusterTLS secures routes both ways: it is used as the
	// server's and as the client's configuration of a route connection and
	// must present a certificate and verify the peer's (mutual TLS).
	ClusterListen string
	Routes        []string
	ClusterTLS    *tls.Config

	// URL (nats:// or tls://, comma-separated) of an external cluster,
	// with a credentials file (CredsFile, may be "") and TLS for it
	// (ExternalTLS, nil: the system's roots for tls:// URLs).
	URL         string
	CredsFile   string
	ExternalTLS *tls.Config

	// Replicas is the replication wanted for the stream and KV buckets
	// (0: DefaultReplicas in a cluster or with an external URL, 1 alone).
	// While fewer servers are there, the stream is made with as many as
	// there are and raised later.
	Replicas int
	MaxAge   time.Duration // 0: DefaultMaxAge
	MaxBytes int64         // 0: DefaultMaxBytes
	// Compression stores the stream's messages with S2.
	Compression bool

	Logger *slog.Logger // nil: discard
}

// Plane is the event plane: the JetStream stream of batches and the KV
// buckets of the detection runtime. Safe for concurrent use. Close it once.
type Plane struct {
	cfg  PlaneConfig
	log  *slog.Logger
	ns   *natsserver.Server // nil with an external URL
	nc   *nats.Conn
	js   jetstream.JetStream
	want int // replicas wanted

	mu       sync.Mutex
	stream   jetstream.Stream
	replicas int                  // the stream's current replication
	buckets  []string             // KV buckets this plane opened
	last     map[string]lastBatch // per node subject: what was stored last
	closed   bool
	stop     context.CancelFunc
	done     chan struct{}
}

// lastBatch is what the last message on a node's subject holds.
type lastBatch struct {
	subjSeq uint64 // its stream sequence
	epoch   string
	seq     uint64
}

// OpenPlane starts (or connects to) NATS and makes sure the stream exists.
// It returns once the stream can take batches or ctx ends. In a cluster
// the stream is created with as many replicas as servers have joined (up
// to Replicas) and raised in the background as more join.
func OpenPlane(ctx context.Context, cfg PlaneConfig) (*Plane, error) {
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Plane{cfg: cfg, log: log, last: map[string]lastBatch{}, done: make(chan struct{})}
	p.want = cfg.Replicas
	if p.want <= 0 {
		p.want = 1
		if cfg.URL != "" || cfg.ClusterListen != "" {
			p.want = DefaultReplicas
		}
	}
	var err error
	if cfg.URL != "" {
		opts := []nats.Option{nats.Name("warden " + cfg.ServerName), nats.MaxReconnects(-1)}
		if cfg.CredsFile != "" {
			opts = append(opts, nats.UserCredentials(cfg.CredsFile))
		}
		if cfg.ExternalTLS != nil {
			opts = append(opts, nats.Secure(cfg.ExternalTLS))
		}
		if p.nc, err = nats.Connect(cfg.URL, opts...); err != nil {
			return nil, fmt.Errorf("events: connect to NATS at --events-nats-url: %w", err)
		}
	} else {
		if p.ns, err = startEmbedded(cfg, log); err != nil {
			return nil, err
		}
		opts := []nats.Option{nats.InProcessServer(p.ns), nats.MaxReconnects(-1), nats.Name("warden " + cfg.ServerName)}
		if tc := clientSideTLS(cfg); tc != nil {
			// A client port with TLS makes the in-process connection a
			// TLS one too: this server presents its own certificate.
			opts = append(opts, nats.Secure(tc))
		}
		if p.nc, err = nats.Connect(p.ns.ClientURL(), opts...); err != nil {
			p.ns.Shutdown()
			return nil, fmt.Errorf("events: connect to the embedded NATS server: %w", err)
		}
	}
	if p.js, err = jetstream.New(p.nc); err != nil {
		p.shutdown()
		return nil, fmt.Errorf("events: %w", err)
	}
	if err := p.ensureStream(ctx); err != nil {
		p.shutdown()
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	p.stop = cancel
	go p.raiseReplicas(bg)
	return p, nil
}

// clientSideTLS is the TLS of the in-process connection: the client
// port's configuration (which presents and verifies like a route's), or
// nil when the embedded server has no client port.
func clientSideTLS(cfg PlaneConfig) *tls.Config {
	switch {
	case cfg.ClientListen != "" && cfg.ClientTLS != nil:
		return cfg.ClientTLS
	case cfg.ClusterListen != "" && cfg.ClusterTLS != nil:
		return cfg.ClusterTLS
	}
	return nil
}

// natsLogger sends the embedded server's log to slog.
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) Noticef(format string, v ...any) {
	l.log.Debug("nats: " + fmt.Sprintf(format, v...))
}
func (l natsLogger) Warnf(format string, v ...any) { l.log.Warn("nats: " + fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any) {
	l.log.Error("nats: " + fmt.Sprintf(format, v...))
}
func (l natsLogger) Errorf(format string, v ...any) {
	l.log.Error("nats: " + fmt.Sprintf(format, v...))
}
func (l natsLogger) Debugf(string, ...any) {}
func (l natsLogger) Tracef(string, ...any) {}

func splitHostPort(what, addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("events: %s %q: %w", what, addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("events: %s %q: bad port", what, addr)
	}
	if n == 0 {
		n = -1 // NATS: -1 is a random port, 0 the default one
	}
	return host, n, nil
}

// startEmbedded starts the in-process NATS server.
func startEmbedded(cfg PlaneConfig, log *slog.Logger) (*natsserver.Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("events: no directory for the embedded NATS server's store")
	}
	name := cfg.ServerName
	if name == "" {
		name = "warden"
	}
	opts := &natsserver.Options{
		ServerName: name,
		JetStream:  true,
		StoreDir:   cfg.Dir,
		NoSigs:     true,
		DontListen: cfg.ClientListen == "",
		// JetStream's own bounds: the stream's are set on the stream.
		JetStreamMaxMemory: 256 << 20,
		MaxPayload:         8 << 20,
	}
	if cfg.ClusterListen != "" && cfg.ClientListen == "" {
		// NATS routes only once its client port listens (a server with
		// no client port never starts routing): loopback, a random port,
		// the same mutual TLS as routes.
		cfg.ClientListen, cfg.ClientTLS = "127.0.0.1:0", cfg.ClusterTLS
		opts.DontListen = false
	}
	if cfg.ClientListen != "" {
		if cfg.ClientTLS == nil {
			return nil, errors.New("events: --events-nats-listen needs TLS (cluster mode)")
		}
		host, port, err := splitHostPort("--events-nats-listen", cfg.ClientListen)
		if err != nil {
			return nil, err
		}
		opts.Host, opts.Port = host, port
		opts.TLSConfig, opts.TLS, opts.TLSVerify, opts.TLSTimeout = cfg.ClientTLS, true, true, 5
	}
	if cfg.ClusterListen != "" {
		if cfg.ClusterTLS == nil {
			return nil, errors.New("events: --events-nats-cluster-listen needs TLS (cluster mode)")
		}
		host, port, err := splitHostPort("--events-nats-cluster-listen", cfg.ClusterListen)
		if err != nil {
			return nil, err
		}
		opts.Cluster = natsserver.ClusterOpts{Name: "warden", Host: host, Port: port,
			TLSConfig: cfg.ClusterTLS, TLSTimeout: 5}
		for _, r := range cfg.Routes {
			if _, _, err := net.SplitHostPort(r); err != nil {
				return nil, fmt.Errorf("events: --events-nats-routes %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats-route", Host: r})
		}
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("events: embedded NATS server: %w", err)
	}
	ns.SetLoggerV2(natsLogger{log}, false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		go ns.Shutdown() // may wait for a start that hangs
		return nil, errors.New("events: the embedded NATS server did not start within 30s")
	}
	return ns, nil
}

// streamConfig is the stream's configuration with r replicas.
func (p *Plane) streamConfig(r int) jetstream.StreamConfig {
	c := jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Warden's security events: one message per batch of an agent",
		Subjects:    []string{SubjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      p.cfg.MaxAge,
		MaxBytes:    p.cfg.MaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    r,
		// Batches are deduplicated by (node, epoch, seq), not by message id.
		Duplicates: 0,
	}
	if p.cfg.Compression {
		c.Compression = jetstream.S2Compression
	}
	return c
}

// withReplicas runs make with the wanted replication, or fewer while the
// cluster has fewer servers (JetStream then answers that it lacks
// resources or peers), down to one; it retries until ctx ends while even
// one fails because no meta leader is elected yet.
func (p *Plane) withReplicas(ctx context.Context, make func(ctx context.Context, r int) error) (int, error) {
	for {
		var err error
		for r := p.want; r >= 1; r-- {
			// A request sent before the cluster has a meta leader is
			// never answered: each attempt has its own short deadline.
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = make(actx, r)
			cancel()
			if err == nil {
				return r, nil
			}
			if ctx.Err() != nil {
				break
			}
			if !insufficient(err) {
				break // try again from the top after a pause
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("events: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// insufficient reports whether err says there are too few servers for
// the replication asked.
func insufficient(err error) bool {
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode {
		case 10005, 10023, 10074: // no suitable peers; insufficient resources; replicas > 1 not supported
			return true
		}
	}
	s := err.Error()
	return strings.Contains(s, "insufficient resources") || strings.Contains(s, "no suitable peers") ||
		strings.Contains(s, "replicas > 1 not supported")
}

func (p *Plane) ensureStream(ctx context.Context) error {
	r, err := p.withReplicas(ctx, func(ctx context.Context, r int) error {
		cfg := p.streamConfig(r)
		if st, err := p.js.Stream(ctx, StreamName); err == nil {
			cur := st.CachedInfo().Config
			// Keep a higher replication already in place (another server
			// raised it); apply the limits this server is configured with.
			if cur.Replicas > r {
				cfg.Replicas = cur.Replicas
			}
			if cur.Compression != cfg.Compression {
				cfg.Compression = cur.Compression // fixed at creation
			}
			st, err = p.js.UpdateStream(ctx, cfg)
			if err != nil {
				return err
			}
			p.mu.Lock()
			p.stream = st
			p.mu.Unlock()
			return nil
		}
		st, err := p.js.CreateStream(ctx, cfg)
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.stream = st
		p.mu.Unlock()
		return nil
	})
	if err != nil {
		return fmt.Errorf("events: stream %s: %w", StreamName, err)
	}
	p.mu.Lock()
	p.replicas = max(r, p.stream.CachedInfo().Config.Replicas)
	p.mu.Unlock()
	return nil
}

// raiseReplicas raises the stream's replication as servers join, until it
// reaches the wanted number.
func (p *Plane) raiseReplicas(ctx context.Context) {
	defer close(p.done)
	for {
		p.mu.Lock()
		have := p.replicas
		p.mu.Unlock()
		if have >= p.want {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		cfg := p.streamConfig(have + 1)
		if st, err := p.js.Stream(ctx, StreamName); err == nil {
			cfg.Compression = st.CachedInfo().Config.Compression
			if st.CachedInfo().Config.Replicas > have {
				p.mu.Lock()
				p.replicas = st.CachedInfo().Config.Replicas
				p.mu.Unlock()
				continue
			}
		}
		if _, err := p.js.UpdateStream(ctx, cfg); err == nil {
			p.log.Info("event stream replication raised", "replicas", have+1)
			p.mu.Lock()
			p.replicas = have + 1
			buckets := append([]string(nil), p.buckets...)
			p.mu.Unlock()
			// The KV buckets made meanwhile follow the stream.
			for _, b := range buckets {
				kv, err := p.js.KeyValue(ctx, b)
				if err != nil {
					continue
				}
				st, err := kv.Status(ctx)
				if err != nil {
					continue
				}
				c := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config
				if c.Replicas >= have+1 {
					continue
				}
				if _, err := p.js.UpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: b, Replicas: have + 1,
					Storage: jetstream.FileStorage, History: 1}); err != nil {
					p.log.Warn("KV bucket: could not raise replication", "bucket", b, "replicas", have+1, "err", err)
				}
			}
		} else if !insufficient(err) && ctx.Err() == nil {
			p.log.Warn("event stream: could not raise replication", "replicas", have+1, "err", err)
		}
	}
}

// Replicas returns the stream's replication as this server last saw it.
func (p *Plane) Replicas() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.replicas
}

// ClusterAddr is the embedded server's route address (host:port), "" if
// it has none.
func (p *Plane) ClusterAddr() string {
	if p.ns == nil {
		return ""
	}
	if a := p.ns.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// ClientAddr is the embedded server's client address (host:port), "" if
// it listens for no clients.
func (p *Plane) ClientAddr() string {
	if p.ns == nil || p.cfg.ClientListen == "" {
		return ""
	}
	if a := p.ns.Addr(); a != nil {
		return a.String()
	}
	return ""
}

// JetStream returns the JetStream context (for tests and tools).
func (p *Plane) JetStream() jetstream.JetStream { return p.js }

// Subject returns the stream subject of node's batches. Canonical names
// hold a-z, 0-9, '-' and '.', and '.' separates subject tokens: it becomes
// '_', which no name holds, so the mapping is one to one. Any other name
// (not canonical) is hex-encoded behind "x_".
func Subject(node string) string {
	ok := node != ""
	for i := 0; i < len(node) && ok; i++ {
		c := node[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.'
	}
	if !ok {
		return SubjectPrefix + "x_" + hex.EncodeToString([]byte(node))
	}
	return SubjectPrefix + strings.ReplaceAll(node, ".", "_")
}

// Append stores one batch of node, sent with agent ID agentID as batch
// (epoch, seq): lines are its events, one JSON object each (already
// checked and stamped by the caller). It is stored as one message, so
// wholly or not at all. A batch is a duplicate, stored again never, when
// the last batch stored for node has the same epoch and a sequence at
// least seq; dup is then true and streamSeq is the stored batch's
// sequence when it is the same batch (0 for an older one). Two servers
// appending for one node at once cannot both store: the publish expects
// the node subject's last sequence it checked, and the loser checks again.
func (p *Plane) Append(ctx context.Context, node, agentID, epoch string, seq uint64, lines [][]byte) (streamSeq uint64, dup bool, err error) {
	subj := Subject(node)
	size := len(lines)
	for _, l := range lines {
		size += len(l)
	}
	body := make([]byte, 0, size)
	for _, l := range lines {
		body = append(body, l...)
		body = append(body, '\n')
	}
	msg := &nats.Msg{Subject: subj, Data: body, Header: nats.Header{}}
	msg.Header.Set(HeaderNode, node)
	msg.Header.Set(HeaderAgentID, agentID)
	msg.Header.Set(HeaderEpoch, epoch)
	msg.Header.Set(HeaderSeq, strconv.FormatUint(seq, 10))
	msg.Header.Set(HeaderCount, strconv.Itoa(len(lines)))
	p.mu.Lock()
	lb, cached := p.last[subj]
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return 0, false, ErrClosed
	}
	for attempt := 0; ; attempt++ {
		if !cached {
			if lb, err = p.lastOf(ctx, subj); err != nil {
				return 0, false, err
			}
		}
		if lb.subjSeq != 0 && lb.epoch == epoch && lb.seq >= seq {
			if lb.seq == seq {
				return lb.subjSeq, true, nil
			}
			return 0, true, nil
		}
		ack, err := p.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(lb.subjSeq))
		if err == nil {
			p.mu.Lock()
			p.last[subj] = lastBatch{subjSeq: ack.Sequence, epoch: epoch, seq: seq}
			if len(p.last) > maxCachedNodes {
				clear(p.last)
			}
			p.mu.Unlock()
			return ack.Sequence, false, nil
		}
		var ae *jetstream.APIError
		if errors.As(err, &ae) && (ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) && attempt < 8 {
			cached = false // another server stored a batch of this node: look again
			continue
		}
		return 0, false, fmt.Errorf("events: store the batch: %w", err)
	}
}

// consumeMaxBytes bounds what a consumer has asked for and not yet read.
const consumeMaxBytes = 16 << 20

// maxCachedNodes bounds the per-node cache of last batches (it is only a
// cache: a miss reads the stream).
const maxCachedNodes = 100_000

// lastOf reads the last batch stored on subj.
func (p *Plane) lastOf(ctx context.Context, subj string) (lastBatch, error) {
	p.mu.Lock()
	st := p.stream
	p.mu.Unlock()
	var m *jetstream.RawStreamMsg
	err := retry(ctx, func(ctx context.Context) (err error) {
		m, err = st.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		return err
	})
	if m == nil && err == nil {
		err = jetstream.ErrMsgNotFound
	}
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return lastBatch{}, nil
	}
	if err != nil {
		return lastBatch{}, fmt.Errorf("events: read the last batch of %s: %w", subj, err)
	}
	seq, _ := strconv.ParseUint(m.Header.Get(HeaderSeq), 10, 64)
	return lastBatch{subjSeq: m.Sequence, epoch: m.Header.Get(HeaderEpoch), seq: seq}, nil
}

// LastBatchTime returns when the stream stored node's last batch (zero
// when it holds none).
func (p *Plane) LastBatchTime(ctx context.Context, node string) (time.Time, error) {
	p.mu.Lock()
	st := p.stream
	p.mu.Unlock()
	var m *jetstream.RawStreamMsg
	err := retry(ctx, func(ctx context.Context) (err error) {
		m, err = st.GetLastMsgForSubject(ctx, Subject(node))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			m, err = nil, nil
		}
		return err
	})
	if err != nil || m == nil {
		return time.Time{}, err
	}
	return m.Time, nil
}

// retry runs f with a short deadline per attempt until it succeeds or
// ctx ends: a JetStream request sent while the stream or the cluster
// elects a new leader (a server died) may never be answered.
func retry(ctx context.Context, f func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := f(actx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		var ae *jetstream.APIError
		if errors.As(err, &ae) && ae.Code >= 400 && ae.Code < 500 && ae.Code != 408 {
			return err // a refusal, not an unanswered request
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// LastSeq returns the stream's last sequence (0 when empty).
func (p *Plane) LastSeq(ctx context.Context) (uint64, error) {
	p.mu.Lock()
	st := p.stream
	p.mu.Unlock()
	var info *jetstream.StreamInfo
	err := retry(ctx, func(ctx context.Context) (err error) {
		info, err = st.Info(ctx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("events: stream info: %w", err)
	}
	return info.State.LastSeq, nil
}

// DecodeBatch decodes a stored batch message: its body's JSON lines.
func DecodeBatch(seq uint64, node string, t time.Time, data []byte) (Batch, error) {
	b := Batch{StreamSeq: seq, Node: node, Time: t}
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return b, fmt.Errorf("events: batch %d line %d: %w", seq, n, err)
		}
		b.Events = append(b.Events, ev)
	}
	return b, nil
}

// ConsumeOptions narrow what Consume and Scan deliver.
type ConsumeOptions struct {
	// Node delivers only that node's batches ("" all).
	Node string
	// Since starts at the first batch stored at or after it (instead of a
	// sequence); zero: use the sequence.
	Since time.Time
}

// Consume calls fn for each batch with StreamSeq >= from, in order, until
// ctx ends (it then returns ctx.Err()) or fn errs (it returns that error).
// It follows new batches as they are stored. from 0 is the first batch
// the stream still holds. A message that does not decode is skipped and
// logged (it cannot be, unless written by another writer).
func (p *Plane) Consume(ctx context.Context, from uint64, fn func(Batch) error) error {
	return p.ConsumeWith(ctx, from, ConsumeOptions{}, fn)
}

// ConsumeWith is Consume with options.
func (p *Plane) ConsumeWith(ctx context.Context, from uint64, o ConsumeOptions, fn func(Batch) error) error {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case !o.Since.IsZero():
		t := o.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	case from > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	if o.Node != "" {
		cfg.FilterSubjects = []string{Subject(o.Node)}
	}
	var cons jetstream.Consumer
	err := retry(ctx, func(ctx context.Context) (err error) {
		cons, err = p.js.OrderedConsumer(ctx, StreamName, cfg)
		return err
	})
	if err != nil {
		return fmt.Errorf("events: consumer: %w", err)
	}
	// Bounded by bytes, not by count: a batch is up to MaxBatchBytes, and
	// the default 500 messages outstanding would pass the NATS server's
	// 64 MiB pending limit for a connection, which then closes it (the
	// ingest's publishes on it fail too).
	it, err := cons.Messages(jetstream.PullMaxBytes(consumeMaxBytes))
	if err != nil {
		return fmt.Errorf("events: consumer: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("events: consumer: %w", err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("events: consumer: %w", err)
		}
		b, err := DecodeBatch(md.Sequence.Stream, m.Headers().Get(HeaderNode), md.Timestamp, m.Data())
		if err != nil {
			p.log.Error("event stream: a batch does not decode; skipped", "stream_seq", md.Sequence.Stream, "err", err)
			continue
		}
		if err := fn(b); err != nil {
			return err
		}
	}
}

// KV returns a replicated JetStream key-value bucket, created if absent
// (file storage, replicated as the stream is).
func (p *Plane) KV(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	p.mu.Lock()
	if !slices.Contains(p.buckets, bucket) {
		p.buckets = append(p.buckets, bucket)
	}
	p.mu.Unlock()
	kv, err := p.js.KeyValue(ctx, bucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("events: KV bucket %s: %w", bucket, err)
	}
	_, err = p.withReplicas(ctx, func(ctx context.Context, r int) error {
		kv, err = p.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, Replicas: r,
			Storage: jetstream.FileStorage, History: 1})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("events: KV bucket %s: %w", bucket, err)
	}
	return kv, nil
}

// Close closes the connection and shuts the embedded server down.
func (p *Plane) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	if p.stop != nil {
		p.stop()
		<-p.done
	}
	p.shutdown()
	return nil
}

func (p *Plane) shutdown() {
	if p.nc != nil {
		p.nc.Close()
	}
	if p.ns != nil {
		p.ns.Shutdown()
		p.ns.WaitForShutdown()
	}
}

// Search bounds.
const (
	DefaultSearchLimit = 100
	MaxSearchLimit     = 10_000
)

// SearchOptions select the events Search returns.
type SearchOptions struct {
	Query *Query // nil: every event
	// Since and Until bound the time the batches were stored (not the
	// events' @timestamp); Until zero is now.
	Since, Until time.Time
	Node         string // only this node's batches ("" all)
	// Limit is how many events to return (0: DefaultSearchLimit; at most
	// MaxSearchLimit): the newest that match.
	Limit int
}

// SearchResult is what Search found: the newest Limit matching events,
// newest first, each with its batch's stream sequence in "warden.stream_seq".
type SearchResult struct {
	Events []Event `json:"events"`
	// Matched counts every matching event in the window; Truncated is set
	// when it is more than Events holds.
	Matched   int  `json:"matched"`
	Truncated bool `json:"truncated"`
	// Scanned counts the batches read.
	Scanned int `json:"scanned_batches"`
}

// FieldStreamSeq is added to search results: the stream sequence of the
// event's batch (what alerts' event_refs name).
const FieldStreamSeq = "warden.stream_seq"

var errSearchDone = errors.New("search done")

// Search reads the batches stored in [Since, Until] (up to the last one
// stored when the search starts) and returns the newest matching events.
// It reads the whole window: ctx bounds its time.
func (p *Plane) Search(ctx context.Context, o SearchOptions) (SearchResult, error) {
	var res SearchResult
	limit := o.Limit
	if limit <= 0 {
		limit = DefaultSearchLimit
	}
	limit = min(limit, MaxSearchLimit)
	until := o.Until
	last, err := p.LastSeq(ctx)
	if err != nil || last == 0 {
		return res, err
	}
	p.mu.Lock()
	st := p.stream
	p.mu.Unlock()
	var lm *jetstream.RawStreamMsg
	if o.Node != "" {
		// The last batch this consumer will see is the node's last.
		lm, err = st.GetLastMsgForSubject(ctx, Subject(o.Node))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return res, nil
		}
	} else {
		lm, err = st.GetMsg(ctx, last)
	}
	if err != nil {
		return res, fmt.Errorf("events: search: %w", err)
	}
	last = lm.Sequence
	if lm.Time.Before(o.Since) {
		return res, nil // nothing stored since
	}
	ring := make([]Event, 0, limit)
	next := 0 // where the next match goes once ring is full
	err = p.ConsumeWith(ctx, 0, ConsumeOptions{Since: o.Since, Node: o.Node}, func(b Batch) error {
		if b.StreamSeq > last || (!until.IsZero() && b.Time.After(until)) {
			return errSearchDone
		}
		res.Scanned++
		for _, ev := range b.Events {
			if !o.Query.Match(ev) {
				continue
			}
			res.Matched++
			ev[FieldStreamSeq] = b.StreamSeq
			if len(ring) < limit {
				ring = append(ring, ev)
			} else {
				ring[next] = ev
				next = (next + 1) % limit
			}
		}
		if b.StreamSeq == last {
			return errSearchDone
		}
		return nil
	})
	if err != nil && !errors.Is(err, errSearchDone) {
		return res, err
	}
	// Newest first: the ring's oldest entry is at next.
	res.Events = make([]Event, 0, len(ring))
	for i := len(ring) - 1; i >= 0; i-- {
		res.Events = append(res.Events, ring[(next+i)%len(ring)])
	}
	res.Truncated = res.Matched > len(res.Events)
	return res, nil
}
