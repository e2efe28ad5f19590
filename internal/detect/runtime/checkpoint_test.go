package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// TestStateChunks: a state too large for one KV value is stored in
// chunks, read back intact, and a chunk overwritten is detected.
func TestStateChunks(t *testing.T) {
	nodes := startNATS(t, 1)
	kv := openKV(t, openPlane(t, nodes[0], 1))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name   string
		size   int
		chunks bool
	}{{"empty", 0, false}, {"small", 1000, false}, {"large", 3 << 20, true}} {
		t.Run(tc.name, func(t *testing.T) {
			state := make([]byte, tc.size)
			for i := range state {
				state[i] = byte(rng.IntN(256)) // incompressible
			}
			ck, err := encodeState(ctx, kv, 1, "run1", "", state)
			if err != nil {
				t.Fatal(err)
			}
			if got := ck.Chunks > 0; got != tc.chunks {
				t.Fatalf("chunks %d, want chunked %v", ck.Chunks, tc.chunks)
			}
			got, err := decodeState(ctx, kv, 1, ck)
			if err != nil || !bytes.Equal(got, state) {
				t.Fatalf("decode: %d bytes, %v; want %d bytes", len(got), err, len(state))
			}
			if !tc.chunks {
				return
			}
			// The next checkpoint uses the other slot: the current one's
			// chunks stay readable.
			next, err := encodeState(ctx, kv, 1, "run1", ck.Slot, state[:chunkSize*2])
			if err != nil || next.Slot == ck.Slot {
				t.Fatalf("next slot %q (err %v), want other than %q", next.Slot, err, ck.Slot)
			}
			if got, err := decodeState(ctx, kv, 1, ck); err != nil || !bytes.Equal(got, state) {
				t.Fatalf("first checkpoint after the second: %v", err)
			}
			if _, err := kv.Put(ctx, chunkKey(1, ck.Slot, 0), []byte("garbage")); err != nil {
				t.Fatal(err)
			}
			if _, err := decodeState(ctx, kv, 1, ck); err != errBadChunks {
				t.Fatalf("overwritten chunk: err %v, want %v", err, errBadChunks)
			}
			purgeChunks(ctx, kv, 1, "run2")
			if _, err := decodeState(ctx, kv, 1, next); err == nil {
				t.Fatal("chunks of another life not purged")
			}
		})
	}
}

// FuzzCheckpoint: whatever the bucket holds under ckpt.<p>, reading it
// fails or gives a state, and never panics.
func FuzzCheckpoint(f *testing.F) {
	f.Add([]byte(`{"v":1,"seq":5,"rules":2,"state":"` + "80sBAA==" + `","by":"ab"}`))
	f.Add([]byte(`{"v":1,"seq":0}`))
	f.Add([]byte(`{"v":1,"state":"AAAA"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ck checkpoint
		if json.Unmarshal(data, &ck) != nil || ck.Chunks != 0 {
			return // chunks need a bucket: TestStateChunks
		}
		st, err := decodeState(context.Background(), nil, 0, ck)
		if err == nil && len(ck.State) == 0 && st != nil {
			t.Fatalf("state %q from no state", st)
		}
	})
}
