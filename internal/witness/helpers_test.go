package witness

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
)

// testLog is a real log: an audit Merkle tree and a checkpoint key.
type testLog struct {
	t      testing.TB
	origin string
	skey   audit.SignerKey
	vkey   string
	st     audit.TreeState
	nodes  nodeMap
	leaf   string // leaf text prefix: two logs with other prefixes fork
}

type nodeMap map[[2]uint64][]byte

func (m nodeMap) GetNode(level uint, index uint64) ([]byte, error) {
	h, ok := m[[2]uint64{uint64(level), index}]
	if !ok {
		return nil, fmt.Errorf("no node (%d, %d)", level, index)
	}
	return h, nil
}

func newTestLog(t testing.TB, origin string) *testLog {
	t.Helper()
	skey, vkey, err := audit.GenerateSigner(origin, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{t: t, origin: origin, skey: skey, vkey: vkey, nodes: nodeMap{}, leaf: "leaf"}
}

// fork returns a log with the same key and the same first n leaves, whose
// later leaves differ.
func (l *testLog) fork(n uint64) *testLog {
	f := &testLog{t: l.t, origin: l.origin, skey: l.skey, vkey: l.vkey, nodes: nodeMap{}, leaf: "leaf"}
	f.grow(n)
	f.leaf = "forked leaf"
	return f
}

// grow appends n leaves.
func (l *testLog) grow(n uint64) *testLog {
	l.t.Helper()
	hs := make([][]byte, n)
	for i := range hs {
		hs[i] = audit.LeafHash(fmt.Appendf(nil, "%s %d", l.leaf, l.st.Size+uint64(i)))
	}
	st, nodes, err := audit.Append(l.st, hs)
	if err != nil {
		l.t.Fatal(err)
	}
	for _, nd := range nodes {
		l.nodes[[2]uint64{uint64(nd.Level), nd.Index}] = nd.Hash
	}
	l.st = st
	return l
}

// checkpoint signs the checkpoint of the current size.
func (l *testLog) checkpoint() []byte {
	l.t.Helper()
	return l.checkpointAt(l.st.Size)
}

func (l *testLog) checkpointAt(size uint64) []byte {
	l.t.Helper()
	root, err := audit.RootAt(l.nodes, size)
	if err != nil {
		l.t.Fatal(err)
	}
	cp, err := audit.Sign(l.skey, size, root)
	if err != nil {
		l.t.Fatal(err)
	}
	return cp
}

func (l *testLog) proof(old, size uint64) [][]byte {
	l.t.Helper()
	p, err := audit.ConsistencyProof(l.nodes, old, size)
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}

func (l *testLog) proofFn(size uint64) func(context.Context, uint64) ([][]byte, error) {
	return func(_ context.Context, from uint64) ([][]byte, error) {
		return audit.ConsistencyProof(l.nodes, from, size)
	}
}

var testTime = time.Unix(1_700_000_000, 0)

func fixedNow() time.Time { return testTime }

// newTestWitness opens a witness in a new directory, knowing logs.
func newTestWitness(t testing.TB, name string, logs ...*testLog) (w *Witness, skey, vkey, dir string) {
	t.Helper()
	skey, vkey, err := GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	w = openWitness(t, dir, skey, logs...)
	return w, skey, vkey, dir
}

func openWitness(t testing.TB, dir, skey string, logs ...*testLog) *Witness {
	t.Helper()
	m := map[string]string{}
	for _, l := range logs {
		m[l.origin] = l.vkey
	}
	w, err := Open(Config{Dir: dir, Signer: skey, Logs: m, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}
