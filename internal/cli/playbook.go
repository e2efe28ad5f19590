package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

func newPlaybookCmd(g *globals) *cobra.Command {
	return newGroupCmd("playbook", "Manage playbooks: automated response to alerts",
		newPlaybookPutCmd(g), newPlaybookListCmd(g), newPlaybookShowCmd(g), newPlaybookDeleteCmd(g))
}

func playbookRows(p client.Playbook) []row {
	return []row{{"Name", p.Name}, {"Description", dash(p.Description)}, {"Mode", p.Mode}, {"Enabled", p.Enabled},
		{"Owner", p.Owner}, {"Version", p.Version}, {"Created Time", p.CreatedTime}, {"Updated Time", p.UpdatedTime}}
}

func newPlaybookPutCmd(g *globals) *cobra.Command {
	var builtin bool
	cmd := &cobra.Command{
		Use:   "put FILE|--builtin",
		Short: "Store a playbook (you become its owner)",
		Long: `Store the playbook of FILE (YAML; "-" reads standard input) as the next version of
the playbook it names, or with --builtin Warden's built-in one (SSH brute force: ban
the source for an hour and open an incident). The caller becomes its owner: the
playbook acts on the owner's authority, and the decisions it leaves pending
approval need another principal's "warden decision approve".`,
		Args: args(cobra.MaximumNArgs(1)),
	}
	f := addFormat(cmd)
	cmd.Flags().BoolVar(&builtin, "builtin", false, "put Warden's built-in playbook")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		var p client.Playbook
		var err error
		switch {
		case builtin && len(a) > 0:
			return usagef("give FILE or --builtin, not both")
		case builtin:
			p, err = c.PlaybookPutBuiltin(cmd.Context())
		case len(a) == 0:
			return usagef("give a playbook file, or --builtin")
		default:
			src, rerr := g.readDoc(a[0])
			if rerr != nil {
				return rerr
			}
			p, err = c.PlaybookPut(cmd.Context(), src)
			if err != nil {
				return fmt.Errorf("%s: %w", a[0], err)
			}
		}
		if err != nil {
			return err
		}
		if *f == "json" {
			return writeJSON(cmd.OutOrStdout(), p)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "put playbook %s (version %d, mode %s, owner %s)\n", p.Name, p.Version, p.Mode, p.Owner)
		return nil
	})
	return cmd
}

func newPlaybookListCmd(g *globals) *cobra.Command {
	type list struct {
		Playbooks []client.Playbook `json:"playbooks"`
	}
	return newReadCmd(g, "list", "List the stored playbooks", cobra.NoArgs,
		func(ctx context.Context, c *client.Client, _ []string) (list, error) {
			ps, err := c.PlaybookList(ctx)
			if ps == nil {
				ps = []client.Playbook{}
			}
			return list{ps}, err
		},
		func(w io.Writer, l list) error {
			rows := []row{{"NAME", "MODE\tENABLED\tVERSION\tOWNER\tDESCRIPTION"}}
			for _, p := range l.Playbooks {
				rows = append(rows, row{p.Name, fmt.Sprintf("%s\t%t\t%d\t%s\t%s", p.Mode, p.Enabled, p.Version, cell(p.Owner), cell(p.Description))})
			}
			return writeTableRaw(w, rows)
		})
}

func newPlaybookShowCmd(g *globals) *cobra.Command {
	return newReadCmd(g, "show NAME", "Show a stored playbook and its YAML", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, a []string) (client.Playbook, error) {
			return c.PlaybookGet(ctx, a[0])
		},
		func(w io.Writer, p client.Playbook) error { return writeTableYAML(w, playbookRows(p), p.YAML) })
}

func newPlaybookDeleteCmd(g *globals) *cobra.Command {
	return newDeleteCmd(g, "delete NAME", "Delete a stored playbook", "playbook", (*client.Client).PlaybookDelete)
}
