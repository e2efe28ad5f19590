package client

import (
	"context"
	"net/http"
	"net/url"
)

// NodeTokenRequest creates a pending node and its one-time join token.
type NodeTokenRequest struct {
	Name    string `json:"name"`
	Zone    string `json:"zone,omitempty"`
	TTL     string `json:"ttl,omitempty"`      // join token lifetime, default 15m
	CertTTL string `json:"cert_ttl,omitempty"` // certificate lifetime, default 1h
}

// NodeToken is a join token (a secret: hand it to the node only).
type NodeToken struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
}

// NodeTokenCreate creates a join token.
func (c *Client) NodeTokenCreate(ctx context.Context, req NodeTokenRequest) (NodeToken, error) {
	var out NodeToken
	_, err := c.do(ctx, http.MethodPost, "/v1/nodes/tokens", req, &out)
	return out, err
}

// NodeRevoke revokes a node and its certificates.
func (c *Client) NodeRevoke(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(name)+"/revoke", nil, nil)
	return err
}

// TrustBundle returns the cluster's CA bundle (PEM).
func (c *Client) TrustBundle(ctx context.Context) ([]byte, error) {
	var out []byte
	_, err := c.do(ctx, http.MethodGet, "/v1/pki/ca", nil, &out)
	return out, err
}

// CRL returns the issuing CA's current certificate revocation list (DER).
// It is public: relying parties fetch it without credentials. The caller
// must check its signature against the trust bundle before using it.
func (c *Client) CRL(ctx context.Context) ([]byte, error) {
	var out []byte
	_, err := c.do(ctx, http.MethodGet, "/v1/pki/crl", nil, &out)
	return out, err
}

// Enrollment is the answer to an enrollment.
type Enrollment struct {
	Certificate string `json:"certificate"` // PEM chain: the node's certificate, then the intermediate
	Bundle      string `json:"bundle"`      // PEM: root and intermediate
	SPIFFEID    string `json:"spiffe_id"`
	Serial      string `json:"serial"`
	ExpiresAt   string `json:"expires_at"`
}

// Enroll exchanges a one-time join token and a PEM CSR for a certificate.
// The name may be empty: the token names the node. addrs are the node's
// IP addresses (at most 32; optional), shown by node show and dropped by
// other agents while the node is quarantined.
func (c *Client) Enroll(ctx context.Context, name, joinToken string, csrPEM []byte, addrs ...string) (Enrollment, error) {
	var out Enrollment
	_, err := c.do(ctx, http.MethodPost, "/v1/pki/enroll", struct {
		Name      string   `json:"name"`
		Token     string   `json:"token"`
		CSR       string   `json:"csr"`
		Addresses []string `json:"addresses,omitempty"`
	}{name, joinToken, string(csrPEM), addrs}, &out)
	return out, err
}

// Renew asks for a new certificate for the CSR's key; the Client must
// present the node's current certificate (ClientCertFile/ClientKeyFile).
// addrs, if any, replace the addresses the node reported.
func (c *Client) Renew(ctx context.Context, csrPEM []byte, addrs ...string) (Enrollment, error) {
	var out Enrollment
	_, err := c.do(ctx, http.MethodPost, "/v1/pki/renew", struct {
		CSR       string   `json:"csr"`
		Addresses []string `json:"addresses,omitempty"`
	}{string(csrPEM), addrs}, &out)
	return out, err
}

// Reenroll asks for a new certificate after the node's certificate expired
// (renewal over mutual TLS is then impossible): certPEM is the expired
// certificate (its chain may follow) and csrPEM a CSR signed by the same
// key, the proof of possession. The Client needs no client certificate.
func (c *Client) Reenroll(ctx context.Context, certPEM, csrPEM []byte) (Enrollment, error) {
	var out Enrollment
	_, err := c.do(ctx, http.MethodPost, "/v1/pki/reenroll", map[string]string{"certificate": string(certPEM), "csr": string(csrPEM)}, &out)
	return out, err
}

// Node is a node as GET /v1/nodes shows it.
type Node struct {
	Name         string `json:"name"`
	Zone         string `json:"zone"`
	SPIFFEID     string `json:"spiffe_id"`
	State        string `json:"state"` // pending, active or revoked
	CertTTL      string `json:"cert_ttl"`
	Serial       string `json:"serial,omitempty"`        // the latest certificate's, hex
	NotAfter     string `json:"not_after,omitempty"`     // the latest certificate's expiry
	TokenExpires string `json:"token_expires,omitempty"` // pending nodes: the join token's expiry
	// Addresses are the IP addresses the node reported at enrollment and
	// renewal.
	Addresses   []string `json:"addresses,omitempty"`
	CreatedTime string   `json:"created_time"`
	UpdatedTime string   `json:"updated_time"`
}

// NodeList lists every node, reading the server's pages (GET /v1/nodes
// with limit and cursor) until the last.
func (c *Client) NodeList(ctx context.Context) ([]Node, error) {
	var all []Node
	cursor := ""
	for {
		q := url.Values{"limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var out struct {
			Nodes []Node `json:"nodes"`
			Next  string `json:"next"`
		}
		if _, err := c.do(ctx, http.MethodGet, "/v1/nodes?"+q.Encode(), nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Nodes...)
		if out.Next == "" || out.Next == cursor {
			return all, nil
		}
		cursor = out.Next
	}
}

// NodeRead returns one node.
func (c *Client) NodeRead(ctx context.Context, name string) (Node, error) {
	var out Node
	_, err := c.do(ctx, http.MethodGet, "/v1/nodes/"+url.PathEscape(name), nil, &out)
	return out, err
}

// Certificate is an issued certificate as GET /v1/pki/certs lists it.
type Certificate struct {
	Serial    string `json:"serial"`
	Name      string `json:"name"`
	SPIFFEID  string `json:"spiffe_id"`
	NotBefore string `json:"not_before"`
	NotAfter  string `json:"not_after"`
	State     string `json:"state"` // valid, expired or revoked
	RevokedAt string `json:"revoked_at,omitempty"`
}

// CertList lists issued certificates. state is "" (all), "issued",
// "expiring" or "revoked"; within (a Go duration, default 24h) is the
// window of "expiring".
func (c *Client) CertList(ctx context.Context, state, within string) ([]Certificate, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if within != "" {
		q.Set("within", within)
	}
	path := "/v1/pki/certs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Certificates []Certificate `json:"certificates"`
	}
	_, err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Certificates, err
}
