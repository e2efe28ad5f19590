package client

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
)

// AuditVerifier is the audit log's checkpoint origin and note verifier key.
type AuditVerifier struct {
	Origin      string `json:"origin"`
	VerifierKey string `json:"verifier_key"`
}

// AuditEntry is one entry: its index, exact leaf bytes (base64) and fields.
// A stored entry the server found damaged has Altered set, Error naming it
// ("entry N was altered: ...") and no leaf or fields.
type AuditEntry struct {
	Index   uint64         `json:"index"`
	Leaf    string         `json:"leaf"`
	Entry   map[string]any `json:"entry"`
	Altered bool           `json:"altered,omitempty"`
	Error   string         `json:"error,omitempty"`
}

// LeafBytes decodes Leaf.
func (e AuditEntry) LeafBytes() ([]byte, error) { return base64.StdEncoding.DecodeString(e.Leaf) }

// AuditVerifierKey returns the verifier.
func (c *Client) AuditVerifierKey(ctx context.Context) (AuditVerifier, error) {
	var out AuditVerifier
	_, err := c.do(ctx, http.MethodGet, "/v1/audit/verifier", nil, &out)
	return out, err
}

// AuditCheckpoint returns the signed checkpoint note.
func (c *Client) AuditCheckpoint(ctx context.Context) ([]byte, error) {
	var out []byte
	_, err := c.do(ctx, http.MethodGet, "/v1/audit/checkpoint", nil, &out)
	return out, err
}

// AuditEntries returns up to count (≤ 1,000) entries from start.
func (c *Client) AuditEntries(ctx context.Context, start uint64, count int) ([]AuditEntry, error) {
	var out struct {
		Entries []AuditEntry `json:"entries"`
	}
	_, err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/audit/entries?start=%d&count=%d", start, count), nil, &out)
	return out.Entries, err
}

func (c *Client) proof(ctx context.Context, path string) ([][]byte, error) {
	var out struct {
		Hashes []string `json:"hashes"`
	}
	if _, err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	p := make([][]byte, len(out.Hashes))
	for i, h := range out.Hashes {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil {
			return nil, fmt.Errorf("warden: proof hash %d: %w", i, err)
		}
		p[i] = b
	}
	return p, nil
}

// AuditInclusionProof returns the proof that entry index is in the tree of size treeSize.
func (c *Client) AuditInclusionProof(ctx context.Context, index, treeSize uint64) ([][]byte, error) {
	return c.proof(ctx, fmt.Sprintf("/v1/audit/proof/inclusion?index=%d&tree_size=%d", index, treeSize))
}

// AuditConsistencyProof returns the proof that the tree of size old is a prefix of size new.
func (c *Client) AuditConsistencyProof(ctx context.Context, old, new uint64) ([][]byte, error) {
	return c.proof(ctx, fmt.Sprintf("/v1/audit/proof/consistency?old=%d&new=%d", old, new))
}
