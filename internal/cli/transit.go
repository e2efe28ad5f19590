package cli

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/warden-sec/warden/pkg/client"
)

// maxTransitInput bounds a plaintext or input read by the transit commands:
// its base64 (4/3 as long) plus the JSON around it must stay under the
// server's 16 MiB body limit of the transit operations.
const maxTransitInput = 12<<20 - 64<<10

func newTransitCmd(g *globals) *cobra.Command {
	key := newGroupCmd("key", "Create, inspect, rotate, configure and delete transit keys",
		newTransitKeyCreateCmd(g), newTransitKeyListCmd(g), newTransitKeyShowCmd(g), newTransitKeyRotateCmd(g),
		newTransitKeyConfigCmd(g), newTransitKeyTrimCmd(g), newTransitKeyDeleteCmd(g))
	return newGroupCmd("transit", "Encrypt, sign and wrap data keys with named keys that never leave the servers",
		key, newTransitEncryptCmd(g), newTransitDecryptCmd(g), newTransitRewrapCmd(g), newTransitDataKeyCmd(g),
		newTransitSignCmd(g), newTransitVerifyCmd(g), newTransitHMACCmd(g), newTransitExportCmd(g))
}

// transitKeyRows is the table form of a key view (without its versions).
func transitKeyRows(k client.TransitKey) []row {
	off := func(d client.DurationSeconds) string {
		if d == 0 {
			return "off"
		}
		return d.String()
	}
	var supports []string
	for _, s := range []struct {
		ok   bool
		what string
	}{{k.SupportsEncryption, "encryption"}, {k.SupportsDecryption, "decryption"},
		{k.SupportsDerivation, "derivation"}, {k.SupportsSigning, "signing"}} {
		if s.ok {
			supports = append(supports, s.what)
		}
	}
	minEnc := strconv.Itoa(k.MinEncryptionVersion)
	if k.MinEncryptionVersion == 0 {
		minEnc = "0 (the latest)"
	}
	return []row{{"Name", k.Name}, {"Type", k.Type}, {"Latest Version", k.LatestVersion},
		{"Min Available Version", k.MinAvailableVersion}, {"Min Decryption Version", k.MinDecryptionVersion},
		{"Min Encryption Version", minEnc}, {"Deletion Allowed", k.DeletionAllowed}, {"Exportable", k.Exportable},
		{"Derived", k.Derived}, {"Auto Rotate Period", off(k.AutoRotatePeriod)}, {"Auto Retire After", off(k.AutoRetireAfter)},
		{"Supports", dash(strings.Join(supports, ", "))}}
}

// writeTransitKey prints a key view as a table and its versions below it.
func writeTransitKey(w io.Writer, k client.TransitKey) error {
	if err := writeTable(w, transitKeyRows(k)); err != nil {
		return err
	}
	rows := []row{{"Version", "Created Time"}, {"-------", "------------"}}
	for _, v := range sortedVersions(k.Keys) {
		rows = append(rows, row{v, k.Keys[v].CreationTime.UTC().Format(time.RFC3339)})
	}
	fmt.Fprintln(w)
	return writeTable(w, rows)
}

// sortedVersions returns the decimal version numbers keying m, in
// numerical order.
func sortedVersions[V any](m map[string]V) []string {
	vs := make([]string, 0, len(m))
	for v := range m {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool {
		a, _ := strconv.Atoi(vs[i])
		b, _ := strconv.Atoi(vs[j])
		return a < b || a == b && vs[i] < vs[j]
	})
	return vs
}

// newTransitKeyCmd is a command on one key that prints the key view the
// server answers. do takes the client first so that method expressions
// such as (*client.Client).TransitRotate fit.
func newTransitKeyCmd(g *globals, use, short string,
	do func(c *client.Client, ctx context.Context, name string) (client.TransitKey, error)) *cobra.Command {
	return newReadCmd(g, use, short, cobra.ExactArgs(1),
		func(ctx context.Context, c *client.Client, a []string) (client.TransitKey, error) {
			return do(c, ctx, a[0])
		},
		writeTransitKey)
}

func newTransitKeyCreateCmd(g *globals) *cobra.Command {
	var opts client.TransitKeyOptions
	cmd := newTransitKeyCmd(g, "create NAME [--type T] [--exportable] [--auto-rotate 720h] [--auto-retire D] [--derived] [--deletion-allowed]",
		"Create a key (a key that exists is shown unchanged)",
		func(c *client.Client, ctx context.Context, name string) (client.TransitKey, error) {
			return c.TransitCreateKey(ctx, name, opts)
		})
	cmd.Long = `Create the key NAME. Types: aes256-gcm96 (the default) and chacha20-poly1305
encrypt; ed25519, ecdsa-p256 and rsa-3072 sign; hmac makes HMAC-SHA-256.
--exportable can only be chosen now: a key created without it never becomes
exportable. --derived keys take a --context with every operation. A key that
exists already is shown as it is, unchanged (as Vault answers).`
	fl := cmd.Flags()
	fl.StringVar(&opts.Type, "type", "", "key type (default aes256-gcm96)")
	fl.BoolVar(&opts.Exportable, "exportable", false, "allow export of the key material (cannot be turned on later)")
	fl.BoolVar(&opts.Derived, "derived", false, "derive a key per --context (HKDF)")
	fl.BoolVar(&opts.DeletionAllowed, "deletion-allowed", false, "allow the key to be deleted")
	fl.DurationVar(&opts.AutoRotate, "auto-rotate", 0, "rotate by itself this often (at least 1h; 0: never)")
	fl.DurationVar(&opts.AutoRetire, "auto-retire", 0, "retire versions this long after a newer one became current (0: never)")
	return cmd
}

func newTransitKeyListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List the keys' names", Args: args(cobra.NoArgs)}
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		keys, err := c.TransitListKeys(cmd.Context())
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if *f == "json" {
			return writeJSON(w, map[string][]string{"keys": keys})
		}
		for _, k := range keys {
			fmt.Fprintln(w, k)
		}
		return nil
	})
	return cmd
}

func newTransitKeyShowCmd(g *globals) *cobra.Command {
	return newTransitKeyCmd(g, "show NAME", "Show a key's configuration and versions (never its material)",
		(*client.Client).TransitKey)
}

func newTransitKeyRotateCmd(g *globals) *cobra.Command {
	return newTransitKeyCmd(g, "rotate NAME", "Add a version to a key; new operations use it",
		(*client.Client).TransitRotate)
}

func newTransitKeyConfigCmd(g *globals) *cobra.Command {
	var (
		minDec, minEnc   int
		deletion, export bool
		rotate, retire   time.Duration
		cmd              *cobra.Command
	)
	cmd = newTransitKeyCmd(g, "config NAME [--min-decryption-version N] [--min-encryption-version N] [--deletion-allowed[=false]] [--exportable=false] [--auto-rotate D] [--auto-retire D]",
		"Change a key's configuration (only the flags given)",
		func(c *client.Client, ctx context.Context, name string) (client.TransitKey, error) {
			fl := cmd.Flags()
			cfg := client.TransitConfig{
				MinDecryptionVersion: ifChanged(fl, "min-decryption-version", &minDec),
				MinEncryptionVersion: ifChanged(fl, "min-encryption-version", &minEnc),
				DeletionAllowed:      ifChanged(fl, "deletion-allowed", &deletion),
				Exportable:           ifChanged(fl, "exportable", &export),
				AutoRotate:           ifChanged(fl, "auto-rotate", &rotate),
				AutoRetire:           ifChanged(fl, "auto-retire", &retire),
			}
			if cfg.Empty() {
				return client.TransitKey{}, usagef("nothing to change: give at least one of --min-decryption-version, " +
					"--min-encryption-version, --deletion-allowed, --exportable, --auto-rotate, --auto-retire")
			}
			return c.TransitConfig(ctx, name, cfg)
		})
	fl := cmd.Flags()
	fl.IntVar(&minDec, "min-decryption-version", 0, "the oldest version that still decrypts, verifies and rewraps")
	fl.IntVar(&minEnc, "min-encryption-version", 0, "the oldest version new operations may use (0: the latest)")
	fl.BoolVar(&deletion, "deletion-allowed", false, "allow (or with =false forbid) deleting the key")
	fl.BoolVar(&export, "exportable", false, "=false makes the key non-exportable for good (true is refused for a key that is not)")
	fl.DurationVar(&rotate, "auto-rotate", 0, "rotate by itself this often (at least 1h; 0: never)")
	fl.DurationVar(&retire, "auto-retire", 0, "retire versions this long after a newer one became current (0: never)")
	return cmd
}

// ifChanged returns v when the flag name was given, else nil: the fields of
// a change that are sent only when set.
func ifChanged[T any](fl *pflag.FlagSet, name string, v *T) *T {
	if fl.Changed(name) {
		return v
	}
	return nil
}

func newTransitKeyTrimCmd(g *globals) *cobra.Command {
	var (
		minAvailable int
		cmd          *cobra.Command
	)
	cmd = newTransitKeyCmd(g, "trim NAME --min-available N", "Delete the versions below N for good (N at most the min decryption version)",
		func(c *client.Client, ctx context.Context, name string) (client.TransitKey, error) {
			if !cmd.Flags().Changed("min-available") {
				return client.TransitKey{}, usagef("--min-available N is required")
			}
			return c.TransitTrim(ctx, name, minAvailable)
		})
	cmd.Flags().IntVar(&minAvailable, "min-available", 0, "the oldest version to keep")
	return cmd
}

func newTransitKeyDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "delete NAME", Short: "Delete a key and every version of it (only when its deletion is allowed)",
		Args: args(cobra.ExactArgs(1)),
		RunE: g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
			if err := c.TransitDeleteKey(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! Deleted transit key %s.\n", a[0])
			return nil
		})}
}

// transitInput is where an operation's data comes from: --FLAG FILE, or
// stdin for "-" (the argument after NAME) or, unless required, for nothing.
type transitInput struct {
	flag     string // "plaintext-file" or "input-file"
	file     string
	required bool
}

func (in *transitInput) add(cmd *cobra.Command, usage string) {
	cmd.Flags().StringVar(&in.file, in.flag, "", usage)
}

// read returns the data named by the arguments after NAME (rest).
func (in *transitInput) read(g *globals, rest []string) ([]byte, error) {
	dash := len(rest) == 1 && rest[0] == "-"
	switch {
	case len(rest) > 1 || len(rest) == 1 && !dash:
		return nil, usagef("unexpected argument %q: give --%s FILE or - (stdin)", rest[len(rest)-1], in.flag)
	case dash && in.file != "":
		return nil, usagef("give --%s FILE or - (stdin), not both", in.flag)
	case !dash && in.file == "" && in.required:
		return nil, usagef("give --%s FILE, or - to read stdin", in.flag)
	}
	if in.file == "" {
		return g.readLimited("-", maxTransitInput)
	}
	b, err := g.readLimited(in.file, maxTransitInput)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", in.flag, err)
	}
	return b, nil
}

// addContext adds --context to cmd; the value is the raw context, which the
// client sends base64.
func addContext(cmd *cobra.Command) *string {
	var s string
	cmd.Flags().StringVar(&s, "context", "", "the derivation context of a derived key (raw text; sent base64)")
	return &s
}

func contextBytes(s *string) []byte {
	if *s == "" {
		return nil
	}
	return []byte(*s)
}

// reader is read bound to g, for runTransitValue.
func (in *transitInput) reader(g *globals) func([]string) ([]byte, error) {
	return func(rest []string) ([]byte, error) { return in.read(g, rest) }
}

// ciphertextArg returns the CIPHERTEXT argument, read from stdin (and
// trimmed) for "-".
func ciphertextArg(g *globals, a string) (string, error) {
	if a != "-" {
		return a, nil
	}
	b, err := g.readLimited("-", maxTransitInput*2)
	return strings.TrimSpace(string(b)), err
}

// printValue prints a one-value answer: the value alone on a line, or with
// --format json the data object v.
func printValue(w io.Writer, f *format, value string, v any) error {
	if *f == "json" {
		return writeJSON(w, v)
	}
	_, err := fmt.Fprintln(w, value)
	return err
}

// runTransitValue returns the RunE of an operation on key NAME (the first
// argument) that prints one value: read takes the other arguments and
// returns the operation's input; op does it and returns the value and the
// data object (for --format json).
func runTransitValue[T any](g *globals, f *format, read func(rest []string) (T, error),
	op func(ctx context.Context, c *client.Client, name string, in T) (value string, data any, err error)) func(*cobra.Command, []string) error {
	return g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		in, err := read(a[1:])
		if err != nil {
			return err
		}
		value, data, err := op(cmd.Context(), c, a[0], in)
		if err != nil {
			return err
		}
		return printValue(cmd.OutOrStdout(), f, value, data)
	})
}

func newTransitEncryptCmd(g *globals) *cobra.Command {
	in := &transitInput{flag: "plaintext-file", required: true}
	cmd := &cobra.Command{
		Use:   "encrypt NAME [--context C] (--plaintext-file F | -)",
		Short: "Encrypt a file or stdin; prints the ciphertext",
		Long: `Encrypt the contents of --plaintext-file F, or of stdin for -, exactly (no newline
is added or removed), with the key's latest usable version. Prints the
ciphertext, wdn:v<version>:<base64>.`,
		Args: args(cobra.RangeArgs(1, 2)),
	}
	f := addFormat(cmd)
	ctxt := addContext(cmd)
	in.add(cmd, "the file to encrypt")
	cmd.RunE = runTransitValue(g, f, in.reader(g), func(ctx context.Context, c *client.Client, name string, pt []byte) (string, any, error) {
		ct, v, err := c.TransitEncrypt(ctx, name, pt, contextBytes(ctxt))
		return ct, client.TransitCiphertext{Ciphertext: ct, KeyVersion: v}, err
	})
	return cmd
}

func newTransitDecryptCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "decrypt NAME CIPHERTEXT|- [--context C]",
		Short: "Decrypt a ciphertext; writes the raw plaintext to stdout",
		Long: `Decrypt CIPHERTEXT (- reads it from stdin) and write the plaintext to stdout as
it is, with nothing added. With --format json the plaintext is base64 in the
"plaintext" field. Every failure to decrypt reads "cannot decrypt".`,
		Args: args(cobra.ExactArgs(2)),
	}
	f := addFormat(cmd)
	ctxt := addContext(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		ct, err := ciphertextArg(g, a[1])
		if err != nil {
			return err
		}
		pt, v, err := c.TransitDecrypt(cmd.Context(), a[0], ct, contextBytes(ctxt))
		if err != nil {
			return err
		}
		if *f == "json" {
			return writeJSON(cmd.OutOrStdout(), client.TransitPlaintext{Plaintext: pt, KeyVersion: v})
		}
		_, err = cmd.OutOrStdout().Write(pt)
		return err
	})
	return cmd
}

func newTransitRewrapCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rewrap NAME CIPHERTEXT|- [--context C]",
		Short: "Encrypt a ciphertext again with the key's latest version; prints the new ciphertext",
		Args:  args(cobra.ExactArgs(2)),
	}
	f := addFormat(cmd)
	ctxt := addContext(cmd)
	read := func(rest []string) (string, error) { return ciphertextArg(g, rest[0]) }
	cmd.RunE = runTransitValue(g, f, read, func(ctx context.Context, c *client.Client, name string, ct string) (string, any, error) {
		nct, v, err := c.TransitRewrap(ctx, name, ct, contextBytes(ctxt))
		return nct, client.TransitCiphertext{Ciphertext: nct, KeyVersion: v}, err
	})
	return cmd
}

func newTransitDataKeyCmd(g *globals) *cobra.Command {
	var (
		wrappedOnly bool
		bits        int
	)
	cmd := &cobra.Command{
		Use:   "datakey NAME [--wrapped-only] [--bits N] [--context C]",
		Short: "Make a random data key wrapped by NAME (and, unless --wrapped-only, in plain)",
		Args:  args(cobra.ExactArgs(1)),
	}
	f := addFormat(cmd)
	ctxt := addContext(cmd)
	cmd.Flags().BoolVar(&wrappedOnly, "wrapped-only", false, "return only the wrapped (encrypted) data key")
	cmd.Flags().IntVar(&bits, "bits", 0, "data key size: 128, 256 or 512 (default 256)")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		dk, err := c.TransitDataKey(cmd.Context(), a[0], wrappedOnly, bits, contextBytes(ctxt))
		if err != nil {
			return err
		}
		rows := []row{{"Ciphertext", dk.Ciphertext}, {"Key Version", dk.KeyVersion}}
		if dk.Plaintext != nil {
			rows = append(rows, row{"Plaintext", base64.StdEncoding.EncodeToString(dk.Plaintext)})
		}
		return output(cmd.OutOrStdout(), f, dk, rows)
	})
	return cmd
}

// signatureAlgorithm checks the value of --algorithm.
func signatureAlgorithm(s string) error {
	switch s {
	case "", "pss", "pkcs1v15":
		return nil
	}
	return usagef("--algorithm: must be pss or pkcs1v15 (rsa-3072 keys only), got %q", s)
}

func newTransitSignCmd(g *globals) *cobra.Command {
	in := &transitInput{flag: "input-file"}
	var algorithm string
	cmd := &cobra.Command{
		Use:   "sign NAME [--input-file F | -] [--algorithm pss|pkcs1v15]",
		Short: "Sign a file or stdin (the default); prints the signature",
		Args:  args(cobra.RangeArgs(1, 2)),
	}
	f := addFormat(cmd)
	in.add(cmd, "the file to sign (default: stdin)")
	cmd.Flags().StringVar(&algorithm, "algorithm", "", "rsa-3072 keys: pss (the default) or pkcs1v15")
	read := func(rest []string) ([]byte, error) {
		if err := signatureAlgorithm(algorithm); err != nil {
			return nil, err
		}
		return in.read(g, rest)
	}
	cmd.RunE = runTransitValue(g, f, read, func(ctx context.Context, c *client.Client, name string, input []byte) (string, any, error) {
		sig, v, err := c.TransitSign(ctx, name, input, client.TransitSignOptions{Algorithm: algorithm})
		return sig, client.TransitSignature{Signature: sig, KeyVersion: v}, err
	})
	return cmd
}

func newTransitVerifyCmd(g *globals) *cobra.Command {
	in := &transitInput{flag: "input-file"}
	var signature, hmac, algorithm string
	cmd := &cobra.Command{
		Use:   "verify NAME (--signature S | --hmac H) [--input-file F | -] [--algorithm pss|pkcs1v15]",
		Short: "Verify a signature (or an HMAC) of a file or stdin; prints valid or invalid",
		Long: `Verify --signature S (or --hmac H, of an hmac key) of the contents of
--input-file F, or of stdin. Prints "valid" and exits 0, or prints "invalid"
and exits 1.`,
		Args: args(cobra.RangeArgs(1, 2)),
	}
	f := addFormat(cmd)
	in.add(cmd, "the file whose signature to verify (default: stdin)")
	cmd.Flags().StringVar(&signature, "signature", "", "the signature, wdn:v<version>:...")
	cmd.Flags().StringVar(&hmac, "hmac", "", "an HMAC to verify instead of a signature")
	cmd.Flags().StringVar(&algorithm, "algorithm", "", "rsa-3072 keys: pss (the default) or pkcs1v15")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		if (signature == "") == (hmac == "") {
			return usagef("give --signature S or --hmac H, exactly one")
		}
		if err := signatureAlgorithm(algorithm); err != nil {
			return err
		}
		input, err := in.read(g, a[1:])
		if err != nil {
			return err
		}
		var valid bool
		if hmac != "" {
			valid, err = c.TransitVerifyHMAC(cmd.Context(), a[0], input, hmac)
		} else {
			valid, err = c.TransitVerify(cmd.Context(), a[0], input, signature, algorithm)
		}
		if err != nil {
			return err
		}
		word := "valid"
		if !valid {
			word = "invalid"
		}
		if err := printValue(cmd.OutOrStdout(), f, word, client.TransitVerification{Valid: valid}); err != nil {
			return err
		}
		if !valid {
			return errors.New("verification failed: not valid for this input and key")
		}
		return nil
	})
	return cmd
}

func newTransitHMACCmd(g *globals) *cobra.Command {
	in := &transitInput{flag: "input-file"}
	cmd := &cobra.Command{
		Use:   "hmac NAME [--input-file F | -]",
		Short: "HMAC-SHA-256 of a file or stdin (the default); prints the HMAC",
		Args:  args(cobra.RangeArgs(1, 2)),
	}
	f := addFormat(cmd)
	in.add(cmd, "the file to HMAC (default: stdin)")
	cmd.RunE = runTransitValue(g, f, in.reader(g), func(ctx context.Context, c *client.Client, name string, input []byte) (string, any, error) {
		h, v, err := c.TransitHMAC(ctx, name, input)
		return h, client.TransitHMACResult{HMAC: h, KeyVersion: v}, err
	})
	return cmd
}

func newTransitExportCmd(g *globals) *cobra.Command {
	var (
		kind    string
		version int
	)
	cmd := &cobra.Command{
		Use:   "export NAME --kind encryption-key|signing-key|hmac-key|public-key [--version N]",
		Short: "Export an exportable key's material, or a signing key's public key",
		Long: `Export version N (default: every version) of the key NAME. public-key works for
every signing key; the other kinds only for a key created --exportable. With one
version the key is printed alone (PEM or base64, ready for a file); with several,
each follows a "version N:" line. The output is secret unless it is a public key.`,
		Args: args(cobra.ExactArgs(1)),
	}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&kind, "kind", "", "encryption-key, signing-key, hmac-key or public-key")
	cmd.Flags().IntVar(&version, "version", 0, "the version to export (0: every version)")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		switch kind {
		case client.TransitExportEncryptionKey, client.TransitExportSigningKey, client.TransitExportHMACKey, client.TransitExportPublicKey:
		default:
			return usagef("--kind: must be encryption-key, signing-key, hmac-key or public-key, got %q", kind)
		}
		ex, err := c.TransitExport(cmd.Context(), a[0], kind, version)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if *f == "json" {
			return writeJSON(w, ex)
		}
		vs := sortedVersions(ex.Keys)
		for _, v := range vs {
			if len(vs) > 1 {
				fmt.Fprintf(w, "version %s:\n", v)
			}
			if _, err := io.WriteString(w, strings.TrimRight(ex.Keys[v], "\n")+"\n"); err != nil {
				return err
			}
		}
		return nil
	})
	return cmd
}
