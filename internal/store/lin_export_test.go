package store

import (
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// What the linearizability suites share, exported for the kill -9 variant
// (kill9_test.go), which lives in package store_test because it imports
// raftnet, and raftnet imports store.

// LinSeed returns the seed of a randomized run: WARDEN_LIN_SEED if set,
// else the clock; and WARDEN_LIN_SOAK, how long to keep starting new runs
// (0: the default runs only). It logs the seed at once, so even a run that
// hangs or panics names it.
func LinSeed(t *testing.T) (seed uint64, soak time.Duration) {
	t.Helper()
	seed = uint64(time.Now().UnixNano())
	if s := os.Getenv("WARDEN_LIN_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("WARDEN_LIN_SEED: %v", err)
		}
		seed = v
	}
	if s := os.Getenv("WARDEN_LIN_SOAK"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("WARDEN_LIN_SOAK: %v", err)
		}
		soak = v
	}
	t.Logf("seed %d (replay with WARDEN_LIN_SEED=%d)", seed, seed)
	return seed, soak
}

// LinPut is the input of a put of value to key in the key-value model.
func LinPut(key, value string) any { return kvIn{put: true, key: key, value: value} }

// LinGet is the input of a get of key.
func LinGet(key string) any { return kvIn{key: key} }

// LinOutput is an operation's output: the value a get returned, or for a
// put, whether its outcome is unknown (then its Return must be "never").
func LinOutput(value string, unknown bool) any { return kvOut{value: value, unknown: unknown} }

// CheckLinearizable checks ops against the key-value model and fails t,
// naming seed, if they are not linearizable (writing an HTML visualization
// and naming its file) or if the checker ran out of time.
func CheckLinearizable(t *testing.T, seed uint64, ops []porcupine.Operation) {
	t.Helper()
	res, info := porcupine.CheckOperationsVerbose(kvModel, ops, 60*time.Second)
	switch res {
	case porcupine.Illegal:
		f, _ := os.CreateTemp("", "warden-lin-*.html")
		if f != nil {
			porcupine.Visualize(kvModel, info, f)
			f.Close()
			t.Errorf("seed %d: history is not linearizable; visualization in %s", seed, f.Name())
		} else {
			t.Errorf("seed %d: history is not linearizable", seed)
		}
	case porcupine.Unknown:
		t.Errorf("seed %d: the checker timed out on %d operations", seed, len(ops))
	}
}

// ErrNoEffect marks a failed put that certainly had no effect (it never
// reached a node): a LinWorkload leaves it out of the history.
var ErrNoEffect = errors.New("the operation had no effect")

// LinStats counts a workload's operations.
type LinStats struct {
	Puts, PutsUnknown, PutsNoEffect, Gets, GetsFailed int
}

// LinWorkload is clients putting and getting a few keys while recording
// the history for CheckLinearizable.
type LinWorkload struct {
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
	seq  atomic.Int64
	t0   time.Time
	mu   sync.Mutex // guards ops and st
	ops  []porcupine.Operation
	st   LinStats
}

// StartLinWorkload starts clients, each with its own random source derived
// from seed, that until Stop pick one of three keys and either put a value
// never put before, with put, or read the key, with get. A put that returns
// an error may or may not have taken effect (it is recorded so), unless the
// error is ErrNoEffect; get returns "" for an absent key, and an error when
// it learnt nothing. put and get choose the node with rng.
func StartLinWorkload(seed uint64, clients int, put func(rng *rand.Rand, key, value string) error,
	get func(rng *rand.Rand, key string) (string, error)) *LinWorkload {
	w := &LinWorkload{stop: make(chan struct{}), t0: time.Now()}
	keys := []string{"a", "b", "c"}
	for cl := range clients {
		rng := rand.New(rand.NewPCG(seed+uint64(cl)+1, uint64(cl)))
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for {
				select {
				case <-w.stop:
					return
				default:
				}
				key := keys[rng.IntN(len(keys))]
				if rng.IntN(2) == 0 {
					w.put(cl, key, rng, put)
				} else {
					w.get(cl, key, rng, get)
				}
			}
		}()
	}
	return w
}

func (w *LinWorkload) now() int64 { return time.Since(w.t0).Nanoseconds() }

func (w *LinWorkload) put(cl int, key string, rng *rand.Rand, put func(*rand.Rand, string, string) error) {
	v := strconv.FormatInt(w.seq.Add(1), 10)
	call := w.now()
	err := put(rng, key, v)
	op := porcupine.Operation{ClientId: cl, Input: LinPut(key, v), Call: call, Output: LinOutput("", false), Return: w.now()}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.st.Puts++
	switch {
	case errors.Is(err, ErrNoEffect):
		w.st.PutsNoEffect++
		return
	case err != nil:
		// It may have been applied: it may take effect at any time after
		// its call.
		w.st.PutsUnknown++
		op.Output, op.Return = LinOutput("", true), 1<<62
	}
	w.ops = append(w.ops, op)
}

func (w *LinWorkload) get(cl int, key string, rng *rand.Rand, get func(*rand.Rand, string) (string, error)) {
	call := w.now()
	v, err := get(rng, key)
	ret := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.st.Gets++
	if err != nil {
		w.st.GetsFailed++ // a read that failed says nothing
		return
	}
	w.ops = append(w.ops, porcupine.Operation{ClientId: cl, Input: LinGet(key), Call: call, Output: LinOutput(v, false), Return: ret})
}

// Stop ends the clients, waiting for the operations in flight, and returns
// the history and the counts. It may be called more than once.
func (w *LinWorkload) Stop() ([]porcupine.Operation, LinStats) {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ops, w.st
}

// PlainLeafCheck and Rec are plainLeafCheck and rec for the external test
// package: its stores check leaves stored in the clear, and every change
// carries a record.
var (
	PlainLeafCheck = plainLeafCheck
	Rec            = rec
)
