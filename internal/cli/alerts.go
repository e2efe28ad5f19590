package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

func newAlertsCmd(g *globals) *cobra.Command {
	return newGroupCmd("alerts", "List, inspect, acknowledge, close and follow alerts",
		newAlertsListCmd(g), newAlertsShowCmd(g), newAlertsStatusCmd(g, "ack"), newAlertsStatusCmd(g, "close"), newAlertsWatchCmd(g))
}

func alertRow(a client.Alert) row {
	return row{a.ID, fmt.Sprintf("%s\t%s\t%d\t%s\t%s\t%s", a.Level, a.Status, a.Count, a.LastSeen, cell(a.RuleID), cell(groupString(a.Group)))}
}

const alertHeader = "LEVEL\tSTATUS\tCOUNT\tLAST SEEN\tRULE\tGROUP"

func newAlertsListCmd(g *globals) *cobra.Command {
	var flt client.AlertFilter
	cmd := &cobra.Command{
		Use:   "list [--status S] [--level L] [--rule ID] [--host H] [--since 1h]",
		Short: "List alerts, newest first",
		Long: `List alerts, newest first (by creation). --status and --level take one value or
several separated by commas; --since takes a duration back from now (1h) or an
RFC 3339 time and selects alerts seen since then. One page of --limit alerts is
printed; the cursor of the next page is printed after it (--cursor).`,
		Args: args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	fl := cmd.Flags()
	fl.StringVar(&flt.Status, "status", "", "open, acknowledged or closed (comma-separated for several)")
	fl.StringVar(&flt.Level, "level", "", "informational, low, medium, high or critical (comma-separated for several)")
	fl.StringVar(&flt.Rule, "rule", "", "rule id")
	fl.StringVar(&flt.Host, "host", "", "host name")
	fl.StringVar(&flt.Since, "since", "", "last seen since: a duration back from now (1h) or an RFC 3339 time")
	fl.IntVar(&flt.Limit, "limit", 100, "alerts per page (at most 1000)")
	fl.StringVar(&flt.Cursor, "cursor", "", "the cursor of the page to print (from the previous page)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		as, next, err := c.AlertList(cmd.Context(), flt)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if *f == "json" {
			if as == nil {
				as = []client.Alert{}
			}
			return writeJSON(w, struct {
				Alerts []client.Alert `json:"alerts"`
				Next   string         `json:"next"`
			}{as, next})
		}
		rows := []row{{"ID", alertHeader}}
		for _, a := range as {
			rows = append(rows, alertRow(a))
		}
		if err := writeTableRaw(w, rows); err != nil {
			return err
		}
		if next != "" {
			fmt.Fprintf(w, "\nmore: --cursor %s\n", next)
		}
		return nil
	}
	return cmd
}

func printAlert(w io.Writer, a client.Alert) error {
	if err := writeTable(w, []row{{"ID", a.ID}, {"Rule", a.RuleID + " (" + a.RuleTitle + ")"}, {"Level", a.Level},
		{"Status", a.Status}, {"Count", a.Count}, {"First Seen", a.FirstSeen}, {"Last Seen", a.LastSeen},
		{"Group", groupString(a.Group)}, {"Hosts", strings.Join(a.Hosts, ", ")}, {"Tags", strings.Join(a.Tags, ", ")},
		{"Event Refs", a.EventRefs}, {"Created Time", a.Created}, {"Updated Time", a.Updated}}); err != nil {
		return err
	}
	if len(a.Events) > 0 {
		fmt.Fprintln(w, "\nEvents:")
		for _, e := range a.Events {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	if len(a.Notes) > 0 {
		fmt.Fprintln(w, "\nNotes:")
		for _, n := range a.Notes {
			fmt.Fprintf(w, "  %s %s %s: %s\n", n.Time, n.By, n.Status, cell(n.Comment))
		}
	}
	return nil
}

func newAlertsShowCmd(g *globals) *cobra.Command {
	return newReadCmd(g, "show ID", "Show an alert with its events and notes", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, a []string) (client.Alert, error) {
			return c.AlertGet(ctx, a[0])
		},
		printAlert)
}

func newAlertsStatusCmd(g *globals, verb string) *cobra.Command {
	var comment string
	short := "Acknowledge an alert"
	if verb == "close" {
		short = "Close an alert"
	}
	cmd := &cobra.Command{
		Use:   verb + " ID [--comment TEXT]",
		Short: short,
		Args:  args(cobra.ExactArgs(1)),
	}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&comment, "comment", "", "why (kept in the alert's notes)")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		set := c.AlertAck
		if verb == "close" {
			set = c.AlertClose
		}
		al, err := set(cmd.Context(), a[0], comment)
		if err != nil {
			return err
		}
		if *f == "json" {
			return writeJSON(cmd.OutOrStdout(), al)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Success! Alert %s is %s.\n", al.ID, al.Status)
		return nil
	}
	return cmd
}

func newAlertsWatchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Follow alerts as they are created and updated (until interrupted)",
		Long: `Follow alerts as they are created and updated, one line each (with --format json,
one JSON object a line), until interrupted. When the server ends the stream the
command reconnects and misses nothing.`,
		Args: args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		err = c.AlertWatch(cmd.Context(), 0, func(a client.Alert, _ uint64) error {
			if *f == "json" {
				a.Events = nil // one line each; show the alert for its events
				return writeJSONLine(w, a)
			}
			return writeTableRaw(w, []row{alertRow(a)})
		})
		if cmd.Context().Err() != nil {
			return nil // interrupted: the normal end
		}
		return err
	}
	return cmd
}
