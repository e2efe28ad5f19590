package audit

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
)

// ErrNotVerified means the log does not match what was signed: a root over the
// entries, an inclusion proof or a consistency proof that does not verify,
// or checkpoints that contradict each other. It is evidence of tampering
// or of a fork, unlike an *ArgumentError, which is a caller's mistake.
var ErrNotVerified = errors.New("audit: log does not verify")

// RootOf computes the root hash of the tree over leaves (their bytes, not
// their hashes), independently of any stored node.
func RootOf(leaves [][]byte) []byte {
	r := ranges.NewEmptyRange(0)
	for _, l := range leaves {
		_ = r.Append(LeafHash(l), nil) // cannot fail: the hash is well formed
	}
	root, _ := rootOf(r.End(), r.Hashes()) // cannot fail: the range is well formed
	return root
}

// VerifyLog checks that leaves (the bytes of every entry, in order) are
// exactly the log cp signed: as many leaves as cp.Size, with cp.Root as
// their root. The error wraps ErrNotVerified; to name a tampered entry,
// see FindMismatch and Checkpoint.VerifyInclusion.
func VerifyLog(cp Checkpoint, leaves [][]byte) error {
	if uint64(len(leaves)) != cp.Size {
		return fmt.Errorf("%w: %d entries for a checkpoint of size %d", ErrNotVerified, len(leaves), cp.Size)
	}
	if !bytes.Equal(RootOf(leaves), cp.Root) {
		return fmt.Errorf("%w: the root over %d entries is not the checkpoint's", ErrNotVerified, len(leaves))
	}
	return nil
}

// VerifyInclusion checks an inclusion proof of leaf (its bytes) at index in
// the tree of the given size and root. A proof that does not verify wraps
// ErrNotVerified; index >= size is an *ArgumentError.
func VerifyInclusion(leaf []byte, index, size uint64, root []byte, p [][]byte) error {
	if index >= size {
		return &ArgumentError{Arg: "index", Value: index, Want: fmt.Sprintf("below size %d", size)}
	}
	return VerifyInclusionHash(LeafHash(leaf), index, size, root, p)
}

// VerifyInclusionHash is VerifyInclusion given the leaf's hash instead of
// its bytes.
func VerifyInclusionHash(leafHash []byte, index, size uint64, root []byte, p [][]byte) error {
	if index >= size {
		return &ArgumentError{Arg: "index", Value: index, Want: fmt.Sprintf("below size %d", size)}
	}
	if err := proof.VerifyInclusion(hasher, index, size, leafHash, p, root); err != nil {
		return fmt.Errorf("%w: inclusion of entry %d in the tree of size %d: %v", ErrNotVerified, index, size, err)
	}
	return nil
}

// EmptyRoot is the root hash of the empty tree: SHA-256 of nothing.
func EmptyRoot() []byte { return hasher.EmptyRoot() }

// VerifyConsistency checks a consistency proof that the tree (size1,
// root1) is a prefix of the tree (size2, root2). A proof that does not
// verify, or size1 > size2 (a log that shrank), wraps ErrNotVerified.
func VerifyConsistency(size1, size2 uint64, root1, root2 []byte, p [][]byte) error {
	if size1 > size2 {
		return fmt.Errorf("%w: the log shrank from size %d to %d", ErrNotVerified, size1, size2)
	}
	if err := proof.VerifyConsistency(hasher, size1, size2, p, root1, root2); err != nil {
		return fmt.Errorf("%w: consistency of size %d with size %d: %v", ErrNotVerified, size1, size2, err)
	}
	return nil
}

// VerifyInclusion checks that leaf (its bytes) is entry index of the log
// cp signed, with an inclusion proof for cp.Size. See the package-level
// VerifyInclusion for errors.
func (cp Checkpoint) VerifyInclusion(leaf []byte, index uint64, p [][]byte) error {
	return VerifyInclusion(leaf, index, cp.Size, cp.Root, p)
}

// VerifyConsistency checks that the log cp signed extends the log old
// signed: the same origin, and a consistency proof from old.Size to
// cp.Size. Every failure wraps ErrNotVerified.
func (cp Checkpoint) VerifyConsistency(old Checkpoint, p [][]byte) error {
	if old.Origin != cp.Origin {
		return fmt.Errorf("%w: checkpoints of different logs, %q and %q", ErrNotVerified, old.Origin, cp.Origin)
	}
	return VerifyConsistency(old.Size, cp.Size, old.Root, cp.Root, p)
}

// FindMismatch compares the hash of each leaf (the bytes of entries 0, 1,
// ...) with the stored level-0 node, and returns the index of the first
// one that differs, so a verifier can name a tampered entry. found is
// false when every leaf matches. An error is a node ns cannot serve.
//
// It checks leaves against stored nodes, not against a signature: someone
// who rewrote an entry and its stored leaf hash alike is caught by
// VerifyLog or an inclusion proof against a signed checkpoint, not here.
func FindMismatch(leaves [][]byte, ns NodeStore) (index uint64, found bool, err error) {
	for i, l := range leaves {
		h, err := ns.GetNode(0, uint64(i))
		if err != nil {
			return 0, false, fmt.Errorf("audit: leaf node %d: %w", i, err)
		}
		if !bytes.Equal(h, LeafHash(l)) {
			return uint64(i), true, nil
		}
	}
	return 0, false, nil
}
