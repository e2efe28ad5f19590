// Package raftnet is the network between Warden's server nodes: Raft's
// transport and the peer requests a follower sends the leader (forwarded
// writes, read-index requests, membership changes), both over one mutually
// authenticated TLS port and told apart by ALPN.
//
// It carries bytes and store.PeerRequests; it knows nothing about what they
// mean (package store handles them) or about certificates (the caller's TLS
// configurations decide whom to trust, and its Gate names the node a
// certificate authenticates). What it does enforce is when the question is
// asked: on every request, not once per connection (see Gate).
package raftnet

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/warden-sec/warden/internal/store"
)

// ALPN protocols on the cluster port: Raft's own traffic, and the peer RPCs
// a follower sends the leader (forwarded writes, read-index requests,
// membership changes).
const (
	alpnRaft = "warden-raft"
	alpnRPC  = "warden-rpc"
)

// Gate names the node at the other end of a cluster-port connection. The
// transport asks it on every request (every read from a Raft connection,
// every peer RPC), and then asks the store whether that node may make it
// (store.CheckPeer, store.HandlePeer): a node removed from the Raft
// configuration, or whose certificate was revoked or has expired, is refused
// at once, on connections already open too.
type Gate interface {
	// Identify returns the node ID that cs's peer certificate (verified
	// during the handshake) names, or an error if that certificate may no
	// longer be used (revoked, expired). It must be safe for concurrent use
	// and cheap: it runs on every request.
	Identify(cs *tls.ConnectionState) (string, error)
}

// ErrRefused is returned by reads from a Raft connection whose peer may no
// longer use the cluster port; the connection is closed.
var ErrRefused = errors.New("raftnet: peer refused")

// NetTransport is the cluster transport: Raft traffic and peer RPCs over
// one mutually authenticated TLS listener, told apart by ALPN.
type NetTransport struct {
	*raft.NetworkTransport
	stream *tlsStream
	client *http.Client
	srv    *http.Server
	// witness serves WitnessPath for members (nil: 503).
	witness atomic.Pointer[http.Handler]
}

// WitnessPath is where the cluster port serves the C2SP tlog-witness API
// of the node's witness (POST WitnessPath+"/add-checkpoint"), to members
// of the cluster only.
const WitnessPath = "/v1/witness"

// ServeWitness makes the cluster port answer requests under WitnessPath
// with h, once the peer is identified (Gate) and found a member of the
// configuration (store.CheckPeer with store.PeerWitness). h finds the
// peer's node ID with PeerNode. Until it is called such requests answer
// 503.
func (t *NetTransport) ServeWitness(h http.Handler) { t.witness.Store(&h) }

// PeerClient is the HTTP client that reaches other nodes' cluster ports
// (URLs https://<cluster address>/...), over the same mutual TLS as Raft,
// for the node-to-node APIs next to the peer RPCs (the witnesses).
func (t *NetTransport) PeerClient() *http.Client { return t.client }

type peerNodeKey struct{}

// PeerNode returns the node ID of the member that sent a request served
// by a ServeWitness handler ("" for any other request).
func PeerNode(r *http.Request) string {
	n, _ := r.Context().Value(peerNodeKey{}).(string)
	return n
}

// TLSTransport carries Raft traffic between nodes over mutual TLS, and
// forwards followers' requests to the leader on the same port. Plain TCP
// between nodes is never used.
//
// serverTLS must present a certificate (Certificates or GetCertificate) and
// verify clients, either with ClientCAs or with VerifyConnection (for a
// trust bundle that changes while running); clientTLS likewise needs RootCAs
// or VerifyConnection. Both are cloned and forced to TLS 1.2 or later, and
// the server side to require a client certificate, so a misconfigured caller
// fails closed. gate is required; until ServePeers hands the transport its
// store, every request is refused.
func TLSTransport(bind string, serverTLS, clientTLS *tls.Config, gate Gate, logger hclog.Logger) (*NetTransport, error) {
	if serverTLS == nil || clientTLS == nil {
		return nil, errors.New("raftnet: TLS transport needs server and client TLS configurations")
	}
	if gate == nil {
		return nil, errors.New("raftnet: TLS transport needs a Gate to identify peers")
	}
	if (serverTLS.ClientCAs == nil && serverTLS.VerifyConnection == nil) ||
		(clientTLS.RootCAs == nil && clientTLS.VerifyConnection == nil) {
		return nil, errors.New("raftnet: TLS transport needs the cluster CA on both sides")
	}
	s := serverTLS.Clone()
	if s.ClientCAs != nil {
		s.ClientAuth = tls.RequireAndVerifyClientCert
	} else {
		s.ClientAuth = tls.RequireAnyClientCert // verified by VerifyConnection
	}
	if s.MinVersion < tls.VersionTLS12 {
		s.MinVersion = tls.VersionTLS12
	}
	s.NextProtos = []string{alpnRaft, alpnRPC}
	c := clientTLS.Clone()
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	if c.RootCAs == nil && !c.InsecureSkipVerify {
		return nil, errors.New("raftnet: a client TLS configuration without RootCAs must verify peers in VerifyConnection and set InsecureSkipVerify")
	}
	ln, err := tls.Listen("tcp", bind, s)
	if err != nil {
		return nil, fmt.Errorf("raftnet: cluster listener: %w", err)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	st := &tlsStream{ln: ln, client: c, gate: gate, raftCh: make(chan net.Conn), rpc: newChanListener(ln.Addr()), closed: make(chan struct{})}
	go st.demux()
	t := &NetTransport{stream: st}
	t.NetworkTransport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  st,
		MaxPool: 4,
		Timeout: 10 * time.Second,
		Logger:  logger,
	})
	t.client = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				c, err := st.dial(ctx, addr, alpnRPC)
				if err != nil {
					return nil, fmt.Errorf("%w: %w", store.ErrUnreachable, err)
				}
				return c, nil
			},
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     time.Minute,
		},
	}
	return t, nil
}

// ServePeers starts answering peer requests with s, and admitting Raft
// traffic from the members of its configuration (store.Open calls it).
func (t *NetTransport) ServePeers(s *store.Store) {
	t.stream.st.Store(s)
	t.srv = &http.Server{
		Handler:           peerHandler(s, t.stream.gate, t.witnessHandler),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          nil,
		// The handler needs the peer's certificate, which plainConn hides
		// from net/http.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(plainConn); ok {
				cs := pc.Conn.(*tls.Conn).ConnectionState()
				return context.WithValue(ctx, connStateKey{}, &cs)
			}
			return ctx
		},
	}
	go t.srv.Serve(t.stream.rpc) //nolint:errcheck // ends with Close
}

// Close stops the listener, the RPC server and Raft's connections.
func (t *NetTransport) Close() error {
	if t.srv != nil {
		t.srv.Close()
	}
	t.client.CloseIdleConnections()
	return t.NetworkTransport.Close()
}

// Forward sends req to the peer at addr.
func (t *NetTransport) Forward(ctx context.Context, addr raft.ServerAddress, req *store.PeerRequest) (*store.PeerResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, "POST", "https://"+string(addr)+"/v1/peer", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := t.client.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusForbidden {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("%w: by %s (certificate)", store.ErrPeerRefused, addr)
	}
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("raftnet: peer %s answered %s", addr, resp.Status)
	}
	var out store.PeerResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("raftnet: peer %s: %w", addr, err)
	}
	return &out, nil
}

type connStateKey struct{}

// witnessHandler returns the handler ServeWitness set, or nil.
func (t *NetTransport) witnessHandler() http.Handler {
	if h := t.witness.Load(); h != nil {
		return *h
	}
	return nil
}

func peerHandler(s *store.Store, gate Gate, witness func() http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		isWitness := strings.HasPrefix(r.URL.Path, WitnessPath+"/")
		if !isWitness && (r.Method != "POST" || r.URL.Path != "/v1/peer") {
			http.NotFound(w, r)
			return
		}
		// Who is asking is decided here, per request, from the certificate
		// the connection was authenticated with; never from the body.
		cs, _ := r.Context().Value(connStateKey{}).(*tls.ConnectionState)
		if cs == nil {
			http.Error(w, "no peer certificate", http.StatusForbidden)
			return
		}
		from, err := gate.Identify(cs)
		if err != nil {
			http.Error(w, "peer refused", http.StatusForbidden)
			return
		}
		if isWitness {
			// The witness serves members only: the same question as for
			// every other peer request, asked on every request.
			if err := s.CheckPeer(from, store.PeerWitness); err != nil {
				http.Error(w, "peer refused: not a member", http.StatusForbidden)
				return
			}
			h := witness()
			if h == nil {
				http.Error(w, "this node's witness is not running yet", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), peerNodeKey{}, from)))
			return
		}
		var req store.PeerRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, store.MaxTxnBytes*2))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, "bad peer request", http.StatusBadRequest)
			return
		}
		resp := s.HandlePeer(r.Context(), from, &req)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp) //nolint:errcheck // the peer sees a broken response
	})
}

// tlsStream is a raft.StreamLayer over a TLS listener and TLS dials; it
// hands connections that negotiated the RPC protocol to the RPC server.
type tlsStream struct {
	ln     net.Listener
	client *tls.Config
	gate   Gate
	st     atomic.Pointer[store.Store] // nil until ServePeers: refuse everything
	raftCh chan net.Conn
	rpc    *chanListener
	closed chan struct{}
	once   sync.Once
}

// demux accepts connections, completes each handshake (bounded) in its own
// goroutine, and routes it by ALPN.
func (t *tlsStream) demux() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			t.Close()
			return
		}
		go func() {
			tc := c.(*tls.Conn)
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			if err := tc.Handshake(); err != nil {
				tc.Close()
				return
			}
			tc.SetDeadline(time.Time{})
			cs := tc.ConnectionState()
			var conn net.Conn = &gatedConn{Conn: tc, cs: &cs, t: t}
			ch := t.raftCh
			if cs.NegotiatedProtocol == alpnRPC {
				// Hidden behind a plain net.Conn, so net/http serves HTTP/1.1
				// on it instead of looking for a handler of the protocol.
				conn, ch = plainConn{tc}, t.rpc.ch
			}
			select {
			case ch <- conn:
			case <-t.closed:
				tc.Close()
			}
		}()
	}
}

func (t *tlsStream) Accept() (net.Conn, error) {
	select {
	case c := <-t.raftCh:
		return c, nil
	case <-t.closed:
		return nil, net.ErrClosed
	}
}

func (t *tlsStream) Close() error {
	t.once.Do(func() {
		close(t.closed)
		t.ln.Close()
		t.rpc.Close()
	})
	return nil
}

func (t *tlsStream) Addr() net.Addr { return t.ln.Addr() }

// Dial connects to a peer for Raft and completes the handshake within
// timeout, so a peer that accepts TCP but never answers TLS cannot stall
// replication.
func (t *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return t.dial(ctx, string(address), alpnRaft)
}

func (t *tlsStream) dial(ctx context.Context, address, proto string) (net.Conn, error) {
	cfg := t.client.Clone()
	cfg.NextProtos = []string{proto}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		cfg.ServerName = host
	}
	d := &tls.Dialer{Config: cfg}
	return d.DialContext(ctx, "tcp", address)
}

// allow decides whether the peer of cs may send Raft traffic now.
func (t *tlsStream) allow(cs *tls.ConnectionState) error {
	st := t.st.Load()
	if st == nil {
		return errors.New("not serving yet")
	}
	from, err := t.gate.Identify(cs)
	if err != nil {
		return err
	}
	return st.CheckPeer(from, store.PeerRaft)
}

// gatedConn is an accepted Raft connection that asks, whenever bytes
// arrive, whether its peer may still send, before handing them to Raft: no
// request that arrives after its sender was removed or revoked is read.
// (The check follows the read, since a read waits for bytes that may come
// long after it started.) Bytes already handed over arrived while the peer
// was allowed.
type gatedConn struct {
	net.Conn
	cs      *tls.ConnectionState
	t       *tlsStream
	refused atomic.Bool
}

func (c *gatedConn) Read(p []byte) (int, error) {
	if c.refused.Load() {
		return 0, ErrRefused
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		if aerr := c.t.allow(c.cs); aerr != nil {
			c.refused.Store(true)
			c.Conn.Close()
			clear(p[:n])
			return 0, fmt.Errorf("%w: %v", ErrRefused, aerr)
		}
	}
	return n, err
}

// plainConn is an authenticated TLS connection seen as a plain one.
type plainConn struct{ net.Conn }

// chanListener is a net.Listener fed from a channel.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
