package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

// maxDocBytes bounds a policy, schema or entities file read by the CLI.
const maxDocBytes = 4 << 20

// readDoc reads FILE, or standard input for "-".
func (g *globals) readDoc(name string) ([]byte, error) {
	return g.readLimited(name, maxDocBytes)
}

// readLimited reads file name, or stdin for "-", refusing more than limit
// bytes.
func (g *globals) readLimited(name string, limit int) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = g.stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		if name == "-" {
			name = "stdin"
		}
		return nil, fmt.Errorf("%s: larger than %d bytes", name, limit)
	}
	return b, nil
}

// withClient wraps f with the construction of the API client.
func (g *globals) withClient(f func(cmd *cobra.Command, c *client.Client, a []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, a []string) error {
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		return f(cmd, c, a)
	}
}

func newAuthzCmd(g *globals) *cobra.Command {
	store := newGroupCmd("store", "Create, list and delete policy stores",
		newStoreCreateCmd(g), newStoreListCmd(g), newStoreDeleteCmd(g))
	schema := newGroupCmd("schema", "Manage a policy store's Cedar schema", newSchemaWriteCmd(g))
	entities := newGroupCmd("entities", "Manage a policy store's entities", newEntitiesWriteCmd(g))
	return newGroupCmd("authz", "Policy stores and authorization decisions", store, schema, entities, newCheckCmd(g))
}

func newStoreCreateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "create NAME", Short: "Create an empty policy store", Args: args(cobra.ExactArgs(1)),
		RunE: g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
			if err := c.StoreCreate(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created policy store %q.\n", a[0])
			return nil
		}),
	}
}

func newStoreListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List policy stores", Args: args(cobra.NoArgs)}
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		names, err := c.StoreList(cmd.Context())
		if err != nil {
			return err
		}
		return outputList(cmd.OutOrStdout(), f, "stores", names)
	})
	return cmd
}

// outputList prints names one per line, or {"<key>": [...]} as JSON.
func outputList(w io.Writer, f *format, key string, names []string) error {
	if names == nil {
		names = []string{}
	}
	if *f == "json" {
		return writeJSON(w, map[string][]string{key: names})
	}
	for _, n := range names {
		fmt.Fprintln(w, n)
	}
	return nil
}

func newStoreDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME", Short: "Delete a policy store with its policies, schema and entities", Args: args(cobra.ExactArgs(1)),
		RunE: g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
			if err := c.StoreDelete(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted policy store %q.\n", a[0])
			return nil
		}),
	}
}

func newSchemaWriteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "write STORE FILE", Short: "Set a store's Cedar schema from FILE (- for stdin)", Args: args(cobra.ExactArgs(2)),
		RunE: g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
			b, err := g.readDoc(a[1])
			if err != nil {
				return err
			}
			if err := c.SchemaWrite(cmd.Context(), a[0], string(b)); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Wrote the schema of policy store %q.\n", a[0])
			return nil
		}),
	}
}

func newEntitiesWriteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "write STORE FILE", Short: "Replace a store's entities with FILE (Cedar JSON entities; - for stdin)", Args: args(cobra.ExactArgs(2)),
		RunE: g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
			b, err := g.readDoc(a[1])
			if err != nil {
				return err
			}
			if !json.Valid(b) {
				return usagef("%s: not valid JSON", a[1])
			}
			n, err := c.EntitiesWrite(cmd.Context(), a[0], b)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Stored %d entities in policy store %q.\n", n, a[0])
			return nil
		}),
	}
}

func newCheckCmd(g *globals) *cobra.Command {
	var store, entitiesFile, context string
	var req client.CheckRequest
	cmd := &cobra.Command{
		Use:   "check --store S --principal UID --action UID --resource UID [--context JSON] [--entities FILE]",
		Short: "Ask a policy store for a decision (exit 0 for allow and deny alike)",
		Args:  args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	fl := cmd.Flags()
	fl.StringVar(&store, "store", "", "policy store to ask (required)")
	fl.StringVar(&req.Principal, "principal", "", `principal entity, e.g. 'User::"bob"' (required)`)
	fl.StringVar(&req.Action, "action", "", `action entity, e.g. 'Action::"refund"' (required)`)
	fl.StringVar(&req.Resource, "resource", "", `resource entity, e.g. 'Order::"42"' (required)`)
	fl.StringVar(&context, "context", "", "request context as a JSON object")
	fl.StringVar(&entitiesFile, "entities", "", "file of Cedar JSON entities for this request (- for stdin)")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		for _, r := range []struct{ flag, v string }{{"store", store}, {"principal", req.Principal}, {"action", req.Action}, {"resource", req.Resource}} {
			if r.v == "" {
				return usagef("--%s is required", r.flag)
			}
		}
		if context != "" {
			if t := bytes.TrimSpace([]byte(context)); !json.Valid(t) || len(t) == 0 || t[0] != '{' {
				return usagef("--context: must be a JSON object")
			}
			req.Context = json.RawMessage(context)
		}
		if entitiesFile != "" {
			b, err := g.readDoc(entitiesFile)
			if err != nil {
				return err
			}
			if !json.Valid(b) {
				return usagef("--entities: %s is not valid JSON", entitiesFile)
			}
			req.Entities = b
		}
		d, err := c.Check(cmd.Context(), store, req)
		if err != nil {
			return err
		}
		if d.Reasons == nil {
			d.Reasons = []string{}
		}
		if d.Errors == nil {
			d.Errors = []string{}
		}
		return output(cmd.OutOrStdout(), f, d, []row{
			{"Decision", d.Decision}, {"Reasons", strings.Join(d.Reasons, ", ")}, {"Errors", strings.Join(d.Errors, "; ")}})
	})
	return cmd
}

func newPolicyCmd(g *globals) *cobra.Command {
	return newGroupCmd("policy", "Write, read, list and delete Cedar policies",
		newPolicyWriteCmd(g), newPolicyReadCmd(g), newPolicyListCmd(g), newPolicyDeleteCmd(g))
}

func addStore(cmd *cobra.Command) *string {
	s := cmd.Flags().String("store", "warden", "policy store (\"warden\" governs Warden itself)")
	return s
}

func newPolicyWriteCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "write [--store S] NAME FILE", Short: "Write policy NAME from FILE (- for stdin)", Args: args(cobra.ExactArgs(2))}
	store := addStore(cmd)
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		b, err := g.readDoc(a[1])
		if err != nil {
			return err
		}
		p, err := c.PolicyWrite(cmd.Context(), *store, a[0], string(b))
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, p, []row{{"Store", p.Store}, {"Name", p.Name}, {"Version", p.Version}})
	})
	return cmd
}

func newPolicyReadCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "read [--store S] NAME", Short: "Print policy NAME", Args: args(cobra.ExactArgs(1))}
	store := addStore(cmd)
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		p, err := c.PolicyRead(cmd.Context(), *store, a[0])
		if err != nil {
			return err
		}
		if *f == "json" {
			return writeJSON(cmd.OutOrStdout(), p)
		}
		_, err = io.WriteString(cmd.OutOrStdout(), strings.TrimRight(p.Text, "\n")+"\n")
		return err
	})
	return cmd
}

func newPolicyListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "list [--store S]", Short: "List the policies of a store", Args: args(cobra.NoArgs)}
	store := addStore(cmd)
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		names, err := c.PolicyList(cmd.Context(), *store)
		if err != nil {
			return err
		}
		return outputList(cmd.OutOrStdout(), f, "policies", names)
	})
	return cmd
}

func newPolicyDeleteCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "delete [--store S] NAME", Short: "Delete policy NAME", Args: args(cobra.ExactArgs(1))}
	store := addStore(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		if err := c.PolicyDelete(cmd.Context(), *store, a[0]); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Deleted policy %q from store %q.\n", a[0], *store)
		return nil
	})
	return cmd
}
