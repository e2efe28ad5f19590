package cosign

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/witness"
)

// memLog is a log kept in memory with the pure audit core: leaf hashes,
// the nodes appends complete, checkpoints signed with a note key.
type memLog struct {
	mu     sync.Mutex
	skey   audit.SignerKey
	vkey   string
	origin string
	st     audit.TreeState
	nodes  map[[2]uint64][]byte
}

func newMemLog(t *testing.T) *memLog { return newMemLogOf(t, "warden.local/audit/test") }

func newMemLogOf(t *testing.T, origin string) *memLog {
	t.Helper()
	skey, vkey, err := audit.GenerateKey(origin, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &memLog{skey: skey, vkey: vkey, origin: origin, nodes: map[[2]uint64][]byte{}}
}

// fork returns a log with the same key and the first n leaves of l.
func (l *memLog) fork(t *testing.T, leaves []string) *memLog {
	f := &memLog{skey: l.skey, vkey: l.vkey, origin: l.origin, nodes: map[[2]uint64][]byte{}}
	for _, s := range leaves {
		f.add(t, s)
	}
	return f
}

func (l *memLog) add(t *testing.T, leaves ...string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var hs [][]byte
	for _, s := range leaves {
		hs = append(hs, audit.LeafHash([]byte(s)))
	}
	next, nodes, err := audit.Append(l.st, hs)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		l.nodes[[2]uint64{uint64(n.Level), n.Index}] = n.Hash
	}
	l.st = next
}

func (l *memLog) GetNode(level uint, index uint64) ([]byte, error) {
	if h, ok := l.nodes[[2]uint64{uint64(level), index}]; ok {
		return h, nil
	}
	return nil, fmt.Errorf("node (%d, %d) not found", level, index)
}

func (l *memLog) Checkpoint(context.Context) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	root, err := l.st.Root()
	if err != nil {
		return nil, err
	}
	return audit.Sign(l.skey, l.st.Size, root)
}

func (l *memLog) ConsistencyProof(old, new uint64) ([][]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return audit.ConsistencyProof(l, old, new)
}

func (l *memLog) Verifier() (string, string, error) { return l.origin, l.vkey, nil }

// testWitness is a real witness, reached in-process (Guard) or over HTTP
// (httptest and witness.Client); requests counts the submissions.
type testWitness struct {
	w        *witness.Witness
	guard    *Guard
	srv      *httptest.Server
	requests atomic.Int64
	forks    chan *witness.ForkError
}

func newTestWitness(t *testing.T, name string, l *memLog, overHTTP bool) *testWitness {
	t.Helper()
	skey, _, err := witness.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	w, err := witness.Open(witness.Config{Dir: filepath.Join(t.TempDir(), "state"), Signer: skey, Logs: map[string]string{l.origin: l.vkey}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	tw := &testWitness{w: w, forks: make(chan *witness.ForkError, 16)}
	tw.guard = &Guard{W: w, OnFork: func(from string, fe *witness.ForkError) { tw.forks <- fe }}
	if overHTTP {
		h := PeerHandler(tw.guard, func(*http.Request) string { return "peer" })
		tw.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			tw.requests.Add(1)
			h.ServeHTTP(rw, r)
		}))
		t.Cleanup(tw.srv.Close)
	}
	return tw
}

func (tw *testWitness) target(id string) Target {
	if tw.srv != nil {
		return Target{ID: id, VerifierKey: tw.w.VerifierKey(), Submit: &witness.Client{URL: tw.srv.URL, VerifierKey: tw.w.VerifierKey()}}
	}
	return Target{ID: id, VerifierKey: tw.w.VerifierKey(), Submit: countingSubmitter{tw}}
}

// countingSubmitter counts in-process submissions.
type countingSubmitter struct{ tw *testWitness }

func (c countingSubmitter) AddCheckpoint(ctx context.Context, old uint64, p [][]byte, cp []byte) ([]byte, error) {
	c.tw.requests.Add(1)
	return c.tw.guard.AddCheckpoint(ctx, old, p, cp)
}

func fixedTargets(ts ...Target) Targets {
	return func(context.Context) ([]Target, error) { return ts, nil }
}

func keys(ws ...*testWitness) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.w.VerifierKey())
	}
	return out
}

func leaves(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// TestCosignerQuorumCacheAndGrowth: a checkpoint comes back with the
// cosignatures of every witness (one in-process, two over HTTP), which
// VerifyCosigned accepts; asking again for the same checkpoint submits
// nothing; after the log grows each witness is sent one request with the
// consistency proof from the size it cosigned.
func TestCosignerQuorumCacheAndGrowth(t *testing.T) {
	l := newMemLog(t)
	l.add(t, leaves("a", 5)...)
	w1, w2, w3 := newTestWitness(t, "w1", l, false), newTestWitness(t, "w2", l, true), newTestWitness(t, "w3", l, true)
	c := NewCosigner(CosignerConfig{Log: l, Targets: fixedTargets(w1.target("server n1"), w2.target("server n2"), w3.target("external w3"))})
	ctx := context.Background()

	if res, err := c.Cosigned(ctx, 0); err != nil || len(res.Cosigners) != 0 {
		t.Fatalf("want 0 before any round: %+v %v", res, err)
	}
	res, err := c.Cosigned(ctx, All)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cosigners) != 3 || res.Size != 5 {
		t.Fatalf("cosigners %v, size %d", res.Cosigners, res.Size)
	}
	v, err := witness.VerifyCosigned(res.Checkpoint, l.vkey, keys(w1, w2, w3), 3)
	if err != nil || v.Size != 5 {
		t.Fatalf("VerifyCosigned: %+v %v", v, err)
	}
	// The first contact: old size 0 is right for a witness that never
	// cosigned: one request each.
	for i, w := range []*testWitness{w1, w2, w3} {
		if n := w.requests.Load(); n != 1 {
			t.Fatalf("witness %d: %d requests, want 1", i+1, n)
		}
	}
	// Same checkpoint: served from the round, nothing submitted.
	for _, want := range []int{0, 2, All} {
		res, err := c.Cosigned(ctx, want)
		if err != nil || len(res.Cosigners) != 3 {
			t.Fatalf("again (want %d): %+v %v", want, res, err)
		}
	}
	if n := w2.requests.Load() + w1.requests.Load() + w3.requests.Load(); n != 3 {
		t.Fatalf("%d requests after asking again for the same checkpoint, want 3", n)
	}
	// Growth: one request each, with the proof from 5.
	l.add(t, leaves("b", 7)...)
	res, err = c.Cosigned(ctx, 2)
	if err != nil || len(res.Cosigners) < 2 || res.Size != 12 {
		t.Fatalf("after growth: %+v %v", res, err)
	}
	if _, err := witness.VerifyCosigned(res.Checkpoint, l.vkey, keys(w1, w2, w3), 2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cosigned(ctx, All); err != nil {
		t.Fatal(err)
	}
	for i, w := range []*testWitness{w1, w2, w3} {
		if n := w.requests.Load(); n != 2 {
			t.Fatalf("witness %d: %d requests after growth, want 2", i+1, n)
		}
		if size, _ := w.w.Size(l.origin); size != 12 {
			t.Fatalf("witness %d: size %d", i+1, size)
		}
	}
	st := c.Status()
	if st["server n2"].Size != 12 || st["server n2"].Error != "" {
		t.Fatalf("status: %+v", st)
	}
}

// TestCosignerCoalesces: many concurrent callers of one checkpoint make
// one round: each witness is asked once.
func TestCosignerCoalesces(t *testing.T) {
	l := newMemLog(t)
	l.add(t, leaves("a", 3)...)
	w1, w2 := newTestWitness(t, "w1", l, true), newTestWitness(t, "w2", l, true)
	c := NewCosigner(CosignerConfig{Log: l, Targets: fixedTargets(w1.target("server n1"), w2.target("server n2"))})
	var wg sync.WaitGroup
	errc := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Cosigned(context.Background(), 2)
			if err == nil && len(res.Cosigners) != 2 {
				err = fmt.Errorf("%d cosigners", len(res.Cosigners))
			}
			errc <- err
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n1, n2 := w1.requests.Load(), w2.requests.Load(); n1 != 1 || n2 != 1 {
		t.Fatalf("requests %d and %d, want one each", n1, n2)
	}
}

// TestCosignerLearnsSize: a cosigner that does not know what a witness
// has seen (a restarted node) sends old size 0, is told the size (409),
// and sends the proof from there.
func TestCosignerLearnsSize(t *testing.T) {
	l := newMemLog(t)
	l.add(t, leaves("a", 4)...)
	w := newTestWitness(t, "w1", l, true)
	if _, err := NewCosigner(CosignerConfig{Log: l, Targets: fixedTargets(w.target("server n1"))}).Cosigned(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	l.add(t, leaves("b", 9)...)
	res, err := NewCosigner(CosignerConfig{Log: l, Targets: fixedTargets(w.target("server n1"))}).Cosigned(context.Background(), 1)
	if err != nil || res.Size != 13 {
		t.Fatalf("%+v %v", res, err)
	}
	if n := w.requests.Load(); n != 3 {
		t.Fatalf("%d requests, want 3 (the first round, then 409 and the retry)", n)
	}
}

// TestCosignerFork: a node whose log was rewritten (same key, another
// history) asks for cosignatures: every witness refuses, each in-process
// witness reports the fork with both checkpoints, and the caller gets a
// QuorumError naming who refused and why.
func TestCosignerFork(t *testing.T) {
	l := newMemLog(t)
	l.add(t, leaves("a", 6)...)
	w1, w2 := newTestWitness(t, "w1", l, false), newTestWitness(t, "w2", l, true)
	targets := fixedTargets(w1.target("server n1"), w2.target("server n2"))
	good := NewCosigner(CosignerConfig{Log: l, Targets: targets})
	honest, err := good.Cosigned(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	// Entry 2 rewritten, then the log goes on growing.
	forked := leaves("a", 6)
	forked[2] = "rewritten"
	f := l.fork(t, append(forked, leaves("c", 3)...))
	bad := NewCosigner(CosignerConfig{Log: f, Targets: targets})
	res, err := bad.Cosigned(context.Background(), 1)
	var qe *QuorumError
	if !errors.As(err, &qe) || !errs.Is(err, errs.Unavailable) {
		t.Fatalf("forked log: %v, want a QuorumError (Unavailable)", err)
	}
	if len(res.Cosigners) != 0 || len(res.Refusals) != 2 {
		t.Fatalf("result %+v", res)
	}
	for _, r := range res.Refusals {
		if !strings.Contains(r.Reason, "not consistent") {
			t.Fatalf("refusal %+v does not say it is not consistent", r)
		}
	}
	if !strings.Contains(err.Error(), "server n1: refused") || !strings.Contains(err.Error(), "server n2: refused") {
		t.Fatalf("error %q does not name both witnesses", err)
	}
	for i, w := range []*testWitness{w1, w2} {
		select {
		case fe := <-w.forks:
			if string(noteBody(fe.Cosigned)) != string(noteBody(honest.Checkpoint)) {
				t.Fatalf("witness %d: the evidence's cosigned checkpoint is not the honest one:\n%s", i+1, fe.Cosigned)
			}
			if s, _ := noteSize(fe.Offered); s != 9 {
				t.Fatalf("witness %d: offered %s", i+1, fe.Offered)
			}
		default:
			t.Fatalf("witness %d reported no fork", i+1)
		}
	}
	// The honest log still gets its cosignatures.
	l.add(t, "d")
	if _, err := good.Cosigned(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
}

// TestCosignerRefusals: a witness that is down or does not know the log
// is named with the reason; a quorum larger than the witnesses is bad
// input; a witness ahead of this node's checkpoint is said to be.
func TestCosignerRefusals(t *testing.T) {
	l := newMemLog(t)
	l.add(t, leaves("a", 3)...)
	other := newMemLogOf(t, "warden.local/audit/other")
	w1 := newTestWitness(t, "w1", l, true)
	stranger := newTestWitness(t, "w2", other, true) // knows another log only
	down := newTestWitness(t, "w3", l, true)
	down.srv.Close()
	c := NewCosigner(CosignerConfig{Log: l, Targets: fixedTargets(w1.target("server n1"), stranger.target("external w2"), down.target("external w3"))})
	_, err := c.Cosigned(context.Background(), 2)
	var qe *QuorumError
	if !errors.As(err, &qe) {
		t.Fatalf("%v, want a QuorumError", err)
	}
	msg := err.Error()
	for _, want := range []string{"1 of the 2", "external w2: refused: it does not know this log", "external w3: failed"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("error %q lacks %q", msg, want)
		}
	}
	if _, err := c.Cosigned(context.Background(), 4); !errs.Is(err, errs.Invalid) {
		t.Fatalf("quorum above the witnesses: %v, want Invalid", err)
	}
	// A node behind the witness (its checkpoint older than what the
	// witness cosigned) cannot prove anything: it says so.
	l.add(t, leaves("b", 4)...)
	if _, err := NewCosigner(CosignerConfig{Log: l, Targets: fixedTargets(w1.target("server n1"))}).Cosigned(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	behind := l.fork(t, append(leaves("a", 3), leaves("b", 2)...))
	_, err = NewCosigner(CosignerConfig{Log: behind, Targets: fixedTargets(w1.target("server n1"))}).Cosigned(context.Background(), 1)
	if err == nil || !strings.Contains(err.Error(), "newer than this checkpoint") {
		t.Fatalf("behind: %v", err)
	}
}
