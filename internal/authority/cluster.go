package authority

import (
	"fmt"
	"net"
	"time"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/pki"
)

// ServerCertTTL is the lifetime of a server node's certificate; a node
// renews its own when less than a third is left, at unseal.
const ServerCertTTL = 90 * 24 * time.Hour

// ServerSPIFFEID is the identity of server node id in trust domain td.
// Server identities live under /server/, which package names refuses for
// API callers: a server certificate authenticates on the cluster port only.
func ServerSPIFFEID(td, id string) string { return "spiffe://" + td + "/server/" + id }

// ServerCert is a server node's certificate, issued for the cluster port
// and the API.
type ServerCert struct {
	Chain  []byte // PEM: the certificate, then the intermediate
	Bundle []byte // PEM: the trust bundle (root, intermediate)
}

// IssueServer certifies server node id (a canonical name) for the key in
// csrPEM, with hosts (IP addresses or DNS names) as SANs. The caller
// authorizes; issuance needs the CA, so the cluster must be unsealed.
func (n *Nodes) IssueServer(id string, csrPEM []byte, hosts []string) (*ServerCert, error) {
	if cid, err := names.Canonical(id); err != nil || cid != id {
		if err == nil {
			err = fmt.Errorf("not canonical (%q)", cid)
		}
		return nil, errs.E(errs.Invalid, "node_id: %v", err)
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
	cert, err := inter.Issue(pki.IssueRequest{CSR: csr, SPIFFEID: ServerSPIFFEID(td, id), DNSNames: dns, IPs: ips,
		TTL: ServerCertTTL, Now: n.now()})
	if err != nil {
		return nil, errs.E(errs.Invalid, "%v", err)
	}
	bundle, err := n.ca.Bundle()
	if err != nil {
		return nil, err
	}
	return &ServerCert{Chain: pki.Bundle(cert, inter.Cert), Bundle: bundle}, nil
}
