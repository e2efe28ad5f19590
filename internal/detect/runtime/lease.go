package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Keys in the bucket. Node names are KV-safe tokens (Config.Node is
// checked by New).
const (
	memberPrefix = "member." // member.<node>: {"run","beat"}, rewritten every heartbeat
	ownerPrefix  = "owner."  // owner.<p>: {"node","run"}, created/updated/deleted with CAS
	ckptPrefix   = "ckpt."   // ckpt.<p>: the partition's checkpoint, updated with CAS
)

func ownerKey(p int) string { return ownerPrefix + strconv.Itoa(p) }
func ckptKey(p int) string  { return ckptPrefix + strconv.Itoa(p) }

// memberValue is what a server heartbeats. Beat only makes each write
// differ; liveness is judged by the observer's own clock (below). Ready
// says the server's own view is fresh: a server that cannot follow the
// bucket is alive (its partitions stay its own) but gets none assigned.
type memberValue struct {
	Run   string `json:"run"`
	Beat  uint64 `json:"beat"`
	Ready bool   `json:"ready"`
}

// ownerValue names the server instance that owns a partition. Run tells
// two lives of one node apart: a restarted server does not inherit the
// partitions of its previous life, it takes them over like any other.
type ownerValue struct {
	Node string `json:"node"`
	Run  string `json:"run"`
}

type ownerSeen struct {
	ownerValue
	rev     uint64    // revision of owner.<p>; 0 when absent
	present bool      // the key exists
	since   time.Time // local time this state was first observed
}

type memberSeen struct {
	rev   uint64
	at    time.Time // local (monotonic) time the revision was first observed
	ready bool
}

// membership heartbeats this server's member key and watches every
// member and owner key.
//
// Liveness needs no agreement between clocks: a member is live, in an
// observer's view, if the observer saw its key change within the lease,
// measured on the observer's own monotonic clock. A view is trusted only
// while the observer keeps seeing its own heartbeats come back through
// the watch (fresh), so an observer that was cut off from the bucket does
// not mistake everybody else for dead.
type membership struct {
	kv        jetstream.KeyValue
	node, run string
	heartbeat time.Duration
	lease     time.Duration
	now       func() time.Time
	log       *slog.Logger

	mu       sync.Mutex
	members  map[string]memberSeen
	owners   map[int]ownerSeen
	selfSeen time.Time // last time our own heartbeat came back through the watch
	beatOK   time.Time // last successful heartbeat write
	liveKey  string    // the live set last reported, to signal changes
	changed  chan struct{}
	started  time.Time
	rewatch  [2]context.CancelFunc // restart the watches (members, owners)
}

func newMembership(kv jetstream.KeyValue, node, run string, heartbeat, lease time.Duration, now func() time.Time, log *slog.Logger) *membership {
	return &membership{
		kv: kv, node: node, run: run, heartbeat: heartbeat, lease: lease, now: now, log: log,
		members: map[string]memberSeen{},
		owners:  map[int]ownerSeen{},
		changed: make(chan struct{}, 1),
	}
}

func (m *membership) signal() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// run heartbeats and watches until ctx ends. It returns only ctx's error;
// failures are logged and retried.
func (m *membership) runLoop(ctx context.Context) error {
	m.mu.Lock()
	m.started = m.now()
	m.mu.Unlock()
	go m.watchLoop(ctx, 0, memberPrefix+"*", m.onMember)
	go m.watchLoop(ctx, 1, ownerPrefix+"*", m.onOwner)
	t := time.NewTicker(m.heartbeat)
	defer t.Stop()
	var beat uint64
	for {
		beat++
		_, _, fresh := m.view()
		v, _ := json.Marshal(memberValue{Run: m.run, Beat: beat, Ready: fresh})
		wctx, cancel := context.WithTimeout(ctx, m.lease)
		_, err := m.kv.Put(wctx, memberPrefix+m.node, v)
		cancel()
		if err == nil {
			m.mu.Lock()
			m.beatOK = m.now()
			// Heartbeats are stored but do not come back: the watch is
			// stuck (its stream changed leader); open it again.
			last := m.selfSeen
			if last.Before(m.started) {
				last = m.started
			}
			stuck := m.now().Sub(last) > m.lease
			restart := m.rewatch
			if stuck {
				m.started = m.now() // once per lease
			}
			m.mu.Unlock()
			if stuck {
				m.log.Warn("detect: own heartbeats not seen back; reopening the watches")
				for _, c := range restart {
					if c != nil {
						c()
					}
				}
			}
		} else if ctx.Err() == nil {
			m.log.Warn("detect: heartbeat failed", "err", err)
		}
		m.checkLive()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// watchLoop feeds fn every update of keys, re-opening the watch when it
// ends before ctx does.
func (m *membership) watchLoop(ctx context.Context, slot int, keys string, fn func(jetstream.KeyValueEntry)) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		m.mu.Lock()
		m.rewatch[slot] = cancel
		m.mu.Unlock()
		w, err := m.kv.Watch(wctx, keys)
		if err != nil {
			cancel()
			m.log.Warn("detect: watch failed", "keys", keys, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(m.heartbeat):
			}
			continue
		}
		go func() {
			<-wctx.Done()
			_ = w.Stop()
		}()
		for e := range w.Updates() {
			if e != nil {
				fn(e)
			}
		}
		cancel()
	}
}

func (m *membership) onMember(e jetstream.KeyValueEntry) {
	node := strings.TrimPrefix(e.Key(), memberPrefix)
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(m.members, node)
		return
	}
	var v memberValue
	_ = json.Unmarshal(e.Value(), &v)
	if node == m.node && v.Run == m.run {
		m.selfSeen = m.now()
	}
	if s, ok := m.members[node]; !ok || s.rev != e.Revision() {
		m.members[node] = memberSeen{rev: e.Revision(), at: m.now(), ready: v.Ready}
	}
}

func (m *membership) onOwner(e jetstream.KeyValueEntry) {
	p, err := strconv.Atoi(strings.TrimPrefix(e.Key(), ownerPrefix))
	if err != nil {
		return
	}
	s := ownerSeen{rev: e.Revision(), since: m.now()}
	if e.Operation() == jetstream.KeyValuePut {
		if json.Unmarshal(e.Value(), &s.ownerValue) == nil {
			s.present = true
		}
	}
	m.mu.Lock()
	if old, ok := m.owners[p]; !ok || old.rev < s.rev {
		m.owners[p] = s
	}
	m.mu.Unlock()
	if !s.present {
		m.signal() // a released partition may be ours to claim now
	}
}

// setOwner records an owner key this server just wrote, so decisions do
// not wait for the watch to echo it.
func (m *membership) setOwner(p int, v ownerValue, rev uint64, present bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.owners[p]; !ok || old.rev < rev {
		m.owners[p] = ownerSeen{ownerValue: v, rev: rev, present: present, since: m.now()}
	}
}

// checkLive signals when the live set changed.
func (m *membership) checkLive() {
	live, ready, _ := m.view()
	k := strings.Join(live, ",") + "|" + strings.Join(ready, ",")
	m.mu.Lock()
	changed := k != m.liveKey
	m.liveKey = k
	m.mu.Unlock()
	if changed {
		m.signal()
	}
}

// view returns the live members and, among them, those ready to be
// assigned partitions (their last heartbeat said their own view was
// fresh), both sorted, and whether this server's view is fresh enough to
// act on. This server is in both sets only when fresh.
func (m *membership) view() (live, ready []string, fresh bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	fresh = !m.selfSeen.IsZero() && now.Sub(m.selfSeen) < m.lease && now.Sub(m.beatOK) < m.lease
	for node, s := range m.members {
		if node == m.node || now.Sub(s.at) >= m.lease {
			continue
		}
		live = append(live, node)
		if s.ready {
			ready = append(ready, node)
		}
	}
	if fresh {
		live = append(live, m.node)
		ready = append(ready, m.node)
	}
	slices.Sort(live)
	slices.Sort(ready)
	return live, ready, fresh
}

// owner returns what the watch last showed of owner.<p>.
func (m *membership) owner(p int) ownerSeen {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.owners[p]
}

// heartbeatAge is how long ago this server last wrote its heartbeat.
func (m *membership) heartbeatAge() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.beatOK.IsZero() {
		return time.Duration(1<<63 - 1)
	}
	return m.now().Sub(m.beatOK)
}

func isCASConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// assign returns the owner of each of n partitions among live (sorted,
// non-empty): a balanced assignment (each member gets n/len(live) or one
// more) in which each partition goes to the member ranking it highest by
// rendezvous hashing among those with room left. Every server computing
// it from the same live set gets the same answer.
func assign(live []string, n int) []string {
	out := make([]string, n)
	if len(live) == 0 {
		return out
	}
	base, extra := n/len(live), n%len(live)
	room := make(map[string]int, len(live))
	for i, m := range live {
		room[m] = base
		if i < extra {
			room[m]++
		}
	}
	ranked := make([]string, len(live))
	for p := range n {
		copy(ranked, live)
		slices.SortFunc(ranked, func(a, b string) int {
			ha, hb := rendezvous(a, p), rendezvous(b, p)
			switch {
			case ha > hb:
				return -1
			case ha < hb:
				return 1
			}
			return strings.Compare(a, b)
		})
		for _, m := range ranked {
			if room[m] > 0 {
				room[m]--
				out[p] = m
				break
			}
		}
	}
	return out
}

func rendezvous(member string, p int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(member))
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(p)))
	return h.Sum64()
}

// PartitionOf is the partition of a correlation key (sigma.PartitionKey)
// among n: FNV-1a (32 bits) of the key, modulo n.
func PartitionOf(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}
