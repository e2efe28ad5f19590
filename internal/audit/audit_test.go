package audit

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"
)

type mapStore map[[2]uint64][]byte

func (m mapStore) GetNode(level uint, index uint64) ([]byte, error) {
	h, ok := m[[2]uint64{uint64(level), index}]
	if !ok {
		return nil, errors.New("no such node")
	}
	return h, nil
}

func (m mapStore) put(nodes []Node) {
	for _, n := range nodes {
		m[[2]uint64{uint64(n.Level), n.Index}] = n.Hash
	}
}

func leaf(i int) []byte { return []byte(fmt.Sprintf(`{"i":%d}`, i)) }

// build appends n leaves in random batch sizes (fixed seed).
func build(t testing.TB, n int, seed uint64) (TreeState, mapStore, [][]byte) {
	r := mrand.New(mrand.NewPCG(seed, 1))
	ns := mapStore{}
	var st TreeState
	var leaves [][]byte
	for len(leaves) < n {
		k := 1 + r.IntN(17)
		if len(leaves)+k > n {
			k = n - len(leaves)
		}
		var hs [][]byte
		for j := 0; j < k; j++ {
			l := leaf(len(leaves))
			leaves = append(leaves, l)
			hs = append(hs, LeafHash(l))
		}
		var nodes []Node
		var err error
		st, nodes, err = Append(st, hs)
		if err != nil {
			t.Fatal(err)
		}
		ns.put(nodes)
	}
	return st, ns, leaves
}

// TestTreeProofs checks every tree size from 1 to 1000: the nodes stored
// while growing the tree to 1000 leaves (in random batch sizes) serve the
// root of every smaller tree, an inclusion proof at every size, and a
// consistency proof from a random older size to every size. Roots are
// compared with an independent computation over the leaf bytes.
func TestTreeProofs(t *testing.T) {
	const n = 1000
	st, ns, leaves := build(t, n, 42)
	r := mrand.New(mrand.NewPCG(7, 7))
	roots := make([][]byte, n+1)
	for size := 1; size <= n; size++ {
		roots[size] = RootOf(leaves[:size])
	}
	if root, _ := st.Root(); !bytes.Equal(root, roots[n]) {
		t.Fatal("final root mismatch")
	}
	for size := uint64(1); size <= n; size++ {
		if at, err := RootAt(ns, size); err != nil || !bytes.Equal(at, roots[size]) {
			t.Fatalf("size %d: RootAt: %v", size, err)
		}
		i := uint64(r.IntN(int(size)))
		p, err := InclusionProof(ns, i, size)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyInclusion(leaves[i], i, size, roots[size], p); err != nil {
			t.Fatalf("size %d index %d: %v", size, i, err)
		}
		if VerifyInclusion(leaf(n+1), i, size, roots[size], p) == nil {
			t.Fatalf("size %d: proof verified a foreign leaf", size)
		}
		old := 1 + uint64(r.IntN(int(size)))
		cp, err := ConsistencyProof(ns, old, size)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyConsistency(old, size, roots[old], roots[size], cp); err != nil {
			t.Fatalf("consistency %d→%d: %v", old, size, err)
		}
		if old < size && VerifyConsistency(old, size, roots[size-1], roots[size], cp) == nil && !bytes.Equal(roots[size-1], roots[old]) {
			t.Fatalf("consistency %d→%d accepted a wrong old root", old, size)
		}
	}
	// Every index at a few sizes, every pair of sizes up to 64.
	for _, size := range []uint64{1, 2, 3, 7, 8, 9, 255, 256, 257} {
		for i := uint64(0); i < size; i++ {
			p, _ := InclusionProof(ns, i, size)
			if err := VerifyInclusion(leaves[i], i, size, roots[size], p); err != nil {
				t.Fatalf("size %d index %d: %v", size, i, err)
			}
		}
	}
	for a := uint64(1); a <= 64; a++ {
		for b := a; b <= 64; b++ {
			p, _ := ConsistencyProof(ns, a, b)
			if err := VerifyConsistency(a, b, roots[a], roots[b], p); err != nil {
				t.Fatalf("consistency %d→%d: %v", a, b, err)
			}
		}
	}
}

func TestArgumentsAndTamper(t *testing.T) {
	st, ns, leaves := build(t, 100, 1)
	if _, err := InclusionProof(ns, 100, 100); !errors.Is(err, ErrArgument) {
		t.Fatal(err)
	}
	if _, err := ConsistencyProof(ns, 101, 100); !errors.Is(err, ErrArgument) {
		t.Fatal(err)
	}
	leaves[42] = []byte(`{"i":4242}`)
	if i, found, err := FirstMismatch(leaves, ns); err != nil || !found || i != 42 {
		t.Fatalf("tamper: %d %v %v", i, found, err)
	}
	b, _ := st.MarshalBinary()
	var back TreeState
	if err := back.UnmarshalBinary(b); err != nil || back.Size != 100 {
		t.Fatal(err)
	}
	if back.UnmarshalBinary(b[:len(b)-1]) == nil {
		t.Fatal("truncated state accepted")
	}
}

func TestCheckpoint(t *testing.T) {
	skey, vkey, err := GenerateKey("warden.local/audit/test", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fmt.Sprint(skey), "PRIVATE") || strings.Contains(fmt.Sprintf("%v", skey), string(skey)[:20]) {
		t.Fatal("signer key printed")
	}
	root := LeafHash([]byte("x"))
	msg, err := Sign(skey, 7, root)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := Open(msg, vkey)
	if err != nil || cp.Size != 7 || !bytes.Equal(cp.Root, root) || cp.Origin != "warden.local/audit/test" {
		t.Fatalf("open: %+v %v", cp, err)
	}
	_, otherV, _ := GenerateKey("warden.local/audit/test", rand.Reader)
	if _, err := Open(msg, otherV); err == nil {
		t.Fatal("wrong key accepted")
	}
	bad := bytes.Replace(msg, []byte("\n7\n"), []byte("\n8\n"), 1)
	if _, err := Open(bad, vkey); err == nil {
		t.Fatal("modified body accepted")
	}
}

func TestEntryCanonical(t *testing.T) {
	e := Entry{Action: "kv.write", AuthMethod: "token", Outcome: 200, Principal: `User::"alice"`, RaftIndex: 12,
		RequestID: "r-1", Resource: `Secret::"app/db"`, SourceAddr: "127.0.0.1",
		Time: FormatTime(time.Date(2026, 11, 22, 12, 0, 0, 5, time.UTC)), Hashes: map[string]string{"z": "b", "a": "c"}}
	b, err := e.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"action":"kv.write","auth_method":"token","hashes":{"a":"c","z":"b"},"outcome":200,"principal":"User::\"alice\"","raft_index":12,"request_id":"r-1","resource":"Secret::\"app/db\"","source_addr":"127.0.0.1","time":"2026-11-22T12:00:00.000000005Z"}`
	if string(b) != want {
		t.Fatalf("canonical:\n%s\nwant\n%s", b, want)
	}
	if back, err := DecodeEntry(b); err != nil || back.RaftIndex != 12 {
		t.Fatal(err)
	}
	for _, bad := range []string{
		strings.Replace(want, `"outcome":200`, `"outcome": 200`, 1),
		strings.Replace(want, `{"action"`, `{"extra":1,"action"`, 1),
		want + " ",
	} {
		if _, err := DecodeEntry([]byte(bad)); err == nil {
			t.Fatalf("accepted %s", bad)
		}
	}
}

func TestHasher(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	h, _ := NewHasher(key)
	sum := h.Sum([]byte("hunter2"))
	if !strings.HasPrefix(sum, "hmac-sha256:") || strings.Contains(sum, "hunter2") {
		t.Fatal(sum)
	}
	if !h.Matches(sum, []byte("hunter2")) || h.Matches(sum, []byte("hunter3")) {
		t.Fatal("guess check")
	}
	other, _ := NewHasher(bytes.Repeat([]byte{8}, 32))
	if other.Matches(sum, []byte("hunter2")) {
		t.Fatal("another key confirmed the value")
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add([]byte(`{"action":"a","auth_method":"token","outcome":200,"principal":"p","raft_index":0,"request_id":"r","resource":"x","source_addr":"s","time":"2026-11-22T12:00:00Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			return
		}
		again, err := e.Canonical()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded entry does not re-encode to its bytes")
		}
	})
}

func FuzzOpenCheckpoint(f *testing.F) {
	skey, vkey, _ := GenerateKey("o", rand.Reader)
	msg, _ := Sign(skey, 3, LeafHash(nil))
	f.Add(msg)
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := Open(b, vkey)
		if err == nil && (cp.Origin != "o" || len(cp.Root) != 32) {
			t.Fatalf("bad checkpoint accepted: %+v", cp)
		}
	})
}

func BenchmarkAppend64(b *testing.B) {
	hs := make([][]byte, 64)
	for i := range hs {
		hs[i] = LeafHash(leaf(i))
	}
	var st TreeState
	b.ReportAllocs()
	for b.Loop() {
		st, _, _ = Append(st, hs)
	}
}

func BenchmarkInclusionProof100k(b *testing.B) {
	_, ns, _ := build(b, 100000, 3)
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		i = (i + 7919) % 100000
		if _, err := InclusionProof(ns, i, 100000); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConsistencyProof100k(b *testing.B) {
	_, ns, _ := build(b, 100000, 3)
	b.ReportAllocs()
	i := uint64(1)
	for b.Loop() {
		i = 1 + (i+7919)%99999
		if _, err := ConsistencyProof(ns, i, 100000); err != nil {
			b.Fatal(err)
		}
	}
}
