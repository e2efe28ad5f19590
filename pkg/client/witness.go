package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// AuditCheckpointCosigned returns the signed checkpoint with the C2SP
// cosignature lines of the witnesses that cosigned it, once at least want
// did (GET /v1/audit/checkpoint?witnesses=want). The server waits a
// bounded time; short of want it answers 503 naming the witnesses that
// refused and why (an *APIError).
func (c *Client) AuditCheckpointCosigned(ctx context.Context, want int) ([]byte, error) {
	var out []byte
	_, err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/audit/checkpoint?witnesses=%d", want), nil, &out)
	return out, err
}

// AuditWitnessStatus is what the serving node last heard from a witness.
type AuditWitnessStatus struct {
	Size     uint64    `json:"size,omitempty"`
	Cosigned time.Time `json:"cosigned,omitzero"`
	Error    string    `json:"error,omitempty"`
	At       time.Time `json:"at,omitzero"`
}

// AuditServerWitness is a server node's witness. Member: its node is in
// the cluster's configuration.
type AuditServerWitness struct {
	Node        string              `json:"node"`
	VerifierKey string              `json:"verifier_key"`
	Registered  time.Time           `json:"registered"`
	Member      bool                `json:"member"`
	Status      *AuditWitnessStatus `json:"status,omitempty"`
}

// AuditExternalWitness is a witness outside the cluster.
type AuditExternalWitness struct {
	Name        string              `json:"name"`
	URL         string              `json:"url"`
	VerifierKey string              `json:"verifier_key"`
	CACert      string              `json:"ca_cert,omitempty"`
	Added       time.Time           `json:"added"`
	Status      *AuditWitnessStatus `json:"status,omitempty"`
}

// AuditWitnesses lists the audit log's witnesses.
type AuditWitnesses struct {
	Servers  []AuditServerWitness   `json:"servers"`
	External []AuditExternalWitness `json:"external"`
}

// AuditWitnesses lists the server and external witnesses
// (GET /v1/audit/witnesses, action audit.read).
func (c *Client) AuditWitnesses(ctx context.Context) (*AuditWitnesses, error) {
	var out AuditWitnesses
	if _, err := c.do(ctx, http.MethodGet, "/v1/audit/witnesses", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AuditWitnessAddRequest adds an external witness: URL is its tlog-witness
// submission prefix (https), VerifierKey its note verifier key, CACert an
// optional PEM CA its certificate chains to.
type AuditWitnessAddRequest struct {
	Name        string `json:"name"`
	URL         string `json:"url"`
	VerifierKey string `json:"verifier_key"`
	CACert      string `json:"ca_cert,omitempty"`
}

// AuditWitnessAdd adds an external witness (POST /v1/audit/witnesses,
// action audit.witness.write).
func (c *Client) AuditWitnessAdd(ctx context.Context, r AuditWitnessAddRequest) (*AuditExternalWitness, error) {
	var out AuditExternalWitness
	if _, err := c.do(ctx, http.MethodPost, "/v1/audit/witnesses", r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AuditWitnessRemove removes an external witness (DELETE
// /v1/audit/witnesses/{name}, action audit.witness.write).
func (c *Client) AuditWitnessRemove(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/audit/witnesses/"+url.PathEscape(name), nil, nil)
	return err
}
