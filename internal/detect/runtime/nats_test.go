package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/warden-sec/warden/internal/events"
)

// Real NATS for the tests: one embedded server, or a 3-node JetStream
// cluster whose members route to each other over loopback.

const testBucket = "detect"

type natsNode struct {
	name string
	srv  *server.Server
}

// freePorts reserves n loopback ports (released before use: the cluster
// configuration needs every route's port before any server starts).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// startNATS starts n servers (a cluster when n > 1) with JetStream on.
func startNATS(t testing.TB, n int) []*natsNode {
	t.Helper()
	var routes []*url.URL
	var cports []int
	if n > 1 {
		cports = freePorts(t, n)
		for _, p := range cports {
			routes = append(routes, &url.URL{Scheme: "nats", Host: "127.0.0.1:" + strconv.Itoa(p)})
		}
	}
	nodes := make([]*natsNode, n)
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		opts := &server.Options{
			ServerName: name,
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
		}
		if n > 1 {
			opts.Cluster = server.ClusterOpts{Name: "warden-test", Host: "127.0.0.1", Port: cports[i]}
			opts.Routes = routes
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		nodes[i] = &natsNode{name: name, srv: s}
		t.Cleanup(s.Shutdown)
	}
	for _, nd := range nodes {
		if !nd.srv.ReadyForConnections(20 * time.Second) {
			t.Fatalf("nats %s not ready", nd.name)
		}
	}
	return nodes
}

// openPlane opens the event plane on nd, as on an external NATS
// cluster: the stream the runtime consumes, the bucket it leases and
// checkpoints in, and Append to store batches. It retries while a cluster
// elects its leaders.
func openPlane(t testing.TB, nd *natsNode, replicas int) *events.Plane {
	t.Helper()
	var p *events.Plane
	waitFor(t, 60*time.Second, "event plane opened on "+nd.name, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		p, err = events.OpenPlane(ctx, events.PlaneConfig{ServerName: nd.name, URL: nd.srv.ClientURL(), Replicas: replicas})
		if err != nil {
			t.Logf("open plane: %v", err)
		}
		return err == nil
	})
	t.Cleanup(func() { p.Close() })
	return p
}

func openKV(t testing.TB, p *events.Plane) jetstream.KeyValue {
	t.Helper()
	var kv jetstream.KeyValue
	waitFor(t, 60*time.Second, "bucket opened", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		kv, err = p.KV(ctx, testBucket)
		return err == nil
	})
	return kv
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronization
	}
}

const testEpoch = "0123456789abcdef"

// appendBatch stores evs as batch seq of agent node (seqs start at 1 and
// grow), retrying until stored: the plane stores a batch once, so a retry
// after a lost answer is safe.
func appendBatch(t testing.TB, p *events.Plane, node string, seq uint64, evs []events.Event) uint64 {
	t.Helper()
	lines := make([][]byte, len(evs))
	for i, ev := range evs {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		lines[i] = b
	}
	var stored uint64
	waitFor(t, 60*time.Second, "batch stored", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, _, err := p.Append(ctx, node, "spiffe://warden.test/node/"+node, testEpoch, seq, lines)
		if err != nil {
			t.Logf("append: %v", err)
			return false
		}
		stored = s
		return true
	})
	return stored
}
