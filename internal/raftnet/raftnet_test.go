package raftnet_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/raftnet"
	"github.com/warden-sec/warden/internal/store"
)

// testCA issues node certificates for a test cluster.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test cluster CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) node(t testing.TB, serial int64) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: fmt.Sprint("node", serial)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (ca *testCA) transport(t testing.TB, serial int64) *raftnet.NetTransport {
	return ca.transportAt(t, "127.0.0.1:0", serial)
}

func (ca *testCA) transportAt(t testing.TB, addr string, serial int64) *raftnet.NetTransport {
	cert := ca.node(t, serial)
	tr, err := raftnet.TLSTransport(addr,
		&tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: ca.pool},
		&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.pool}, serialGate{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// plainLeafCheck is the tests' store.LeafCheck: their leaves are stored in
// the clear, so a leaf's value must hash to its leaf hash.
func plainLeafCheck(l store.AuditLeaf) error {
	if !bytes.Equal(audit.LeafHash(l.Value), l.Hash) {
		return errors.New("value does not hash to the leaf hash")
	}
	return nil
}

// rec gives a change its audit record, as every change must have.
func rec(t store.Txn) store.Txn {
	b := []byte("record")
	t.Audit = append(t.Audit, store.AuditLeaf{Hash: audit.LeafHash(b), Value: b})
	return t
}

// serialGate names the node of a test certificate: serial s is node
// "n<s-1>" (newCluster's node i has serial i+2 and ID n<i+1>).
type serialGate struct{}

func (serialGate) Identify(cs *tls.ConnectionState) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("no certificate")
	}
	return fmt.Sprint("n", cs.PeerCertificates[0].SerialNumber.Int64()-1), nil
}

type cluster struct {
	nodes []*store.Store
	dirs  []string
}

func fastTimeouts(c *store.Config) {
	c.HeartbeatTimeout, c.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
	c.LeaderLeaseTimeout, c.CommitTimeout = 150*time.Millisecond, 5*time.Millisecond
}

// newCluster starts n nodes over mutual TLS on loopback; node 0 bootstraps
// the configuration with all of them.
func newCluster(t *testing.T, n int) (*cluster, *testCA) {
	ca := newTestCA(t)
	trs := make([]*raftnet.NetTransport, n)
	servers := make([]raft.Server, n)
	for i := range trs {
		trs[i] = ca.transport(t, int64(i+2))
		servers[i] = raft.Server{ID: raft.ServerID(fmt.Sprint("n", i+1)), Address: trs[i].LocalAddr()}
	}
	c := &cluster{}
	for i := range trs {
		cfg := store.Config{Dir: t.TempDir(), NodeID: string(servers[i].ID), Transport: trs[i], Bootstrap: i == 0, Servers: servers}
		fastTimeouts(&cfg)
		s, err := store.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.SetLeafCheck(plainLeafCheck)
		t.Cleanup(func() { s.Close() })
		c.nodes = append(c.nodes, s)
		c.dirs = append(c.dirs, cfg.Dir)
	}
	return c, ca
}

func (c *cluster) leader(t *testing.T, skip *store.Store) *store.Store {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range c.nodes {
			if s != skip && s.IsLeader() {
				return s
			}
		}
		time.Sleep(20 * time.Millisecond) // polling the cluster state, bounded by the deadline
	}
	t.Fatal("no leader within 20s")
	return nil
}

// waitApplied blocks until s has applied idx (bounded).
func waitApplied(t *testing.T, s *store.Store, idx uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitApplied(ctx, idx); err != nil {
		t.Fatalf("node did not apply index %d (at %d): %v", idx, s.AppliedIndex(), err)
	}
}

func TestClusterOverTLS(t *testing.T) {
	c, ca := newCluster(t, 3)
	ctx := context.Background()
	lead := c.leader(t, nil)
	idx, err := lead.Txn(ctx, rec(store.Txn{Ops: []store.Op{put("k", "v1")}}))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range c.nodes {
		waitApplied(t, s, idx)
		if e, err := s.GetStale("k"); err != nil || string(e.Value) != "v1" || e.Version != idx {
			t.Fatalf("replica: %+v %v", e, err)
		}
	}
	// A write through a follower is forwarded to the leader, and a
	// linearizable read on the other follower sees it at once.
	var fols []*store.Store
	for _, s := range c.nodes {
		if s != lead {
			fols = append(fols, s)
		}
	}
	fidx, err := fols[0].Txn(ctx, rec(store.Txn{Conds: []store.Cond{{Key: "k", Version: idx}}, Ops: []store.Op{put("k", "via-follower")}}))
	if err != nil {
		t.Fatalf("write through a follower: %v", err)
	}
	if e, err := fols[1].Get(ctx, "k"); err != nil || string(e.Value) != "via-follower" || e.Version != fidx {
		t.Fatalf("read on the other follower: %+v %v", e, err)
	}
	// A failed precondition through a follower is the same conflict.
	var ce *store.ConflictError
	if _, err := fols[1].Txn(ctx, rec(store.Txn{Conds: []store.Cond{{Key: "k", Version: idx}}, Ops: []store.Op{put("k", "late")}})); !errors.As(err, &ce) || ce.Have != fidx {
		t.Fatalf("stale CAS through a follower: %v", err)
	}
	idx = fidx

	// Kill the leader: a new one is elected, takes writes, and every write
	// acknowledged before is there.
	lead.Close()
	next := c.leader(t, lead)
	if e, err := next.Get(ctx, "k"); err != nil || string(e.Value) != "via-follower" {
		t.Fatalf("after failover: %+v %v", e, err)
	}
	idx2, err := next.Txn(ctx, rec(store.Txn{Ops: []store.Op{put("k", "v2")}}))
	if err != nil {
		t.Fatal(err)
	}

	// The old leader restarts on a new port... its address is in the Raft
	// configuration, so it must come back on the same one: reuse the dir and
	// rebind the address it had.
	i := 0
	for i = range c.nodes {
		if c.nodes[i] == lead {
			break
		}
	}
	addr := lead.ClusterAddr()
	tr := ca.transportAt(t, addr, int64(i+2)) // a new certificate for the same node
	cfg := store.Config{Dir: c.dirs[i], NodeID: fmt.Sprint("n", i+1), Transport: tr}
	fastTimeouts(&cfg)
	back, err := store.Open(cfg)
	if err == nil {
		back.SetLeafCheck(plainLeafCheck)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { back.Close() })
	waitApplied(t, back, idx2)
	if e, _ := back.GetStale("k"); string(e.Value) != "v2" {
		t.Fatalf("restarted node did not catch up: %q", e.Value)
	}
}

func TestTLSTransportRefusesStrangers(t *testing.T) {
	ca := newTestCA(t)
	tr := ca.transport(t, 2)
	defer tr.Close()
	other := newTestCA(t)
	cert := other.node(t, 3)
	conn, err := tls.Dial("tcp", string(tr.LocalAddr()), &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.pool})
	if err == nil {
		// TLS 1.3 reports a rejected client certificate on first read.
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("a node with a certificate from another CA was accepted")
	}
	if _, err := raftnet.TLSTransport("127.0.0.1:0", &tls.Config{}, &tls.Config{}, serialGate{}, nil); err == nil {
		t.Fatal("transport without a cluster CA")
	}
	if _, err := raftnet.TLSTransport("127.0.0.1:0", &tls.Config{ClientCAs: ca.pool}, &tls.Config{RootCAs: ca.pool}, nil, nil); err == nil {
		t.Fatal("transport without a gate")
	}
}

func put(k, v string) store.Op { return store.Op{Type: store.OpPut, Key: k, Value: []byte(v)} }
