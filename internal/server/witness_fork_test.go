package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/warden-sec/warden/internal/agent"
	"github.com/warden-sec/warden/internal/agent/ship"
	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditcheck"
	"github.com/warden-sec/warden/internal/cli"
	"github.com/warden-sec/warden/internal/sigma"
	"github.com/warden-sec/warden/internal/witness"
	"github.com/warden-sec/warden/pkg/client"
)

// The built-in rules that make audit_fork events critical alerts.
const (
	ruleServerFork = "7e6e120d-8632-4c4b-98cb-463b3c3910e1"
	ruleAgentFork  = "5b34a965-b5be-4507-bd90-4482a125501a"
)

// rewriteAuditLeaf alters the audit tree in a stopped node's state
// database behind Raft's back, as an attacker with the disk would: entry
// victim is replaced by a copy of entry donor (its sealed bytes and leaf
// hash, which open and hash consistently at any index), and every Merkle
// node and the tree state are recomputed with internal/audit, so the
// node's own integrity checks pass and it signs a checkpoint of a history
// that is not the cluster's.
func rewriteAuditLeaf(t *testing.T, fsmPath string, victim, donor uint64) {
	t.Helper()
	db, err := bolt.Open(fsmPath, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	nodeKey := func(level uint, index uint64) []byte {
		return binary.BigEndian.AppendUint64([]byte{byte(level)}, index)
	}
	idxKey := func(i uint64) []byte { return binary.BigEndian.AppendUint64(nil, i) }
	err = db.Update(func(tx *bolt.Tx) error {
		meta, leaves, nodes := tx.Bucket([]byte("meta")), tx.Bucket([]byte("audit_leaves")), tx.Bucket([]byte("audit_nodes"))
		var st audit.TreeState
		if err := st.UnmarshalBinary(meta.Get([]byte("audit_tree"))); err != nil {
			return err
		}
		if victim >= st.Size || donor >= st.Size {
			return fmt.Errorf("tree of size %d", st.Size)
		}
		old, donorVal := leaves.Get(idxKey(victim)), leaves.Get(idxKey(donor))
		// The victim keeps its Raft index; the sealed leaf is the donor's.
		val := append(append([]byte(nil), old[:8]...), donorVal[8:]...)
		if err := leaves.Put(idxKey(victim), val); err != nil {
			return err
		}
		if err := nodes.Put(nodeKey(0, victim), bytes.Clone(nodes.Get(nodeKey(0, donor)))); err != nil {
			return err
		}
		hashes := make([][]byte, st.Size)
		for i := range st.Size {
			hashes[i] = bytes.Clone(nodes.Get(nodeKey(0, i)))
		}
		next, all, err := audit.Append(audit.TreeState{}, hashes)
		if err != nil {
			return err
		}
		for _, n := range all {
			if err := nodes.Put(nodeKey(n.Level, n.Index), n.Hash); err != nil {
				return err
			}
		}
		b, _ := next.MarshalBinary()
		return meta.Put([]byte("audit_tree"), b)
	})
	if err != nil {
		t.Fatalf("rewrite the audit tree: %v", err)
	}
}

// runVerify runs `warden audit verify` (the CLI's code path) against n
// with the state file.
func runVerify(t *testing.T, n *clusterNode, token, state string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Main([]string{"audit", "verify", "--address", n.srv.Addr(), "--ca-cert", n.srv.CAFile(), "--token", token, "--state", state},
		strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

// waitAlerts waits until the alerts of rule (one per host) cover every
// one of hosts, and returns them.
func waitAlerts(ctx context.Context, t *testing.T, c *client.Client, rule string, hosts ...string) []client.Alert {
	t.Helper()
	var seen []string
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		as, _, err := c.AlertList(ctx, client.AlertFilter{Rule: rule})
		if err == nil {
			seen = nil
			for _, a := range as {
				seen = append(seen, a.Hosts...)
			}
			if !slices.ContainsFunc(hosts, func(h string) bool { return !slices.Contains(seen, h) }) {
				return as
			}
		}
		time.Sleep(100 * time.Millisecond) // polling the alerts, bounded by the deadline
	}
	t.Fatalf("alerts of rule %s from hosts %v, want %v", rule, seen, hosts)
	return nil
}

// TestAuditWitnessFork is the fork test: three servers, every one
// a witness; checkpoints cosigned by all three; one server (n3) stopped,
// its audit tree rewritten in its bbolt file, restarted. It signs a
// checkpoint of the rewritten history (its own checks pass), and:
// the other witnesses, and its own (whose state is outside Raft, on its
// disk, untouched), refuse it as a fork, so it cannot reach a quorum;
// `warden audit verify` run against it with the state saved before
// reports the fork with both checkpoints; the agent's check does too and
// ships an audit_fork event; both the witnesses' and the agent's events
// become critical alerts. The honest nodes still get their checkpoints
// cosigned.
func TestAuditWitnessFork(t *testing.T) {
	ctx := context.Background()
	nodes := make([]*clusterNode, 3)
	var routes []string
	for i := range nodes {
		nodes[i] = &clusterNode{t: t, id: fmt.Sprint("n", i+1), dir: t.TempDir(), clusterAddr: freeAddr(t), natsAddr: freeAddr(t),
			witnessInterval: -1} // no background rounds: every submission below is the test's
		routes = append(routes, nodes[i].natsAddr)
	}
	for _, n := range nodes {
		n.natsRoutes = routes
		n.start()
	}
	keys, root := initJoin(ctx, t, nodes)
	for _, n := range nodes {
		waitPlane(t, n.srv)
	}
	n1, f := nodes[0], nodes[2] // f: the node whose disk is altered
	admin := n1.client(root)

	// Every server registers its witness in the cluster configuration.
	var listed *client.AuditWitnesses
	waitFor(t, "three server witnesses", func() bool {
		l, err := admin.AuditWitnesses(ctx)
		if err != nil || len(l.Servers) != 3 {
			return false
		}
		for _, s := range l.Servers {
			if !s.Member {
				return false
			}
		}
		listed = l
		return true
	})
	var wkeys []string
	for _, s := range listed.Servers {
		wkeys = append(wkeys, s.VerifierKey)
		pub, err := os.ReadFile(filepath.Join(nodes[slices.IndexFunc(nodes, func(n *clusterNode) bool { return n.id == s.Node })].dir, "witness", "witness.pub"))
		if err != nil || strings.TrimSpace(string(pub)) != s.VerifierKey {
			t.Fatalf("%s: witness.pub %q, registered %s (%v)", s.Node, pub, s.VerifierKey, err)
		}
		if fi, err := os.Stat(filepath.Join(nodes[slices.IndexFunc(nodes, func(n *clusterNode) bool { return n.id == s.Node })].dir, "witness", "witness.key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: witness.key: %v %v", s.Node, fi, err)
		}
	}
	v, err := admin.AuditVerifierKey(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The fork rules, the policy that lets nodes verify the log, and an
	// enrolled agent.
	builtin, err := sigma.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range builtin {
		if r.ID == ruleServerFork || r.ID == ruleAgentFork {
			if _, err := admin.RulePut(ctx, r.ID, r.Source); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := admin.PolicyWrite(ctx, "warden", "nodes-verify-audit",
		`permit (principal is Node, action == Action::"audit.read", resource == AuditLog::"warden");`); err != nil {
		t.Fatal(err)
	}
	agentDir := t.TempDir()
	tok, err := admin.NodeTokenCreate(ctx, client.NodeTokenRequest{Name: "web-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Enroll(ctx, agent.Config{Client: n1.client(""), JoinToken: tok.Token, DataDir: agentDir}); err != nil {
		t.Fatal(err)
	}

	for i := range 5 {
		if _, err := admin.KVPut(ctx, "app/db", map[string]any{"v": i}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A checkpoint cosigned by all three.
	cp, err := admin.AuditCheckpointCosigned(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	vf, err := witness.VerifyCosigned(cp, v.VerifierKey, wkeys, 3)
	if err != nil {
		t.Fatalf("cosigned by all: %v\n%s", err, cp)
	}
	// The verifiers pin the keys and keep the checkpoint: the CLI
	// against f, and the agent.
	state := filepath.Join(t.TempDir(), "verify-state.json")
	out, errOut, code := runVerify(t, f, root, state)
	if code != 0 || !strings.Contains(out, "Pinned 3 witness keys") || !strings.Contains(out, "3 trusted witnesses cosigned (quorum 2)") &&
		!strings.Contains(out, "of 3 trusted witnesses cosigned (quorum 2)") {
		t.Fatalf("verify before the fork: exit %d\n%s\n%s", code, out, errOut)
	}
	saved, err := auditcheck.LoadState(state)
	if err != nil || saved == nil || len(saved.Witnesses) != 3 {
		t.Fatalf("state: %+v %v", saved, err)
	}
	acfg := agent.AuditCheckConfig{Servers: []string{f.srv.Addr()}, CACert: f.srv.CAFile(), DataDir: agentDir}
	if err := agent.CheckAudit(ctx, acfg); err != nil {
		t.Fatalf("agent check before the fork: %v", err)
	}
	verifiedSize := vf.Size

	// n3 stops; its audit tree is rewritten on its disk; the cluster goes
	// on; it restarts and is unsealed.
	f.stop()
	rewriteAuditLeaf(t, filepath.Join(f.dir, "store", "fsm.db"), 2, 3)
	for i := range 3 {
		if _, err := admin.KVPut(ctx, "app/other", map[string]any{"v": i}, nil); err != nil {
			t.Fatal(err)
		}
	}
	f.start()
	f.unseal(ctx, keys)
	waitPlane(t, f.srv)
	fc := f.client(root)

	// It signs a checkpoint of its rewritten history (its own integrity
	// checks pass)...
	var forked audit.Checkpoint
	waitFor(t, "n3 to serve a checkpoint", func() bool {
		note, err := fc.AuditCheckpoint(ctx)
		if err != nil {
			return false
		}
		forked, err = audit.Open(note, v.VerifierKey)
		return err == nil && forked.Size > verifiedSize
	})
	// ...which no witness cosigns: n3 cannot reach a quorum, and says who
	// refused and why.
	_, err = fc.AuditCheckpointCosigned(ctx, 1)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 503 {
		t.Fatalf("n3's checkpoint with one cosignature: %v, want 503", err)
	}
	msg := strings.Join(ae.Errors, " ")
	for _, id := range []string{"n1", "n2", "n3"} {
		if !strings.Contains(msg, "server "+id+": refused: ") {
			t.Fatalf("n3's refusal does not name %s's refusal: %s", id, msg)
		}
	}
	if strings.Count(msg, "not consistent with the one") != 3 {
		t.Fatalf("n3's refusal does not say three times that its checkpoint is not consistent: %s", msg)
	}

	// warden audit verify against n3 with the saved state: the fork, with
	// both checkpoints, and a non-zero exit.
	out, errOut, code = runVerify(t, f, root, state)
	if code == 0 || !strings.Contains(out, "AUDIT LOG FORK") || !strings.Contains(errOut, "the audit log forked or was rewritten") {
		t.Fatalf("verify after the fork: exit %d\n%s\n%s", code, out, errOut)
	}
	before, now, ok := strings.Cut(out, "--- checkpoint served now ---\n")
	served, err := audit.Open([]byte(now), v.VerifierKey)
	if !ok || !strings.Contains(before, "--- checkpoint verified before ---\n"+saved.Checkpoint) || err != nil || served.Size < forked.Size {
		t.Fatalf("the evidence is not both checkpoints (%v):\n%s", err, out)
	}
	if after, _ := auditcheck.LoadState(state); after.Checkpoint != saved.Checkpoint {
		t.Fatal("the state moved to the forked checkpoint")
	}

	// The agent's check: the fork, observed and shipped.
	sh, err := ship.New(ship.Config{Servers: []string{f.srv.Addr()}, CACertFile: f.srv.CAFile(),
		CertFile: filepath.Join(agentDir, agent.SVIDFile), KeyFile: filepath.Join(agentDir, agent.KeyFile), DataDir: agentDir,
		BatchInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stopShip := context.WithCancel(ctx)
	shipDone := make(chan error, 1)
	go func() { shipDone <- sh.Run(sctx) }()
	defer func() { stopShip(); <-shipDone }()
	acfg.Observe = sh.Observer().Record
	acfg.Servers = []string{f.srv.Addr()} // its API listens on a new port
	var fork *auditcheck.ForkError
	if err := agent.CheckAudit(ctx, acfg); !errors.As(err, &fork) || !bytes.Equal(fork.Verified, []byte(mustState(t, agentDir).Checkpoint)) {
		t.Fatalf("agent check after the fork: %v", err)
	}

	// The alerts: the witnesses that refused (n1, n2, and n3's own), and
	// the agent's report, each with both checkpoints.
	for _, a := range waitAlerts(ctx, t, admin, ruleServerFork, "n1", "n2", "n3") {
		if a.Level != "critical" || len(a.Events) == 0 {
			t.Fatalf("alert %s: level %s, %d events", a.ID, a.Level, len(a.Events))
		}
		for _, raw := range a.Events {
			var ev map[string]any
			if err := json.Unmarshal(raw, &ev); err != nil {
				t.Fatal(err)
			}
			sub, _ := ev["warden.witness.submitter"].(string)
			off, _ := ev["warden.checkpoint.offered"].(string)
			cos, _ := ev["warden.checkpoint.cosigned"].(string)
			oc, err1 := audit.Open([]byte(off), v.VerifierKey)
			cc, err2 := audit.Open([]byte(cos), v.VerifierKey)
			if !strings.HasPrefix(sub, "n3") || err1 != nil || err2 != nil || oc.Size <= cc.Size {
				t.Fatalf("alert %s (%v): the event lacks its evidence (submitter %q, %v, %v):\n%s", a.ID, a.Hosts, sub, err1, err2, raw)
			}
		}
	}
	ag := waitAlerts(ctx, t, admin, ruleAgentFork, "web-1")
	if ag[0].Level != "critical" || !strings.Contains(string(ag[0].Events[0]), "warden.checkpoint.served") {
		t.Fatalf("agent alert: %s", ag[0].Events)
	}

	// The honest nodes still get their checkpoints cosigned, n3's witness
	// included: it refused only the fork.
	cp, err = admin.AuditCheckpointCosigned(ctx, 3)
	if err != nil {
		t.Fatalf("honest checkpoint after the fork: %v", err)
	}
	if _, err := witness.VerifyCosigned(cp, v.VerifierKey, wkeys, 3); err != nil {
		t.Fatal(err)
	}

	// Removing n3 removes its witness from the configuration, in the
	// same transaction.
	f.stop()
	if err := admin.RaftRemovePeer(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	l, err := admin.AuditWitnesses(ctx)
	if err != nil || len(l.Servers) != 2 || slices.ContainsFunc(l.Servers, func(s client.AuditServerWitness) bool { return s.Node == "n3" }) {
		t.Fatalf("witnesses after removing n3: %+v %v", l, err)
	}
	if _, err := admin.AuditCheckpointCosigned(ctx, 2); err != nil {
		t.Fatalf("checkpoint after removing n3: %v", err)
	}
}

func mustState(t *testing.T, dir string) *auditcheck.State {
	t.Helper()
	st, err := auditcheck.LoadState(filepath.Join(dir, agent.AuditStateFile))
	if err != nil || st == nil {
		t.Fatalf("agent state: %+v %v", st, err)
	}
	return st
}
