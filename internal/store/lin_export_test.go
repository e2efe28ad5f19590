package store

import (
	"os"
	"strconv"
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
