package api

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	"golang.org/x/crypto/ocsp"

	"github.com/warden-sec/warden/internal/api/handler"
	"github.com/warden-sec/warden/internal/authority"
	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/pki"
	wresp "github.com/warden-sec/warden/internal/respond"
)

type nodeTokenRequest struct {
	Name    string `json:"name"`
	Zone    string `json:"zone"`
	TTL     string `json:"ttl"`
	CertTTL string `json:"cert_ttl"`
}

type nodeTokenResponse struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
}

// nodeTokenTarget targets Node::"<name>" with attributes name and zone.
func nodeTokenTarget(req *request) (target, error) {
	in := new(nodeTokenRequest)
	// An empty body is authorized first (as Node::"") and refused by the
	// handler, so a caller without permission learns nothing.
	if err := req.decode(in, true); err != nil {
		return target{}, err
	}
	req.parsed = in
	return target{action: authz.ActionNodeCreate, resource: entity(authz.TypeNode, in.Name,
		types.RecordMap{"name": types.String(in.Name), "zone": types.String(in.Zone)})}, nil
}

func optDuration(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, errs.E(errs.Invalid, "%s: must be a positive Go duration such as 15m, got %q", field, v)
	}
	return d, nil
}

func (s *Server) nodeToken(req *request) (int, any, error) {
	in := req.parsed.(*nodeTokenRequest)
	ttl, err := optDuration("ttl", in.TTL)
	if err != nil {
		return 0, nil, err
	}
	certTTL, err := optDuration("cert_ttl", in.CertTTL)
	if err != nil {
		return 0, nil, err
	}
	tok, exp, err := s.cfg.Nodes.CreateToken(req.Context(), authority.TokenRequest{Name: in.Name, Zone: in.Zone, TTL: ttl, CertTTL: certTTL})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, nodeTokenResponse{Token: tok, ExpiresAt: rfc3339(exp)}, nil
}

// nodeTarget targets Node::"<name>" of the path, or Node::"*" for a path
// without a name (a listing).
func nodeTarget(action string) targetFunc {
	return func(req *request) (target, error) {
		n := req.PathValue("name")
		if n == "" {
			n = "*"
		}
		return target{action: action, resource: nodeResource(n)}, nil
	}
}

func (s *Server) nodeRevoke(req *request) (int, any, error) {
	if err := s.cfg.Nodes.Revoke(req.Context(), req.PathValue("name")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

type enrollRequest struct {
	Name  string `json:"name"`
	Token string `json:"token"`
	CSR   string `json:"csr"` // PEM
	// Addresses are the node's IP addresses (at most 32), optional.
	Addresses []string `json:"addresses"`
}

type enrollResponse struct {
	Certificate string `json:"certificate"` // PEM chain: SVID, intermediate
	Bundle      string `json:"bundle"`      // PEM: root, intermediate
	SPIFFEID    string `json:"spiffe_id"`
	Serial      string `json:"serial"`
	ExpiresAt   string `json:"expires_at"`
}

// enroll exchanges a one-time join token and a CSR for a certificate. It is
// public: the join token is the credential.
func (s *Server) enroll(req *request) (int, any, error) {
	var in enrollRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if req.entry != nil {
		req.entry.AuthMethod, req.entry.Principal = "join-token", `Node::"`+in.Name+`"`
		req.entry.Resource = `Node::"` + in.Name + `"`
	}
	addrs, err := wresp.CheckNodeAddresses("addresses", in.Addresses)
	if err != nil {
		return 0, nil, err
	}
	e, err := s.cfg.Nodes.Enroll(req.Context(), in.Name, in.Token, []byte(in.CSR), addrs...)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, enrollResponse{Certificate: string(e.Certificate), Bundle: string(e.Bundle),
		SPIFFEID: e.SPIFFEID, Serial: e.Serial, ExpiresAt: rfc3339(e.ExpiresAt)}, nil
}

// derBody marks a binary handler result and its content type.
type derBody struct {
	contentType string
	b           []byte
}

func (s *Server) pkiCRL(req *request) (int, any, error) {
	der, err := s.cfg.Nodes.CRL(req.Context())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, derBody{"application/pkix-crl", der}, nil
}

// pkiOCSP answers RFC 6960 requests: POST with the DER body, or GET with
// the base64 request in the path. Every answer is an OCSPResponse
// (application/ocsp-response), errors included: malformedRequest for a
// request that cannot be read or parsed, internalError (tryLater while
// sealed) when the status cannot be looked up — never "good" then.
func (s *Server) pkiOCSP(req *request) (int, any, error) {
	var der []byte
	var err error
	if req.Method == http.MethodPost {
		der, err = io.ReadAll(io.LimitReader(req.Body, pki.MaxOCSPRequestBytes+1))
	} else {
		p := strings.TrimPrefix(req.PathValue("req"), "/")
		der, err = base64.StdEncoding.DecodeString(p)
	}
	if err != nil {
		return http.StatusOK, derBody{"application/ocsp-response", bytes.Clone(ocsp.MalformedRequestErrorResponse)}, nil
	}
	resp, err := s.cfg.Nodes.OCSP(der)
	if err != nil && !errors.Is(err, pki.ErrOCSPMalformed) {
		s.log.Error("OCSP request failed; answered with an OCSP error status", "request_id", req.id, "err", err)
	}
	return http.StatusOK, derBody{"application/ocsp-response", resp}, nil
}

type renewRequest struct {
	CSR       string   `json:"csr"`
	Addresses []string `json:"addresses"` // optional, as at enrollment
}

// renew issues a new certificate to the node that calls with its current
// one (mutual TLS). It is routed as public because the client certificate,
// not a token, is the credential; a node may renew only itself.
func (s *Server) renew(req *request) (int, any, error) {
	if req.TLS == nil || len(req.TLS.VerifiedChains) == 0 {
		return 0, nil, errs.E(errs.Unauthenticated, "renewal needs the node's current certificate as TLS client certificate")
	}
	id, err := s.cfg.Nodes.AuthenticateCert(req.TLS.VerifiedChains[0][0])
	if err != nil {
		return 0, nil, err
	}
	if req.entry != nil {
		req.entry.AuthMethod, req.entry.Principal, req.entry.Resource = "mtls", `Node::"`+id.Name+`"`, `Node::"`+id.Name+`"`
	}
	if err := s.quarantined(id.Name); err != nil {
		return 0, nil, err
	}
	var in renewRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	addrs, err := wresp.CheckNodeAddresses("addresses", in.Addresses)
	if err != nil {
		return 0, nil, err
	}
	e, err := s.cfg.Nodes.Renew(req.Context(), id, []byte(in.CSR), addrs...)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, enrollResponse{Certificate: string(e.Certificate), Bundle: string(e.Bundle),
		SPIFFEID: e.SPIFFEID, Serial: e.Serial, ExpiresAt: rfc3339(e.ExpiresAt)}, nil
}

type reenrollRequest struct {
	Certificate string `json:"certificate"` // PEM: the node's last certificate (its chain may follow)
	CSR         string `json:"csr"`         // PEM, for the same key
}

// parseReenroll decodes a re-enrollment request body strictly and parses
// its certificate and CSR.
func parseReenroll(body []byte) (*x509.Certificate, *x509.CertificateRequest, error) {
	var in reenrollRequest
	if err := handler.DecodeJSON(body, &in, false); err != nil {
		return nil, nil, err
	}
	return authority.ParseReenrollment([]byte(in.Certificate), []byte(in.CSR))
}

// reenroll issues a new certificate to a node whose certificate expired
// (renewal over mutual TLS is then impossible), for the same key: the
// request carries the expired certificate and a CSR signed by its key. It
// is public: the certificate and the proof of possession are the
// credential, checked against the node's record.
func (s *Server) reenroll(req *request) (int, any, error) {
	if req.entry != nil {
		req.entry.AuthMethod = "proof-of-possession"
	}
	body, err := req.readBody()
	if err != nil {
		return 0, nil, err
	}
	leaf, csr, err := parseReenroll(body)
	if err != nil {
		return 0, nil, err
	}
	id, err := s.cfg.Nodes.ReenrollIdentity(leaf)
	if err != nil {
		return 0, nil, err
	}
	if req.entry != nil {
		req.entry.Principal, req.entry.Resource = `Node::"`+id.Name+`"`, `Node::"`+id.Name+`"`
	}
	if err := s.quarantined(id.Name); err != nil {
		return 0, nil, err
	}
	e, err := s.cfg.Nodes.Reenroll(req.Context(), id, leaf, csr)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, enrollResponse{Certificate: string(e.Certificate), Bundle: string(e.Bundle),
		SPIFFEID: e.SPIFFEID, Serial: e.Serial, ExpiresAt: rfc3339(e.ExpiresAt)}, nil
}

type nodesResponse struct {
	Nodes []authority.NodeInfo `json:"nodes"`
	Next  string               `json:"next,omitempty"` // the cursor of the next page; absent on the last
}

// nodeList answers a page of nodes by name: ?limit= (default 100, at most
// 1000) and ?cursor= (the last name of the previous page, its "next").
func (s *Server) nodeList(req *request) (int, any, error) {
	q := req.URL.Query()
	for k := range q {
		if k != "limit" && k != "cursor" && k != "stale" {
			return 0, nil, errs.E(errs.Invalid, "query parameter %q: unknown (limit, cursor)", clip(k))
		}
	}
	limit, err := queryUint(req.Request, "limit")
	if err != nil {
		return 0, nil, err
	}
	if q.Has("limit") && (limit == 0 || limit > authority.MaxNodePage) {
		return 0, nil, errs.E(errs.Invalid, "limit: want 1 to %d", authority.MaxNodePage)
	}
	ns, next, err := s.cfg.Nodes.ListPage(req.Context(), q.Get("cursor"), int(limit))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, nodesResponse{Nodes: ns, Next: next}, nil
}

// nodeCount is GET /v1/fleet/counts: how many nodes there are by state
// and zone, without listing them.
func (s *Server) nodeCount(req *request) (int, any, error) {
	if err := noQuery(req); err != nil {
		return 0, nil, err
	}
	c, err := s.cfg.Nodes.Count(req.Context())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, c, nil
}

func (s *Server) nodeRead(req *request) (int, any, error) {
	n, err := s.cfg.Nodes.Node(req.Context(), req.PathValue("name"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, n, nil
}

type certsResponse struct {
	Certificates []authority.CertInfo `json:"certificates"`
}

// certList lists issued certificates; ?state=issued|expiring|revoked
// filters, ?within=<duration> sets the expiring window (default 24h), and
// ?node=NAME keeps the certificates of that node only (404 if there is no
// such node). The route's target stays Certificate::"*": the filter narrows
// the answer, it reads nothing cert.list does not allow.
func (s *Server) certList(req *request) (int, any, error) {
	q := req.URL.Query()
	within, err := optDuration("within", q.Get("within"))
	if err != nil {
		return 0, nil, err
	}
	if q.Has("within") && q.Get("state") != authority.FilterExpiring {
		return 0, nil, errs.E(errs.Invalid, "within: only with state=expiring")
	}
	node, byNode, err := nodeQuery(q)
	if err != nil {
		return 0, nil, err
	}
	var cs []authority.CertInfo
	if byNode {
		cs, err = s.cfg.Nodes.ListNodeCerts(req.Context(), node, q.Get("state"), within)
	} else {
		cs, err = s.cfg.Nodes.ListCerts(req.Context(), q.Get("state"), within)
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, certsResponse{Certificates: cs}, nil
}

// nodeQuery reads ?node=NAME, the filter of a listing by node: given
// once, a canonical node name (names.Canonical leaves it as it is).
// byNode is false when the query does not have it.
func nodeQuery(q url.Values) (name string, byNode bool, err error) {
	vs, ok := q["node"]
	switch {
	case !ok:
		return "", false, nil
	case len(vs) != 1:
		return "", false, errs.E(errs.Invalid, "node: given %d times; give one node name", len(vs))
	}
	if c, err := names.Canonical(vs[0]); err != nil || c != vs[0] {
		return "", false, errs.E(errs.Invalid, "node: %q is not a canonical node name", clip(vs[0]))
	}
	return vs[0], true, nil
}
