package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

func newNotifyCmd(g *globals) *cobra.Command {
	return newGroupCmd("notify", "Manage alert notifications (signed webhooks)",
		newGroupCmd("create", "Create or replace a notifier", newNotifyCreateWebhookCmd(g)),
		newNotifyListCmd(g), newNotifyDeleteCmd(g))
}

// maxSecretFileBytes bounds a notifier's secret file.
const maxSecretFileBytes = 1024

func newNotifyCreateWebhookCmd(g *globals) *cobra.Command {
	var url, secretFile, minLevel string
	cmd := &cobra.Command{
		Use:   "webhook NAME --url URL --secret-file FILE [--min-level high]",
		Short: "Create or replace a webhook notifier",
		Long: `Create or replace a webhook notifier: every new alert at or above --min-level
is POSTed as JSON to URL, signed with HMAC-SHA256 under the secret read from
FILE (16 to 1024 bytes; one trailing newline is dropped). URL must be https, or
http to a loopback address. See docs/detection.md, "Notifications".`,
		Args: args(cobra.ExactArgs(1)),
	}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&url, "url", "", "the receiver's URL (required)")
	cmd.Flags().StringVar(&secretFile, "secret-file", "", "file holding the shared signing secret (required)")
	cmd.Flags().StringVar(&minLevel, "min-level", "high", "the lowest alert level notified: informational, low, medium, high or critical")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if url == "" || secretFile == "" {
			return usagef("--url and --secret-file are required")
		}
		secret, err := readFileLimitedTo(secretFile, maxSecretFileBytes)
		if err != nil {
			return err
		}
		if len(secret) > maxSecretFileBytes {
			return fmt.Errorf("%s: the secret is longer than %d bytes", secretFile, maxSecretFileBytes)
		}
		secret = bytes.TrimSuffix(bytes.TrimSuffix(secret, []byte("\n")), []byte("\r"))
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		n, err := c.NotifierPut(cmd.Context(), client.Notifier{Name: a[0], Type: "webhook", URL: url, MinLevel: minLevel}, secret)
		if err != nil {
			return err
		}
		if *f == "json" {
			return writeJSON(cmd.OutOrStdout(), n)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Success! Notifier %s sends alerts of level %s and above to %s.\n", n.Name, n.MinLevel, n.URL)
		return nil
	}
	return cmd
}

func newNotifyListCmd(g *globals) *cobra.Command {
	type list struct {
		Notifiers []client.Notifier `json:"notifiers"`
	}
	return newReadCmd(g, "list", "List the notifiers (never their secrets)", cobra.NoArgs,
		func(ctx context.Context, c *client.Client, _ []string) (list, error) {
			ns, err := c.NotifierList(ctx)
			if ns == nil {
				ns = []client.Notifier{}
			}
			return list{ns}, err
		},
		func(w io.Writer, l list) error {
			rows := []row{{"NAME", "TYPE\tMIN LEVEL\tURL"}}
			for _, n := range l.Notifiers {
				rows = append(rows, row{n.Name, fmt.Sprintf("%s\t%s\t%s", n.Type, n.MinLevel, cell(n.URL))})
			}
			return writeTableRaw(w, rows)
		})
}

func newNotifyDeleteCmd(g *globals) *cobra.Command {
	return newDeleteCmd(g, "delete NAME", "Delete a notifier (its queued notifications are dropped)", "notifier",
		(*client.Client).NotifierDelete)
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
