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
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/warden-sec/warden/internal/api"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/authority"
	"github.com/warden-sec/warden/internal/cosign"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/fsutil"
	"github.com/warden-sec/warden/internal/pki"
	"github.com/warden-sec/warden/internal/raftnet"
	"github.com/warden-sec/warden/internal/store"
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

// needsCert reports whether this node has no certificate or has used half
// of its certificate's lifetime (it then renews it).
func (c *clusterNode) needsCert(now time.Time) bool {
	cert := c.cert()
	if cert == nil {
		return true
	}
	// Certificates start pki.Backdate before they were issued: the
	// lifetime counts from issuance, or a short one would always look
	// half-used.
	l := cert.Leaf
	issued := l.NotBefore.Add(pki.Backdate)
	if issued.After(l.NotAfter) {
		issued = l.NotBefore
	}
	return now.After(issued.Add(l.NotAfter.Sub(issued) / 2))
}

var errNoClusterCert = errors.New("cluster: this node has no cluster certificate yet (initialize it, or join it to a cluster)")

// verifyPeer checks a peer on the cluster port at the handshake: a chain to
// the cluster's trust bundle, and a server identity in the same trust
// domain. Node and service certificates from the same CA are refused. Which
// node it is, and whether it may still ask anything, is decided on every
// request (peerGate, store.CheckPeer).
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

// peerGate is the cluster port's raftnet.Gate: the peer's certificate,
// verified at the handshake (verifyPeer), names a server node; it must not
// have expired since, nor be revoked. Revocation is read from this node's
// local state without decrypting (authority.RevokedKey), so a sealed node
// refuses a revoked peer too. Whether the node is a member is the store's
// question (store.CheckPeer), asked by the transport after this one.
type peerGate struct {
	now func() time.Time
	st  atomic.Pointer[store.Store] // nil until the store is open: refuse
}

var _ raftnet.Gate = (*peerGate)(nil)

func (g *peerGate) Identify(cs *tls.ConnectionState) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("cluster: peer sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	_, id, ok := serverIdentity(leaf)
	if !ok {
		return "", errors.New("cluster: not a server certificate")
	}
	if g.now().After(leaf.NotAfter) {
		return "", fmt.Errorf("cluster: node %q: certificate expired", id)
	}
	st := g.st.Load()
	if st == nil {
		return "", errors.New("cluster: not serving yet")
	}
	switch _, err := st.GetStale(authority.RevokedKey(leaf.SerialNumber)); {
	case err == nil:
		return "", fmt.Errorf("cluster: node %q: certificate revoked", id)
	case !errors.Is(err, store.ErrNotFound):
		return "", fmt.Errorf("cluster: revocation check: %w", err)
	}
	return id, nil
}

// clusterTransport makes the cluster port: mutual TLS with this node's
// certificate, peers identified and checked on every request by gate.
func clusterTransport(cn *clusterNode, bind string, gate *peerGate) (*raftnet.NetTransport, error) {
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft-net", Level: hclog.Error, Output: io.Discard})
	return raftnet.TLSTransport(bind, cn.serverTLS(), cn.clientTLS(), gate, hlog)
}

// cluster implements api.Cluster for a server in cluster mode, and keeps
// the Raft configuration converged to the member records (on the leader)
// and this node's certificate fresh (on every node).
type cluster struct {
	s  *Server
	cn *clusterNode
	// certTTL is the lifetime of the server certificates this node issues.
	certTTL time.Duration
	// tick is how often the background loop looks at its certificate and,
	// on the leader, whether the configuration or the records changed.
	tick time.Duration

	kick chan struct{} // asks the loop for a reconciliation now
	stop context.CancelFunc
	done chan struct{}
	// waitLogged is when the loop last logged why it could not promote
	// a node yet, by node ID (only the loop touches it).
	waitLogged map[string]time.Time
}

var _ api.Cluster = (*cluster)(nil)

func newCluster(s *Server, cn *clusterNode, certTTL time.Duration) *cluster {
	if certTTL <= 0 {
		certTTL = authority.DefaultServerCertTTL
	}
	return &cluster{s: s, cn: cn, certTTL: certTTL, tick: 250 * time.Millisecond, kick: make(chan struct{}, 1)}
}

// RemovePeer removes server node id: its member record says removed and
// its certificates are revoked, in one transaction with the request's
// audit record; then the configuration drops it (or the leader's
// reconciler does, if this fails half-way).
func (c *cluster) RemovePeer(ctx context.Context, id string) error {
	st := c.s.st
	if id == st.NodeID() && st.IsLeader() {
		return errs.E(errs.Invalid, "node %q is the leader: remove it from another node after it steps down, or stop it first", id)
	}
	m, err := c.s.nodes.Member(ctx, id)
	if err != nil {
		return err
	}
	if m == nil && !c.inConfig(id) {
		return errs.E(errs.NotFound, "no member with id %q", id)
	}
	// The node's witness goes with it: its entry is deleted in the same
	// transaction.
	if _, err := c.s.nodes.RemoveServer(ctx, id, cosign.ServerDelete(id)); err != nil {
		return err
	}
	c.poke()
	if err := st.RemovePeer(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
		c.s.log.Warn("member record says removed; the leader will drop the node from the configuration", "node_id", id, "err", err)
	}
	return nil
}

func (c *cluster) inConfig(id string) bool {
	ps, err := c.s.st.Peers()
	if err != nil {
		return false
	}
	for _, p := range ps {
		if p.ID == id {
			return true
		}
	}
	return false
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
// is half-way through its life (the first node gets its first one here).
func (c *cluster) Unsealed(ctx context.Context) error {
	return c.renewIfDue(ctx)
}

// renewIfDue issues, records and installs a new certificate for this node
// when needsCert says so. The certificate is recorded (in the node's member
// record, with an audit record) before it is used; a node that has no
// member record yet (the one that bootstrapped the cluster) gets one.
func (c *cluster) renewIfDue(ctx context.Context) error {
	now := c.s.now()
	if !c.cn.needsCert(now) {
		return nil
	}
	csr, err := c.cn.csr()
	if err != nil {
		return err
	}
	sc, err := c.s.nodes.IssueServer(c.cn.id, csr, c.cn.hosts, c.certTTL)
	if err != nil {
		return err
	}
	// The record of a change the server makes on its own, naming this node.
	entry := auditlog.SystemEntry(now, c.cn.id, "raft.renew-cert", `System::"warden"`)
	entry.RequestID, entry.SourceAddr = "renew-"+sc.Serial, c.s.st.ClusterAddr()
	rctx, _ := c.s.audit.Pending(store.WithPrincipal(ctx, entry.Principal), entry)
	if err := c.s.nodes.RecordServerCert(rctx, c.cn.id, c.s.st.ClusterAddr(), sc); err != nil {
		return fmt.Errorf("cluster: record this node's certificate: %w", err)
	}
	if err := c.cn.install(sc.Chain, sc.Bundle); err != nil {
		return err
	}
	c.s.log.Info("issued this node's cluster certificate", "node_id", c.cn.id, "serial", sc.Serial, "not_after", sc.NotAfter)
	return nil
}

// Admit runs on a member of an unsealed cluster: it certifies a joining
// node and records it as a member (one transaction, with the request's
// audit record), then has it added as a non-voter; the leader promotes it
// once it has caught up.
func (c *cluster) Admit(ctx context.Context, r api.JoinRequest) (*api.JoinResponse, error) {
	host, _, err := net.SplitHostPort(r.ClusterAddr)
	if err != nil || host == "" {
		return nil, errs.E(errs.Invalid, "cluster_addr: want host:port, got %q", r.ClusterAddr)
	}
	// Refused before anything is recorded: the configuration could not
	// take it.
	for _, p := range c.peers() {
		switch {
		case p.ID != r.NodeID && p.Address == r.ClusterAddr:
			return nil, errs.E(errs.Invalid, "cluster_addr %s belongs to member %q", r.ClusterAddr, p.ID)
		case p.ID == r.NodeID && p.Address != r.ClusterAddr:
			return nil, errs.E(errs.Invalid, "node id %q is already a member at %s; remove it first", r.NodeID, p.Address)
		}
	}
	sc, err := c.s.nodes.IssueServer(r.NodeID, []byte(r.CSR), append([]string{host}, r.Hosts...), c.certTTL)
	if err != nil {
		return nil, err
	}
	if _, err := c.s.nodes.AdmitServer(ctx, r.NodeID, r.ClusterAddr, sc); err != nil {
		return nil, err
	}
	c.poke()
	if err := c.s.st.AddNonvoter(ctx, r.NodeID, r.ClusterAddr); err != nil {
		// Recorded: the leader's reconciler adds it.
		c.s.log.Warn("admitted node recorded; the leader will add it to the configuration", "node_id", r.NodeID, "err", err)
	}
	var voters []string
	for _, p := range c.peers() {
		if p.Voter {
			voters = append(voters, p.ID)
		}
	}
	return &api.JoinResponse{Certificate: string(sc.Chain), Bundle: string(sc.Bundle), Index: c.s.st.Status().CommitIndex, Members: voters}, nil
}

func (c *cluster) peers() []store.Peer {
	ps, _ := c.s.st.Peers()
	return ps
}

// Join runs on a new node: it asks the cluster at leaderAddr (with the
// caller's credentials) to admit it, installs the certificate it gets,
// and waits to catch up and to be promoted to voter by the leader.
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
	// Until the first configuration arrives, accept Raft traffic only from
	// the voters of the configuration that admitted this node.
	c.s.st.AcceptJoin(jr.Members)
	if err := c.cn.install([]byte(jr.Certificate), []byte(jr.Bundle)); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	// The leader now replicates to this node; once it has caught up, the
	// leader makes it a voter.
	if err := c.s.st.WaitLeader(ctx); err != nil {
		return errs.Wrap(errs.Unavailable, err, "join: admitted, but no contact with the leader yet; it will replicate here when it can")
	}
	if err := c.s.st.WaitApplied(ctx, jr.Index); err != nil {
		return errs.Wrap(errs.Unavailable, err, "join: admitted, still catching up")
	}
	if err := c.waitVoter(ctx); err != nil {
		return errs.Wrap(errs.Unavailable, err, "join: admitted and caught up; the leader has not made this node a voter yet")
	}
	c.s.log.Info("joined the cluster", "node_id", c.cn.id, "via", leaderAddr)
	return nil
}

// waitVoter waits until this node is a voter of its configuration.
func (c *cluster) waitVoter(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		for _, p := range c.peers() {
			if p.ID == c.cn.id && p.Voter {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// poke asks the background loop to reconcile now.
func (c *cluster) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// start runs the background loop until close.
func (c *cluster) start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.stop, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		c.run(ctx)
	}()
}

func (c *cluster) close() {
	if c.stop != nil {
		c.stop()
		<-c.done
	}
}

// run renews this node's certificate when due and, on the leader,
// reconciles the Raft configuration with the member records: on gaining
// leadership, whenever the configuration or a member record changes, on a
// poke, at least every reconcileEvery, while a node waits to be promoted
// once it has caught up (every tick), and after a step failed (backing off
// to maxBackoff). A failed renewal is retried after maxBackoff.
func (c *cluster) run(ctx context.Context) {
	const (
		reconcileEvery = 30 * time.Second
		maxBackoff     = 5 * time.Second
	)
	t := time.NewTicker(c.tick)
	defer t.Stop()
	var (
		wasLeader  bool
		seen       [2]uint64 // configuration index, newest member record version
		last       time.Time
		backoff    time.Duration // 0: nothing pending
		renewAfter time.Time
	)
	for {
		force := false
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
			force = true
		case <-t.C:
		}
		if c.s.core.Sealed() {
			wasLeader = false
			continue
		}
		if now := time.Now(); now.After(renewAfter) {
			if err := c.renewIfDue(ctx); err != nil {
				c.s.log.Warn("could not renew this node's cluster certificate", "err", err)
				renewAfter = now.Add(maxBackoff)
			}
		}
		if !c.s.st.IsLeader() {
			wasLeader = false
			continue
		}
		cur := [2]uint64{c.s.st.ConfigurationIndex(), c.memberVersion()}
		since := time.Since(last)
		due := !wasLeader || force || cur != seen || since >= reconcileEvery || (backoff > 0 && since >= backoff)
		if !due {
			continue
		}
		wasLeader, seen, last = true, cur, time.Now()
		pending, err := c.reconcile(ctx)
		switch {
		case err != nil:
			c.s.log.Warn("cluster membership: reconciliation incomplete; will retry", "err", err)
			backoff = min(max(2*backoff, c.tick), maxBackoff)
		case pending:
			backoff = c.tick // a node catching up: look again soon
		default:
			backoff = 0
		}
	}
}

// memberVersion is the newest version among the member records, read
// locally without decrypting: it changes with every record written.
func (c *cluster) memberVersion() uint64 {
	es, err := c.s.st.ListStale(authority.MemberKey(""), 0)
	if err != nil {
		return 0
	}
	var v uint64
	for _, e := range es {
		v = max(v, e.Version)
	}
	return v
}

// reconcile, on the leader, makes the Raft configuration what the member
// records say: a removed member is dropped, an active member missing from
// it is added as a non-voter, and a non-voter to become a voter is promoted
// once it has applied the record that admitted it. A record is carried out
// into the configuration (added or dropped) only if it is newer than the
// configuration (a record left by a change interrupted between the two):
// one older than the configuration was overtaken by a later change, or was
// brought back by a snapshot restore, and must not resurrect a removed node.
// Members without a record are left alone. It reports whether a node is
// still waiting to be promoted.
func (c *cluster) reconcile(ctx context.Context) (pending bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ms, err := c.s.nodes.Members(ctx)
	if err != nil {
		return true, err
	}
	st := c.s.st
	cfgIndex := st.ConfigurationIndex()
	cf := st.Raft().GetConfiguration()
	cfg := map[string]raft.Server{}
	for _, sv := range cf.Configuration().Servers {
		cfg[string(sv.ID)] = sv
	}
	var errsSeen []error
	for _, m := range ms {
		p, in := cfg[m.ID]
		switch {
		case m.State == authority.MemberRemoved && in && m.Version > cfgIndex && m.ID == st.NodeID():
			c.s.log.Warn("this node, the leader, is recorded as removed: remove it from another node once it has stepped down", "node_id", m.ID)
		case m.State == authority.MemberRemoved && in && m.Version > cfgIndex:
			err = st.RemovePeer(ctx, m.ID)
		case m.State != authority.MemberActive:
		case !in && m.Version > cfgIndex:
			err = st.AddNonvoter(ctx, m.ID, m.Address)
		case !in:
			// Overtaken by a later configuration: left as it is.
		case p.Suffrage != raft.Voter && m.Suffrage == authority.Voter:
			// Not reachable yet is not a failure: it is still joining.
			// Asked with a short deadline: a peer that does not answer
			// (one that has not installed its certificate yet, say)
			// must not hold up this loop, which retries every tick.
			sctx, cancel := context.WithTimeout(ctx, peerStatusTimeout)
			applied, _, serr := st.PeerStatus(sctx, string(p.Address))
			cancel()
			if serr == nil && applied >= m.Version {
				err = st.AddVoter(ctx, m.ID, string(p.Address))
				delete(c.waitLogged, m.ID)
			} else {
				pending = true
				c.logWaiting(m.ID, applied, m.Version, serr)
			}
		}
		if err != nil {
			errsSeen = append(errsSeen, fmt.Errorf("%s: %w", m.ID, err))
			err = nil
		}
	}
	return pending, errors.Join(errsSeen...)
}

// logWaiting says, at most every 5 seconds per node, why a joining node is
// not a voter yet.
func (c *cluster) logWaiting(id string, applied, want uint64, err error) {
	if c.waitLogged == nil {
		c.waitLogged = map[string]time.Time{}
	}
	if time.Since(c.waitLogged[id]) < 5*time.Second {
		return
	}
	c.waitLogged[id] = time.Now()
	if err != nil {
		c.s.log.Info("a joining node is not a voter yet: its status is unknown", "node_id", id, "err", err)
		return
	}
	c.s.log.Info("a joining node is not a voter yet: still catching up", "node_id", id, "applied", applied, "want", want)
}

// peerStatusTimeout bounds the reconciler's question to a joining node.
const peerStatusTimeout = 2 * time.Second

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
