package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

func newNodeCmd(g *globals) *cobra.Command {
	token := newGroupCmd("token", "Join tokens for enrolling nodes", newNodeTokenCreateCmd(g))
	return newGroupCmd("node", "Enroll and revoke nodes", token, newNodeRevokeCmd(g))
}

func newNodeTokenCreateCmd(g *globals) *cobra.Command {
	var req client.NodeTokenRequest
	cmd := &cobra.Command{
		Use:   "create --name NAME [--zone Z] [--ttl 15m] [--cert-ttl 1h]",
		Short: "Create a pending node and its one-time join token",
		Args:  args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	fl := cmd.Flags()
	fl.StringVar(&req.Name, "name", "", "the node's name (canonical: a-z, 0-9, '-', '.')")
	fl.StringVar(&req.Zone, "zone", "", "the node's zone")
	fl.StringVar(&req.TTL, "ttl", "", "how long the join token is valid (default 15m)")
	fl.StringVar(&req.CertTTL, "cert-ttl", "", "lifetime of the node's certificates (default 1h)")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		if req.Name == "" {
			return usagef("--name is required")
		}
		t, err := c.NodeTokenCreate(cmd.Context(), req)
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, t, []row{{"Token", t.Token}, {"Expires At", t.ExpiresAt}})
	})
	return cmd
}

func newNodeRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "revoke NAME", Short: "Revoke a node and every certificate issued to it", Args: args(cobra.ExactArgs(1)),
		RunE: g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
			if err := c.NodeRevoke(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked node %q.\n", a[0])
			return nil
		}),
	}
}
