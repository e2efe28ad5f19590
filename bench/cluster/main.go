// Command cluster starts a local Warden cluster of real processes for load
// tests and measures failover.
//
//	go run ./bench/cluster -nodes 3 -serve        # prints an export line; Ctrl-C stops
//	go run ./bench/cluster -nodes 3 -kills 20     # failover time over 20 leader kills
//	go run ./bench/cluster -nodes 3 -load 10m     # full write load (wrk), no kill: elections counted
//
// -server-args passes flags to every node (e.g. "--raft-heartbeat-timeout=500ms").
// Every node listens on 127.0.0.1 only; data dirs are temporary and removed
// at exit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/warden-sec/warden/pkg/client"
)

type node struct {
	id, dir, api, cluster string
	logDir                string
	args                  []string
	cmd                   *exec.Cmd
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (n *node) start(bin string) error {
	n.cmd = exec.Command(bin, "server", "--data-dir", n.dir, "--listen", n.api, "--node-id", n.id,
		"--cluster-listen", n.cluster, "--log-level", "warn", "--rate-limit", "-1", "--metrics-public")
	n.cmd.Args = append(n.cmd.Args, n.args...)
	log, err := os.OpenFile(filepath.Join(n.logDir, n.id+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	n.cmd.Stdout, n.cmd.Stderr = log, log
	return n.cmd.Start()
}

func (n *node) kill() {
	if n.cmd != nil && n.cmd.Process != nil {
		n.cmd.Process.Kill()
		n.cmd.Wait()
	}
}

func (n *node) client(token string) *client.Client {
	ca := filepath.Join(n.dir, "tls", "api-ca.pem")
	c, err := client.New(client.Config{Address: "https://" + n.api, CACertFile: ca, Token: token, Timeout: 15 * time.Second})
	if err != nil {
		panic(err)
	}
	return c
}

// waitUp polls the node's health until it answers at all.
func (n *node) waitUp(ctx context.Context) error {
	for {
		if _, err := os.Stat(filepath.Join(n.dir, "tls", "api-ca.pem")); err == nil {
			if _, err := n.client("").SealStatus(ctx); err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not come up", n.id)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (n *node) unseal(ctx context.Context, keys []string) error {
	for _, k := range keys {
		st, err := n.client("").Unseal(ctx, k)
		if err != nil {
			return fmt.Errorf("%s: unseal: %w", n.id, err)
		}
		if !st.Sealed {
			return nil
		}
	}
	return fmt.Errorf("%s: still sealed", n.id)
}

func main() {
	nNodes := flag.Int("nodes", 3, "cluster size")
	serve := flag.Bool("serve", false, "start the cluster, print an export line for the leader, run until interrupted")
	kills := flag.Int("kills", 0, "kill the leader this many times and report failover times")
	load := flag.Duration("load", 0, "run wrk (full write load, bench/kv-put.lua) against the leader this long, kill nothing, and count elections")
	bin := flag.String("bin", "", "warden binary (default: built from this checkout)")
	serverArgs := flag.String("server-args", "", "extra flags for every node, space-separated")
	logDir := flag.String("logs", "", "keep the nodes' logs (n1.log, ...) in this directory (default: removed with the data dirs)")
	flag.Parse()
	if err := run(*nNodes, *serve, *kills, *load, *bin, strings.Fields(*serverArgs), *logDir); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func run(nNodes int, serve bool, kills int, load time.Duration, bin string, args []string, logDir string) error {
	tmp, err := os.MkdirTemp("", "warden-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if logDir == "" {
		logDir = tmp
	} else if err := os.MkdirAll(logDir, 0o700); err != nil {
		return err
	}
	if bin == "" {
		bin = filepath.Join(tmp, "warden")
		b := exec.Command("go", "build", "-o", bin, "./cmd/warden")
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	ctx := context.Background()
	nodes := make([]*node, nNodes)
	for i := range nodes {
		nodes[i] = &node{id: fmt.Sprint("n", i+1), dir: filepath.Join(tmp, fmt.Sprint("n", i+1)), api: freePort(), cluster: freePort(), args: args, logDir: logDir}
		if err := nodes[i].start(bin); err != nil {
			return err
		}
		defer nodes[i].kill()
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.waitUp(wctx); err != nil {
			return err
		}
	}
	res, err := nodes[0].client("").Init(ctx, client.InitRequest{KeyShares: 1, KeyThreshold: 1})
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	keys, root := res.UnsealKeys, res.RootToken
	if err := nodes[0].unseal(ctx, keys); err != nil {
		return err
	}
	bundle, err := os.ReadFile(filepath.Join(nodes[0].dir, "cluster", "ca.pem"))
	if err != nil {
		return err
	}
	for _, n := range nodes[1:] {
		if err := n.client(root).RaftJoin(ctx, "https://"+nodes[0].api, bundle); err != nil {
			return fmt.Errorf("%s: join: %w", n.id, err)
		}
		if err := n.unseal(ctx, keys); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "cluster of %d nodes up in %s\n", nNodes, tmp)
	if serve {
		fmt.Printf("export WARDEN_ADDR='https://%s' WARDEN_CACERT='%s' WARDEN_TOKEN='%s'\n",
			nodes[0].api, filepath.Join(nodes[0].dir, "tls", "api-ca.pem"), root)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		return nil
	}
	if kills > 0 {
		return failover(ctx, bin, nodes, keys, root, kills)
	}
	if load > 0 {
		return fullLoad(ctx, bin, nodes, root, load)
	}
	return nil
}

// failover kills the leader (SIGKILL) again and again. Each time it
// measures how long after the kill a write through a surviving node is
// acknowledged (through a client whose connection was open before the
// kill, as an application's would be) and when a survivor first reports
// itself leader, checks every earlier acknowledged write, then restarts and
// unseals the killed node and waits until it is a caught-up voter.
func failover(ctx context.Context, bin string, nodes []*node, keys []string, root string, kills int) error {
	var times, elected []time.Duration
	acked := 0
	term0 := maxTerm(ctx, nodes)
	for k := range kills {
		lead, err := findLeader(ctx, nodes)
		if err != nil {
			return err
		}
		other := nodes[(lead+1)%len(nodes)]
		wc := other.client(root)
		if _, err := wc.KVPut(ctx, fmt.Sprint("bench/acked-", acked), map[string]any{"v": acked}, nil); err != nil {
			return fmt.Errorf("write before kill: %w", err)
		}
		acked++
		var survivors []*node
		for i, n := range nodes {
			if i != lead {
				survivors = append(survivors, n)
			}
		}
		t0 := time.Now()
		nodes[lead].kill()
		wctx, stopWatch := context.WithTimeout(ctx, 2*time.Minute)
		newLeader := watchLeader(wctx, survivors, t0)
		for {
			if _, err := wc.KVPut(ctx, fmt.Sprint("bench/acked-", acked), map[string]any{"v": acked}, nil); err == nil {
				break
			} else if time.Since(t0) > time.Minute {
				stopWatch()
				return fmt.Errorf("no write accepted within a minute after the kill: %w", err)
			}
		}
		d := time.Since(t0)
		nl := <-newLeader // a leader exists now: the next poll sees it
		stopWatch()
		acked++
		times = append(times, d)
		elected = append(elected, nl.after)
		fmt.Fprintf(os.Stderr, "kill %2d: %s was leader; %s reported itself leader after %s; first write accepted after %s\n",
			k+1, nodes[lead].id, nl.id, nl.after.Round(time.Millisecond), d.Round(time.Millisecond))
		for i := range acked {
			rt := time.Now()
			s, err := wc.KVGet(ctx, fmt.Sprint("bench/acked-", i), 0)
			if err != nil || fmt.Sprint(s.Data["v"]) != fmt.Sprint(i) {
				return fmt.Errorf("acknowledged write %d missing after the kill (read through %s at %s, took %s): %v",
					i, other.id, rt.Format("15:04:05.000"), time.Since(rt).Round(time.Millisecond), err)
			}
		}
		if err := nodes[lead].start(bin); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = nodes[lead].waitUp(wctx)
		cancel()
		if err != nil {
			return err
		}
		if err := nodes[lead].unseal(ctx, keys); err != nil {
			return err
		}
		// Caught up: a linearizable read on it sees the last write.
		if _, err := nodes[lead].client(root).KVGet(ctx, fmt.Sprint("bench/acked-", acked-1), 0); err != nil {
			return fmt.Errorf("%s did not catch up: %w", nodes[lead].id, err)
		}
	}
	fmt.Printf("failover over %d leader kills on %d nodes: %s; %d acknowledged writes, none lost\n",
		len(times), len(nodes), summary(times), acked)
	fmt.Printf("  (a survivor reported itself leader: %s)\n", summary(elected))
	fmt.Printf("  Raft term raised by %v for %d kills (more: split votes or elections nobody needed)\n", maxTerm(ctx, nodes)-term0, kills)
	return nil
}

// findLeader polls the nodes' health until one reports itself leader (an
// election may be under way), for up to 10 s.
func findLeader(ctx context.Context, nodes []*node) (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		for i, n := range nodes {
			if h, err := n.client("").Health(ctx); err == nil && h.Role == "leader" {
				return i, nil
			}
		}
		if time.Now().After(deadline) {
			return -1, errors.New("no leader for 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// summary is "median M, max X, min N (all: ...)" of ds, which it sorts.
func summary(ds []time.Duration) string {
	slices.Sort(ds)
	var parts []string
	for _, t := range ds {
		parts = append(parts, t.Round(time.Millisecond).String())
	}
	return fmt.Sprintf("median %s, max %s, min %s (all: %s)", ds[len(ds)/2].Round(time.Millisecond),
		ds[len(ds)-1].Round(time.Millisecond), ds[0].Round(time.Millisecond), strings.Join(parts, " "))
}

type elected struct {
	id    string
	after time.Duration // since the kill
}

// watchLeader polls the survivors' health every 5 ms until one reports
// itself leader, or ctx ends; it sends what it saw (id "none" if nothing).
func watchLeader(ctx context.Context, survivors []*node, t0 time.Time) <-chan elected {
	out := make(chan elected, 1)
	cs := make([]*client.Client, len(survivors))
	for i, n := range survivors {
		cs[i] = n.client("")
	}
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			for i, c := range cs {
				hctx, cancel := context.WithTimeout(ctx, time.Second)
				h, err := c.Health(hctx)
				cancel()
				if err == nil && h.Role == "leader" {
					out <- elected{survivors[i].id, time.Since(t0)}
					return
				}
			}
			select {
			case <-ctx.Done():
				out <- elected{"none", time.Since(t0)}
				return
			case <-tick.C:
			}
		}
	}()
	return out
}
