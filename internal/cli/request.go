package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

// Dual control (docs/governance.md): "warden request ..." for requesters
// and approvers, and "warden operator dual-control on|off".

func newRequestCmd(g *globals) *cobra.Command {
	return newGroupCmd("request", "Requests held for approval (dual control): list, show, approve, deny, cancel, run",
		newRequestListCmd(g), newRequestShowCmd(g), newRequestVoteCmd(g, "approve"), newRequestVoteCmd(g, "deny"),
		newRequestCancelCmd(g), newRequestRunCmd(g))
}

func requestRows(r client.Request) []row {
	target := r.Method + " " + r.Path
	if r.Query != "" {
		target += "?" + r.Query
	}
	rows := []row{{"ID", r.ID}, {"Status", r.Status}, {"Requester", r.Requester}, {"Action", r.Action},
		{"Resource", r.Resource}, {"Request", target}, {"Body SHA-256", r.BodySHA256},
		{"Body Size", fmt.Sprint(r.BodySize)}, {"Body Stored", fmt.Sprint(r.BodyStored)},
		{"Approvals", fmt.Sprintf("%d of %d", len(r.Approvals), r.Required)}}
	for _, rule := range r.Rules {
		rows = append(rows, row{"Rule", fmt.Sprintf("%s: %d from %s", rule.Policy, rule.Approvals, rule.Approvers)})
	}
	for _, v := range r.Approvals {
		rows = append(rows, row{"Approved By", voteText(v)})
	}
	for _, v := range r.Denials {
		rows = append(rows, row{"Denied By", voteText(v)})
	}
	rows = append(rows, row{"Created At", r.CreatedAt}, row{"Expires At", r.ExpiresAt})
	if r.FinishedAt != "" {
		rows = append(rows, row{"Finished At", r.FinishedAt}, row{"Finished By", r.FinishedBy})
	}
	if o := r.Outcome; o != nil {
		out := fmt.Sprint(o.Status)
		if o.Error != "" {
			out += ": " + o.Error
		}
		rows = append(rows, row{"Outcome", out})
	}
	return rows
}

func voteText(v client.RequestVote) string {
	s := v.Principal + " at " + v.Time
	if v.Comment != "" {
		s += ": " + v.Comment
	}
	return s
}

func newRequestListCmd(g *globals) *cobra.Command {
	var pending bool
	cmd := &cobra.Command{Use: "list [--pending]", Short: "List requests, newest first", Args: args(cobra.NoArgs)}
	f := addFormat(cmd)
	cmd.Flags().BoolVar(&pending, "pending", false, "only the open requests (pending or approved, not expired)")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		rs, err := c.Requests(cmd.Context(), pending)
		if err != nil {
			return err
		}
		if *f == "json" {
			if rs == nil {
				rs = []client.Request{}
			}
			return writeJSON(cmd.OutOrStdout(), map[string]any{"requests": rs})
		}
		rows := []row{{"ID", "STATUS\tAPPROVALS\tREQUESTER\tACTION\tRESOURCE\tEXPIRES"}}
		for _, r := range rs {
			rows = append(rows, row{cell(r.ID), strings.Join([]string{cell(r.Status), fmt.Sprintf("%d/%d", len(r.Approvals), r.Required),
				cell(r.Requester), cell(r.Action), cell(r.Resource), cell(r.ExpiresAt)}, "\t")})
		}
		return writeTableRaw(cmd.OutOrStdout(), rows)
	})
	return cmd
}

func newRequestShowCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "show ID", Short: "Show a request: what it does, its rules, approvals and status", Args: args(cobra.ExactArgs(1))}
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		r, err := c.Request(cmd.Context(), a[0])
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, r, requestRows(r))
	})
	return cmd
}

func newRequestVoteCmd(g *globals, verb string) *cobra.Command {
	var comment string
	short := "Approve a request (as a member of its approver group, never your own)"
	if verb == "deny" {
		short = "Deny a request, which closes it (as a member of its approver group)"
	}
	cmd := &cobra.Command{Use: verb + " ID [--comment TEXT]", Short: short, Args: args(cobra.ExactArgs(1))}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&comment, "comment", "", "why (at most 1024 bytes; kept with the request)")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		var r client.Request
		var err error
		if verb == "deny" {
			r, err = c.RequestDeny(cmd.Context(), a[0], comment)
		} else {
			r, err = c.RequestApprove(cmd.Context(), a[0], comment)
		}
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, r, requestRows(r))
	})
	return cmd
}

func newRequestCancelCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cancel ID", Short: "Cancel a request (your own, or any with the right to approve)", Args: args(cobra.ExactArgs(1))}
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		r, err := c.RequestCancel(cmd.Context(), a[0])
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, r, requestRows(r))
	})
	return cmd
}

func newRequestRunCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "run ID",
		Short: "Run your approved request, once; prints the operation's own answer",
		Long: `Run your approved request: the server replays the request exactly as it was
approved (method, path, query and body) as you, once. A request whose body was
larger than 1 MiB was not stored: run it by sending the original command again
with --approved-request ID (for example "warden raft snapshot restore FILE
--approved-request ID").`,
		Args: args(cobra.ExactArgs(1)),
		RunE: g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
			res, err := c.RequestRun(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			return printRunResult(cmd.OutOrStdout(), a[0], res)
		}),
	}
}

// printRunResult prints an operation's answer: its JSON indented, or a
// line when it had no body.
func printRunResult(w io.Writer, id string, res client.RunResult) error {
	if len(bytes.TrimSpace(res.Body)) == 0 {
		_, err := fmt.Fprintf(w, "Success! Request %s ran (status %d).\n", id, res.Status)
		return err
	}
	var buf bytes.Buffer
	if json.Indent(&buf, res.Body, "", "  ") != nil {
		_, err := w.Write(res.Body)
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

func newDualControlCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "dual-control on|off",
		Short: "Turn dual control on or off for the cluster (turning it off needs approval while it is on)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
			var on bool
			switch a[0] {
			case "on":
				on = true
			case "off":
			default:
				return usagef("want on or off, got %q", a[0])
			}
			if err := c.DualControl(cmd.Context(), on); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! Dual control is %s.\n", a[0])
			return nil
		}),
	}
}
