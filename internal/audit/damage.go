package audit

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
)

// ErrDamaged: a stored part of the log does not match what it is computed
// from. Such errors are *Damage values naming the part.
var ErrDamaged = errors.New("audit: the stored log is damaged")

// DamageKind says which stored part of the log a [Damage] names.
type DamageKind int

const (
	// DamagedEntry: a stored leaf does not open under its own hash, does
	// not decode as an entry, or hashes to something else than its level-0
	// node; or it is missing.
	DamagedEntry DamageKind = iota + 1
	// DamagedNode: a stored tree node differs from the hash of its
	// children (or, at level 0, is the common factor of a leaf that does
	// not open and a parent that does not match), or it is missing.
	DamagedNode
	// DamagedState: the stored tree state (size and compact range, what
	// checkpoints are signed over) differs from the stored nodes.
	DamagedState
	// DamagedDatabase: the storage engine's own page check failed.
	DamagedDatabase
)

// Damage names one damaged part of the stored log. errors.Is(d, ErrDamaged)
// holds. Its message names the part and never holds leaf contents.
type Damage struct {
	Kind   DamageKind
	Level  uint   // DamagedNode: the node's level (0: a leaf hash)
	Index  uint64 // DamagedEntry: the entry's index; DamagedNode: the node's index
	Detail string // what did not match, without any leaf contents
}

// Error says, for example, "entry 3 was altered: it does not open under
// its leaf hash" or "stored Merkle node (1, 2) altered: it is not the hash
// of its children".
func (d *Damage) Error() string {
	var s string
	switch d.Kind {
	case DamagedEntry:
		s = fmt.Sprintf("entry %d was altered", d.Index)
	case DamagedNode:
		s = fmt.Sprintf("stored Merkle node (%d, %d) altered", d.Level, d.Index)
	case DamagedState:
		s = "stored tree state altered"
	case DamagedDatabase:
		s = "database page check failed"
	default:
		s = "stored log damaged"
	}
	if d.Detail != "" {
		s += ": " + d.Detail
	}
	return s
}

// Is makes errors.Is(err, ErrDamaged) hold.
func (d *Damage) Is(target error) bool { return target == ErrDamaged }

// NodeHash is the RFC 6962 interior node hash: SHA-256(0x01 || left || right).
func NodeHash(left, right []byte) []byte { return hasher.HashChildren(left, right) }

// CheckInterior recomputes the stored interior node (level ≥ 1, index)
// from its two stored children. It returns a *Damage naming the node if
// the node or a child is missing, malformed, or if the node is not the
// hash of its children. Which of the three was altered is for the caller to
// decide (the children are checked against their own children, or, at
// level 0, against their leaves); a node whose children check out is the
// one that was altered. Any other error of ns is returned as it is.
func CheckInterior(ns NodeStore, level uint, index uint64) error {
	if level == 0 {
		return &ArgumentError{Arg: "level", Value: 0, Want: "at least 1"}
	}
	hs, err := getNodes(ns, []compact.NodeID{compact.NewNodeID(level, index), compact.NewNodeID(level-1, 2*index), compact.NewNodeID(level-1, 2*index+1)})
	if err != nil {
		return &Damage{Kind: DamagedNode, Level: level, Index: index, Detail: err.Error()}
	}
	if !bytes.Equal(hs[0], NodeHash(hs[1], hs[2])) {
		return &Damage{Kind: DamagedNode, Level: level, Index: index, Detail: "it is not the hash of its children"}
	}
	return nil
}

// CheckRange compares the compact range of st (the hashes the root and
// every checkpoint are computed from) with the stored nodes it names. It
// returns a *Damage of kind DamagedState naming the first range hash that
// differs, with Level and Index set to the stored node it differs from
// (that node's own check says which of the two was altered), or of
// kind DamagedNode if a range node is missing. st must be well formed.
func CheckRange(ns NodeStore, st TreeState) error {
	if err := st.check(); err != nil {
		return &Damage{Kind: DamagedState, Detail: err.Error()}
	}
	for i, id := range compact.RangeNodes(0, st.Size, nil) {
		h, err := ns.GetNode(id.Level, id.Index)
		if err != nil {
			return &Damage{Kind: DamagedNode, Level: id.Level, Index: id.Index, Detail: err.Error()}
		}
		if !bytes.Equal(h, st.Range[i]) {
			return &Damage{Kind: DamagedState, Level: id.Level, Index: id.Index, Detail: fmt.Sprintf("compact range hash %d differs from stored node (%d, %d)", i, id.Level, id.Index)}
		}
	}
	return nil
}
