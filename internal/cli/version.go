package cli

import (
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// versionInfo describes this build of the warden binary.
type versionInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	GoVersion string `json:"go_version"`
}

// buildVersion reads the version from the binary's build information (the
// module version for "go install", "(devel)" for local builds).
func buildVersion() versionInfo {
	v := versionInfo{Version: "(devel)", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v.Revision = s.Value
		}
	}
	return v
}

func newVersionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of this warden binary",
		Args:  args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		v := buildVersion()
		return output(cmd.OutOrStdout(), f, v, []row{{"Version", v.Version}, {"Revision", v.Revision}, {"Go Version", v.GoVersion}})
	}
	return cmd
}
