// Command renewload is a closed-loop load generator for Warden's certificate
// issuance over the API: C enrolled nodes each renew their certificate again
// and again over mutual TLS (POST /v1/pki/renew, one kept-alive HTTP/1.1
// connection per node) for a fixed duration, as BenchmarkRenewTLS does in
// process. wrk cannot present client certificates, hence this tool.
//
// Setup (not timed): C join tokens (POST /v1/nodes/tokens, needs a token
// allowed node.create, e.g. the --dev root token), C P-256 keys, C
// enrollments (POST /v1/pki/enroll). Timed: renewals only; every renewal is
// a CSR parsed and checked, a certificate signed, and the node record, the
// certificate record and the audit record committed in one Raft command.
//
// It prints its result in wrk's format (Latency Distribution, Requests/sec,
// Non-2xx) so that bench/peers/run.sh reads both alike. It only talks to a
// loopback address and stops by itself after -d (at most 10 minutes).
//
// Usage:
//
//	WARDEN_ADDR=https://127.0.0.1:8200 WARDEN_CACERT=... WARDEN_TOKEN=<root> \
//	  go run ./bench/renewload -c 32 -d 20s
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"sync"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "renewload:", err)
		os.Exit(1)
	}
}

func run() error {
	conns := flag.Int("c", 32, "concurrent nodes (one connection each)")
	dur := flag.Duration("d", 20*time.Second, "duration of the timed run (at most 10m)")
	addr := flag.String("addr", os.Getenv("WARDEN_ADDR"), "server API address (loopback only); default $WARDEN_ADDR")
	caFile := flag.String("cacert", os.Getenv("WARDEN_CACERT"), "server TLS CA (PEM); default $WARDEN_CACERT")
	prefix := flag.String("prefix", fmt.Sprintf("renewload-%d", time.Now().UnixNano()), "node name prefix")
	flag.Parse()
	token := os.Getenv("WARDEN_TOKEN")
	switch {
	case *conns < 1 || *conns > 1024:
		return errors.New("-c must be 1..1024")
	case *dur <= 0 || *dur > 10*time.Minute:
		return errors.New("-d must be in (0, 10m]")
	case token == "":
		return errors.New("WARDEN_TOKEN (allowed node.create) is not set")
	}
	u, err := url.Parse(*addr)
	if err != nil || u.Scheme != "https" {
		return fmt.Errorf("-addr %q: want https://127.0.0.1:PORT", *addr)
	}
	if ip := net.ParseIP(u.Hostname()); (ip == nil || !ip.IsLoopback()) && u.Hostname() != "localhost" {
		return fmt.Errorf("-addr %q: only loopback addresses are load-tested", *addr)
	}
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("%s: no certificate", *caFile)
	}
	base := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	setup := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: base}}

	clients := make([]*http.Client, *conns)
	bodies := make([][]byte, *conns)
	for i := range clients {
		c, body, err := enroll(setup, *addr, token, fmt.Sprintf("%s-%d", *prefix, i), base)
		if err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		clients[i], bodies[i] = c, body
	}

	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	type result struct {
		lat            []time.Duration
		non2xx, errors int
	}
	results := make([]result, *conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := &results[i]
			for ctx.Err() == nil {
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, "POST", *addr+"/v1/pki/renew", bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				res, err := clients[i].Do(req)
				if err != nil {
					if ctx.Err() == nil {
						r.errors++
					}
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				if res.StatusCode/100 != 2 {
					r.non2xx++
				}
				r.lat = append(r.lat, time.Since(t0))
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)

	var all []time.Duration
	non2xx, errs := 0, 0
	for _, r := range results {
		all = append(all, r.lat...)
		non2xx += r.non2xx
		errs += r.errors
	}
	if len(all) == 0 {
		return fmt.Errorf("no request completed (%d errors)", errs)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(p/100*float64(len(all))))] }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
	fmt.Printf("renewload: %d nodes renewing over mutual TLS for %s against %s\n", *conns, *dur, *addr)
	fmt.Printf("  Latency Distribution\n")
	for _, p := range []float64{50, 75, 90, 99} {
		fmt.Printf("  %4.0f%%  %s\n", p, ms(pct(p)))
	}
	fmt.Printf("  %d requests in %.2fs\n", len(all), elapsed.Seconds())
	if errs > 0 {
		fmt.Printf("  Socket errors: connect 0, read %d, write 0, timeout 0\n", errs)
	}
	if non2xx > 0 {
		fmt.Printf("  Non-2xx or 3xx responses: %d\n", non2xx)
	}
	fmt.Printf("Requests/sec: %.2f\n", float64(len(all))/elapsed.Seconds())
	return nil
}

// enroll creates a join token for a new node, enrolls a fresh P-256 key and
// returns a client that presents the node's certificate and the body of a
// renewal request for the same key.
func enroll(c *http.Client, addr, token, name string, base *tls.Config) (*http.Client, []byte, error) {
	var tok struct {
		Token string `json:"token"`
	}
	if err := call(c, addr+"/v1/nodes/tokens", token, map[string]string{"name": name, "cert_ttl": "1h"}, &tok); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, nil, err
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	var en struct {
		Certificate string `json:"certificate"`
	}
	if err := call(c, addr+"/v1/pki/enroll", "", map[string]string{"token": tok.Token, "csr": csr}, &en); err != nil {
		return nil, nil, err
	}
	var chain [][]byte
	for rest := []byte(en.Certificate); ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		chain = append(chain, blk.Bytes)
	}
	if len(chain) == 0 {
		return nil, nil, errors.New("enroll: no certificate in the response")
	}
	cfg := base.Clone()
	cfg.Certificates = []tls.Certificate{{Certificate: chain, PrivateKey: key}}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 1}}
	body, err := json.Marshal(map[string]string{"csr": csr})
	return client, body, err
}

// call POSTs in as JSON (with a bearer token if given) and decodes a 200
// answer into out.
func call(c *http.Client, u, token string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequest("POST", u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", u, res.Status, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, out)
}
