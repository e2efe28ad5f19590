package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/hashicorp/raft"
)

// The fault-injection suite: a cluster of in-process nodes over in-memory
// transports that the test can cut, slow and restart, clients that record
// every operation's invocation and response, and porcupine checking the
// history against a key-value model.
//
// WARDEN_LIN_SEED=<n> replays one run; WARDEN_LIN_SOAK=<duration> keeps
// running randomized runs for that long (go test -run Linearizab -timeout 0).

// faultNet connects nodes: Raft over in-memory transports wrapped with a
// per-link delay, and peer requests through the same links.
type faultNet struct {
	mu    sync.Mutex
	trans map[raft.ServerAddress]*raft.InmemTransport
	nodes map[raft.ServerAddress]*Store
	cut   map[[2]raft.ServerAddress]bool // directed links that drop everything
	delay map[raft.ServerAddress]time.Duration
}

func newFaultNet() *faultNet {
	return &faultNet{trans: map[raft.ServerAddress]*raft.InmemTransport{}, nodes: map[raft.ServerAddress]*Store{},
		cut: map[[2]raft.ServerAddress]bool{}, delay: map[raft.ServerAddress]time.Duration{}}
}

// attach makes a transport for addr and connects it with every other one,
// respecting current cuts.
func (n *faultNet) attach(addr raft.ServerAddress) *faultTransport {
	_, t := raft.NewInmemTransport(addr)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.trans[addr] = t
	for a, o := range n.trans {
		if a == addr {
			continue
		}
		if !n.cut[[2]raft.ServerAddress{addr, a}] {
			t.Connect(a, o)
		}
		if !n.cut[[2]raft.ServerAddress{a, addr}] {
			o.Connect(addr, t)
		}
	}
	return &faultTransport{InmemTransport: t, net: n}
}

func (n *faultNet) setLink(from, to raft.ServerAddress, up bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[[2]raft.ServerAddress{from, to}] = !up
	f, t := n.trans[from], n.trans[to]
	if f == nil || t == nil {
		return
	}
	if up {
		f.Connect(to, t)
	} else {
		f.Disconnect(to)
	}
}

// isolate cuts every link to and from addr.
func (n *faultNet) isolate(addr raft.ServerAddress) {
	for _, o := range n.addrs() {
		if o != addr {
			n.setLink(addr, o, false)
			n.setLink(o, addr, false)
		}
	}
}

func (n *faultNet) heal() {
	for _, a := range n.addrs() {
		for _, b := range n.addrs() {
			if a != b {
				n.setLink(a, b, true)
			}
		}
	}
	n.mu.Lock()
	clear(n.delay)
	n.mu.Unlock()
}

func (n *faultNet) addrs() []raft.ServerAddress {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []raft.ServerAddress
	for a := range n.trans {
		out = append(out, a)
	}
	return out
}

func (n *faultNet) linkDelay(to raft.ServerAddress) time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.delay[to]
}

// forwarder is a node's view of the peer RPC network.
func (n *faultNet) forwarder(from raft.ServerAddress) Forwarder {
	return forwardFunc(func(ctx context.Context, to raft.ServerAddress, req *PeerRequest) (*PeerResponse, error) {
		n.mu.Lock()
		up := !n.cut[[2]raft.ServerAddress{from, to}] && !n.cut[[2]raft.ServerAddress{to, from}]
		dst := n.nodes[to]
		d := n.delay[to]
		n.mu.Unlock()
		if !up || dst == nil {
			return nil, fmt.Errorf("%w: %s", ErrUnreachable, to)
		}
		if d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		select {
		case <-dst.closed:
			return nil, fmt.Errorf("%w: %s closed", ErrUnreachable, to)
		default:
		}
		// Like a wire: the request is encoded and decoded.
		cmd := append([]byte(nil), req.Cmd...)
		r := *req
		r.Cmd = cmd
		return dst.HandlePeer(ctx, string(from), &r), nil // the wire authenticates the sender (ID = address here)
	})
}

type forwardFunc func(context.Context, raft.ServerAddress, *PeerRequest) (*PeerResponse, error)

func (f forwardFunc) Forward(ctx context.Context, a raft.ServerAddress, r *PeerRequest) (*PeerResponse, error) {
	return f(ctx, a, r)
}

// faultTransport delays the RPCs this node sends to a slow peer. It
// disables pipelining so every AppendEntries passes through the delay.
type faultTransport struct {
	*raft.InmemTransport
	net *faultNet
}

func (t *faultTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

func (t *faultTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if d := t.net.linkDelay(target); d > 0 {
		time.Sleep(d) // the injected fault: a slow link to target
	}
	return t.InmemTransport.AppendEntries(id, target, args, resp)
}

// faultCluster is a cluster on a faultNet whose nodes can be restarted.
type faultCluster struct {
	t     *testing.T
	mod   func(*Config) // optional: changes each node's Config
	net   *faultNet
	ids   []string
	dirs  []string
	mu    sync.RWMutex
	nodes []*Store
}

func linTimeouts(c *Config) {
	c.HeartbeatTimeout, c.ElectionTimeout = 200*time.Millisecond, 200*time.Millisecond
	c.LeaderLeaseTimeout, c.CommitTimeout = 200*time.Millisecond, 2*time.Millisecond
	c.ApplyTimeout = 2 * time.Second
}

func newFaultCluster(t *testing.T, n int, mod ...func(*Config)) *faultCluster {
	c := &faultCluster{t: t, net: newFaultNet()}
	if len(mod) > 0 {
		c.mod = mod[0]
	}
	var servers []raft.Server
	for i := range n {
		id := fmt.Sprint("n", i+1)
		c.ids = append(c.ids, id)
		c.dirs = append(c.dirs, t.TempDir())
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(id)})
	}
	c.nodes = make([]*Store, n)
	for i := range n {
		c.open(i, servers)
	}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, s := range c.nodes {
			s.Close()
		}
	})
	return c
}

func (c *faultCluster) open(i int, servers []raft.Server) {
	addr := raft.ServerAddress(c.ids[i])
	tr := c.net.attach(addr)
	cfg := Config{Dir: c.dirs[i], NodeID: c.ids[i], Transport: tr, Forwarder: c.net.forwarder(addr),
		Bootstrap: servers != nil, Servers: servers}
	linTimeouts(&cfg)
	if c.mod != nil {
		c.mod(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		c.t.Fatalf("open %s: %v", c.ids[i], err)
	}
	s.SetLeafCheck(plainLeafCheck)
	c.net.mu.Lock()
	c.net.nodes[addr] = s
	c.net.mu.Unlock()
	c.nodes[i] = s
}

func (c *faultCluster) node(i int) *Store {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.nodes[i]
}

func (c *faultCluster) restart(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[i].Close()
	c.open(i, nil)
}

func (c *faultCluster) leaderIndex() int {
	for i := range c.ids {
		if c.node(i).IsLeader() {
			return i
		}
	}
	return -1
}

// The key-value model: per key, the last value put ("" before any put).
type kvIn struct {
	put        bool
	key, value string
}

type kvOut struct {
	value   string
	unknown bool // a put whose outcome the client never learned
}

var kvModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(kvIn).key
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in, out := input.(kvIn), output.(kvOut)
		if in.put {
			return true, in.value
		}
		return out.value == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvIn), output.(kvOut)
		if in.put {
			return fmt.Sprintf("put(%s, %s) unknown=%v", in.key, in.value, out.unknown)
		}
		return fmt.Sprintf("get(%s) -> %q", in.key, out.value)
	},
}

type runStats struct {
	LinStats
	faults int
}

// linRun runs one randomized history against a fresh cluster and checks it.
func linRun(t *testing.T, seed uint64, nodes int, d time.Duration) runStats {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	c := newFaultCluster(t, nodes)
	ctx := context.Background()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	if err := c.node(0).WaitLeader(wctx); err != nil {
		t.Fatal(err)
	}
	cancel()

	w := StartLinWorkload(seed, 6, func(rng *rand.Rand, key, value string) error {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := c.node(rng.IntN(nodes)).Txn(ctx, rec(Txn{Ops: []Op{put(key, value)}}))
		return err
	}, func(rng *rand.Rand, key string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		e, err := c.node(rng.IntN(nodes)).Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			return "", nil
		}
		return string(e.Value), err
	})
	defer w.Stop()
	var st runStats

	// The nemesis: a random fault every 150–400 ms, healed before the next.
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		addrs := c.ids
		switch rng.IntN(5) {
		case 0: // minority partition: one node (two of five) cut off
			n := 1
			if nodes >= 5 {
				n = 2
			}
			for _, i := range rng.Perm(nodes)[:n] {
				c.net.isolate(raft.ServerAddress(addrs[i]))
			}
		case 1: // leader isolation
			if i := c.leaderIndex(); i >= 0 {
				c.net.isolate(raft.ServerAddress(addrs[i]))
			}
		case 2: // node restart (crash and recover from its data dir)
			c.restart(rng.IntN(nodes))
		case 3: // slow follower
			for i := range nodes {
				if !c.node(i).IsLeader() {
					c.net.mu.Lock()
					c.net.delay[raft.ServerAddress(addrs[i])] = 50 * time.Millisecond
					c.net.mu.Unlock()
					break
				}
			}
		case 4: // one-way cut between two random nodes
			p := rng.Perm(nodes)
			c.net.setLink(raft.ServerAddress(addrs[p[0]]), raft.ServerAddress(addrs[p[1]]), false)
		}
		st.faults++
		time.Sleep(time.Duration(150+rng.IntN(250)) * time.Millisecond) // the fault's duration (workload, not synchronization)
		c.net.heal()
		time.Sleep(time.Duration(100+rng.IntN(200)) * time.Millisecond) // time healed before the next fault
	}
	ops, ls := w.Stop()
	st.LinStats = ls
	CheckLinearizable(t, seed, ops)
	return st
}

// TestLinearizableUnderFaults runs randomized histories under minority
// partitions, leader isolation, node restarts, slow followers and one-way
// cuts, on three and five nodes, and checks each with porcupine.
func TestLinearizableUnderFaults(t *testing.T) {
	seed, soak := LinSeed(t)
	runs := []struct {
		nodes int
		d     time.Duration
	}{{3, 3 * time.Second}, {5, 3 * time.Second}, {3, 3 * time.Second}}
	deadline := time.Now().Add(soak)
	var total runStats
	n := 0
	for i := 0; i < len(runs) || time.Now().Before(deadline); i++ {
		r := runs[i%len(runs)]
		s := seed + uint64(i)
		t.Run(fmt.Sprintf("run%d-seed%d-%dnodes", i, s, r.nodes), func(t *testing.T) {
			st := linRun(t, s, r.nodes, r.d)
			t.Logf("seed %d: %d nodes, %d faults, %d puts (%d unknown), %d gets (%d failed): linearizable",
				s, r.nodes, st.faults, st.Puts, st.PutsUnknown, st.Gets, st.GetsFailed)
			total.Puts += st.Puts
			total.Gets += st.Gets
			total.faults += st.faults
		})
		n++
		if t.Failed() {
			break
		}
	}
	t.Logf("%d runs from seed %d (replay one with WARDEN_LIN_SEED=<seed>): %d faults, %d puts, %d gets, 0 violations",
		n, seed, total.faults, total.Puts, total.Gets)
	if total.Gets == 0 || total.Puts == 0 {
		t.Fatal("no operations completed")
	}
}
