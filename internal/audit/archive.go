package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
)

// ArchiveFormat is the format name every archive carries, so a file is
// self-describing and a later format is refused rather than misread.
const ArchiveFormat = "warden-audit-archive/1"

// Limits on one archive. An archive covers a range of the log small
// enough to build, send and check in memory; a longer history is several
// archives that chain (see VerifyChain).
const (
	MaxArchiveEntries = 50_000
	MaxArchiveBytes   = 256 << 20
)

// Archive is a sealed, verifiable range [Start, End) of the log: the exact
// leaf bytes of every entry in it, the checkpoint signed for tree size End
// with the key that verifies it, and the compact range (the roots of the
// maximal perfect subtrees, the left frontier) of the tree of size Start.
// The frontier and the entries are all that is needed to recompute the
// root of size End, so an archive verifies on its own, without the
// archives before it, and its end frontier is the next archive's start
// frontier (see docs/audit.md, "Lifecycle").
//
// The file is the JSON encoding of Archive, exactly as Marshal writes it,
// and nothing else: ParseArchive refuses any other bytes.
type Archive struct {
	Format      string `json:"format"`
	Origin      string `json:"origin"`
	VerifierKey string `json:"verifier_key"`
	Start       uint64 `json:"start"`
	End         uint64 `json:"end"`
	// StartRange is the compact range of the tree of size Start, standard
	// base64 hashes, left to right (empty for Start 0).
	StartRange []string `json:"start_range"`
	// Checkpoint is the signed note for tree size End.
	Checkpoint string          `json:"checkpoint"`
	Entries    []ArchivedEntry `json:"entries"`
}

// ArchivedEntry is one entry of an archive: its index in the log, the Raft
// command that committed it, its RFC 6962 leaf hash, and its exact leaf
// bytes (the canonical entry), both in standard base64. The hash is
// redundant (it must be the hash of the leaf) so that a damaged entry is
// named by its index.
type ArchivedEntry struct {
	Index     uint64 `json:"index"`
	RaftIndex uint64 `json:"raft_index"`
	Hash      string `json:"hash"`
	Leaf      string `json:"leaf"`
}

// ErrMalformedArchive: an archive that is not in the format Marshal
// writes. The error says where.
var ErrMalformedArchive = errors.New("audit: malformed archive")

// NewArchive assembles the archive of the entries leaves (their exact
// bytes, entries start, start+1, ...) with the Raft indexes raftIndexes,
// the compact range of the tree of size start, and the checkpoint signed
// for size start+len(leaves).
func NewArchive(origin, verifierKey string, start uint64, startRange [][]byte, checkpoint []byte, leaves [][]byte, raftIndexes []uint64) *Archive {
	a := &Archive{Format: ArchiveFormat, Origin: origin, VerifierKey: verifierKey, Start: start,
		End: start + uint64(len(leaves)), StartRange: encodeHashes(startRange), Checkpoint: string(checkpoint),
		Entries: make([]ArchivedEntry, len(leaves))}
	for i, l := range leaves {
		a.Entries[i] = ArchivedEntry{Index: start + uint64(i), RaftIndex: raftIndexes[i],
			Hash: base64.StdEncoding.EncodeToString(LeafHash(l)), Leaf: base64.StdEncoding.EncodeToString(l)}
	}
	return a
}

func encodeHashes(hs [][]byte) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h)
	}
	return out
}

// Marshal returns the archive's bytes: its JSON encoding and a newline.
func (a *Archive) Marshal() ([]byte, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ParseArchive decodes an archive strictly: at most MaxArchiveBytes, the
// known members only, at most MaxArchiveEntries entries, numbered from
// Start without a gap, and bytes that are exactly what Marshal writes for
// what they decode to (no other spacing, order or escaping). It checks the
// form only; Verify checks the contents. Errors wrap ErrMalformedArchive.
func ParseArchive(b []byte) (*Archive, error) {
	if len(b) > MaxArchiveBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformedArchive, len(b), MaxArchiveBytes)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var a Archive
	if err := d.Decode(&a); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedArchive, err)
	}
	if a.Format != ArchiveFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrMalformedArchive, a.Format, ArchiveFormat)
	}
	if len(a.Entries) > MaxArchiveEntries {
		return nil, fmt.Errorf("%w: %d entries, more than %d", ErrMalformedArchive, len(a.Entries), MaxArchiveEntries)
	}
	if a.End < a.Start || a.End-a.Start != uint64(len(a.Entries)) {
		return nil, fmt.Errorf("%w: range [%d, %d) with %d entries", ErrMalformedArchive, a.Start, a.End, len(a.Entries))
	}
	for i, e := range a.Entries {
		if e.Index != a.Start+uint64(i) {
			return nil, fmt.Errorf("%w: entry %d of the file has index %d, want %d", ErrMalformedArchive, i, e.Index, a.Start+uint64(i))
		}
	}
	if len(a.Checkpoint) > MaxCheckpointSize {
		return nil, fmt.Errorf("%w: checkpoint of %d bytes", ErrMalformedArchive, len(a.Checkpoint))
	}
	if want := compact.RangeSize(0, a.Start); len(a.StartRange) != want {
		return nil, fmt.Errorf("%w: start range of %d hashes, want %d for start %d", ErrMalformedArchive, len(a.StartRange), want, a.Start)
	}
	canon, err := a.Marshal()
	if err != nil || !bytes.Equal(canon, b) {
		return nil, fmt.Errorf("%w: not in the form Marshal writes (%s)", ErrMalformedArchive, firstDiff(canon, b))
	}
	return &a, nil
}

// firstDiff says where two byte strings first differ.
func firstDiff(a, b []byte) string {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return fmt.Sprintf("byte %d", i)
		}
	}
	return fmt.Sprintf("length %d, want %d", len(b), len(a))
}

// ArchiveResult is what a verified archive establishes: the checkpoint its
// entries produce, and the compact range of the tree of size End (the
// next archive's start range).
type ArchiveResult struct {
	Checkpoint Checkpoint
	EndRange   [][]byte
}

// Verify checks an archive on its own, offline: the checkpoint is signed
// by the archive's verifier key (which must equal trustedKey unless that
// is ""), every entry is a canonical entry whose leaf bytes hash to its
// recorded hash, and the root folded from the start range and those
// hashes is the checkpoint's root for size End. A failing entry is named
// by its index ("entry N: ..."). Errors wrap ErrNotVerified,
// ErrMalformedArchive or a checkpoint error.
func (a *Archive) Verify(trustedKey string) (ArchiveResult, error) {
	if trustedKey != "" && a.VerifierKey != trustedKey {
		return ArchiveResult{}, fmt.Errorf("%w: the archive's verifier key %q is not the trusted key", ErrNotVerified, a.VerifierKey)
	}
	cp, err := Open([]byte(a.Checkpoint), a.VerifierKey)
	if err != nil {
		return ArchiveResult{}, fmt.Errorf("archive checkpoint: %w", err)
	}
	if cp.Origin != a.Origin {
		return ArchiveResult{}, fmt.Errorf("%w: the archive names origin %q, its checkpoint %q", ErrNotVerified, a.Origin, cp.Origin)
	}
	if cp.Size != a.End {
		return ArchiveResult{}, fmt.Errorf("%w: the checkpoint is for size %d, the archive ends at %d", ErrNotVerified, cp.Size, a.End)
	}
	startRange, err := decodeHashes(a.StartRange)
	if err != nil {
		return ArchiveResult{}, fmt.Errorf("%w: start range: %v", ErrMalformedArchive, err)
	}
	hashes := make([][]byte, len(a.Entries))
	for i, e := range a.Entries {
		leaf, err := base64.StdEncoding.Strict().DecodeString(e.Leaf)
		if err != nil {
			return ArchiveResult{}, fmt.Errorf("%w: entry %d: its leaf is not base64: %v", ErrNotVerified, e.Index, err)
		}
		h, err := base64.StdEncoding.Strict().DecodeString(e.Hash)
		if err != nil || len(h) != HashSize {
			return ArchiveResult{}, fmt.Errorf("%w: entry %d: its hash is not a base64 SHA-256 hash", ErrNotVerified, e.Index)
		}
		if !bytes.Equal(LeafHash(leaf), h) {
			return ArchiveResult{}, fmt.Errorf("%w: entry %d was altered: its leaf bytes do not hash to its leaf hash", ErrNotVerified, e.Index)
		}
		if _, err := DecodeEntry(leaf); err != nil {
			return ArchiveResult{}, fmt.Errorf("%w: entry %d was altered: it is not a canonical entry: %v", ErrNotVerified, e.Index, err)
		}
		hashes[i] = h
	}
	next, _, err := Append(TreeState{Size: a.Start, Range: startRange}, hashes)
	if err != nil {
		return ArchiveResult{}, fmt.Errorf("%w: start range: %v", ErrMalformedArchive, err)
	}
	root, err := next.Root()
	if err != nil {
		return ArchiveResult{}, err
	}
	if !bytes.Equal(root, cp.Root) {
		return ArchiveResult{}, fmt.Errorf("%w: the root over the start range and entries %d to %d is not the signed root of size %d: the start range or an entry together with its hash was altered", ErrNotVerified, a.Start, a.End-1, a.End)
	}
	return ArchiveResult{Checkpoint: cp, EndRange: next.Range}, nil
}

func decodeHashes(ss []string) ([][]byte, error) {
	if len(ss) == 0 {
		return nil, nil
	}
	out := make([][]byte, len(ss))
	for i, s := range ss {
		h, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil || len(h) != HashSize {
			return nil, fmt.Errorf("hash %d is not a base64 SHA-256 hash", i)
		}
		out[i] = h
	}
	return out, nil
}

// VerifyChain verifies archives in order, each on its own (Verify), and
// that they chain: the same log (origin and key), and each archive starts
// where the one before ended, with the start range that archive's entries
// produce. The first need not start at 0.
func VerifyChain(archives []*Archive, trustedKey string) ([]ArchiveResult, error) {
	out := make([]ArchiveResult, len(archives))
	for k, a := range archives {
		r, err := a.Verify(trustedKey)
		if err != nil {
			return nil, fmt.Errorf("archive %d (entries %d to %d): %w", k+1, a.Start, a.End, err)
		}
		out[k] = r
		if k == 0 {
			continue
		}
		prev := archives[k-1]
		switch {
		case prev.Origin != a.Origin || prev.VerifierKey != a.VerifierKey:
			return nil, fmt.Errorf("%w: archive %d is of another log than archive %d", ErrNotVerified, k+1, k)
		case prev.End != a.Start:
			return nil, fmt.Errorf("%w: archive %d starts at %d, archive %d ends at %d", ErrNotVerified, k+1, a.Start, k, prev.End)
		}
		start, _ := decodeHashes(a.StartRange) // Verify decoded them
		if !equalHashes(out[k-1].EndRange, start) {
			return nil, fmt.Errorf("%w: archive %d's start range is not the range archive %d's entries end with", ErrNotVerified, k+1, k)
		}
	}
	return out, nil
}

func equalHashes(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
