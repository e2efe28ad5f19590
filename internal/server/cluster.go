package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/warden-sec/warden/internal/api"
	"github.com/warden-sec/warden/internal/core"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/fsutil"
	"github.com/warden-sec/warden/internal/pki"
	"github.com/warden-sec/warden/pkg/client"
)

// clusterNode is this server's identity among the cluster's servers: a key
// made here (<data>/cluster/node-key.pem, 0600) and a certificate from the
// cluster's CA (node.pem, with the trust bundle in ca.pem). It secures the
// cluster port both ways, and the API once issued.
type clusterNode struct {
	id    string
	dir   string
	hosts []string // SANs: the hosts of the cluster and API addresses
	key   *ecdsa.PrivateKey
	cur   atomic.Pointer[nodeCert] // nil until the node has a certificate
	// installed runs after a new certificate is in place.
	installed func()
}

func loadClusterNode(dir, id string, hosts []string) (*clusterNode, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := &clusterNode{id: id, dir: dir, hosts: hosts}
	keyFile := filepath.Join(dir, "node-key.pem")
	b, err := os.ReadFile(keyFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if c.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(c.key)
		if err != nil {
			return nil, err
		}
		if err := fsutil.WriteFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("cluster: %s: no PEM key", keyFile)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("cluster: %s: %w", keyFile, err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("cluster: %s: not an ECDSA key", keyFile)
		}
		c.key = ek
	}
	chain, err1 := os.ReadFile(filepath.Join(dir, "node.pem"))
	bundle, err2 := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err1 == nil && err2 == nil {
		if err := c.use(chain, bundle); err != nil {
			return nil, fmt.Errorf("cluster: %s: %w", dir, err)
		}
	}
	return c, nil
}

// csr returns a certificate request for this node's key.
func (c *clusterNode) csr() ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, c.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// install checks a new certificate, stores it and starts using it.
func (c *clusterNode) install(chain, bundle []byte) error {
	if err := c.use(chain, bundle); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(c.dir, "ca.pem"), bundle, 0o644); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(c.dir, "node.pem"), chain, 0o644); err != nil {
		return err
	}
	if c.installed != nil {
		c.installed()
	}
	return nil
}

// nodeCert is this node's certificate with the trust it was issued under.
type nodeCert struct {
	tls   *tls.Certificate
	roots *x509.CertPool // the cluster's trust bundle
	td    string         // the cluster's trust domain
}

// cert returns this node's certificate, or nil.
func (c *clusterNode) cert() *tls.Certificate {
	if nc := c.cur.Load(); nc != nil {
		return nc.tls
	}
	return nil
}

// use checks chain (leaf, intermediates) against bundle and this node's
// key and identity, and makes it current.
func (c *clusterNode) use(chain, bundle []byte) error {
	certs, err := pki.ParseCertificates(chain)
	if err != nil {
		return fmt.Errorf("cluster certificate: %w", err)
	}
	if len(certs) == 0 {
		return errors.New("cluster certificate: no certificate")
	}
	if pub, ok := certs[0].PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&c.key.PublicKey) {
		return errors.New("cluster certificate: not for this node's key")
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		return errors.New("cluster certificate: empty trust bundle")
	}
	td, id, err := verifyServer(certs, roots, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return fmt.Errorf("cluster certificate: %w", err)
	}
	if id != c.id {
		return fmt.Errorf("cluster certificate: not a server certificate for node %q", c.id)
	}
	raw := make([][]byte, len(certs))
	for i, c := range certs {
		raw[i] = c.Raw
	}
	c.cur.Store(&nodeCert{tls: &tls.Certificate{Certificate: raw, PrivateKey: c.key, Leaf: certs[0]}, roots: roots, td: td})
	return nil
}

// verifyServer checks a chain (leaf first) against roots for usage and
// returns the server identity it names.
func verifyServer(chain []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) (td, id string, err error) {
	inter := x509.NewCertPool()
	for _, ic := range chain[1:] {
		inter.AddCert(ic)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return "", "", err
	}
	td, id, ok := serverIdentity(chain[0])
	if !ok {
		return "", "", errors.New("not a server certificate of a Warden cluster")
	}
	return td, id, nil
}

// serverIdentity reads spiffe://<td>/server/<id> from a certificate.
func serverIdentity(cert *x509.Certificate) (td, id string, ok bool) {
	if len(cert.URIs) != 1 {
		return "", "", false
	}
	u := cert.URIs[0]
	if u.Scheme != "spiffe" {
		return "", "", false
	}
	id, ok = strings.CutPrefix(u.Path, "/server/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", "", false
	}
	return u.Host, id, true
}

// needsCert reports whether this node has no certificate or less than a
// third of its lifetime left.
func (c *clusterNode) needsCert(now time.Time) bool {
	cert := c.cert()
	if cert == nil {
		return true
	}
	l := cert.Leaf
	return now.After(l.NotAfter.Add(-l.NotAfter.Sub(l.NotBefore) / 3))
}

var errNoClusterCert = errors.New("cluster: this node has no cluster certificate yet (initialize it, or join it to a cluster)")

// verifyPeer checks a peer on the cluster port: a chain to the cluster's
// trust bundle, and a server identity in the same trust domain. Node and
// service certificates from the same CA are refused.
func (c *clusterNode) verifyPeer(cs tls.ConnectionState, usage x509.ExtKeyUsage) error {
	nc := c.cur.Load()
	if nc == nil {
		return errNoClusterCert
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("cluster: peer sent no certificate")
	}
	td, _, err := verifyServer(cs.PeerCertificates, nc.roots, usage)
	if err != nil {
		return fmt.Errorf("cluster: peer certificate: %w", err)
	}
	if td != nc.td {
		return errors.New("cluster: peer is not a server of this cluster")
	}
	return nil
}

func (c *clusterNode) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if cert := c.cert(); cert != nil {
				return cert, nil
			}
			return nil, errNoClusterCert
		},
		VerifyConnection: func(cs tls.ConnectionState) error { return c.verifyPeer(cs, x509.ExtKeyUsageClientAuth) },
	}
}

func (c *clusterNode) clientTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cert := c.cert(); cert != nil {
				return cert, nil
			}
			return nil, errNoClusterCert
		},
		// The trust bundle arrives at join time and may change: the chain
		// is verified in VerifyConnection against the current one.
		InsecureSkipVerify: true,
		VerifyConnection:   func(cs tls.ConnectionState) error { return c.verifyPeer(cs, x509.ExtKeyUsageServerAuth) },
	}
}

// cluster implements api.Cluster for a server in cluster mode.
type cluster struct {
	s  *Server
	cn *clusterNode
}

var _ api.Cluster = (*cluster)(nil)

func (c *cluster) RemovePeer(ctx context.Context, id string) error {
	if id == c.s.st.NodeID() && c.s.st.IsLeader() {
		return errs.E(errs.Invalid, "node %q is the leader: remove it from another node after it steps down, or stop it first", id)
	}
	return c.s.st.RemovePeer(ctx, id)
}

// BeforeInit makes a node without cluster state a cluster of one, so init
// can commit.
func (c *cluster) BeforeInit(ctx context.Context) error {
	if c.s.st.HasState() {
		return nil
	}
	if err := c.s.st.BootstrapSelf(); err != nil {
		return err
	}
	c.s.log.Info("bootstrapped a new cluster", "node_id", c.cn.id, "cluster_addr", c.s.st.ClusterAddr())
	return c.s.st.WaitLeader(ctx)
}

// Unsealed issues this node's own cluster certificate if it has none or it
// is getting old (the first node gets its first one here).
func (c *cluster) Unsealed(ctx context.Context) error {
	c.promoteSelf(ctx)
	if !c.cn.needsCert(c.s.now()) {
		return nil
	}
	csr, err := c.cn.csr()
	if err != nil {
		return err
	}
	sc, err := c.s.nodes.IssueServer(c.cn.id, csr, c.cn.hosts)
	if err != nil {
		return err
	}
	if err := c.cn.install(sc.Chain, sc.Bundle); err != nil {
		return err
	}
	c.s.log.Info("issued this node's cluster certificate", "node_id", c.cn.id)
	return nil
}

// Admit runs on a member of an unsealed cluster: it certifies a joining
// node and adds it as a non-voter (it promotes itself once caught up).
func (c *cluster) Admit(ctx context.Context, r api.JoinRequest) (*api.JoinResponse, error) {
	host, _, err := net.SplitHostPort(r.ClusterAddr)
	if err != nil || host == "" {
		return nil, errs.E(errs.Invalid, "cluster_addr: want host:port, got %q", r.ClusterAddr)
	}
	sc, err := c.s.nodes.IssueServer(r.NodeID, []byte(r.CSR), append([]string{host}, r.Hosts...))
	if err != nil {
		return nil, err
	}
	if err := c.s.st.AddNonvoter(ctx, r.NodeID, r.ClusterAddr); err != nil {
		return nil, core.StoreError(err)
	}
	return &api.JoinResponse{Certificate: string(sc.Chain), Bundle: string(sc.Bundle), Index: c.s.st.Status().CommitIndex}, nil
}

// Join runs on a new node: it asks the cluster at leaderAddr (with the
// caller's credentials) to admit it, installs the certificate it gets,
// waits to catch up and becomes a voter.
func (c *cluster) Join(ctx context.Context, leaderAddr string, leaderCA []byte, token string) error {
	if c.s.st.HasState() {
		return errs.E(errs.Invalid, "this node already belongs to a cluster (it has Raft state)")
	}
	cl, err := client.New(client.Config{Address: leaderAddr, CACertPEM: leaderCA, Token: token, Timeout: 30 * time.Second})
	if err != nil {
		return errs.E(errs.Invalid, "leader_api_addr, leader_ca_cert: %v", err)
	}
	csr, err := c.cn.csr()
	if err != nil {
		return err
	}
	jr, err := cl.RaftAdmit(ctx, client.RaftAdmission{NodeID: c.cn.id, ClusterAddr: c.s.st.ClusterAddr(), CSR: string(csr), Hosts: c.cn.hosts})
	var ae *client.APIError
	switch {
	case errors.As(err, &ae):
		code := errs.Unavailable
		switch ae.StatusCode {
		case http.StatusUnauthorized:
			code = errs.Unauthenticated
		case http.StatusForbidden:
			code = errs.Denied
		case http.StatusBadRequest:
			code = errs.Invalid
		}
		return errs.E(code, "join: the cluster refused: %s", strings.Join(ae.Errors, "; "))
	case err != nil:
		return errs.Wrap(errs.Unavailable, err, "join: cannot reach the cluster at %s", leaderAddr)
	}
	if err := c.cn.install([]byte(jr.Certificate), []byte(jr.Bundle)); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	// The leader now replicates to this node; once it has caught up, it
	// becomes a voter.
	if err := c.s.st.WaitLeader(ctx); err != nil {
		return errs.Wrap(errs.Unavailable, err, "join: admitted, but no contact with the leader yet; it will replicate here when it can")
	}
	if err := c.s.st.WaitApplied(ctx, jr.Index); err != nil {
		return errs.Wrap(errs.Unavailable, err, "join: admitted, still catching up")
	}
	if err := c.s.st.AddVoter(ctx, c.cn.id, c.s.st.ClusterAddr()); err != nil {
		return core.StoreError(err)
	}
	c.s.log.Info("joined the cluster", "node_id", c.cn.id, "via", leaderAddr)
	return nil
}

// sanHosts are the hosts a server's certificate names: those of its
// listen addresses (unless unspecified), and localhost.
func sanHosts(addrs ...string) []string {
	hosts := []string{"localhost", "127.0.0.1"}
	for _, a := range addrs {
		h, _, err := net.SplitHostPort(a)
		if err != nil || h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			continue
		}
		hosts = append(hosts, strings.ToLower(h))
	}
	return hosts
}

// clusterTLS makes the API serve this node's cluster certificate once it
// has one (unless the operator gave a certificate), and keeps the CA file
// clients use, <data>/tls/api-ca.pem, holding both the bootstrap CA and the
// cluster's trust bundle, so one file works before and after.
func (s *Server) clusterTLS(tlsCfg *tls.Config, operatorCert bool) error {
	if operatorCert {
		return nil
	}
	boot := tlsCfg.Certificates[0]
	tlsCfg.Certificates = nil
	tlsCfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		if c := s.cn.cert(); c != nil {
			return c, nil
		}
		return &boot, nil
	}
	bootCA, err := os.ReadFile(s.caFile)
	if err != nil {
		return err
	}
	apiCA := filepath.Join(filepath.Dir(s.caFile), "api-ca.pem")
	write := func() error {
		b := append([]byte(nil), bootCA...)
		if bundle, err := os.ReadFile(filepath.Join(s.cn.dir, "ca.pem")); err == nil {
			b = append(b, bundle...)
		}
		return fsutil.WriteFileAtomic(apiCA, b, 0o644)
	}
	s.cn.installed = func() {
		if err := write(); err != nil {
			s.log.Error("could not update the API CA file", "file", apiCA, "err", err)
		}
	}
	s.caFile = apiCA
	return write()
}

// retryJoin asks the members in --retry-join, in turn, to admit this node
// until one does (or the server closes), backing off from 1 s to 30 s.
func (s *Server) retryJoin(ctx context.Context) {
	c := s.cluster
	wait := time.Second
	for {
		for _, addr := range s.cfg.RetryJoin {
			actx, cancel := context.WithTimeout(ctx, time.Minute)
			err := c.Join(actx, addr, s.cfg.RetryJoinCA, s.cfg.RetryJoinToken)
			cancel()
			if err == nil {
				s.log.Info("joined the cluster (retry-join); unseal this node with the cluster's unseal keys", "via", addr)
				return
			}
			if s.st.HasState() {
				// Admitted, but still catching up or promoting: Raft carries on
				// by itself; a later unseal finds the state.
				s.log.Warn("retry-join: admitted, not yet a voter", "via", addr, "err", err)
				return
			}
			s.log.Warn("retry-join: not admitted yet", "via", addr, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// promoteSelf asks the leader to make this node a voter if it is still a
// non-voter (a join that was admitted but interrupted before promotion).
func (c *cluster) promoteSelf(ctx context.Context) {
	peers, err := c.s.st.Peers()
	if err != nil {
		return
	}
	for _, p := range peers {
		if p.ID == c.cn.id && !p.Voter {
			if err := c.s.st.AddVoter(ctx, p.ID, p.Address); err != nil {
				c.s.log.Warn("this node is a non-voter and could not be promoted yet", "err", err)
			} else {
				c.s.log.Info("promoted this node to voter")
			}
		}
	}
}
