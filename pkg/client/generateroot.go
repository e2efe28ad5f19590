package client

import (
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
)

// Root token generation (docs/governance.md "Generate root"): a requester
// starts an attempt with a one-time public key, unseal key holders give
// their keys with the attempt's nonce, and the new root token is returned
// only encrypted to the requester's key. No token is needed for any of it.
//
// An attempt lives in the memory of the server node that started it: point
// every call of one attempt at that node, not at a load balancer that may
// pick another.

// GenerateRootStatus is a node's root generation attempt, as
// /v1/sys/generate-root/attempt reports it.
type GenerateRootStatus struct {
	Started bool `json:"started"`
	// Nonce is set only in the answer to GenerateRootInit: the requester
	// gives it to the key holders.
	Nonce    string `json:"nonce,omitempty"`
	Progress int    `json:"progress"` // unseal keys given so far
	Required int    `json:"required"` // the unseal threshold
	// PublicKeyFingerprint is "sha256:" and the hex SHA-256 of the
	// requester's public key: key holders compare it with the requester's.
	PublicKeyFingerprint string `json:"public_key_fingerprint,omitempty"`
	StartedAt            string `json:"started_at,omitempty"` // RFC 3339
	ExpiresAt            string `json:"expires_at,omitempty"` // RFC 3339
	Complete             bool   `json:"complete"`
	// EncryptedToken (base64) is the new root token sealed to the
	// requester's key, once Complete; GenerateRootKey.DecryptToken opens it.
	EncryptedToken string `json:"encrypted_token,omitempty"`
	TokenAccessor  string `json:"token_accessor,omitempty"`
}

// GenerateRootStatus returns the attempt of the node the client talks to.
func (c *Client) GenerateRootStatus(ctx context.Context) (GenerateRootStatus, error) {
	var out GenerateRootStatus
	_, err := c.do(ctx, http.MethodGet, "/v1/sys/generate-root/attempt", nil, &out)
	return out, err
}

// GenerateRootInit starts an attempt for publicKey (GenerateRootKey.PublicKey)
// and returns its status with its nonce. A 409 APIError: another attempt
// exists on that node.
func (c *Client) GenerateRootInit(ctx context.Context, publicKey []byte) (GenerateRootStatus, error) {
	var out GenerateRootStatus
	_, err := c.do(ctx, http.MethodPost, "/v1/sys/generate-root/attempt", struct {
		PublicKey string `json:"public_key"`
	}{base64.StdEncoding.EncodeToString(publicKey)}, &out)
	return out, err
}

// GenerateRootUpdate gives one unseal key to the attempt with this nonce
// and returns its status (Complete, with EncryptedToken, after the last
// one). A 400 APIError: a malformed, repeated or foreign key (a foreign
// one discards the keys given so far), or a wrong nonce.
func (c *Client) GenerateRootUpdate(ctx context.Context, nonce, key string) (GenerateRootStatus, error) {
	var out GenerateRootStatus
	_, err := c.do(ctx, http.MethodPost, "/v1/sys/generate-root/update", struct {
		Nonce string `json:"nonce"`
		Key   string `json:"key"`
	}{nonce, key}, &out)
	return out, err
}

// GenerateRootCancel ends the attempt with this nonce (in progress, or
// complete: the requester clears it once it has decrypted the token).
func (c *Client) GenerateRootCancel(ctx context.Context, nonce string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/sys/generate-root/attempt", struct {
		Nonce string `json:"nonce"`
	}{nonce}, nil)
	return err
}

// GenerateRootCancelWithKey ends the node's attempt, authorized by one of
// the cluster's unseal keys instead of the nonce (a key holder clearing an
// attempt nobody asked them for).
func (c *Client) GenerateRootCancelWithKey(ctx context.Context, key string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/sys/generate-root/attempt", struct {
		Key string `json:"key"`
	}{key}, nil)
	return err
}

// generateRootInfoPrefix and the suite are the server's
// (internal/core.GenerateRootSuite): DHKEM(X25519, HKDF-SHA256),
// HKDF-SHA256, AES-256-GCM, info "warden/generate-root/v1", a zero byte and
// the nonce.
const generateRootInfoPrefix = "warden/generate-root/v1\x00"

func generateRootSuite() (hpke.KEM, hpke.KDF, hpke.AEAD) {
	return hpke.DHKEM(ecdh.X25519()), hpke.HKDFSHA256(), hpke.AES256GCM()
}

// GenerateRootKey is a requester's one-time X25519 key. Its String and
// LogValue are redacted.
type GenerateRootKey struct {
	priv hpke.PrivateKey
}

// ErrGenerateRootDecrypt: the encrypted token does not open with this key
// and nonce (another attempt's, or altered).
var ErrGenerateRootDecrypt = errors.New("warden: the encrypted token does not open with this key and nonce (another attempt's, or altered)")

// NewGenerateRootKey makes a fresh one-time key.
func NewGenerateRootKey() (*GenerateRootKey, error) {
	kem, _, _ := generateRootSuite()
	priv, err := kem.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("warden: generate-root key: %w", err)
	}
	return &GenerateRootKey{priv: priv}, nil
}

// ParseGenerateRootKey reads a key saved with Bytes (32 bytes).
func ParseGenerateRootKey(b []byte) (*GenerateRootKey, error) {
	if len(b) != 32 {
		return nil, fmt.Errorf("warden: a generate-root private key is 32 bytes, got %d", len(b))
	}
	kem, _, _ := generateRootSuite()
	priv, err := kem.NewPrivateKey(b)
	if err != nil {
		return nil, errors.New("warden: not an X25519 private key")
	}
	return &GenerateRootKey{priv: priv}, nil
}

// Bytes returns the private key (RFC 9180 SerializePrivateKey, 32 bytes),
// to keep in a file only its owner can read.
func (k *GenerateRootKey) Bytes() ([]byte, error) { return k.priv.Bytes() }

// PublicKey returns the public key to send with GenerateRootInit.
func (k *GenerateRootKey) PublicKey() []byte { return k.priv.PublicKey().Bytes() }

// Fingerprint returns the public key's fingerprint, as the server reports
// it: "sha256:" and 64 hex digits.
func (k *GenerateRootKey) Fingerprint() string {
	sum := sha256.Sum256(k.PublicKey())
	return "sha256:" + hex.EncodeToString(sum[:])
}

// DecryptToken opens the encrypted token (base64, as in
// GenerateRootStatus.EncryptedToken) of the attempt with this nonce.
func (k *GenerateRootKey) DecryptToken(nonce, encryptedToken string) (string, error) {
	ct, err := base64.StdEncoding.Strict().DecodeString(encryptedToken)
	if err != nil {
		return "", errors.New("warden: encrypted_token: not valid base64")
	}
	_, kdf, aead := generateRootSuite()
	pt, err := hpke.Open(k.priv, kdf, aead, []byte(generateRootInfoPrefix+nonce), ct)
	if err != nil {
		return "", ErrGenerateRootDecrypt
	}
	return string(pt), nil
}

// String is redacted.
func (k *GenerateRootKey) String() string {
	return "GenerateRootKey(" + k.Fingerprint() + ", private part redacted)"
}

// LogValue is redacted.
func (k *GenerateRootKey) LogValue() slog.Value { return slog.StringValue(k.String()) }
