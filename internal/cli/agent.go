package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/internal/agent"
	"github.com/warden-sec/warden/pkg/client"
)

func newAgentCmd(g *globals) *cobra.Command {
	var server, caCert, token, dir string
	var once bool
	cmd := &cobra.Command{
		Use:   "agent --server ADDR --ca-cert FILE --join-token T --data-dir DIR --once",
		Short: "Enroll this node: make a key locally, exchange a join token and a CSR for a certificate",
		Args:  args(cobra.NoArgs),
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "Warden server URL")
	f.StringVar(&caCert, "ca-cert", "", "CA certificate that signs the server's TLS certificate")
	f.StringVar(&token, "join-token", "", "one-time join token from `warden node token create`")
	f.StringVar(&dir, "data-dir", "", "where to write svid.pem, svid-key.pem and bundle.pem")
	f.BoolVar(&once, "once", false, "enroll and exit")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if server == "" || dir == "" {
			return usagef("--server and --data-dir are required")
		}
		if !once {
			return usagef("this release enrolls only: pass --once (renewal over mutual TLS comes next)")
		}
		c, err := client.New(client.Config{Address: server, CACertFile: caCert})
		if err != nil {
			return err
		}
		res, err := agent.Enroll(cmd.Context(), agent.Config{Client: c, JoinToken: token, DataDir: dir})
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Enrolled as %s; certificate valid until %s; files in %s\n", res.SPIFFEID, res.ExpiresAt, dir)
		return nil
	}
	return cmd
}
