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
	"github.com/warden-sec/warden/internal/agent/ship"
	"github.com/warden-sec/warden/internal/auditcheck"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/pkg/client"
)

// DefaultAuditVerifyInterval is how often the agent verifies the audit
// log's checkpoint (--audit-verify-interval).
const DefaultAuditVerifyInterval = 5 * time.Minute

// AuditStateFile, in the data dir, is what the agent's audit verification
// keeps between checks (auditcheck.State): the checkpoint it verified last
// and the keys it trusts, pinned at its first check.
const AuditStateFile = "audit-verify.json"

// AuditCheckConfig configures CheckAudit.
type AuditCheckConfig struct {
	Servers []string // asked in turn until one answers
	CACert  string
	DataDir string // the node's identity (mutual TLS) and the state file
	// Quorum of witness cosignatures (0: a majority of the server
	// witnesses; see auditcheck.Options).
	Quorum int
	// Observe, if set, is given an audit_fork observation on a fork.
	Observe func(ship.Observation)
	Logger  *slog.Logger
}

// CheckAudit verifies the audit log once, as `warden audit verify` does
// for its checkpoint (see internal/auditcheck): the first server that
// answers must serve a checkpoint cosigned by a quorum of the trusted
// witnesses and consistent with the one verified last, which the state
// file in the data dir keeps. A fork is logged at ERROR, observed (an
// audit_fork event with both checkpoints) and returned as an
// *auditcheck.ForkError; the state is then left as it was.
func CheckAudit(ctx context.Context, cfg AuditCheckConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	statePath := filepath.Join(cfg.DataDir, AuditStateFile)
	st, err := auditcheck.LoadState(statePath)
	if err != nil {
		return err
	}
	var last error
	for _, s := range cfg.Servers {
		c, err := client.New(client.Config{Address: s, CACertFile: cfg.CACert, Timeout: 30 * time.Second,
			ClientCertFile: filepath.Join(cfg.DataDir, SVIDFile), ClientKeyFile: filepath.Join(cfg.DataDir, KeyFile)})
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		rep, err := auditcheck.Check(ctx, c, auditcheck.Options{State: st, Quorum: cfg.Quorum})
		var fork *auditcheck.ForkError
		var ae *client.APIError
		switch {
		case errors.As(err, &fork):
			log.Error("audit log fork: "+fork.Reason, "server", s, "verified", string(fork.Verified), "served", string(fork.Served))
			if cfg.Observe != nil {
				cfg.Observe(ship.Observation{Action: events.ActionAuditFork, Outcome: "failure",
					Message:     fmt.Sprintf("the audit log served by %s forked or was rewritten: %s", s, fork.Reason),
					Checkpoints: [2]string{string(fork.Verified), string(fork.Served)}})
			}
			return err
		case errors.As(err, &ae):
			return fmt.Errorf("agent: audit verification against %s: %w", s, err)
		case err != nil:
			last = err // unreachable: try the next server
			continue
		}
		return rep.State.Save(statePath)
	}
	return fmt.Errorf("agent: audit verification: no server answered: %w", last)
}

// verifyAudit runs CheckAudit every interval until ctx ends, the first
// time at once.
func (d *daemon) verifyAudit(ctx context.Context, wg *sync.WaitGroup, cfg *config.Config, interval time.Duration) {
	defer wg.Done()
	for {
		err := CheckAudit(ctx, AuditCheckConfig{Servers: cfg.Servers, CACert: cfg.CACert, DataDir: cfg.DataDir,
			Observe: func(ob ship.Observation) { d.observeStarting(ctx, wg, ob) }, Logger: d.log})
		var fork *auditcheck.ForkError
		if err != nil && !errors.As(err, &fork) && ctx.Err() == nil {
			d.log.Warn("audit verification failed", "err", err)
		}
		if !ship.Sleep(ctx, interval) {
			return
		}
	}
}

// observeStarting records ob, starting the shipper first if it does not
// run (no sources were configured): an observation that must reach the
// servers.
func (d *daemon) observeStarting(ctx context.Context, wg *sync.WaitGroup, ob ship.Observation) {
	d.mu.Lock()
	if d.shipper == nil {
		if err := d.startShipper(ctx, wg, d.cfg); err != nil {
			d.log.Error("cannot start the shipper to report an observation", "action", ob.Action, "err", err)
		}
	}
	d.mu.Unlock()
	d.observe(ob)
}
