package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

// generate-root: a quorum of unseal key holders makes a new root token,
// which only the requester can decrypt (docs/governance.md "Generate root").

func newGenerateRootCmd(g *globals) *cobra.Command {
	cmd := newGroupCmd("generate-root", "Make a new root token with a quorum of unseal keys (no token needed)",
		newGenRootInitCmd(g), newGenRootStatusCmd(g), newGenRootUpdateCmd(g), newGenRootCancelCmd(g), newGenRootDecodeCmd(g))
	cmd.Long = `Make a new root token with a quorum of unseal keys instead of a token.

The requester runs "init", which makes a one-time key pair, keeps the private
key in a file only they can read, and prints the attempt's nonce and the
fingerprint of their public key. Each unseal key holder runs "update --nonce N"
and types their key; after the last one the new token exists only encrypted to
the requester's key, which "decode" (or "init --wait") opens.

An attempt lives in the memory of the server node that started it, for an
hour: every command of one attempt must reach that node (give its address,
not a load balancer's).`
	return cmd
}

// genRootKeyFile is the requester's key file (JSON, mode 0600).
type genRootKeyFile struct {
	Version     int    `json:"version"`
	Server      string `json:"server"`
	Nonce       string `json:"nonce"`
	Fingerprint string `json:"public_key_fingerprint"`
	PrivateKey  string `json:"private_key"` // base64 of the 32-byte X25519 private key
}

// maxGenRootKeyFile bounds the key file read.
const maxGenRootKeyFile = 4096

// parseGenRootKeyFile decodes a key file strictly: version 1, no unknown
// member, a nonce of 32 hex digits, a private key whose fingerprint is the
// one recorded.
func parseGenRootKeyFile(b []byte) (genRootKeyFile, *client.GenerateRootKey, error) {
	var kf genRootKeyFile
	if len(b) > maxGenRootKeyFile {
		return kf, nil, fmt.Errorf("larger than %d bytes: not a generate-root key file", maxGenRootKeyFile)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		return kf, nil, errors.New("not a generate-root key file (JSON)")
	}
	if dec.More() {
		return kf, nil, errors.New("not a generate-root key file: data after the JSON object")
	}
	if kf.Version != 1 {
		return kf, nil, fmt.Errorf("version %d: this warden reads version 1", kf.Version)
	}
	if len(kf.Nonce) != 32 || strings.Trim(kf.Nonce, "0123456789abcdef") != "" {
		return kf, nil, errors.New("nonce: not 32 hex digits")
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(kf.PrivateKey)
	if err != nil {
		return kf, nil, errors.New("private_key: not valid base64")
	}
	key, err := client.ParseGenerateRootKey(raw)
	clear(raw)
	if err != nil {
		return kf, nil, fmt.Errorf("private_key: %w", err)
	}
	if key.Fingerprint() != kf.Fingerprint {
		return kf, nil, errors.New("public_key_fingerprint: not the private key's")
	}
	return kf, key, nil
}

// defaultGenRootKeyFile is $XDG_CONFIG_HOME/warden/generate-root.key, or
// ~/.config/warden/generate-root.key.
func defaultGenRootKeyFile(getenv func(string) string) (string, error) {
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			return "", usagef("--key-file: no default without $HOME or $XDG_CONFIG_HOME; give a path")
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "warden", "generate-root.key"), nil
}

func addKeyFileFlag(cmd *cobra.Command) *string {
	var p string
	cmd.Flags().StringVar(&p, "key-file", "", "the requester's one-time private key file (default $XDG_CONFIG_HOME/warden/generate-root.key, or ~/.config/warden/generate-root.key)")
	return &p
}

func (g *globals) keyFilePath(p string) (string, error) {
	if p != "" {
		return p, nil
	}
	return defaultGenRootKeyFile(g.getenv)
}

// readGenRootKeyFile reads and checks the key file; one that others may
// read is refused.
func readGenRootKeyFile(path string) (genRootKeyFile, *client.GenerateRootKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return genRootKeyFile{}, nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return genRootKeyFile{}, nil, fmt.Errorf("key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return genRootKeyFile{}, nil, fmt.Errorf("key file %s: mode %04o lets others read it; it must be 0600", path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxGenRootKeyFile+1))
	if err != nil {
		return genRootKeyFile{}, nil, fmt.Errorf("key file: %w", err)
	}
	kf, key, err := parseGenRootKeyFile(b)
	clear(b)
	if err != nil {
		return kf, nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return kf, key, nil
}

func genRootRows(st client.GenerateRootStatus) []row {
	if !st.Started {
		return []row{{"Started", false}, {"Required", st.Required}}
	}
	rows := []row{{"Started", true}}
	if st.Nonce != "" {
		rows = append(rows, row{"Nonce", st.Nonce})
	}
	rows = append(rows, row{"Requester Key", st.PublicKeyFingerprint}, row{"Progress", fmt.Sprintf("%d of %d", st.Progress, st.Required)},
		row{"Started At", st.StartedAt}, row{"Expires At", st.ExpiresAt}, row{"Complete", st.Complete})
	if st.TokenAccessor != "" {
		rows = append(rows, row{"Token Accessor", st.TokenAccessor})
	}
	return rows
}

func newGenRootInitCmd(g *globals) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "init [--key-file PATH] [--wait]",
		Short: "Start an attempt: make a one-time key pair and print the nonce and key fingerprint for the key holders",
		Args:  args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	kp := addKeyFileFlag(cmd)
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the key holders, then decode and print the new root token")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		path, err := g.keyFilePath(*kp)
		if err != nil {
			return err
		}
		key, err := client.NewGenerateRootKey()
		if err != nil {
			return err
		}
		// The file is made first, exclusively, so that an attempt is
		// never started with a key that cannot be kept.
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return fmt.Errorf("key file: %w", err)
		}
		kf, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("key file %s exists (an earlier attempt's? decode or cancel it, or remove the file, or give another --key-file)", path)
		}
		if err != nil {
			return fmt.Errorf("key file: %w", err)
		}
		keep := false
		defer func() {
			kf.Close()
			if !keep {
				os.Remove(path)
			}
		}()
		st, err := c.GenerateRootInit(cmd.Context(), key.PublicKey())
		if err != nil {
			return err
		}
		if st.PublicKeyFingerprint != key.Fingerprint() {
			return fmt.Errorf("the server reports key %s for this attempt, not ours (%s)", st.PublicKeyFingerprint, key.Fingerprint())
		}
		priv, err := key.Bytes()
		if err != nil {
			return err
		}
		b, err := json.Marshal(genRootKeyFile{Version: 1, Server: c.Address(), Nonce: st.Nonce, Fingerprint: st.PublicKeyFingerprint,
			PrivateKey: base64.StdEncoding.EncodeToString(priv)})
		clear(priv)
		if err == nil {
			_, err = kf.Write(append(b, '\n'))
		}
		clear(b)
		if err == nil {
			err = kf.Sync()
		}
		if err != nil {
			// Without the key nobody can use the result: end the attempt.
			_ = c.GenerateRootCancel(context.WithoutCancel(cmd.Context()), st.Nonce)
			return fmt.Errorf("key file: %w (the attempt was cancelled)", err)
		}
		keep = true
		w := cmd.OutOrStdout()
		if *f == "json" && !wait {
			return writeJSON(w, struct {
				client.GenerateRootStatus
				KeyFile string `json:"key_file"`
			}{st, path})
		}
		if *f != "json" {
			if err := writeTable(w, append(genRootRows(st), row{"Key File", path})); err != nil {
				return err
			}
			fmt.Fprintf(w, "\nGive the nonce and the requester key fingerprint to %d unseal key holders over a channel\n"+
				"you trust. Each runs, against this same server node:\n"+
				"    warden operator generate-root update --nonce %s --fingerprint %s\n"+
				"and types their unseal key. The private key stays in %s (0600);\n"+
				"once they are done, decode the new root token with:\n"+
				"    warden operator generate-root decode --key-file %s\n",
				st.Required, st.Nonce, st.PublicKeyFingerprint, path, path)
		}
		if !wait {
			return nil
		}
		return g.genRootDecode(cmd, c, path, f, true)
	})
	return cmd
}

func newGenRootStatusCmd(g *globals) *cobra.Command {
	return newShowCmd(g, "status", "Show the root generation attempt of the server node",
		func(cmd *cobra.Command, c *client.Client) (any, []row, error) {
			st, err := c.GenerateRootStatus(cmd.Context())
			return st, genRootRows(st), err
		})
}

func newGenRootUpdateCmd(g *globals) *cobra.Command {
	var nonce, fingerprint string
	cmd := &cobra.Command{
		Use:   "update --nonce N [--fingerprint F]",
		Short: "Give one unseal key to the attempt (the key is read from stdin, never from the command line)",
		Long: `Give one unseal key to the attempt whose nonce the requester gave you. The
key is read as one line from stdin. On a terminal, the attempt's requester key
fingerprint is shown before the key is asked for; with --fingerprint the
attempt's must be that one, or the key is not sent.`,
		Args: args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&nonce, "nonce", "", "the attempt's nonce, from the requester (required)")
	cmd.Flags().StringVar(&fingerprint, "fingerprint", "", "the requester key fingerprint the requester gave you; refuse any other")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		if nonce == "" {
			return usagef("--nonce is required")
		}
		st, err := c.GenerateRootStatus(cmd.Context())
		if err != nil {
			return err
		}
		if !st.Started {
			return errors.New("no root generation attempt on this server node (an attempt lives only on the node that started it)")
		}
		if fingerprint != "" && fingerprint != st.PublicKeyFingerprint {
			return fmt.Errorf("the attempt's requester key is %s, not %s: not sending the key", st.PublicKeyFingerprint, fingerprint)
		}
		if isTerminal(g.stdin) {
			// Shown before the key is typed, to compare with the requester's.
			fmt.Fprintf(cmd.ErrOrStderr(), "Attempt on %s: requester key %s, %d of %d unseal keys given, expires %s\n"+
				"Unseal key (input is visible): ", c.Address(), st.PublicKeyFingerprint, st.Progress, st.Required, st.ExpiresAt)
		}
		key, err := readLine(g.stdin)
		if err != nil {
			return fmt.Errorf("unseal key: %w", err)
		}
		key = strings.TrimSpace(key)
		if key == "" {
			return usagef("unseal key: empty")
		}
		st, err = c.GenerateRootUpdate(cmd.Context(), nonce, key)
		if err != nil {
			return err
		}
		if err := output(cmd.OutOrStdout(), f, st, genRootRows(st)); err != nil {
			return err
		}
		if st.Complete && *f != "json" {
			fmt.Fprintln(cmd.OutOrStdout(), "\nThe new root token is made, encrypted to the requester's key: the requester decodes it.")
		}
		return nil
	})
	return cmd
}

func newGenRootCancelCmd(g *globals) *cobra.Command {
	var nonce string
	var withKey bool
	cmd := &cobra.Command{
		Use:   "cancel [--nonce N | --key-file PATH | --unseal-key]",
		Short: "End the attempt: with its nonce (default: from the key file), or with an unseal key read from stdin",
		Args:  args(cobra.NoArgs),
	}
	kp := addKeyFileFlag(cmd)
	cmd.Flags().StringVar(&nonce, "nonce", "", "the attempt's nonce")
	cmd.Flags().BoolVar(&withKey, "unseal-key", false, "authorize with one of the cluster's unseal keys, read from stdin (a key holder ending an attempt)")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		n := 0
		for _, set := range []bool{nonce != "", *kp != "", withKey} {
			if set {
				n++
			}
		}
		if n > 1 {
			return usagef("give one of --nonce, --key-file and --unseal-key")
		}
		if withKey {
			if isTerminal(g.stdin) {
				fmt.Fprint(cmd.ErrOrStderr(), "Unseal key (input is visible): ")
			}
			key, err := readLine(g.stdin)
			if err != nil {
				return fmt.Errorf("unseal key: %w", err)
			}
			if err := c.GenerateRootCancelWithKey(cmd.Context(), strings.TrimSpace(key)); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Success! The root generation attempt is cancelled.")
			return nil
		}
		path := ""
		if nonce == "" {
			p, err := g.keyFilePath(*kp)
			if err != nil {
				return err
			}
			kf, _, err := readGenRootKeyFile(p)
			if err != nil {
				return fmt.Errorf("%w (give --nonce)", err)
			}
			nonce, path = kf.Nonce, p
		}
		if err := c.GenerateRootCancel(cmd.Context(), nonce); err != nil {
			return err
		}
		if path != "" {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("the attempt is cancelled, but its key file was not removed: %w", err)
			}
		}
		fmt.Fprintln(cmd.OutOrStdout(), "Success! The root generation attempt is cancelled.")
		return nil
	})
	return cmd
}

func newGenRootDecodeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "decode [--key-file PATH]",
		Short: "Decrypt the new root token of a completed attempt with the requester's key, then clear the attempt",
		Long: `Fetch the completed attempt's encrypted token from the server node, decrypt it
with the private key of the key file and print it. Then the attempt is cleared
on the server and the key file removed: the key is used once.`,
		Args: args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	kp := addKeyFileFlag(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		path, err := g.keyFilePath(*kp)
		if err != nil {
			return err
		}
		return g.genRootDecode(cmd, c, path, f, false)
	})
	return cmd
}

// genRootPoll is how often init --wait asks the server whether the attempt
// is complete.
const genRootPoll = time.Second

// genRootDecode opens the completed attempt's token with the key file at
// path, prints it, clears the attempt and removes the key file. With wait,
// it first polls until the attempt completes (or ends otherwise).
func (g *globals) genRootDecode(cmd *cobra.Command, c *client.Client, path string, f *format, wait bool) error {
	kf, key, err := readGenRootKeyFile(path)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	var st client.GenerateRootStatus
	var tick *time.Ticker
	for {
		if st, err = c.GenerateRootStatus(ctx); err != nil {
			return err
		}
		if !st.Started {
			return errors.New("no root generation attempt on this server node: it expired, was cancelled, the node was sealed, " +
				"or this is not the node that started it")
		}
		if st.PublicKeyFingerprint != key.Fingerprint() {
			return fmt.Errorf("the attempt on this node is for requester key %s, not this key file's (%s)", st.PublicKeyFingerprint, key.Fingerprint())
		}
		if st.Complete || !wait {
			break
		}
		if tick == nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "Waiting for the unseal key holders (%d of %d; the attempt expires %s)...\n", st.Progress, st.Required, st.ExpiresAt)
			tick = time.NewTicker(genRootPoll)
			defer tick.Stop()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	if !st.Complete {
		return fmt.Errorf("the attempt is not complete: %d of %d unseal keys given", st.Progress, st.Required)
	}
	tok, err := key.DecryptToken(kf.Nonce, st.EncryptedToken)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if *f == "json" {
		err = writeJSON(w, struct {
			Token    string `json:"token"`
			Accessor string `json:"accessor"`
		}{tok, st.TokenAccessor})
	} else {
		err = writeTable(w, []row{{"Root Token", tok}, {"Token Accessor", st.TokenAccessor}})
	}
	if err != nil {
		return err
	}
	// The token is out: clear the attempt and the one-time key.
	var problems []string
	if err := c.GenerateRootCancel(ctx, kf.Nonce); err != nil {
		problems = append(problems, "the attempt was not cleared on the server ("+err.Error()+"); it expires "+st.ExpiresAt)
	}
	if err := os.Remove(path); err != nil {
		problems = append(problems, "the key file was not removed: "+err.Error())
	}
	if len(problems) > 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "Warning: "+strings.Join(problems, "; "))
	}
	return nil
}
