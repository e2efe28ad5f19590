package audit

import (
	"bytes"
	"errors"
	"testing"
)

// honestTree appends n test leaves and returns the state and stored nodes.
func honestTree(t testing.TB, n int) (TreeState, mapStore) {
	ns := mapStore{}
	var st TreeState
	for i := range n {
		next, nodes, err := Append(st, [][]byte{LeafHash(testLeaf(i))})
		if err != nil {
			t.Fatal(err)
		}
		ns.put(t, nodes)
		st = next
	}
	return st, ns
}

// TestCheckInteriorAndRange: every interior node of an honest tree checks
// out, and so does its range; flipping one bit of any stored node is
// caught by the check of that node or of its parent, or by the range.
func TestCheckInteriorAndRange(t *testing.T) {
	const n = 21
	st, ns := honestTree(t, n)
	check := func(ns mapStore, st TreeState) []error {
		var found []error
		for id := range ns {
			if id.level == 0 {
				continue
			}
			if err := CheckInterior(ns, id.level, id.index); err != nil {
				found = append(found, err)
			}
		}
		if err := CheckRange(ns, st); err != nil {
			found = append(found, err)
		}
		return found
	}
	if found := check(ns, st); len(found) != 0 {
		t.Fatalf("honest tree: %v", found)
	}
	for id := range ns {
		bad := mapStore{}
		for k, v := range ns {
			bad[k] = v
		}
		bad[id] = append([]byte(nil), ns[id]...)
		bad[id][0] ^= 0x80
		found := check(bad, st)
		if len(found) == 0 {
			t.Fatalf("node (%d, %d) altered: nothing found", id.level, id.index)
		}
		for _, err := range found {
			var d *Damage
			if !errors.As(err, &d) || !errors.Is(err, ErrDamaged) {
				t.Fatalf("node (%d, %d): %v is not a *Damage", id.level, id.index, err)
			}
		}
		// An interior node that is not a range root is named by its own check.
		if id.level > 0 && id.index < n>>id.level {
			if err := CheckInterior(bad, id.level, id.index); err == nil {
				t.Fatalf("node (%d, %d) altered passes its own check", id.level, id.index)
			}
		}
	}
	if err := CheckInterior(ns, 0, 0); !errors.Is(err, ErrArgument) {
		t.Fatalf("level 0: %v", err)
	}
}

func TestDamageMessages(t *testing.T) {
	for _, tc := range []struct {
		d    Damage
		want string
	}{
		{Damage{Kind: DamagedEntry, Index: 7, Detail: "it does not open under its leaf hash"}, "entry 7 was altered: it does not open under its leaf hash"},
		{Damage{Kind: DamagedNode, Level: 1, Index: 2}, "stored Merkle node (1, 2) altered"},
		{Damage{Kind: DamagedState, Detail: "x"}, "stored tree state altered: x"},
		{Damage{Kind: DamagedDatabase, Detail: "page 4: invalid type"}, "database page check failed: page 4: invalid type"},
	} {
		if got := tc.d.Error(); got != tc.want {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}

// FuzzCheckRange: a stored tree state read from arbitrary bytes is either
// refused by UnmarshalBinary or checked against the stored nodes without a
// panic; only the honest state passes.
func FuzzCheckRange(f *testing.F) {
	st, ns := honestTree(f, 21)
	good, err := st.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:12])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var got TreeState
		if got.UnmarshalBinary(b) != nil {
			return
		}
		err := CheckRange(ns, got)
		if err != nil && !errors.Is(err, ErrDamaged) {
			t.Fatalf("not a *Damage: %v", err)
		}
		if err == nil && got.Size == st.Size && !bytes.Equal(b, good) {
			t.Fatalf("a state other than the honest one passes: %x", b)
		}
	})
}
