package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

func newEventsCmd(g *globals) *cobra.Command {
	var s client.EventSearch
	search := &cobra.Command{Use: "search [QUERY] [--since 1h] [--until T] [--host H] [--limit N]",
		Short: "Search the event stream (newest first)",
		Long: `Search the events stored in a time window (default: the last hour).

QUERY: field:value (quoted values, * wildcards, field:* for "exists",
field:>=400 and >, <, <= for numbers), bare words searched in message,
AND (or nothing), OR, NOT and parentheses. Example:

  warden events search 'source.ip:203.0.113.7 AND event.outcome:failure' --since 1h`,
		Args: args(cobra.MaximumNArgs(1))}
	sf := addFormat(search)
	search.Flags().StringVar(&s.Since, "since", "", "start of the window: an RFC 3339 time or a duration back from now (default 1h)")
	search.Flags().StringVar(&s.Until, "until", "", "end of the window: an RFC 3339 time or a duration back from now (default now)")
	search.Flags().StringVar(&s.Host, "host", "", "only this host's events")
	search.Flags().IntVar(&s.Limit, "limit", 100, "at most this many events (up to 10000): the newest")
	search.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		if len(a) == 1 {
			s.Query = a[0]
		}
		res, err := c.EventsSearch(cmd.Context(), s)
		if err != nil {
			return err
		}
		if *sf == "json" {
			if res.Events == nil {
				res.Events = []client.Event{}
			}
			return writeJSON(cmd.OutOrStdout(), res)
		}
		for _, ev := range res.Events {
			printEvent(cmd.OutOrStdout(), ev)
		}
		if res.Truncated {
			fmt.Fprintf(cmd.ErrOrStderr(), "%d of %d matching events shown (the newest); narrow the window or raise --limit\n",
				len(res.Events), res.Matched)
		}
		return nil
	})
	var t client.EventSearch
	tail := &cobra.Command{Use: "tail [--host H] [--query Q]", Short: "Follow the events stored from now on (Ctrl-C ends)", Args: args(cobra.NoArgs)}
	tf := addFormat(tail)
	tail.Flags().StringVar(&t.Host, "host", "", "only this host's events")
	tail.Flags().StringVar(&t.Query, "query", "", "only the events matching this query (see events search)")
	tail.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		w := cmd.OutOrStdout()
		return c.EventsTail(cmd.Context(), t, func(ev client.Event) error {
			if *tf == "json" {
				return json.NewEncoder(w).Encode(ev) // one object a line
			}
			printEvent(w, ev)
			return nil
		})
	})
	return newGroupCmd("events", "Search and follow the fleet's security events", search, tail)
}

// printEvent writes one line: time, host, dataset, message (or action).
func printEvent(w io.Writer, ev client.Event) {
	str := func(k string) string {
		if v, ok := ev[k]; ok && v != nil {
			return strings.ReplaceAll(fmt.Sprint(v), "\n", " ")
		}
		return "-"
	}
	msg := str("message")
	if msg == "-" {
		msg = str("event.action")
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", str("@timestamp"), str("host.name"), str("event.dataset"), msg)
}
