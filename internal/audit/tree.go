package audit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// HashSize is the size of every hash in the tree (SHA-256), in bytes.
const HashSize = 32

var (
	hasher = rfc6962.DefaultHasher
	ranges = &compact.RangeFactory{Hash: hasher.HashChildren}
)

// LeafHash is the RFC 6962 leaf hash of leaf bytes: SHA-256(0x00 || leaf).
func LeafHash(leaf []byte) []byte { return hasher.HashLeaf(leaf) }

// NodeStore serves stored tree nodes: the hashes of the perfect subtrees
// that [Append] returned.
//
// GetNode returns the hash of the node at (level, index), level 0 being
// the leaves, or an error if it is not stored; proofs wrap that error, so
// a store's not-found sentinel stays visible to errors.Is. The caller may
// keep the returned slice but does not modify it: an implementation over
// memory it does not own (a database page) returns a copy. GetNode may be
// called concurrently when the proof functions are.
type NodeStore interface {
	GetNode(level uint, index uint64) ([]byte, error)
}

// Node is the hash of a perfect subtree that an append completed and that
// must be stored to serve proofs. Level 0 nodes are leaf hashes (Index is
// the leaf index); the node at (Level, Index) covers leaves
// [Index<<Level, (Index+1)<<Level).
type Node struct {
	Level uint
	Index uint64
	Hash  []byte
}

// TreeState is all a writer needs to append and to compute the root: the
// number of leaves and the hashes of the tree's compact range (the roots of
// its maximal perfect subtrees, left to right: one per bit set in Size).
// The zero TreeState is the empty tree. A TreeState is a value: Append
// neither modifies its argument nor shares memory with it.
type TreeState struct {
	Size  uint64
	Range [][]byte
}

var (
	// ErrArgument: a leaf index or tree size out of range for a proof.
	// Such errors are *ArgumentError values naming the argument.
	ErrArgument = errors.New("audit: argument out of range")
	// ErrCorrupt: a tree state or a stored node is malformed (wrong hash
	// size, wrong number of range hashes, truncated encoding).
	ErrCorrupt = errors.New("audit: corrupt tree data")
)

// ArgumentError reports a leaf index or tree size that is out of range for
// a proof. errors.Is(err, ErrArgument) holds for it.
type ArgumentError struct {
	Arg   string // the argument's name: "index", "size", "old" or "new"
	Value uint64 // its value
	Want  string // what it must be, for example "below size 7"
}

// Error names the argument, its value and its range.
func (e *ArgumentError) Error() string {
	return fmt.Sprintf("audit: %s %d out of range: must be %s", e.Arg, e.Value, e.Want)
}

// Is makes errors.Is(err, ErrArgument) hold.
func (e *ArgumentError) Is(target error) bool { return target == ErrArgument }

// check reports whether st is well formed.
func (st TreeState) check() error {
	if got, want := len(st.Range), compact.RangeSize(0, st.Size); got != want {
		return fmt.Errorf("%w: tree of size %d has %d range hashes, want %d", ErrCorrupt, st.Size, got, want)
	}
	for i, h := range st.Range {
		if len(h) != HashSize {
			return fmt.Errorf("%w: range hash %d has %d bytes", ErrCorrupt, i, len(h))
		}
	}
	return nil
}

// Append adds leaf hashes (each HashSize bytes) to the tree and returns the
// next state and every node the append completed, in the order they were
// completed: for each leaf, the leaf itself (level 0) and then the nodes
// it completes, lowest level first. Storing every returned node under
// (Level, Index) is what lets InclusionProof, ConsistencyProof and RootAt
// serve this and every earlier tree size; a node is returned by exactly
// one append, and never changes.
//
// Append is pure and deterministic. Neither the result nor the nodes share
// memory with st or leafHashes. On error, nothing is appended.
func Append(st TreeState, leafHashes [][]byte) (TreeState, []Node, error) {
	if err := st.check(); err != nil {
		return TreeState{}, nil, err
	}
	if uint64(len(leafHashes)) > math.MaxUint64-st.Size {
		return TreeState{}, nil, fmt.Errorf("audit: appending %d leaves to a tree of size %d overflows", len(leafHashes), st.Size)
	}
	leaves := make([]byte, 0, HashSize*len(leafHashes))
	for i, h := range leafHashes {
		if len(h) != HashSize {
			return TreeState{}, nil, fmt.Errorf("audit: leaf hash %d has %d bytes, want %d", i, len(h), HashSize)
		}
		leaves = append(leaves, h...)
	}
	// The range's hash list is rewritten in place as it grows: give it a
	// copy so that st is left as it was.
	r, err := ranges.NewRange(0, st.Size, slices.Clone(st.Range))
	if err != nil {
		return TreeState{}, nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	nodes := make([]Node, 0, 2*len(leafHashes))
	visit := func(id compact.NodeID, hash []byte) {
		nodes = append(nodes, Node{Level: id.Level, Index: id.Index, Hash: hash})
	}
	for i := range leafHashes {
		if err := r.Append(leaves[i*HashSize:(i+1)*HashSize:(i+1)*HashSize], visit); err != nil {
			return TreeState{}, nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
	}
	return TreeState{Size: r.End(), Range: cloneHashes(r.Hashes())}, nodes, nil
}

// cloneHashes copies hashes of HashSize bytes into fresh memory.
func cloneHashes(hs [][]byte) [][]byte {
	if len(hs) == 0 {
		return nil
	}
	buf := make([]byte, 0, HashSize*len(hs))
	out := make([][]byte, len(hs))
	for i, h := range hs {
		buf = append(buf, h...)
		out[i] = buf[i*HashSize : (i+1)*HashSize : (i+1)*HashSize]
	}
	return out
}

// Root returns the root hash of the tree: for size 0 the RFC 6962 empty
// root, SHA-256 of nothing. It fails only for a malformed state
// (ErrCorrupt).
func (st TreeState) Root() ([]byte, error) {
	if err := st.check(); err != nil {
		return nil, err
	}
	return rootOf(st.Size, st.Range)
}

// rootOf folds the compact range of [0, size) into the root hash.
func rootOf(size uint64, hashes [][]byte) ([]byte, error) {
	if size == 0 {
		return hasher.EmptyRoot(), nil
	}
	r, err := ranges.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return r.GetRootHash(nil)
}

// MarshalBinary encodes the state: the size as 8 bytes big-endian, the
// number of range hashes as 4 bytes big-endian, then the hashes. It fails
// for a malformed state (ErrCorrupt).
func (st TreeState) MarshalBinary() ([]byte, error) {
	if err := st.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 12+HashSize*len(st.Range))
	b = binary.BigEndian.AppendUint64(b, st.Size)
	b = binary.BigEndian.AppendUint32(b, uint32(len(st.Range)))
	for _, h := range st.Range {
		b = append(b, h...)
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote, strictly: the count
// must match the size and the length must be exact (ErrCorrupt). The hashes
// are copied. On error st is left unchanged.
func (st *TreeState) UnmarshalBinary(b []byte) error {
	if len(b) < 12 {
		return fmt.Errorf("%w: tree state of %d bytes", ErrCorrupt, len(b))
	}
	size, n := binary.BigEndian.Uint64(b), binary.BigEndian.Uint32(b[8:])
	if want := compact.RangeSize(0, size); uint64(n) != uint64(want) {
		return fmt.Errorf("%w: tree state of size %d has %d range hashes, want %d", ErrCorrupt, size, n, want)
	}
	if uint64(len(b)-12) != uint64(n)*HashSize {
		return fmt.Errorf("%w: tree state of %d bytes, want %d", ErrCorrupt, len(b), 12+uint64(n)*HashSize)
	}
	rest := bytes.Clone(b[12:])
	hs := make([][]byte, n)
	for i := range hs {
		hs[i] = rest[i*HashSize : (i+1)*HashSize : (i+1)*HashSize]
	}
	if n == 0 {
		hs = nil
	}
	st.Size, st.Range = size, hs
	return nil
}

// getNodes reads the nodes ids from ns into fresh memory, checking sizes.
func getNodes(ns NodeStore, ids []compact.NodeID) ([][]byte, error) {
	buf := make([]byte, 0, HashSize*len(ids))
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := ns.GetNode(id.Level, id.Index)
		if err != nil {
			return nil, fmt.Errorf("audit: node (%d, %d): %w", id.Level, id.Index, err)
		}
		if len(h) != HashSize {
			return nil, fmt.Errorf("%w: node (%d, %d) has %d bytes", ErrCorrupt, id.Level, id.Index, len(h))
		}
		buf = append(buf, h...)
		out[i] = buf[i*HashSize : (i+1)*HashSize : (i+1)*HashSize]
	}
	return out, nil
}

// proofFrom reads the nodes a proof needs and rehashes its ephemeral node.
func proofFrom(ns NodeStore, nodes proof.Nodes) ([][]byte, error) {
	hs, err := getNodes(ns, nodes.IDs)
	if err != nil {
		return nil, err
	}
	return nodes.Rehash(hs, hasher.HashChildren)
}

// InclusionProof returns the RFC 6962 inclusion proof (audit path) of leaf
// index in the tree of the given size, from stored nodes. It fails with an
// *ArgumentError unless index < size; size must not exceed the size of the
// tree whose nodes ns holds, or the missing node's error is returned. The
// result shares no memory with ns.
func InclusionProof(ns NodeStore, index, size uint64) ([][]byte, error) {
	if index >= size {
		return nil, &ArgumentError{Arg: "index", Value: index, Want: fmt.Sprintf("below size %d", size)}
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, &ArgumentError{Arg: "index", Value: index, Want: err.Error()}
	}
	return proofFrom(ns, nodes)
}

// ConsistencyProof returns the RFC 6962 consistency proof that the tree of
// size old is a prefix of the tree of size new, from stored nodes. The
// proof is empty when old is 0 or old == new. It fails with an
// *ArgumentError naming old when old > new; new must not exceed the size
// of the tree whose nodes ns holds, or the missing node's error is
// returned. The result shares no memory with ns.
func ConsistencyProof(ns NodeStore, old, new uint64) ([][]byte, error) {
	if old > new {
		return nil, &ArgumentError{Arg: "old", Value: old, Want: fmt.Sprintf("at most new %d", new)}
	}
	nodes, err := proof.Consistency(old, new)
	if err != nil {
		return nil, &ArgumentError{Arg: "old", Value: old, Want: err.Error()}
	}
	return proofFrom(ns, nodes)
}

// RootAt returns the root hash of the tree's first size leaves, from the
// stored nodes of its compact range (the empty root for size 0). size must
// not exceed the size of the tree whose nodes ns holds, or the missing
// node's error is returned.
func RootAt(ns NodeStore, size uint64) ([]byte, error) {
	hs, err := getNodes(ns, compact.RangeNodes(0, size, nil))
	if err != nil {
		return nil, err
	}
	return rootOf(size, hs)
}

// LeafAAD is the additional authenticated data under which a leaf's bytes
// are stored encrypted: the leaf's own hash, so a stored ciphertext opens
// only at the position whose tree hash names it (moving or swapping stored
// leaves makes them fail to decrypt instead of reading as another entry).
func LeafAAD(leafHash []byte) string {
	const prefix = "audit/leaf/"
	const hexdigits = "0123456789abcdef"
	b := make([]byte, len(prefix)+2*len(leafHash))
	copy(b, prefix)
	for i, c := range leafHash {
		b[len(prefix)+2*i] = hexdigits[c>>4]
		b[len(prefix)+2*i+1] = hexdigits[c&0xf]
	}
	return string(b)
}

// RangeAt returns the compact range of the tree's first size leaves (the
// roots of its maximal perfect subtrees, left to right; none for size 0),
// from stored nodes. size must not exceed the size of the tree whose nodes
// ns holds, or the missing node's error is returned.
func RangeAt(ns NodeStore, size uint64) ([][]byte, error) {
	return getNodes(ns, compact.RangeNodes(0, size, nil))
}
