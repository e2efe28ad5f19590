package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

func newZoneCmd(g *globals) *cobra.Command {
	var level int
	create := &cobra.Command{Use: "create NAME --level 1..4", Short: "Create an IEC 62443 zone", Args: args(cobra.ExactArgs(1))}
	cf := addFormat(create)
	create.Flags().IntVar(&level, "level", 0, "security level, 1 to 4")
	create.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		if level < 1 || level > 4 {
			return usagef("--level: must be 1 to 4")
		}
		z, err := c.ZoneCreate(cmd.Context(), a[0], level)
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), cf, z, []row{{"Zone", z.Name}, {"Level", z.Level}})
	})
	list := &cobra.Command{Use: "list", Short: "List zones", Args: args(cobra.NoArgs)}
	lf := addFormat(list)
	list.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		zs, err := c.ZoneList(cmd.Context())
		if err != nil {
			return err
		}
		if *lf == "json" {
			if zs == nil {
				zs = []client.Zone{}
			}
			return writeJSON(cmd.OutOrStdout(), map[string]any{"zones": zs})
		}
		for _, z := range zs {
			fmt.Fprintf(cmd.OutOrStdout(), "%s\tlevel %d\n", z.Name, z.Level)
		}
		return nil
	})
	return newGroupCmd("zone", "IEC 62443 zones", create, list)
}

func newConduitCmd(g *globals) *cobra.Command {
	var cd client.Conduit
	create := &cobra.Command{Use: "create --from ZONE --to ZONE --port P [--protocol tcp]", Short: "Allow traffic from one zone to another on a port", Args: args(cobra.NoArgs)}
	cf := addFormat(create)
	create.Flags().StringVar(&cd.From, "from", "", "source zone")
	create.Flags().StringVar(&cd.To, "to", "", "destination zone")
	create.Flags().IntVar(&cd.Port, "port", 0, "destination port")
	create.Flags().StringVar(&cd.Protocol, "protocol", "tcp", "tcp or udp")
	create.Flags().BoolVar(&cd.MTLS, "mtls", false, "the flow must be mutually authenticated with node certificates (pkg/middleware); counted by compliance (SR 3.1, SR 4.1)")
	create.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		if cd.From == "" || cd.To == "" || cd.Port == 0 {
			return usagef("--from, --to and --port are required")
		}
		out, err := c.ConduitCreate(cmd.Context(), cd)
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), cf, out, []row{{"Conduit", fmt.Sprintf("%s -> %s %s/%d", out.From, out.To, out.Protocol, out.Port)}, {"Mutual TLS", out.MTLS}, {"Policy", out.Policy}})
	})
	var req client.ConduitCheckRequest
	check := &cobra.Command{Use: "check --from-node A --to-node B --port P [--protocol tcp]", Short: "May node A connect to node B on a port? (exit 0 for allow and deny)", Args: args(cobra.NoArgs)}
	kf := addFormat(check)
	check.Flags().StringVar(&req.FromNode, "from-node", "", "source node")
	check.Flags().StringVar(&req.ToNode, "to-node", "", "destination node")
	check.Flags().IntVar(&req.Port, "port", 0, "destination port")
	check.Flags().StringVar(&req.Protocol, "protocol", "tcp", "tcp or udp")
	check.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		if req.FromNode == "" || req.ToNode == "" || req.Port == 0 {
			return usagef("--from-node, --to-node and --port are required")
		}
		d, err := c.ConduitCheck(cmd.Context(), req)
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), kf, d, []row{{"Decision", d.Decision}, {"From Zone", d.FromZone}, {"To Zone", d.ToZone},
			{"Reasons", strings.Join(d.Reasons, ", ")}})
	})
	list := &cobra.Command{Use: "list", Short: "List conduits", Args: args(cobra.NoArgs)}
	lf := addFormat(list)
	list.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		cs, err := c.ConduitList(cmd.Context())
		if err != nil {
			return err
		}
		if *lf == "json" {
			if cs == nil {
				cs = []client.Conduit{}
			}
			return writeJSON(cmd.OutOrStdout(), map[string]any{"conduits": cs})
		}
		for _, cd := range cs {
			mtls := ""
			if cd.MTLS {
				mtls = "\tmtls"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s -> %s\t%s/%d%s\n", cd.From, cd.To, cd.Protocol, cd.Port, mtls)
		}
		return nil
	})
	return newGroupCmd("conduit", "Conduits: allowed flows between zones", create, list, check)
}
