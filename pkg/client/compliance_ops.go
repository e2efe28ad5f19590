package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// The operator's side of compliance (docs/compliance.md): inventories and
// assessment results of nodes, check policies, attestations, status and
// signed reports. The agent's side is in compliance.go.

// NodeInventory is a node's latest inventory as stored.
type NodeInventory struct {
	Node        string          `json:"node"`
	Fingerprint string          `json:"fingerprint"`
	Received    time.Time       `json:"received_time"`
	Inventory   json.RawMessage `json:"inventory"`
}

// NodeInventory reads node's latest inventory.
func (c *Client) NodeInventory(ctx context.Context, node string) (NodeInventory, error) {
	var out NodeInventory
	_, err := c.do(ctx, http.MethodGet, "/v1/nodes/"+url.PathEscape(node)+"/inventory", nil, &out)
	return out, err
}

// InventoryChange is one entry of a node's inventory history.
type InventoryChange struct {
	Time        time.Time       `json:"time"`
	Fingerprint string          `json:"fingerprint"`
	Change      json.RawMessage `json:"change,omitempty"`
}

// NodeInventoryHistory reads node's inventory changes, newest first.
func (c *Client) NodeInventoryHistory(ctx context.Context, node string) ([]InventoryChange, error) {
	var out struct {
		Changes []InventoryChange `json:"changes"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/nodes/"+url.PathEscape(node)+"/inventory/history", nil, &out)
	return out.Changes, err
}

// NodeResults are a node's latest assessment results of one policy.
type NodeResults struct {
	Node     string          `json:"node"`
	Policy   string          `json:"policy"`
	RanAt    time.Time       `json:"ran_at"`
	Received time.Time       `json:"received_time"`
	Results  json.RawMessage `json:"results"`
}

// NodeAssessment reads node's assessment results, one per policy.
func (c *Client) NodeAssessment(ctx context.Context, node string) ([]NodeResults, error) {
	var out struct {
		Results []NodeResults `json:"results"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/nodes/"+url.PathEscape(node)+"/assessment", nil, &out)
	return out.Results, err
}

// CheckPolicy is a check policy the servers send to agents.
type CheckPolicy struct {
	Name    string    `json:"name"`
	Builtin bool      `json:"builtin"`
	Version uint64    `json:"version,omitempty"`
	Updated time.Time `json:"updated_time,omitzero"`
	Checks  int       `json:"checks"`
	YAML    string    `json:"yaml"`
}

// CheckPolicies lists the check policies.
func (c *Client) CheckPolicies(ctx context.Context) ([]CheckPolicy, error) {
	var out struct {
		Policies []CheckPolicy `json:"policies"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/compliance/policies", nil, &out)
	return out.Policies, err
}

// CheckPolicyPut stores a check policy (its YAML).
func (c *Client) CheckPolicyPut(ctx context.Context, name string, yaml []byte) (CheckPolicy, error) {
	var out CheckPolicy
	_, err := c.do(ctx, http.MethodPut, "/v1/compliance/policies/"+url.PathEscape(name), map[string]string{"yaml": string(yaml)}, &out)
	return out, err
}

// CheckPolicyDelete deletes a stored check policy.
func (c *Client) CheckPolicyDelete(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/compliance/policies/"+url.PathEscape(name), nil, nil)
	return err
}

// Attestation is a statement that a manual control is in place.
type Attestation struct {
	ID      string    `json:"id"`
	Control string    `json:"control"`
	Owner   string    `json:"owner"`
	Text    string    `json:"text"`
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created_time"`
	Expires time.Time `json:"expires_time"`
}

// Attest records an attestation of control; expires is "90d", a Go
// duration or an RFC 3339 time.
func (c *Client) Attest(ctx context.Context, control, text, expires string) (Attestation, error) {
	var out Attestation
	_, err := c.do(ctx, http.MethodPost, "/v1/compliance/attestations", map[string]string{"control": control, "text": text, "expires": expires}, &out)
	return out, err
}

// WithdrawAttestation deletes attestation id.
func (c *Client) WithdrawAttestation(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/compliance/attestations/"+url.PathEscape(id), nil, nil)
	return err
}

// Attestations lists attestations (of one control when control is set).
func (c *Client) Attestations(ctx context.Context, control string) ([]Attestation, error) {
	var out struct {
		Attestations []Attestation `json:"attestations"`
	}
	path := "/v1/compliance/attestations"
	if control != "" {
		path += "?control=" + url.QueryEscape(control)
	}
	_, err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Attestations, err
}

// ComplianceStatus returns the evaluation of the live state for framework
// (iso27001 or iec62443-3-3), of one zone when zone is set, as JSON.
func (c *Client) ComplianceStatus(ctx context.Context, framework, zone string) (json.RawMessage, error) {
	var out json.RawMessage
	q := url.Values{"framework": {framework}}
	if zone != "" {
		q.Set("zone", zone)
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/compliance/status?"+q.Encode(), nil, &out)
	return out, err
}

// ComplianceReport asks a server for a signed report (format json or
// html) and returns the document.
func (c *Client) ComplianceReport(ctx context.Context, framework, zone, format string) ([]byte, error) {
	var out []byte
	_, err := c.do(ctx, http.MethodPost, "/v1/compliance/reports", map[string]string{"framework": framework, "zone": zone, "format": format}, &out)
	return out, err
}

// CABundle returns the cluster CA's certificates (PEM): what enrolled
// nodes trust, and what signed documents chain to.
func (c *Client) CABundle(ctx context.Context) ([]byte, error) {
	var out []byte
	_, err := c.do(ctx, http.MethodGet, "/v1/pki/ca", nil, &out)
	return out, err
}
