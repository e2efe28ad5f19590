package runtime

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// checkpoint is the value of ckpt.<p>: the last stream sequence the
// partition applied and its correlation state as of then. The state is
// the Correlator's encoding, deflated; when that exceeds chunkSize it is
// stored in chunk keys (a NATS message, hence a KV value, is at most
// 1 MiB by default) and the checkpoint names them.
type checkpoint struct {
	V      int    `json:"v"`
	Seq    uint64 `json:"seq"`              // last stream sequence applied
	Rules  uint64 `json:"rules"`            // rule set version the state was made with
	State  []byte `json:"state,omitempty"`  // deflated state, when small
	Chunks int    `json:"chunks,omitempty"` // else: the number of chunk keys
	Slot   string `json:"slot,omitempty"`   // and their slot: "<run>.<0|1>"
	Sum    []byte `json:"sum,omitempty"`    // SHA-256 of the deflated state in chunks
	// By is the run (one life of one server) that wrote it: a server
	// taking the partition over rewrites it with its own, so a writer
	// whose compare-and-set fails can tell a write of its own whose
	// answer it lost from a takeover.
	By string `json:"by,omitempty"`
}

// chunkSize bounds a checkpoint's inline state and each chunk.
const chunkSize = 256 << 10

// chunkKey names chunk i of a partition's state in a slot. Slots belong to
// one life of one server (its run) and alternate, so the chunks the
// current checkpoint names are never overwritten, not even by a fenced
// server that has not noticed yet.
func chunkKey(p int, slot string, i int) string {
	return ckptDataPrefix + strconv.Itoa(p) + "." + slot + "." + strconv.Itoa(i)
}

const ckptDataPrefix = "ckptdata."

func deflate(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestSpeed)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func inflate(b []byte) ([]byte, error) {
	return io.ReadAll(flate.NewReader(bytes.NewReader(b)))
}

// encodeState stores state for a checkpoint of partition p: inline, or in
// chunks of the slot other than prev's. It returns the checkpoint to CAS.
func encodeState(ctx context.Context, kv jetstream.KeyValue, p int, run string, prevSlot string, state []byte) (checkpoint, error) {
	z := deflate(state)
	if len(z) <= chunkSize {
		return checkpoint{V: 1, State: z}, nil
	}
	slot := run + ".0"
	if prevSlot == slot {
		slot = run + ".1"
	}
	n := 0
	for off := 0; off < len(z); off += chunkSize {
		if _, err := kv.Put(ctx, chunkKey(p, slot, n), z[off:min(off+chunkSize, len(z))]); err != nil {
			return checkpoint{}, fmt.Errorf("state chunk %d: %w", n, err)
		}
		n++
	}
	sum := sha256.Sum256(z)
	return checkpoint{V: 1, Chunks: n, Slot: slot, Sum: sum[:]}, nil
}

var errBadChunks = errors.New("checkpoint state chunks do not match their checksum")

// decodeState returns a checkpoint's state.
func decodeState(ctx context.Context, kv jetstream.KeyValue, p int, ck checkpoint) ([]byte, error) {
	if ck.Chunks == 0 {
		if len(ck.State) == 0 {
			return nil, nil
		}
		return inflate(ck.State)
	}
	var z []byte
	for i := range ck.Chunks {
		e, err := kv.Get(ctx, chunkKey(p, ck.Slot, i))
		if err != nil {
			return nil, fmt.Errorf("state chunk %d: %w", i, err)
		}
		z = append(z, e.Value()...)
	}
	if sum := sha256.Sum256(z); !bytes.Equal(sum[:], ck.Sum) {
		return nil, errBadChunks
	}
	return inflate(z)
}

// purgeChunks removes partition p's chunk keys that keep (the slot of
// the current checkpoint) does not name: those of past lives and of the
// other slot. Best effort.
func purgeChunks(ctx context.Context, kv jetstream.KeyValue, p int, keep string) {
	prefix := ckptDataPrefix + strconv.Itoa(p) + "."
	lister, err := kv.ListKeysFiltered(ctx, prefix+">")
	if err != nil {
		return
	}
	var stale []string
	for k := range lister.Keys() {
		if keep == "" || !bytes.HasPrefix([]byte(k), []byte(prefix+keep+".")) {
			stale = append(stale, k)
		}
	}
	for _, k := range stale {
		_ = kv.Purge(ctx, k)
	}
}
