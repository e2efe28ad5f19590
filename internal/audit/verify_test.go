package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// testLog is a small log as the server keeps it: canonical entries as
// leaves, stored nodes, and a checkpoint signed at each of some sizes.
type testLog struct {
	leaves [][]byte
	ns     mapStore
	vkey   string
	notes  map[uint64][]byte // size → signed checkpoint
}

func newTestLog(t testing.TB, n int, signAt ...int) *testLog {
	t.Helper()
	skey, vkey, err := GenerateSigner(testOrigin, testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	l := &testLog{ns: mapStore{}, vkey: vkey, notes: map[uint64][]byte{}}
	var st TreeState
	for i := range n {
		e := Entry{Action: "kv.write", AuthMethod: "token", Outcome: 200, Principal: `User::"alice"`,
			RequestID: strconv.Itoa(i), Resource: `Secret::"app/db"`, SourceAddr: "127.0.0.1",
			Time: fmt.Sprintf("2026-01-02T03:04:%02dZ", i%60)}
		leaf, err := e.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		l.leaves = append(l.leaves, leaf)
		next, nodes, err := Append(st, [][]byte{LeafHash(leaf)})
		if err != nil {
			t.Fatal(err)
		}
		l.ns.put(t, nodes)
		st = next
	}
	for _, size := range append(signAt, n) {
		root, err := RootAt(l.ns, uint64(size))
		if err != nil {
			t.Fatal(err)
		}
		if l.notes[uint64(size)], err = Sign(skey, uint64(size), root); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func (l *testLog) checkpoint(t testing.TB, size uint64) Checkpoint {
	t.Helper()
	cp, err := Open(l.notes[size], l.vkey)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func TestVerifyLog(t *testing.T) {
	l := newTestLog(t, 50)
	cp := l.checkpoint(t, 50)
	if err := VerifyLog(cp, l.leaves); err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(l.leaves[17])
	tampered = bytes.Replace(tampered, []byte("alice"), []byte("mallory"), 1)
	tests := []struct {
		name   string
		leaves [][]byte
	}{
		{"entry changed", replaceAt(l.leaves, 17, tampered)},
		{"entry dropped", append(append([][]byte{}, l.leaves[:17]...), l.leaves[18:]...)},
		{"tail truncated", l.leaves[:49]},
		{"entry added", append(append([][]byte{}, l.leaves...), l.leaves[0])},
		{"entries swapped", replaceAt(replaceAt(l.leaves, 3, l.leaves[4]), 4, l.leaves[3])},
		{"empty log", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifyLog(cp, tt.leaves); !errors.Is(err, ErrNotVerified) {
				t.Fatalf("VerifyLog = %v, want ErrNotVerified", err)
			}
		})
	}
}

func replaceAt(leaves [][]byte, i int, leaf []byte) [][]byte {
	out := append([][]byte{}, leaves...)
	out[i] = leaf
	return out
}

// TestFindMismatch: tampering with one stored entry is found, and named.
func TestFindMismatch(t *testing.T) {
	l := newTestLog(t, 100)
	if i, found, err := FindMismatch(l.leaves, l.ns); err != nil || found {
		t.Fatalf("untampered log: %d, %v, %v", i, found, err)
	}
	for _, i := range []int{0, 1, 42, 63, 64, 99} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			changed := bytes.Replace(l.leaves[i], []byte(`"kv.write"`), []byte(`"kv.read"`), 1)
			got, found, err := FindMismatch(replaceAt(l.leaves, i, changed), l.ns)
			if err != nil || !found || got != uint64(i) {
				t.Fatalf("FindMismatch = %d, %v, %v; want entry %d", got, found, err, i)
			}
		})
	}
	if _, _, err := FindMismatch(append(l.leaves, l.leaves[0]), l.ns); !errors.Is(err, errNoNode) {
		t.Fatalf("an entry beyond the tree: %v", err)
	}
}

func TestCheckpointProofs(t *testing.T) {
	l := newTestLog(t, 40, 1, 13, 32)
	cp := l.checkpoint(t, 40)
	for i := range uint64(40) {
		p, err := InclusionProof(l.ns, i, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := cp.VerifyInclusion(l.leaves[i], i, p); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if err := cp.VerifyInclusion(l.leaves[(i+1)%40], i, p); !errors.Is(err, ErrNotVerified) {
			t.Fatalf("entry %d: another entry's leaf: %v", i, err)
		}
	}
	for _, size := range []uint64{1, 13, 32, 40} {
		old := l.checkpoint(t, size)
		p, err := ConsistencyProof(l.ns, old.Size, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := cp.VerifyConsistency(old, p); err != nil {
			t.Fatalf("%d → 40: %v", size, err)
		}
	}
	old := l.checkpoint(t, 13)
	p, _ := ConsistencyProof(l.ns, 13, 40)
	forked := old
	forked.Root = LeafHash([]byte("fork"))
	other := old
	other.Origin = "other.example/log"
	tests := []struct {
		name     string
		old, new Checkpoint
		proof    [][]byte
	}{
		{"forked old root", forked, cp, p},
		{"another log", other, cp, p},
		{"log shrank", cp, old, p},
		{"proof for other sizes", l.checkpoint(t, 32), cp, p},
		{"proof truncated", old, cp, p[:len(p)-1]},
		{"no proof", old, cp, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.new.VerifyConsistency(tt.old, tt.proof); !errors.Is(err, ErrNotVerified) {
				t.Fatalf("VerifyConsistency = %v, want ErrNotVerified", err)
			}
		})
	}
}

// TestThirdPartyVerifier verifies a log the way an independent program
// does, with only sumdb/note, transparency-dev/merkle and the standard
// library: the signature, the root over all leaf bytes, inclusion proofs
// and a consistency proof. It pins the contract of issue 4 ("Done when")
// to the formats, not to this package's helpers.
func TestThirdPartyVerifier(t *testing.T) {
	l := newTestLog(t, 77, 30)
	v, err := note.NewVerifier(l.vkey)
	if err != nil {
		t.Fatal(err)
	}
	parse := func(msg []byte) (size uint64, root []byte) {
		n, err := note.Open(msg, note.VerifierList(v))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(n.Text, "\n")
		if lines[0] != v.Name() {
			t.Fatalf("origin %q", lines[0])
		}
		size, err = strconv.ParseUint(lines[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if root, err = base64.StdEncoding.DecodeString(lines[2]); err != nil {
			t.Fatal(err)
		}
		return size, root
	}
	h := rfc6962.DefaultHasher
	size, root := parse(l.notes[77])
	oldSize, oldRoot := parse(l.notes[30])
	// The root over all leaves, by RFC 6962's recursive definition.
	var hashes [][]byte
	for _, leaf := range l.leaves {
		hashes = append(hashes, h.HashLeaf(leaf))
	}
	if size != uint64(len(l.leaves)) || !bytes.Equal(mth(hashes), root) {
		t.Fatal("the root over all entries does not match the checkpoint")
	}
	r := mrand.New(mrand.NewPCG(9, 9))
	for range 20 {
		i := r.Uint64N(size)
		p, err := InclusionProof(l.ns, i, size) // what the server serves
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(h, i, size, h.HashLeaf(l.leaves[i]), p, root); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	p, err := ConsistencyProof(l.ns, oldSize, size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(h, oldSize, size, p, oldRoot, root); err != nil {
		t.Fatal(err)
	}
}
