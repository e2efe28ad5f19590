package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warden-sec/warden/internal/agent/config"
	"github.com/warden-sec/warden/internal/agent/nft"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/pkg/client"
)

// DecisionCacheFile is the follower's copy of the decisions in the data
// dir, so that a restart during an outage still enforces them.
const DecisionCacheFile = "decisions.json"

// enforceRetry is how long after a failed Reconcile the agent tries again
// (a new state from the stream tries at once).
const enforceRetry = 5 * time.Second

// enforceResync is how often the agent applies the last state again
// without a change on the stream.
const enforceResync = time.Minute

// Firewall is what the agent enforces decisions with: nft.Enforcer in
// production.
type Firewall interface {
	Setup() error
	Reconcile(want []nft.Element) error
}

var _ Firewall = (*nft.Enforcer)(nil)

// openFirewall picks the enforcement for mode (config.Config.Enforce):
// nftables must work when asked for by name; by default a host where
// netlink cannot be used (no CAP_NET_ADMIN, no nf_tables) runs with none
// and a warning. It returns nil for none.
func openFirewall(mode string, log *slog.Logger) (*nft.Enforcer, error) {
	switch mode {
	case config.EnforceNone:
		log.Info("decisions are not enforced on this host (--enforce none)")
		return nil, nil
	case config.EnforceNFTables:
		e, err := nft.Open(nft.Config{})
		if err != nil {
			return nil, fmt.Errorf("agent: --enforce nftables: %w", err)
		}
		return e, nil
	}
	e, err := nft.Open(nft.Config{})
	if err != nil {
		log.Warn("nftables cannot be used here; decisions are not enforced on this host (--enforce none)", "err", err)
		return nil, nil
	}
	return e, nil
}

// enforcement follows the decision stream and keeps the firewall's sets
// equal to the decisions to apply. The follower's callback only hands
// over the newest state; one goroutine applies it, so a slow netlink
// transaction never holds up the stream, and a failed one is retried.
type enforcement struct {
	log   *slog.Logger
	fw    Firewall
	scope enforceScope
	now   func() time.Time
	retry time.Duration // after a failed Reconcile

	latest atomic.Pointer[client.DecisionState]
	kick   chan struct{}

	applied   atomic.Int64  // decisions applied at the last Reconcile
	elements  atomic.Int64  // elements wanted at the last Reconcile
	refusals  atomic.Uint64 // decisions refused (each counted once)
	failures  atomic.Uint64 // failed Reconciles
	reconcile atomic.Uint64 // successful Reconciles

	lastApplied string // what the last "decisions enforced" said (run's goroutine only)

	mu     sync.Mutex
	logged map[string]string // decision id → what was logged about it (refused, simulated)
}

func newEnforcement(fw Firewall, scope enforceScope, log *slog.Logger) *enforcement {
	return &enforcement{log: log, fw: fw, scope: scope, now: time.Now, retry: enforceRetry, kick: make(chan struct{}, 1), logged: map[string]string{}}
}

// onChange is the follower's OnChange.
func (e *enforcement) onChange(st *client.DecisionState) {
	e.latest.Store(st)
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// run applies each new state until ctx ends. It also applies the last
// one again every resync, which repairs the sets if something else
// changed them. After a failure it sets the firewall up again before the
// next attempt (the table may have been deleted under it: nft flush
// ruleset).
func (e *enforcement) run(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	resync := time.NewTicker(enforceResync)
	defer resync.Stop()
	failed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
		case <-retry.C:
		case <-resync.C:
		}
		st := e.latest.Load()
		if st == nil {
			continue
		}
		var err error
		if failed {
			err = e.fw.Setup()
		}
		if err == nil {
			err = e.apply(st)
		}
		if failed = err != nil; failed {
			e.failures.Add(1)
			e.log.Error("decisions not applied to the firewall; retrying", "err", err, "retry_in", e.retry)
			retry.Reset(e.retry)
			continue
		}
		retry.Stop()
	}
}

func (e *enforcement) apply(st *client.DecisionState) error {
	now := e.now()
	p := planEnforcement(st.Active(now), st.AllowHit, e.scope, now)
	e.report(p)
	if err := e.fw.Reconcile(p.Elements); err != nil {
		return err
	}
	e.reconcile.Add(1)
	e.applied.Store(int64(len(p.Enforced)))
	e.elements.Store(int64(len(p.Elements)))
	level := slog.LevelInfo
	if summary := fmt.Sprint(st.Revision, p.Enforced, len(p.Elements)); summary == e.lastApplied {
		level = slog.LevelDebug // a resync with nothing new
	} else {
		e.lastApplied = summary
	}
	e.log.Log(context.Background(), level, "decisions enforced", "revision", st.Revision, "applied", len(p.Enforced), "elements", len(p.Elements),
		"simulated", len(p.Simulated), "refused", len(p.Refused), "not_for_this_node", p.Skipped)
	return nil
}

// report logs each refused and simulated decision once, and counts the
// refusals.
func (e *enforcement) report(p plan) {
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := map[string]string{}
	for _, r := range p.Refused {
		seen[r.ID] = "refused: " + r.Reason
		if e.logged[r.ID] != seen[r.ID] {
			e.refusals.Add(1)
			e.log.Warn("decision refused: not enforced on this host", "id", r.ID, "reason", r.Reason)
		}
	}
	for _, d := range p.Simulated {
		seen[d.ID] = "simulated"
		if e.logged[d.ID] != "simulated" {
			e.log.Info("simulated decision: not enforced", "id", d.ID, "type", d.Type, "target", targetDesc(d),
				"expires_at", d.ExpiresAt, "reason", d.Reason, "simulated", true)
		}
	}
	e.logged = seen
}

func targetDesc(d client.DecisionRecord) string {
	switch t := d.Target; {
	case t.IP != "":
		return t.IP
	case t.CIDR != "":
		return t.CIDR
	case t.Node != "":
		return "node " + t.Node
	}
	return "user " + d.Target.User
}

// startEnforcement sets the firewall up and starts following the
// decisions: it returns nil (and starts nothing) when fw is nil.
func startEnforcement(ctx context.Context, wg *sync.WaitGroup, fw Firewall, cfg *config.Config, log *slog.Logger) (*enforcement, error) {
	if fw == nil {
		return nil, nil
	}
	if err := fw.Setup(); err != nil {
		return nil, err
	}
	node, err := nodeName(filepath.Join(cfg.DataDir, SVIDFile))
	if err != nil {
		return nil, err
	}
	scope := enforceScope{Node: node, Zone: cfg.Zone, Servers: serverAddrs(ctx, cfg.Servers, log)}
	clients, err := nodeClients(cfg)
	if err != nil {
		return nil, err
	}
	e := newEnforcement(fw, scope, log)
	f, err := client.NewFollower(client.FollowerConfig{Clients: clients, CacheFile: filepath.Join(cfg.DataDir, DecisionCacheFile),
		OnChange: e.onChange, Logger: log})
	if err != nil {
		return nil, err
	}
	wg.Add(2)
	go func() { defer wg.Done(); e.run(ctx) }()
	go func() {
		defer wg.Done()
		if err := f.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("decision stream", "err", err)
		}
	}()
	log.Info("enforcing decisions with nftables", "table", "inet "+nft.Table, "node", node, "zone", cfg.Zone)
	return e, nil
}

// nodeName is the node's name, from its certificate's SPIFFE ID.
func nodeName(svid string) (string, error) {
	leaf, err := loadLeaf(svid)
	if err != nil {
		return "", err
	}
	if len(leaf.URIs) != 1 {
		return "", errors.New("agent: svid.pem has no SPIFFE ID")
	}
	_, kind, name, err := names.ParseSPIFFEID(leaf.URIs[0].String())
	if err != nil {
		return "", fmt.Errorf("agent: svid.pem: %w", err)
	}
	if kind != names.KindNode {
		return "", fmt.Errorf("agent: svid.pem is not a node's (%s)", leaf.URIs[0])
	}
	return name, nil
}

// serverAddrs are the IP addresses of the configured servers (host names
// resolved now); decisions that would drop them are refused.
func serverAddrs(ctx context.Context, servers []string, log *slog.Logger) []netip.Addr {
	var out []netip.Addr
	for _, s := range servers {
		u, err := url.Parse(s)
		if err != nil {
			continue
		}
		host := u.Hostname()
		if a, err := netip.ParseAddr(host); err == nil {
			out = append(out, a.Unmap().WithZone(""))
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
		cancel()
		if err != nil {
			log.Warn("server name does not resolve; decisions are not checked against its addresses", "server", s, "err", err)
			continue
		}
		for _, a := range addrs {
			out = append(out, a.Unmap().WithZone(""))
		}
	}
	return out
}

// nodeClients are API clients of each server that authenticate with the
// node's certificate, read from the data dir at every handshake (renewal
// replaces it).
func nodeClients(cfg *config.Config) ([]*client.Client, error) {
	var out []*client.Client
	for _, s := range cfg.Servers {
		c, err := client.New(client.Config{Address: s, CACertFile: cfg.CACert, Timeout: 30 * time.Second,
			ClientCertFile: filepath.Join(cfg.DataDir, SVIDFile), ClientKeyFile: filepath.Join(cfg.DataDir, KeyFile)})
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}
