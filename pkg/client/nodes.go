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
// The name may be empty: the token names the node.
func (c *Client) Enroll(ctx context.Context, name, joinToken string, csrPEM []byte) (Enrollment, error) {
	var out Enrollment
	_, err := c.do(ctx, http.MethodPost, "/v1/pki/enroll", map[string]string{"name": name, "token": joinToken, "csr": string(csrPEM)}, &out)
	return out, err
}

// Renew asks for a new certificate for the CSR's key; the Client must
// present the node's current certificate (ClientCertFile/ClientKeyFile).
func (c *Client) Renew(ctx context.Context, csrPEM []byte) (Enrollment, error) {
	var out Enrollment
	_, err := c.do(ctx, http.MethodPost, "/v1/pki/renew", map[string]string{"csr": string(csrPEM)}, &out)
	return out, err
}
