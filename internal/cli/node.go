package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

func newNodeCmd(g *globals) *cobra.Command {
	token := newGroupCmd("token", "Join tokens for enrolling nodes", newNodeTokenCreateCmd(g))
	return newGroupCmd("node", "Enroll, list, show and revoke nodes", token, newNodeListCmd(g), newNodeShowCmd(g), newNodeRevokeCmd(g), newNodeInventoryCmd(g))
}

func newNodeListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List nodes: state, zone, SPIFFE ID, current certificate", Args: args(cobra.NoArgs)}
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		ns, err := c.NodeList(cmd.Context())
		if err != nil {
			return err
		}
		if *f == "json" {
			if ns == nil {
				ns = []client.Node{}
			}
			return writeJSON(cmd.OutOrStdout(), map[string]any{"nodes": ns})
		}
		rows := []row{{"NAME", "STATE\tZONE\tSPIFFE ID\tSERIAL\tEXPIRES\tUPDATED"}}
		for _, n := range ns {
			rows = append(rows, row{cell(n.Name), strings.Join([]string{cell(n.State), dash(n.Zone), cell(n.SPIFFEID),
				dash(n.Serial), dash(n.NotAfter), cell(n.UpdatedTime)}, "\t")})
		}
		return writeTableRaw(cmd.OutOrStdout(), rows)
	})
	return cmd
}

// dash renders an empty value as "-" in a table cell.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return cell(s)
}

func newNodeShowCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "show NAME", Short: "Show a node", Args: args(cobra.ExactArgs(1))}
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		n, err := c.NodeRead(cmd.Context(), a[0])
		if err != nil {
			return err
		}
		rows := []row{{"Name", n.Name}, {"State", n.State}, {"Zone", n.Zone}, {"SPIFFE ID", n.SPIFFEID},
			{"Certificate TTL", n.CertTTL}, {"Serial", n.Serial}, {"Expires At", n.NotAfter}}
		if n.TokenExpires != "" {
			rows = append(rows, row{"Join Token Expires", n.TokenExpires})
		}
		rows = append(rows, row{"Addresses", dash(strings.Join(n.Addresses, ", "))})
		rows = append(rows, row{"Created", n.CreatedTime}, row{"Updated", n.UpdatedTime})
		return output(cmd.OutOrStdout(), f, n, rows)
	})
	return cmd
}

func newCertCmd(g *globals) *cobra.Command {
	var state, within string
	list := &cobra.Command{Use: "list [--state issued|expiring|revoked] [--within 24h]",
		Short: "List issued certificates (all, expiring soon, or revoked)", Args: args(cobra.NoArgs)}
	f := addFormat(list)
	list.Flags().StringVar(&state, "state", "", "issued (all, the default), expiring or revoked")
	list.Flags().StringVar(&within, "within", "", "with --state expiring: the window (Go duration, default 24h)")
	list.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		if within != "" && state != "expiring" {
			return usagef("--within goes with --state expiring")
		}
		cs, err := c.CertList(cmd.Context(), state, within)
		if err != nil {
			return err
		}
		if *f == "json" {
			if cs == nil {
				cs = []client.Certificate{}
			}
			return writeJSON(cmd.OutOrStdout(), map[string]any{"certificates": cs})
		}
		rows := []row{{"SERIAL", "NAME\tSTATE\tNOT BEFORE\tNOT AFTER\tREVOKED AT"}}
		for _, ct := range cs {
			rows = append(rows, row{cell(ct.Serial), strings.Join([]string{cell(ct.Name), cell(ct.State), cell(ct.NotBefore),
				cell(ct.NotAfter), dash(ct.RevokedAt)}, "\t")})
		}
		return writeTableRaw(cmd.OutOrStdout(), rows)
	})
	return newGroupCmd("cert", "Certificates issued to nodes", list)
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
