// Package client is the Go SDK for the Warden HTTP API described in
// docs/api.md. It is the only client-side code that speaks HTTP: the warden
// CLI is built on it.
//
// A Client talks HTTPS only (TLS 1.2 minimum) and refuses plain http
// addresses. It never follows redirects and never puts the token it holds
// into an error message. It retries only a 429 (the server refused before
// doing anything), after the server's Retry-After, at most
// MaxRateLimitRetries times; the login calls do not retry at all. Every
// non-2xx response becomes an *APIError carrying the status and the
// server's error messages (for a 429, a *RateLimitError wrapping one, with
// the server's Retry-After); a 202 (a request held for approval under dual
// control) becomes an *ApprovalRequiredError.
package client

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
)

// DefaultAddress is the address used when Config.Address and WARDEN_ADDR are empty.
const DefaultAddress = "https://127.0.0.1:8200"

// DefaultTimeout bounds a whole request (connect, TLS, body) when Config.Timeout is zero.
const DefaultTimeout = 60 * time.Second

// MaxResponseBytes is the largest response body a Client reads; a larger one is an error.
const MaxResponseBytes = 32 << 20

// drainBytes is how much of an unread response body is drained before the
// body is closed.
const drainBytes = 64 << 10

// Environment variables read by ConfigFromEnv.
const (
	EnvAddress    = "WARDEN_ADDR"
	EnvToken      = "WARDEN_TOKEN"
	EnvCACert     = "WARDEN_CACERT"
	EnvClientCert = "WARDEN_CLIENT_CERT"
	EnvClientKey  = "WARDEN_CLIENT_KEY"
)

// Config configures a Client. The zero value of each field has a documented
// default; a Config is copied by New and may be reused afterwards.
type Config struct {
	// Address is the server's base URL, "https://host:port". Empty: DefaultAddress.
	Address string
	// Token is sent as "Authorization: Bearer <token>" when not empty.
	Token string
	// CACertFile is a PEM file of CA certificates. When it (or CACertPEM) is
	// set, only these CAs are trusted; otherwise the system roots are used.
	CACertFile string
	// CACertPEM is like CACertFile but in memory; both may be given.
	CACertPEM []byte
	// ClientCertFile and ClientKeyFile are a PEM certificate and key for
	// mutual TLS; give both or neither. They are read again when they
	// change (a renewal replaces them), as KeyPair does.
	ClientCertFile, ClientKeyFile string
	// Timeout bounds each request. Zero: DefaultTimeout (or, with
	// HTTPClient, that client's own Timeout); negative: no limit beyond the
	// caller's context.
	Timeout time.Duration
	// HTTPClient, when not nil, is used instead of a client built from the
	// TLS fields above: its transport decides TLS settings, trust and
	// connection reuse, so the TLS 1.2 minimum is the caller's to keep. New
	// works on a copy (the caller's value is not modified) whose
	// CheckRedirect refuses every redirect, like the default client's.
	// Giving HTTPClient together with CACertFile, CACertPEM, ClientCertFile
	// or ClientKeyFile is an error, since those would be silently ignored.
	// The address must still be https.
	HTTPClient *http.Client
}

// ConfigFromEnv returns a Config from WARDEN_ADDR (default DefaultAddress),
// WARDEN_TOKEN, WARDEN_CACERT, WARDEN_CLIENT_CERT and WARDEN_CLIENT_KEY.
func ConfigFromEnv() Config {
	return configFrom(os.Getenv)
}

func configFrom(getenv func(string) string) Config {
	cfg := Config{
		Address:        getenv(EnvAddress),
		Token:          getenv(EnvToken),
		CACertFile:     getenv(EnvCACert),
		ClientCertFile: getenv(EnvClientCert),
		ClientKeyFile:  getenv(EnvClientKey),
	}
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	return cfg
}

// Client is a Warden API client. It is safe for concurrent use. Unless
// Config.HTTPClient is given it owns one http.Transport, so that its requests
// reuse kept-alive connections; CloseIdleConnections releases them.
type Client struct {
	base string // "https://host:port" plus any path prefix, no trailing slash
	http *http.Client

	mu    sync.RWMutex
	token string

	// noRetry: a 429 is returned at once, not waited out (the logins:
	// under the server's backoff the wait is the answer).
	noRetry bool
}

// ErrInsecureAddress is returned by New for an address that is not https.
var ErrInsecureAddress = errors.New("warden: address must use https")

// New returns a Client for cfg. It fails if the address is not an https URL,
// a CA file cannot be read or holds no certificate, or a client key pair
// cannot be loaded.
func New(cfg Config) (*Client, error) {
	addr := cfg.Address
	if addr == "" {
		addr = DefaultAddress
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("warden: address %q: %w", addr, err)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("%w (got %q): Warden serves TLS only", ErrInsecureAddress, addr)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("warden: address %q: want https://host:port", addr)
	}
	base := strings.TrimRight(u.String(), "/")
	if cfg.HTTPClient != nil {
		if cfg.CACertFile != "" || len(cfg.CACertPEM) > 0 || cfg.ClientCertFile != "" || cfg.ClientKeyFile != "" {
			return nil, errors.New("warden: give either HTTPClient or the CA and client certificate settings, not both")
		}
		hc := *cfg.HTTPClient
		hc.CheckRedirect = refuseRedirect
		switch {
		case cfg.Timeout > 0:
			hc.Timeout = cfg.Timeout
		case cfg.Timeout < 0:
			hc.Timeout = 0
		}
		return &Client{base: base, http: &hc, token: cfg.Token}, nil
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACertFile != "" || len(cfg.CACertPEM) > 0 {
		pool := x509.NewCertPool()
		if cfg.CACertFile != "" {
			pem, err := os.ReadFile(cfg.CACertFile)
			if err != nil {
				return nil, fmt.Errorf("warden: CA certificate: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("warden: CA certificate %s: no PEM certificate found", cfg.CACertFile)
			}
		}
		if len(cfg.CACertPEM) > 0 && !pool.AppendCertsFromPEM(cfg.CACertPEM) {
			return nil, errors.New("warden: CACertPEM: no PEM certificate found")
		}
		tlsCfg.RootCAs = pool
	}
	switch {
	case cfg.ClientCertFile != "" && cfg.ClientKeyFile != "":
		// Read again at a handshake after the files change: an agent's
		// renewal replaces them while its clients live on.
		kp := &KeyPair{CertFile: cfg.ClientCertFile, KeyFile: cfg.ClientKeyFile}
		if _, err := kp.Certificate(); err != nil {
			return nil, fmt.Errorf("warden: client certificate: %w", err)
		}
		tlsCfg.GetClientCertificate = kp.GetClientCertificate
	case cfg.ClientCertFile != "" || cfg.ClientKeyFile != "":
		return nil, errors.New("warden: client certificate and client key must be given together")
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	timeout := cfg.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultTimeout
	case timeout < 0:
		timeout = 0
	}
	hc := &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: refuseRedirect}
	return &Client{base: base, http: hc, token: cfg.Token}, nil
}

// refuseRedirect makes an http.Client return a redirect response as it is
// (an APIError for the caller) instead of following it: a redirect could
// carry the token to another server.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Address returns the base URL the Client talks to.
func (c *Client) Address() string { return c.base }

// SetToken sets the token sent with later requests; "" sends none.
func (c *Client) SetToken(token string) {
	c.mu.Lock()
	c.token = token
	c.mu.Unlock()
}

// Token returns the token the Client sends.
func (c *Client) Token() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.token
}

// CloseIdleConnections closes the idle connections of the Client's transport.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// APIError is a non-2xx response from the server.
type APIError struct {
	StatusCode int      // HTTP status
	Errors     []string // the server's messages, from {"errors": [...]}; may be empty
}

// Error returns one line: "warden: 409 Conflict: msg1; msg2".
func (e *APIError) Error() string {
	s := fmt.Sprintf("warden: %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if len(e.Errors) > 0 {
		s += ": " + strings.Join(e.Errors, "; ")
	}
	return oneLine(s)
}

// RateLimitError is a 429 answer (Too Many Requests) that the Client
// returns: one a login got during the server's backoff after failed
// logins (the login calls do not retry), or the last of
// MaxRateLimitRetries retries of another call. It unwraps to its
// *APIError, so IsStatus(err, 429) holds.
type RateLimitError struct {
	*APIError
	// RetryAfter is the server's Retry-After: how long to wait before
	// trying again; 0 when the answer had none.
	RetryAfter time.Duration
}

// Unwrap returns the *APIError.
func (e *RateLimitError) Unwrap() error { return e.APIError }

// IsStatus reports whether err is (or wraps) an *APIError with the given status.
func IsStatus(err error, code int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == code
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// escapePath escapes each "/"-separated segment of p; leading and trailing
// slashes are dropped.
func escapePath(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return ""
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// do sends a request and decodes a 2xx JSON body into out (when out is not
// nil). Statuses in also are treated like 2xx for decoding. It returns the
// status code.
func (c *Client) do(ctx context.Context, method, path string, in, out any, also ...int) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("warden: %s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	ct := ""
	if in != nil {
		ct = "application/json"
	}
	resp, token, err := c.send(ctx, method, path, body, ct)
	if err != nil {
		return 0, err
	}
	defer func() {
		// Drain a little so that the connection can be reused; a body
		// that is still longer is cut off by closing the connection.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainBytes))
		resp.Body.Close()
	}()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("warden: %s %s: read response: %w", method, path, redact(err, token))
	}
	if len(data) > MaxResponseBytes {
		return resp.StatusCode, fmt.Errorf("warden: %s %s: response larger than %d bytes", method, path, MaxResponseBytes)
	}
	if resp.StatusCode == http.StatusAccepted {
		// Held for approval (dual control): nothing was done yet.
		return resp.StatusCode, heldError(method, path, data)
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	for _, code := range also {
		ok = ok || resp.StatusCode == code
	}
	if !ok {
		ae := apiError(resp.StatusCode, data, token)
		if resp.StatusCode == http.StatusTooManyRequests {
			return resp.StatusCode, &RateLimitError{APIError: ae, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
		}
		return resp.StatusCode, ae
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return resp.StatusCode, nil
	}
	if raw, ok := out.(*[]byte); ok { // text responses (the audit checkpoint)
		*raw = data
		return resp.StatusCode, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("warden: %s %s: decode %d response: %w", method, path, resp.StatusCode, err)
	}
	return resp.StatusCode, nil
}

// send sends one request with the client's token and returns the response
// and the token it sent (for redaction).
func (c *Client) send(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, "", fmt.Errorf("warden: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	token := c.Token()
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if id := approvedRequest(ctx); id != "" {
		req.Header.Set(HeaderApprovedRequest, id)
	}
	for attempt := 1; ; attempt++ {
		resp, err := c.http.Do(req)
		if err != nil {
			// A *url.Error repeats method and URL; keep its cause only.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, token, fmt.Errorf("warden: %s %s: %w", method, path, redact(err, token))
		}
		wait, ok := retryAfter(resp, attempt)
		if !ok || c.noRetry || (body != nil && req.GetBody == nil) {
			return resp, token, nil
		}
		// 429: the server refused before doing anything (rate limit), so
		// any request may be sent again, after the wait it asks for.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) //nolint:errcheck // drained only to reuse the connection
		resp.Body.Close()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, token, fmt.Errorf("warden: %s %s: rate limited: %w", method, path, ctx.Err())
		case <-t.C:
		}
		if req.GetBody != nil {
			if req.Body, err = req.GetBody(); err != nil {
				return nil, token, fmt.Errorf("warden: %s %s: %w", method, path, err)
			}
		}
	}
}

// MaxRateLimitRetries bounds how often a request refused with 429 (rate
// limited) is sent again.
const MaxRateLimitRetries = 8

// retryAfter says whether resp is a 429 to retry and how long to wait
// first: the server's Retry-After (seconds, at most 10), or 1s.
func retryAfter(resp *http.Response, attempt int) (time.Duration, bool) {
	if resp.StatusCode != http.StatusTooManyRequests || attempt > MaxRateLimitRetries {
		return 0, false
	}
	wait := time.Second
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		wait = time.Duration(min(s, 10)) * time.Second
	}
	return wait, true
}

// parseRetryAfter reads a Retry-After header (RFC 9110 10.2.3): seconds,
// or an HTTP date, taken relative to now. It returns 0 for none, a
// malformed one, or a date already past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}

// apiError decodes an error response body ({"errors": [...]}), with the
// token redacted from the messages.
func apiError(status int, data []byte, token string) *APIError {
	ae := &APIError{StatusCode: status}
	var eb struct {
		Errors []string `json:"errors"`
	}
	if json.Unmarshal(data, &eb) == nil {
		for _, m := range eb.Errors {
			if token != "" {
				m = strings.ReplaceAll(m, token, "[redacted]")
			}
			ae.Errors = append(ae.Errors, oneLine(m))
		}
	}
	return ae
}

// redact replaces the token in an error's text. Errors from net/http do not
// normally contain header values; this is defence in depth, and the redacted
// error deliberately does not unwrap to the original.
func redact(err error, token string) error {
	if token == "" || !strings.Contains(err.Error(), token) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), token, "[redacted]"))
}
