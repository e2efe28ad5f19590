package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// Policy is a stored policy document.
type Policy struct {
	Store       string `json:"store"`
	Name        string `json:"name"`
	Text        string `json:"policy"`
	CreatedTime string `json:"created_time"`
	UpdatedTime string `json:"updated_time"`
	Version     uint64 `json:"version"`
}

// CheckRequest asks a policy store one question. Principal, Action and
// Resource are entity UIDs in Cedar's text form, e.g. User::"bob". Context
// is a JSON object and Entities a Cedar JSON entity array; both optional.
type CheckRequest struct {
	Principal string          `json:"principal"`
	Action    string          `json:"action"`
	Resource  string          `json:"resource"`
	Context   json.RawMessage `json:"context,omitempty"`
	Entities  json.RawMessage `json:"entities,omitempty"`
}

// Decision is the answer to a CheckRequest: "allow" or "deny", the ids of
// the determining policies, and evaluation errors (which always deny).
type Decision struct {
	Decision string   `json:"decision"`
	Reasons  []string `json:"reasons"`
	Errors   []string `json:"errors"`
}

func storePath(store string) string { return "/v1/authz/stores/" + url.PathEscape(store) }

// StoreList lists the policy stores.
func (c *Client) StoreList(ctx context.Context) ([]string, error) {
	var out struct {
		Stores []string `json:"stores"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/authz/stores", nil, &out)
	return out.Stores, err
}

// StoreCreate creates an empty policy store; 409 APIError if it exists.
func (c *Client) StoreCreate(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/authz/stores", map[string]string{"name": name}, nil)
	return err
}

// StoreDelete deletes a policy store with its policies, schema and entities.
func (c *Client) StoreDelete(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, storePath(name), nil, nil)
	return err
}

// PolicyWrite stores a policy document; an invalid one is a 400 APIError
// whose message is "NAME:LINE:COL: message".
func (c *Client) PolicyWrite(ctx context.Context, store, name, text string) (Policy, error) {
	var out Policy
	_, err := c.do(ctx, http.MethodPut, storePath(store)+"/policies/"+url.PathEscape(name), map[string]string{"policy": text}, &out)
	return out, err
}

// PolicyRead returns a policy document.
func (c *Client) PolicyRead(ctx context.Context, store, name string) (Policy, error) {
	var out Policy
	_, err := c.do(ctx, http.MethodGet, storePath(store)+"/policies/"+url.PathEscape(name), nil, &out)
	return out, err
}

// PolicyList lists the policy names of a store.
func (c *Client) PolicyList(ctx context.Context, store string) ([]string, error) {
	var out struct {
		Policies []string `json:"policies"`
	}
	_, err := c.do(ctx, http.MethodGet, storePath(store)+"/policies", nil, &out)
	return out.Policies, err
}

// PolicyDelete removes a policy document.
func (c *Client) PolicyDelete(ctx context.Context, store, name string) error {
	_, err := c.do(ctx, http.MethodDelete, storePath(store)+"/policies/"+url.PathEscape(name), nil, nil)
	return err
}

// SchemaWrite sets a store's Cedar schema (empty text removes it).
func (c *Client) SchemaWrite(ctx context.Context, store, text string) error {
	_, err := c.do(ctx, http.MethodPut, storePath(store)+"/schema", map[string]string{"schema": text}, nil)
	return err
}

// EntitiesWrite replaces a store's entities with a Cedar JSON entity array
// and returns how many were stored.
func (c *Client) EntitiesWrite(ctx context.Context, store string, entities json.RawMessage) (int, error) {
	var out struct {
		Entities int `json:"entities"`
	}
	_, err := c.do(ctx, http.MethodPut, storePath(store)+"/entities", entities, &out)
	return out.Entities, err
}

// Check asks a store one question.
func (c *Client) Check(ctx context.Context, store string, req CheckRequest) (Decision, error) {
	var out Decision
	_, err := c.do(ctx, http.MethodPost, storePath(store)+"/check", req, &out)
	return out, err
}

// CheckBatch asks a store up to 1,000 questions in one call.
func (c *Client) CheckBatch(ctx context.Context, store string, reqs []CheckRequest) ([]Decision, error) {
	var out struct {
		Results []Decision `json:"results"`
	}
	_, err := c.do(ctx, http.MethodPost, storePath(store)+"/check-batch", map[string]any{"requests": reqs}, &out)
	return out.Results, err
}
