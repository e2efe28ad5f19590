package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/internal/respond"
	"github.com/warden-sec/warden/pkg/client"
)

func newIncidentCmd(g *globals) *cobra.Command {
	return newGroupCmd("incident", "Open, update, report and verify incidents",
		newIncidentListCmd(g), newIncidentShowCmd(g), newIncidentCreateCmd(g), newIncidentUpdateCmd(g),
		newIncidentCommentCmd(g), newIncidentCloseCmd(g), newIncidentReportCmd(g), newIncidentVerifyCmd(g))
}

const incidentHeader = "STATUS\tSEVERITY\tASSIGNEE\tALERTS\tDECISIONS\tUPDATED\tTITLE"

func newIncidentListCmd(g *globals) *cobra.Command {
	var status, severity string
	cmd := &cobra.Command{
		Use:   "list [--status S] [--severity S]",
		Short: "List incidents, newest first",
		Args:  args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&status, "status", "", "new, triaged, contained, resolved or closed (comma-separated for several)")
	cmd.Flags().StringVar(&severity, "severity", "", "informational, low, medium, high or critical (comma-separated for several)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		l, err := c.IncidentList(cmd.Context(), status, severity)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if *f == "json" {
			if l == nil {
				l = []client.Incident{}
			}
			return writeJSON(w, struct {
				Incidents []client.Incident `json:"incidents"`
			}{l})
		}
		rows := []row{{"ID", incidentHeader}}
		for _, i := range l {
			rows = append(rows, row{i.ID, fmt.Sprintf("%s\t%s\t%s\t%d\t%d\t%s\t%s", i.Status, i.Severity, cell(orDash(i.Assignee)),
				len(i.Alerts), len(i.Decisions), i.UpdatedTime, cell(i.Title))})
		}
		return writeTableRaw(w, rows)
	}
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printIncident(w io.Writer, i client.Incident) error {
	if err := writeTable(w, []row{{"ID", i.ID}, {"Title", i.Title}, {"Status", i.Status}, {"Severity", i.Severity},
		{"Assignee", orDash(i.Assignee)}, {"Alerts", strings.Join(i.Alerts, ", ")}, {"Decisions", strings.Join(i.Decisions, ", ")},
		{"Hosts", strings.Join(i.Hosts, ", ")}, {"Rules", strings.Join(i.Rules, ", ")}, {"Created By", i.CreatedBy},
		{"Created Time", i.CreatedTime}, {"Updated Time", i.UpdatedTime}, {"Version", i.Version}}); err != nil {
		return err
	}
	if len(i.Timeline) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nTimeline:")
	rows := []row{{"SEQ", "TIME\tACTOR\tKIND\tREF\tSTATUS\tRAFT INDEX\tTEXT"}}
	for _, it := range i.Timeline {
		ref := it.Ref
		if it.Host != "" || it.Rule != "" {
			ref += " (" + strings.TrimSpace(it.Rule+" "+it.Host) + ")"
		}
		rows = append(rows, row{fmt.Sprint(it.Seq), fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%d\t%s", it.Time, cell(it.Actor), it.Kind,
			cell(orDash(ref)), it.Status, it.RaftIndex, cell(it.Text))})
	}
	return writeTableRaw(w, rows)
}

func newIncidentShowCmd(g *globals) *cobra.Command {
	return newReadCmd(g, "show ID", "Show an incident with its timeline", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, a []string) (client.Incident, error) {
			return c.IncidentGet(ctx, a[0])
		},
		printIncident)
}

// incidentChangeCmd runs a change and prints the incident (or its JSON).
func incidentChangeCmd(g *globals, cmd *cobra.Command, verb string, do func(ctx context.Context, c *client.Client, a []string) (client.Incident, error)) *cobra.Command {
	f := addFormat(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		inc, err := do(cmd.Context(), c, a)
		if err != nil {
			return err
		}
		if *f == "json" {
			return writeJSON(cmd.OutOrStdout(), inc)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Success! Incident %s %s (status %s, %d timeline items).\n", inc.ID, verb, inc.Status, len(inc.Timeline))
		return nil
	}
	return cmd
}

func newIncidentCreateCmd(g *globals) *cobra.Command {
	var in client.IncidentCreate
	cmd := &cobra.Command{
		Use:   "create --title T [--severity S] [--assignee A] [--alert ID...] [--decision ID...] [--comment C]",
		Short: "Open an incident by hand",
		Args:  args(cobra.NoArgs),
	}
	fl := cmd.Flags()
	fl.StringVar(&in.Title, "title", "", "what happened (required)")
	fl.StringVar(&in.Severity, "severity", "", "informational, low, medium (default), high or critical")
	fl.StringVar(&in.Assignee, "assignee", "", "who handles it")
	fl.StringVar(&in.Comment, "comment", "", "a first comment")
	fl.StringArrayVar(&in.Alerts, "alert", nil, "an alert id to attach (repeat for several)")
	fl.StringArrayVar(&in.Decisions, "decision", nil, "a decision id to attach (repeat for several)")
	return incidentChangeCmd(g, cmd, "opened", func(ctx context.Context, c *client.Client, _ []string) (client.Incident, error) {
		return c.IncidentCreate(ctx, in)
	})
}

func newIncidentUpdateCmd(g *globals) *cobra.Command {
	var in client.IncidentUpdate
	var status, severity, assignee string
	cmd := &cobra.Command{
		Use:   "update ID [--status S] [--severity S] [--assignee A] [--alert ID...] [--decision ID...] [--comment C]",
		Short: "Change an incident's status, severity or assignee, or attach alerts and decisions",
		Args:  args(cobra.ExactArgs(1)),
	}
	fl := cmd.Flags()
	fl.StringVar(&status, "status", "", "new, triaged, contained, resolved or closed")
	fl.StringVar(&severity, "severity", "", "informational, low, medium, high or critical")
	fl.StringVar(&assignee, "assignee", "", `who handles it ("" unassigns)`)
	fl.StringVar(&in.Comment, "comment", "", "why (kept with the change in the timeline)")
	fl.StringArrayVar(&in.Alerts, "alert", nil, "an alert id to attach (repeat for several)")
	fl.StringArrayVar(&in.Decisions, "decision", nil, "a decision id to attach (repeat for several)")
	return incidentChangeCmd(g, cmd, "updated", func(ctx context.Context, c *client.Client, a []string) (client.Incident, error) {
		if fl.Changed("status") {
			in.Status = &status
		}
		if fl.Changed("severity") {
			in.Severity = &severity
		}
		if fl.Changed("assignee") {
			in.Assignee = &assignee
		}
		return c.IncidentUpdate(ctx, a[0], in)
	})
}

func newIncidentCommentCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "comment ID TEXT",
		Short: "Add a comment to an incident's timeline",
		Args:  args(cobra.ExactArgs(2)),
	}
	return incidentChangeCmd(g, cmd, "commented", func(ctx context.Context, c *client.Client, a []string) (client.Incident, error) {
		return c.IncidentComment(ctx, a[0], a[1])
	})
}

func newIncidentCloseCmd(g *globals) *cobra.Command {
	var comment string
	cmd := &cobra.Command{
		Use:   "close ID [--comment C]",
		Short: "Close an incident",
		Args:  args(cobra.ExactArgs(1)),
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why")
	return incidentChangeCmd(g, cmd, "closed", func(ctx context.Context, c *client.Client, a []string) (client.Incident, error) {
		return c.IncidentClose(ctx, a[0], comment)
	})
}

func newIncidentReportCmd(g *globals) *cobra.Command {
	var out string
	fmtFlag := "md"
	cmd := &cobra.Command{
		Use:   "report ID [--format md|json] [-o FILE]",
		Short: "Write an incident's report: its timeline with each item's audit inclusion proof against a signed checkpoint",
		Long: `Write an incident's report (Markdown by default, or JSON) to standard output or to
FILE. Each timeline item comes with the audit record of the change that added it,
its index in the audit log and its inclusion proof against one signed checkpoint;
check the report offline with "warden incident verify FILE --verifier-key KEY".`,
		Args: args(cobra.ExactArgs(1)),
	}
	cmd.Flags().StringVar(&fmtFlag, "format", "md", "md or json")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the report to FILE (0644) instead of standard output")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if fmtFlag != "md" && fmtFlag != "json" {
			return &usageError{fmt.Errorf("--format %q: want md or json", fmtFlag)}
		}
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		b, err := c.IncidentReport(cmd.Context(), a[0], fmtFlag)
		if err != nil {
			return err
		}
		return writeDocument(cmd, out, b, "the report of incident "+a[0])
	}
	return cmd
}

func newIncidentVerifyCmd(g *globals) *cobra.Command {
	var key, keyFile string
	cmd := &cobra.Command{
		Use:   "verify REPORT [--verifier-key KEY | --verifier-key-file FILE]",
		Short: "Check an incident report offline against the audit log's verifier key",
		Long: `Check an incident report (JSON or Markdown) offline: the checkpoint's signature with
the verifier key, every item's inclusion proof, every audit record's canonical
form and the item hash it carries, the incident's header against its timeline,
and the report's own canonical form, so that any changed byte fails with the reason.

The key is the note verifier key of the audit log (GET /v1/audit/verifier);
without --verifier-key or --verifier-key-file the command
asks the server for it and says so: an offline check needs the key from a source
you trust.`,
		Args: args(cobra.ExactArgs(1)),
	}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&key, "verifier-key", "", "the note verifier key to trust")
	cmd.Flags().StringVar(&keyFile, "verifier-key-file", "", "a file holding the note verifier key")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		b, err := os.ReadFile(a[0])
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		switch {
		case key != "" && keyFile != "":
			return &usageError{fmt.Errorf("give --verifier-key or --verifier-key-file, not both")}
		case keyFile != "":
			kb, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			key = strings.TrimSpace(string(kb))
		case key == "":
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			v, err := c.AuditVerifierKey(cmd.Context())
			if err != nil {
				return fmt.Errorf("no --verifier-key given, and the server's could not be read: %w", err)
			}
			key = v.VerifierKey
			fmt.Fprintf(cmd.ErrOrStderr(), "No --verifier-key given: using the key the server %s reports (%s); for an offline check pass a key from a source you trust.\n",
				c.Address(), key)
		}
		v, err := respond.VerifyReport(b, key)
		if err != nil {
			return fmt.Errorf("%s: %w", a[0], err)
		}
		return output(w, f, v, []row{{"Verified", fmt.Sprintf("incident %s: %d timeline items in %s's audit log (tree size %d), %s report",
			v.Incident, v.Items, v.Origin, v.TreeSize, v.Format)}})
	}
	return cmd
}
