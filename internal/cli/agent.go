package cli

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/internal/agent"
	"github.com/warden-sec/warden/pkg/client"
)

func newAgentCmd(g *globals) *cobra.Command {
	var server, caCert, token, dir string
	var once bool
	cmd := &cobra.Command{
		Use:   "agent --server ADDR --ca-cert FILE [--join-token T] --data-dir DIR [--once]",
		Short: "Enroll this node and keep its certificate fresh",
		Long: `Enroll this node (its key is made here and never leaves it) with a one-time
join token, then keep renewing the certificate over mutual TLS when 50-60% of
its lifetime has passed. If the servers are unreachable the current files are
kept and renewal is retried with backoff. --once enrolls (or renews, if already
enrolled) and exits.`,
		Args: args(cobra.NoArgs),
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "Warden server URL")
	f.StringVar(&caCert, "ca-cert", "", "CA certificate that signs the server's TLS certificate")
	f.StringVar(&token, "join-token", "", "one-time join token from `warden node token create`")
	f.StringVar(&dir, "data-dir", "", "where to write svid.pem, svid-key.pem and bundle.pem")
	f.BoolVar(&once, "once", false, "enroll or renew once, then exit")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if server == "" || dir == "" {
			return usagef("--server and --data-dir are required")
		}
		run := agent.RunConfig{Server: server, CACert: caCert, DataDir: dir}
		out := cmd.OutOrStdout()
		if _, err := os.Stat(filepath.Join(dir, agent.SVIDFile)); err == nil {
			if once {
				exp, err := agent.RenewOnce(cmd.Context(), run)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "Renewed; certificate valid until %s\n", exp.Format(time.RFC3339))
				return nil
			}
		} else {
			if token == "" {
				return usagef("--join-token is required to enroll (no %s in %s)", agent.SVIDFile, dir)
			}
			c, err := client.New(client.Config{Address: server, CACertFile: caCert})
			if err != nil {
				return err
			}
			res, err := agent.Enroll(cmd.Context(), agent.Config{Client: c, JoinToken: token, DataDir: dir})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Enrolled as %s; certificate valid until %s; files in %s\n", res.SPIFFEID, res.ExpiresAt, dir)
			if once {
				return nil
			}
		}
		logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
		run.Logger = logger
		logger.Info("keeping the certificate fresh", "data_dir", dir)
		return agent.Run(cmd.Context(), run)
	}
	return cmd
}
