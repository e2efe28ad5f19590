package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Peer is a member of the cluster's Raft configuration.
type Peer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
}

// RaftJoin asks the server this client talks to (a new node) to join the
// cluster at leaderAddr; the client's token must be allowed raft.join there.
// leaderCA is the PEM CA certificate of the leader's API (nil: system roots).
func (c *Client) RaftJoin(ctx context.Context, leaderAddr string, leaderCA []byte) error {
	in := map[string]string{"leader_api_addr": leaderAddr}
	if len(leaderCA) > 0 {
		in["leader_ca_cert"] = string(leaderCA)
	}
	_, err := c.do(ctx, "POST", "/v1/sys/raft/join", in, nil)
	return err
}

// RaftPeers lists the cluster's members.
func (c *Client) RaftPeers(ctx context.Context) ([]Peer, error) {
	var out struct {
		Peers []Peer `json:"peers"`
	}
	_, err := c.do(ctx, "GET", "/v1/sys/raft/peers", nil, &out)
	return out.Peers, err
}

// RaftRemovePeer removes a member.
func (c *Client) RaftRemovePeer(ctx context.Context, id string) error {
	_, err := c.do(ctx, "DELETE", "/v1/sys/raft/peers/"+url.PathEscape(id), nil, nil)
	return err
}

// RaftSnapshotSave writes a snapshot of the cluster's state to w.
func (c *Client) RaftSnapshotSave(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.stream(ctx, "GET", "/v1/sys/raft/snapshot", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("warden: GET /v1/sys/raft/snapshot: %w", redact(err, c.Token()))
	}
	return n, nil
}

// RaftSnapshotRestore replaces the cluster's state with the snapshot read
// from r; run it against the leader. It returns the Raft index of the
// restored state.
func (c *Client) RaftSnapshotRestore(ctx context.Context, r io.Reader) (uint64, error) {
	resp, err := c.stream(ctx, "POST", "/v1/sys/raft/snapshot", r)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Index uint64 `json:"index"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxResponseBytes)).Decode(&out); err != nil {
		return 0, fmt.Errorf("warden: POST /v1/sys/raft/snapshot: decode response: %w", err)
	}
	return out.Index, nil
}

// stream sends a request with a raw body and returns a 2xx response for
// the caller to read; any other status is an *APIError.
func (c *Client) stream(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	ct := ""
	if body != nil {
		ct = "application/octet-stream"
	}
	resp, token, err := c.send(ctx, method, path, body, ct)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 && resp.StatusCode != http.StatusAccepted {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	if resp.StatusCode == http.StatusAccepted {
		return nil, heldError(method, path, data)
	}
	return nil, apiError(resp.StatusCode, data, token)
}

// RaftAdmission asks a member of the cluster to admit a new node (what
// RaftJoin makes the new node send; the caller's token needs raft.join).
type RaftAdmission struct {
	NodeID      string   `json:"node_id"`
	ClusterAddr string   `json:"cluster_addr"`
	CSR         string   `json:"csr"`             // PEM, for the node's own key
	Hosts       []string `json:"hosts,omitempty"` // more SANs
}

// RaftAdmitted is the cluster's answer: the node's certificate (then the
// intermediate), the trust bundle, and the commit index to catch up to.
type RaftAdmitted struct {
	Certificate string `json:"certificate"`
	Bundle      string `json:"bundle"`
	Index       uint64 `json:"index"`
	// Members are the voters of the configuration that admitted the node.
	Members []string `json:"members"`
}

// RaftAdmit sends an admission request.
func (c *Client) RaftAdmit(ctx context.Context, req RaftAdmission) (RaftAdmitted, error) {
	var out RaftAdmitted
	_, err := c.do(ctx, "POST", "/v1/sys/raft/peers", req, &out)
	return out, err
}
