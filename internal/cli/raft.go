package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/internal/fsutil"
	"github.com/warden-sec/warden/pkg/client"
)

func newRaftCmd(g *globals) *cobra.Command {
	snap := newGroupCmd("snapshot", "Save and restore snapshots of the cluster's state",
		newSnapshotSaveCmd(g), newSnapshotRestoreCmd(g))
	return newGroupCmd("raft", "Manage the cluster's Raft membership and snapshots",
		newRaftJoinCmd(g), newListPeersCmd(g), newRemovePeerCmd(g), snap)
}

func newRaftJoinCmd(g *globals) *cobra.Command {
	var caFile string
	cmd := &cobra.Command{
		Use:   "join [--leader-ca-cert FILE] LEADER_API_ADDR",
		Short: "Join the server at WARDEN_ADDR (a new node) to the cluster at LEADER_API_ADDR",
		Long: `Join the server at WARDEN_ADDR, a new node started with --node-id and
--cluster-listen and never initialized, to the cluster whose API is at
LEADER_API_ADDR (any member will do). The cluster authenticates and authorizes
the request with your token (action raft.join), certifies the new node and adds
it; unseal the new node afterwards with the cluster's unseal keys.`,
		Args: args(cobra.ExactArgs(1)),
	}
	cmd.Flags().StringVar(&caFile, "leader-ca-cert", "", "PEM CA certificate of the leader's API (default: the system's roots)")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		var ca []byte
		if caFile != "" {
			var err error
			if ca, err = os.ReadFile(caFile); err != nil {
				return fmt.Errorf("--leader-ca-cert: %w", err)
			}
		}
		if err := c.RaftJoin(cmd.Context(), a[0], ca); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Joined the cluster at %s. Unseal this node with the cluster's unseal keys.\n", a[0])
		return nil
	})
	return cmd
}

func newListPeersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "list-peers", Short: "List the cluster's members", Args: args(cobra.NoArgs)}
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		ps, err := c.RaftPeers(cmd.Context())
		if err != nil {
			return err
		}
		if ps == nil {
			ps = []client.Peer{}
		}
		if *f == "json" {
			return writeJSON(cmd.OutOrStdout(), map[string][]client.Peer{"peers": ps})
		}
		rows := []row{{"Node\tAddress\tState", "Voter"}}
		for _, p := range ps {
			state := "follower"
			if p.Leader {
				state = "leader"
			}
			rows = append(rows, row{p.ID + "\t" + p.Address + "\t" + state, fmt.Sprint(p.Voter)})
		}
		return writeTableRaw(cmd.OutOrStdout(), rows)
	})
	return cmd
}

func newRemovePeerCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "remove-peer ID", Short: "Remove a member from the cluster", Args: args(cobra.ExactArgs(1)),
		RunE: g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
			if err := c.RaftRemovePeer(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed peer %q.\n", a[0])
			return nil
		}),
	}
}

func newSnapshotSaveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "save FILE", Short: "Save a snapshot of the cluster's state (ciphertext) to FILE", Args: args(cobra.ExactArgs(1)),
		RunE: g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
			// Written beside FILE first (CreateTemp makes it 0600), then
			// renamed: a failed save never leaves a partial snapshot under
			// FILE's name.
			tmp, err := os.CreateTemp(filepath.Dir(a[0]), ".warden-snapshot-*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			n, err := c.RaftSnapshotSave(cmd.Context(), tmp)
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := fsutil.Rename(tmp.Name(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Saved a snapshot of %d bytes to %s.\n", n, a[0])
			return nil
		}),
	}
}

func newSnapshotRestoreCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "restore FILE",
		Short: "Restore the cluster's state from a snapshot (run against the leader)",
		Long: `Replace the whole cluster's state with the snapshot in FILE, which must be of
this cluster. Every node rolls back to it, the audit log included; the restore
itself is recorded in the restored log. Run it against the leader.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
			f, err := os.Open(a[0])
			if err != nil {
				return err
			}
			defer f.Close()
			idx, err := c.RaftSnapshotRestore(cmd.Context(), f)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Restored the snapshot in %s (now at Raft index %d).\n", a[0], idx)
			return nil
		}),
	}
}
