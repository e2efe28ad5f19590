package store

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TLSTransport carries Raft traffic between nodes over mutual TLS: the
// listener requires a client certificate signed by the cluster CA, and
// outgoing connections present this node's certificate and verify the
// peer's. Plain TCP between nodes is never used.
//
// serverTLS must set Certificates and ClientCAs; clientTLS must set
// Certificates and RootCAs. Both are cloned and forced to TLS 1.2 or later,
// and the server side to RequireAndVerifyClientCert, so a misconfigured
// caller fails closed.
func TLSTransport(bind string, serverTLS, clientTLS *tls.Config, logger hclog.Logger) (*raft.NetworkTransport, error) {
	if serverTLS == nil || clientTLS == nil {
		return nil, errors.New("store: TLS transport needs server and client TLS configurations")
	}
	if serverTLS.ClientCAs == nil || clientTLS.RootCAs == nil {
		return nil, errors.New("store: TLS transport needs the cluster CA on both sides")
	}
	s := serverTLS.Clone()
	s.ClientAuth = tls.RequireAndVerifyClientCert
	if s.MinVersion < tls.VersionTLS12 {
		s.MinVersion = tls.VersionTLS12
	}
	c := clientTLS.Clone()
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	ln, err := tls.Listen("tcp", bind, s)
	if err != nil {
		return nil, fmt.Errorf("store: cluster listener: %w", err)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  &tlsStream{ln: ln, client: c},
		MaxPool: 4,
		Timeout: 10 * time.Second,
		Logger:  logger,
	}), nil
}

// tlsStream is a raft.StreamLayer over a TLS listener and TLS dials.
type tlsStream struct {
	ln     net.Listener
	client *tls.Config
}

func (t *tlsStream) Accept() (net.Conn, error) { return t.ln.Accept() }
func (t *tlsStream) Close() error              { return t.ln.Close() }
func (t *tlsStream) Addr() net.Addr            { return t.ln.Addr() }

// Dial connects to a peer and completes the handshake within timeout, so a
// peer that accepts TCP but never answers TLS cannot stall replication.
func (t *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	cfg := t.client
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(string(address))
		if err != nil {
			return nil, err
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	conn, err := tls.DialWithDialer(d, "tcp", string(address), cfg)
	if err != nil {
		return nil, err
	}
	return conn, nil
}
