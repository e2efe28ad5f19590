package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// SealStatus is the body of GET /v1/sys/seal-status and of unseal responses.
type SealStatus struct {
	Type        string `json:"type"`
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	Shares      int    `json:"shares"`    // 0 when not initialized
	Threshold   int    `json:"threshold"` // 0 when not initialized
	Progress    int    `json:"progress"`  // shares given in this unseal round
	Version     string `json:"version"`
	ClusterID   string `json:"cluster_id"`
}

// Health is the body of GET /v1/sys/health.
type Health struct {
	Initialized   bool   `json:"initialized"`
	Sealed        bool   `json:"sealed"`
	Standby       bool   `json:"standby"`
	Version       string `json:"version"`
	ServerTimeUTC int64  `json:"server_time_utc"` // Unix seconds
	Role          string `json:"role"`            // "leader", "follower" or "standby"
	LastContact   string `json:"last_contact"`    // followers: time since the leader was heard, a Go duration; "" otherwise
	AppliedIndex  uint64 `json:"applied_index"`   // last Raft index applied to the state machine
	CommitIndex   uint64 `json:"commit_index"`    // last Raft index known committed
}

// InitRequest is the body of POST /v1/sys/init.
type InitRequest struct {
	KeyShares    int `json:"key_shares"`
	KeyThreshold int `json:"key_threshold"`
	// DualControl turns dual control on (docs/governance.md).
	DualControl bool `json:"dual_control,omitempty"`
}

// InitResponse holds the unseal keys (standard base64) and the root token.
// Both are secrets: the caller must store them and must not log them.
type InitResponse struct {
	UnsealKeys []string `json:"unseal_keys"`
	RootToken  string   `json:"root_token"`
}

// KeyStatus is the current data-key term, from rotate and key-status.
type KeyStatus struct {
	Term        uint32 `json:"term"`
	InstallTime string `json:"install_time"` // RFC 3339
}

// TokenCreateRequest is the body of POST /v1/auth/token/create. Empty fields
// take the server's defaults (TTL 768h, capped at the parent's remaining TTL).
type TokenCreateRequest struct {
	TTL         string `json:"ttl,omitempty"` // Go duration, e.g. "1h"
	DisplayName string `json:"display_name,omitempty"`
	// User and Groups name the new token's principal (User::"<user>" in
	// Group::"<g>"); empty: the child inherits the caller's.
	User   string   `json:"user,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

// Token is the token object. Token (the secret) is set only in create responses.
type Token struct {
	Token          string   `json:"token,omitempty"`
	Accessor       string   `json:"accessor"`
	DisplayName    string   `json:"display_name"`
	Policies       []string `json:"policies"`
	ParentAccessor string   `json:"parent_accessor"` // "" for the root token
	CreatedTime    string   `json:"created_time"`
	ExpireTime     string   `json:"expire_time"` // "" if it never expires
	TTL            string   `json:"ttl"`         // remaining, Go duration; "" if none
	Root           bool     `json:"root"`
	User           string   `json:"user"`
	Groups         []string `json:"groups"`
	Principal      string   `json:"principal"` // e.g. User::"alice"
}

// KVWriteResponse is the result of a KV write.
type KVWriteResponse struct {
	Version     uint64 `json:"version"`
	CreatedTime string `json:"created_time"`
}

// KVSecret is one version of a secret. Numbers in Data decode as json.Number.
type KVSecret struct {
	Data         map[string]any `json:"data"`
	Version      uint64         `json:"version"`
	CreatedTime  string         `json:"created_time"`
	DeletionTime string         `json:"deletion_time"` // "" unless deleted
}

// KVVersion describes one version in KVMetadata.
type KVVersion struct {
	CreatedTime  string `json:"created_time"`
	DeletionTime string `json:"deletion_time"`
	Destroyed    bool   `json:"destroyed"`
}

// KVMetadata is the body of GET /v1/kv/metadata/{path}. Versions is keyed by
// the decimal version number.
type KVMetadata struct {
	Path           string               `json:"path"`
	CurrentVersion uint64               `json:"current_version"`
	OldestVersion  uint64               `json:"oldest_version"`
	MaxVersions    int                  `json:"max_versions"`
	CreatedTime    string               `json:"created_time"`
	UpdatedTime    string               `json:"updated_time"`
	Versions       map[string]KVVersion `json:"versions"`
}

// SealStatus returns the seal status. No token is needed.
func (c *Client) SealStatus(ctx context.Context) (SealStatus, error) {
	var out SealStatus
	_, err := c.do(ctx, http.MethodGet, "/v1/sys/seal-status", nil, &out)
	return out, err
}

// Health returns the server's health. A 501 (not initialized) or 503 (sealed)
// answer is not an error: its body is returned like a 200's.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var out Health
	_, err := c.do(ctx, http.MethodGet, "/v1/sys/health", nil, &out,
		http.StatusNotImplemented, http.StatusServiceUnavailable)
	return out, err
}

// Init initializes a new server. It fails with a 400 APIError if the server
// is already initialized. The server stays sealed.
func (c *Client) Init(ctx context.Context, req InitRequest) (InitResponse, error) {
	var out InitResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/sys/init", req, &out)
	return out, err
}

// Unseal gives one unseal key share and returns the resulting seal status.
// A malformed, foreign or repeated share is a 400 APIError.
func (c *Client) Unseal(ctx context.Context, key string) (SealStatus, error) {
	var out SealStatus
	_, err := c.do(ctx, http.MethodPost, "/v1/sys/unseal", struct {
		Key string `json:"key"`
	}{key}, &out)
	return out, err
}

// UnsealReset discards the shares given in the current unseal round.
func (c *Client) UnsealReset(ctx context.Context) (SealStatus, error) {
	var out SealStatus
	_, err := c.do(ctx, http.MethodPost, "/v1/sys/unseal", struct {
		Reset bool `json:"reset"`
	}{true}, &out)
	return out, err
}

// Seal seals the server (needs a root token).
func (c *Client) Seal(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/sys/seal", nil, nil)
	return err
}

// Rotate adds a new data-key term (needs a root token) and returns it.
func (c *Client) Rotate(ctx context.Context) (KeyStatus, error) {
	var out KeyStatus
	_, err := c.do(ctx, http.MethodPost, "/v1/sys/rotate", nil, &out)
	return out, err
}

// KeyStatus returns the current data-key term.
func (c *Client) KeyStatus(ctx context.Context) (KeyStatus, error) {
	var out KeyStatus
	_, err := c.do(ctx, http.MethodGet, "/v1/sys/key-status", nil, &out)
	return out, err
}

// TokenCreate creates a child of the Client's token. The result's Token
// field holds the new secret.
func (c *Client) TokenCreate(ctx context.Context, req TokenCreateRequest) (Token, error) {
	var out Token
	_, err := c.do(ctx, http.MethodPost, "/v1/auth/token/create", req, &out)
	return out, err
}

// TokenLookupSelf describes the Client's own token.
func (c *Client) TokenLookupSelf(ctx context.Context) (Token, error) {
	var out Token
	_, err := c.do(ctx, http.MethodGet, "/v1/auth/token/lookup-self", nil, &out)
	return out, err
}

// Whoami describes the caller as the server authenticated it.
type Whoami struct {
	Principal  string            `json:"principal"`   // e.g. Node::"web-1"
	AuthMethod string            `json:"auth_method"` // "token" or "mtls"
	Attributes map[string]string `json:"attributes"`  // a node's name, zone and spiffe_id; a token's user
}

// Whoami asks the server who the Client is (action auth.whoami).
func (c *Client) Whoami(ctx context.Context) (Whoami, error) {
	var out Whoami
	_, err := c.do(ctx, http.MethodGet, "/v1/auth/whoami", nil, &out)
	return out, err
}

type tokenRef struct {
	Token    string `json:"token,omitempty"`
	Accessor string `json:"accessor,omitempty"`
}

// TokenLookup describes the given token; 404 APIError if unknown.
func (c *Client) TokenLookup(ctx context.Context, token string) (Token, error) {
	var out Token
	_, err := c.do(ctx, http.MethodPost, "/v1/auth/token/lookup", tokenRef{Token: token}, &out)
	return out, err
}

// TokenLookupAccessor describes the token with the given accessor; 404 APIError if unknown.
func (c *Client) TokenLookupAccessor(ctx context.Context, accessor string) (Token, error) {
	var out Token
	_, err := c.do(ctx, http.MethodPost, "/v1/auth/token/lookup", tokenRef{Accessor: accessor}, &out)
	return out, err
}

// TokenRevoke revokes the token and all its children; 404 APIError if unknown.
func (c *Client) TokenRevoke(ctx context.Context, token string) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/auth/token/revoke", tokenRef{Token: token}, nil)
	return err
}

// TokenRevokeAccessor revokes the token with the given accessor and all its
// children; 404 APIError if unknown.
func (c *Client) TokenRevokeAccessor(ctx context.Context, accessor string) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/auth/token/revoke", tokenRef{Accessor: accessor}, nil)
	return err
}

// KVPut writes a new version of the secret at path. When cas is not nil the
// write succeeds only if the current version is *cas (0: must not exist),
// otherwise it is a 409 APIError. A nil data map is sent as {}.
func (c *Client) KVPut(ctx context.Context, path string, data map[string]any, cas *uint64) (KVWriteResponse, error) {
	if data == nil {
		data = map[string]any{}
	}
	var out KVWriteResponse
	_, err := c.do(ctx, http.MethodPut, "/v1/kv/data/"+escapePath(path), struct {
		Data map[string]any `json:"data"`
		CAS  *uint64        `json:"cas,omitempty"`
	}{data, cas}, &out)
	return out, err
}

// KVGet reads version of the secret at path; version 0 means the latest.
// A missing secret or version, or a deleted version, is a 404 APIError.
func (c *Client) KVGet(ctx context.Context, path string, version uint64) (KVSecret, error) {
	p := "/v1/kv/data/" + escapePath(path)
	if version != 0 {
		p += "?version=" + strconv.FormatUint(version, 10)
	}
	var out KVSecret
	_, err := c.do(ctx, http.MethodGet, p, nil, &out)
	return out, err
}

// KVDelete soft-deletes the latest version of the secret at path.
func (c *Client) KVDelete(ctx context.Context, path string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/kv/data/"+escapePath(path), nil, nil)
	return err
}

// KVMetadata returns the metadata of the secret at path.
func (c *Client) KVMetadata(ctx context.Context, path string) (KVMetadata, error) {
	var out KVMetadata
	_, err := c.do(ctx, http.MethodGet, "/v1/kv/metadata/"+escapePath(path), nil, &out)
	return out, err
}

// KVList returns the names directly under prefix ("" for the top level),
// sorted, folders ending in "/". Nothing under prefix is a 404 APIError.
func (c *Client) KVList(ctx context.Context, prefix string) ([]string, error) {
	p := escapePath(prefix)
	if p != "" {
		p += "/"
	}
	q := url.Values{"list": {"true"}}
	var out struct {
		Keys []string `json:"keys"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/kv/metadata/"+p+"?"+q.Encode(), nil, &out)
	if out.Keys == nil && err == nil {
		out.Keys = []string{}
	}
	return out.Keys, err
}
