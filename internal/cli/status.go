package cli

import (
	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

func newStatusCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether the server is initialized and sealed",
		Long:  "Show the server's seal status. Exits 0 whether the server is sealed or not.",
		Args:  args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		st, err := c.SealStatus(cmd.Context())
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, st, sealRows(st))
	}
	return cmd
}

func sealRows(st client.SealStatus) []row {
	return []row{
		{"Seal Type", st.Type},
		{"Initialized", st.Initialized},
		{"Sealed", st.Sealed},
		{"Total Shares", st.Shares},
		{"Threshold", st.Threshold},
		{"Unseal Progress", st.Progress},
		{"Version", st.Version},
		{"Cluster ID", st.ClusterID},
	}
}
