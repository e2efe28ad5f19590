package client

import (
	"context"
	"net/http"
	"time"

	"github.com/warden-sec/warden/internal/agent/inventory"
	"github.com/warden-sec/warden/internal/compliance/signed"
)

// InventoryStored is the answer to PostInventory.
type InventoryStored struct {
	// Stored is false when the inventory equals the last one stored for
	// the node (same fingerprint): nothing was written.
	Stored      bool   `json:"stored"`
	Fingerprint string `json:"fingerprint"`
}

// PostInventory sends the node's inventory (POST /v1/inventory, mutual
// TLS with the node's certificate; the server takes the node's identity
// from it). The servers store at most one inventory per node a minute: a
// 429 is returned at once as a *RateLimitError whose RetryAfter says when
// to try again, not waited out, so that the caller schedules the retry.
func (c *Client) PostInventory(ctx context.Context, inv *inventory.Inventory) (*InventoryStored, error) {
	var out InventoryStored
	if _, err := c.noRetries().do(ctx, http.MethodPost, "/v1/inventory", inv, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// noRetries is a Client like c that returns a 429 at once.
func (c *Client) noRetries() *Client {
	return &Client{base: c.base, http: c.http, token: c.Token(), noRetry: true}
}

// SignedAssessment is the assessment bundle as the servers send it
// (GET /v1/compliance/assessment): Payload is the JSON of an
// AssessmentPolicies exactly as a server signed it (base64 in JSON), and
// Signature is signed.Sign's over those bytes by a server's cluster
// certificate. Nothing in Payload may be trusted before
// signed.VerifyAt(Payload, Signature, roots, signed.ServerSigner, now)
// succeeded, and the agent checks its times against its clock
// (internal/agent, MaxBundleSkew); a copy kept since is verified with
// signed.Verify, at Signature.SignedAt.
type SignedAssessment struct {
	Payload   []byte            `json:"payload"`
	Signature *signed.Signature `json:"signature"`
}

// AssessmentPolicies is the signed content of an assessment bundle: the
// policies every agent runs, and when the servers issued this set (an
// agent refuses a bundle issued before the one it runs).
type AssessmentPolicies struct {
	Policies []AssessmentPolicy `json:"policies"`
	IssuedAt time.Time          `json:"issued_at"`
}

// AssessmentPolicy is one policy file (YAML, docs/compliance.md) by its
// canonical name.
type AssessmentPolicy struct {
	Name string `json:"name"`
	YAML string `json:"yaml"`
}

// AssessmentBundle fetches the signed assessment bundle
// (GET /v1/compliance/assessment, mutual TLS with the node's certificate).
// It does not verify it: that is the caller's, with its own trust roots.
func (c *Client) AssessmentBundle(ctx context.Context) (*SignedAssessment, error) {
	var out SignedAssessment
	if _, err := c.do(ctx, http.MethodGet, "/v1/compliance/assessment", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AssessmentResult is the outcome of one check on a host; its JSON is
// that of the assessment engine's results.
type AssessmentResult struct {
	Check    string   `json:"check"`
	Title    string   `json:"title"`
	Severity string   `json:"severity"`
	Controls []string `json:"controls"`
	Status   string   `json:"status"` // pass | fail | error | not_applicable
	Message  string   `json:"message"`
	Evidence string   `json:"evidence,omitempty"`
}

// AssessmentResults are one policy's results from one run.
type AssessmentResults struct {
	Policy  string             `json:"policy"`
	RanAt   time.Time          `json:"ran_at"`
	Results []AssessmentResult `json:"results"`
}

// PostAssessmentResults sends one policy's results (POST
// /v1/compliance/results, mutual TLS with the node's certificate).
func (c *Client) PostAssessmentResults(ctx context.Context, r *AssessmentResults) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/compliance/results", r, nil)
	return err
}
