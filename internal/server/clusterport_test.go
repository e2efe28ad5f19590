package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/authority"
	"github.com/warden-sec/warden/internal/raftnet"
	"github.com/warden-sec/warden/internal/store"
	"github.com/warden-sec/warden/pkg/client"
)

// startCluster starts three servers, initializes the first, joins the
// others through the API and unseals them all. It returns the nodes, the
// root token and the cluster's trust bundle.
func startCluster(t *testing.T, certTTL time.Duration) ([]*clusterNode, string, []byte) {
	t.Helper()
	ctx := context.Background()
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		nodes[i] = &clusterNode{t: t, id: fmt.Sprint("n", i+1), dir: t.TempDir(), clusterAddr: freeAddr(t), certTTL: certTTL}
		nodes[i].start()
	}
	init, err := nodes[0].client("").Init(ctx, client.InitRequest{KeyShares: 1, KeyThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	nodes[0].unseal(ctx, init.UnsealKeys)
	bundle, err := os.ReadFile(filepath.Join(nodes[0].dir, "cluster", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		if err := n.client(init.RootToken).RaftJoin(ctx, nodes[0].srv.Addr(), bundle); err != nil {
			t.Fatalf("%s: join: %v", n.id, err)
		}
		n.unseal(ctx, init.UnsealKeys)
	}
	return nodes, init.RootToken, bundle
}

// probe is a stand-in for a server node on the cluster port: a transport
// that presents the certificate it is given (a node's real one) and never
// serves anything (it has no store, so it refuses all traffic to it).
type probe struct {
	*raftnet.NetTransport
	cert atomic.Pointer[tls.Certificate]
}

type noGate struct{}

func (noGate) Identify(*tls.ConnectionState) (string, error) {
	return "", errors.New("a probe serves nothing")
}

func newProbe(t *testing.T, bundle []byte) *probe {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	p := &probe{}
	get := func() (*tls.Certificate, error) {
		if c := p.cert.Load(); c != nil {
			return c, nil
		}
		return nil, errors.New("no certificate yet")
	}
	tr, err := raftnet.TLSTransport("127.0.0.1:0",
		&tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return get() }, ClientCAs: roots},
		&tls.Config{GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return get() }, RootCAs: roots},
		noGate{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	p.NetTransport = tr
	return p
}

// status asks the node at addr for its indexes, as node (the claim the
// receiver compares with the certificate). A refusal is an error.
func (p *probe) status(ctx context.Context, addr, node string) error {
	return p.ask(ctx, addr, &store.PeerRequest{Op: store.PeerStatus, Node: node})
}

func (p *probe) ask(ctx context.Context, addr string, req *store.PeerRequest) error {
	resp, err := p.Forward(ctx, raft.ServerAddress(addr), req)
	if err != nil {
		return err
	}
	if resp.Err != "" {
		return fmt.Errorf("%s: %s", resp.Err, resp.Msg)
	}
	return nil
}

// heartbeat sends a stale AppendEntries (term 0: answered, changes
// nothing) over the probe's pooled Raft connection to addr.
func (p *probe) heartbeat(id, addr string) error {
	var resp raft.AppendEntriesResponse
	return p.AppendEntries(raft.ServerID(id), raft.ServerAddress(addr), &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("probe"), Addr: []byte("probe")}}, &resp)
}

// sameCommand checks that the newest audit entry of action after leaf
// index from was committed by the Raft command that last wrote key (a
// stored leaf records its command's index; a key's version is the index of
// the command that wrote it), and returns that entry's leaf index.
func sameCommand(t *testing.T, n *clusterNode, root, action, key string, from uint64) uint64 {
	t.Helper()
	ctx := context.Background()
	rec, err := n.srv.Store().GetStale(key)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	ts, err := n.srv.Store().AuditState()
	if err != nil {
		t.Fatal(err)
	}
	entries, err := n.client(root).AuditEntries(ctx, from, int(ts.Size-from))
	if err != nil {
		t.Fatal(err)
	}
	var found []uint64
	for _, e := range entries {
		if e.Entry["action"] == action {
			found = append(found, e.Index)
		}
	}
	if len(found) == 0 {
		t.Fatalf("no %s audit entry from leaf %d", action, from)
	}
	newest := found[len(found)-1]
	leaves, err := n.srv.Store().AuditLeaves(newest, 1)
	if err != nil || len(leaves) != 1 {
		t.Fatalf("stored leaf %d: %v", newest, err)
	}
	if leaves[0].RaftIndex != rec.Version {
		t.Fatalf("the %s audit record is at Raft index %d, %s at %d", action, leaves[0].RaftIndex, key, rec.Version)
	}
	return newest
}

func refused(err error) bool { return err != nil && strings.Contains(err.Error(), "refused") }

// TestClusterPortMembership, on real servers over real TLS: a node
// admitted through the API but not caught up is a non-voter, served on the
// cluster port but refused membership changes and forwarding in another
// node's name; remove-peer (asked of a follower) refuses it at once on its
// open connections, revokes its certificate, and commits its member record
// and the audit record in one Raft command; a revoked certificate of a node
// still in the configuration is refused too.
func TestClusterPortMembership(t *testing.T) {
	ctx := context.Background()
	nodes, root, bundle := startCluster(t, 0)
	leader := nodes[0]
	follower := nodes[1].client(root)

	// n4: admitted through the API with a key this test holds; its
	// cluster address is the probe's, which never lets the leader
	// replicate to it, so it stays a non-voter.
	p := newProbe(t, bundle)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	adm, err := follower.RaftAdmit(ctx, client.RaftAdmission{NodeID: "n4", ClusterAddr: string(p.LocalAddr()),
		CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	n4cert, err := tls.X509KeyPair([]byte(adm.Certificate), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	if err != nil {
		t.Fatal(err)
	}
	p.cert.Store(&n4cert)
	// The admission's member record rode with its audit record.
	admitted := sameCommand(t, leader, root, "raft.join", authority.MemberKey("n4"), 0)
	waitFor(t, "n4 in the configuration as a non-voter", func() bool {
		ps, err := follower.RaftPeers(ctx)
		for _, x := range ps {
			if x.ID == "n4" {
				return err == nil && !x.Voter
			}
		}
		return false
	})

	// A member: served, Raft traffic and status alike.
	if err := p.status(ctx, leader.clusterAddr, "n4"); err != nil {
		t.Fatalf("n4's status request: %v", err)
	}
	if err := p.heartbeat("n1", leader.clusterAddr); err != nil {
		t.Fatalf("n4's Raft request: %v", err)
	}
	// A non-voter may not change the membership.
	for _, req := range []*store.PeerRequest{
		{Op: store.PeerAddVoter, ID: "n4", Addr: string(p.LocalAddr())},
		{Op: store.PeerRemove, ID: "n2"},
		{Op: store.PeerAddNonvoter, ID: "n5", Addr: "127.0.0.1:1"},
	} {
		if err := p.ask(ctx, leader.clusterAddr, req); !refused(err) {
			t.Fatalf("non-voter's %s: %v", req.Op, err)
		}
	}
	// Forwarding in another member's name is refused.
	forged := &store.PeerRequest{Op: store.PeerApply, Cmd: store.EncodeTxn(store.Txn{Ops: []store.Op{{Type: store.OpPut, Key: "forged", Value: []byte("x")}}}),
		Node: "n2", Principal: "token:root"}
	if err := p.ask(ctx, leader.clusterAddr, forged); !refused(err) {
		t.Fatalf("a write forwarded in n2's name: %v", err)
	}

	// Remove n4, asked of a follower.
	if err := follower.RaftRemovePeer(ctx, "n4"); err != nil {
		t.Fatal(err)
	}
	// Refused at once on the connections it has open, and for a write
	// forwarded in its own name.
	if err := p.heartbeat("n1", leader.clusterAddr); err == nil {
		t.Fatal("the removed node's Raft request on its open connection was answered")
	}
	if err := p.status(ctx, leader.clusterAddr, "n4"); !refused(err) {
		t.Fatalf("the removed node's status request: %v", err)
	}
	forged.Node = "n4"
	if err := p.ask(ctx, leader.clusterAddr, forged); !refused(err) {
		t.Fatalf("a write forwarded by the removed node: %v", err)
	}
	if _, err := leader.srv.Store().GetStale("forged"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a forged write was applied: %v", err)
	}
	ps, err := follower.RaftPeers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ps {
		if x.ID == "n4" {
			t.Fatalf("n4 still in the configuration: %+v", ps)
		}
	}

	// Its certificate is listed revoked.
	serial := hex.EncodeToString(n4cert.Leaf.SerialNumber.Bytes())
	revoked, err := leader.client(root).CertList(ctx, "revoked", "")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range revoked {
		found = found || (c.Serial == serial && c.State == "revoked")
	}
	if !found {
		t.Fatalf("n4's certificate %s is not listed revoked: %+v", serial, revoked)
	}
	// Under the key the cluster port looks up.
	if _, err := leader.srv.Store().GetStale(authority.RevokedKey(n4cert.Leaf.SerialNumber)); err != nil {
		t.Fatalf("n4's revocation for the cluster port: %v", err)
	}

	// The member record and the remove's audit record were committed by
	// the same Raft command.
	sameCommand(t, leader, root, "raft.remove", authority.MemberKey("n4"), admitted)

	// A revoked certificate is refused even while its node is in the
	// configuration: revoke n3's current one (only the record; n3 stays).
	n3, err := tls.LoadX509KeyPair(filepath.Join(nodes[2].dir, "cluster", "node.pem"), filepath.Join(nodes[2].dir, "cluster", "node-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	p3 := newProbe(t, bundle)
	p3.cert.Store(&n3)
	if err := p3.status(ctx, leader.clusterAddr, "n3"); err != nil {
		t.Fatalf("n3's status request: %v", err)
	}
	rctx, _ := leader.srv.Audit().Pending(ctx, auditlog.SystemEntry(time.Now(), "test", "cert.revoke", "test"))
	if _, err := leader.srv.Core().Txn(rctx, store.Txn{Ops: []store.Op{{Type: store.OpPut, Key: authority.RevokedKey(n3.Leaf.SerialNumber), Value: []byte("{}")}}}); err != nil {
		t.Fatal(err)
	}
	if err := p3.status(ctx, leader.clusterAddr, "n3"); !refused(err) {
		t.Fatalf("a revoked certificate of a member: %v", err)
	}
	if ps, err := follower.RaftPeers(ctx); err != nil || len(ps) != 3 {
		t.Fatalf("n3 left the configuration: %+v %v", ps, err)
	}
}

// TestClusterReconcilesMemberRecords: the member records are what the
// configuration converges to. A record written without its configuration
// change (a crash between the two) is carried out by the leader: here n3
// is recorded removed, and the leader drops it by itself.
func TestClusterReconcilesMemberRecords(t *testing.T) {
	ctx := context.Background()
	nodes, root, _ := startCluster(t, 0)
	rec, err := json.Marshal(authority.Member{ID: "n3", Address: nodes[2].clusterAddr, Suffrage: authority.Voter, State: authority.MemberRemoved})
	if err != nil {
		t.Fatal(err)
	}
	rctx, _ := nodes[0].srv.Audit().Pending(ctx, auditlog.SystemEntry(time.Now(), "test", "raft.remove", "test"))
	if _, err := nodes[0].srv.Core().Txn(rctx, store.Txn{Ops: []store.Op{{Type: store.OpPut, Key: authority.MemberKey("n3"), Value: rec}}}); err != nil {
		t.Fatal(err)
	}
	c := nodes[1].client(root)
	waitFor(t, "the leader to drop n3", func() bool {
		ps, err := c.RaftPeers(ctx)
		if err != nil {
			return false
		}
		for _, p := range ps {
			if p.ID == "n3" {
				return false
			}
		}
		return len(ps) == 2
	})
}

// TestClusterCertRenewal: server certificates are short-lived and each
// node renews its own at half its lifetime, recording the new one (its
// member record names it) before using it; the cluster keeps working on
// the renewed certificates.
func TestClusterCertRenewal(t *testing.T) {
	ctx := context.Background()
	const ttl = 16 * time.Second
	nodes, root, _ := startCluster(t, ttl)
	n2 := nodes[1]
	current := func() *x509.Certificate {
		c, err := tls.LoadX509KeyPair(filepath.Join(n2.dir, "cluster", "node.pem"), filepath.Join(n2.dir, "cluster", "node-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf
	}
	first := current()
	if life := first.NotAfter.Sub(first.NotBefore); life > ttl+2*time.Minute {
		t.Fatalf("n2's certificate lasts %v, configured %v", life, ttl)
	}
	// The node renews at half its certificate's life and retries a failed
	// renewal; what must hold is that it has a new one before the old one
	// expires. The deadline only stops a hung test: on a loaded machine
	// the cluster may still be settling when the renewal falls due.
	var renewed *x509.Certificate
	for deadline := first.NotAfter.Add(20 * time.Second); ; {
		if renewed = current(); renewed.SerialNumber.Cmp(first.SerialNumber) != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n2 did not renew its certificate (not after %v)", first.NotAfter)
		}
		time.Sleep(20 * time.Millisecond) // polling the node's files, bounded by the deadline
	}
	serial := hex.EncodeToString(renewed.SerialNumber.Bytes())
	var version uint64
	waitFor(t, "the renewed certificate in n2's member record", func() bool {
		e, err := nodes[0].srv.Core().Get(ctx, authority.MemberKey("n2"))
		if err != nil {
			return false
		}
		var m authority.Member
		version = e.Version
		return json.Unmarshal(e.Value, &m) == nil && m.Serial == serial
	})
	// The record of the renewal rode in the command that wrote it.
	leader := nodes[0]
	ts, err := leader.srv.Store().AuditState()
	if err != nil {
		t.Fatal(err)
	}
	entries, err := leader.client(root).AuditEntries(ctx, 0, int(ts.Size))
	if err != nil {
		t.Fatal(err)
	}
	rode := false
	for _, e := range entries {
		if e.Entry["action"] != "raft.renew-cert" || e.Entry["principal"] != `Server::"n2"` {
			continue
		}
		if l, err := leader.srv.Store().AuditLeaves(e.Index, 1); err == nil && len(l) == 1 && l[0].RaftIndex == version {
			rode = true
		}
	}
	if !rode {
		t.Fatalf("no raft.renew-cert record of n2 at Raft index %d", version)
	}
	// Writes through n2 still reach the leader over the cluster port.
	if _, err := n2.client(root).KVPut(ctx, "after-renewal", map[string]any{"a": "b"}, nil); err != nil {
		t.Fatalf("write through n2 after renewal: %v", err)
	}
}
