package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/agent/config"
	"github.com/warden-sec/warden/internal/agent/inventory"
	"github.com/warden-sec/warden/internal/version"
	"github.com/warden-sec/warden/pkg/client"
)

// DefaultInventoryInterval is how often the agent sends its inventory
// when nothing changed (--inventory-interval).
const DefaultInventoryInterval = 6 * time.Hour

// InventoryCheckInterval is how often the agent collects its inventory
// again to see whether it changed (its fingerprint), and sends it if so.
const InventoryCheckInterval = 5 * time.Minute

// minRetryAfter is how long the agent waits after a 429 that did not say.
const minRetryAfter = time.Minute

// inventoryReporter decides when the node's inventory is sent: at the
// first step, when Interval passed since the last one the servers took,
// and when the fingerprint changed; never before a 429's Retry-After
// passed. It is driven by one goroutine (step is not concurrent).
type inventoryReporter struct {
	servers   []string
	interval  time.Duration
	newClient func(server string) (*client.Client, error)
	collect   func(ctx context.Context) (*inventory.Inventory, error)
	now       func() time.Time
	log       *slog.Logger

	sent      string    // fingerprint the servers last took
	sentAt    time.Time // when
	notBefore time.Time // a 429's Retry-After
}

// step collects the inventory and sends it if it is due. It returns
// whether the servers took it (stored or unchanged); errors are logged,
// never fatal, and the next step tries again.
func (r *inventoryReporter) step(ctx context.Context) bool {
	now := r.now()
	if now.Before(r.notBefore) {
		return false
	}
	inv, err := r.collect(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("inventory collection failed", "err", err)
		}
		return false
	}
	fp := inv.Fingerprint()
	if fp == r.sent && now.Sub(r.sentAt) < r.interval {
		return false
	}
	var last error
	for _, s := range r.servers {
		c, err := r.newClient(s)
		if err != nil {
			r.log.Error("inventory: client", "server", s, "err", err)
			return false
		}
		out, err := c.PostInventory(ctx, inv)
		c.CloseIdleConnections()
		var rl *client.RateLimitError
		var ae *client.APIError
		switch {
		case errors.As(err, &rl):
			wait := max(rl.RetryAfter, minRetryAfter)
			r.notBefore = now.Add(wait)
			r.log.Info("inventory rate limited by the servers", "server", s, "retry_after", wait.String())
			return false
		case errors.As(err, &ae):
			r.log.Warn("inventory refused", "server", s, "err", err)
			return false
		case err != nil:
			last = err // unreachable: the next server
			continue
		}
		r.sent, r.sentAt = fp, now
		r.log.Info("inventory sent", "server", s, "stored", out.Stored, "fingerprint", fp,
			"packages", len(inv.Packages), "listening", len(inv.Listening))
		return true
	}
	if ctx.Err() == nil {
		r.log.Warn("inventory not sent: no server answered", "err", last)
	}
	return false
}

// run steps at once and then on every tick until ctx ends.
func (r *inventoryReporter) run(ctx context.Context, ticks <-chan time.Time) {
	r.step(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
			r.step(ctx)
		}
	}
}

// nodeClient makes clients that speak to a server as this node (mutual
// TLS with the certificate and key in dataDir, trusting caCert).
func nodeClient(caCert, dataDir string) func(server string) (*client.Client, error) {
	return func(server string) (*client.Client, error) {
		c, err := client.New(client.Config{Address: server, CACertFile: caCert, Timeout: 60 * time.Second,
			ClientCertFile: filepath.Join(dataDir, SVIDFile), ClientKeyFile: filepath.Join(dataDir, KeyFile)})
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		return c, nil
	}
}

// startCompliance starts the inventory and assessment loops that dc asks
// for (each runs until ctx ends; its errors are logged, never fatal).
func startCompliance(ctx context.Context, wg *sync.WaitGroup, dc DaemonConfig, cfg *config.Config, log *slog.Logger, enforcing bool) {
	enforcement := "none"
	if enforcing {
		enforcement = "nftables"
	}
	newClient := nodeClient(cfg.CACert, cfg.DataDir)
	if dc.InventoryInterval > 0 {
		r := &inventoryReporter{servers: cfg.Servers, interval: dc.InventoryInterval, newClient: newClient, now: time.Now, log: log,
			collect: func(ctx context.Context) (*inventory.Inventory, error) {
				inv, err := inventory.Collect(ctx, inventory.Options{Root: "/", AgentVersion: version.Get().Version})
				if inv != nil {
					inv.Enforcement = enforcement
				}
				return inv, err
			}}
		t := time.NewTicker(min(InventoryCheckInterval, dc.InventoryInterval))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer t.Stop()
			r.run(ctx, t.C)
		}()
	}
	if dc.AssessmentInterval > 0 {
		a := &assessRunner{servers: cfg.Servers, dataDir: cfg.DataDir, roots: caRoots(filepath.Join(cfg.DataDir, BundleFile)), newClient: newClient,
			assessor: newAssessor(), now: time.Now, log: log}
		t := time.NewTicker(dc.AssessmentInterval)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer t.Stop()
			a.run(ctx, t.C)
		}()
	}
}
