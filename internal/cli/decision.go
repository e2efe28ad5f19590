package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

// newDecisionCmd is "warden decision". extra adds subcommands defined in
// other files (decision approve): register them where the root command is
// built, newDecisionCmd(g, newDecisionApproveCmd).
func newDecisionCmd(g *globals, extra ...func(*globals) *cobra.Command) *cobra.Command {
	add := newGroupCmd("add", "Ban an address, a range or a user, or quarantine a node",
		newDecisionBanCmd(g), newDecisionQuarantineCmd(g))
	allow := newGroupCmd("allow", "The never-block list: ranges and nodes no decision may block",
		newAllowAddCmd(g), newAllowListCmd(g), newAllowDeleteCmd(g))
	subs := []*cobra.Command{add, newDecisionListCmd(g), newDecisionShowCmd(g), newDecisionDeleteCmd(g), allow}
	for _, f := range extra {
		subs = append(subs, f(g))
	}
	return newGroupCmd("decision", "Decisions: bans and quarantines enforced by agents and services", subs...)
}

// decisionFlags are the flags every "decision add" takes.
func decisionFlags(cmd *cobra.Command, in *client.DecisionInput) {
	fl := cmd.Flags()
	fl.StringVar(&in.Duration, "duration", "", "how long it lasts (Go duration, e.g. 4h; repeat offenders' bans last longer)")
	fl.StringVar(&in.Reason, "reason", "", "why (shown with the decision)")
	fl.StringVar(&in.Zone, "zone", "", "apply only on the nodes of this zone (default: everywhere)")
	fl.BoolVar(&in.Simulated, "simulate", false, "store and stream the decision without enforcing it (to tune rules)")
}

func runDecisionAdd(g *globals, f *format, in *client.DecisionInput) func(*cobra.Command, []string) error {
	return g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		if in.Duration == "" {
			return usagef("--duration is required")
		}
		d, err := c.DecisionAdd(cmd.Context(), *in)
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, d, decisionRows(d))
	})
}

func newDecisionBanCmd(g *globals) *cobra.Command {
	in := &client.DecisionInput{Type: "ban"}
	cmd := &cobra.Command{
		Use:   "ban --ip IP|--cidr CIDR|--user NAME --duration 4h --reason R [--zone Z] [--simulate]",
		Short: "Ban an address, a range or a user",
		Long: `Ban an address (--ip), a range (--cidr; at most /16 for IPv4 and /48 for IPv6
unless the servers say otherwise) or a user (--user) for --duration. A value banned
before within the escalation window is banned longer. Banning a server's address
or anything on the never-block list is refused, naming the entry it hits.`,
		Args: args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	fl := cmd.Flags()
	fl.StringVar(&in.Target.IP, "ip", "", "the address to ban")
	fl.StringVar(&in.Target.CIDR, "cidr", "", "the range to ban")
	fl.StringVar(&in.Target.User, "user", "", "the user to ban (their requests are refused)")
	decisionFlags(cmd, in)
	run := runDecisionAdd(g, f, in)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		n := 0
		for _, v := range []string{in.Target.IP, in.Target.CIDR, in.Target.User} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			return usagef("give exactly one of --ip, --cidr, --user")
		}
		return run(cmd, a)
	}
	return cmd
}

func newDecisionQuarantineCmd(g *globals) *cobra.Command {
	in := &client.DecisionInput{Type: "quarantine"}
	cmd := &cobra.Command{
		Use:   "quarantine --node NAME --duration 4h --reason R [--zone Z] [--simulate]",
		Short: "Quarantine a node",
		Long: `Quarantine a node for --duration: its certificate is not renewed, the servers
refuse its requests except its events and its decision stream (so it stays
watched), services refuse it, and other agents drop traffic from the addresses it
reported.`,
		Args: args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&in.Target.Node, "node", "", "the node to quarantine")
	decisionFlags(cmd, in)
	run := runDecisionAdd(g, f, in)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if in.Target.Node == "" {
			return usagef("--node is required")
		}
		return run(cmd, a)
	}
	return cmd
}

// decisionTarget renders a decision's target.
func decisionTarget(t client.DecisionTarget) string {
	switch {
	case t.IP != "":
		return "ip " + t.IP
	case t.CIDR != "":
		return "cidr " + t.CIDR
	case t.Node != "":
		return "node " + t.Node
	}
	return "user " + t.User
}

func decisionRows(d client.DecisionRecord) []row {
	rows := []row{{"ID", d.ID}, {"Type", d.Type}, {"Target", decisionTarget(d.Target)}, {"Zone", dash(d.Zone)},
		{"Reason", dash(d.Reason)}, {"Origin", d.Origin}, {"Duration", d.Duration}, {"Escalation", d.Escalation},
		{"Expires At", d.ExpiresAt}, {"Simulated", d.Simulated}}
	if len(d.Addresses) > 0 {
		rows = append(rows, row{"Addresses", strings.Join(d.Addresses, ", ")})
	}
	if d.PendingApproval {
		rows = append(rows, row{"Pending Approval", true})
	}
	if d.ApprovedBy != "" {
		rows = append(rows, row{"Approved By", d.ApprovedBy})
	}
	if d.AlertID != "" {
		rows = append(rows, row{"Alert", d.AlertID})
	}
	return append(rows, row{"Created By", d.CreatedBy}, row{"Created Time", d.CreatedTime}, row{"Revision", d.Revision})
}

func newDecisionListCmd(g *globals) *cobra.Command {
	var active bool
	cmd := &cobra.Command{Use: "list [--active]", Short: "List decisions, newest first", Args: args(cobra.NoArgs)}
	f := addFormat(cmd)
	cmd.Flags().BoolVar(&active, "active", false, "only the decisions in force (not expired, not pending approval)")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		ds, err := c.DecisionList(cmd.Context(), active)
		if err != nil {
			return err
		}
		if *f == "json" {
			if ds == nil {
				ds = []client.DecisionRecord{}
			}
			return writeJSON(cmd.OutOrStdout(), map[string]any{"decisions": ds})
		}
		rows := []row{{"ID", "TYPE\tTARGET\tZONE\tEXPIRES\tSIMULATED\tREASON"}}
		for _, d := range ds {
			rows = append(rows, row{cell(d.ID), strings.Join([]string{cell(d.Type), cell(decisionTarget(d.Target)), dash(d.Zone),
				cell(d.ExpiresAt), fmt.Sprint(d.Simulated), dash(d.Reason)}, "\t")})
		}
		return writeTableRaw(cmd.OutOrStdout(), rows)
	})
	return cmd
}

func newDecisionShowCmd(g *globals) *cobra.Command {
	return newReadCmd(g, "show ID", "Show a decision", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, a []string) (client.DecisionRecord, error) {
			return c.DecisionGet(ctx, a[0])
		},
		func(w io.Writer, d client.DecisionRecord) error { return writeTable(w, decisionRows(d)) })
}

func newDecisionDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "delete ID", Short: "Lift a decision everywhere", Args: args(cobra.ExactArgs(1)),
		RunE: g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
			if err := c.DecisionDelete(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! Decision %s is lifted.\n", a[0])
			return nil
		})}
}

func allowRows(e client.AllowEntry) []row {
	what := e.CIDR
	if e.Node != "" {
		what = "node " + e.Node
	}
	return []row{{"ID", e.ID}, {"Entry", what}, {"Reason", dash(e.Reason)}, {"Created By", e.CreatedBy},
		{"Created Time", e.CreatedTime}, {"Revision", e.Revision}}
}

func newAllowAddCmd(g *globals) *cobra.Command {
	var in client.AllowInput
	cmd := &cobra.Command{
		Use:   "add CIDR|--node NAME [--reason R]",
		Short: "Add a range (or an address) or a node to the never-block list",
		Long: `Add a range (or a single address, kept as /32 or /128) or a node to the
never-block list: a decision that would block it is refused with a message naming
the entry, and agents refuse to apply one.`,
		Args: args(cobra.MaximumNArgs(1)),
	}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&in.Node, "node", "", "a node whose reported addresses are never blocked, and which is never quarantined")
	cmd.Flags().StringVar(&in.Reason, "reason", "", "why (shown in refusals)")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		if len(a) == 1 {
			in.CIDR = a[0]
		}
		if (in.CIDR == "") == (in.Node == "") {
			return usagef("give a CIDR or --node NAME, exactly one")
		}
		e, err := c.AllowAdd(cmd.Context(), in)
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, e, allowRows(e))
	})
	return cmd
}

func newAllowListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List the never-block list", Args: args(cobra.NoArgs)}
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		es, err := c.AllowList(cmd.Context())
		if err != nil {
			return err
		}
		if *f == "json" {
			if es == nil {
				es = []client.AllowEntry{}
			}
			return writeJSON(cmd.OutOrStdout(), map[string]any{"entries": es})
		}
		rows := []row{{"ID", "CIDR\tNODE\tREASON\tCREATED BY"}}
		for _, e := range es {
			rows = append(rows, row{cell(e.ID), strings.Join([]string{dash(e.CIDR), dash(e.Node), dash(e.Reason), cell(e.CreatedBy)}, "\t")})
		}
		return writeTableRaw(cmd.OutOrStdout(), rows)
	})
	return cmd
}

func newAllowDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "delete ID", Short: "Remove an entry from the never-block list", Args: args(cobra.ExactArgs(1)),
		RunE: g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
			if err := c.AllowDelete(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! Never-block entry %s is removed.\n", a[0])
			return nil
		})}
}
