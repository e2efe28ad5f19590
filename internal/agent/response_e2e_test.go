package agent_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/agent"
	"github.com/warden-sec/warden/internal/netnstest"
	"github.com/warden-sec/warden/internal/sigma"
	"github.com/warden-sec/warden/pkg/client"
	"github.com/warden-sec/warden/pkg/middleware"
)

// TestResponseEndToEnd is issue 13's second Done-when: detection carried
// through to response, with real processes in network namespaces.
//
//	c1 10.213.1.2 ── 10.213.1.1 ┐                                          ┌ 10.213.5.1 ── c1 (the attacker, from 10.213.1.2)
//	                            host (server; agent: auth.log, nftables)   m (a service behind pkg/middleware)
//	c2 10.213.2.2 ── 10.213.2.1 ┘   10.213.3.1 ── 10.213.3.2 svc (TCP)     └ 10.213.6.1 ── c2 (from 10.213.2.2)
//
// The host's sshd log shows a brute force from c1's address; the agent
// ships it, the built-in Sigma correlation raises an alert, and the
// built-in playbook bans the source and opens an incident. The agent's
// nftables then drop c1's new connections to svc while c2 is served, and
// the service in m, which c1 reaches without crossing the host, refuses c1
// with 403 from its pkg/middleware follower while it serves c2. A node
// that reported c2's address is quarantined: the host drops c2 until the
// quarantine is lifted. The
// incident holds the alert and the decision; its report verifies offline
// with `warden incident verify` and fails once any one byte of it changes.
func TestResponseEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	r := newRouted(t, ctx)
	host, c1, c2, service, bin, addr, root, caFile := r.host, r.c1, r.c2, r.service, r.bin, r.addr, r.root, r.caFile
	cli := r.cli
	// m: a service reached from c1 and c2 over their own links, not
	// through the host.
	m := netnstest.New(t, "m")
	netnstest.Link(t, m, "from-c1", "10.213.5.1/24", c1, "to-m", "10.213.5.2/24")
	netnstest.Link(t, m, "from-c2", "10.213.6.1/24", c2, "to-m", "10.213.6.2/24")
	m.IP(t, "route", "add", "10.213.1.2/32", "via", "10.213.5.2")
	m.IP(t, "route", "add", "10.213.2.2/32", "via", "10.213.6.2")
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	// clientOf talks to the server from the test, through the host
	// namespace, with a token or an SVID.
	clientOf := func(token string, svid *tls.Certificate) *client.Client {
		t.Helper()
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(caPEM)
		tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		if svid != nil {
			tc.Certificates = []tls.Certificate{*svid}
		}
		hc := &http.Client{Transport: &http.Transport{DialContext: host.DialContext, TLSClientConfig: tc}}
		c, err := client.New(client.Config{Address: "https://" + addr, Token: token, HTTPClient: hc, Timeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.CloseIdleConnections)
		return c
	}
	admin := clientOf(root, nil)
	enroll := func(name string) (dir string, svid tls.Certificate) {
		t.Helper()
		tok, err := admin.NodeTokenCreate(ctx, client.NodeTokenRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		dir = t.TempDir()
		if _, err := agent.Enroll(ctx, agent.Config{Client: clientOf("", nil), JoinToken: tok.Token, DataDir: dir}); err != nil {
			t.Fatal(err)
		}
		svid, err = tls.LoadX509KeyPair(filepath.Join(dir, agent.SVIDFile), filepath.Join(dir, agent.KeyFile))
		if err != nil {
			t.Fatal(err)
		}
		return dir, svid
	}

	// Detection and response: the built-in Sigma pack and playbook.
	builtin, err := sigma.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range builtin {
		if _, err := admin.RulePut(ctx, r.ID, r.Source); err != nil {
			t.Fatalf("rule %s: %v", r.ID, err)
		}
	}
	if out, err := cli("playbook", "put", "--builtin"); err != nil {
		t.Fatalf("playbook put --builtin: %v: %s", err, out)
	}

	// The agent on the host: it tails the host's sshd log and enforces.
	logDir, agentDir := t.TempDir(), t.TempDir()
	authLog := filepath.Join(logDir, "auth.log")
	if err := os.WriteFile(authLog, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "agent.yml")
	if err := os.WriteFile(cfg, []byte("sources:\n  - {type: file, path: "+authLog+", parser: sshd}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var tok client.NodeToken
	r.cliJSON(&tok, "node", "token", "create", "--name", "gw-1")
	ag := startProc(t, host, bin, "agent", "agent", "--server", "https://"+addr, "--ca-cert", caFile,
		"--data-dir", agentDir, "--join-token", tok.Token, "--config", cfg, "--enforce", "nftables")
	waitFor(t, ctx, ag, "decisions enforced")

	// The service in m: pkg/middleware with a follower of the decision
	// stream, on the SVID of node api-1; any enrolled node may connect.
	for name, doc := range map[string]string{
		"open": `permit (principal, action == Action::"conduit.connect", resource);`,
		"svc-api-1": `permit (principal == Node::"api-1",
  action in [Action::"policy.list", Action::"policy.read", Action::"node.read", Action::"auth.whoami"], resource);`,
	} {
		if _, err := admin.PolicyWrite(ctx, "warden", name, doc); err != nil {
			t.Fatal(err)
		}
	}
	svcDir, svcSVID := enroll("api-1")
	svcClient := clientOf("", &svcSVID)
	f, err := client.NewFollower(client.FollowerConfig{Clients: []*client.Client{svcClient}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() { defer close(followed); f.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-followed })
	az, err := middleware.New(middleware.Config{Client: svcClient, TrustDomain: "warden.local", Self: "api-1", Decisions: f})
	if err != nil {
		t.Fatal(err)
	}
	if err := az.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	kp := &middleware.KeyPair{CertFile: filepath.Join(svcDir, agent.SVIDFile), KeyFile: filepath.Join(svcDir, agent.KeyFile)}
	ln := m.Listen(t, "tcp", "0.0.0.0:8443")
	hs := &http.Server{Handler: az.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") })),
		TLSConfig: az.TLSConfig(&tls.Config{GetCertificate: kp.GetCertificate}), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)}
	go hs.ServeTLS(ln, "", "")
	t.Cleanup(func() { hs.Close() })
	select {
	case <-f.Synced():
	case <-ctx.Done():
		t.Fatal("the service's follower never synced")
	}

	// The callers of the service: node peer-1's SVID, from c1's and c2's
	// addresses over their direct links to m.
	_, peerSVID := enroll("peer-1")
	bundle, err := admin.TrustBundle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	caller := func(ns *netnstest.NS, src, dst string) func() (int, error) {
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(bundle)
		tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{peerSVID},
			// SPIFFE verification: the chain to the bundle, no host name.
			InsecureSkipVerify: true, VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				leaf, err := x509.ParseCertificate(raw[0])
				if err != nil {
					return err
				}
				inter := x509.NewCertPool()
				for _, r := range raw[1:] {
					if c, err := x509.ParseCertificate(r); err == nil {
						inter.AddCert(c)
					}
				}
				_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
				return err
			}}
		dial := func(ctx context.Context, network, a string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() (err error) {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
				c, err = d.DialContext(ctx, network, a)
				return err
			})
			return c, err
		}
		hc := &http.Client{Transport: &http.Transport{DialContext: dial, TLSClientConfig: tc, DisableKeepAlives: true}, Timeout: 10 * time.Second}
		return func() (int, error) {
			res, err := hc.Get("https://" + dst + "/")
			if err != nil {
				return 0, err
			}
			res.Body.Close()
			return res.StatusCode, nil
		}
	}
	attacker, other := caller(c1, "10.213.1.2", "10.213.5.1:8443"), caller(c2, "10.213.2.2", "10.213.6.1:8443")
	for name, call := range map[string]func() (int, error){"c1": attacker, "c2": other} {
		if st, err := call(); err != nil || st != http.StatusOK {
			t.Fatalf("%s → the service before any decision: %d %v", name, st, err)
		}
	}
	if !c1.Served(service) || !c2.Served(service) {
		t.Fatal("the clients do not reach svc before any decision")
	}

	// The brute force, in the host's sshd log: 12 failures from c1 within
	// a minute, and a success from c2.
	base := time.Now().Add(-2 * time.Minute).Truncate(time.Minute)
	var lines []string
	for i := range 12 {
		ts := base.Add(time.Duration(i) * time.Second).Local().Format(time.Stamp)
		lines = append(lines, fmt.Sprintf("%s gw-1 sshd[%d]: Failed password for root from 10.213.1.2 port %d ssh2", ts, 2000+i, 50000+i))
	}
	lines = append(lines, base.Add(20*time.Second).Local().Format(time.Stamp)+" gw-1 sshd[2100]: Accepted publickey for deploy from 10.213.2.2 port 51000 ssh2")
	if err := os.WriteFile(authLog, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The playbook's ban, from the alert.
	var ban client.DecisionRecord
	for ban.ID == "" {
		ds, err := admin.DecisionList(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Target.IP == "10.213.1.2" {
				ban = d
			}
		}
		if ban.ID != "" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no ban of the attacker from the playbook before the test's deadline")
		case <-time.After(100 * time.Millisecond): // polling the server's detection and response; bounded by ctx
		}
	}
	if ban.Origin != "playbook:ssh-brute-force" || ban.AlertID == "" || ban.Type != "ban" {
		t.Fatalf("the ban is %+v; want origin playbook:ssh-brute-force with its alert", ban)
	}
	banned := time.Now()

	// nftables on the host drops c1; c2 is served.
	for c1.Served(service) {
		if ctx.Err() != nil {
			t.Fatal("c1 still reaches svc through the host after the ban")
		}
	}
	t.Logf("c1 dropped by the host's nftables %v after the ban was listed", time.Since(banned).Round(time.Millisecond))
	if !c2.Served(service) {
		t.Error("c2 is not served by svc while only c1 is banned")
	}
	// The middleware refuses c1 with 403 and serves c2.
	for {
		st, err := attacker()
		if err == nil && st == http.StatusForbidden {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the service still answers c1 %d %v after the ban", st, err)
		case <-time.After(20 * time.Millisecond): // the service's follower applies the ban; bounded by ctx
		}
	}
	if st, err := other(); err != nil || st != http.StatusOK {
		t.Errorf("c2 → the service after c1's ban: %d %v, want 200", st, err)
	}

	// A quarantine: node c2-node reports c2's address; quarantined, the
	// host's agent drops c2's traffic, and lifting it lets c2 through.
	qtok, err := admin.NodeTokenCreate(ctx, client.NodeTokenRequest{Name: "c2-node"})
	if err != nil {
		t.Fatal(err)
	}
	qkey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, qkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clientOf("", nil).Enroll(ctx, "", qtok.Token, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), "10.213.2.2"); err != nil {
		t.Fatal(err)
	}
	q, err := admin.DecisionAdd(ctx, client.DecisionInput{Type: "quarantine", Target: client.DecisionTarget{Node: "c2-node"}, Duration: "1h", Reason: "e2e"})
	if err != nil || !slices.Equal(q.Addresses, []string{"10.213.2.2"}) {
		t.Fatalf("quarantine of c2-node: %+v %v", q, err)
	}
	for c2.Served(service) {
		if ctx.Err() != nil {
			t.Fatal("c2 still reaches svc after its node's quarantine")
		}
	}
	if err := admin.DecisionDelete(ctx, q.ID); err != nil {
		t.Fatal(err)
	}
	for !c2.Served(service) {
		if ctx.Err() != nil {
			t.Fatal("c2 does not reach svc after the quarantine was lifted")
		}
	}

	// The incident holds the alert and the decision.
	incs, err := admin.IncidentList(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var inc client.Incident
	for _, in := range incs {
		if slices.Contains(in.Alerts, ban.AlertID) && slices.Contains(in.Decisions, ban.ID) {
			inc = in
		}
	}
	if inc.ID == "" {
		t.Fatalf("no incident holds alert %s and decision %s: %+v", ban.AlertID, ban.ID, incs)
	}

	// Its report verifies offline against the log's verifier key, and
	// fails once one byte changes.
	v, err := admin.AuditVerifierKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	if out, err := cli("incident", "report", inc.ID, "--format", "json", "-o", report); err != nil {
		t.Fatalf("incident report: %v: %s", err, out)
	}
	verify := func() (string, error) {
		cmd := host.Command(bin, "incident", "verify", report, "--verifier-key", v.VerifierKey)
		cmd.Env = append(os.Environ(), "WARDEN_ADDR=https://192.0.2.1:1") // offline: nothing answers there
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if out, err := verify(); err != nil {
		t.Fatalf("incident verify of the report: %v: %s", err, out)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), "10.213.1.2")
	if i < 0 {
		i = len(b) / 2
	}
	b[i] ^= 0x01 // one byte, where the attacker's address first appears
	if err := os.WriteFile(report, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := verify()
	if err == nil {
		t.Fatalf("incident verify accepted the report with byte %d changed: %s", i, out)
	}
	t.Logf("with byte %d changed, incident verify refuses the report: %s", i, strings.TrimSpace(out))
}
