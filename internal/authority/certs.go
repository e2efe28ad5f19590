package authority

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/pki"
	"github.com/warden-sec/warden/internal/store/kv"
)

const (
	prefixCert = "pki/cert/" // + serial hex → CertRecord
	// maxSerials is how many serials a node record keeps (and how many
	// certificate records per node survive): older certificates have expired.
	maxSerials = 64
	// DefaultExpiringWithin is the window of the "expiring" certificate filter.
	DefaultExpiringWithin = 24 * time.Hour
	// MaxReenrollCertBytes bounds the certificate chain of a re-enrollment.
	MaxReenrollCertBytes = 16 << 10
)

// CertRecord is what the cluster remembers of every certificate it issued to
// a node. It is written in the transaction that records the issuance.
type CertRecord struct {
	Cert
	// KeySHA256 is the hex SHA-256 of the certificate's SubjectPublicKeyInfo.
	KeySHA256 string `json:"key_sha256"`
}

// Cert is what records and listings say of an issued certificate.
type Cert struct {
	Serial    string    `json:"serial"`
	Name      string    `json:"name"`
	SPIFFEID  string    `json:"spiffe_id"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

func keyHash(spki []byte) string {
	h := sha256.Sum256(spki)
	return hex.EncodeToString(h[:])
}

// certRecordOp is the op that records cert as issued to node name.
func certRecordOp(name, spiffeID, serial string, cert *x509.Certificate) kv.Op {
	b, _ := json.Marshal(CertRecord{Cert: Cert{Serial: serial, Name: name, SPIFFEID: spiffeID,
		NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC()}, KeySHA256: keyHash(cert.RawSubjectPublicKeyInfo)})
	return kv.Op{Type: kv.OpPut, Key: prefixCert + serial, Value: b}
}

func (n *Nodes) certRecord(serial string) (*CertRecord, error) {
	e, err := n.st.GetStale(prefixCert + serial)
	if errs.Is(err, errs.NotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r CertRecord
	if err := json.Unmarshal(e.Value, &r); err != nil {
		return nil, fmt.Errorf("authority: certificate %s: %w", serial, err)
	}
	return &r, nil
}

// NodeInfo is what an operator sees of a node: never its join token hash.
type NodeInfo struct {
	Name        string    `json:"name"`
	Zone        string    `json:"zone"`
	SPIFFEID    string    `json:"spiffe_id"`
	State       string    `json:"state"`
	CertTTL     string    `json:"cert_ttl"`
	Serial      string    `json:"serial,omitempty"`       // the latest certificate's, hex
	NotAfter    time.Time `json:"not_after,omitzero"`     // the latest certificate's expiry
	TokenExpiry time.Time `json:"token_expires,omitzero"` // pending nodes: when the join token expires
	Addresses   []string  `json:"addresses,omitempty"`    // reported by the node at enrollment and renewal
	CreatedTime time.Time `json:"created_time"`
	UpdatedTime time.Time `json:"updated_time"`
}

func (n *Nodes) info(nd *Node) (NodeInfo, error) {
	in := NodeInfo{Name: nd.Name, Zone: nd.Zone, SPIFFEID: nd.SPIFFEID, State: nd.State, CertTTL: nd.CertTTL,
		Addresses: nd.Addresses, CreatedTime: nd.CreatedTime, UpdatedTime: nd.UpdatedTime}
	if nd.State == NodePending {
		in.TokenExpiry = nd.TokenExpires
	}
	if len(nd.Serials) > 0 {
		in.Serial = nd.Serials[len(nd.Serials)-1]
		r, err := n.certRecord(in.Serial)
		if err != nil {
			return NodeInfo{}, err
		}
		if r != nil {
			in.NotAfter = r.NotAfter
		}
	}
	return in, nil
}

// Node returns one node by name.
func (n *Nodes) Node(ctx context.Context, name string) (NodeInfo, error) {
	cn, err := names.Canonical(name)
	if err != nil {
		return NodeInfo{}, errs.Wrap(errs.Invalid, err, "%s", err.Error())
	}
	nd, _, err := n.get(ctx, cn)
	if err != nil {
		return NodeInfo{}, err
	}
	if nd == nil {
		return NodeInfo{}, errs.E(errs.NotFound, "node %q not found", cn)
	}
	return n.info(nd)
}

// List returns every node, by name.
func (n *Nodes) List(ctx context.Context) ([]NodeInfo, error) {
	es, err := n.st.List(ctx, prefixNode, 0)
	if err != nil {
		return nil, err
	}
	out := make([]NodeInfo, 0, len(es))
	for _, e := range es {
		nd, err := decodeNode(e)
		if err != nil {
			return nil, err
		}
		in, err := n.info(nd)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

// NodeCounts is how many nodes there are, by state and by zone (nodes in
// no zone are counted in NoZone).
type NodeCounts struct {
	Total   int            `json:"total"`
	ByState map[string]int `json:"by_state"`
	ByZone  map[string]int `json:"by_zone"`
	NoZone  int            `json:"no_zone"`
}

// Count counts the nodes by state and zone, linearizably, without building
// their listings (no certificate is parsed).
func (n *Nodes) Count(ctx context.Context) (NodeCounts, error) {
	es, err := n.st.List(ctx, prefixNode, 0)
	if err != nil {
		return NodeCounts{}, err
	}
	c := NodeCounts{Total: len(es), ByState: map[string]int{}, ByZone: map[string]int{}}
	for _, e := range es {
		nd, err := decodeNode(e)
		if err != nil {
			return NodeCounts{}, err
		}
		c.ByState[nd.State]++
		if nd.Zone == "" {
			c.NoZone++
		} else {
			c.ByZone[nd.Zone]++
		}
	}
	return c, nil
}

// Node listing page sizes (ListPage).
const (
	DefaultNodePage = 100
	MaxNodePage     = 1000
)

// ListPage returns up to limit nodes (DefaultNodePage when limit is 0, at
// most MaxNodePage) whose names sort after the name after (the last name
// of the previous page; "" for the first page), by name, and the name to
// pass as after for the next page ("" when this page is the last). Only the
// page's nodes are decoded and have their certificate looked up.
func (n *Nodes) ListPage(ctx context.Context, after string, limit int) ([]NodeInfo, string, error) {
	switch {
	case limit < 0 || limit > MaxNodePage:
		return nil, "", errs.E(errs.Invalid, "limit: want 1 to %d, got %d", MaxNodePage, limit)
	case limit == 0:
		limit = DefaultNodePage
	}
	es, err := n.st.List(ctx, prefixNode, 0)
	if err != nil {
		return nil, "", err
	}
	// The entries are sorted by key, so by name.
	i := 0
	if after != "" {
		i = sort.Search(len(es), func(i int) bool { return es[i].Key > prefixNode+after })
	}
	end := min(i+limit, len(es))
	out := make([]NodeInfo, 0, end-i)
	for _, e := range es[i:end] {
		nd, err := decodeNode(e)
		if err != nil {
			return nil, "", err
		}
		in, err := n.info(nd)
		if err != nil {
			return nil, "", err
		}
		out = append(out, in)
	}
	next := ""
	if end < len(es) && len(out) > 0 {
		next = out[len(out)-1].Name
	}
	return out, next, nil
}

// Certificate states in a listing.
const (
	CertValid   = "valid"
	CertExpired = "expired"
	CertRevoked = "revoked"
)

// Certificate filters of ListCerts.
const (
	FilterIssued   = "issued"   // every recorded certificate
	FilterExpiring = "expiring" // valid, expiring within the window
	FilterRevoked  = "revoked"  // revoked
)

// CertInfo is one issued certificate in a listing.
type CertInfo struct {
	Cert
	State     string    `json:"state"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// ListCerts lists the certificates the cluster recorded issuing, ordered by
// expiry (soonest first). filter is "" or FilterIssued (all),
// FilterExpiring (valid and expiring within the window; within <= 0 means
// DefaultExpiringWithin) or FilterRevoked.
func (n *Nodes) ListCerts(ctx context.Context, filter string, within time.Duration) ([]CertInfo, error) {
	within, err := checkCertFilter(filter, within)
	if err != nil {
		return nil, err
	}
	es, err := n.st.List(ctx, prefixCert, 0)
	if err != nil {
		return nil, err
	}
	rs, err := n.st.List(ctx, prefixRevoked, 0)
	if err != nil {
		return nil, err
	}
	revoked := make(map[string]time.Time, len(rs))
	for _, e := range rs {
		var r Revocation
		if err := json.Unmarshal(e.Value, &r); err != nil {
			return nil, fmt.Errorf("authority: %s: %w", e.Key, err)
		}
		revoked[r.Serial] = r.RevokedAt
	}
	now := n.now().UTC()
	out := []CertInfo{}
	for _, e := range es {
		var r CertRecord
		if err := json.Unmarshal(e.Value, &r); err != nil {
			return nil, fmt.Errorf("authority: %s: %w", e.Key, err)
		}
		at, isRevoked := revoked[r.Serial]
		if ci, ok := certListed(r, at, isRevoked, now, filter, within); ok {
			out = append(out, ci)
		}
	}
	sortCerts(out)
	return out, nil
}

// ListNodeCerts is ListCerts of the certificates of node name only:
// errs.Invalid if name cannot be made canonical, errs.NotFound if no node
// has it. It reads the node's record, linearizably, then the records of
// the serials it keeps (at most the last 64, the ones whose records are
// kept), not the whole list. A node made again under the name of a
// revoked one (a new join token) lists the certificates issued to it
// since then, not those of the revoked one.
func (n *Nodes) ListNodeCerts(ctx context.Context, name, filter string, within time.Duration) ([]CertInfo, error) {
	within, err := checkCertFilter(filter, within)
	if err != nil {
		return nil, err
	}
	cn, err := names.Canonical(name)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "%s", err.Error())
	}
	nd, _, err := n.get(ctx, cn)
	if err != nil {
		return nil, err
	}
	if nd == nil {
		return nil, errs.E(errs.NotFound, "node %q not found", cn)
	}
	// After the linearizable read of the node, this server's local state
	// holds every record written before it.
	now := n.now().UTC()
	out := []CertInfo{}
	for _, serial := range nd.Serials {
		r, err := n.certRecord(serial)
		if err != nil {
			return nil, err
		}
		if r == nil {
			continue // issued before records were kept, as in ListCerts
		}
		at, isRevoked, err := n.revokedAt(serial)
		if err != nil {
			return nil, err
		}
		if ci, ok := certListed(*r, at, isRevoked, now, filter, within); ok {
			out = append(out, ci)
		}
	}
	sortCerts(out)
	return out, nil
}

// checkCertFilter checks a filter of ListCerts and returns the window of
// FilterExpiring.
func checkCertFilter(filter string, within time.Duration) (time.Duration, error) {
	switch filter {
	case "", FilterIssued, FilterExpiring, FilterRevoked:
	default:
		return 0, errs.E(errs.Invalid, "state: want issued, expiring or revoked, got %q", filter)
	}
	if within <= 0 {
		within = DefaultExpiringWithin
	}
	return within, nil
}

// certListed is what a listing says of r (revoked at at, if isRevoked) at
// now, and whether filter keeps it.
func certListed(r CertRecord, at time.Time, isRevoked bool, now time.Time, filter string, within time.Duration) (CertInfo, bool) {
	ci := CertInfo{Cert: r.Cert, State: CertValid}
	if isRevoked {
		ci.State, ci.RevokedAt = CertRevoked, at
	} else if now.After(r.NotAfter) {
		ci.State = CertExpired
	}
	switch filter {
	case FilterExpiring:
		return ci, ci.State == CertValid && !r.NotAfter.After(now.Add(within))
	case FilterRevoked:
		return ci, ci.State == CertRevoked
	}
	return ci, true
}

// sortCerts orders a listing by expiry, then serial.
func sortCerts(cs []CertInfo) {
	slices.SortStableFunc(cs, func(a, b CertInfo) int {
		if c := a.NotAfter.Compare(b.NotAfter); c != 0 {
			return c
		}
		return strings.Compare(a.Serial, b.Serial)
	})
}

// revokedAt looks serial's revocation up in this server's local state.
func (n *Nodes) revokedAt(serial string) (time.Time, bool, error) {
	e, err := n.st.GetStale(prefixRevoked + serial)
	if errs.Is(err, errs.NotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	var r Revocation
	if err := json.Unmarshal(e.Value, &r); err != nil {
		return time.Time{}, false, fmt.Errorf("authority: revocation %s: %w", serial, err)
	}
	return r.RevokedAt, true, nil
}

// ParseReenrollment parses a re-enrollment's certificate (PEM: the node's
// certificate, optionally followed by its chain; only CERTIFICATE blocks,
// at most MaxReenrollCertBytes) and CSR (see pki.ParseCSR, which checks the
// CSR's signature: the proof of possession of its key). It does not decide
// whether to trust either.
func ParseReenrollment(certPEM, csrPEM []byte) (*x509.Certificate, *x509.CertificateRequest, error) {
	if len(certPEM) == 0 {
		return nil, nil, errs.E(errs.Invalid, "certificate: required (the node's last certificate, PEM)")
	}
	if len(certPEM) > MaxReenrollCertBytes {
		return nil, nil, errs.E(errs.Invalid, "certificate: larger than %d bytes", MaxReenrollCertBytes)
	}
	var leaf *x509.Certificate
	rest := bytes.TrimSpace(certPEM)
	for len(rest) > 0 {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil || b.Type != "CERTIFICATE" || len(b.Headers) != 0 {
			return nil, nil, errs.E(errs.Invalid, "certificate: want CERTIFICATE PEM blocks only")
		}
		rest = bytes.TrimSpace(rest)
		if leaf != nil {
			continue // the chain: the server trusts only its own bundle
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, errs.E(errs.Invalid, "certificate: %s", strings.TrimPrefix(err.Error(), "x509: "))
		}
		leaf = c
	}
	if leaf == nil {
		return nil, nil, errs.E(errs.Invalid, "certificate: want CERTIFICATE PEM blocks only")
	}
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		return nil, nil, errs.Wrap(errs.Invalid, err, "csr: %s", strings.TrimPrefix(err.Error(), "pki: "))
	}
	return leaf, csr, nil
}

var errReenroll = errs.E(errs.Unauthenticated, "re-enrollment refused: the certificate is not this cluster's latest for an active node, or it is revoked")

// ReenrollIdentity checks a certificate presented for re-enrollment: it
// must chain to the trust bundle (its own expiry ignored: it is checked at
// the time it became valid), name an active node of this trust domain, be
// one the cluster recorded issuing to that node and not revoked, and carry
// the key of the node's latest certificate. The reason for a refusal is
// not told to the caller beyond errReenroll's.
func (n *Nodes) ReenrollIdentity(leaf *x509.Certificate) (*CertIdentity, error) {
	roots, err := n.ca.ClientCAs()
	if err != nil {
		return nil, err
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: leaf.NotBefore,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, errReenroll
	}
	if len(leaf.URIs) != 1 {
		return nil, errReenroll
	}
	td, kind, name, err := names.ParseSPIFFEID(leaf.URIs[0].String())
	if err != nil {
		return nil, errReenroll
	}
	mine, err := n.ca.TrustDomain()
	if err != nil {
		return nil, err
	}
	if td != mine || kind != names.KindNode {
		return nil, errReenroll
	}
	id := &CertIdentity{Name: name}
	if err := n.reenrollable(nil, id, leaf); err != nil {
		return nil, err
	}
	return id, nil
}

// reenrollable checks leaf against the node's record (nd, or read when nil).
func (n *Nodes) reenrollable(nd *Node, id *CertIdentity, leaf *x509.Certificate) error {
	serial := hex.EncodeToString(leaf.SerialNumber.Bytes())
	if _, err := n.st.GetStale(prefixRevoked + serial); err == nil {
		return errReenroll
	} else if !errs.Is(err, errs.NotFound) {
		return err
	}
	if nd == nil {
		var err error
		if nd, err = n.getStale(id.Name); err != nil {
			return err
		}
		if nd == nil {
			return errReenroll
		}
	}
	if nd.State != NodeActive || len(nd.Serials) == 0 || !slices.Contains(nd.Serials, serial) {
		return errReenroll
	}
	// The key must be the node's current one: that of its latest
	// certificate. A record of it exists for every certificate issued since
	// records were kept; before that, only the latest certificate itself.
	last := nd.Serials[len(nd.Serials)-1]
	r, err := n.certRecord(last)
	if err != nil {
		return err
	}
	switch {
	case r != nil && r.KeySHA256 != keyHash(leaf.RawSubjectPublicKeyInfo):
		return errReenroll
	case r == nil && last != serial:
		return errReenroll
	}
	id.Zone, id.SPIFFEID = nd.Zone, nd.SPIFFEID
	if leaf.URIs[0].String() != nd.SPIFFEID {
		return errReenroll
	}
	return nil
}

// Reenroll issues a new certificate to a node whose certificate expired
// (during an outage, say), for the same key: the CSR's key must be the
// certificate's, and the CSR's signature proves possession of it. id comes
// from ReenrollIdentity(leaf); the checks are repeated on the record the
// issuance is conditioned on.
func (n *Nodes) Reenroll(ctx context.Context, id *CertIdentity, leaf *x509.Certificate, csr *x509.CertificateRequest) (*Enrollment, error) {
	if !bytes.Equal(leaf.RawSubjectPublicKeyInfo, csr.RawSubjectPublicKeyInfo) {
		return nil, errs.E(errs.Unauthenticated, "re-enrollment refused: the CSR's key is not the certificate's")
	}
	return n.issue(ctx, id, csr, func(nd *Node) error { return n.reenrollable(nd, &CertIdentity{Name: id.Name}, leaf) }, nil)
}
