package client

import (
	"context"
	"net/http"
	"net/url"
)

// Incident groups alerts and decisions with a timeline whose items are
// proven by the audit log (docs/response.md, "Incidents and reports").
// Every field but ID and Timeline sums up the timeline. Alerts, Decisions,
// Hosts and Rules are the ids of the alert and decision items, and the
// hosts and rules of the alert items, in timeline order.
type Incident struct {
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Status      string   `json:"status"` // new, triaged, contained, resolved, closed
	Severity    string   `json:"severity"`
	Assignee    string   `json:"assignee"`
	Alerts      []string `json:"alerts"`
	Decisions   []string `json:"decisions"`
	Hosts       []string `json:"hosts"`
	Rules       []string `json:"rules"`
	CreatedBy   string   `json:"created_by"`
	CreatedTime string   `json:"created_time"`
	UpdatedTime string   `json:"updated_time"`
	// Version is the Raft index of the last change (0, and omitted, in a
	// report, which proves leaf indexes instead).
	Version  uint64         `json:"version,omitempty"`
	Timeline []IncidentItem `json:"timeline,omitempty"`
}

// IncidentItem is one entry of an incident's timeline. Status is the
// incident's status after the item; Salt is random; RaftIndex is the index
// of the Raft command that added it (0, and omitted, while pending and in
// a report).
type IncidentItem struct {
	Incident  string `json:"incident"`
	Seq       uint64 `json:"seq"`
	Time      string `json:"time"`
	Actor     string `json:"actor"`
	Kind      string `json:"kind"` // created, alert, decision, status, comment, assign, severity
	Ref       string `json:"ref"`
	Text      string `json:"text"`
	Host      string `json:"host"`
	Rule      string `json:"rule"`
	Status    string `json:"status"`
	Salt      string `json:"salt"`
	RaftIndex uint64 `json:"raft_index,omitempty"`
}

// IncidentCreate is an incident opened by hand; only Title is required
// (Severity defaults to medium).
type IncidentCreate struct {
	Title     string   `json:"title"`
	Severity  string   `json:"severity,omitempty"`
	Assignee  string   `json:"assignee,omitempty"`
	Comment   string   `json:"comment,omitempty"`
	Alerts    []string `json:"alerts,omitempty"`
	Decisions []string `json:"decisions,omitempty"`
}

// IncidentUpdate changes an incident; nil fields stay as they are.
type IncidentUpdate struct {
	Status    *string  `json:"status,omitempty"`
	Severity  *string  `json:"severity,omitempty"`
	Assignee  *string  `json:"assignee,omitempty"`
	Comment   string   `json:"comment,omitempty"`
	Alerts    []string `json:"alerts,omitempty"`
	Decisions []string `json:"decisions,omitempty"`
}

// IncidentCreate opens an incident.
func (c *Client) IncidentCreate(ctx context.Context, in IncidentCreate) (Incident, error) {
	var out Incident
	_, err := c.do(ctx, http.MethodPost, "/v1/incidents", in, &out)
	return out, err
}

// IncidentList returns the incidents (without timelines), newest first;
// status and severity are comma-separated filters ("" for all).
func (c *Client) IncidentList(ctx context.Context, status, severity string) ([]Incident, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if severity != "" {
		q.Set("severity", severity)
	}
	path := "/v1/incidents"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Incidents []Incident `json:"incidents"`
	}
	_, err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Incidents, err
}

// IncidentGet returns incident id with its timeline.
func (c *Client) IncidentGet(ctx context.Context, id string) (Incident, error) {
	var out Incident
	_, err := c.do(ctx, http.MethodGet, "/v1/incidents/"+url.PathEscape(id), nil, &out)
	return out, err
}

// IncidentUpdate changes incident id.
func (c *Client) IncidentUpdate(ctx context.Context, id string, in IncidentUpdate) (Incident, error) {
	var out Incident
	_, err := c.do(ctx, http.MethodPost, "/v1/incidents/"+url.PathEscape(id), in, &out)
	return out, err
}

// IncidentComment adds a comment to incident id.
func (c *Client) IncidentComment(ctx context.Context, id, comment string) (Incident, error) {
	var out Incident
	_, err := c.do(ctx, http.MethodPost, "/v1/incidents/"+url.PathEscape(id)+"/comments", map[string]string{"comment": comment}, &out)
	return out, err
}

// IncidentClose closes incident id, with an optional comment.
func (c *Client) IncidentClose(ctx context.Context, id, comment string) (Incident, error) {
	var out Incident
	_, err := c.do(ctx, http.MethodPost, "/v1/incidents/"+url.PathEscape(id)+"/close", map[string]string{"comment": comment}, &out)
	return out, err
}

// IncidentReport returns the report of incident id in format "json" or
// "md", as the server wrote it (verify it offline with warden incident
// verify).
func (c *Client) IncidentReport(ctx context.Context, id, format string) ([]byte, error) {
	var out []byte
	_, err := c.do(ctx, http.MethodGet, "/v1/incidents/"+url.PathEscape(id)+"/report?format="+url.QueryEscape(format), nil, &out)
	return out, err
}
