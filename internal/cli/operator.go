package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

func newOperatorCmd(g *globals) *cobra.Command {
	return newGroupCmd("operator", "Initialize, unseal, seal and rotate the server",
		newInitCmd(g), newUnsealCmd(g), newSealCmd(g), newRotateCmd(g), newKeyStatusCmd(g), newRaftCmd(g),
		newGenerateRootCmd(g), newDualControlCmd(g))
}

func newInitCmd(g *globals) *cobra.Command {
	var req client.InitRequest
	cmd := &cobra.Command{
		Use:   "init --key-shares N --key-threshold T",
		Short: "Initialize a new server and print its unseal keys and root token",
		Args:  args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	cmd.Flags().IntVar(&req.KeyShares, "key-shares", 0, "number of unseal key shares to create (1-255)")
	cmd.Flags().IntVar(&req.KeyThreshold, "key-threshold", 0, "number of shares needed to unseal")
	cmd.Flags().BoolVar(&req.DualControl, "dual-control", false, "turn dual control on and write the default approval rule (docs/governance.md)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		for _, name := range []string{"key-shares", "key-threshold"} {
			if !cmd.Flags().Changed(name) {
				return usagef("--%s is required", name)
			}
		}
		if req.KeyShares < 1 || req.KeyShares > 255 || req.KeyThreshold < 1 || req.KeyThreshold > req.KeyShares {
			return usagef("need 1 <= --key-threshold <= --key-shares <= 255")
		}
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		res, err := c.Init(cmd.Context(), req)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if *f == "json" {
			return writeJSON(w, res)
		}
		for i, k := range res.UnsealKeys {
			fmt.Fprintf(w, "Unseal Key %d: %s\n", i+1, k)
		}
		fmt.Fprintf(w, "\nInitial Root Token: %s\n\n", res.RootToken)
		fmt.Fprintf(w, "Warden is initialized with %d key shares and a key threshold of %d.\n"+
			"Store the unseal keys apart from each other and from the root token, in separate\n"+
			"safe places: they are shown only once, and %d of them are needed after every\n"+
			"restart to unseal the server. The server is still sealed.\n",
			req.KeyShares, req.KeyThreshold, req.KeyThreshold)
		if req.DualControl {
			fmt.Fprintf(w, "\nDual control is on: the operations of the policy dual-control need two approvals\n"+
				"from members of the group security, the root token's included.\n")
		}
		return nil
	}
	return cmd
}

// maxKeyLine bounds an unseal key read from stdin.
const maxKeyLine = 4096

// readLine reads one line from r, without its line ending.
func readLine(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxKeyLine+1), 512)
	line, err := br.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no input on stdin")
		}
		return "", fmt.Errorf("read stdin: %w", err)
	}
	if len(line) > maxKeyLine {
		return "", fmt.Errorf("input line longer than %d bytes", maxKeyLine)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// isTerminal reports whether r is a character device such as a terminal,
// in which case a prompt is worth printing.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newUnsealCmd(g *globals) *cobra.Command {
	var reset bool
	cmd := &cobra.Command{
		Use:   "unseal [KEY]",
		Short: "Give one unseal key share (read from stdin when KEY is omitted)",
		Long: `Give one unseal key share and print the seal status. When KEY is omitted,
one line is read from stdin, which keeps the key out of the shell history and
the process list. --reset discards the shares given so far in this round.`,
		Args: args(cobra.MaximumNArgs(1)),
	}
	f := addFormat(cmd)
	cmd.Flags().BoolVar(&reset, "reset", false, "discard the shares given in this unseal round")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if reset && len(a) > 0 {
			return usagef("give either KEY or --reset, not both")
		}
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		var st client.SealStatus
		if reset {
			st, err = c.UnsealReset(cmd.Context())
		} else {
			key := ""
			if len(a) == 1 {
				key = a[0]
			} else {
				if isTerminal(g.stdin) {
					// The key is echoed: this package reads plain lines only.
					fmt.Fprint(cmd.ErrOrStderr(), "Unseal key (input is visible): ")
				}
				if key, err = readLine(g.stdin); err != nil {
					return fmt.Errorf("unseal key: %w", err)
				}
			}
			key = strings.TrimSpace(key)
			if key == "" {
				return usagef("unseal key: empty")
			}
			st, err = c.Unseal(cmd.Context(), key)
		}
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, st, sealRows(st))
	}
	return cmd
}

func newSealCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "seal",
		Short: "Seal the server (root token)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			if err := c.Seal(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Success! Warden is sealed.")
			return nil
		},
	}
}

func keyRows(ks client.KeyStatus) []row {
	return []row{{"Term", ks.Term}, {"Install Time", ks.InstallTime}}
}

func newRotateCmd(g *globals) *cobra.Command {
	return newShowCmd(g, "rotate", "Add a new data-key term (root token); prints the new term",
		func(cmd *cobra.Command, c *client.Client) (any, []row, error) {
			ks, err := c.Rotate(cmd.Context())
			return ks, keyRows(ks), err
		})
}

func newKeyStatusCmd(g *globals) *cobra.Command {
	return newShowCmd(g, "key-status", "Show the current data-key term",
		func(cmd *cobra.Command, c *client.Client) (any, []row, error) {
			ks, err := c.KeyStatus(cmd.Context())
			return ks, keyRows(ks), err
		})
}

// newShowCmd builds an argument-less command that makes one call and prints
// its answer (--format table|json).
func newShowCmd(g *globals, use, short string, call func(*cobra.Command, *client.Client) (any, []row, error)) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: args(cobra.NoArgs)}
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		v, rows, err := call(cmd, c)
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, v, rows)
	})
	return cmd
}
