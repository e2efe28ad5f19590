// Package cli is the warden command-line interface: a cobra command tree
// built fresh by each call of Main, so tests run it in-process with buffers.
// Every command that talks to a server does so through pkg/client; this
// package holds no HTTP code and no package-level state.
//
// Exit codes: 0 success, 1 error, 2 usage error. Errors are one line,
// "Error: <reason>", on stderr. See docs/cli.md.
package cli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/internal/version"
	"github.com/warden-sec/warden/pkg/client"
)

// Exit codes returned by Main.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// Main runs the warden CLI with args (without the program name) and returns
// the process exit code. Environment variables are read with os.Getenv.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return run(ctx, args, stdin, stdout, stderr, os.Getenv)
}

// run is Main with the context and environment injected.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	g := &globals{stdin: stdin, getenv: getenv}
	root := newRootCmd(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	addCompletionCmd(root) // after SetOut: cobra's generators keep the writer they see
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var held *client.ApprovalRequiredError
	if errors.As(err, &held) {
		// Held for approval (dual control): not a failure; nothing ran yet.
		fmt.Fprintln(stdout, held.Error())
		return ExitOK
	}
	msg := oneLine(err.Error()) + hint(err) + g.sessionHint(err)
	for _, secret := range []string{g.token, getenv(client.EnvToken)} {
		if secret != "" {
			msg = strings.ReplaceAll(msg, secret, "[redacted]")
		}
	}
	fmt.Fprintf(stderr, "Error: %s\n", msg)
	var ue *usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitError
}

// hint returns advice to append to the message of err, or "". A server
// whose certificate chains to no CA the client trusts (the bootstrap CA of a
// new server is in no system root store) is the first error a new user
// meets.
func hint(err error) string {
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return " (hint: the server's certificate is signed by a CA this client does not trust; set " +
			client.EnvCACert + " or --ca-cert to the server's CA file, <data-dir>/tls/ca.pem for a single server)"
	}
	return ""
}

// usageError marks a command-line mistake (exit code 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// args wraps a cobra argument validator so that its errors are usage errors.
func args(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := v(cmd, a); err != nil {
			return &usageError{err}
		}
		return nil
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// globals holds the values of the global flags and the injected environment.
type globals struct {
	stdin  io.Reader
	getenv func(string) string

	address, token, caCert, clientCert, clientKey string
	// approved is --approved-request: the approved request the command's
	// requests run as (dual control).
	approved string
	// savedFrom is the token file the token was read from, if it was.
	savedFrom string
}

// client builds an API client from the global flags, falling back to the
// WARDEN_* environment variables for flags not given. The token is --token,
// else WARDEN_TOKEN, else the one "warden login" saved in ~/.warden/token
// (refused if others may read that file).
func (g *globals) client(cmd *cobra.Command) (*client.Client, error) {
	return g.newClient(cmd, true)
}

// newClient is client; withToken false looks no token up and sends none
// (the login commands, which open a session rather than present one).
func (g *globals) newClient(cmd *cobra.Command, withToken bool) (*client.Client, error) {
	f := cmd.Flags()
	pick := func(flag, val, env string) string {
		if f.Changed(flag) {
			return val
		}
		return g.getenv(env)
	}
	cfg := client.Config{
		Address:        pick("address", g.address, client.EnvAddress),
		Token:          pick("token", g.token, client.EnvToken),
		CACertFile:     pick("ca-cert", g.caCert, client.EnvCACert),
		ClientCertFile: pick("client-cert", g.clientCert, client.EnvClientCert),
		ClientKeyFile:  pick("client-key", g.clientKey, client.EnvClientKey),
	}
	if cfg.Address == "" {
		cfg.Address = client.DefaultAddress
	}
	if !withToken {
		cfg.Token = ""
		return client.New(cfg)
	}
	if cfg.Token == "" && !f.Changed("token") {
		t, err := g.savedToken()
		if err != nil {
			return nil, err
		}
		cfg.Token = t
	}
	g.token = cfg.Token // remembered so that Main can scrub it from errors
	return client.New(cfg)
}

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "warden",
		Short:         "Warden: a secrets server and its command-line client",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          args(cobra.NoArgs),
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		// --version: the same string the server reports in its status.
		Version: version.String(),
	}
	root.SetVersionTemplate("warden {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.address, "address", "", "server URL (env "+client.EnvAddress+", default "+client.DefaultAddress+")")
	pf.StringVar(&g.token, "token", "", "token to authenticate with (env "+client.EnvToken+")")
	pf.StringVar(&g.caCert, "ca-cert", "", "PEM file of the CA to trust instead of the system roots (env "+client.EnvCACert+")")
	pf.StringVar(&g.clientCert, "client-cert", "", "PEM client certificate for mutual TLS (env "+client.EnvClientCert+")")
	pf.StringVar(&g.clientKey, "client-key", "", "PEM client key for mutual TLS (env "+client.EnvClientKey+")")
	pf.StringVar(&g.approved, "approved-request", "", "run the command's request as this approved request (dual control: the same request, sent again by its requester)")
	root.PersistentPreRun = func(cmd *cobra.Command, _ []string) {
		if g.approved != "" {
			cmd.SetContext(client.WithApprovedRequest(cmd.Context(), g.approved))
		}
	}
	root.AddCommand(
		newStatusCmd(g),
		newOperatorCmd(g),
		newTokenCmd(g),
		newKVCmd(g),
		newAuthzCmd(g),
		newPolicyCmd(g),
		newAuditCmd(g),
		newNodeCmd(g),
		newCertCmd(g),
		newZoneCmd(g),
		newConduitCmd(g),
		newEventsCmd(g),
		newAgentCmd(g),
		newRulesCmd(g),
		newAlertsCmd(g),
		newNotifyCmd(g),
		newDecisionCmd(g, newDecisionApproveCmd),
		newIncidentCmd(g),
		newComplianceCmd(g),
		newPlaybookCmd(g),
		newTransitCmd(g),
		newRequestCmd(g),
		newVersionCmd(),
		newServerCmd(),
		newWitnessCmd(),
		newUserCmd(g),
		newLoginCmd(g),
		newLogoutCmd(g),
		newAuthCmd(g),
	)
	return root
}

// addCompletionCmd adds "warden completion bash|zsh|fish|powershell", cobra's
// generator; the scripts complete commands and flags by calling the binary's
// hidden "__complete" command. An unknown shell is a usage error (cobra
// would print the help and exit 0).
func addCompletionCmd(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Args = args(cobra.ArbitraryArgs)
			c.RunE = func(cmd *cobra.Command, a []string) error {
				if len(a) > 0 {
					return usagef("unknown shell %q: want bash, zsh, fish or powershell", a[0])
				}
				return cmd.Help()
			}
		}
	}
}

// newGroupCmd returns a command that only holds subcommands.
func newGroupCmd(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(subs...)
	return cmd
}

// format is the value of --format: "table" or "json".
type format string

func (f *format) String() string { return string(*f) }
func (f *format) Type() string   { return "table|json" }
func (f *format) Set(s string) error {
	switch s {
	case "table", "json":
		*f = format(s)
		return nil
	}
	return fmt.Errorf("must be table or json, got %q", s)
}

// addFormat adds --format to cmd and returns its value.
func addFormat(cmd *cobra.Command) *format {
	f := format("table")
	cmd.Flags().Var(&f, "format", "output format: table or json")
	return &f
}

// row is one key/value line of table output.
type row struct {
	key string
	val any
}

// output prints v as indented JSON, or rows as an aligned table.
func output(w io.Writer, f *format, v any, rows []row) error {
	if *f == "json" {
		return writeJSON(w, v)
	}
	return writeTable(w, rows)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeTable(w io.Writer, rows []row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", cell(r.key), cell(r.val))
	}
	return tw.Flush()
}

// writeTableRaw is writeTable for rows whose values are preformatted,
// tab-separated cells.
func writeTableRaw(w io.Writer, rows []row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r.key, r.val)
	}
	return tw.Flush()
}

// cell renders a value for table output: strings as is (newlines and tabs
// escaped so that a row stays one row), everything else as JSON.
func cell(v any) string {
	s, ok := v.(string)
	if !ok {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		s = string(b)
	}
	return strings.NewReplacer("\n", `\n`, "\t", `\t`, "\r", `\r`).Replace(s)
}
