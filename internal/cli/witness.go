package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/internal/witness"
)

// Files of `warden witness` in its data dir.
const (
	witnessKeyFile  = "witness.key" // the signer key, 0600
	witnessStateDir = "state"       // internal/witness state: one file per log
)

func newWitnessCmd() *cobra.Command {
	var (
		listen, dataDir, name, tlsCert, tlsKey string
		logs                                   []string
		logLevel, logFormat                    string
	)
	cmd := &cobra.Command{
		Use:   "witness --data-dir DIR --log ORIGIN=VKEY [--log ORIGIN=VKEY]...",
		Short: "Run a standalone witness of transparency logs (C2SP tlog-witness)",
		Long: `Run a standalone witness of transparency logs: it serves the C2SP tlog-witness
protocol (POST /add-checkpoint, GET /<sha256 of the origin>/checkpoint) and cosigns a
checkpoint of a log it was given (--log) only if it extends the last one it cosigned.

On first start it makes its Ed25519 key (<data-dir>/witness.key, mode 0600) named
--name; it prints its verifier key on every start: give it to the logs and to whoever
verifies cosignatures. What it cosigned is kept under <data-dir>/state. SIGINT or
SIGTERM stops it after the requests in flight. See docs/witness.md.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if dataDir == "" {
				return usagef("--data-dir is required")
			}
			if len(logs) == 0 {
				return usagef("give at least one --log ORIGIN=VKEY: the logs this witness cosigns")
			}
			if (tlsCert == "") != (tlsKey == "") {
				return usagef("--tls-cert and --tls-key go together")
			}
			logMap := make(map[string]string, len(logs))
			for _, l := range logs {
				origin, vkey, ok := strings.Cut(l, "=")
				if !ok || origin == "" || vkey == "" {
					return usagef("--log %q: want ORIGIN=VKEY (the log's origin line, then its note verifier key)", l)
				}
				if _, dup := logMap[origin]; dup {
					return usagef("--log: origin %q given twice", origin)
				}
				logMap[origin] = vkey
			}
			logger, err := newLogger(cmd.ErrOrStderr(), logLevel, logFormat, false)
			if err != nil {
				return usagef("%v", err)
			}
			var tlsCfg *tls.Config
			if tlsCert != "" {
				cert, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
				if err != nil {
					return fmt.Errorf("--tls-cert/--tls-key: %w", err)
				}
				tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			}
			skey, created, err := witnessKey(dataDir, name)
			if err != nil {
				return err
			}
			w, err := witness.Open(witness.Config{Dir: filepath.Join(dataDir, witnessStateDir), Signer: skey, Logs: logMap})
			if err != nil {
				return err
			}
			defer w.Close()
			w.SetLogger(logger)
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			scheme := "http"
			if tlsCfg != nil {
				ln = tls.NewListener(ln, tlsCfg)
				scheme = "https"
			}
			// SIGINT also cancels the command's context (Main's
			// NotifyContext): either way is a stop, logged before the
			// server is told to stop, so the line is out before exit.
			ctx, cancel := context.WithCancel(context.WithoutCancel(cmd.Context()))
			defer cancel()
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sig)
			go func() {
				select {
				case s := <-sig:
					logger.Info("witness: shutting down", "signal", s.String())
				case <-cmd.Context().Done():
					logger.Info("witness: shutting down", "signal", "interrupt")
				case <-ctx.Done():
					return
				}
				cancel()
			}()
			served := make(chan error, 1)
			go func() { served <- w.Serve(ctx, ln) }()

			if created {
				fmt.Fprintf(out, "Created the witness key %s\n", filepath.Join(dataDir, witnessKeyFile))
			}
			fmt.Fprintf(out, "Warden witness %s\n", w.Name())
			fmt.Fprintf(out, "Verifier key: %s\n", w.VerifierKey())
			for _, origin := range slices.Sorted(maps.Keys(logMap)) {
				fmt.Fprintf(out, "Log: %s\n", origin)
			}
			fmt.Fprintf(out, "Listening on %s://%s\n", scheme, ln.Addr())
			if err := <-served; err != nil {
				return err
			}
			return w.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8300", "address to serve the witness protocol on")
	f.StringVar(&dataDir, "data-dir", "", "directory for the witness's key and state (created 0700)")
	f.StringArrayVar(&logs, "log", nil, "a log to witness: ORIGIN=VKEY, its origin line and note verifier key (repeatable)")
	f.StringVar(&name, "name", "", "the witness's key name, made on first start (default: <hostname>/witness); must match the key's name later")
	f.StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	f.StringVar(&tlsKey, "tls-key", "", "the private key (PEM) of --tls-cert")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "json or text")
	return cmd
}

// witnessKey reads the witness's signer key from dir, or makes it (named
// name, or "<hostname>/witness") if there is none (witness.LoadKey). It
// refuses a key file that others may read, and a --name other than the
// key's.
func witnessKey(dir, name string) (skey string, created bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("--data-dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("--data-dir: %w", err)
	}
	if name != "" {
		if err := witness.CheckKeyName(name); err != nil {
			return "", false, fmt.Errorf("--name: %w", err)
		}
	}
	keyName := name
	if keyName == "" {
		host, err := os.Hostname()
		if err != nil {
			return "", false, fmt.Errorf("--name not given and no hostname: %w", err)
		}
		keyName = host + "/witness"
	}
	path := filepath.Join(dir, witnessKeyFile)
	skey, vkey, created, err := witness.LoadKey(path, keyName)
	if err != nil {
		return "", false, err
	}
	if name != "" && witness.KeyName(vkey) != name {
		return "", false, fmt.Errorf("--name %q: the witness key in %s is named %q (a witness's name is fixed when its key is made)",
			name, path, witness.KeyName(vkey))
	}
	return skey, created, nil
}
