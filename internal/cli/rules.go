package cli

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/warden-sec/warden/internal/sigma"
	"github.com/warden-sec/warden/pkg/client"
)

func newRulesCmd(g *globals) *cobra.Command {
	return newGroupCmd("rules", "Manage the cluster's Sigma detection rules",
		newRulesPutCmd(g), newRulesListCmd(g), newRulesShowCmd(g), newRulesDeleteCmd(g), newRulesPlaceholdersCmd(g), newRulesMappingCmd(g),
		newRulesTestCmd(g), // offline (internal/cli/rulestest.go)
	)
}

// maxRuleFileBytes bounds a rule file the CLI reads.
const maxRuleFileBytes = 16 << 20

// ruleFiles expands the arguments of rules put: files as given, and every
// .yml or .yaml file under a directory, sorted.
func ruleFiles(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			out = append(out, a)
			continue
		}
		var found []string
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
				found = append(found, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: no .yml file under it", a)
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

// loadRules parses the rule files (each may hold several documents). The
// detection rules come first, so that the correlation rules that name them
// are put after them.
func loadRules(files []string) ([]*sigma.Rule, error) {
	var det, corr []*sigma.Rule
	seen := map[string]string{}
	for _, f := range files {
		b, err := readRuleFile(f)
		if err != nil {
			return nil, err
		}
		rs, err := sigma.Parse(f, b)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if r.ID == "" {
				return nil, fmt.Errorf("%s:%d: the rule %q has no id; Warden stores rules by id", f, r.Line, r.Title)
			}
			if prev, dup := seen[r.ID]; dup {
				return nil, fmt.Errorf("%s:%d: rule id %s is also in %s", f, r.Line, r.ID, prev)
			}
			seen[r.ID] = f
			if r.Correlation != nil {
				corr = append(corr, r)
			} else {
				det = append(det, r)
			}
		}
	}
	return append(det, corr...), nil
}

func readRuleFile(name string) ([]byte, error) {
	b, err := readFileLimitedTo(name, maxRuleFileBytes)
	if err != nil {
		return nil, err
	}
	if len(b) > maxRuleFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxRuleFileBytes)
	}
	return b, nil
}

func readFileLimitedTo(name string, n int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, n+1))
}

func newRulesPutCmd(g *globals) *cobra.Command {
	var builtin bool
	cmd := &cobra.Command{
		Use:   "put FILE|DIR... | --builtin",
		Short: "Store Sigma rules in the cluster (each rule by its id, as a new version)",
		Long: `Store Sigma rules in the cluster. A FILE may hold several rules (YAML documents
separated by ---); a DIR loads every .yml (and .yaml) file under it. Each rule is
stored under its own id, as a new version; detection rules are put before the
correlation rules that name them. --builtin puts Warden's built-in pack.
A rule the server refuses stops the command, naming the rule, the line and the
feature; the rules put before it stay stored.`,
		Args: args(cobra.ArbitraryArgs),
	}
	f := addFormat(cmd)
	cmd.Flags().BoolVar(&builtin, "builtin", false, "put Warden's built-in rule pack")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		var rules []*sigma.Rule
		switch {
		case builtin && len(a) > 0:
			return usagef("give FILE|DIR arguments or --builtin, not both")
		case builtin:
			rs, err := sigma.Builtin()
			if err != nil {
				return err
			}
			rules = rs
		case len(a) == 0:
			return usagef("give rule files or directories, or --builtin")
		default:
			files, err := ruleFiles(a)
			if err != nil {
				return err
			}
			if rules, err = loadRules(files); err != nil {
				return err
			}
		}
		if len(rules) == 0 {
			return fmt.Errorf("no rule found")
		}
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		var done []client.Rule
		for _, r := range rules {
			rec, err := c.RulePut(cmd.Context(), r.ID, r.Source)
			if err != nil {
				return fmt.Errorf("rule %s (%s:%d): %w", r.ID, r.File, r.Line, err)
			}
			done = append(done, rec)
			if *f != "json" {
				fmt.Fprintf(w, "put %s (version %d): %s\n", rec.ID, rec.Version, rec.Title)
			}
		}
		if *f == "json" {
			return writeJSON(w, struct {
				Rules []client.Rule `json:"rules"`
			}{done})
		}
		return nil
	}
	return cmd
}

func newRulesListCmd(g *globals) *cobra.Command {
	type list struct {
		Rules   []client.Rule `json:"rules"`
		Version uint64        `json:"version"`
	}
	return newReadCmd(g, "list", "List the stored rules", cobra.NoArgs,
		func(ctx context.Context, c *client.Client, _ []string) (list, error) {
			rs, v, err := c.RuleList(ctx)
			if rs == nil {
				rs = []client.Rule{}
			}
			return list{rs, v}, err
		},
		func(w io.Writer, l list) error {
			rows := []row{{"ID", "KIND\tLEVEL\tVERSION\tTITLE"}}
			for _, r := range l.Rules {
				rows = append(rows, row{r.ID, fmt.Sprintf("%s\t%s\t%d\t%s", r.Kind, r.Level, r.Version, cell(r.Title))})
			}
			return writeTableRaw(w, rows)
		})
}

func newRulesShowCmd(g *globals) *cobra.Command {
	return newReadCmd(g, "show ID", "Show a stored rule and its YAML", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, a []string) (client.Rule, error) {
			return c.RuleGet(ctx, a[0])
		},
		func(w io.Writer, r client.Rule) error {
			return writeTableYAML(w, []row{{"ID", r.ID}, {"Title", r.Title}, {"Kind", r.Kind}, {"Level", r.Level},
				{"Status", r.Status}, {"Version", r.Version}, {"Created Time", r.CreatedTime}, {"Updated Time", r.UpdatedTime}}, r.YAML)
		})
}

// writeTableYAML writes rows, then after a blank line the YAML source of
// what they describe (rules show, playbook show).
func writeTableYAML(w io.Writer, rows []row, src string) error {
	if err := writeTable(w, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	_, err := fmt.Fprint(w, strings.TrimRight(src, "\n")+"\n")
	return err
}

func newRulesDeleteCmd(g *globals) *cobra.Command {
	return newDeleteCmd(g, "delete ID", "Delete a stored rule", "rule", (*client.Client).RuleDelete)
}

// newDeleteCmd is a command that deletes one named thing and says so.
func newDeleteCmd(g *globals, use, short, what string, del func(*client.Client, context.Context, string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			if err := del(c, cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! Deleted %s %s.\n", what, a[0])
			return nil
		},
	}
}

// newReadCmd is a command that reads one value through the client and
// prints it: as JSON with --format json, else with table.
func newReadCmd[T any](g *globals, use, short string, nargs cobra.PositionalArgs,
	get func(ctx context.Context, c *client.Client, args []string) (T, error), table func(io.Writer, T) error) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: args(nargs)}
	f := addFormat(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		v, err := get(cmd.Context(), c, a)
		if err != nil {
			return err
		}
		if *f == "json" {
			return writeJSON(cmd.OutOrStdout(), v)
		}
		return table(cmd.OutOrStdout(), v)
	}
	return cmd
}

func newRulesPlaceholdersCmd(g *globals) *cobra.Command {
	show := &cobra.Command{
		Use:   "show",
		Short: "Show the placeholders of the expand modifier",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			p, err := c.Placeholders(cmd.Context())
			if err != nil {
				return err
			}
			if p == nil {
				p = map[string][]string{}
			}
			return writeJSON(cmd.OutOrStdout(), struct {
				Placeholders map[string][]string `json:"placeholders"`
			}{p})
		},
	}
	set := &cobra.Command{
		Use:   "set FILE",
		Short: "Replace the placeholders with FILE's (YAML or JSON: name: [values])",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			b, err := readRuleFile(a[0])
			if err != nil {
				return err
			}
			p := map[string][]string{}
			if err := yaml.Unmarshal(b, &p); err != nil {
				return fmt.Errorf("%s: want a map of placeholder names to lists of values: %w", a[0], err)
			}
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			if err := c.PlaceholdersPut(cmd.Context(), p); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! Stored %d placeholders.\n", len(p))
			return nil
		},
	}
	return newGroupCmd("placeholders", "Show or set the placeholders of the expand modifier", show, set)
}

func newRulesMappingCmd(g *globals) *cobra.Command {
	show := &cobra.Command{
		Use:   "show",
		Short: "Show the operators' extension of the Sigma mapping (YAML)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			m, err := c.Mapping(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), m)
			return nil
		},
	}
	set := &cobra.Command{
		Use:   "set FILE",
		Short: "Extend the default Sigma mapping with FILE's (the form of docs/detection-sigma.md, \"The mapping\"); an empty FILE removes the extension",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			b, err := readRuleFile(a[0])
			if err != nil {
				return err
			}
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			if err := c.MappingPut(cmd.Context(), string(b)); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Success! Stored the mapping; the servers compile the rules with it.")
			return nil
		},
	}
	return newGroupCmd("mapping", "Show or set the operators' extension of the Sigma mapping", show, set)
}
