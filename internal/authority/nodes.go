package authority

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/pki"
	"github.com/warden-sec/warden/internal/store/kv"
)

const (
	prefixNode    = "pki/node/"    // + canonical name → Node
	prefixRevoked = "pki/revoked/" // + serial hex → Revocation
	prefixJoin    = "pki/join/"    // + hex SHA-256 of a join token → node name
	keyCRLGen     = "pki/crl-gen"  // touched on every revocation
	joinPrefix    = "wjt_"
	// DefaultJoinTTL and DefaultCertTTL apply when a node token names none.
	DefaultJoinTTL = 15 * time.Minute
	DefaultCertTTL = time.Hour
	maxRetries     = 8
)

// Node states.
const (
	NodePending = "pending" // a join token was issued, not used yet
	NodeActive  = "active"
	NodeRevoked = "revoked"
)

// Node is the record of an enrolled (or enrolling) node.
type Node struct {
	Name         string    `json:"name"`
	Zone         string    `json:"zone,omitempty"`
	SPIFFEID     string    `json:"spiffe_id"`
	State        string    `json:"state"`
	CertTTL      string    `json:"cert_ttl"`
	TokenHash    []byte    `json:"token_hash,omitempty"` // SHA-256 of the join token; cleared once used
	TokenExpires time.Time `json:"token_expires,omitzero"`
	Serials      []string  `json:"serials,omitempty"` // hex serials of certificates issued to it
	// Addresses are the IP addresses the node reported at its last
	// enrollment or renewal (validated by the API).
	Addresses   []string  `json:"addresses,omitempty"`
	CreatedTime time.Time `json:"created_time"`
	UpdatedTime time.Time `json:"updated_time"`
}

// Revocation is a revoked certificate.
type Revocation struct {
	Serial    string    `json:"serial"`
	RevokedAt time.Time `json:"revoked_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// NodeStorage is what node management needs (core.Core).
type NodeStorage interface {
	Storage
	Get(ctx context.Context, key string) (kv.Entry, error)
	List(ctx context.Context, prefix string, limit int) ([]kv.Entry, error)
	Txn(ctx context.Context, t kv.Txn) (uint64, error)
}

// Nodes manages node identities: join tokens, enrollment, revocation.
type Nodes struct {
	st  NodeStorage
	ca  *Service
	now func() time.Time
}

// NewNodes returns a node manager.
func NewNodes(st NodeStorage, ca *Service, now func() time.Time) *Nodes {
	if now == nil {
		now = time.Now
	}
	return &Nodes{st: st, ca: ca, now: now}
}

func (n *Nodes) get(ctx context.Context, name string) (*Node, uint64, error) {
	e, err := n.st.Get(ctx, prefixNode+name)
	if errs.Is(err, errs.NotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	nd, err := decodeNode(e)
	return nd, e.Version, err
}

// getStale is get from this node's local state (per-request checks).
func (n *Nodes) getStale(name string) (*Node, error) {
	e, err := n.st.GetStale(prefixNode + name)
	if errs.Is(err, errs.NotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeNode(e)
}

func decodeNode(e kv.Entry) (*Node, error) {
	var nd Node
	if err := json.Unmarshal(e.Value, &nd); err != nil {
		return nil, fmt.Errorf("authority: %s: %w", e.Key, err)
	}
	return &nd, nil
}

// TokenRequest describes a node to be enrolled.
type TokenRequest struct {
	Name    string
	Zone    string
	TTL     time.Duration // join token lifetime
	CertTTL time.Duration
}

// CreateToken creates a pending node record and its one-time join token.
// The name must be canonical-able and not bound to a live identity.
func (n *Nodes) CreateToken(ctx context.Context, r TokenRequest) (string, time.Time, error) {
	name, err := names.Canonical(r.Name)
	if err != nil {
		return "", time.Time{}, errs.Wrap(errs.Invalid, err, "%s", err.Error())
	}
	if r.Zone != "" {
		z, err := names.Canonical(r.Zone)
		if err != nil {
			return "", time.Time{}, errs.E(errs.Invalid, "zone: %s", err.Error())
		}
		if err := n.ZoneExists(ctx, z); err != nil {
			return "", time.Time{}, err
		}
		r.Zone = z
	}
	if r.TTL <= 0 {
		r.TTL = DefaultJoinTTL
	}
	if r.CertTTL <= 0 {
		r.CertTTL = DefaultCertTTL
	}
	td, err := n.ca.TrustDomain()
	if err != nil {
		return "", time.Time{}, err
	}
	id, err := names.SPIFFEID(td, names.KindNode, name)
	if err != nil {
		return "", time.Time{}, errs.E(errs.Invalid, "%s", err.Error())
	}
	old, ver, err := n.get(ctx, name)
	if err != nil {
		return "", time.Time{}, err
	}
	if old != nil && old.State != NodeRevoked {
		return "", time.Time{}, errs.E(errs.Conflict, "name %q is bound to a node that is %s; revoke it first", name, old.State)
	}
	raw := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, raw); err != nil {
		return "", time.Time{}, err
	}
	token := joinPrefix + base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(token))
	now := n.now().UTC()
	nd := Node{Name: name, Zone: r.Zone, SPIFFEID: id, State: NodePending, CertTTL: r.CertTTL.String(),
		TokenHash: sum[:], TokenExpires: now.Add(r.TTL), CreatedTime: now, UpdatedTime: now}
	b, _ := json.Marshal(nd)
	_, err = n.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: prefixNode + name, Version: ver}},
		Ops: []kv.Op{{Type: kv.OpPut, Key: prefixNode + name, Value: b},
			{Type: kv.OpPut, Key: prefixJoin + hex.EncodeToString(sum[:]), Value: []byte(name)}}})
	if errs.Is(err, errs.Conflict) {
		return "", time.Time{}, errs.E(errs.Conflict, "node %q changed concurrently; retry", name)
	}
	if err != nil {
		return "", time.Time{}, err
	}
	return token, nd.TokenExpires, nil
}

// Enrollment is what a node gets for its CSR.
type Enrollment struct {
	Certificate []byte // PEM: the SVID then the intermediate
	Bundle      []byte // PEM: root and intermediate
	SPIFFEID    string
	Serial      string
	ExpiresAt   time.Time
}

var errJoin = errs.E(errs.Unauthenticated, "join token: unknown, used, expired or revoked")

// Enroll exchanges a join token and a CSR for a certificate. The token works
// once: the record's version is a precondition of the transaction that
// clears it, so two concurrent uses cannot both succeed. The node's private
// key never reaches the server: only the CSR's public key is used.
// addrs are the addresses the node reports (validated by the caller).
func (n *Nodes) Enroll(ctx context.Context, name, token string, csrPEM []byte, addrs ...string) (*Enrollment, error) {
	if !strings.HasPrefix(token, joinPrefix) || len(token) > 128 {
		return nil, errJoin
	}
	joinKey := prefixJoin + hex.EncodeToString(func() []byte { h := sha256.Sum256([]byte(token)); return h[:] }())
	if name == "" { // the token alone names the node
		e, err := n.st.GetStale(joinKey)
		if err != nil {
			return nil, errJoin
		}
		name = string(e.Value)
	}
	name, err := names.Canonical(name)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "%s", err.Error())
	}
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "csr: %s", strings.TrimPrefix(err.Error(), "pki: "))
	}
	nd, ver, err := n.get(ctx, name)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(token))
	now := n.now().UTC()
	if nd == nil || nd.State != NodePending || len(nd.TokenHash) == 0 ||
		subtle.ConstantTimeCompare(sum[:], nd.TokenHash) != 1 || now.After(nd.TokenExpires) {
		return nil, errJoin
	}
	ttl, _ := time.ParseDuration(nd.CertTTL)
	inter, err := n.issuer()
	if err != nil {
		return nil, err
	}
	cert, err := inter.Issue(pki.IssueRequest{CSR: csr, SPIFFEID: nd.SPIFFEID, TTL: ttl, Now: now})
	if err != nil {
		return nil, err
	}
	serial := hex.EncodeToString(cert.SerialNumber.Bytes())
	nd.State, nd.TokenHash, nd.TokenExpires, nd.UpdatedTime = NodeActive, nil, time.Time{}, now
	nd.Serials = append(nd.Serials, serial)
	if len(addrs) > 0 {
		nd.Addresses = addrs
	}
	b, _ := json.Marshal(nd)
	_, err = n.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: prefixNode + name, Version: ver}},
		Ops: []kv.Op{{Type: kv.OpPut, Key: prefixNode + name, Value: b}, {Type: kv.OpDelete, Key: joinKey},
			certRecordOp(name, nd.SPIFFEID, serial, cert)}})
	if errs.Is(err, errs.Conflict) {
		return nil, errJoin // someone used the token first
	}
	if err != nil {
		return nil, err
	}
	return n.enrollment(nd, cert, inter, serial)
}

// enrollment is what a node receives with a new certificate.
func (n *Nodes) enrollment(nd *Node, cert *x509.Certificate, inter *pki.CA, serial string) (*Enrollment, error) {
	bundle, err := n.ca.Bundle()
	if err != nil {
		return nil, err
	}
	return &Enrollment{Certificate: pki.Bundle(cert, inter.Cert), Bundle: bundle, SPIFFEID: nd.SPIFFEID,
		Serial: serial, ExpiresAt: cert.NotAfter}, nil
}

func (n *Nodes) issuer() (*pki.CA, error) { return n.ca.issuer() }

// Revoke marks the node revoked and all its certificates' serials revoked,
// in one transaction.
func (n *Nodes) Revoke(ctx context.Context, name string) error {
	for attempt := 0; ; attempt++ {
		ops, conds, err := n.RevokeOps(ctx, name)
		if err != nil || ops == nil {
			return err
		}
		_, err = n.st.Txn(ctx, kv.Txn{Conds: conds, Ops: ops})
		if errs.Is(err, errs.Conflict) && attempt < maxRetries {
			continue
		}
		return err
	}
}

// RevokeOps returns the operations and conditions that revoke the node
// and its certificates, for a caller that commits them with its own
// changes (the playbook responder); nil ops when it is revoked already.
// errs.NotFound if there is no such node.
func (n *Nodes) RevokeOps(ctx context.Context, name string) ([]kv.Op, []kv.Cond, error) {
	name, err := names.Canonical(name)
	if err != nil {
		return nil, nil, errs.Wrap(errs.Invalid, err, "%s", err.Error())
	}
	nd, ver, err := n.get(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	if nd == nil {
		return nil, nil, errs.E(errs.NotFound, "node %q not found", name)
	}
	if nd.State == NodeRevoked {
		return nil, nil, nil
	}
	now := n.now().UTC()
	ttl, _ := time.ParseDuration(nd.CertTTL)
	ops := []kv.Op{{Type: kv.OpPut, Key: keyCRLGen}}
	for _, s := range nd.Serials {
		rb, _ := json.Marshal(Revocation{Serial: s, RevokedAt: now, ExpiresAt: now.Add(ttl)})
		ops = append(ops, kv.Op{Type: kv.OpPut, Key: prefixRevoked + s, Value: rb})
	}
	nd.State, nd.TokenHash, nd.UpdatedTime = NodeRevoked, nil, now
	b, _ := json.Marshal(nd)
	ops = append(ops, kv.Op{Type: kv.OpPut, Key: prefixNode + name, Value: b})
	return ops, []kv.Cond{{Key: prefixNode + name, Version: ver}}, nil
}

// CRL returns the DER CRL of unexpired revoked certificates, signed by the
// issuing CA.
func (n *Nodes) CRL(ctx context.Context) ([]byte, error) {
	es, err := n.st.List(ctx, prefixRevoked, 0)
	if err != nil {
		return nil, err
	}
	var revs []pki.Revoked
	var number uint64 = 1
	if g, err := n.st.GetStale(keyCRLGen); err == nil {
		number = g.Version
	}
	for _, e := range es {
		var r Revocation
		if err := json.Unmarshal(e.Value, &r); err != nil {
			return nil, err
		}
		sn, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			return nil, errors.New("authority: bad stored serial")
		}
		revs = append(revs, pki.Revoked{Serial: sn, RevokedAt: r.RevokedAt, ExpiresAt: r.ExpiresAt})
	}
	inter, err := n.issuer()
	if err != nil {
		return nil, err
	}
	return inter.CRL(revs, new(big.Int).SetUint64(number), n.now(), 24*time.Hour)
}

// OCSP answers a DER OCSP request with a DER OCSP response. It fails
// closed: a status it cannot look up is never "good" — the answer is then
// the internalError response (tryLater while sealed). A malformed request
// gets the malformedRequest response. The error is for the log only; the
// response is always one to send.
func (n *Nodes) OCSP(reqDER []byte) ([]byte, error) {
	inter, err := n.issuer()
	if err != nil {
		if errs.Is(err, errs.Unavailable) {
			return bytes.Clone(ocsp.TryLaterErrorResponse), err
		}
		return bytes.Clone(ocsp.InternalErrorErrorResponse), err
	}
	var lookupErr error
	resp, err := inter.OCSPRespond(reqDER, func(sn *big.Int) (pki.OCSPStatus, time.Time) {
		st, at, err := n.ocspStatus(sn)
		if err != nil {
			lookupErr = err
			return pki.OCSPUnknown, time.Time{}
		}
		return st, at
	}, n.now(), time.Hour)
	switch {
	case errors.Is(err, pki.ErrOCSPMalformed):
		return bytes.Clone(ocsp.MalformedRequestErrorResponse), err
	case err != nil:
		return bytes.Clone(ocsp.InternalErrorErrorResponse), err
	case lookupErr != nil:
		return bytes.Clone(ocsp.InternalErrorErrorResponse), lookupErr
	}
	return resp, nil
}

// ocspStatus looks a serial up: revoked if a revocation is recorded, good
// if none is (and the lookup worked), an error otherwise.
func (n *Nodes) ocspStatus(sn *big.Int) (pki.OCSPStatus, time.Time, error) {
	e, err := n.st.GetStale(prefixRevoked + hex.EncodeToString(sn.Bytes()))
	if errs.Is(err, errs.NotFound) {
		return pki.OCSPGood, time.Time{}, nil
	}
	if err != nil {
		return pki.OCSPUnknown, time.Time{}, err
	}
	var r Revocation
	if err := json.Unmarshal(e.Value, &r); err != nil {
		return pki.OCSPUnknown, time.Time{}, fmt.Errorf("authority: revocation record: %w", err)
	}
	return pki.OCSPRevoked, r.RevokedAt, nil
}

// ParseCertificate is a helper for callers that received a PEM chain.
func ParseCertificate(pemBytes []byte) (*x509.Certificate, error) { return pki.ParseLeaf(pemBytes) }

// CertIdentity is who a verified client certificate names.
type CertIdentity struct {
	Name     string
	Zone     string
	SPIFFEID string
}

// AuthenticateCert maps a client certificate, already verified against the
// trust bundle by TLS, to its node: the SPIFFE ID must be in this trust
// domain and name an active node, and the serial must not be revoked. It
// reads local state only, so a revocation takes effect at once on every
// node that has applied it.
func (n *Nodes) AuthenticateCert(cert *x509.Certificate) (*CertIdentity, error) {
	if len(cert.URIs) != 1 {
		return nil, errs.E(errs.Unauthenticated, "client certificate: want exactly one SPIFFE ID")
	}
	td, kind, name, err := names.ParseSPIFFEID(cert.URIs[0].String())
	if err != nil {
		return nil, errs.E(errs.Unauthenticated, "client certificate: %s", err.Error())
	}
	mine, err := n.ca.TrustDomain()
	if err != nil {
		return nil, err
	}
	if td != mine || kind != names.KindNode {
		return nil, errs.E(errs.Unauthenticated, "client certificate: %s is not a node of trust domain %s", cert.URIs[0], mine)
	}
	if _, err := n.st.GetStale(prefixRevoked + hex.EncodeToString(cert.SerialNumber.Bytes())); err == nil {
		return nil, errs.E(errs.Unauthenticated, "client certificate: revoked")
	} else if !errs.Is(err, errs.NotFound) {
		return nil, err
	}
	nd, err := n.getStale(name)
	if err != nil {
		return nil, err
	}
	if nd == nil {
		return nil, errs.E(errs.Unauthenticated, "client certificate: unknown node %q", name)
	}
	if nd.State != NodeActive {
		return nil, errs.E(errs.Unauthenticated, "client certificate: node %q is %s", name, nd.State)
	}
	return &CertIdentity{Name: name, Zone: nd.Zone, SPIFFEID: nd.SPIFFEID}, nil
}

// ClientCAs returns the pool that verifies client certificates: the trust
// bundle.
func (s *Service) ClientCAs() (*x509.CertPool, error) {
	b, err := s.Bundle()
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("authority: empty trust bundle")
	}
	return pool, nil
}

// Renew issues a new certificate to an authenticated, active node for the
// key in its CSR. addrs, if any, replace the addresses the node reported
// (validated by the caller).
func (n *Nodes) Renew(ctx context.Context, id *CertIdentity, csrPEM []byte, addrs ...string) (*Enrollment, error) {
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "csr: %s", strings.TrimPrefix(err.Error(), "pki: "))
	}
	return n.issue(ctx, id, csr, nil, addrs)
}

// issue issues a certificate for csr's key to the active node id names,
// once check (if any) accepts the node's record, and records it with the
// node in one transaction conditioned on the record's version.
func (n *Nodes) issue(ctx context.Context, id *CertIdentity, csr *x509.CertificateRequest, check func(*Node) error, addrs []string) (*Enrollment, error) {
	for attempt := 0; ; attempt++ {
		nd, ver, err := n.get(ctx, id.Name)
		if err != nil {
			return nil, err
		}
		if nd == nil || nd.State != NodeActive {
			return nil, errs.E(errs.Unauthenticated, "node %q is not active", id.Name)
		}
		if check != nil {
			if err := check(nd); err != nil {
				return nil, err
			}
		}
		ttl, _ := time.ParseDuration(nd.CertTTL)
		inter, err := n.issuer()
		if err != nil {
			return nil, err
		}
		now := n.now().UTC()
		cert, err := inter.Issue(pki.IssueRequest{CSR: csr, SPIFFEID: nd.SPIFFEID, TTL: ttl, Now: now})
		if err != nil {
			return nil, err
		}
		serial := hex.EncodeToString(cert.SerialNumber.Bytes())
		ops := []kv.Op{certRecordOp(nd.Name, nd.SPIFFEID, serial, cert)}
		nd.Serials = append(nd.Serials, serial)
		if len(nd.Serials) > maxSerials { // keep the recent ones: older certificates have expired
			for _, old := range nd.Serials[:len(nd.Serials)-maxSerials] {
				ops = append(ops, kv.Op{Type: kv.OpDelete, Key: prefixCert + old})
			}
			nd.Serials = nd.Serials[len(nd.Serials)-maxSerials:]
		}
		nd.UpdatedTime = now
		if len(addrs) > 0 {
			nd.Addresses = addrs
		}
		b, _ := json.Marshal(nd)
		ops = append(ops, kv.Op{Type: kv.OpPut, Key: prefixNode + id.Name, Value: b})
		_, err = n.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: prefixNode + id.Name, Version: ver}}, Ops: ops})
		if errs.Is(err, errs.Conflict) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return nil, err
		}
		return n.enrollment(nd, cert, inter, serial)
	}
}
