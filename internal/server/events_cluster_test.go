package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/pkg/client"
)

// TestEventsCluster: three servers' embedded NATS servers form a
// JetStream cluster over mutual TLS with their cluster certificates; the
// stream is replicated on the three; a batch acknowledged by one server is
// read on another after that server is killed, and the two left still
// take batches.
func TestEventsCluster(t *testing.T) {
	ctx := context.Background()
	nodes := make([]*clusterNode, 3)
	var routes []string
	for i := range nodes {
		nodes[i] = &clusterNode{t: t, id: fmt.Sprint("n", i+1), dir: t.TempDir(), clusterAddr: freeAddr(t), natsAddr: freeAddr(t)}
		routes = append(routes, nodes[i].natsAddr)
	}
	for _, n := range nodes {
		n.natsRoutes = routes
		n.start()
	}
	_, root := initJoin(ctx, t, nodes)
	planes := make([]*events.Plane, 3)
	for i, n := range nodes {
		planes[i] = waitPlane(t, n.srv)
	}
	// Replicated on the three, all current.
	deadline := time.Now().Add(60 * time.Second)
	for {
		info, err := planes[0].JetStream().Stream(ctx, events.StreamName)
		if err == nil {
			ci := info.CachedInfo()
			current := 0
			if ci.Cluster != nil {
				for _, r := range ci.Cluster.Replicas {
					if r.Current {
						current++
					}
				}
			}
			if ci.Config.Replicas == 3 && ci.Cluster != nil && ci.Cluster.Leader != "" && current == 2 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream is not replicated on 3 servers: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // polling the stream's state, bounded by the deadline
	}

	// A node enrolls and posts through n2.
	svid := enrollSVID(ctx, t, nodes[0].client(root), nodes[1].client(""), "web-1")
	post := func(n *clusterNode, seq uint64) resp {
		roots := x509.NewCertPool()
		ca, _ := os.ReadFile(n.srv.CAFile())
		roots.AppendCertsFromPEM(ca)
		cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{svid},
			MinVersion: tls.VersionTLS12}}}
		defer cl.CloseIdleConnections()
		h := &harness{t: t, srv: n.srv}
		return h.postBatch(cl, "feedfacefeedface", seq, sshLines(50, ""), false)
	}
	// n2 authenticates the node from its local state: it may not have
	// applied the enrollment yet.
	var r resp
	waitFor(t, "n2 to know web-1", func() bool { r = post(nodes[1], 1); return r.status != 401 })
	if r.status != 200 {
		t.Fatalf("post to n2: %d %s", r.status, r.body)
	}
	nodes[1].stop()
	// Read on n1: the batch is there.
	n, evs := nodeBatches(storedBatches(t, planes[0]), "web-1")
	if n != 1 || len(evs) != 50 {
		t.Fatalf("after killing n2, n1 reads %d batches, %d events; want 1, 50", n, len(evs))
	}
	// The same batch again through n3 is a duplicate; the next is stored.
	if r := post(nodes[2], 1); r.status != 200 || r.json(t)["duplicate"] != true {
		t.Fatalf("duplicate through n3: %d %s", r.status, r.body)
	}
	if r := post(nodes[2], 2); r.status != 200 || r.json(t)["duplicate"] != false {
		t.Fatalf("next batch through n3: %d %s", r.status, r.body)
	}
	if n, _ := nodeBatches(storedBatches(t, planes[0]), "web-1"); n != 2 {
		t.Fatalf("%d batches of web-1, want 2", n)
	}
	// The runtime's KV buckets are replicated too.
	kv, err := planes[0].KV(ctx, "runtime_checkpoints")
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas != 3 {
		t.Errorf("KV bucket replicas %d", st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas)
	}
}

// initJoin initializes nodes[0] (one unseal key), joins the others to it
// and unseals them all; it returns the unseal keys and the root token.
func initJoin(ctx context.Context, t *testing.T, nodes []*clusterNode) ([]string, string) {
	t.Helper()
	init, err := nodes[0].client("").Init(ctx, client.InitRequest{KeyShares: 1, KeyThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	keys, root := init.UnsealKeys, init.RootToken
	nodes[0].unseal(ctx, keys)
	bundle, err := os.ReadFile(filepath.Join(nodes[0].dir, "cluster", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		if err := n.client(root).RaftJoin(ctx, nodes[0].srv.Addr(), bundle); err != nil {
			t.Fatalf("%s: join: %v", n.id, err)
		}
		n.unseal(ctx, keys)
	}
	return keys, root
}

// enrollSVID makes a join token for name through admin and enrolls it
// through enroller: the node's certificate and key.
func enrollSVID(ctx context.Context, t *testing.T, admin, enroller *client.Client, name string) tls.Certificate {
	t.Helper()
	nt, err := admin.NodeTokenCreate(ctx, client.NodeTokenRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	nkey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, nkey)
	en, err := enroller.Enroll(ctx, name, nt.Token, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(nkey)
	svid, err := tls.X509KeyPair([]byte(en.Certificate), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return svid
}
