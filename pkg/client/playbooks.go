package client

import (
	"context"
	"net/http"
	"net/url"
)

// Playbook is a stored playbook (docs/response.md "Playbooks"). YAML is
// set by PlaybookGet only. Owner is the principal that put it: the
// responder acts on its authority, and the decisions it leaves pending
// need another principal's approval.
type Playbook struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Mode        string `json:"mode"` // "enforce" or "simulate"
	Enabled     bool   `json:"enabled"`
	Owner       string `json:"owner"`
	Version     uint64 `json:"version"`
	CreatedTime string `json:"created_time"`
	UpdatedTime string `json:"updated_time"`
	YAML        string `json:"yaml,omitempty"`
}

// PlaybookPut stores a playbook's YAML as the next version of the
// playbook it names, owned by the caller. A playbook that does not parse,
// or names a notifier that does not exist, is an *APIError 400 naming the
// YAML line and the field.
func (c *Client) PlaybookPut(ctx context.Context, yaml []byte) (Playbook, error) {
	var out Playbook
	_, err := c.do(ctx, http.MethodPost, "/v1/playbooks", map[string]string{"yaml": string(yaml)}, &out)
	return out, err
}

// PlaybookPutBuiltin stores Warden's built-in playbook (SSH brute force:
// ban the source for an hour and open an incident), owned by the caller.
func (c *Client) PlaybookPutBuiltin(ctx context.Context) (Playbook, error) {
	var out Playbook
	_, err := c.do(ctx, http.MethodPost, "/v1/playbooks?builtin=true", nil, &out)
	return out, err
}

// PlaybookList returns the stored playbooks (without YAML), by name.
func (c *Client) PlaybookList(ctx context.Context) ([]Playbook, error) {
	var out struct {
		Playbooks []Playbook `json:"playbooks"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/playbooks", nil, &out)
	return out.Playbooks, err
}

// PlaybookGet returns playbook name with its YAML.
func (c *Client) PlaybookGet(ctx context.Context, name string) (Playbook, error) {
	var out Playbook
	_, err := c.do(ctx, http.MethodGet, "/v1/playbooks/"+url.PathEscape(name), nil, &out)
	return out, err
}

// PlaybookDelete deletes playbook name.
func (c *Client) PlaybookDelete(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/playbooks/"+url.PathEscape(name), nil, nil)
	return err
}

// DecisionApprove activates decision id, which a playbook left pending
// approval; the caller must not be the playbook's owner (403).
func (c *Client) DecisionApprove(ctx context.Context, id string) (DecisionRecord, error) {
	var out DecisionRecord
	_, err := c.do(ctx, http.MethodPost, "/v1/decisions/"+url.PathEscape(id)+"/approve", nil, &out)
	return out, err
}
