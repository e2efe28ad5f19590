package store

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
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
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

func (ca *testCA) transport(t testing.TB, serial int64) *NetTransport {
	cert := ca.node(t, serial)
	tr, err := TLSTransport("127.0.0.1:0",
		&tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: ca.pool},
		&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.pool}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

type cluster struct {
	nodes []*Store
	dirs  []string
}

func fastTimeouts(c *Config) {
	c.HeartbeatTimeout, c.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
	c.LeaderLeaseTimeout, c.CommitTimeout = 150*time.Millisecond, 5*time.Millisecond
}

// newCluster starts n nodes over mutual TLS on loopback; node 0 bootstraps
// the configuration with all of them.
func newCluster(t *testing.T, n int) (*cluster, *testCA) {
	ca := newTestCA(t)
	trs := make([]*NetTransport, n)
	servers := make([]raft.Server, n)
	for i := range trs {
		trs[i] = ca.transport(t, int64(i+2))
		servers[i] = raft.Server{ID: raft.ServerID(fmt.Sprint("n", i+1)), Address: trs[i].LocalAddr()}
	}
	c := &cluster{}
	for i := range trs {
		cfg := Config{Dir: t.TempDir(), NodeID: string(servers[i].ID), Transport: trs[i], Bootstrap: i == 0, Servers: servers}
		fastTimeouts(&cfg)
		s, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		c.nodes = append(c.nodes, s)
		c.dirs = append(c.dirs, cfg.Dir)
	}
	return c, ca
}

func (c *cluster) leader(t *testing.T, skip *Store) *Store {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range c.nodes {
			if s != skip && s.ready() {
				return s
			}
		}
		time.Sleep(20 * time.Millisecond) // polling the cluster state, bounded by the deadline
	}
	t.Fatal("no leader within 20s")
	return nil
}

// waitApplied blocks until s has applied idx.
func waitApplied(t *testing.T, s *Store, idx uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		ch := s.fsm.waitCh()
		if s.AppliedIndex() >= idx {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("node did not apply index %d (at %d)", idx, s.AppliedIndex())
		}
	}
}

func TestClusterOverTLS(t *testing.T) {
	c, ca := newCluster(t, 3)
	ctx := context.Background()
	lead := c.leader(t, nil)
	idx, err := lead.Txn(ctx, Txn{Ops: []Op{put("k", "v1")}})
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
	var fols []*Store
	for _, s := range c.nodes {
		if s != lead {
			fols = append(fols, s)
		}
	}
	fidx, err := fols[0].Txn(ctx, Txn{Conds: []Cond{{Key: "k", Version: idx}}, Ops: []Op{put("k", "via-follower")}})
	if err != nil {
		t.Fatalf("write through a follower: %v", err)
	}
	if e, err := fols[1].Get(ctx, "k"); err != nil || string(e.Value) != "via-follower" || e.Version != fidx {
		t.Fatalf("read on the other follower: %+v %v", e, err)
	}
	// A failed precondition through a follower is the same conflict.
	var ce *ConflictError
	if _, err := fols[1].Txn(ctx, Txn{Conds: []Cond{{Key: "k", Version: idx}}, Ops: []Op{put("k", "late")}}); !errors.As(err, &ce) || ce.Have != fidx {
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
	idx2, err := next.Txn(ctx, Txn{Ops: []Op{put("k", "v2")}})
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
	addr := string(lead.trans.LocalAddr())
	cert := ca.node(t, 99)
	tr, err := TLSTransport(addr,
		&tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: ca.pool},
		&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.pool}, nil)
	if err != nil {
		t.Fatalf("rebind %s: %v", addr, err)
	}
	cfg := Config{Dir: c.dirs[i], NodeID: fmt.Sprint("n", i+1), Transport: tr}
	fastTimeouts(&cfg)
	back, err := Open(cfg)
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
	if _, err := TLSTransport("127.0.0.1:0", &tls.Config{}, &tls.Config{}, nil); err == nil {
		t.Fatal("transport without a cluster CA")
	}
}

// TestFiveNodesSurviveTwoLosses: with two of five nodes gone, writes through
// any survivor commit, linearizable reads on every survivor see them, and no
// write acknowledged before the losses is missing.
func TestFiveNodesSurviveTwoLosses(t *testing.T) {
	c := newFaultCluster(t, 5)
	ctx := context.Background()
	if err := c.node(0).WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	acked := map[string]string{}
	for i := range 20 {
		k, v := fmt.Sprint("before-", i), fmt.Sprint("v", i)
		if _, err := c.node(i%5).Txn(ctx, Txn{Ops: []Op{put(k, v)}}); err != nil {
			t.Fatal(err)
		}
		acked[k] = v
	}
	// Lose the leader and one follower.
	lead := c.leaderIndex()
	other := (lead + 1) % 5
	c.node(lead).Close()
	c.node(other).Close()
	var live []*Store
	for i := range 5 {
		if i != lead && i != other {
			live = append(live, c.node(i))
		}
	}
	for i, s := range live {
		k := fmt.Sprint("after-", i)
		if _, err := s.Txn(ctx, Txn{Ops: []Op{put(k, "x")}}); err != nil {
			t.Fatalf("write through survivor %s: %v", s.NodeID(), err)
		}
		acked[k] = "x"
	}
	for _, s := range live {
		for k, v := range acked {
			e, err := s.Get(ctx, k)
			if err != nil || string(e.Value) != v {
				t.Fatalf("%s: %s = %q, %v; want %q", s.NodeID(), k, e.Value, err, v)
			}
		}
	}
}

// TestSnapshotRestoreRollsBackEveryNode: a snapshot saved through the API
// of the store and restored later puts every node back to its state.
func TestSnapshotRestoreRollsBackEveryNode(t *testing.T) {
	c := newFaultCluster(t, 3)
	ctx := context.Background()
	if err := c.node(0).WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	lead := c.node(c.leaderIndex())
	if _, err := lead.Txn(ctx, Txn{Ops: []Op{put("k", "saved"), put("keep", "1")}}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := lead.SaveSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := lead.Txn(ctx, Txn{Ops: []Op{put("k", "later"), put("new", "1")}}); err != nil {
		t.Fatal(err)
	}
	// A file that is not a snapshot is refused and changes nothing.
	if _, err := lead.OpenSnapshotFile(strings.NewReader("not a database")); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("garbage snapshot: %v", err)
	}
	f, err := lead.OpenSnapshotFile(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if e, err := f.Get("k"); err != nil || string(e.Value) != "saved" {
		t.Fatalf("snapshot content: %q %v", e.Value, err)
	}
	idx, err := lead.Restore(ctx, f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		s := c.node(i)
		waitApplied(t, s, idx)
		e, err := s.Get(ctx, "k")
		if err != nil || string(e.Value) != "saved" {
			t.Fatalf("%s after restore: k = %q, %v", s.NodeID(), e.Value, err)
		}
		if _, err := s.Get(ctx, "new"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s after restore: a later key survived: %v", s.NodeID(), err)
		}
	}
	// Writes continue after the restore, with versions above it.
	v, err := c.node(1).Txn(ctx, Txn{Ops: []Op{put("k", "after")}})
	if err != nil || v <= idx {
		t.Fatalf("write after restore: %d %v", v, err)
	}
}
