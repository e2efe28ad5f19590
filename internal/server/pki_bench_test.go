package server_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkEnrollTLS: one enrollment per op over TLS — a join token
// exchanged with a P-256 CSR for an SVID: CSR check, issuance, the node and
// certificate records and the audit record in one Raft command. The join
// tokens are created outside the timer.
func BenchmarkEnrollTLS(b *testing.B) {
	h := start(b, b.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr := csrFor(b, key)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		tok := h.want(h.do("POST", "/v1/nodes/tokens", root, map[string]any{"name": fmt.Sprintf("n-%d", i)}), 200).json(b)["token"]
		body, _ := json.Marshal(map[string]any{"token": tok, "csr": csr})
		b.StartTimer()
		res, err := h.http.Post(h.srv.Addr()+"/v1/pki/enroll", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
}

// BenchmarkRenewTLS: renewals over mutual TLS by 16 enrolled nodes per
// core in parallel, each presenting its certificate on a kept-alive
// connection: client-certificate authentication, CSR check, issuance, one
// audited Raft command per renewal.
func BenchmarkRenewTLS(b *testing.B) {
	h := start(b, b.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	nodes := 16 * runtime.GOMAXPROCS(0) // one node per goroutine: no conflicts on a node's record
	pemCA, _ := os.ReadFile(h.srv.CAFile())
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCA)
	clients := make([]*http.Client, nodes)
	bodies := make([][]byte, nodes)
	for i := range clients {
		e := h.enroll(root, fmt.Sprintf("n-%d", i), "1h")
		var chain [][]byte
		for rest := []byte(e.chain); ; {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			chain = append(chain, blk.Bytes)
		}
		clients[i] = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12,
			Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: e.key}}}}}
		bodies[i], _ = json.Marshal(map[string]string{"csr": csrFor(b, e.key)})
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)-1) % nodes
		for pb.Next() {
			res, err := clients[i].Post(h.srv.Addr()+"/v1/pki/renew", "application/json", bytes.NewReader(bodies[i]))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
}
