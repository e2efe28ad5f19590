package raftnet_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/warden-sec/warden/internal/raftnet"
	"github.com/warden-sec/warden/internal/store"
)

// status asks the node at addr for its indexes from probe's identity, as
// node (the Node field, which the receiver compares with the certificate).
func status(ctx context.Context, probe *raftnet.NetTransport, addr raft.ServerAddress, node string) error {
	resp, err := probe.Forward(ctx, addr, &store.PeerRequest{Op: store.PeerStatus, Node: node})
	if err != nil {
		return err
	}
	if resp.Err != "" {
		return fmt.Errorf("%s: %s", resp.Err, resp.Msg)
	}
	return nil
}

// heartbeat sends a stale AppendEntries (term 0: refused by Raft, but
// answered) over the probe's pooled Raft connection to addr.
func heartbeat(probe *raftnet.NetTransport, id raft.ServerID, addr raft.ServerAddress) error {
	var resp raft.AppendEntriesResponse
	return probe.AppendEntries(id, addr, &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("probe"), Addr: []byte("probe")}}, &resp)
}

// TestClusterPortChecksMembershipPerRequest: the cluster port asks on every
// request whether the sender, named by its certificate, is a member of the
// current configuration: a stranger with a valid certificate of the
// cluster's CA is refused; a member is served, and refused on the same,
// already open connections once it is removed; a non-voter may not change
// the membership; a request claiming another node than its certificate's
// is refused.
func TestClusterPortChecksMembershipPerRequest(t *testing.T) {
	c, ca := newCluster(t, 3)
	ctx := context.Background()
	lead := c.leader(t, nil)
	leadID := raft.ServerID(lead.NodeID())
	leadAddr := raft.ServerAddress(lead.ClusterAddr())

	// A stranger: a certificate of the cluster's CA for node n49, which is
	// not in the configuration.
	stranger := ca.transport(t, 50)
	defer stranger.Close()
	if err := status(ctx, stranger, leadAddr, ""); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("a stranger's status request: %v", err)
	}
	if err := heartbeat(stranger, leadID, leadAddr); err == nil {
		t.Fatal("a stranger's Raft request was answered")
	}
	cmd := rec(store.Txn{Ops: []store.Op{put("forged", "x")}})
	forged := func(probe *raftnet.NetTransport, node string) *store.PeerResponse {
		t.Helper()
		resp, err := probe.Forward(ctx, leadAddr, &store.PeerRequest{Op: store.PeerApply, Cmd: store.EncodeTxn(cmd), Node: node, Principal: "root"})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := forged(stranger, ""); r.Err != "refused" {
		t.Fatalf("a stranger's forwarded write: %+v", r)
	}

	// A follower's identity: served, then refused on the same connections
	// once removed.
	var fol *store.Store
	for _, s := range c.nodes {
		if s != lead {
			fol = s
			break
		}
	}
	var serial int64
	fmt.Sscanf(fol.NodeID(), "n%d", &serial)
	probe := ca.transport(t, serial+1) // the follower's identity
	defer probe.Close()
	if err := status(ctx, probe, leadAddr, fol.NodeID()); err != nil {
		t.Fatalf("a member's status request: %v", err)
	}
	if err := heartbeat(probe, leadID, leadAddr); err != nil {
		t.Fatalf("a member's Raft request: %v", err)
	}
	// Forwarding in another node's name is refused, in its own allowed.
	other := "n1"
	if fol.NodeID() == other {
		other = "n2"
	}
	if r := forged(probe, other); r.Err != "refused" {
		t.Fatalf("a write forwarded as another node: %+v", r)
	}
	if r := forged(probe, fol.NodeID()); r.Err != "" {
		t.Fatalf("a member's forwarded write: %+v", r)
	}
	if _, err := lead.GetStale("forged"); err != nil {
		t.Fatalf("the member's write: %v", err)
	}

	before := lead.ConfigurationIndex()
	if err := lead.RemovePeer(ctx, fol.NodeID()); err != nil {
		t.Fatal(err)
	}
	after := lead.ConfigurationIndex()
	if before == 0 || after <= before {
		t.Fatalf("configuration index %d before the removal, %d after", before, after)
	}
	if _, err := lead.Txn(ctx, rec(store.Txn{Ops: []store.Op{put("k", "v")}})); err != nil || lead.ConfigurationIndex() != after {
		t.Fatalf("a write moved the configuration index: %d, %v", lead.ConfigurationIndex(), err)
	}
	if err := status(ctx, probe, leadAddr, fol.NodeID()); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("a removed member's status request: %v", err)
	}
	if err := heartbeat(probe, leadID, leadAddr); err == nil {
		t.Fatal("a removed member's Raft request on its open connection was answered")
	}
	if r := forged(probe, fol.NodeID()); r.Err != "refused" {
		t.Fatalf("a removed member's forwarded write: %+v", r)
	}

	// A non-voter is a member (served) but may not change the membership.
	if err := lead.AddNonvoter(ctx, "n49", string(stranger.LocalAddr())); err != nil {
		t.Fatal(err)
	}
	if err := status(ctx, stranger, leadAddr, "n49"); err != nil {
		t.Fatalf("a non-voter's status request: %v", err)
	}
	for _, req := range []*store.PeerRequest{
		{Op: store.PeerAddVoter, ID: "n49", Addr: string(stranger.LocalAddr())},
		{Op: store.PeerRemove, ID: string(leadID)},
		{Op: store.PeerAddNonvoter, ID: "n50", Addr: "127.0.0.1:1"},
	} {
		resp, err := stranger.Forward(ctx, leadAddr, req)
		if err != nil || resp.Err != "refused" {
			t.Fatalf("a non-voter's %s: %+v %v", req.Op, resp, err)
		}
	}
	ps, err := lead.Peers()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.ID == "n49" && p.Voter {
			t.Fatal("the non-voter promoted itself")
		}
	}
}
