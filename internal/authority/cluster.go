package authority

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/pki"
	store "github.com/warden-sec/warden/internal/store/kv"
)

// DefaultServerCertTTL is the lifetime of a server node's certificate
// unless configured otherwise; a node renews its own at half its lifetime,
// so a removed node's certificate, revoked anyway, also expires soon.
const DefaultServerCertTTL = 24 * time.Hour

// prefixMember holds the member records of the cluster's server nodes:
// the membership the leader converges the Raft configuration to.
const prefixMember = "cluster/member/" // + node id → Member

// Member states and suffrages.
const (
	MemberActive  = "active"
	MemberRemoved = "removed"
	Voter         = "voter"
)

// Member is the record of a server node of the cluster: what the Raft
// configuration should hold for it. It is written in one transaction with
// the audit record of the request that changed it, before the Raft
// configuration changes; the leader then converges the configuration to
// the records, so a crash between the two is repaired, not lost.
type Member struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	// Suffrage is what the node is to become: a voter (an admitted node is
	// added as a non-voter and promoted once it has caught up).
	Suffrage string `json:"suffrage"`
	State    string `json:"state"`
	// Serial is the node's current certificate; Certs every unexpired one
	// issued to it, all revoked when it is removed.
	Serial  string       `json:"serial"`
	Certs   []MemberCert `json:"certs,omitempty"`
	Updated time.Time    `json:"updated"`
	// Version is the Raft index that last wrote the record (not stored).
	Version uint64 `json:"-"`
}

// MemberCert is a server certificate recorded in its member's record.
type MemberCert struct {
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
}

// ServerSPIFFEID is the identity of server node id in trust domain td.
// Server identities live under /server/, which package names refuses for
// API callers: a server certificate authenticates on the cluster port only.
func ServerSPIFFEID(td, id string) string { return "spiffe://" + td + "/server/" + id }

// RevokedKey is the store key that exists when the certificate with serial
// is revoked. The cluster port checks it without decrypting anything, so a
// sealed node refuses a revoked peer too.
func RevokedKey(serial *big.Int) string { return prefixRevoked + hex.EncodeToString(serial.Bytes()) }

// MemberKey is the store key of server node id's member record.
func MemberKey(id string) string { return prefixMember + id }

// ServerCert is a server node's certificate, issued for the cluster port
// and the API. IssueServer makes it; it is valid for the cluster once
// recorded (AdmitServer, RecordServerCert).
type ServerCert struct {
	Chain    []byte // PEM: the certificate, then the intermediate
	Bundle   []byte // PEM: the trust bundle (root, intermediate)
	Serial   string
	NotAfter time.Time
	cert     *x509.Certificate
	spiffeID string
}

// IssueServer certifies server node id (a canonical name) for the key in
// csrPEM, with hosts (IP addresses or DNS names) as SANs, for ttl
// (DefaultServerCertTTL if 0). It records nothing. The caller authorizes;
// issuance needs the CA, so the cluster must be unsealed.
func (n *Nodes) IssueServer(id string, csrPEM []byte, hosts []string, ttl time.Duration) (*ServerCert, error) {
	if cid, err := names.Canonical(id); err != nil || cid != id {
		if err == nil {
			err = fmt.Errorf("not canonical (%q)", cid)
		}
		return nil, errs.E(errs.Invalid, "node_id: %v", err)
	}
	if ttl <= 0 {
		ttl = DefaultServerCertTTL
	}
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		return nil, errs.E(errs.Invalid, "csr: %v", err)
	}
	td, err := n.ca.TrustDomain()
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	var dns []string
	seen := map[string]bool{}
	for _, h := range hosts {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			ips = append(ips, ip)
		} else if names.IsCanonical(h) {
			dns = append(dns, h)
		} else {
			return nil, errs.E(errs.Invalid, "host %q: neither an IP address nor a canonical DNS name", h)
		}
	}
	inter, err := n.issuer()
	if err != nil {
		return nil, err
	}
	sid := ServerSPIFFEID(td, id)
	cert, err := inter.Issue(pki.IssueRequest{CSR: csr, SPIFFEID: sid, DNSNames: dns, IPs: ips, TTL: ttl, Now: n.now()})
	if err != nil {
		return nil, errs.E(errs.Invalid, "%v", err)
	}
	bundle, err := n.ca.Bundle()
	if err != nil {
		return nil, err
	}
	return &ServerCert{Chain: pki.Bundle(cert, inter.Cert), Bundle: bundle, Serial: hex.EncodeToString(cert.SerialNumber.Bytes()),
		NotAfter: cert.NotAfter.UTC(), cert: cert, spiffeID: sid}, nil
}

// Member reads server node id's member record linearizably (nil if none).
func (n *Nodes) Member(ctx context.Context, id string) (*Member, error) {
	e, err := n.st.Get(ctx, MemberKey(id))
	if errs.Is(err, errs.NotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeMember(e)
}

// Members lists the member records, linearizably.
func (n *Nodes) Members(ctx context.Context) ([]Member, error) {
	es, err := n.st.List(ctx, prefixMember, 0)
	if err != nil {
		return nil, err
	}
	out := make([]Member, 0, len(es))
	for _, e := range es {
		m, err := decodeMember(e)
		if err != nil {
			return nil, err
		}
		out = append(out, *m)
	}
	return out, nil
}

func decodeMember(e store.Entry) (*Member, error) {
	var m Member
	if err := json.Unmarshal(e.Value, &m); err != nil {
		return nil, fmt.Errorf("authority: %s: %w", e.Key, err)
	}
	m.Version = e.Version
	return &m, nil
}

// AdmitServer records server node id, reached at addr, as an active member
// to become a voter, with sc as its certificate: the member record and the
// certificate record in one transaction, which carries the request's
// pending audit record (core.Txn). A node already active at another
// address is refused: remove it first. It returns the record written.
func (n *Nodes) AdmitServer(ctx context.Context, id, addr string, sc *ServerCert) (*Member, error) {
	return n.writeMember(ctx, id, func(m *Member, fresh bool) error {
		if !fresh && m.State == MemberActive && m.Address != addr {
			return errs.E(errs.Invalid, "node id %q is already a member at %s; remove it first", id, m.Address)
		}
		if fresh || m.State != MemberActive {
			m.Certs = nil // a removed node's certificates were revoked
		}
		m.Address, m.Suffrage, m.State = addr, Voter, MemberActive
		return nil
	}, sc)
}

// RecordServerCert records sc as the current certificate of server node
// id, reached at addr (a renewal by the node itself). A node without a
// record (the one that bootstrapped the cluster, or a member from before
// records were kept) gets one; a removed node is refused.
func (n *Nodes) RecordServerCert(ctx context.Context, id, addr string, sc *ServerCert) error {
	_, err := n.writeMember(ctx, id, func(m *Member, fresh bool) error {
		if fresh {
			m.Address, m.Suffrage, m.State = addr, Voter, MemberActive
		} else if m.State != MemberActive {
			return errs.E(errs.Denied, "node %q was removed from the cluster", id)
		}
		return nil
	}, sc)
	return err
}

// RemoveServer marks member id removed and revokes every unexpired
// certificate it was issued, in one transaction with the request's audit
// record and extra (what else goes with the member, such as its witness
// entry). A node the configuration holds without a record (from before
// records were kept) gets a removed record.
func (n *Nodes) RemoveServer(ctx context.Context, id string, extra ...store.Op) (*Member, error) {
	var revs []store.Op
	m, err := n.writeMember(ctx, id, func(m *Member, fresh bool) error {
		if fresh {
			m.ID, m.Suffrage = id, Voter
		}
		now := n.now().UTC()
		revs = []store.Op{{Type: store.OpPut, Key: keyCRLGen}}
		for _, c := range m.Certs {
			rb, _ := json.Marshal(Revocation{Serial: c.Serial, RevokedAt: now, ExpiresAt: c.NotAfter})
			revs = append(revs, store.Op{Type: store.OpPut, Key: prefixRevoked + c.Serial, Value: rb})
		}
		m.State, m.Certs = MemberRemoved, nil
		return nil
	}, nil, func() []store.Op { return append(revs, extra...) })
	return m, err
}

// writeMember reads id's record, lets change edit it (fresh: there was
// none), adds sc as its current certificate if given, and writes it with
// sc's record and any extra ops in one transaction conditioned on the
// version read, retrying on conflict.
func (n *Nodes) writeMember(ctx context.Context, id string, change func(m *Member, fresh bool) error, sc *ServerCert, extra ...func() []store.Op) (*Member, error) {
	for attempt := 0; ; attempt++ {
		m, err := n.Member(ctx, id)
		if err != nil {
			return nil, err
		}
		fresh := m == nil
		var ver uint64
		if fresh {
			m = &Member{ID: id}
		} else {
			ver = m.Version
		}
		if err := change(m, fresh); err != nil {
			return nil, err
		}
		now := n.now().UTC()
		var ops []store.Op
		if sc != nil {
			// Certificates that have expired need no revocation later.
			m.Certs = slices.DeleteFunc(m.Certs, func(c MemberCert) bool { return !c.NotAfter.After(now) })
			m.Certs = append(m.Certs, MemberCert{Serial: sc.Serial, NotAfter: sc.NotAfter})
			m.Serial = sc.Serial
			ops = append(ops, certRecordOp(id, sc.spiffeID, sc.Serial, sc.cert))
		}
		for _, f := range extra {
			ops = append(ops, f()...)
		}
		m.Updated = now
		b, _ := json.Marshal(m)
		ops = append(ops, store.Op{Type: store.OpPut, Key: MemberKey(id), Value: b})
		idx, err := n.st.Txn(ctx, store.Txn{Conds: []store.Cond{{Key: MemberKey(id), Version: ver}}, Ops: ops})
		if errs.Is(err, errs.Conflict) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return nil, err
		}
		m.Version = idx
		return m, nil
	}
}
