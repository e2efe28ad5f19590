package client

import (
	"context"
	"net/http"
	"net/url"
)

// DecisionInput asks for a decision (POST /v1/decisions): a ban of exactly
// one of Target.IP, Target.CIDR, Target.User, or the quarantine of
// Target.Node, for Duration (a Go duration such as "4h"; repeat offenders'
// bans last longer).
type DecisionInput struct {
	Type      string         `json:"type"`
	Target    DecisionTarget `json:"target"`
	Duration  string         `json:"duration"`
	Zone      string         `json:"zone,omitempty"`
	Reason    string         `json:"reason,omitempty"`
	Simulated bool           `json:"simulated,omitempty"`
	AlertID   string         `json:"alert_id,omitempty"`
}

// DecisionAdd stores a decision and returns it as stored. Bad input is an
// *APIError 400 naming the field; a target on the never-block list or a
// server's address is a 409 naming the entry it hits.
func (c *Client) DecisionAdd(ctx context.Context, in DecisionInput) (DecisionRecord, error) {
	var out DecisionRecord
	_, err := c.do(ctx, http.MethodPost, "/v1/decisions", in, &out)
	return out, err
}

// DecisionList returns the stored decisions, newest first; with active,
// only those in force (not expired, not pending approval).
func (c *Client) DecisionList(ctx context.Context, active bool) ([]DecisionRecord, error) {
	path := "/v1/decisions"
	if active {
		path += "?active=true"
	}
	var out struct {
		Decisions []DecisionRecord `json:"decisions"`
	}
	_, err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Decisions, err
}

// DecisionGet returns decision id.
func (c *Client) DecisionGet(ctx context.Context, id string) (DecisionRecord, error) {
	var out DecisionRecord
	_, err := c.do(ctx, http.MethodGet, "/v1/decisions/"+url.PathEscape(id), nil, &out)
	return out, err
}

// DecisionDelete lifts decision id everywhere.
func (c *Client) DecisionDelete(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/decisions/"+url.PathEscape(id), nil, nil)
	return err
}

// AllowInput adds an entry to the never-block list: a range or single
// address (CIDR), or a node, exactly one.
type AllowInput struct {
	CIDR   string `json:"cidr,omitempty"`
	Node   string `json:"node,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// AllowAdd adds an entry to the never-block list.
func (c *Client) AllowAdd(ctx context.Context, in AllowInput) (AllowEntry, error) {
	var out AllowEntry
	_, err := c.do(ctx, http.MethodPost, "/v1/decisions/allow", in, &out)
	return out, err
}

// AllowList returns the never-block list.
func (c *Client) AllowList(ctx context.Context) ([]AllowEntry, error) {
	var out struct {
		Entries []AllowEntry `json:"entries"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/decisions/allow", nil, &out)
	return out.Entries, err
}

// AllowDelete removes entry id from the never-block list.
func (c *Client) AllowDelete(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/decisions/allow/"+url.PathEscape(id), nil, nil)
	return err
}
