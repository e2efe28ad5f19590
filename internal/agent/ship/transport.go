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
	t.cert = &certReloader{certFile: cfg.CertFile, keyFile: cfg.KeyFile, log: cfg.Logger}
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

// certReloader serves the node's certificate, re-reading the files when
// their size or modification time changes (renewal rewrites them). A pair
// that does not load (caught between the two writes) keeps the last good
// one until the next check.
type certReloader struct {
	certFile, keyFile string
	log               interface{ Warn(string, ...any) }
	onChange          func()

	mu    sync.Mutex
	stamp string
	cert  *tls.Certificate
}

func fileStamp(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return ""
		}
		fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

func (c *certReloader) get() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stamp := fileStamp(c.certFile, c.keyFile)
	if c.cert != nil && (stamp == c.stamp || stamp == "") {
		return c.cert, nil
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		if c.cert != nil {
			if c.log != nil {
				c.log.Warn("the node certificate files do not load; keeping the previous pair", "err", err)
			}
			return c.cert, nil
		}
		return nil, fmt.Errorf("ship: node certificate: %w", err)
	}
	changed := c.cert != nil
	c.cert, c.stamp = &pair, stamp
	if changed && c.onChange != nil {
		// Connections made with the old certificate are not reused.
		go c.onChange()
	}
	return c.cert, nil
}
