package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// Dual control (docs/governance.md): operations held for approval.

// HeaderApprovedRequest names the approved request a re-sent operation runs
// as (see WithApprovedRequest).
const HeaderApprovedRequest = "X-Warden-Approved-Request"

// ApprovalRequiredError is the result of a request the server held for
// approval (202): nothing was done yet. The request runs once approved,
// with RequestRun or by sending it again with WithApprovedRequest. It is
// returned as an error so that no caller mistakes it for a success; a CLI
// reports it and exits 0.
type ApprovalRequiredError struct {
	RequestID string        `json:"request_id"`
	Required  int           `json:"required"`
	Approvals []RequestVote `json:"approvals"`
	ExpiresAt string        `json:"expires_at"`
}

// Error says what to do: "approval required: request ID (0 of 2
// approvals), expires T".
func (e *ApprovalRequiredError) Error() string {
	return fmt.Sprintf("approval required: request %s (%d of %d approvals), expires %s",
		e.RequestID, len(e.Approvals), e.Required, e.ExpiresAt)
}

// heldError decodes the body of a 202.
func heldError(method, path string, data []byte) error {
	var e ApprovalRequiredError
	if err := json.Unmarshal(data, &e); err != nil || e.RequestID == "" {
		return fmt.Errorf("warden: %s %s: 202 without a request id: %q", method, path, truncate(data, 200))
	}
	return &e
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

type approvedKey struct{}

// WithApprovedRequest returns ctx with which a request is sent with the
// header X-Warden-Approved-Request: id, to run it as that approved request
// (the same operation, with the same body, by its requester).
func WithApprovedRequest(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, approvedKey{}, id)
}

func approvedRequest(ctx context.Context) string {
	id, _ := ctx.Value(approvedKey{}).(string)
	return id
}

// RequestRule is an approval rule that applied to a request.
type RequestRule struct {
	Policy    string `json:"policy"`
	Approvals int    `json:"approvals"`
	Approvers string `json:"approvers"`
}

// RequestVote is an approval or a denial.
type RequestVote struct {
	Principal string   `json:"principal"`
	Time      string   `json:"time"`
	Comment   string   `json:"comment,omitempty"`
	Groups    []string `json:"groups,omitempty"`
}

// RequestOutcome is what an approved request's run answered.
type RequestOutcome struct {
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
	Time   string `json:"time"`
}

// Request is a request held for approval.
type Request struct {
	ID         string          `json:"id"`
	Status     string          `json:"status"` // pending, approved, denied, cancelled, expired, run
	Requester  string          `json:"requester"`
	Accessor   string          `json:"accessor,omitempty"`
	Action     string          `json:"action"`
	Resource   string          `json:"resource"`
	Method     string          `json:"method"`
	Path       string          `json:"path"`
	Query      string          `json:"query,omitempty"`
	BodySHA256 string          `json:"body_sha256"`
	BodySize   int64           `json:"body_size"`
	BodyStored bool            `json:"body_stored"`
	Rules      []RequestRule   `json:"rules"`
	Required   int             `json:"required"`
	Approvals  []RequestVote   `json:"approvals"`
	Denials    []RequestVote   `json:"denials"`
	CreatedAt  string          `json:"created_at"`
	ExpiresAt  string          `json:"expires_at"`
	FinishedAt string          `json:"finished_at,omitempty"`
	FinishedBy string          `json:"finished_by,omitempty"`
	Outcome    *RequestOutcome `json:"outcome,omitempty"`
}

// Requests lists the requests, newest first; pending keeps the open ones.
func (c *Client) Requests(ctx context.Context, pending bool) ([]Request, error) {
	path := "/v1/requests"
	if pending {
		path += "?pending=true"
	}
	var out struct {
		Requests []Request `json:"requests"`
	}
	_, err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Requests, err
}

// Request returns request id.
func (c *Client) Request(ctx context.Context, id string) (Request, error) {
	var out Request
	_, err := c.do(ctx, http.MethodGet, "/v1/requests/"+url.PathEscape(id), nil, &out)
	return out, err
}

type voteBody struct {
	Comment string `json:"comment,omitempty"`
}

// RequestApprove approves request id and returns it.
func (c *Client) RequestApprove(ctx context.Context, id, comment string) (Request, error) {
	var out Request
	_, err := c.do(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/approve", voteBody{comment}, &out)
	return out, err
}

// RequestDeny denies request id, which closes it, and returns it.
func (c *Client) RequestDeny(ctx context.Context, id, comment string) (Request, error) {
	var out Request
	_, err := c.do(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/deny", voteBody{comment}, &out)
	return out, err
}

// RequestCancel cancels request id and returns it.
func (c *Client) RequestCancel(ctx context.Context, id string) (Request, error) {
	var out Request
	_, err := c.do(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/cancel", nil, &out)
	return out, err
}

// RunResult is the answer of an approved request's run: the operation's
// own status and body.
type RunResult struct {
	Status int
	Body   []byte
}

// RequestRun runs approved request id, whose body the server stored: the
// answer is the operation's own (an error status is an *APIError).
func (c *Client) RequestRun(ctx context.Context, id string) (RunResult, error) {
	var body []byte
	status, err := c.do(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/run", nil, &body)
	return RunResult{Status: status, Body: body}, err
}

// DualControl turns dual control on or off (with it on, the default rule
// holds this for approval: an *ApprovalRequiredError).
func (c *Client) DualControl(ctx context.Context, enabled bool) error {
	_, err := c.do(ctx, http.MethodPut, "/v1/sys/dual-control", map[string]bool{"enabled": enabled}, nil)
	return err
}
