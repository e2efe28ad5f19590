package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/store"
	"github.com/warden-sec/warden/pkg/client"
)

// TestAuditArchivePruneCluster: on a three-node cluster, an archive made
// through a follower verifies offline; a prune beyond it is refused; the
// prune, sent to a follower, is applied by every node alike (the same
// pruned bound, the same live leaves, the same tree); every node's
// integrity check passes with the pruned range; proofs of live entries and
// consistency proofs from before the prune still verify; entries below the
// bound read as archived, with their leaf hashes.
func TestAuditArchivePruneCluster(t *testing.T) {
	ctx := context.Background()
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		nodes[i] = &clusterNode{t: t, id: fmt.Sprint("n", i+1), dir: t.TempDir(), clusterAddr: freeAddr(t)}
		nodes[i].start()
	}
	_, root := initJoin(ctx, t, nodes)
	leader, follower := nodes[0].client(root), nodes[1].client(root)
	for i := range 8 {
		if _, err := follower.KVPut(ctx, fmt.Sprint("app/k", i), map[string]any{"v": i}, nil); err != nil {
			t.Fatal(err)
		}
	}
	v, err := leader.AuditVerifierKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	openCP := func(c *client.Client) audit.Checkpoint { return signedCheckpoint(ctx, t, c, v.VerifierKey) }
	old := openCP(leader)

	// Nothing archived yet: a prune is refused.
	if _, err := follower.AuditPrune(ctx, 3); !client.IsStatus(err, 412) {
		t.Fatalf("prune before any archive: %v", err)
	}
	const bound = 6
	raw, err := follower.AuditArchive(ctx, bound, "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := audit.ParseArchive(raw)
	if err != nil {
		t.Fatal(err)
	}
	if a.Start != 0 || a.End != bound {
		t.Fatalf("archive [%d, %d), want [0, %d)", a.Start, a.End, bound)
	}
	if _, err := a.Verify(v.VerifierKey); err != nil {
		t.Fatalf("archive: %v", err)
	}
	if _, err := follower.AuditPrune(ctx, bound+1); !client.IsStatus(err, 412) || !strings.Contains(err.Error(), "beyond the archived") {
		t.Fatalf("prune beyond the archive: %v", err)
	}
	p, err := nodes[2].client(root).AuditPrune(ctx, bound)
	if err != nil || p != bound {
		t.Fatalf("prune: %d, %v", p, err)
	}

	// Every node applied the same prune.
	want := nodes[0].srv.Store().AppliedIndex()
	type state struct {
		pruned uint64
		live   int
		root   []byte
	}
	var states []state
	for _, n := range nodes {
		if err := n.srv.Store().WaitApplied(ctx, want); err != nil {
			t.Fatal(err)
		}
		var s state
		err := n.srv.Store().ViewAudit(func(v store.AuditView) error {
			st, err := v.State()
			if err != nil {
				return err
			}
			if s.pruned, err = v.Pruned(); err != nil {
				return err
			}
			ls, err := v.Leaves(s.pruned, int(st.Size))
			s.live = len(ls)
			s.root, _ = st.Root()
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", n.id, err)
		}
		// The leaves below the bound are gone from this node's store.
		err = n.srv.Store().ViewAudit(func(v store.AuditView) error {
			if ls, _ := v.Leaves(0, 1); len(ls) != 0 {
				return fmt.Errorf("%s still stores leaf 0", n.id)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.srv.Audit().Scrub(ctx); err != nil {
			t.Fatalf("%s: the integrity check after a prune: %v", n.id, err)
		}
		if err := n.srv.Audit().Damaged(); err != nil {
			t.Fatalf("%s: damaged after a prune: %v", n.id, err)
		}
		states = append(states, s)
	}
	for i, s := range states {
		if s.pruned != bound || s.live != states[0].live || !bytes.Equal(s.root, states[0].root) {
			t.Fatalf("%s: pruned %d, %d live leaves; %s: pruned %d, %d live leaves (roots equal: %v)",
				nodes[i].id, s.pruned, s.live, nodes[0].id, states[0].pruned, states[0].live, bytes.Equal(s.root, states[0].root))
		}
	}

	// Reading a pruned entry says it is archived; live entries read.
	es, err := follower.AuditEntries(ctx, bound-1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !es[0].Archived || es[0].LeafHash == "" || !strings.Contains(es[0].Error, "archived") || es[1].Archived || es[1].Leaf == "" {
		t.Fatalf("entries around the bound: %+v", es)
	}
	// Proofs: inclusion of a live entry, consistency from the checkpoint
	// taken before the prune.
	cp := openCP(follower)
	leaf, _ := es[1].LeafBytes()
	ip, err := follower.AuditInclusionProof(ctx, bound, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.VerifyInclusion(leaf, bound, ip); err != nil {
		t.Fatalf("inclusion of a live entry after the prune: %v", err)
	}
	cons, err := follower.AuditConsistencyProof(ctx, old.Size, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.VerifyConsistency(old, cons); err != nil {
		t.Fatalf("consistency after the prune: %v", err)
	}
	// An archived entry's inclusion is still provable from its hash.
	h0 := mustB64(t, es[0].LeafHash)
	ip0, err := follower.AuditInclusionProof(ctx, bound-1, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.VerifyInclusionHash(h0, bound-1, cp.Size, cp.Root, ip0); err != nil {
		t.Fatalf("inclusion of an archived entry's hash: %v", err)
	}

	// The next archive starts at the bound and chains with the first.
	raw2, err := leader.AuditArchive(ctx, cp.Size, "")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := audit.ParseArchive(raw2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyChain([]*audit.Archive{a, a2}, v.VerifierKey); err != nil || a2.Start != bound {
		t.Fatalf("second archive from %d: %v", a2.Start, err)
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signedCheckpoint reads c's checkpoint and opens it with vkey.
func signedCheckpoint(ctx context.Context, t *testing.T, c *client.Client, vkey string) audit.Checkpoint {
	t.Helper()
	note, err := c.AuditCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := audit.Open(note, vkey)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}
