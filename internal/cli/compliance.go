package cli

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/internal/compliance"
	"github.com/warden-sec/warden/pkg/client"
)

// The compliance commands (docs/compliance.md).

func newComplianceCmd(g *globals) *cobra.Command {
	policy := newGroupCmd("policy", "Check policies the agents run (YAML; docs/compliance.md)",
		newCheckPolicyListCmd(g), newCheckPolicyShowCmd(g), newCheckPolicyWriteCmd(g), newCheckPolicyDeleteCmd(g))
	return newGroupCmd("compliance", "Compliance reports (ISO/IEC 27001, IEC 62443-3-3) from live state, attestations, check policies",
		newComplianceStatusCmd(g), newComplianceReportCmd(g), newComplianceVerifyCmd(g),
		newComplianceAttestCmd(g), newComplianceAttestationsCmd(g), newComplianceWithdrawCmd(g), policy)
}

// frameworkFlag checks --framework.
func frameworkFlag(fw string) error {
	if fw != string(compliance.ISO27001) && fw != string(compliance.IEC62443) {
		return usagef("--framework %q: want %s or %s", fw, compliance.ISO27001, compliance.IEC62443)
	}
	return nil
}

func newNodeInventoryCmd(g *globals) *cobra.Command {
	var history bool
	cmd := &cobra.Command{Use: "inventory NAME [--history] [--format table|json]",
		Short: "Show what a node's agent reported: OS, kernel, packages, listening sockets, patch age", Args: args(cobra.ExactArgs(1))}
	f := addFormat(cmd)
	cmd.Flags().BoolVar(&history, "history", false, "show the node's inventory changes instead (newest first)")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		w := cmd.OutOrStdout()
		if history {
			hs, err := c.NodeInventoryHistory(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			if *f == "json" {
				if hs == nil {
					hs = []client.InventoryChange{}
				}
				return writeJSON(w, map[string]any{"node": a[0], "changes": hs})
			}
			rows := []row{{"TIME", "FINGERPRINT\tCHANGE"}}
			for _, h := range hs {
				ch := "first inventory"
				if len(h.Change) > 0 && string(h.Change) != "null" {
					ch = string(h.Change)
				}
				rows = append(rows, row{h.Time.Format("2006-01-02T15:04:05Z07:00"), cell(short(h.Fingerprint)) + "\t" + cell(ch)})
			}
			return writeTableRaw(w, rows)
		}
		inv, err := c.NodeInventory(cmd.Context(), a[0])
		if err != nil {
			return err
		}
		if *f == "json" {
			return writeJSON(w, inv)
		}
		var v struct {
			CollectedAt  string `json:"collected_at"`
			Hostname     string `json:"hostname"`
			AgentVersion string `json:"agent_version"`
			Kernel       string `json:"kernel"`
			Arch         string `json:"arch"`
			OS           struct {
				PrettyName string `json:"pretty_name"`
			} `json:"os"`
			Addresses      []string          `json:"addresses"`
			PackageManager string            `json:"package_manager"`
			Packages       []json.RawMessage `json:"packages"`
			PendingKnown   bool              `json:"pending_known"`
			Pending        []struct {
				Name      string `json:"name"`
				Installed string `json:"installed"`
				Available string `json:"available"`
			} `json:"pending_updates"`
			Listening []struct {
				Proto   string `json:"proto"`
				Address string `json:"address"`
				Port    int    `json:"port"`
				Process string `json:"process"`
			} `json:"listening"`
		}
		if err := json.Unmarshal(inv.Inventory, &v); err != nil {
			return fmt.Errorf("the server's inventory of %s: %w", a[0], err)
		}
		pending := "unknown (the package manager cannot tell)"
		if v.PendingKnown {
			pending = strconv.Itoa(len(v.Pending))
		}
		rows := []row{{"Node", inv.Node}, {"Hostname", v.Hostname}, {"OS", v.OS.PrettyName}, {"Kernel", v.Kernel + " (" + v.Arch + ")"},
			{"Agent", v.AgentVersion}, {"Addresses", dash(strings.Join(v.Addresses, ", "))},
			{"Packages", fmt.Sprintf("%d (%s)", len(v.Packages), dash(v.PackageManager))}, {"Pending Updates", pending}}
		for i, p := range v.Pending {
			if i == 10 {
				rows = append(rows, row{"", fmt.Sprintf("… and %d more (--format json)", len(v.Pending)-10)})
				break
			}
			rows = append(rows, row{"", p.Name + " " + p.Installed + " → " + p.Available})
		}
		for i, l := range v.Listening {
			k := ""
			if i == 0 {
				k = "Listening"
			}
			rows = append(rows, row{k, fmt.Sprintf("%s %s:%d %s", l.Proto, l.Address, l.Port, l.Process)})
		}
		rows = append(rows, row{"Collected", v.CollectedAt}, row{"Received", inv.Received.Format("2006-01-02T15:04:05Z07:00")},
			row{"Fingerprint", inv.Fingerprint})
		return writeTable(w, rows)
	})
	return cmd
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func newComplianceStatusCmd(g *globals) *cobra.Command {
	var fw, zone string
	cmd := &cobra.Command{Use: "status --framework iso27001|iec62443-3-3 [--zone Z]",
		Short: "Evaluate the controls on the live state now (unsigned; a report is signed)", Args: args(cobra.NoArgs)}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&fw, "framework", "", "iso27001 or iec62443-3-3")
	cmd.Flags().StringVar(&zone, "zone", "", "only this zone's nodes and conduits")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		if err := frameworkFlag(fw); err != nil {
			return err
		}
		raw, err := c.ComplianceStatus(cmd.Context(), fw, zone)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if *f == "json" {
			_, err := w.Write(append(raw, '\n'))
			return err
		}
		var r compliance.Report
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("the server's status: %w", err)
		}
		return writeReportTable(w, &r)
	})
	return cmd
}

func newComplianceReportCmd(g *globals) *cobra.Command {
	var fw, zone, out string
	fmtFlag := "json"
	cmd := &cobra.Command{
		Use:   "report --framework iso27001|iec62443-3-3 [--zone Z] --format json|html --out FILE",
		Short: "Write a signed compliance report of the live state, with its evidence",
		Long: `Write a compliance report computed from the cluster's live state: every control with
its checks, their evidence (audit records with inclusion proofs against a signed
checkpoint), the IEC 62443 security levels per zone, risk per node and zone, patch
ages. The server signs it with its cluster certificate and records its SHA-256 in the
audit log. JSON, or self-contained HTML that embeds the signed JSON. Check it
offline with "warden compliance verify FILE --ca CA.pem".`,
		Args: args(cobra.NoArgs),
	}
	cmd.Flags().StringVar(&fw, "framework", "", "iso27001 or iec62443-3-3")
	cmd.Flags().StringVar(&zone, "zone", "", "only this zone's nodes and conduits")
	cmd.Flags().StringVar(&fmtFlag, "format", "json", "json or html")
	cmd.Flags().StringVar(&out, "out", "", "write the report to FILE (0644) instead of standard output")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := frameworkFlag(fw); err != nil {
			return err
		}
		if fmtFlag != "json" && fmtFlag != "html" {
			return usagef("--format %q: want json or html", fmtFlag)
		}
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		b, err := c.ComplianceReport(cmd.Context(), fw, zone, fmtFlag)
		if err != nil {
			return err
		}
		return writeDocument(cmd, out, b, "the signed "+fw+" report")
	}
	return cmd
}

func newComplianceVerifyCmd(g *globals) *cobra.Command {
	var caFile string
	cmd := &cobra.Command{
		Use:   "verify REPORT [--ca FILE]",
		Short: "Check a compliance report offline: its signature, checkpoint and every inclusion proof",
		Long: `Check a compliance report (JSON or HTML) offline: the signature chains to the cluster's
CA (--ca, the PEM bundle of GET /v1/pki/ca) and is a server's, the checkpoint's
signature holds, the report was computed against that checkpoint, and every audit
record it cites is in the log (its inclusion proof). Without --ca the command asks
the server for the CA and says so: an offline check needs the CA from a source you
trust.`,
		Args: args(cobra.ExactArgs(1)),
	}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&caFile, "ca", "", "the cluster CA bundle (PEM) to trust")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		b, err := os.ReadFile(a[0])
		if err != nil {
			return err
		}
		var pemData []byte
		if caFile != "" {
			if pemData, err = os.ReadFile(caFile); err != nil {
				return err
			}
		} else {
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			if pemData, err = c.CABundle(cmd.Context()); err != nil {
				return fmt.Errorf("no --ca given, and the server's CA could not be read: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "No --ca given: using the CA the server %s serves; for an offline check pass a CA from a source you trust.\n", c.Address())
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pemData) {
			return errors.New("--ca: no PEM certificate in it")
		}
		r, steps, err := compliance.VerifyDocument(b, roots)
		if err != nil {
			return fmt.Errorf("%s: %w", a[0], err)
		}
		w := cmd.OutOrStdout()
		if *f == "json" {
			return writeJSON(w, map[string]any{"verified": true, "framework": r.Framework, "zone": r.Zone, "generated_at": r.GeneratedAt, "steps": steps})
		}
		rows := []row{{"Verified", fmt.Sprintf("%s report generated at %s", r.Framework, r.GeneratedAt.Format("2006-01-02T15:04:05Z07:00"))}}
		for _, s := range steps {
			rows = append(rows, row{"", s})
		}
		return writeTable(w, rows)
	}
	return cmd
}

func newComplianceAttestCmd(g *globals) *cobra.Command {
	var file, expires string
	cmd := &cobra.Command{
		Use:   "attest CONTROL --file F --expires 90d",
		Short: "State that a manual control is in place (stored and audited, with an owner and expiry)",
		Long: `Record an attestation of a manual control (for example iso27001:5.24, or
"iec62443-3-3:SR 2.12"): the text of FILE says what is in place and who checked it.
You are its owner; it counts for the control until it expires (--expires 90d, a Go
duration or an RFC 3339 time, at most 3 years).`,
		Args: args(cobra.ExactArgs(1)),
	}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&file, "file", "", "the attestation's text (- for standard input)")
	cmd.Flags().StringVar(&expires, "expires", "", "when it lapses: 90d, a duration or an RFC 3339 time")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		if file == "" || expires == "" {
			return usagef("--file and --expires are required")
		}
		text, err := g.readLimited(file, 64<<10)
		if err != nil {
			return err
		}
		at, err := c.Attest(cmd.Context(), a[0], string(text), expires)
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, at, []row{{"Attestation", at.ID}, {"Control", at.Control}, {"Owner", at.Owner},
			{"SHA-256", at.SHA256}, {"Expires", at.Expires.Format("2006-01-02T15:04:05Z07:00")}})
	})
	return cmd
}

func newComplianceAttestationsCmd(g *globals) *cobra.Command {
	var control string
	cmd := &cobra.Command{Use: "attestations [--control C]", Short: "List attestations of manual controls", Args: args(cobra.NoArgs)}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&control, "control", "", "only this control's")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		as, err := c.Attestations(cmd.Context(), control)
		if err != nil {
			return err
		}
		if *f == "json" {
			if as == nil {
				as = []client.Attestation{}
			}
			return writeJSON(cmd.OutOrStdout(), map[string]any{"attestations": as})
		}
		rows := []row{{"CONTROL", "ID\tOWNER\tCREATED\tEXPIRES"}}
		for _, at := range as {
			rows = append(rows, row{cell(at.Control), strings.Join([]string{cell(at.ID), cell(at.Owner),
				at.Created.Format("2006-01-02"), at.Expires.Format("2006-01-02")}, "\t")})
		}
		return writeTableRaw(cmd.OutOrStdout(), rows)
	})
	return cmd
}

func newComplianceWithdrawCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "withdraw ID", Short: "Withdraw an attestation (its control waits for another; the records stay in the audit log)",
		Args: args(cobra.ExactArgs(1))}
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		if err := c.WithdrawAttestation(cmd.Context(), a[0]); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Withdrew attestation %s.\n", a[0])
		return nil
	})
	return cmd
}

func newCheckPolicyListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List the check policies agents run", Args: args(cobra.NoArgs)}
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		ps, err := c.CheckPolicies(cmd.Context())
		if err != nil {
			return err
		}
		if *f == "json" {
			return writeJSON(cmd.OutOrStdout(), map[string]any{"policies": ps})
		}
		rows := []row{{"NAME", "CHECKS\tVERSION\tUPDATED"}}
		for _, p := range ps {
			v, u := "built in", "-"
			if !p.Builtin {
				v, u = strconv.FormatUint(p.Version, 10), p.Updated.Format("2006-01-02T15:04:05Z07:00")
			}
			rows = append(rows, row{cell(p.Name), fmt.Sprintf("%d\t%s\t%s", p.Checks, v, u)})
		}
		return writeTableRaw(cmd.OutOrStdout(), rows)
	})
	return cmd
}

func newCheckPolicyShowCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "show NAME", Short: "Print a check policy's YAML", Args: args(cobra.ExactArgs(1))}
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		ps, err := c.CheckPolicies(cmd.Context())
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.Name == a[0] {
				_, err := fmt.Fprint(cmd.OutOrStdout(), p.YAML)
				return err
			}
		}
		return fmt.Errorf("no check policy %s", a[0])
	})
	return cmd
}

func newCheckPolicyWriteCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "write NAME FILE", Short: "Store a check policy (YAML); agents run it at their next assessment",
		Args: args(cobra.ExactArgs(2))}
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		b, err := g.readDoc(a[1])
		if err != nil {
			return err
		}
		p, err := c.CheckPolicyPut(cmd.Context(), a[0], b)
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, p, []row{{"Policy", p.Name}, {"Version", p.Version}, {"Checks", p.Checks}})
	})
	return cmd
}

func newCheckPolicyDeleteCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "delete NAME", Short: "Delete a stored check policy (a deleted linux-baseline falls back to the built-in one)",
		Args: args(cobra.ExactArgs(1))}
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		if err := c.CheckPolicyDelete(cmd.Context(), a[0]); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Deleted check policy %s.\n", a[0])
		return nil
	})
	return cmd
}

// writeReportTable prints a report's summary, its controls, the zones'
// security levels and the riskiest nodes and zones.
func writeReportTable(w io.Writer, r *compliance.Report) error {
	s := r.Summary
	rows := []row{{"Framework", string(r.Framework)}, {"Generated", r.GeneratedAt.Format("2006-01-02T15:04:05Z07:00")},
		{"Checkpoint", fmt.Sprintf("tree size %d", r.Checkpoint.Size)},
		{"Controls", fmt.Sprintf("%d: %d pass, %d fail, %d not applicable, %d manual, %d attested", s.Controls, s.Pass, s.Fail, s.NotApplicable, s.Manual, s.Attested)}}
	if r.Zone != "" {
		rows = append(rows, row{"Zone", r.Zone})
	}
	if err := writeTable(w, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	ctl := []row{{"CONTROL", "STATUS\tTITLE"}}
	for _, c := range r.Controls {
		ctl = append(ctl, row{cell(c.ID), cell(c.Status) + "\t" + cell(c.Title)})
	}
	if err := writeTableRaw(w, ctl); err != nil {
		return err
	}
	if len(r.Zones) > 0 {
		fmt.Fprintln(w)
		zs := []row{{"ZONE", "SL-T\tSL-A (FR1..FR7)\tBELOW TARGET"}}
		for _, z := range r.Zones {
			var gaps []string
			for _, g := range z.BelowTarget {
				gaps = append(gaps, g.Requirement)
			}
			zs = append(zs, row{cell(z.Name), fmt.Sprintf("%d\t%v\t%s", z.SLT, z.SLA, dash(strings.Join(slices.Compact(gaps), ", ")))})
		}
		if err := writeTableRaw(w, zs); err != nil {
			return err
		}
	}
	if len(r.Risk.Zones)+len(r.Risk.Nodes) > 0 {
		fmt.Fprintln(w)
		rs := []row{{"RISK", "SCORE\tLARGEST CONTRIBUTION"}}
		add := func(kind string, list []compliance.RiskScore) {
			for i, sc := range list {
				if i == 10 {
					break
				}
				top := "-"
				if len(sc.Items) > 0 {
					top = fmt.Sprintf("%s %s (+%d)", sc.Items[0].Kind, sc.Items[0].Ref, sc.Items[0].Points)
				}
				rs = append(rs, row{kind + " " + cell(sc.Ref), fmt.Sprintf("%d\t%s", sc.Score, cell(top))})
			}
		}
		add("zone", r.Risk.Zones)
		add("node", r.Risk.Nodes)
		return writeTableRaw(w, rs)
	}
	return nil
}

// writeDocument writes a document (a report) to standard output, or to
// file (0644, it holds nothing secret) saying so on standard error.
func writeDocument(cmd *cobra.Command, file string, b []byte, what string) error {
	if file == "" {
		_, err := cmd.OutOrStdout().Write(b)
		return err
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Wrote %s to %s.\n", what, file)
	return nil
}
