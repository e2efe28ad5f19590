package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/detect/runtime"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/sigma"
	"github.com/warden-sec/warden/pkg/client"
)

// TestDetectClusterKill runs three server processes as a cluster (Raft,
// and their embedded NATS servers as a JetStream cluster). In the middle
// of an SSH brute force, the server that owns the brute force's partition
// is killed with SIGKILL; the rest of the attack arrives through a
// survivor. The survivors take the partition over from its checkpoint and
// replay the stream: exactly one brute-force alert results, counting
// every failed login, and every acknowledged event is in the stream.
func TestDetectClusterKill(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "warden")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/warden").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	type proc struct {
		id, dir, addr, logFile string
		cmd                    *exec.Cmd
		c                      *client.Client
	}
	ps := make([]*proc, 3)
	var natsAddrs []string
	clusterAddrs := make([]string, 3)
	for i := range ps {
		ps[i] = &proc{id: fmt.Sprint("n", i+1), dir: t.TempDir(), addr: freeAddr(t), logFile: filepath.Join(t.TempDir(), "server.log")}
		clusterAddrs[i] = freeAddr(t)
		natsAddrs = append(natsAddrs, freeAddr(t))
	}
	for i, p := range ps {
		out, err := os.Create(p.logFile)
		if err != nil {
			t.Fatal(err)
		}
		p.cmd = exec.Command(bin, "server", "--data-dir", p.dir, "--listen", p.addr, "--rate-limit", "-1",
			"--node-id", p.id, "--cluster-listen", clusterAddrs[i],
			"--events-nats-cluster-listen", natsAddrs[i], "--events-nats-routes", strings.Join(natsAddrs, ","))
		p.cmd.Stdout, p.cmd.Stderr = out, out
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			p.cmd.Process.Kill()
			p.cmd.Wait()
			if t.Failed() {
				b, _ := os.ReadFile(p.logFile)
				if len(b) > 200<<10 {
					b = b[len(b)-200<<10:]
				}
				t.Logf("%s output:\n%s", p.id, b)
			}
		})
		connectProc(ctx, t, p.addr, p.dir)
		// A join waits for the leader to admit the node: longer than
		// connectProc's 5 s on a loaded machine.
		c, err := client.New(client.Config{Address: "https://" + p.addr, CACertFile: filepath.Join(p.dir, "tls", "ca.pem"), Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		p.c = c
	}
	in, err := ps[0].c.Init(ctx, client.InitRequest{KeyShares: 1, KeyThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps[0].c.Unseal(ctx, in.UnsealKeys[0]); err != nil {
		t.Fatal(err)
	}
	bundle, err := os.ReadFile(filepath.Join(ps[0].dir, "cluster", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps[1:] {
		p.c.SetToken(in.RootToken)
		if err := p.c.RaftJoin(ctx, "https://"+ps[0].addr, bundle); err != nil {
			t.Fatalf("%s: join: %v", p.id, err)
		}
		waitFor(t, p.id+" to unseal", func() bool {
			st, err := p.c.Unseal(ctx, in.UnsealKeys[0])
			return err == nil && !st.Sealed
		})
	}
	// In cluster mode the servers' API certificates come from the cluster's
	// CA once they have one: clients trust tls/api-ca.pem (both CAs).
	for _, p := range ps {
		c, err := client.New(client.Config{Address: "https://" + p.addr, CACertFile: filepath.Join(p.dir, "tls", "api-ca.pem"),
			Token: in.RootToken, Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		p.c = c
	}
	admin := ps[0].c
	builtin, err := sigma.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var brute *sigma.Rule
	for _, r := range builtin {
		if _, err := admin.RulePut(ctx, r.ID, r.Source); err != nil {
			t.Fatalf("rule %s: %v", r.ID, err)
		}
		if r.Title == "SSH brute force" {
			brute = r
		}
	}
	metric := func(p *proc, name string) float64 {
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+p.addr+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+in.RootToken)
		res, err := httpClient(t, p.dir, nil).Do(req)
		if err != nil {
			return -1
		}
		defer res.Body.Close()
		var sum float64
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 2 && (f[0] == name || strings.HasPrefix(f[0], name+"{")) {
				v, _ := strconv.ParseFloat(f[1], 64)
				sum += v
			}
		}
		return sum
	}
	// Every partition owned, each server owning some.
	waitLong(t, "the partitions to spread over the three servers", func() bool {
		total := 0.0
		for _, p := range ps {
			n := metric(p, "warden_detect_partitions_owned")
			if n <= 0 {
				return false
			}
			total += n
		}
		return total == runtime.DefaultPartitions
	})

	// The attacker's partition and its owner (the server that acquired it last).
	const attacker = "203.0.113.66"
	sample := events.Event{"source.ip": attacker, "host.name": "web-1"}
	part := runtime.PartitionOf(sigma.PartitionKey(brute, sample), runtime.DefaultPartitions)
	owner := -1
	var ownerAt time.Time
	for i, p := range ps {
		if at := lastAcquired(t, p.logFile, part); !at.IsZero() && at.After(ownerAt) {
			owner, ownerAt = i, at
		}
	}
	if owner < 0 {
		t.Fatalf("no server logged acquiring partition %d", part)
	}
	survivor := ps[(owner+1)%3]

	svid := enrollSVID(ctx, t, admin, survivor.c, "web-1")
	epoch := "0123456789abcdef"
	now := time.Now().UTC()
	post := func(p *proc, seq uint64, from, n int) {
		t.Helper()
		var body bytes.Buffer
		for i := from; i < from+n; i++ {
			ev := map[string]any{"@timestamp": events.FormatTime(now.Add(time.Duration(i) * time.Second)),
				"event.module": "sshd", "event.dataset": "sshd", "event.category": "authentication",
				"event.action": "ssh_login", "event.outcome": "failure", "source.ip": attacker,
				"source.port": 40000 + i, "user.name": "root", "message": fmt.Sprintf("attempt %d", i)}
			b, _ := json.Marshal(ev)
			body.Write(append(b, '\n'))
		}
		cl := httpClient(t, p.dir, &svid)
		defer cl.CloseIdleConnections()
		deadline := time.Now().Add(60 * time.Second)
		for {
			req, _ := http.NewRequestWithContext(ctx, "POST", "https://"+p.addr+"/v1/events", bytes.NewReader(body.Bytes()))
			req.Header.Set("Content-Type", "application/x-ndjson")
			req.Header.Set("Warden-Batch-Epoch", epoch)
			req.Header.Set("Warden-Batch-Seq", strconv.FormatUint(seq, 10))
			res, err := cl.Do(req)
			if err == nil {
				msg, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					return
				}
				err = fmt.Errorf("%s: %s", res.Status, msg)
			}
			if time.Now().After(deadline) {
				t.Fatalf("batch %d through %s: %v", seq, p.id, err)
			}
			time.Sleep(100 * time.Millisecond) // the node's enrollment reaching this server, bounded
		}
	}
	// Six failures; once every server has read them (the owner holds the
	// brute force's state), the owner is killed.
	post(survivor, 1, 0, 6)
	waitLong(t, "the owner to read the first failures", func() bool {
		return metric(ps[owner], "warden_detect_events_total") >= 6
	})
	ps[owner].cmd.Process.Kill()
	ps[owner].cmd.Wait()
	// The rest of the attack through a survivor.
	post(survivor, 2, 6, 6)
	const failures = 12

	deadline := time.Now().Add(90 * time.Second)
	for {
		alerts, _, err := survivor.c.AlertList(ctx, client.AlertFilter{Rule: brute.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(alerts) > 1 {
			t.Fatalf("%d brute-force alerts, want one: %+v", len(alerts), alerts)
		}
		if len(alerts) == 1 && alerts[0].Count == failures {
			if alerts[0].Group["source.ip"] != attacker {
				t.Fatalf("alert group %v", alerts[0].Group)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no brute-force alert counting %d failures after the owner (%s) was killed: %+v", failures, ps[owner].id, alerts)
		}
		time.Sleep(200 * time.Millisecond) // polling the survivors' detection, bounded by the deadline
	}
	var res client.EventSearchResult
	waitLong(t, "a search through a survivor", func() bool {
		res, err = survivor.c.EventsSearch(ctx, client.EventSearch{Query: "source.ip:" + attacker, Since: "1h", Limit: 100})
		if err != nil {
			t.Logf("search: %v", err)
		}
		return err == nil
	})
	if len(res.Events) != failures {
		t.Fatalf("the stream holds %d of the %d acknowledged events", len(res.Events), failures)
	}
}

// lastAcquired returns when the server whose log is file last acquired
// partition p (zero if never).
func lastAcquired(t *testing.T, file string, p int) time.Time {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var last time.Time
	for _, line := range bytes.Split(b, []byte("\n")) {
		var rec struct {
			Time      time.Time `json:"time"`
			Msg       string    `json:"msg"`
			Partition *int      `json:"partition"`
		}
		if json.Unmarshal(line, &rec) != nil || rec.Partition == nil || *rec.Partition != p {
			continue
		}
		switch rec.Msg {
		case "detect: partition acquired":
			last = rec.Time
		case "detect: partition released", "detect: partition taken by another server",
			"detect: checkpoint fenced off: partition taken by another server":
			last = time.Time{}
		}
	}
	return last
}

// waitLong polls cond until it holds, for at most a minute (processes on a
// loaded machine).
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond) // polling other processes' state, bounded by the deadline
	}
}

// httpClient trusts the server whose data dir is dir, presenting cert if
// given.
func httpClient(t *testing.T, dir string, cert *tls.Certificate) *http.Client {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(dir, "tls", "api-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}
