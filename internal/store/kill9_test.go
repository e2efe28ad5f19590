package store_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/pki"
	"github.com/warden-sec/warden/internal/raftnet"
	"github.com/warden-sec/warden/internal/store"
	"github.com/warden-sec/warden/internal/testnet"
)

// The fault suite with real processes: three store nodes, each a child
// process of this test binary (TestKill9Node), over the mutual-TLS cluster
// transport on 127.0.0.1, each with a data dir that outlives the process.
// Clients put and get through a small HTTP front on every node (the store's
// own forwarding and linearizable reads do the rest); a nemesis kills nodes
// with SIGKILL (one, the leader, a majority, or all of them at once) and
// restarts them on the same data dirs and cluster ports; porcupine checks
// the history.
//
// WARDEN_LIN_SEED=<n> pins the seed (the nemesis' and the clients' choices;
// the processes' timing is the machine's); WARDEN_LIN_SOAK=<duration> keeps
// starting new runs for that long (with -timeout 0).

// k9Env carries a child's k9Spec; only a child has it.
const k9Env = "WARDEN_KILL9_NODE"

// k9Run is how long one run's workload lasts by default.
const k9Run = 15 * time.Second

// k9Spec tells a child process which node to be.
type k9Spec struct {
	ID        string
	Dir       string // the node's data dir, kept across kills
	PKI       string // ca.pem, <ID>.pem and <ID>-key.pem
	Cluster   string // the Raft address to bind, the same at every restart (outside the ephemeral range: testnet)
	Bootstrap bool
	Ready     string   // the file the child writes its k9Addrs to once it serves
	Accept    []string // the members a joining node accepts Raft traffic from before it has a configuration
}

// k9Addrs is where a running child listens.
type k9Addrs struct {
	Cluster string // Raft and peer RPCs, mutual TLS
	Client  string // the test's HTTP front (plain, loopback)
}

// k9Status is a node's answer on /status.
type k9Status struct {
	Leader      bool // this node is the leader
	KnowsLeader bool
}

// TestKill9Node is not a test: it is the body of a child process started by
// TestLinearizableKill9, and skips otherwise. It serves until killed, or
// until its parent is gone (its stdin closes), so no node outlives the test.
func TestKill9Node(t *testing.T) {
	env := os.Getenv(k9Env)
	if env == "" {
		t.Skip("runs only as a node process of TestLinearizableKill9")
	}
	var spec k9Spec
	err := json.Unmarshal([]byte(env), &spec)
	if err == nil {
		err = k9Serve(spec)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kill9 node:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// k9Gate names a peer by its certificate's SPIFFE ID
// (spiffe://kill9.test/server/<id>); the store checks that id against the
// Raft configuration.
type k9Gate struct{}

func (k9Gate) Identify(cs *tls.ConnectionState) (string, error) {
	if len(cs.PeerCertificates) == 0 || len(cs.PeerCertificates[0].URIs) != 1 {
		return "", errors.New("no SPIFFE ID")
	}
	id, ok := strings.CutPrefix(cs.PeerCertificates[0].URIs[0].String(), "spiffe://kill9.test/server/")
	if !ok {
		return "", errors.New("not a server of the test cluster")
	}
	return id, nil
}

func k9Serve(spec k9Spec) error {
	ca, err := os.ReadFile(filepath.Join(spec.PKI, "ca.pem"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return errors.New("no CA certificate")
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(spec.PKI, spec.ID+".pem"), filepath.Join(spec.PKI, spec.ID+"-key.pem"))
	if err != nil {
		return err
	}
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool}
	cliTLS := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}
	// A killed node's port is free again at once (Go's listeners set
	// SO_REUSEADDR); retry, bounded, in case another process holds it.
	var tr *raftnet.NetTransport
	for deadline := time.Now().Add(10 * time.Second); ; {
		tr, err = raftnet.TLSTransport(spec.Cluster, srvTLS, cliTLS, k9Gate{}, nil)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling for the port, bounded by the deadline
	}
	if err != nil {
		return err
	}
	s, err := store.Open(store.Config{Dir: spec.Dir, NodeID: spec.ID, Transport: tr, Bootstrap: spec.Bootstrap,
		Logger:           slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		HeartbeatTimeout: 400 * time.Millisecond, ElectionTimeout: 400 * time.Millisecond,
		LeaderLeaseTimeout: 200 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
		ApplyTimeout: 3 * time.Second})
	if err != nil {
		return err
	}
	s.SetLeafCheck(store.PlainLeafCheck)
	if len(spec.Accept) > 0 {
		s.AcceptJoin(spec.Accept)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: k9Handler(s), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // the process ends with a kill
	b, err := json.Marshal(k9Addrs{Cluster: s.ClusterAddr(), Client: ln.Addr().String()})
	if err != nil {
		return err
	}
	if err := os.WriteFile(spec.Ready+".tmp", b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(spec.Ready+".tmp", spec.Ready); err != nil {
		return err
	}
	io.Copy(io.Discard, os.Stdin) //nolint:errcheck // EOF: the parent is gone
	return nil
}

// k9Handler is a node's client protocol: put and linearizable get through
// the store's own API (a follower forwards to the leader), status, join.
func k9Handler(s *store.Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		e, err := s.Get(ctx, r.FormValue("key"))
		switch {
		case errors.Is(err, store.ErrNotFound):
			w.WriteHeader(http.StatusNotFound)
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		default:
			w.Write(e.Value) //nolint:errcheck // the client sees a broken response
		}
	})
	mux.HandleFunc("POST /put", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		op := store.Op{Type: store.OpPut, Key: r.FormValue("key"), Value: []byte(r.FormValue("value"))}
		if _, err := s.Txn(ctx, store.Rec(store.Txn{Ops: []store.Op{op}})); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("POST /join", func(w http.ResponseWriter, r *http.Request) {
		if err := s.AddVoter(r.Context(), r.FormValue("id"), r.FormValue("addr")); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(k9Status{Leader: s.IsLeader(), KnowsLeader: s.Status().Leader != ""}) //nolint:errcheck
	})
	return mux
}

// k9Node is one node as the test sees it: its spec, and its current
// process if it runs.
type k9Node struct {
	spec   k9Spec
	log    string
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	client string        // the running process's client address; "" while down
}

// k9Cluster runs the child processes. mu guards the nodes' process fields,
// which the clients read while the nemesis changes them.
type k9Cluster struct {
	t     *testing.T
	bin   string
	hc    *http.Client
	mu    sync.Mutex
	nodes []*k9Node
}

// newK9Cluster starts three nodes: n1 bootstraps alone, n2 and n3 join it
// as voters. Every process is killed when t ends, pass or fail.
func newK9Cluster(t *testing.T) *k9Cluster {
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ids := []string{"n1", "n2", "n3"}
	k9PKI(t, dir, ids)
	c := &k9Cluster{t: t, bin: bin,
		hc: &http.Client{Timeout: 8 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	for i, id := range ids {
		c.nodes = append(c.nodes, &k9Node{log: filepath.Join(dir, id+".log"), spec: k9Spec{ID: id,
			Dir: filepath.Join(dir, id), PKI: dir, Cluster: testnet.RestartableAddr(t), Bootstrap: i == 0,
			Ready: filepath.Join(dir, id+".ready"), Accept: ids[:i]}})
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			c.kill(n)
		}
		c.hc.CloseIdleConnections()
		if t.Failed() {
			for _, n := range c.nodes {
				t.Logf("%s's log ends:\n%s", n.spec.ID, k9Tail(n.log, 30))
			}
		}
	})
	c.start(c.nodes[0])
	c.waitLeader()
	for _, n := range c.nodes[1:] {
		c.start(n)
		c.join(n)
	}
	c.waitLeader()
	return c
}

// k9PKI writes a CA and, for each node, a certificate for 127.0.0.1 issued
// by the project's own pki package, as a real node's would be.
func k9PKI(t *testing.T, dir string, ids []string) {
	ca, err := pki.NewRootCA(pki.CAOptions{CommonName: "kill9 test cluster", TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", pki.Bundle(ca.Cert))
	for _, id := range ids {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := ca.Issue(pki.IssueRequest{CSR: csr, SPIFFEID: "spiffe://kill9.test/server/" + id,
			IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		kb, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		write(id+".pem", pki.Bundle(cert))
		write(id+"-key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}))
	}
}

// start runs n's process and waits until it serves; a restarted node binds
// the cluster address it had.
func (c *k9Cluster) start(n *k9Node) {
	t := c.t
	os.Remove(n.spec.Ready)
	spec, err := json.Marshal(n.spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(c.bin, "-test.run=^TestKill9Node$", "-test.timeout=0")
	cmd.Env = append(os.Environ(), k9Env+"="+string(spec))
	logf, err := os.OpenFile(n.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = logf, logf
	if _, err := cmd.StdinPipe(); err != nil { // closed by the parent's exit, or by Wait
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() //nolint:errcheck // killed on purpose
	c.mu.Lock()
	n.cmd, n.exited = cmd, exited
	c.mu.Unlock()

	deadline := time.Now().Add(30 * time.Second)
	for {
		var a k9Addrs
		if b, err := os.ReadFile(n.spec.Ready); err == nil && json.Unmarshal(b, &a) == nil {
			c.mu.Lock()
			n.spec.Cluster, n.client = a.Cluster, a.Client
			c.mu.Unlock()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not come up within 30s", n.spec.ID)
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before it served: %v", n.spec.ID, cmd.ProcessState)
		case <-time.After(20 * time.Millisecond): // polling for the ready file, bounded by the deadline
		}
	}
}

// kill sends n's process SIGKILL (kill -9) and reaps it. It reports whether
// the process was still running: one that died on its own is a failure.
func (c *k9Cluster) kill(n *k9Node) bool {
	c.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.cmd, n.client = nil, ""
	c.mu.Unlock()
	if cmd == nil {
		return true
	}
	select {
	case <-exited:
		return false
	default:
	}
	cmd.Process.Signal(syscall.SIGKILL) //nolint:errcheck // it may just have exited
	<-exited
	return true
}

func (c *k9Cluster) clientAddr(n *k9Node) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return n.client
}

// join has n1 (or the leader it forwards to) add n as a voter.
func (c *k9Cluster) join(n *k9Node) {
	q := url.Values{"id": {n.spec.ID}, "addr": {n.spec.Cluster}}
	resp, err := c.hc.PostForm("http://"+c.clientAddr(c.nodes[0])+"/join", q)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", resp.Status, b)
		}
	}
	if err != nil {
		c.t.Fatalf("join %s: %v", n.spec.ID, err)
	}
}

func (c *k9Cluster) status(n *k9Node) (k9Status, bool) {
	var st k9Status
	addr := c.clientAddr(n)
	if addr == "" {
		return st, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/status", nil)
	resp, err := c.hc.Do(req)
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st) == nil
}

// leader returns the node that says it leads, or nil.
func (c *k9Cluster) leader() *k9Node {
	for _, n := range c.nodes {
		if st, ok := c.status(n); ok && st.Leader {
			return n
		}
	}
	return nil
}

// waitLeader waits until a node leads and every running node knows a
// leader.
func (c *k9Cluster) waitLeader() {
	deadline := time.Now().Add(30 * time.Second)
	for {
		lead, all := false, true
		for _, n := range c.nodes {
			if c.clientAddr(n) == "" {
				continue
			}
			st, ok := c.status(n)
			lead = lead || st.Leader
			all = all && ok && st.KnowsLeader
		}
		if lead && all {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatal("no leader known to every running node within 30s")
		}
		time.Sleep(50 * time.Millisecond) // polling the nodes' status, bounded by the deadline
	}
}

// pick returns the client address of a random running node.
func (c *k9Cluster) pick(rng *mrand.Rand) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var up []string
	for _, n := range c.nodes {
		if n.client != "" {
			up = append(up, n.client)
		}
	}
	if len(up) == 0 {
		return ""
	}
	return up[rng.IntN(len(up))]
}

func (c *k9Cluster) put(addr, key, value string) error {
	resp, err := c.hc.PostForm("http://"+addr+"/put", url.Values{"key": {key}, "value": {value}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return nil
}

func (c *k9Cluster) get(addr, key string) (string, error) {
	resp, err := c.hc.Get("http://" + addr + "/get?" + url.Values{"key": {key}}.Encode())
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return "", err
	case resp.StatusCode == http.StatusNotFound:
		return "", nil
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return string(b), nil
}

type k9Stats struct {
	store.LinStats
	kills, leaderKills, majorities, powerCuts int // processes killed; of them leaders; faults that killed a majority, all
}

// k9AllDown is a client's back-off while every node is down (a power cut).
func k9AllDown() error {
	time.Sleep(10 * time.Millisecond) // a client's back-off, not synchronization
	return store.ErrNoEffect
}

// k9RunOnce runs one history of d under kill -9 faults against a fresh
// cluster, and checks it.
func k9RunOnce(t *testing.T, seed uint64, d time.Duration) k9Stats {
	rng := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	c := newK9Cluster(t)

	// Clients use the running nodes; a request may meet its node's kill.
	w := store.StartLinWorkload(seed, 5, func(rng *mrand.Rand, key, value string) error {
		addr := c.pick(rng)
		if addr == "" {
			return k9AllDown()
		}
		err := c.put(addr, key, value)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return store.ErrNoEffect // it never reached the node (just killed)
		}
		return err
	}, func(rng *mrand.Rand, key string) (string, error) {
		addr := c.pick(rng)
		if addr == "" {
			return "", k9AllDown()
		}
		return c.get(addr, key)
	})
	defer w.Stop() // also when the nemesis fails the test: no client outlives it
	var st k9Stats

	// The nemesis: now and then kill nodes with SIGKILL, leave them down a
	// little, restart them on their data dirs and ports, and wait until every
	// node knows a leader again. Killing a majority or every node at once
	// leaves the acknowledged writes nowhere but on the disks of killed
	// processes: what they synced must be all that counts.
	for end := time.Now().Add(d); time.Now().Before(end); {
		time.Sleep(time.Duration(500+rng.IntN(1000)) * time.Millisecond) // time between faults (workload pacing, not synchronization)
		lead := c.leader()
		var victims []*k9Node
		switch p := rng.Perm(len(c.nodes)); rng.IntN(4) {
		case 0: // a random node
			victims = []*k9Node{c.nodes[p[0]]}
		case 1: // the leader
			victims = []*k9Node{lead}
		case 2: // a majority: the leader and another node
			victims = []*k9Node{lead, c.nodes[p[0]]}
			if lead == c.nodes[p[0]] {
				victims[1] = c.nodes[p[1]]
			}
		case 3: // every node (a power cut)
			victims = c.nodes
		}
		if victims[0] == nil { // no leader known at this moment
			victims = []*k9Node{c.nodes[rng.IntN(len(c.nodes))]}
		}
		switch {
		case len(victims) == len(c.nodes):
			st.powerCuts++
		case len(victims) > len(c.nodes)/2:
			st.majorities++
		}
		for _, v := range victims {
			if !c.kill(v) {
				t.Errorf("seed %d: %s died on its own before it was killed", seed, v.spec.ID)
			}
			st.kills++
			if v == lead {
				st.leaderKills++
			}
		}
		time.Sleep(time.Duration(100+rng.IntN(900)) * time.Millisecond) // the nodes' downtime (the fault)
		for _, v := range victims {
			c.start(v)
		}
		c.waitLeader()
	}
	ops, ls := w.Stop()
	st.LinStats = ls

	for _, n := range c.nodes {
		if b, _ := os.ReadFile(n.log); strings.Contains(string(b), "DATA RACE") || strings.Contains(string(b), "panic:") {
			t.Errorf("seed %d: %s's log reports a race or a panic", seed, n.spec.ID)
		}
	}
	store.CheckLinearizable(t, seed, ops)
	return st
}

// TestLinearizableKill9 runs randomized histories against three node
// processes that are killed with SIGKILL and restarted, and checks each
// with porcupine.
func TestLinearizableKill9(t *testing.T) {
	seed, soak := store.LinSeed(t)
	var total k9Stats
	n := 0
	for deadline := time.Now().Add(soak); n == 0 || time.Now().Before(deadline); n++ {
		s := seed + uint64(n)
		t.Run(fmt.Sprintf("run%d-seed%d", n, s), func(t *testing.T) {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("seed %d failed: replay its choices with WARDEN_LIN_SEED=%d", s, s)
				}
			})
			st := k9RunOnce(t, s, k9Run)
			t.Logf("seed %d: %d processes killed (%d leaders; %d times a majority, %d times all), %d puts (%d unknown, %d without effect), %d gets (%d failed)",
				s, st.kills, st.leaderKills, st.majorities, st.powerCuts, st.Puts, st.PutsUnknown, st.PutsNoEffect, st.Gets, st.GetsFailed)
			total.kills += st.kills
			total.Puts += st.Puts - st.PutsUnknown - st.PutsNoEffect
			total.Gets += st.Gets - st.GetsFailed
		})
		if t.Failed() {
			return
		}
	}
	t.Logf("%d runs from seed %d: %d kills, %d puts and %d gets acknowledged, 0 violations",
		n, seed, total.kills, total.Puts, total.Gets)
	if total.Puts == 0 || total.Gets == 0 {
		t.Fatal("no operations completed")
	}
}

// k9Tail returns the last n lines of the file at path.
func k9Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
