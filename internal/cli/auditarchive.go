package cli

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/fsutil"
	"github.com/warden-sec/warden/pkg/client"
)

// newAuditArchiveCmd is `warden audit archive`: export the oldest live
// entries as a sealed archive file, and with --prune remove them from the
// live log once the file is on disk (docs/audit.md, "Lifecycle").
func newAuditArchiveCmd(g *globals) *cobra.Command {
	var out, olderThan string
	var before uint64
	var prune bool
	cmd := &cobra.Command{
		Use:   "archive --out FILE (--before INDEX | --older-than DURATION) [--prune]",
		Short: "Export the oldest live audit entries as a sealed, verifiable archive file (and prune them)",
		Args:  args(cobra.NoArgs),
	}
	cmd.Flags().StringVar(&out, "out", "", "the archive file to create (mode 0600; an existing file is not replaced)")
	cmd.Flags().Uint64Var(&before, "before", 0, "archive the entries below this index")
	cmd.Flags().StringVar(&olderThan, "older-than", "", "archive the entries older than this Go duration (2160h is 90 days)")
	cmd.Flags().BoolVar(&prune, "prune", false, "after the file is written and synced, remove the archived entries' bodies from the live log")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		if out == "" {
			return usagef("--out: required")
		}
		if before == 0 && olderThan == "" {
			return usagef("--before or --older-than: one is required")
		}
		if _, err := os.Lstat(out); err == nil {
			return fmt.Errorf("%s exists; an archive never replaces a file", out)
		}
		ctx := cmd.Context()
		v, err := c.AuditVerifierKey(ctx)
		if err != nil {
			return err
		}
		raw, err := c.AuditArchive(ctx, before, olderThan)
		if err != nil {
			return err
		}
		a, b, err := decodeArchiveResponse(raw)
		if err != nil {
			return err
		}
		if _, err := a.Verify(v.VerifierKey); err != nil {
			return fmt.Errorf("the server's archive does not verify, nothing written: %w", err)
		}
		if err := fsutil.WriteFileNew(out, b, 0o600); err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		fmt.Fprintf(w, "Archived entries %d to %d (%d) to %s; checkpoint of size %d verified\n", a.Start, a.End-1, a.End-a.Start, out, a.End)
		if a.End-a.Start == audit.MaxArchiveEntries {
			fmt.Fprintf(w, "An archive holds at most %d entries: run again for the next ones\n", audit.MaxArchiveEntries)
		}
		if !prune {
			return nil
		}
		p, err := c.AuditPrune(ctx, a.End)
		if err != nil {
			return fmt.Errorf("the archive is written, the prune failed (run warden audit prune --archive %s): %w", out, err)
		}
		fmt.Fprintf(w, "Pruned the entries below %d from the live log\n", p)
		return nil
	})
	return cmd
}

// decodeArchiveResponse reads the archive the server sent (strict JSON)
// and returns it with its canonical bytes, which it parses back (the
// checks every reader of the file runs).
func decodeArchiveResponse(raw []byte) (*audit.Archive, []byte, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	var a audit.Archive
	if err := d.Decode(&a); err != nil {
		return nil, nil, fmt.Errorf("the server's archive: %w", err)
	}
	b, err := a.Marshal()
	if err != nil {
		return nil, nil, err
	}
	p, err := audit.ParseArchive(b)
	if err != nil {
		return nil, nil, fmt.Errorf("the server's archive: %w", err)
	}
	return p, b, nil
}

// readArchiveFile reads and parses an archive file.
func readArchiveFile(path string) (*audit.Archive, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, audit.MaxArchiveBytes+1))
	if err != nil {
		return nil, err
	}
	a, err := audit.ParseArchive(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// newAuditPruneCmd is `warden audit prune`: remove the bodies of archived
// entries from the live log.
func newAuditPruneCmd(g *globals) *cobra.Command {
	var file string
	var before uint64
	cmd := &cobra.Command{
		Use:   "prune (--archive FILE | --before INDEX)",
		Short: "Remove archived audit entries' bodies from the live log (their hashes stay, so proofs still verify)",
		Args:  args(cobra.NoArgs),
	}
	cmd.Flags().StringVar(&file, "archive", "", "prune up to the end of this archive file, after verifying it against the server's key")
	cmd.Flags().Uint64Var(&before, "before", 0, "prune the entries below this index (the server refuses beyond the last archive made)")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		if (file == "") == (before == 0) {
			return usagef("--archive or --before: exactly one is required")
		}
		ctx := cmd.Context()
		if file != "" {
			v, err := c.AuditVerifierKey(ctx)
			if err != nil {
				return err
			}
			a, err := readArchiveFile(file)
			if err != nil {
				return err
			}
			if _, err := a.Verify(v.VerifierKey); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			before = a.End
		}
		p, err := c.AuditPrune(ctx, before)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Pruned the entries below %d from the live log\n", p)
		return nil
	})
	return cmd
}

// verifyArchives is `warden audit verify --archive FILE...`, offline: each
// archive on its own, then that they chain, in the order of their start.
// key, if set, is the verifier key to trust; otherwise the archives' own
// key is used and printed.
func verifyArchives(w io.Writer, files []string, key string) error {
	as := make([]*audit.Archive, len(files))
	for i, f := range files {
		a, err := readArchiveFile(f)
		if err != nil {
			return err
		}
		if _, err := a.Verify(key); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		as[i] = a
		fmt.Fprintf(w, "%s: entries %d to %d verified against the checkpoint of size %d (%s, signature verified)\n", f, a.Start, int64(a.End)-1, a.End, a.Origin)
	}
	sorted := slices.Clone(as)
	slices.SortStableFunc(sorted, func(a, b *audit.Archive) int { return cmp.Compare(a.Start, b.Start) })
	if _, err := audit.VerifyChain(sorted, key); err != nil {
		return err
	}
	if len(as) > 1 {
		fmt.Fprintf(w, "The %d archives chain: entries %d to %d\n", len(as), sorted[0].Start, int64(sorted[len(sorted)-1].End)-1)
	}
	if key == "" {
		fmt.Fprintf(w, "Verifier key (from the archives; pass --verifier-key to pin it): %s\n", as[0].VerifierKey)
	}
	return nil
}
