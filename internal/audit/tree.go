package audit

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

var rf = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// LeafHash is the RFC 6962 leaf hash: SHA-256(0x00 || leaf).
func LeafHash(leaf []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(leaf) }

// NodeStore serves stored tree nodes. GetNode returns the hash of the
// perfect subtree at (level, index), or an error if it is not stored.
type NodeStore interface {
	GetNode(level uint, index uint64) ([]byte, error)
}

// Node is a perfect-subtree hash that Append completed and that must be
// stored to serve proofs: level 0 nodes are leaf hashes.
type Node struct {
	Level uint
	Index uint64
	Hash  []byte
}

// TreeState is the tree's size and compact range: all a writer needs to
// append and to compute the root.
type TreeState struct {
	Size  uint64
	Range [][]byte
}

// ErrArgument: a size or index out of range for a proof.
var ErrArgument = errors.New("audit: bad proof argument")

// Append adds leaf hashes and returns the new state and every node the
// append completed. It is pure and deterministic.
func Append(st TreeState, leafHashes [][]byte) (TreeState, []Node, error) {
	r, err := rf.NewRange(0, st.Size, st.Range)
	if err != nil {
		return TreeState{}, nil, fmt.Errorf("audit: tree state: %w", err)
	}
	var nodes []Node
	visit := func(id compact.NodeID, hash []byte) {
		nodes = append(nodes, Node{Level: id.Level, Index: id.Index, Hash: hash})
	}
	for _, h := range leafHashes {
		if len(h) != 32 {
			return TreeState{}, nil, fmt.Errorf("audit: leaf hash of %d bytes", len(h))
		}
		if err := r.Append(h, visit); err != nil { // visits the leaf itself too
			return TreeState{}, nil, err
		}
	}
	return TreeState{Size: r.End(), Range: r.Hashes()}, nodes, nil
}

// Root is the tree's root hash (the hash of the empty string for size 0).
func (st TreeState) Root() ([]byte, error) {
	if st.Size == 0 {
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	r, err := rf.NewRange(0, st.Size, st.Range)
	if err != nil {
		return nil, err
	}
	return r.GetRootHash(nil)
}

// MarshalBinary encodes the state: size, count, then 32-byte hashes.
func (st TreeState) MarshalBinary() ([]byte, error) {
	b := binary.BigEndian.AppendUint64(nil, st.Size)
	b = binary.BigEndian.AppendUint32(b, uint32(len(st.Range)))
	for _, h := range st.Range {
		b = append(b, h...)
	}
	return b, nil
}

// UnmarshalBinary strictly decodes a state written by MarshalBinary.
func (st *TreeState) UnmarshalBinary(b []byte) error {
	if len(b) < 12 {
		return errors.New("audit: tree state too short")
	}
	size, n := binary.BigEndian.Uint64(b), binary.BigEndian.Uint32(b[8:])
	if uint64(len(b)-12) != uint64(n)*32 || int(n) != compact.RangeSize(0, size) {
		return errors.New("audit: tree state malformed")
	}
	st.Size, st.Range = size, nil
	for i := uint32(0); i < n; i++ {
		st.Range = append(st.Range, append([]byte(nil), b[12+32*i:12+32*(i+1)]...))
	}
	return nil
}

func fetch(ns NodeStore, nodes proof.Nodes) ([][]byte, error) {
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, err := ns.GetNode(id.Level, id.Index)
		if err != nil {
			return nil, fmt.Errorf("audit: node (%d, %d): %w", id.Level, id.Index, err)
		}
		hashes[i] = h
	}
	return nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
}

// InclusionProof proves that leaf index is in the tree of size size.
func InclusionProof(ns NodeStore, index, size uint64) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("%w: index %d is not below tree_size %d", ErrArgument, index, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrArgument, err)
	}
	return fetch(ns, nodes)
}

// ConsistencyProof proves that the tree of size old is a prefix of the tree
// of size new.
func ConsistencyProof(ns NodeStore, old, new uint64) ([][]byte, error) {
	if old > new {
		return nil, fmt.Errorf("%w: old %d is larger than new %d", ErrArgument, old, new)
	}
	nodes, err := proof.Consistency(old, new)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrArgument, err)
	}
	return fetch(ns, nodes)
}

// RootAt computes the root of the tree's first size leaves from stored
// nodes (the perfect subtrees that decompose [0, size)).
func RootAt(ns NodeStore, size uint64) ([]byte, error) {
	if size == 0 {
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	ids := compact.RangeNodes(0, size, nil)
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := ns.GetNode(id.Level, id.Index)
		if err != nil {
			return nil, fmt.Errorf("audit: node (%d, %d): %w", id.Level, id.Index, err)
		}
		hashes[i] = h
	}
	r, err := rf.NewRange(0, size, hashes)
	if err != nil {
		return nil, err
	}
	return r.GetRootHash(nil)
}

// VerifyInclusion checks an inclusion proof of leaf (its bytes) at index
// against a root of a tree of size size.
func VerifyInclusion(leaf []byte, index, size uint64, root []byte, p [][]byte) error {
	return proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, LeafHash(leaf), p, root)
}

// VerifyConsistency checks that root1 (size1) is a prefix of root2 (size2).
func VerifyConsistency(size1, size2 uint64, root1, root2 []byte, p [][]byte) error {
	return proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, p, root1, root2)
}

// RootOf recomputes the root over all leaves (their bytes).
func RootOf(leaves [][]byte) []byte {
	r := rf.NewEmptyRange(0)
	for _, l := range leaves {
		_ = r.Append(LeafHash(l), nil) // cannot fail: hashes are well formed
	}
	if r.End() == 0 {
		return rfc6962.DefaultHasher.EmptyRoot()
	}
	root, _ := r.GetRootHash(nil)
	return root
}

// FirstMismatch returns the index of the first leaf whose hash differs from
// the stored level-0 node, so a verifier can name a tampered entry.
func FirstMismatch(leaves [][]byte, ns NodeStore) (uint64, bool, error) {
	for i, l := range leaves {
		h, err := ns.GetNode(0, uint64(i))
		if err != nil {
			return 0, false, err
		}
		if string(h) != string(LeafHash(l)) {
			return uint64(i), true, nil
		}
	}
	return 0, false, nil
}
