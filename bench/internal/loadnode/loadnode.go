// Package loadnode is what Warden's load generators share: the loopback
// check on the target address, the server's trust, and nodes enrolled over
// the API (a join token, a fresh P-256 key, a certificate) whose clients
// present their certificate over mutual TLS.
package loadnode

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

// Target is a loopback Warden server and its TLS trust.
type Target struct {
	Addr  string      // https://127.0.0.1:PORT
	TLS   *tls.Config // trusts the server's CA; TLS 1.2+
	Setup *http.Client
}

// NewTarget checks that addr is a loopback https address and loads the CA
// file that signs the server's certificate.
func NewTarget(addr, caFile string) (*Target, error) {
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "https" {
		return nil, fmt.Errorf("-addr %q: want https://127.0.0.1:PORT", addr)
	}
	if ip := net.ParseIP(u.Hostname()); (ip == nil || !ip.IsLoopback()) && u.Hostname() != "localhost" {
		return nil, fmt.Errorf("-addr %q: only loopback addresses are load-tested", addr)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	base := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &Target{Addr: addr, TLS: base, Setup: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: base}}}, nil
}

// Node is an enrolled node.
type Node struct {
	Name   string
	Client *http.Client // presents the node's certificate
	CSR    string       // a CSR (PEM) for the node's key
}

// Enroll creates a join token for a new node named name (token must allow
// node.create), enrolls a fresh P-256 key and returns the node.
func (t *Target) Enroll(token, name string) (*Node, error) {
	var tok struct {
		Token string `json:"token"`
	}
	if err := t.Call(t.Addr+"/v1/nodes/tokens", token, map[string]string{"name": name, "cert_ttl": "1h"}, &tok); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, err
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	var en struct {
		Certificate string `json:"certificate"`
	}
	if err := t.Call(t.Addr+"/v1/pki/enroll", "", map[string]string{"token": tok.Token, "csr": csr}, &en); err != nil {
		return nil, err
	}
	var chain [][]byte
	for rest := []byte(en.Certificate); ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		chain = append(chain, blk.Bytes)
	}
	if len(chain) == 0 {
		return nil, errors.New("enroll: no certificate in the response")
	}
	cfg := t.TLS.Clone()
	cfg.Certificates = []tls.Certificate{{Certificate: chain, PrivateKey: key}}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 1}}
	return &Node{Name: name, Client: client, CSR: csr}, nil
}

// Call POSTs in as JSON (with a bearer token if given) and decodes a 200
// answer into out.
func (t *Target) Call(u, token string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequest("POST", u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := t.Setup.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", u, res.Status, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, out)
}
