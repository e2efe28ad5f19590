package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/internal/api"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/respond"
	"github.com/warden-sec/warden/internal/server"
)

func newServerCmd() *cobra.Command {
	var (
		cfg       server.Config
		dev       bool
		logLevel  string
		logFormat string

		retryJoinToken, retryJoinCA string
		maxBanPrefix                string
		importCA                    [3]string // cert, key, chain files
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Warden server",
		Long: `Run the Warden server.

With --data-dir the server keeps its state there and starts sealed: initialize it
once with "warden operator init", then unseal it with "warden operator unseal" after
every start. With --dev it uses a new temporary data dir, initializes itself with a
single unseal key, unseals, and prints the root token: for trying Warden out only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			logger, err := newLogger(cmd.ErrOrStderr(), logLevel, logFormat, dev)
			if err != nil {
				return err
			}
			cfg.Logger = logger
			if cfg.MaxBanPrefix4, cfg.MaxBanPrefix6, err = respond.ParseMaxPrefix(maxBanPrefix); err != nil {
				return err
			}
			if cfg.RequireMFAGroups, err = canonicalGroupFlag("--require-mfa-group", cfg.RequireMFAGroups); err != nil {
				return err
			}
			if dev {
				if cfg.DataDir != "" {
					return errors.New("--dev uses a temporary data dir; do not give --data-dir")
				}
				dir, err := os.MkdirTemp("", "warden-dev-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				cfg.DataDir = dir
			} else if cfg.DataDir == "" {
				return errors.New("--data-dir is required (or use --dev to try Warden out)")
			}
			if retryJoinToken != "" {
				b, err := os.ReadFile(retryJoinToken)
				if err != nil {
					return fmt.Errorf("--retry-join-token-file: %w", err)
				}
				cfg.RetryJoinToken = strings.TrimSpace(string(b))
			}
			if retryJoinCA != "" {
				b, err := os.ReadFile(retryJoinCA)
				if err != nil {
					return fmt.Errorf("--retry-join-ca-cert: %w", err)
				}
				cfg.RetryJoinCA = b
			}
			for i, dst := range []*[]byte{&cfg.CAImportCert, &cfg.CAImportKey, &cfg.CAImportChain} {
				if importCA[i] == "" {
					continue
				}
				b, err := os.ReadFile(importCA[i])
				if err != nil {
					return fmt.Errorf("--import-ca-*: %w", err)
				}
				*dst = b
			}
			if dev && cfg.NodeID != "" {
				return errors.New("--dev runs a standalone node; do not give --node-id")
			}
			if dev && cfg.WebAuthnRPID == "" {
				// Passkeys work on the dev server's own address, as
				// https://localhost:<port> (a relying party is a name, not an IP).
				if _, port, err := net.SplitHostPort(cfg.Listen); err == nil && port != "0" {
					cfg.WebAuthnRPID, cfg.WebAuthnOrigins = "localhost", []string{"https://localhost:" + port}
				}
			}
			if cfg.WebAuthnRPID != "" && len(cfg.WebAuthnOrigins) == 0 {
				return errors.New("--webauthn-rp-id needs --webauthn-origin (the console's https:// origin)")
			}
			srv, err := server.New(cfg)
			if err != nil {
				return err
			}
			defer srv.Close()
			if err := srv.Start(); err != nil {
				return err
			}
			if dev {
				ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
				key, root, err := srv.DevInit(ctx)
				cancel()
				if err != nil {
					return fmt.Errorf("dev init: %w", err)
				}
				fmt.Fprintf(out, `Warden dev server is running, initialized and unsealed.
Do not use it in production: it has a single unseal key and keeps its data in %s.

Unseal Key: %s
Root Token: %s

Paste this into your shell:

export WARDEN_ADDR='%s' WARDEN_CACERT='%s' WARDEN_TOKEN='%s'

`, cfg.DataDir, key, root.Reveal(), srv.Addr(), srv.CAFile(), root.Reveal())
			} else {
				fmt.Fprintf(out, "Warden server listening on %s\n", srv.Addr())
				if ca := srv.CAFile(); ca != "" {
					fmt.Fprintf(out, "TLS CA certificate for clients: %s\n", ca)
				}
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sig)
			select {
			case s := <-sig:
				logger.Info("shutting down", "signal", s.String())
				return nil
			case err := <-srv.Done():
				return err
			case <-cmd.Context().Done():
				return nil
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for the server's state")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8200", "address to serve the HTTPS API on")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate (PEM); default: a bootstrap certificate under <data-dir>/tls")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key (PEM) for --tls-cert")
	f.BoolVar(&dev, "dev", false, "run a throwaway, self-initialized, unsealed server")
	f.Float64Var(&cfg.RateLimit, "rate-limit", 0, "requests per second per client IP (0: default 200; negative: off)")
	f.BoolVar(&cfg.MetricsPublic, "metrics-public", false, "serve /metrics without credentials (default: it needs the action metrics.read)")
	f.StringVar(&cfg.DecisionLog, "decision-log", "", "write the decision API's decisions to this file as JSON lines (mode 0600; asynchronous: entries are dropped, and counted, rather than delay a decision)")
	f.Float64Var(&cfg.DecisionLogSample, "decision-log-sample", 1, "fraction of decisions written to --decision-log, 0 to 1")
	f.Int64Var(&cfg.MaxRequestBytes, "max-request-bytes", 0, "largest accepted request body (0: 1 MiB)")
	f.StringVar(&cfg.AuditFile, "audit-file", "", "also write every audit entry to this file as a JSON line (fsynced per batch); required unless --audit-file-best-effort")
	f.BoolVar(&cfg.AuditFileBestEffort, "audit-file-best-effort", false, "a failing --audit-file only logs instead of refusing audited requests")
	f.BoolVar(&cfg.AuditStdout, "audit-stdout", false, "also write every audit entry to standard output; required unless --audit-stdout-best-effort")
	f.BoolVar(&cfg.AuditStdoutBestEffort, "audit-stdout-best-effort", false, "a failing --audit-stdout only logs")
	f.DurationVar(&cfg.AuditMaxMergeDelay, "audit-max-merge-delay", 0, "maximum merge delay of the audit log: records of reads, denies and failures are acknowledged from a local journal and merged into the replicated log within it (0: 1s)")
	f.StringVar(&cfg.CAKeyType, "ca-key-type", "ec-p256", "key type of the CAs init creates: ec-p256 or ed25519; fixed at init")
	f.StringVar(&importCA[0], "import-ca-cert", "", "at init, use this operator CA (PEM) instead of a new root: a self-signed root, or an intermediate with --import-ca-chain")
	f.StringVar(&importCA[1], "import-ca-key", "", "the unencrypted PKCS #8 key (PEM) of --import-ca-cert")
	f.StringVar(&importCA[2], "import-ca-chain", "", "for an imported intermediate: the certificates above it up to the root (PEM)")
	f.StringVar(&cfg.TrustDomain, "trust-domain", "warden.local", "SPIFFE trust domain of the identities this cluster issues; fixed at init")
	f.StringVar(&cfg.NodeID, "node-id", "", "cluster mode: this node's ID, a canonical name unique in the cluster (with --cluster-listen)")
	f.StringVar(&cfg.ClusterListen, "cluster-listen", "", "cluster mode: host:port for Raft and forwarded requests (mutual TLS), as other nodes reach it")
	f.StringSliceVar(&cfg.RetryJoin, "retry-join", nil, "cluster mode: API address of a member to ask, again and again while this node has no cluster state, to admit it (repeatable)")
	f.StringVar(&retryJoinToken, "retry-join-token-file", "", "file holding a token the cluster allows raft.join (for --retry-join)")
	f.StringVar(&retryJoinCA, "retry-join-ca-cert", "", "PEM CA certificate of the members' API (for --retry-join; default: system roots)")
	f.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", 0, "take a Raft snapshot after this many new log entries (0: 8192)")
	f.DurationVar(&cfg.SnapshotInterval, "snapshot-interval", 0, "how often to check --snapshot-threshold (0: 2m)")
	f.Uint64Var(&cfg.TrailingLogs, "trailing-logs", 0, "log entries kept after a snapshot for lagging followers (0: 10240)")
	f.Uint64Var(&cfg.RaftLogBytes, "raft-log-bytes", 0, "take a Raft snapshot (and compact the log) as soon as the commands since the last one total this many bytes (0: 64 MiB)")
	f.DurationVar(&cfg.HeartbeatTimeout, "raft-heartbeat-timeout", 0, "cluster mode: a follower that has not heard from the leader this long starts an election (0: 200ms, or --raft-election-timeout if set)")
	f.DurationVar(&cfg.ElectionTimeout, "raft-election-timeout", 0, "cluster mode: how long a candidate waits for votes before trying again (0: the heartbeat timeout)")
	f.DurationVar(&cfg.LeaderLeaseTimeout, "raft-leader-lease-timeout", 0, "cluster mode: a leader that has not heard from a majority this long steps down (0: the heartbeat timeout; at most that)")
	f.DurationVar(&cfg.ServerCertTTL, "server-cert-ttl", 0, "cluster mode: lifetime of the server certificates this node issues; each node renews its own at half (0: 24h)")
	f.StringVar(&cfg.EventsNATSListen, "events-nats-listen", "", "cluster mode: open the embedded NATS server's client port on host:port (mutual TLS; servers of this cluster only); default: no port, the server reaches its NATS in-process")
	f.StringVar(&cfg.EventsNATSClusterListen, "events-nats-cluster-listen", "", "cluster mode: host:port of the embedded NATS server's route port (mutual TLS with the cluster certificates); the servers' NATS form a JetStream cluster")
	f.StringSliceVar(&cfg.EventsNATSRoutes, "events-nats-routes", nil, "cluster mode: host:port of the other servers' --events-nats-cluster-listen (repeatable, or comma-separated)")
	f.StringVar(&cfg.EventsNATSURL, "events-nats-url", "", "use this external NATS cluster (nats:// or tls:// URLs, comma-separated) for events instead of the embedded server")
	f.StringVar(&cfg.EventsNATSCreds, "events-nats-creds", "", "NATS credentials file (JWT and nkey) for --events-nats-url")
	f.DurationVar(&cfg.EventsMaxAge, "events-max-age", 168*time.Hour, "keep events this long in the stream")
	f.Int64Var(&cfg.EventsMaxBytes, "events-max-bytes", 10<<30, "keep at most this many bytes of events in the stream (the oldest go first)")
	f.Int64Var(&cfg.EventsMaxBatchBytes, "events-max-batch-bytes", 4<<20, "largest batch of POST /v1/events, compressed and decompressed")
	f.BoolVar(&cfg.EventsCompression, "events-compression", true, "store the event stream S2-compressed (fixed when the stream is created; about 6% of ingest throughput, a fraction of the disk)")
	f.DurationVar(&cfg.EscalationWindow, "escalation-window", respond.DefaultEscalationWindow, "a ban of a value banned before within this window lasts longer (repeat offenders)")
	f.Float64Var(&cfg.EscalationFactor, "escalation-factor", respond.DefaultEscalationFactor, "a repeat offender's ban lasts this many times longer for each earlier ban within --escalation-window")
	f.DurationVar(&cfg.EscalationMax, "escalation-max", respond.DefaultEscalationMax, "the longest an escalated ban lasts")
	f.StringVar(&maxBanPrefix, "max-ban-prefix", "16,48", "the widest ranges a ban may take: IPv4,IPv6 prefix lengths")
	f.IntVar(&cfg.MaxDecisionStreams, "max-decision-streams", api.DefaultMaxDecisionStreams, "decision streams (agents and services following decisions) this server serves at once")
	f.BoolVar(&cfg.DualControl, "dual-control", false, "dual control: the initialization this server does (--dev, or an init it serves) turns it on and writes the default approval rule (docs/governance.md)")
	f.DurationVar(&cfg.RequestTTL, "request-ttl", 24*time.Hour, "dual control: how long a request waits for its approvals and its run")
	f.StringVar(&cfg.BreakGlassGroup, "break-glass-group", "", "dual control: members of this group act without approvals, each time raising a critical alert")
	f.StringSliceVar(&cfg.RequireMFAGroups, "require-mfa-group", nil, "people: members of this group must log in with a second factor (repeatable; give every server the same)")
	f.DurationVar(&cfg.SessionTTL, "session-ttl", 8*time.Hour, "people: the longest a login session lives")
	f.DurationVar(&cfg.SessionIdle, "session-idle", time.Hour, "people: a login session unused this long ends")
	f.DurationVar(&cfg.ComplianceInterval, "compliance-interval", time.Hour, "compliance: how often the leader evaluates the controls and stores the risk scores (the first time within a minute of leading); a control that goes from pass to fail raises an alert (negative: never)")
	f.StringVar(&cfg.WebAuthnRPID, "webauthn-rp-id", "", "people: the passkeys' relying party ID, the console's host name (--dev: localhost)")
	f.StringSliceVar(&cfg.WebAuthnOrigins, "webauthn-origin", nil, "people: the console's origin(s) passkeys are used from, https://host[:port] (repeatable; --dev: https://localhost:<port>)")
	f.DurationVar(&cfg.TransitScheduleInterval, "transit-schedule-interval", time.Minute, "how often the leader rotates and retires the transit keys that are due (auto_rotate_period, auto_retire_after)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "", "json or text (default: text with --dev, json otherwise)")
	return cmd
}

// canonicalGroupFlag returns the canonical forms of a flag's group names,
// as the users service stores groups (Admins is admins), or an error
// naming the flag and what is wrong with the name.
func canonicalGroupFlag(flag string, groups []string) ([]string, error) {
	out := make([]string, 0, len(groups))
	for _, g := range groups {
		c, err := names.Canonical(g)
		if err != nil {
			var ne *names.NameError
			if errors.As(err, &ne) {
				return nil, fmt.Errorf("%s %q: not a group name: %s", flag, g, ne.Reason)
			}
			return nil, fmt.Errorf("%s %q: not a group name: %w", flag, g, err)
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

func newLogger(w io.Writer, level, format string, dev bool) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", level)
	}
	if format == "" {
		format = "json"
		if dev {
			format = "text"
		}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not json or text", format)
}
