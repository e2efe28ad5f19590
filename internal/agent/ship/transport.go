package ship

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/agent/spool"
	"github.com/warden-sec/warden/pkg/client"
)

// The POST /v1/events contract (design12.md).
const (
	eventsPath     = "/v1/events"
	HeaderEpoch    = "Warden-Batch-Epoch"
	HeaderSeq      = "Warden-Batch-Seq"
	HeaderDropped  = "Warden-Dropped"
	ndjson         = "application/x-ndjson"
	maxAnswerBytes = 64 << 10
)

// transport posts batches to the servers over mutual TLS, rotating among
// them on failure.
type transport struct {
	servers []string
	http    *http.Client
	tr      *http.Transport
	cert    *certReloader

	mu  sync.Mutex
	cur int
}

func newTransport(cfg Config) (*transport, error) {
	var servers []string
	for _, s := range cfg.Servers {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("ship: server %q: want https://host:port", s)
		}
		servers = append(servers, strings.TrimRight(u.String(), "/"))
	}
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("ship: the node's certificate and key files are required")
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACertFile != "" {
		pem, err := os.ReadFile(cfg.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("ship: CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ship: CA certificate %s: no PEM certificate found", cfg.CACertFile)
		}
		tlsCfg.RootCAs = pool
	}
	t := &transport{servers: servers}
	t.cert = &certReloader{kp: client.KeyPair{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile}}
	if _, err := t.cert.get(); err != nil {
		return nil, err
	}
	tlsCfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return t.cert.get() }
	t.tr = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        4,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	t.cert.onChange = t.tr.CloseIdleConnections
	t.http = &http.Client{Transport: t.tr, Timeout: cfg.HTTPTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return t, nil
}

func (t *transport) server() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.servers[t.cur]
}

// next moves to the next server.
func (t *transport) next() {
	t.mu.Lock()
	t.cur = (t.cur + 1) % len(t.servers)
	t.mu.Unlock()
	t.tr.CloseIdleConnections()
}

func (t *transport) close() { t.tr.CloseIdleConnections() }

// result is a server's answer to one batch.
type result struct {
	status     int
	err        error // no answer (network), or an unreadable one
	duplicate  bool
	retryAfter time.Duration
}

func (t *transport) post(ctx context.Context, epoch string, b spool.Batch, dropped uint64) result {
	// Notice a renewed certificate before reusing a connection made with
	// the previous one.
	if _, err := t.cert.get(); err != nil {
		return result{err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.server()+eventsPath, bytes.NewReader(b.Body))
	if err != nil {
		return result{err: err}
	}
	req.Header.Set("Content-Type", ndjson)
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Accept", "application/json")
	req.Header.Set(HeaderEpoch, epoch)
	req.Header.Set(HeaderSeq, strconv.FormatUint(b.Seq, 10))
	if dropped > 0 {
		req.Header.Set(HeaderDropped, strconv.FormatUint(dropped, 10))
	}
	resp, err := t.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return result{err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	res := result{status: resp.StatusCode}
	switch resp.StatusCode {
	case http.StatusOK:
		if err != nil {
			// A 200 means stored; an unreadable body does not change it.
			return res
		}
		var ans struct {
			Events    int    `json:"events"`
			Duplicate bool   `json:"duplicate"`
			StreamSeq uint64 `json:"stream_seq"`
		}
		if json.Unmarshal(data, &ans) == nil {
			res.duplicate = ans.Duplicate
		}
	case http.StatusTooManyRequests:
		res.retryAfter = time.Second
		if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s >= 0 {
			res.retryAfter = time.Duration(s) * time.Second
		}
	}
	return res
}

// certReloader serves the node's certificate through a client.KeyPair
// (read again when renewal rewrites the files; a pair caught between the
// two writes keeps the last good one) and calls onChange when the pair in
// use changed, so connections made with the old one are not reused.
type certReloader struct {
	kp       client.KeyPair
	onChange func()

	mu   sync.Mutex
	last *tls.Certificate
}

func (c *certReloader) get() (*tls.Certificate, error) {
	cert, err := c.kp.Certificate()
	if err != nil {
		return nil, fmt.Errorf("ship: node certificate: %w", err)
	}
	c.mu.Lock()
	changed := c.last != nil && c.last != cert
	c.last = cert
	c.mu.Unlock()
	if changed && c.onChange != nil {
		go c.onChange()
	}
	return cert, nil
}
