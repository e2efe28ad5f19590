package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

// mapStore is a NodeStore in memory: what the state machine's database
// does, without the database.
type mapStore map[nodeID][]byte

type nodeID struct {
	level uint
	index uint64
}

var errNoNode = errors.New("no such node")

func (m mapStore) GetNode(level uint, index uint64) ([]byte, error) {
	h, ok := m[nodeID{level, index}]
	if !ok {
		return nil, errNoNode
	}
	return h, nil
}

var _ NodeStore = mapStore(nil)

// put stores nodes, failing if one was already stored: no node is
// returned by two appends.
func (m mapStore) put(t testing.TB, nodes []Node) {
	for _, n := range nodes {
		id := nodeID{n.Level, n.Index}
		if _, dup := m[id]; dup {
			t.Fatalf("node (%d, %d) returned twice", n.Level, n.Index)
		}
		m[id] = n.Hash
	}
}

func testLeaf(i int) []byte { return fmt.Appendf(nil, `{"i":%d}`, i) }

func leafHashes(leaves [][]byte) [][]byte {
	hs := make([][]byte, len(leaves))
	for i, l := range leaves {
		hs[i] = LeafHash(l)
	}
	return hs
}

// build appends hashes to an empty tree in random batches of 1 to
// maxBatch leaves, storing the nodes, and checks the state after each.
func build(t testing.TB, r *mrand.Rand, hashes [][]byte, maxBatch int) (TreeState, mapStore) {
	ns := mapStore{}
	var st TreeState
	for done := 0; done < len(hashes); {
		k := min(1+r.IntN(maxBatch), len(hashes)-done)
		next, nodes, err := Append(st, hashes[done:done+k])
		if err != nil {
			t.Fatal(err)
		}
		ns.put(t, nodes)
		done += k
		if next.Size != uint64(done) {
			t.Fatalf("size %d after %d leaves", next.Size, done)
		}
		st = next
	}
	return st, ns
}

// mth is the Merkle tree hash of RFC 6962 section 2.1, written from its
// recursive definition over leaf hashes, as a reference independent of
// compact ranges.
func mth(hs [][]byte) []byte {
	switch len(hs) {
	case 0:
		s := sha256.Sum256(nil)
		return s[:]
	case 1:
		return hs[0]
	}
	k := 1
	for k*2 < len(hs) {
		k *= 2
	}
	s := sha256.Sum256(append(append([]byte{1}, mth(hs[:k])...), mth(hs[k:])...))
	return s[:]
}

// TestRFC6962Vectors checks roots and every stored node against the test
// vectors of transparency-dev/merkle (RFC 6962 leaf inputs, node and root
// hashes), appending one leaf at a time and all at once.
func TestRFC6962Vectors(t *testing.T) {
	leaves := testonly.LeafInputs()
	roots := testonly.RootHashes()
	want := map[nodeID][]byte{}
	for level, row := range testonly.NodeHashes() {
		for index, h := range row {
			want[nodeID{uint(level), uint64(index)}] = h
		}
	}
	for _, batch := range []int{1, 3, len(leaves)} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			ns := mapStore{}
			var st TreeState
			if root, _ := st.Root(); !bytes.Equal(root, roots[0]) {
				t.Fatalf("empty root %x", root)
			}
			for done := 0; done < len(leaves); {
				k := min(batch, len(leaves)-done)
				next, nodes, err := Append(st, leafHashes(leaves[done:done+k]))
				if err != nil {
					t.Fatal(err)
				}
				ns.put(t, nodes)
				st, done = next, done+k
				root, err := st.Root()
				if err != nil || !bytes.Equal(root, roots[done]) {
					t.Fatalf("size %d: root %x, %v; want %x", done, root, err, roots[done])
				}
			}
			if !reflect.DeepEqual(map[nodeID][]byte(ns), want) {
				t.Fatalf("stored nodes differ from the vectors:\n got %x\nwant %x", ns, want)
			}
		})
	}
	for size := range roots {
		if got := mth(leafHashes(leaves[:size])); !bytes.Equal(got, roots[size]) {
			t.Fatalf("reference mth(%d) = %x, want %x", size, got, roots[size])
		}
	}
}

// TestTreeProperties checks every tree size from 1 to 1000. For each size
// a tree is grown from empty by Append in random batches (fixed seed), so
// its store holds only what appends up to that size returned. Then:
//   - the state's root and RootAt equal the root of the library's
//     in-memory reference tree (testonly.Tree);
//   - the stored nodes are exactly the perfect subtrees of the tree;
//   - inclusion proofs, for every index up to size 128 and a random sample
//     of indices above, equal the reference tree's and verify with
//     proof.VerifyInclusion, and fail for another leaf;
//   - consistency proofs from every older size up to size 64 and a random
//     sample above equal the reference tree's and verify with
//     proof.VerifyConsistency.
//
// Finally the nodes of the tree of 1000 leaves serve roots and proofs for
// every earlier size, as the log serves old checkpoints.
func TestTreeProperties(t *testing.T) {
	const maxSize = 1000
	var leaves [][]byte
	for i := range maxSize {
		leaves = append(leaves, testLeaf(i))
	}
	hashes := leafHashes(leaves)
	ref := testonly.New(rfc6962.DefaultHasher)
	ref.AppendData(leaves...)
	h := rfc6962.DefaultHasher
	r := mrand.New(mrand.NewPCG(1, 2))

	checkInclusion := func(t *testing.T, ns NodeStore, i, size uint64) {
		t.Helper()
		p, err := InclusionProof(ns, i, size)
		if err != nil {
			t.Fatalf("InclusionProof(%d, %d): %v", i, size, err)
		}
		if want, _ := ref.InclusionProof(i, size); !reflect.DeepEqual(p, want) && !(len(p) == 0 && len(want) == 0) {
			t.Fatalf("InclusionProof(%d, %d) differs from the reference", i, size)
		}
		root := ref.HashAt(size)
		if err := proof.VerifyInclusion(h, i, size, hashes[i], p, root); err != nil {
			t.Fatalf("InclusionProof(%d, %d) does not verify: %v", i, size, err)
		}
		if proof.VerifyInclusion(h, i, size, LeafHash([]byte("forged")), p, root) == nil {
			t.Fatalf("InclusionProof(%d, %d) verifies a forged leaf", i, size)
		}
	}
	checkConsistency := func(t *testing.T, ns NodeStore, old, size uint64) {
		t.Helper()
		p, err := ConsistencyProof(ns, old, size)
		if err != nil {
			t.Fatalf("ConsistencyProof(%d, %d): %v", old, size, err)
		}
		if want, _ := ref.ConsistencyProof(old, size); !reflect.DeepEqual(p, want) && !(len(p) == 0 && len(want) == 0) {
			t.Fatalf("ConsistencyProof(%d, %d) differs from the reference", old, size)
		}
		if err := proof.VerifyConsistency(h, old, size, p, ref.HashAt(old), ref.HashAt(size)); err != nil {
			t.Fatalf("ConsistencyProof(%d, %d) does not verify: %v", old, size, err)
		}
	}

	t.Run("every size", func(t *testing.T) {
		for size := uint64(1); size <= maxSize; size++ {
			st, ns := build(t, r, hashes[:size], 40)
			want := ref.HashAt(size)
			if root, err := st.Root(); err != nil || !bytes.Equal(root, want) {
				t.Fatalf("size %d: Root %x, %v; want %x", size, root, err, want)
			}
			if root, err := RootAt(ns, size); err != nil || !bytes.Equal(root, want) {
				t.Fatalf("size %d: RootAt %x, %v; want %x", size, root, err, want)
			}
			if size%97 == 0 {
				if got := mth(hashes[:size]); !bytes.Equal(got, want) {
					t.Fatalf("size %d: the RFC 6962 reference disagrees", size)
				}
			}
			var perfect int
			for level := uint(0); size>>level > 0; level++ {
				perfect += int(size >> level)
			}
			if len(ns) != perfect {
				t.Fatalf("size %d: %d nodes stored, want the %d perfect subtrees", size, len(ns), perfect)
			}
			if size <= 128 {
				for i := range size {
					checkInclusion(t, ns, i, size)
				}
			} else {
				checkInclusion(t, ns, 0, size)
				checkInclusion(t, ns, size-1, size)
				for range 8 {
					checkInclusion(t, ns, r.Uint64N(size), size)
				}
			}
			if size <= 64 {
				for old := range size + 1 {
					checkConsistency(t, ns, old, size)
				}
			} else {
				for _, old := range []uint64{0, 1, size - 1, size, 1 + r.Uint64N(size), 1 + r.Uint64N(size)} {
					checkConsistency(t, ns, old, size)
				}
			}
		}
	})

	t.Run("earlier sizes from the full tree", func(t *testing.T) {
		_, ns := build(t, r, hashes, 300)
		for size := uint64(0); size <= maxSize; size++ {
			if root, err := RootAt(ns, size); err != nil || !bytes.Equal(root, ref.HashAt(size)) {
				t.Fatalf("RootAt(%d): %x, %v", size, root, err)
			}
		}
		for range 2000 {
			a, b := r.Uint64N(maxSize+1), r.Uint64N(maxSize+1)
			if a > b {
				a, b = b, a
			}
			checkConsistency(t, ns, a, b)
			if b > 0 {
				checkInclusion(t, ns, r.Uint64N(b), b)
			}
		}
	})
}

// TestAppendIsPure: Append leaves its arguments alone, shares no memory
// with them, and gives the same answer twice.
func TestAppendIsPure(t *testing.T) {
	hs := leafHashes([][]byte{testLeaf(0), testLeaf(1), testLeaf(2)})
	st, _, err := Append(TreeState{}, hs) // size 3: range of two hashes
	if err != nil {
		t.Fatal(err)
	}
	before, _ := st.MarshalBinary()
	more := leafHashes([][]byte{testLeaf(3), testLeaf(4)})
	a, aNodes, err := Append(st, more)
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := st.MarshalBinary(); !bytes.Equal(before, after) {
		t.Fatal("Append modified its state argument")
	}
	b, bNodes, _ := Append(st, more)
	if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(aNodes, bNodes) {
		t.Fatal("two appends of the same leaves to the same state differ")
	}
	wantRoot, _ := a.Root()
	for _, x := range append(more, st.Range...) {
		clear(x) // the caller reuses its buffers
	}
	if root, _ := a.Root(); !bytes.Equal(root, wantRoot) {
		t.Fatal("the new state shares memory with the arguments")
	}
	for _, n := range aNodes {
		if bytes.Equal(n.Hash, make([]byte, HashSize)) {
			t.Fatalf("node (%d, %d) shares memory with the arguments", n.Level, n.Index)
		}
	}
	if _, nodes, err := Append(a, nil); err != nil || len(nodes) != 0 {
		t.Fatalf("empty append: %v, %d nodes", err, len(nodes))
	}
}

func TestAppendErrors(t *testing.T) {
	good := leafHashes([][]byte{testLeaf(0)})
	three, _, _ := Append(TreeState{}, leafHashes([][]byte{testLeaf(0), testLeaf(1), testLeaf(2)}))
	tests := []struct {
		name   string
		st     TreeState
		hashes [][]byte
		want   error // nil: any error
	}{
		{"short leaf hash", TreeState{}, [][]byte{make([]byte, 31)}, nil},
		{"long leaf hash", TreeState{}, [][]byte{good[0], make([]byte, 33)}, nil},
		{"nil leaf hash", TreeState{}, [][]byte{nil}, nil},
		{"range too short", TreeState{Size: 3, Range: three.Range[:1]}, good, ErrCorrupt},
		{"range too long", TreeState{Size: 2, Range: three.Range}, good, ErrCorrupt},
		{"range hash short", TreeState{Size: 1, Range: [][]byte{make([]byte, 8)}}, good, ErrCorrupt},
		{"size overflows", TreeState{Size: 1<<64 - 1, Range: make([][]byte, 64)}, good, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Append(tt.st, tt.hashes)
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Append = %v, want %v", err, tt.want)
			}
		})
	}
	// A full-size state is well formed, and appending to it overflows.
	full := TreeState{Size: 1<<64 - 1, Range: make([][]byte, 64)}
	for i := range full.Range {
		full.Range[i] = make([]byte, HashSize)
	}
	if _, _, err := Append(full, good); err == nil {
		t.Fatal("appending past 2^64-1 leaves succeeded")
	}
}

func TestTreeStateBinary(t *testing.T) {
	r := mrand.New(mrand.NewPCG(3, 3))
	var hashes [][]byte
	for i := range 70 {
		hashes = append(hashes, LeafHash(testLeaf(i)))
	}
	for _, size := range []int{0, 1, 2, 3, 7, 8, 63, 64, 70} {
		st, _ := build(t, r, hashes[:size], 5)
		b, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back TreeState
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !reflect.DeepEqual(back, st) {
			t.Fatalf("size %d: round trip %#v, want %#v", size, back, st)
		}
	}
	// The encoding is frozen: the store persists it.
	st3, _ := build(t, r, hashes[:3], 1)
	b, _ := st3.MarshalBinary()
	want := "0000000000000003" + "00000002" + hex.EncodeToString(st3.Range[0]) + hex.EncodeToString(st3.Range[1])
	if hex.EncodeToString(b) != want {
		t.Fatalf("encoding %x, want %s", b, want)
	}
	if b, _ := (TreeState{}).MarshalBinary(); hex.EncodeToString(b) != "000000000000000000000000" {
		t.Fatalf("empty state encodes as %x", b)
	}
	bad := map[string][]byte{
		"empty":                  {},
		"truncated":              b[:len(b)-1],
		"trailing byte":          append(bytes.Clone(b), 0),
		"count too small":        append(append(bytes.Clone(b[:8]), 0, 0, 0, 1), b[12:44]...),
		"count too large":        append(append(bytes.Clone(b[:8]), 0, 0, 0, 3), b[12:]...),
		"size 2^64-1, no hashes": {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0},
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			back := st3
			if err := back.UnmarshalBinary(in); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("UnmarshalBinary = %v, want ErrCorrupt", err)
			}
			if !reflect.DeepEqual(back, st3) {
				t.Fatal("a failed UnmarshalBinary changed the state")
			}
		})
	}
	if _, err := (TreeState{Size: 3, Range: st3.Range[:1]}).MarshalBinary(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("MarshalBinary of a malformed state: %v", err)
	}
}

func TestProofErrors(t *testing.T) {
	r := mrand.New(mrand.NewPCG(5, 5))
	var hashes [][]byte
	for i := range 10 {
		hashes = append(hashes, LeafHash(testLeaf(i)))
	}
	_, ns := build(t, r, hashes, 4)
	var argErr *ArgumentError
	for _, tt := range []struct {
		name    string
		call    func() error
		wantArg string
	}{
		{"index at size", func() error { _, err := InclusionProof(ns, 10, 10); return err }, "index"},
		{"index beyond size", func() error { _, err := InclusionProof(ns, 11, 10); return err }, "index"},
		{"empty tree", func() error { _, err := InclusionProof(ns, 0, 0); return err }, "index"},
		{"old beyond new", func() error { _, err := ConsistencyProof(ns, 6, 5); return err }, "old"},
		{"verify index at size", func() error { return VerifyInclusion(nil, 3, 3, nil, nil) }, "index"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, ErrArgument) || !errors.As(err, &argErr) || argErr.Arg != tt.wantArg {
				t.Fatalf("error %v, want an *ArgumentError naming %s", err, tt.wantArg)
			}
		})
	}
	// Sizes beyond the stored tree: the store's error shows through.
	if _, err := InclusionProof(ns, 0, 11); !errors.Is(err, errNoNode) {
		t.Fatalf("inclusion beyond the tree: %v", err)
	}
	if _, err := ConsistencyProof(ns, 3, 12); !errors.Is(err, errNoNode) {
		t.Fatalf("consistency beyond the tree: %v", err)
	}
	if _, err := RootAt(ns, 11); !errors.Is(err, errNoNode) {
		t.Fatalf("RootAt beyond the tree: %v", err)
	}
	// A damaged node is refused, not hashed.
	ns[nodeID{3, 0}] = ns[nodeID{3, 0}][:31]
	if _, err := RootAt(ns, 10); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("RootAt over a damaged node: %v", err)
	}
	if _, err := InclusionProof(ns, 9, 10); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("InclusionProof over a damaged node: %v", err)
	}
}

// BenchmarkAppend appends batches to a growing tree, as the state machine
// does for each Raft command.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			hs := make([][]byte, batch)
			for i := range hs {
				hs[i] = LeafHash(testLeaf(i))
			}
			var st TreeState
			b.ReportAllocs()
			for b.Loop() {
				next, _, err := Append(st, hs)
				if err != nil {
					b.Fatal(err)
				}
				st = next
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(st.Size), "ns/leaf")
		})
	}
}

const benchSize = 100_000

func benchStore(b *testing.B) mapStore {
	hs := make([][]byte, benchSize)
	for i := range hs {
		hs[i] = LeafHash(testLeaf(i))
	}
	_, ns := build(b, mrand.New(mrand.NewPCG(6, 6)), hs, 64)
	return ns
}

func BenchmarkInclusionProof(b *testing.B) {
	ns := benchStore(b)
	r := mrand.New(mrand.NewPCG(7, 7))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := InclusionProof(ns, r.Uint64N(benchSize), benchSize); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConsistencyProof(b *testing.B) {
	ns := benchStore(b)
	r := mrand.New(mrand.NewPCG(8, 8))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ConsistencyProof(ns, 1+r.Uint64N(benchSize-1), benchSize); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRootAt(b *testing.B) {
	ns := benchStore(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RootAt(ns, benchSize-1); err != nil {
			b.Fatal(err)
		}
	}
}
