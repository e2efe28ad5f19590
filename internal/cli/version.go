package cli

import (
	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/internal/version"
)

func newVersionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of this warden binary",
		Args:  args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		v := version.Get()
		return output(cmd.OutOrStdout(), f, v, []row{{"Version", v.Version}, {"Revision", v.Revision}, {"Modified", v.Modified}, {"Go Version", v.GoVersion}})
	}
	return cmd
}
