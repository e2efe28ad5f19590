package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

func newKVCmd(g *globals) *cobra.Command {
	return newGroupCmd("kv", "Read and write versioned key/value secrets",
		newKVPutCmd(g), newKVGetCmd(g), newKVDeleteCmd(g), newKVListCmd(g), newKVMetadataCmd(g))
}

func newKVPutCmd(g *globals) *cobra.Command {
	var (
		cas        uint64
		allowEmpty bool
	)
	cmd := &cobra.Command{
		Use:   "put [--cas N] [--allow-empty] PATH [KEY=VALUE | KEY=@FILE | KEY=-]...",
		Short: "Write a new version of a secret",
		Long: `Write a new version of the secret at PATH, replacing all of its keys.
VALUE is taken literally; KEY=@FILE reads the value from FILE and KEY=- reads it
from stdin (both exactly, including any trailing newline). With --cas N the write
succeeds only if the current version is N (0: the secret must not exist yet).
A put with no KEY=VALUE pairs would replace every key with none, so it is
refused unless --allow-empty is given.`,
		Args: args(cobra.MinimumNArgs(1)),
	}
	f := addFormat(cmd)
	cmd.Flags().Uint64Var(&cas, "cas", 0, "check-and-set: write only if the current version is N (0: must not exist)")
	cmd.Flags().BoolVar(&allowEmpty, "allow-empty", false, "write a version with no keys when no KEY=VALUE pairs are given")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if len(a) == 1 && !allowEmpty {
			return usagef("no KEY=VALUE pairs for %s: the new version would have no keys; give --allow-empty to write it anyway", a[0])
		}
		data, err := parseKVArgs(a[1:], &kvSources{stdin: g.stdin, readFile: readFileLimited})
		if err != nil {
			return err
		}
		var casp *uint64
		if cmd.Flags().Changed("cas") {
			casp = &cas
		}
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		res, err := c.KVPut(cmd.Context(), a[0], data, casp)
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, res, []row{{"Version", res.Version}, {"Created Time", res.CreatedTime}})
	}
	return cmd
}

func newKVGetCmd(g *globals) *cobra.Command {
	var (
		version uint64
		field   string
	)
	cmd := &cobra.Command{
		Use:   "get [--version N] [--field K] PATH",
		Short: "Read a secret (the latest version unless --version is given)",
		Args:  args(cobra.ExactArgs(1)),
	}
	f := addFormat(cmd)
	cmd.Flags().Uint64Var(&version, "version", 0, "version to read (0: latest)")
	cmd.Flags().StringVar(&field, "field", "", "print only this key's value, raw")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if field != "" && cmd.Flags().Changed("format") {
			return usagef("--field prints a raw value; do not combine it with --format")
		}
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		sec, err := c.KVGet(cmd.Context(), a[0], version)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if field != "" {
			v, ok := sec.Data[field]
			if !ok {
				return fmt.Errorf("no key %q in %s (version %d)", field, a[0], sec.Version)
			}
			return printRaw(w, v)
		}
		if sec.Data == nil {
			sec.Data = map[string]any{}
		}
		if *f == "json" {
			return writeJSON(w, sec)
		}
		rows := []row{{"Version", sec.Version}, {"Created Time", sec.CreatedTime}, {"Deletion Time", sec.DeletionTime}}
		if err := writeTable(w, rows); err != nil {
			return err
		}
		keys := make([]string, 0, len(sec.Data))
		for k := range sec.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		rows = []row{{"Key", "Value"}, {"---", "-----"}}
		for _, k := range keys {
			rows = append(rows, row{k, sec.Data[k]})
		}
		fmt.Fprintln(w)
		return writeTable(w, rows)
	}
	return cmd
}

// printRaw prints a string value exactly, followed by a newline unless it
// already ends with one; other values are printed as compact JSON.
func printRaw(w io.Writer, v any) error {
	s, ok := v.(string)
	if !ok {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		s = string(b)
	}
	if len(s) == 0 || s[len(s)-1] != '\n' {
		s += "\n"
	}
	_, err := io.WriteString(w, s)
	return err
}

func newKVDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete PATH",
		Short: "Soft-delete the latest version of a secret",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			if err := c.KVDelete(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! Deleted the latest version of %s.\n", a[0])
			return nil
		},
	}
}

func newKVListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [PREFIX]",
		Short: "List the names directly under PREFIX (folders end in /)",
		Args:  args(cobra.MaximumNArgs(1)),
	}
	f := addFormat(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		prefix := ""
		if len(a) == 1 {
			prefix = a[0]
		}
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		keys, err := c.KVList(cmd.Context(), prefix)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if *f == "json" {
			return writeJSON(w, struct {
				Keys []string `json:"keys"`
			}{keys})
		}
		for _, k := range keys {
			fmt.Fprintln(w, k)
		}
		return nil
	}
	return cmd
}

func newKVMetadataCmd(g *globals) *cobra.Command {
	return newReadCmd(g, "metadata PATH", "Show a secret's versions and timestamps", cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, a []string) (client.KVMetadata, error) {
			return c.KVMetadata(ctx, a[0])
		},
		func(w io.Writer, m client.KVMetadata) error {
			if err := writeTable(w, []row{
				{"Path", m.Path},
				{"Current Version", m.CurrentVersion},
				{"Oldest Version", m.OldestVersion},
				{"Max Versions", m.MaxVersions},
				{"Created Time", m.CreatedTime},
				{"Updated Time", m.UpdatedTime},
			}); err != nil {
				return err
			}
			return writeVersions(w, m.Versions)
		})
}

func writeVersions(w io.Writer, versions map[string]client.KVVersion) error {
	type kv struct {
		n uint64
		k string
	}
	vs := make([]kv, 0, len(versions))
	for k := range versions {
		n, _ := strconv.ParseUint(k, 10, 64)
		vs = append(vs, kv{n, k})
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].n < vs[j].n || vs[i].n == vs[j].n && vs[i].k < vs[j].k })
	rows := []row{{"Version", "Created Time\tDeletion Time\tDestroyed"}, {"-------", "------------\t-------------\t---------"}}
	for _, v := range vs {
		info := versions[v.k]
		rows = append(rows, row{v.k, fmt.Sprintf("%s\t%s\t%t", cell(info.CreatedTime), cell(info.DeletionTime), info.Destroyed)})
	}
	fmt.Fprintln(w)
	return writeTableRaw(w, rows)
}
