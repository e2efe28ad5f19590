package cli

import (
	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

func newStatusCmd(g *globals) *cobra.Command {
	cmd := newShowCmd(g, "status", "Show whether the server is initialized and sealed",
		func(cmd *cobra.Command, c *client.Client) (any, []row, error) {
			st, err := c.SealStatus(cmd.Context())
			return st, sealRows(st), err
		})
	cmd.Long = "Show the server's seal status. Exits 0 whether the server is sealed or not."
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
