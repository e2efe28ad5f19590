package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/sigma"
)

// memSink is the alert store of the tests: idempotent by key, the count
// is the highest recorded (as detect.Alerts.Record does).
type memSink struct {
	mu      sync.Mutex
	alerts  map[string]sigma.Hit
	records int
}

func newMemSink() *memSink { return &memSink{alerts: map[string]sigma.Hit{}} }

func (s *memSink) Record(ctx context.Context, h sigma.Hit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records++
	if old, ok := s.alerts[h.Key]; !ok || h.Count > old.Count {
		s.alerts[h.Key] = h
	}
	return nil
}

func (s *memSink) snapshot() map[string]sigma.Hit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.alerts)
}

// failingSink fails every record while failing is set: an alert store
// that is down, or (set for good) a server that was killed and records
// nothing more.
type failingSink struct {
	AlertSink
	failing atomic.Bool
}

func (s *failingSink) Record(ctx context.Context, h sigma.Hit) error {
	if s.failing.Load() {
		return errors.New("alert store unavailable")
	}
	return s.AlertSink.Record(ctx, h)
}

// appliedLog records which batches each partition applied, on which node.
type appliedLog struct {
	mu    sync.Mutex
	seen  map[int]map[uint64]int // partition → seq → times applied (all nodes)
	byNod map[string]map[int]uint64
}

func newAppliedLog() *appliedLog {
	return &appliedLog{seen: map[int]map[uint64]int{}, byNod: map[string]map[int]uint64{}}
}

func (a *appliedLog) hook(node string, then func(p int, seq uint64)) func(int, uint64) {
	return func(p int, seq uint64) {
		a.mu.Lock()
		if a.seen[p] == nil {
			a.seen[p] = map[uint64]int{}
		}
		a.seen[p][seq]++
		if a.byNod[node] == nil {
			a.byNod[node] = map[int]uint64{}
		}
		a.byNod[node][p] = max(a.byNod[node][p], seq)
		a.mu.Unlock()
		if then != nil {
			then(p, seq)
		}
	}
}

// missing lists, per partition, the batches of 1..last it never applied.
func (a *appliedLog) missing(partitions int, last uint64) map[int][]uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[int][]uint64{}
	for p := range partitions {
		for s := uint64(1); s <= last; s++ {
			if a.seen[p][s] == 0 {
				out[p] = append(out[p], s)
			}
		}
	}
	return out
}

func (a *appliedLog) times(p int, seq uint64) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[p][seq]
}

func (a *appliedLog) allAt(partitions int, last uint64) bool {
	return len(a.missing(partitions, last)) == 0
}

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func sshFailure(ip string, i int) events.Event {
	return events.Event{
		events.FieldTimestamp: events.FormatTime(t0.Add(time.Duration(i) * time.Second)),
		events.FieldModule:    "sshd", events.FieldDataset: "sshd",
		events.FieldCategory: "authentication", events.FieldAction: "ssh_login",
		events.FieldOutcome: "failure", events.FieldSourceIP: ip, events.FieldUserName: "root",
		events.FieldHostName: "web-1",
		events.FieldMessage:  fmt.Sprintf("Failed password for root from %s port %d ssh2", ip, 40000+i),
	}
}

func noise(i int) events.Event {
	return events.Event{
		events.FieldTimestamp: events.FormatTime(t0.Add(time.Duration(i) * time.Second)),
		events.FieldModule:    "nginx", events.FieldDataset: "nginx.access",
		events.FieldSourceIP: fmt.Sprintf("198.51.100.%d", i%250), events.FieldHostName: "web-2",
		events.FieldMessage: "GET / HTTP/1.1",
	}
}

// testEngine is the rules the tests run the runtime with, and the
// partition key of the brute force.
type testEngine struct {
	rules RuleSource
	key   func(ev events.Event) string
}

// builtinEngine is sigma's built-in pack, whose SSH brute-force
// correlation (event_count >= 10 per source.ip in 1m) the tests trigger.
func builtinEngine(t testing.TB) testEngine {
	t.Helper()
	rules, err := sigma.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var bf *sigma.Rule
	for _, r := range rules {
		if r.Title == "SSH brute force" {
			bf = r
		}
	}
	if bf == nil || bf.Correlation == nil {
		t.Fatal("the built-in pack has no SSH brute force correlation")
	}
	return testEngine{
		rules: RulesFunc(func(context.Context) ([]*sigma.Rule, uint64, error) { return rules, 1, nil }),
		key:   func(ev events.Event) string { return sigma.PartitionKey(bf, ev) },
	}
}

type testServer struct {
	node   string
	nats   *natsNode
	plane  *events.Plane
	rt     *Runtime
	sink   *failingSink
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
}

func quietLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

func startServer(t testing.TB, nd *natsNode, replicas int, eng testEngine, sink AlertSink, log *appliedLog, then func(p int, seq uint64), mod func(*Config)) *testServer {
	t.Helper()
	plane := openPlane(t, nd, replicas)
	kv := openKV(t, plane)
	s := &testServer{node: nd.name, nats: nd, plane: plane, sink: &failingSink{AlertSink: sink}, done: make(chan struct{})}
	cfg := Config{
		Node:               nd.name,
		Stream:             plane,
		KV:                 kv,
		Rules:              eng.rules,
		Alerts:             s.sink,
		Heartbeat:          200 * time.Millisecond,
		Lease:              time.Second,
		CheckpointInterval: 300 * time.Millisecond,
		Logger:             quietLogger(t).With("test_node", nd.name),
		applied:            log.hook(nd.name, then),
	}
	if mod != nil {
		mod(&cfg)
	}
	rt, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.rt = rt
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { defer close(s.done); _ = rt.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			t.Error("runtime did not stop")
		}
	})
	return s
}

// ownerOf reads which node owns partition p.
func ownerOf(t testing.TB, kv jetstream.KeyValue, p int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	e, err := kv.Get(ctx, ownerKey(p))
	if err != nil {
		return ""
	}
	var v ownerValue
	if err := jsonUnmarshal(e.Value(), &v); err != nil {
		t.Fatal(err)
	}
	return v.Node
}

// TestOneServerBruteForce: one server, the built-in pack, a brute force
// among noise: exactly one alert, with the attacker's address and the
// full count; the metrics tell what happened. Node names that are not
// bucket key tokens work too.
func TestOneServerBruteForce(t *testing.T) {
	for _, node := range []string{"n1", "warden-1.example.com"} {
		t.Run(node, func(t *testing.T) {
			eng := builtinEngine(t)
			nodes := startNATS(t, 1)
			sink := newMemSink()
			alog := newAppliedLog()
			reg := prometheus.NewRegistry()
			s := startServer(t, nodes[0], 1, eng, sink, alog, nil, func(c *Config) { c.Node, c.Metrics = node, reg })

			const attacker, burst = "203.0.113.7", 30
			var last uint64
			for i := range burst / 3 {
				evs := []events.Event{noise(i), sshFailure(attacker, 3*i), sshFailure(attacker, 3*i+1), sshFailure(attacker, 3*i+2)}
				// a few failures from others: under the threshold
				evs = append(evs, sshFailure(fmt.Sprintf("192.0.2.%d", i), i))
				last = appendBatch(t, s.plane, "web-1", uint64(i+1), evs)
			}
			waitFor(t, 30*time.Second, "every partition applied every batch", func() bool { return alog.allAt(DefaultPartitions, last) })
			expectOneAlert(t, sink, attacker, burst)
			waitFor(t, 30*time.Second, "metrics: every event, no lag, 16 partitions", func() bool {
				m := gather(t, reg)
				return m["warden_detect_events_total"] == 5*burst/3 && m["warden_detect_consumer_lag"] == 0 &&
					m["warden_detect_partitions_owned"] == DefaultPartitions && m["warden_detect_hits_recorded_total"] >= 1
			})
		})
	}
}

// gather returns the registry's unlabelled series by name.
func gather(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) > 0 {
				continue
			}
			switch {
			case m.Counter != nil:
				out[mf.GetName()] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[mf.GetName()] = m.Gauge.GetValue()
			}
		}
	}
	return out
}

// expectOneAlert waits for an alert with count and checks it is the only
// one, for attacker's address.
func expectOneAlert(t testing.TB, sink *memSink, attacker string, count int) map[string]sigma.Hit {
	t.Helper()
	waitFor(t, 30*time.Second, "the alert has the full count", func() bool {
		for _, h := range sink.snapshot() {
			if h.Count == int64(count) {
				return true
			}
		}
		return false
	})
	got := sink.snapshot()
	if len(got) != 1 {
		t.Fatalf("alerts: got %d keys %v, want 1", len(got), slices.Collect(maps.Keys(got)))
	}
	for k, h := range got {
		if h.Group["source.ip"] != attacker || h.Count != int64(count) {
			t.Errorf("alert %s: group %v count %d, want source.ip %s count %d", k, h.Group, h.Count, attacker, count)
		}
	}
	return got
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func readCheckpoint(kv jetstream.KeyValue, p int) (checkpoint, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var ck checkpoint
	e, err := kv.Get(ctx, ckptKey(p))
	if err != nil || jsonUnmarshal(e.Value(), &ck) != nil {
		return ck, false
	}
	return ck, true
}

// TestFailover is issue 12's "Done when": on a 3-node cluster, killing the
// server that owns the brute force's partition in the middle of the burst
// still yields exactly one alert with the full count, and no event is
// skipped (every partition applied every batch, across owners).
func TestFailover(t *testing.T) {
	for _, tc := range []struct {
		name string
		eng  func(t *testing.T) testEngine
	}{
		{"builtin", func(t *testing.T) testEngine { return builtinEngine(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) { testFailover(t, tc.eng(t)) })
	}
}

func testFailover(t *testing.T, eng testEngine) {
	const (
		attacker   = "203.0.113.7"
		perBatch   = 3
		partitions = DefaultPartitions
	)
	bfP := PartitionOf(eng.key(sshFailure(attacker, 0)), partitions)

	nodes := startNATS(t, 3)
	sink := newMemSink()
	alog := newAppliedLog()

	// The victim blocks (as if frozen) on the first batch of phase 2 it
	// applies to the brute force's partition, so its last checkpoint is
	// strictly older than what it applied: the survivors must replay.
	var (
		victim     atomic.Value // node name
		blockAfter atomic.Uint64
		reached    = make(chan uint64, 1)
		release    = make(chan struct{})
		once       sync.Once
	)
	victim.Store("")
	blockAfter.Store(1 << 62)
	servers := make([]*testServer, 3)
	for i, nd := range nodes {
		name := nd.name
		servers[i] = startServer(t, nd, 3, eng, sink, alog, func(p int, seq uint64) {
			if p == bfP && name == victim.Load().(string) && seq > blockAfter.Load() {
				once.Do(func() {
					reached <- seq
					<-release
				})
			}
		}, func(c *Config) { c.Lease = 2 * time.Second })
	}
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	waitFor(t, 60*time.Second, "partitions spread over the 3 servers", func() bool {
		sum := 0
		for _, s := range servers {
			if s.rt.Owned() < partitions/3 {
				return false
			}
			sum += s.rt.Owned()
		}
		return sum == partitions
	})
	kv := servers[0].rt.cfg.KV
	vname := ownerOf(t, kv, bfP)
	var vic *testServer
	var survivors []*testServer
	for _, s := range servers {
		if s.node == vname {
			vic = s
		} else {
			survivors = append(survivors, s)
		}
	}
	if vic == nil {
		t.Fatalf("partition %d owned by %q, not a server", bfP, vname)
	}
	t.Logf("brute force in partition %d, owned by %s", bfP, vname)
	pub := survivors[0].plane

	total, batch := 0, 0
	send := func(n int) uint64 {
		var last uint64
		for range n {
			evs := []events.Event{noise(batch)}
			for range perBatch {
				evs = append(evs, sshFailure(attacker, total))
				total++
			}
			evs = append(evs, sshFailure(fmt.Sprintf("192.0.2.%d", batch), batch))
			last = appendBatch(t, pub, "web-1", uint64(batch+1), evs)
			batch++
		}
		return last
	}

	// Phase 1: the owner checkpoints part of the burst.
	p1 := send(5)
	waitFor(t, 30*time.Second, "the owner checkpointed phase 1", func() bool {
		ck, ok := readCheckpoint(kv, bfP)
		return ok && ck.Seq >= p1
	})
	// Phase 2: the owner applies one more batch, then is killed before
	// its next checkpoint.
	blockAfter.Store(p1)
	victim.Store(vname)
	send(2)
	var blocked uint64
	select {
	case blocked = <-reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the owner never applied phase 2")
	}
	killed := time.Now()
	vic.sink.failing.Store(true)
	vic.plane.Close() // its connection
	vic.nats.srv.Shutdown()
	vic.cancel()
	close(release)
	if ck, _ := readCheckpoint(kv, bfP); ck.Seq >= blocked {
		t.Fatalf("checkpoint at %d, want before the killed owner's last batch %d", ck.Seq, blocked)
	}

	// Phase 3: the burst goes on while the survivors take over.
	last := send(5)
	t.Logf("phase 3 stored %v after the kill", time.Since(killed).Round(time.Millisecond))
	waitFor(t, 60*time.Second, "the survivors own every partition", func() bool {
		return survivors[0].rt.Owned()+survivors[1].rt.Owned() == partitions
	})
	t.Logf("the survivors own every partition %v after the kill", time.Since(killed).Round(time.Millisecond))
	waitFor(t, 60*time.Second, "every partition applied every batch", func() bool { return alog.allAt(partitions, last) })
	t.Logf("every partition applied every batch %v after the kill", time.Since(killed).Round(time.Millisecond))
	got := expectOneAlert(t, sink, attacker, total)
	if n := alog.times(bfP, blocked); n < 2 {
		t.Errorf("batch %d applied %d times to partition %d, want a replay after the failover", blocked, n, bfP)
	}
	if m := alog.missing(partitions, last); len(m) > 0 {
		t.Errorf("batches never applied: %v", m)
	}

	// A graceful stop hands the partitions over: the last server owns
	// them all and goes on applying every batch.
	stay, leave := survivors[0], survivors[1]
	leave.cancel()
	select {
	case <-leave.done:
	case <-time.After(30 * time.Second):
		t.Fatal("runtime did not stop")
	}
	waitFor(t, 60*time.Second, "the last server owns every partition", func() bool { return stay.rt.Owned() == partitions })
	last = send(1)
	waitFor(t, 60*time.Second, "every partition applied the batch after the stop", func() bool { return alog.allAt(partitions, last) })
	waitFor(t, 30*time.Second, "the alert has the full count", func() bool {
		h, ok := sink.snapshot()[slices.Collect(maps.Keys(got))[0]]
		return ok && h.Count == int64(total)
	})
	if n := len(sink.snapshot()); n != 1 {
		t.Errorf("%d alerts after the stop, want 1", n)
	}
}

func counterValue(t testing.TB, c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// TestRecordRetried: a hit that cannot be recorded is retried, never
// dropped, and no checkpoint advances past the events that made it.
func TestRecordRetried(t *testing.T) {
	eng := builtinEngine(t)
	nodes := startNATS(t, 1)
	mem := newMemSink()
	sink := &failingSink{AlertSink: mem}
	alog := newAppliedLog()
	s := startServer(t, nodes[0], 1, eng, sink, alog, nil, nil)
	waitFor(t, 30*time.Second, "partitions owned", func() bool { return s.rt.Owned() == DefaultPartitions })

	const attacker = "203.0.113.9"
	bfP := PartitionOf(eng.key(sshFailure(attacker, 0)), DefaultPartitions)
	// Under the threshold: checkpoints advance.
	before := appendBatch(t, s.plane, "web-1", 1, []events.Event{sshFailure(attacker, 0), sshFailure(attacker, 1)})
	waitFor(t, 30*time.Second, "checkpoint before the hit", func() bool {
		ck, ok := readCheckpoint(s.rt.cfg.KV, bfP)
		return ok && ck.Seq >= before
	})
	sink.failing.Store(true)
	var last uint64
	for i := range 4 {
		last = appendBatch(t, s.plane, "web-1", uint64(i+2), []events.Event{
			sshFailure(attacker, 2+3*i), sshFailure(attacker, 3+3*i), sshFailure(attacker, 4+3*i)})
	}
	waitFor(t, 30*time.Second, "records retried", func() bool { return counterValue(t, s.rt.m.retried) >= 3 })
	if ck, _ := readCheckpoint(s.rt.cfg.KV, bfP); ck.Seq > before+2 {
		// the hit is made by the batch before+3 (10th failure) at the latest
		t.Fatalf("checkpoint at %d while the hit of batch %d is not recorded", ck.Seq, before+3)
	}
	if n := len(mem.snapshot()); n != 0 {
		t.Fatalf("%d alerts recorded while the store fails", n)
	}
	sink.failing.Store(false)
	waitFor(t, 30*time.Second, "the alert recorded with the full count", func() bool {
		for _, h := range mem.snapshot() {
			if h.Count == 14 {
				return true
			}
		}
		return false
	})
	waitFor(t, 30*time.Second, "checkpoint past the hit", func() bool {
		ck, ok := readCheckpoint(s.rt.cfg.KV, bfP)
		return ok && ck.Seq >= last
	})
}

// versionedRules is a rule source like *detect.Rules: the rules with
// their placeholders in one view, and a cheap local version.
type versionedRules struct {
	mu    sync.Mutex
	rules []*sigma.Rule
	ph    map[string][]string
	ver   uint64
}

func (v *versionedRules) All(ctx context.Context) ([]*sigma.Rule, uint64, error) {
	rules, _, ver, err := v.Set(ctx)
	return rules, ver, err
}

func (v *versionedRules) Set(context.Context) ([]*sigma.Rule, sigma.Config, uint64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.rules, sigma.Config{Placeholders: v.ph}, v.ver, nil
}

var _ ruleSetSource = (*versionedRules)(nil)

func (v *versionedRules) Version() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ver
}

func (v *versionedRules) update(rules []*sigma.Rule, ph map[string][]string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rules, v.ph = rules, ph
	v.ver++
}

// TestRulesReload: a new rule set (seen through the source's version, or
// told by Reload) is swapped in between batches, with the source's
// placeholders, and the correlation state of the rules that remain is
// kept.
func TestRulesReload(t *testing.T) {
	rules, err := sigma.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	extra, err := sigma.Parse("extra.yml", []byte(`title: Admin login attempt
id: 0b8a4f4e-8d0c-4d8e-9d53-8f1a7a5b6c01
status: test
logsource: {product: linux, service: sshd}
detection:
  selection:
    user.name|expand: '%admins%'
    event.outcome: failure
  condition: selection
level: medium
`))
	if err != nil {
		t.Fatal(err)
	}
	src := &versionedRules{rules: rules, ver: 1}
	eng := builtinEngine(t)
	eng.rules = src
	nodes := startNATS(t, 1)
	mem := newMemSink()
	alog := newAppliedLog()
	s := startServer(t, nodes[0], 1, eng, mem, alog, nil, func(c *Config) { c.RulesPoll = time.Hour })

	const attacker = "203.0.113.10"
	burst := func(from int) []events.Event {
		var evs []events.Event
		for i := range 6 {
			evs = append(evs, sshFailure(attacker, from+i))
		}
		return evs
	}
	first := appendBatch(t, s.plane, "web-1", 1, burst(0))
	waitFor(t, 30*time.Second, "first part applied", func() bool { return alog.allAt(DefaultPartitions, first) })
	src.update(append(slices.Clone(rules), extra...), map[string][]string{"admins": {"root", "admin"}})
	waitFor(t, 30*time.Second, "rules version 2 loaded", func() bool { return counterValue(t, s.rt.m.rulesLoaded) == 2 })
	appendBatch(t, s.plane, "web-1", 2, burst(6))
	waitFor(t, 30*time.Second, "brute force across the reload (count 12) and the new rule's alert", func() bool {
		var bf, admin bool
		for _, h := range mem.snapshot() {
			bf = bf || h.Rule.Title == "SSH brute force" && h.Count == 12
			admin = admin || h.Rule.Title == "Admin login attempt"
		}
		return bf && admin
	})
	// Back to the built-in pack, told by Reload: the extra rule's state
	// is dropped, the brute force's kept.
	src.update(rules, nil)
	s.rt.Reload()
	waitFor(t, 30*time.Second, "rules version 3 loaded", func() bool { return counterValue(t, s.rt.m.rulesLoaded) == 3 })
	last := appendBatch(t, s.plane, "web-1", 3, burst(12))
	waitFor(t, 30*time.Second, "brute force count 18", func() bool {
		for _, h := range mem.snapshot() {
			if h.Rule.Title == "SSH brute force" && h.Count == 18 {
				return true
			}
		}
		return false
	})
	waitFor(t, 30*time.Second, "last batch applied", func() bool { return alog.allAt(DefaultPartitions, last) })
	if n := counterValue(t, s.rt.m.stateErrors); n != 0 {
		t.Errorf("%v state restore errors, want 0", n)
	}
}
