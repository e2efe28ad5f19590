package cli

import (
	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

// newDecisionApproveCmd is "warden decision approve ID", registered on the
// decision command (newDecisionCmd's extra subcommands).
func newDecisionApproveCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "approve ID",
		Short: "Approve a decision a playbook left pending (not as the playbook's owner)",
		Long: `Approve a decision that a playbook action marked "approval: required" left
pending: it takes effect now, for its whole duration. The playbook's owner cannot
approve its own playbook's decisions; another principal must.`,
		Args: args(cobra.ExactArgs(1)),
	}
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		d, err := c.DecisionApprove(cmd.Context(), a[0])
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, d, []row{{"ID", d.ID}, {"Type", d.Type}, {"Approved By", d.ApprovedBy},
			{"Expires At", d.ExpiresAt}, {"Origin", d.Origin}, {"Created By", d.CreatedBy}})
	})
	return cmd
}
