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
//
// An entry archived and pruned from the live log has Archived set and
// LeafHash (base64), its RFC 6962 leaf hash, instead of a leaf.
type AuditEntry struct {
	Index    uint64         `json:"index"`
	Leaf     string         `json:"leaf"`
	Entry    map[string]any `json:"entry"`
	Altered  bool           `json:"altered,omitempty"`
	Error    string         `json:"error,omitempty"`
	Archived bool           `json:"archived,omitempty"`
	LeafHash string         `json:"leaf_hash,omitempty"`
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

// AuditArchive asks for the archive of the oldest live entries, below
// before (0: no bound) and older than olderThan (a Go duration; "": no
// cutoff), and returns it as the server sent it (a warden-audit-archive/1
// JSON document; parse and verify it with internal/audit or any JSON and
// RFC 6962 tools). The server records the archive's end as the bound
// AuditPrune may reach.
func (c *Client) AuditArchive(ctx context.Context, before uint64, olderThan string) ([]byte, error) {
	in := struct {
		Before    uint64 `json:"before,omitempty"`
		OlderThan string `json:"older_than,omitempty"`
	}{before, olderThan}
	var out []byte
	_, err := c.do(ctx, http.MethodPost, "/v1/audit/archive", in, &out)
	return out, err
}

// AuditPrune removes the bodies of the archived entries below before from
// every node, and returns the pruned bound.
func (c *Client) AuditPrune(ctx context.Context, before uint64) (uint64, error) {
	var out struct {
		Pruned uint64 `json:"pruned"`
	}
	_, err := c.do(ctx, http.MethodPost, "/v1/audit/prune", struct {
		Before uint64 `json:"before"`
	}{before}, &out)
	return out.Pruned, err
}
