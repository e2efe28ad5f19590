package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/sigma"
)

// newRulesTestCmd is "warden rules test FILE|DIR... --events EVENTS.jsonl":
// it compiles Sigma rules and runs events through them offline, with the
// engine the servers use (no server is needed), and prints which events
// match which rules and the alerts (hits) that would be raised.
func newRulesTestCmd(g *globals) *cobra.Command {
	var eventsFile, mappingFile string
	var placeholders []string
	var builtin bool
	cmd := &cobra.Command{
		Use:   "test FILE|DIR... --events EVENTS.jsonl",
		Short: "Run events through Sigma rules offline: which events match which rules, and the alerts they raise",
		Long: `Compiles the rules (a DIR loads every .yml under it; --builtin adds the
built-in pack) and runs the events of EVENTS.jsonl (one flat ECS JSON
object a line; - reads standard input) through them in order, with
correlations over the events' @timestamp. Prints each match (event index:
the 0-based position of the event in the file, blank lines not counted)
and the alerts that would be raised (refs are event indexes).`,
		Args: args(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, paths []string) error {
			if len(paths) == 0 && !builtin {
				return usagef("rules test needs FILE or DIR arguments or --builtin")
			}
			if eventsFile == "" {
				return usagef("rules test needs --events EVENTS.jsonl")
			}
			cfg := sigma.Config{Placeholders: map[string][]string{}}
			for _, p := range placeholders {
				name, val, ok := strings.Cut(p, "=")
				if !ok || name == "" {
					return usagef("--placeholder %q: want NAME=VALUE", p)
				}
				cfg.Placeholders[name] = append(cfg.Placeholders[name], val)
			}
			if mappingFile != "" {
				data, err := os.ReadFile(mappingFile)
				if err != nil {
					return err
				}
				m, err := sigma.ParseMapping(mappingFile, data)
				if err != nil {
					return err
				}
				cfg.Mapping = sigma.DefaultMapping().Merge(m)
			}
			var rules []*sigma.Rule
			if builtin {
				b, err := sigma.Builtin()
				if err != nil {
					return err
				}
				rules = append(rules, b...)
			}
			loaded, err := readRuleFiles(paths)
			if err != nil {
				return err
			}
			rules = append(rules, loaded...)
			set, err := sigma.Compile(rules, cfg)
			if err != nil {
				return err
			}
			for _, w := range set.Warnings() {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			}
			in := g.stdin
			if eventsFile != "-" {
				f, err := os.Open(eventsFile)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			res, err := testRules(set, eventsFile, in)
			if err != nil {
				return err
			}
			f := cmd.Flags().Lookup("format").Value.(*format)
			if *f == "json" {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			return res.writeTable(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&eventsFile, "events", "", "file of events, one JSON object a line (- for standard input)")
	cmd.Flags().StringVar(&mappingFile, "mapping", "", "YAML file extending the default logsource and field mapping")
	cmd.Flags().StringArrayVar(&placeholders, "placeholder", nil, "NAME=VALUE for the expand modifier's %NAME% (repeatable)")
	cmd.Flags().BoolVar(&builtin, "builtin", false, "add the built-in rule pack")
	addFormat(cmd)
	return cmd
}

// readRuleFiles parses the Sigma rules of files and directories (every
// .yml and .yaml under a directory, in lexical order).
func readRuleFiles(paths []string) ([]*sigma.Rule, error) {
	files, err := ruleFiles(paths)
	if err != nil {
		return nil, err
	}
	var rules []*sigma.Rule
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		r, err := sigma.Parse(f, data)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r...)
	}
	return rules, nil
}

// rulesTestResult is the output of "rules test".
type rulesTestResult struct {
	Events  int              `json:"events"`
	Matches []rulesTestMatch `json:"matches"`
	Hits    []rulesTestHit   `json:"hits"`
}

type rulesTestMatch struct {
	RuleID     string `json:"rule_id"`
	Title      string `json:"title"`
	EventIndex int    `json:"event_index"`
}

// rulesTestHit is an alert as it stands after the last event.
type rulesTestHit struct {
	Key       string            `json:"key"`
	RuleID    string            `json:"rule_id"`
	Title     string            `json:"title"`
	Level     string            `json:"level"`
	Tags      []string          `json:"tags"`
	Group     map[string]string `json:"group"`
	Count     int64             `json:"count"`
	FirstSeen string            `json:"first_seen"`
	LastSeen  string            `json:"last_seen"`
	Hosts     []string          `json:"hosts"`
	Refs      []uint64          `json:"event_refs"`
}

// testRules runs the events of r (JSON lines) through set.
func testRules(set *sigma.Set, name string, r io.Reader) (*rulesTestResult, error) {
	res := &rulesTestResult{Matches: []rulesTestMatch{}, Hits: []rulesTestHit{}}
	corr := sigma.NewCorrelator(set, nil, sigma.Limits{})
	byKey := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), events.MaxEventBytes+1)
	var matched []*sigma.Rule
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var ev events.Event
		if err := json.Unmarshal(b, &ev); err != nil {
			return nil, fmt.Errorf("%s:%d: not a JSON object: %v", name, line, err)
		}
		idx := res.Events
		res.Events++
		matched = set.Match(ev, matched)
		for _, m := range matched {
			res.Matches = append(res.Matches, rulesTestMatch{RuleID: m.ID, Title: m.Title, EventIndex: idx})
		}
		for _, h := range corr.Observe(ev, matched, uint64(idx)) {
			th := rulesTestHit{
				Key: h.Key, RuleID: h.Rule.ID, Title: h.Rule.Title, Level: h.Rule.Level, Tags: h.Rule.Tags,
				Group: h.Group, Count: h.Count, FirstSeen: events.FormatTime(h.First), LastSeen: events.FormatTime(h.Last),
				Hosts: h.Hosts, Refs: h.Refs,
			}
			if i, ok := byKey[h.Key]; ok {
				res.Hits[i] = th
			} else {
				byKey[h.Key] = len(res.Hits)
				res.Hits = append(res.Hits, th)
			}
		}
	}
	if err := sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			return nil, fmt.Errorf("%s:%d: event longer than %d bytes", name, line+1, events.MaxEventBytes)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return res, nil
}

func (res *rulesTestResult) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintf(tw, "%d events, %d matches, %d alerts\n", res.Events, len(res.Matches), len(res.Hits))
	if len(res.Matches) > 0 {
		fmt.Fprintf(tw, "\nEVENT\tRULE ID\tTITLE\n")
		for _, m := range res.Matches {
			fmt.Fprintf(tw, "%d\t%s\t%s\n", m.EventIndex, m.RuleID, cell(m.Title))
		}
	}
	if len(res.Hits) > 0 {
		fmt.Fprintf(tw, "\nALERT RULE\tLEVEL\tGROUP\tCOUNT\tFIRST SEEN\tLAST SEEN\tEVENTS\n")
		for _, h := range res.Hits {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", cell(h.Title), h.Level, groupString(h.Group), h.Count, h.FirstSeen, h.LastSeen, cell(h.Refs))
		}
	}
	return tw.Flush()
}

func groupString(g map[string]string) string {
	keys := make([]string, 0, len(g))
	for k := range g {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+g[k])
	}
	return cell(strings.Join(parts, ","))
}
