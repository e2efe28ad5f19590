package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditcheck"
	"github.com/warden-sec/warden/pkg/client"
)

func newAuditCmd(g *globals) *cobra.Command {
	return newGroupCmd("audit", "Verify, follow, search, archive and prune the audit log",
		newAuditVerifyCmd(g), newAuditTailCmd(g), newAuditSearchCmd(g), newAuditArchiveCmd(g), newAuditPruneCmd(g),
		newAuditWitnessCmd(g))
}

// fetchedLog is what fetchLeaves read: each entry's leaf bytes (nil for
// an entry archived and pruned from the live log), its leaf hash (computed
// from the bytes, or, for an archived entry, as the server reports it: the
// root check against the signed checkpoint is what vouches for it) and
// the entries as the server sent them.
type fetchedLog struct {
	leaves   [][]byte
	hashes   [][]byte
	entries  []client.AuditEntry
	archived int
}

// fetchLeaves reads the first size entries (every entry, up to the end of
// the log, when all is set). An entry the server reports altered is an
// error naming it.
func fetchLeaves(ctx context.Context, c *client.Client, size uint64, all bool) (fetchedLog, error) {
	var f fetchedLog
	for start := uint64(0); all || start < size; {
		n := uint64(1000)
		if !all {
			n = min(size-start, n)
		}
		page, err := c.AuditEntries(ctx, start, int(n))
		if err != nil {
			return f, fmt.Errorf("entries from %d: %w", start, err)
		}
		if len(page) == 0 {
			if all {
				break
			}
			return f, fmt.Errorf("the server returned no entry at %d of %d", start, size)
		}
		for _, e := range page {
			switch {
			case e.Archived:
				h, err := base64.StdEncoding.DecodeString(e.LeafHash)
				if err != nil || len(h) != audit.HashSize {
					return f, fmt.Errorf("entry %d: the server sent a malformed leaf hash for an archived entry", e.Index)
				}
				f.leaves, f.hashes = append(f.leaves, nil), append(f.hashes, h)
				f.archived++
				continue
			case e.Altered:
				if msg := fmt.Sprintf("entry %d was altered", e.Index); !strings.HasPrefix(e.Error, msg) {
					return f, fmt.Errorf("%s (the server says: %s)", msg, e.Error)
				}
				return f, errors.New(e.Error)
			}
			b, err := e.LeafBytes()
			if err != nil {
				return f, fmt.Errorf("entry %d: %w", e.Index, err)
			}
			f.leaves, f.hashes = append(f.leaves, b), append(f.hashes, audit.LeafHash(b))
			f.entries = append(f.entries, e)
		}
		start += uint64(len(page))
		if all && uint64(len(page)) < n {
			// The end of the log as it was: reading the log is itself
			// recorded, so chasing the end would follow our own reads.
			break
		}
	}
	return f, nil
}

// rootOfHashes is the RFC 6962 root over leaf hashes.
func rootOfHashes(hashes [][]byte) ([]byte, error) {
	st, _, err := audit.Append(audit.TreeState{}, hashes)
	if err != nil {
		return nil, err
	}
	return st.Root()
}

// firstAltered names the first entry whose inclusion proof does not verify
// against cp, or says that the root alone does not match.
func firstAltered(ctx context.Context, c *client.Client, cp audit.Checkpoint, hashes [][]byte) error {
	for i, h := range hashes[:cp.Size] {
		p, err := c.AuditInclusionProof(ctx, uint64(i), cp.Size)
		if err != nil {
			return fmt.Errorf("the root over %d entries does not match the signed checkpoint; entry %d: inclusion proof: %w", cp.Size, i, err)
		}
		if audit.VerifyInclusionHash(h, uint64(i), cp.Size, cp.Root, p) != nil {
			return fmt.Errorf("entry %d was altered: it does not match the signed log", i)
		}
	}
	return fmt.Errorf("the root over %d entries does not match the signed checkpoint", cp.Size)
}

func newAuditVerifyCmd(g *globals) *cobra.Command {
	var oldFile, saveFile, verifierKey, stateFile string
	var full bool
	var archives, witnessKeys []string
	var quorum int
	cmd := &cobra.Command{
		Use:   "verify [--full] [--witness-quorum K] [--state FILE] [--checkpoint FILE] [--save FILE] | verify --archive FILE [--archive FILE...] [--verifier-key KEY]",
		Short: "Verify the signed checkpoint and its witness cosignatures, the root over every entry, inclusion proofs, and consistency with the checkpoint verified before; or, offline, archive files",
		Long: `Verify the server's audit log: its signed checkpoint, cosigned by a quorum of
the witnesses this client trusts (--witness-quorum, default a majority of the
server witnesses); consistency with the checkpoint verified last time (kept in
the state file with the trusted keys: --state, default
~/.warden/audit/<origin>.json); the root over every entry; and inclusion proofs.
On first use the log's key and the witness keys the server lists are pinned
(trust on first use: compare them with each node's <data-dir>/witness/witness.pub),
or give keys with --witness-key. A checkpoint that is not an extension of the one
verified before (a fork or a rewrite) is reported with both checkpoints and a
non-zero exit. See docs/governance.md, "Witnesses".`,
		Args: args(cobra.NoArgs),
	}
	cmd.Flags().StringVar(&stateFile, "state", "", "the state file: the checkpoint verified last and the trusted keys (default ~/.warden/audit/<origin>.json)")
	cmd.Flags().IntVar(&quorum, "witness-quorum", 0, "how many trusted witnesses must have cosigned the checkpoint (0: a majority of the server witnesses)")
	cmd.Flags().StringArrayVar(&witnessKeys, "witness-key", nil, "a witness verifier key to trust (repeat; added to the state file)")
	cmd.Flags().StringArrayVar(&archives, "archive", nil, "verify this archive file offline, without a server (repeat: they must also chain)")
	cmd.Flags().StringVar(&verifierKey, "verifier-key", "", "with --archive: the note verifier key to trust (GET /v1/audit/verifier); default: the archive's own, printed")
	cmd.Flags().StringVar(&oldFile, "checkpoint", "", "an older checkpoint saved earlier: prove the log only grew since")
	cmd.Flags().StringVar(&saveFile, "save", "", "save the verified checkpoint to FILE for a later --checkpoint")
	cmd.Flags().BoolVar(&full, "full", false, "check every entry's inclusion proof, not a sample; if the server refuses to sign a checkpoint, still check every entry and the root against --checkpoint, and say why it refused")
	online := g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		ctx := cmd.Context()
		out := cmd.OutOrStdout()
		v, err := c.AuditVerifierKey(ctx)
		if err != nil {
			return err
		}
		var old *audit.Checkpoint
		if oldFile != "" {
			b, err := os.ReadFile(oldFile)
			if err != nil {
				return err
			}
			o, err := audit.Open(b, v.VerifierKey)
			if err != nil {
				return fmt.Errorf("%s: %w", oldFile, err)
			}
			old = &o
		}
		statePath := stateFile
		if statePath == "" {
			if home := g.getenv("HOME"); home != "" {
				statePath = filepath.Join(home, ".warden", "audit", auditcheck.StateFileName(v.Origin))
			}
		}
		var state *auditcheck.State
		if statePath != "" {
			if state, err = auditcheck.LoadState(statePath); err != nil {
				return fmt.Errorf("--state: %w", err)
			}
		}
		rep, err := auditcheck.Check(ctx, c, auditcheck.Options{State: state, Quorum: quorum, Keys: witnessKeys})
		var fork *auditcheck.ForkError
		if errors.As(err, &fork) {
			fmt.Fprint(out, fork.Evidence())
			return err
		}
		if err != nil {
			if !full {
				return err
			}
			return verifyWithoutCheckpoint(ctx, c, out, old, oldFile, err)
		}
		note := rep.Checkpoint
		cp, err := audit.Open(note, v.VerifierKey)
		if err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		log, err := fetchLeaves(ctx, c, cp.Size, false)
		if err != nil {
			return err
		}
		for i, l := range log.leaves {
			if l == nil {
				continue // archived: its bytes are checked offline, with --archive
			}
			if _, err := audit.DecodeEntry(l); err != nil {
				return fmt.Errorf("entry %d was altered: it is not a canonical entry: %v", i, err)
			}
		}
		root, err := rootOfHashes(log.hashes)
		if err != nil {
			return err
		}
		if !bytes.Equal(root, cp.Root) {
			return firstAltered(ctx, c, cp, log.hashes)
		}
		// Inclusion proofs of the live entries (the archived ones carry
		// no bytes here to prove).
		first := uint64(log.archived)
		live := cp.Size - first
		samples := min(int(live), 16)
		pick := func(k int) uint64 { return first + uint64(k) }
		if !full {
			r := rand.New(rand.NewPCG(cp.Size, uint64(time.Now().UnixNano())))
			pick = func(int) uint64 { return first + uint64(r.IntN(int(live))) }
		} else {
			samples = int(live)
		}
		for k := 0; k < samples; k++ {
			i := pick(k)
			p, err := c.AuditInclusionProof(ctx, i, cp.Size)
			if err != nil {
				return fmt.Errorf("entry %d: inclusion proof: %w", i, err)
			}
			if err := audit.VerifyInclusion(log.leaves[i], i, cp.Size, cp.Root, p); err != nil {
				return fmt.Errorf("entry %d: inclusion proof does not verify: %v", i, err)
			}
		}
		fmt.Fprintf(out, "Checkpoint: %s, size %d, signature verified\n", cp.Origin, cp.Size)
		fmt.Fprintf(out, "Root over all %d entries matches; %d inclusion proofs verified\n", cp.Size, samples)
		if log.archived > 0 {
			fmt.Fprintf(out, "Entries 0 to %d are archived: checked here by their leaf hashes; check their contents offline with --archive\n", log.archived-1)
		}
		if old != nil {
			if old.Size > cp.Size {
				return fmt.Errorf("the log shrank: %s has size %d, the server %d", oldFile, old.Size, cp.Size)
			}
			p, err := c.AuditConsistencyProof(ctx, old.Size, cp.Size)
			if err != nil {
				return err
			}
			if err := audit.VerifyConsistency(old.Size, cp.Size, old.Root, cp.Root, p); err != nil {
				return fmt.Errorf("the log was not only appended to since %s: %v", oldFile, err)
			}
			fmt.Fprintf(out, "Consistent with %s (size %d): the log was only appended to\n", oldFile, old.Size)
		}
		printWitnesses(out, cmd.ErrOrStderr(), rep, state == nil, statePath)
		if statePath != "" {
			if err := rep.State.Save(statePath); err != nil {
				return fmt.Errorf("--state: %w", err)
			}
		}
		if saveFile != "" {
			if err := os.WriteFile(saveFile, note, 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if len(archives) > 0 {
			if full || oldFile != "" || saveFile != "" {
				return usagef("--archive verifies files offline: --full, --checkpoint and --save do not apply")
			}
			return verifyArchives(cmd.OutOrStdout(), archives, verifierKey)
		}
		if verifierKey != "" {
			return usagef("--verifier-key: only with --archive")
		}
		if quorum < 0 {
			return usagef("--witness-quorum: must be 0 (a majority) or more, got %d", quorum)
		}
		return online(cmd, a)
	}
	return cmd
}

// printWitnesses says what the witness check found: the keys pinned on
// first use, the cosigners against the quorum, the consistency with the
// checkpoint verified before, and the witnesses not trusted.
func printWitnesses(out, errw io.Writer, rep *auditcheck.Report, firstUse bool, statePath string) {
	if len(rep.Pinned) > 0 {
		how := "given with --witness-key"
		if firstUse {
			how = "as the server lists them (trust on first use: compare with each node's <data-dir>/witness/witness.pub)"
		}
		fmt.Fprintf(out, "Pinned %d witness keys, %s:\n", len(rep.Pinned), how)
		for _, k := range rep.Pinned {
			fmt.Fprintf(out, "  %s\n", k)
		}
	}
	switch {
	case rep.Quorum == 0:
		fmt.Fprintf(out, "Witnesses: none required (%d trusted)\n", rep.Trusted)
	default:
		fmt.Fprintf(out, "Witnesses: %d of %d trusted witnesses cosigned (quorum %d): %s\n", len(rep.Cosigners), rep.Trusted, rep.Quorum,
			strings.Join(rep.Cosigners, ", "))
	}
	if len(rep.Untrusted) > 0 {
		fmt.Fprintf(out, "Not trusted (keys not pinned; add with --witness-key): %s\n", strings.Join(rep.Untrusted, ", "))
	}
	if rep.Previous != nil {
		fmt.Fprintf(out, "Consistent with the checkpoint verified before (size %d): no fork, no rewrite\n", rep.Previous.Size)
	}
	if statePath == "" {
		fmt.Fprintln(errw, "Note: no state file (HOME is not set; use --state FILE): the keys were taken from the server for this run only, and no earlier checkpoint was checked")
	}
}

// verifyWithoutCheckpoint is verify --full on a server that refuses to sign
// a checkpoint (refusal): it still reads every entry, naming the first one
// the server reports altered, and compares the root over the first
// old.Size entries with a checkpoint saved earlier, if given. It always
// fails, with the server's reason.
func verifyWithoutCheckpoint(ctx context.Context, c *client.Client, out io.Writer, old *audit.Checkpoint, oldFile string, refusal error) error {
	log, err := fetchLeaves(ctx, c, 0, true)
	if err != nil {
		return fmt.Errorf("%w; the server also refuses to sign a checkpoint: %v", err, refusal)
	}
	fmt.Fprintf(out, "All %d entries open and decode (%d archived)\n", len(log.hashes), log.archived)
	if old != nil {
		if uint64(len(log.hashes)) < old.Size {
			return fmt.Errorf("the log shrank: %s has size %d, the server %d entries", oldFile, old.Size, len(log.hashes))
		}
		if root, err := rootOfHashes(log.hashes[:old.Size]); err != nil || !bytes.Equal(root, old.Root) {
			return fmt.Errorf("the root over the first %d entries does not match %s: an entry was altered; the server refuses to sign a checkpoint: %v", old.Size, oldFile, refusal)
		}
		fmt.Fprintf(out, "Root over the first %d entries matches %s\n", old.Size, oldFile)
	}
	return fmt.Errorf("the server refuses to sign a checkpoint: %v", refusal)
}

func printEntries(w io.Writer, f *format, es []client.AuditEntry) error {
	if *f == "json" {
		return writeJSON(w, map[string]any{"entries": es})
	}
	for _, e := range es {
		if e.Archived {
			fmt.Fprintf(w, "%d\tarchived\n", e.Index)
			continue
		}
		m := e.Entry
		fmt.Fprintf(w, "%d\t%v\t%v\t%v\t%v\t%v\n", e.Index, m["time"], m["outcome"], m["principal"], m["action"], m["resource"])
	}
	return nil
}

func newAuditTailCmd(g *globals) *cobra.Command {
	var n int
	var follow bool
	cmd := &cobra.Command{Use: "tail [-n N] [--follow]", Short: "Print the latest audit entries", Args: args(cobra.NoArgs)}
	f := addFormat(cmd)
	cmd.Flags().IntVarP(&n, "lines", "n", 10, "how many entries")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep printing new entries (until interrupted)")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		ctx := cmd.Context()
		size, err := treeSize(ctx, c)
		if err != nil {
			return err
		}
		start := uint64(0)
		if size > uint64(n) {
			start = size - uint64(n)
		}
		// Reading the log is recorded; following it, leave out the
		// records of this command's own reads, or each poll would print
		// the previous one's.
		own := func(client.AuditEntry) bool { return false }
		if follow {
			if own, err = ownReads(ctx, c); err != nil {
				return err
			}
		}
		first := true
		for {
			if start < size {
				es, err := c.AuditEntries(ctx, start, int(min(size-start, 1000)))
				if err != nil {
					return err
				}
				start += uint64(len(es))
				if !first {
					es = slices.DeleteFunc(es, own)
				}
				first = false
				if err := printEntries(cmd.OutOrStdout(), f, es); err != nil {
					return err
				}
			}
			if !follow {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			if size, err = treeSize(ctx, c); err != nil {
				return err
			}
		}
	})
	return cmd
}

// ownReads says which entries record a read of the log by this client: by
// its token's accessor, or by its principal when it authenticates with a
// certificate.
func ownReads(ctx context.Context, c *client.Client) (func(client.AuditEntry) bool, error) {
	var accessor, principal string
	if c.Token() != "" {
		t, err := c.TokenLookupSelf(ctx)
		if err != nil {
			return nil, err
		}
		accessor = t.Accessor
	} else {
		w, err := c.Whoami(ctx)
		if err != nil {
			return nil, err
		}
		principal = w.Principal
	}
	return func(e client.AuditEntry) bool {
		if e.Entry["action"] != "audit.read" { // reads of entries: the other audit.read routes are not recorded
			return false
		}
		if accessor != "" {
			return e.Entry["accessor"] == accessor
		}
		return e.Entry["principal"] == principal && e.Entry["accessor"] == nil
	}, nil
}

// treeSize reads the size from a (verified-by-format) checkpoint.
func treeSize(ctx context.Context, c *client.Client) (uint64, error) {
	v, err := c.AuditVerifierKey(ctx)
	if err != nil {
		return 0, err
	}
	note, err := c.AuditCheckpoint(ctx)
	if err != nil {
		return 0, err
	}
	cp, err := audit.Open(note, v.VerifierKey)
	if err != nil {
		return 0, err
	}
	return cp.Size, nil
}

func newAuditSearchCmd(g *globals) *cobra.Command {
	var principal, action, since string
	cmd := &cobra.Command{Use: "search [--principal P] [--action A] [--since D|TIME]", Short: "Search audit entries", Args: args(cobra.NoArgs)}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&principal, "principal", "", `principal, e.g. 'User::"alice"'`)
	cmd.Flags().StringVar(&action, "action", "", "action, e.g. kv.write")
	cmd.Flags().StringVar(&since, "since", "", "a Go duration (1h) or an RFC 3339 time")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		var from time.Time
		if since != "" {
			if d, err := time.ParseDuration(since); err == nil {
				from = time.Now().Add(-d)
			} else if t, err := time.Parse(time.RFC3339, since); err == nil {
				from = t
			} else {
				return usagef("--since: %q is neither a duration nor an RFC 3339 time", since)
			}
		}
		size, err := treeSize(cmd.Context(), c)
		if err != nil {
			return err
		}
		log, err := fetchLeaves(cmd.Context(), c, size, false)
		if err != nil {
			return err
		}
		var hits []client.AuditEntry
		for _, e := range log.entries { // the live ones: search archives offline
			m := e.Entry
			if principal != "" && m["principal"] != principal || action != "" && m["action"] != action {
				continue
			}
			if !from.IsZero() {
				ts, _ := m["time"].(string)
				if t, err := time.Parse(time.RFC3339Nano, ts); err != nil || t.Before(from) {
					continue
				}
			}
			hits = append(hits, e)
		}
		return printEntries(cmd.OutOrStdout(), f, hits)
	})
	return cmd
}
