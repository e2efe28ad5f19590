package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

func newAuditWitnessCmd(g *globals) *cobra.Command {
	return newGroupCmd("witness", "List the audit log's witnesses; add and remove external ones",
		newAuditWitnessAddCmd(g), newAuditWitnessListCmd(g), newAuditWitnessRemoveCmd(g))
}

// maxCAFileBytes bounds --ca-cert of an external witness.
const maxCAFileBytes = 64 << 10

func newAuditWitnessAddCmd(g *globals) *cobra.Command {
	var url, vkey, caFile string
	cmd := &cobra.Command{
		Use:   "add NAME --url URL --key VKEY [--witness-ca-cert FILE]",
		Short: "Add an external witness the servers submit their checkpoints to",
		Long: `Add an external witness: a server of the C2SP tlog-witness protocol (for example
` + "`warden witness`" + ` run elsewhere) that the serving node submits each checkpoint to,
with a consistency proof, over HTTPS. URL is its submission prefix
(URL/add-checkpoint is called); VKEY its note verifier key, which checks its
cosignatures. The witness must be configured with this cluster's log: its origin
and verifier key are what GET /v1/audit/verifier returns.
--witness-ca-cert names a PEM CA its certificate chains to, instead of the
system roots. Action audit.witness.write. See docs/governance.md, "Witnesses".`,
		Args: args(cobra.ExactArgs(1)),
	}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&url, "url", "", "the witness's https submission prefix (required)")
	cmd.Flags().StringVar(&vkey, "key", "", "the witness's note verifier key (required)")
	cmd.Flags().StringVar(&caFile, "witness-ca-cert", "", "PEM file of the CA the witness's certificate chains to")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if url == "" || vkey == "" {
			return usagef("--url and --key are required")
		}
		var ca []byte
		if caFile != "" {
			b, err := readFileLimitedTo(caFile, maxCAFileBytes)
			if err != nil {
				return err
			}
			if len(b) > maxCAFileBytes {
				return fmt.Errorf("%s: more than %d bytes", caFile, maxCAFileBytes)
			}
			ca = b
		}
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		w, err := c.AuditWitnessAdd(cmd.Context(), client.AuditWitnessAddRequest{Name: a[0], URL: url, VerifierKey: vkey, CACert: string(ca)})
		if err != nil {
			return err
		}
		if *f == "json" {
			return writeJSON(cmd.OutOrStdout(), w)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Success! The servers submit their checkpoints to witness %s at %s.\n", w.Name, w.URL)
		return nil
	}
	return cmd
}

func newAuditWitnessListCmd(g *globals) *cobra.Command {
	return newReadCmd(g, "list", "List the server and external witnesses, and what the serving node last heard from each", cobra.NoArgs,
		func(ctx context.Context, c *client.Client, _ []string) (*client.AuditWitnesses, error) {
			l, err := c.AuditWitnesses(ctx)
			if l != nil && l.Servers == nil {
				l.Servers = []client.AuditServerWitness{}
			}
			if l != nil && l.External == nil {
				l.External = []client.AuditExternalWitness{}
			}
			return l, err
		},
		func(w io.Writer, l *client.AuditWitnesses) error {
			rows := []row{{"WITNESS", "SIZE\tSTATUS\tVERIFIER KEY"}}
			status := func(st *client.AuditWitnessStatus) (string, string) {
				switch {
				case st == nil:
					return "-", "not asked yet"
				case st.Error != "":
					return fmt.Sprint(st.Size), cell(st.Error)
				}
				return fmt.Sprint(st.Size), "cosigned"
			}
			for _, s := range l.Servers {
				size, msg := status(s.Status)
				if !s.Member {
					msg = "not a member"
				}
				rows = append(rows, row{"server " + s.Node, fmt.Sprintf("%s\t%s\t%s", size, msg, s.VerifierKey)})
			}
			for _, e := range l.External {
				size, msg := status(e.Status)
				rows = append(rows, row{"external " + e.Name + " (" + cell(e.URL) + ")", fmt.Sprintf("%s\t%s\t%s", size, msg, e.VerifierKey)})
			}
			return writeTableRaw(w, rows)
		})
}

func newAuditWitnessRemoveCmd(g *globals) *cobra.Command {
	return newDeleteCmd(g, "remove NAME", "Remove an external witness (server witnesses leave with their node: warden operator raft remove-peer)", "external witness",
		(*client.Client).AuditWitnessRemove)
}
