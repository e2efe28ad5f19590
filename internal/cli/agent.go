package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/internal/agent"
	"github.com/warden-sec/warden/internal/agent/config"
	"github.com/warden-sec/warden/internal/agent/nft"
	"github.com/warden-sec/warden/pkg/client"
)

func newAgentCmd(g *globals) *cobra.Command {
	var servers []string
	var caCert, token, dir, configFile, spoolMax, metricsListen, enforce, zone string
	var once, cleanup bool
	var auditInterval, inventoryInterval, assessmentInterval time.Duration
	cmd := &cobra.Command{
		Use:   "agent --server ADDR --ca-cert FILE [--join-token T] --data-dir DIR [--once] [--config FILE] [--enforce nftables|none] | agent --cleanup",
		Short: "Enroll this node, keep its certificate fresh, and ship its security events",
		Long: `Enroll this node (its key is made here and never leaves it) with a one-time
join token, then keep renewing the certificate over mutual TLS when 50-60% of
its lifetime has passed. If the servers are unreachable the current files are
kept and renewal is retried with backoff. --once enrolls (or renews, if already
enrolled) and exits.

With --config FILE (YAML; see docs/detection-agent.md) the agent also tails
the configured sources and ships their events to the servers (POST
/v1/events over mutual TLS), spooling them on disk while no server answers.
The flags override the file's settings. SIGHUP reloads the file: added
sources start, removed ones stop, changed ones restart; a file that does not
load is logged and the running configuration kept.

The agent follows the servers' decisions (bans, quarantines) and enforces
them in the kernel's firewall: a table inet warden of nftables, made through
netlink, whose sets hold the banned addresses until each decision expires
(see docs/response.md). --enforce nftables|none chooses; by default nftables
where the agent can use netlink (CAP_NET_ADMIN), else none with a warning.
The table stays when the agent stops; --cleanup removes it and exits.

Every --audit-verify-interval (default 5m; 0: never) the agent verifies the
audit log as ` + "`warden audit verify`" + ` does for its checkpoint: cosigned by a
majority of the server witnesses, and consistent with the checkpoint it verified
last (kept with the trusted keys in <data-dir>/audit-verify.json). A fork is
logged and shipped as an audit_fork event, which the built-in rule "Warden audit
log fork seen by an agent" makes a critical alert. Nodes need audit.read on
AuditLog::"warden" for this (see docs/governance.md, "Witnesses").

The agent reports the node's inventory (POST /v1/inventory): at start, every
--inventory-interval (default 6h), and within 5 minutes of a change (it
collects again every 5 minutes and compares fingerprints); a 429 from the
servers is waited out as its Retry-After says. Every --assessment-interval
(default 1h) it fetches the assessment policies, verifies the cluster's
signature on them against the cluster trust bundle (<data-dir>/bundle.pem), refuses a set issued before the one it
runs, caches the verified set in <data-dir>/assessment-bundle.json (0600),
runs its checks and sends the results; while no server answers it runs the
cached set and keeps the latest results per policy to send later (see
docs/compliance.md).`,
		Args: args(cobra.NoArgs),
	}
	f := cmd.Flags()
	f.StringSliceVar(&servers, "server", nil, "Warden server URL (repeat it, or give a comma-separated list, for several)")
	f.StringVar(&caCert, "ca-cert", "", "CA certificate that signs the server's TLS certificate")
	f.StringVar(&token, "join-token", "", "one-time join token from `warden node token create`")
	f.StringVar(&dir, "data-dir", "", "where to write svid.pem, svid-key.pem and bundle.pem (and the event spool)")
	f.BoolVar(&once, "once", false, "enroll or renew once, then exit")
	f.StringVar(&configFile, "config", "", "agent configuration file (YAML): servers, sources, spool, batches, metrics")
	f.StringVar(&spoolMax, "spool-max-bytes", "", "bound of the on-disk event spool, such as 1GiB (the default) or 512MiB")
	f.StringVar(&metricsListen, "metrics-listen", "", "serve Prometheus metrics on ADDR (host:port) at /metrics")
	f.StringVar(&enforce, "enforce", "", "enforce decisions with nftables or none (default: nftables where netlink can be used, else none with a warning)")
	f.StringVar(&zone, "zone", "", "the node's zone: decisions limited to other zones are not enforced here")
	f.BoolVar(&cleanup, "cleanup", false, "remove the firewall table inet warden (and nothing else) and exit")
	f.DurationVar(&auditInterval, "audit-verify-interval", agent.DefaultAuditVerifyInterval,
		"how often to verify the audit log's checkpoint: witness cosignatures and consistency with the last one (0: never)")
	f.DurationVar(&inventoryInterval, "inventory-interval", agent.DefaultInventoryInterval,
		"how often to send this node's inventory (OS, kernel, packages, pending updates, listening sockets, addresses) when it did not change; it is also sent at start and within 5m of a change (0: never)")
	f.DurationVar(&assessmentInterval, "assessment-interval", agent.DefaultAssessmentInterval,
		"how often to fetch the cluster-signed assessment policies, run their checks on this host and send the results; the last verified policies are cached and run while no server answers (0: never)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if auditInterval < 0 {
			return usagef("--audit-verify-interval: must be 0 (never) or positive, got %s", auditInterval)
		}
		if inventoryInterval < 0 {
			return usagef("--inventory-interval: must be 0 (never) or positive, got %s", inventoryInterval)
		}
		if assessmentInterval < 0 {
			return usagef("--assessment-interval: must be 0 (never) or positive, got %s", assessmentInterval)
		}
		if cleanup {
			e, err := nft.Open(nft.Config{})
			if err != nil {
				return err
			}
			defer e.Close()
			if err := e.Cleanup(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed table inet %s; the rest of the ruleset is untouched\n", nft.Table)
			return nil
		}
		// load reads the file (if any) and applies the flags over it.
		load := func() (*config.Config, error) {
			c := &config.Config{}
			if configFile != "" {
				var err error
				if c, err = config.Load(configFile); err != nil {
					return nil, err
				}
			}
			if f.Changed("server") {
				s, err := config.SplitServers(servers)
				if err != nil {
					return nil, usagef("--server: %v", err)
				}
				c.Servers = s
			}
			if f.Changed("ca-cert") {
				c.CACert = caCert
			}
			if f.Changed("data-dir") {
				c.DataDir = dir
			}
			if f.Changed("spool-max-bytes") {
				n, err := config.ParseBytes(spoolMax)
				if err != nil {
					return nil, usagef("--spool-max-bytes: %v", err)
				}
				c.SpoolMaxBytes = config.ByteSize(n)
			}
			if f.Changed("metrics-listen") {
				c.MetricsListen = metricsListen
			}
			if f.Changed("enforce") {
				if err := config.CheckEnforce(enforce); err != nil || enforce == "" {
					return nil, usagef("--enforce: want nftables or none, got %q", enforce)
				}
				c.Enforce = enforce
			}
			if f.Changed("zone") {
				c.Zone = zone
			}
			if len(c.Servers) == 0 || c.DataDir == "" {
				return nil, usagef("--server and --data-dir are required (as flags or in --config)")
			}
			return c, nil
		}
		cfg, err := load()
		if err != nil {
			return err
		}
		run := agent.RunConfig{Server: cfg.Servers[0], Servers: cfg.Servers, CACert: cfg.CACert, DataDir: cfg.DataDir}
		out := cmd.OutOrStdout()
		var enrolled string
		if _, err := os.Stat(filepath.Join(cfg.DataDir, agent.SVIDFile)); err == nil {
			if once {
				exp, err := agent.RenewOnce(cmd.Context(), run)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "Renewed; certificate valid until %s\n", exp.Format(time.RFC3339))
				return nil
			}
		} else {
			if token == "" {
				return usagef("--join-token is required to enroll (no %s in %s)", agent.SVIDFile, cfg.DataDir)
			}
			c, err := client.New(client.Config{Address: cfg.Servers[0], CACertFile: cfg.CACert})
			if err != nil {
				return err
			}
			res, err := agent.Enroll(cmd.Context(), agent.Config{Client: c, JoinToken: token, DataDir: cfg.DataDir})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Enrolled as %s; certificate valid until %s; files in %s\n", res.SPIFFEID, res.ExpiresAt, cfg.DataDir)
			if once {
				return nil
			}
			enrolled = res.SPIFFEID
		}
		logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
		logger.Info("keeping the certificate fresh", "data_dir", cfg.DataDir)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer func() { signal.Stop(hup); close(hup) }()
		reload := make(chan struct{}, 1)
		go func() {
			for range hup {
				select {
				case reload <- struct{}{}:
				default:
				}
			}
		}()
		return agent.Daemon(cmd.Context(), agent.DaemonConfig{Load: load, Reload: reload,
			Enrolled: enrolled != "", EnrolledAs: enrolled, Logger: logger, AuditVerifyInterval: auditInterval,
			InventoryInterval: inventoryInterval, AssessmentInterval: assessmentInterval})
	}
	return cmd
}
