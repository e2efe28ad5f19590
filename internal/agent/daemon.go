package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/warden-sec/warden/internal/agent/config"
	"github.com/warden-sec/warden/internal/agent/fim"
	"github.com/warden-sec/warden/internal/agent/journald"
	"github.com/warden-sec/warden/internal/agent/ship"
	"github.com/warden-sec/warden/internal/agent/source"
	"github.com/warden-sec/warden/internal/agent/tail"
	"github.com/warden-sec/warden/internal/events/parse"
)

// DaemonConfig configures Daemon.
type DaemonConfig struct {
	// Load returns the agent's configuration: the --config file (if any)
	// with the flags applied over it. Daemon calls it at start and on every
	// receive from Reload. Servers and DataDir must be set.
	Load func() (*config.Config, error)
	// Reload asks for the configuration to be loaded again (SIGHUP).
	Reload <-chan struct{}
	// Enrolled says the node enrolled just before: an "enrolled" event is
	// shipped.
	Enrolled bool
	// EnrolledAs is the SPIFFE ID it enrolled as (for that event).
	EnrolledAs string
	Logger     *slog.Logger
	// MetricsReady, if set, receives the metrics listener's address once
	// it listens.
	MetricsReady func(addr string)
	// Firewall, if set, enforces the decisions instead of the one the
	// configuration's Enforce names (tests: an enforcer in a network
	// namespace of their own).
	Firewall Firewall
	// AuditVerifyInterval is how often the audit log's checkpoint is
	// verified (CheckAudit); 0: never.
	AuditVerifyInterval time.Duration
	// InventoryInterval is how often the node's inventory is sent when it
	// did not change (it is also sent at start, and within
	// InventoryCheckInterval of a change); 0: never.
	InventoryInterval time.Duration
	// AssessmentInterval is how often the signed assessment policies are
	// fetched, run and their results sent; 0: never.
	AssessmentInterval time.Duration
}

// Daemon runs the agent until ctx ends: the certificate renewal loop, the
// shipper with the configured sources (when any source is configured, or
// a spool is left to drain), the metrics listener when one is
// configured, and the enforcement of decisions (docs/response.md,
// "Enforcement on hosts"): the table inet warden is set up at start, kept
// equal to the decision stream, and left in place at exit (the bans hold
// while the agent restarts; `warden agent --cleanup` removes it). On Reload it applies the new sources: added ones start,
// removed ones stop, changed ones restart (from their position when their
// name, which holds the path, is the same). A file that does not load, or
// a source that cannot be built, is logged and the running configuration
// kept; server, data dir, spool, batch and metrics settings take effect at
// the next start.
func Daemon(ctx context.Context, dc DaemonConfig) error {
	log := dc.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := dc.Load()
	if err != nil {
		return err
	}
	if len(cfg.Servers) == 0 || cfg.DataDir == "" {
		return errors.New("agent: a server and a data dir are required")
	}
	d := &daemon{log: log, cfg: cfg, built: map[string]builtSource{}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	// The shipper runs when sources are configured, or when it ran before
	// (its spool may hold batches to send).
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "events")); err == nil || len(cfg.Sources) > 0 {
		d.mu.Lock()
		err := d.startShipper(ctx, &wg, cfg)
		d.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if cfg.MetricsListen != "" {
		ln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("agent: metrics listener: %w", err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(&collector{d: d})
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics listener", "err", err)
			}
		}()
		go func() { <-ctx.Done(); hs.Close() }()
		log.Info("serving metrics", "addr", ln.Addr().String())
		if dc.MetricsReady != nil {
			dc.MetricsReady(ln.Addr().String())
		}
	}
	fw := dc.Firewall
	if fw == nil {
		e, err := openFirewall(cfg.Enforce, log)
		if err != nil {
			return err
		}
		if e != nil {
			defer e.Close()
			fw = e
		}
	}
	enf, err := startEnforcement(ctx, &wg, fw, cfg, log)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.enf = enf
	d.mu.Unlock()
	if dc.AuditVerifyInterval > 0 {
		wg.Add(1)
		go d.verifyAudit(ctx, &wg, cfg, dc.AuditVerifyInterval)
	}
	startCompliance(ctx, &wg, dc, cfg, log, enf != nil)
	if dc.Enrolled {
		d.observe(ship.Observation{Action: "enrolled", Outcome: "success", Message: "the node enrolled as " + dc.EnrolledAs})
	}
	run := RunConfig{Servers: cfg.Servers, CACert: cfg.CACert, DataDir: cfg.DataDir, Logger: log,
		OnFailure: func(err error) {
			d.renewFailures.Add(1)
			d.observe(ship.Observation{Action: "renewal_failed", Outcome: "failure", Message: "certificate renewal failed", Error: err.Error()})
		},
		OnReenroll: func(exp time.Time) {
			d.observe(ship.Observation{Action: "reenrolled", Outcome: "success",
				Message: "the certificate had expired; the node re-enrolled, valid until " + exp.UTC().Format(time.RFC3339)})
		}}
	renewDone := make(chan error, 1)
	go func() { renewDone <- Run(ctx, run) }()
	for {
		select {
		case err := <-renewDone:
			cancel()
			return err
		case <-dc.Reload:
			next, err := dc.Load()
			if err != nil {
				log.Error("the configuration does not load; keeping the running one", "err", err)
				continue
			}
			d.mu.Lock()
			err = d.apply(ctx, &wg, next)
			d.mu.Unlock()
			if err != nil {
				log.Error("the new configuration cannot be applied; keeping the running one", "err", err)
				continue
			}
			log.Info("configuration reloaded", "sources", len(next.Sources))
		}
	}
}

type builtSource struct {
	conf config.Source
	src  source.Source
}

type daemon struct {
	log *slog.Logger
	cfg *config.Config

	mu            sync.Mutex
	shipper       *ship.Shipper
	built         map[string]builtSource // running sources by name
	enf           *enforcement           // nil: decisions not enforced
	renewFailures atomic.Uint64
}

func (d *daemon) observe(ob ship.Observation) {
	d.mu.Lock()
	s := d.shipper
	d.mu.Unlock()
	if s != nil {
		s.Observer().Record(ob)
	}
}

// startShipper starts the shipper and the configured sources; d.mu is held.
func (d *daemon) startShipper(ctx context.Context, wg *sync.WaitGroup, cfg *config.Config) error {
	s, err := ship.New(ship.Config{Servers: cfg.Servers, CACertFile: cfg.CACert,
		CertFile: filepath.Join(cfg.DataDir, SVIDFile), KeyFile: filepath.Join(cfg.DataDir, KeyFile),
		DataDir: cfg.DataDir, SpoolMaxBytes: int64(cfg.SpoolMaxBytes), BatchEvents: cfg.Batch.MaxEvents,
		BatchBytes: int(cfg.Batch.MaxBytes), BatchInterval: cfg.Batch.Interval, Logger: d.log})
	if err != nil {
		return err
	}
	built, err := d.build(cfg.Sources)
	if err != nil {
		return err
	}
	d.shipper = s
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Run(ctx); err != nil {
			d.log.Error("shipper", "err", err)
		}
	}()
	for name, b := range built {
		if err := s.Start(b.src); err != nil {
			return err
		}
		d.built[name] = b
	}
	if len(built) > 0 {
		d.log.Info("shipping events", "sources", len(built), "servers", len(cfg.Servers))
	}
	return nil
}

// build makes every source of the list, or fails naming the first that
// cannot be made.
func (d *daemon) build(list []config.Source) (map[string]builtSource, error) {
	out := map[string]builtSource{}
	for _, c := range list {
		src, err := newSource(c, d.cfg.DataDir, d.log)
		if err != nil {
			return nil, fmt.Errorf("agent: source at line %d (%s): %w", c.Line, c.Name(), err)
		}
		out[c.Name()] = builtSource{conf: c, src: src}
	}
	return out, nil
}

// apply moves the running sources to next's.
// d.mu is held.
func (d *daemon) apply(ctx context.Context, wg *sync.WaitGroup, next *config.Config) error {
	if d.shipper == nil {
		if len(next.Sources) == 0 {
			return nil
		}
		return d.startShipper(ctx, wg, next)
	}
	var changed []config.Source
	want := map[string]bool{}
	for _, c := range next.Sources {
		want[c.Name()] = true
		if old, ok := d.built[c.Name()]; ok && sameSource(old.conf, c) {
			continue
		}
		changed = append(changed, c)
	}
	built, err := d.build(changed)
	if err != nil {
		return err
	}
	for name := range d.built {
		if _, ok := built[name]; ok || !want[name] {
			d.shipper.Stop(name)
			delete(d.built, name)
			d.log.Info("source stopped", "source", name)
		}
	}
	for name, b := range built {
		if err := d.shipper.Start(b.src); err != nil {
			return err
		}
		d.built[name] = b
		d.log.Info("source started", "source", name)
	}
	if !reflect.DeepEqual(next.Servers, d.cfg.Servers) || next.DataDir != d.cfg.DataDir || next.CACert != d.cfg.CACert ||
		next.SpoolMaxBytes != d.cfg.SpoolMaxBytes || next.Batch != d.cfg.Batch || next.MetricsListen != d.cfg.MetricsListen ||
		next.Enforce != d.cfg.Enforce || next.Zone != d.cfg.Zone {
		d.log.Warn("server, CA, data dir, spool, batch, metrics, enforce and zone settings take effect at the next start")
	}
	return nil
}

func sameSource(a, b config.Source) bool {
	a.Line, b.Line = 0, 0
	return reflect.DeepEqual(a, b)
}

// newSource makes the source a configuration entry describes.
func newSource(c config.Source, dataDir string, log *slog.Logger) (source.Source, error) {
	logf := func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...), "source", c.Name()) }
	switch {
	case c.File != nil:
		return newFileSource(c.File, log)
	case c.Journald != nil:
		j, err := journald.New(journald.Config{Units: c.Journald.Units, Parsers: c.Journald.Parsers,
			Journalctl: c.Journald.Journalctl, Logf: logf})
		if err != nil {
			return nil, err
		}
		return &unavailable{Source: j, log: log}, nil
	case c.FIM != nil:
		return fim.New(fim.Config{Name: strings.TrimPrefix(c.Name(), "fim:"), Paths: c.FIM.Paths,
			Exclude: c.FIM.Exclude, StateDir: filepath.Join(dataDir, "fim"), ScanInterval: c.FIM.ScanInterval, Logf: logf})
	}
	return nil, fmt.Errorf("unknown source type %q", c.Type)
}

// unavailable stops a journald source quietly where the host has no
// journal: it is logged once and not restarted until the next reload or
// start (the rest of the agent runs on).
type unavailable struct {
	source.Source
	log *slog.Logger
}

func (u *unavailable) Run(ctx context.Context, state []byte, emit source.Emit) error {
	err := u.Source.Run(ctx, state, emit)
	if errors.Is(err, journald.ErrNotAvailable) {
		u.log.Warn("source not started", "source", u.Name(), "err", err)
		<-ctx.Done()
		return nil
	}
	return err
}

func newFileSource(f *config.File, log *slog.Logger) (source.Source, error) {
	var exclude []*regexp.Regexp
	for _, e := range f.Exclude {
		re, err := regexp.Compile(e)
		if err != nil {
			return nil, fmt.Errorf("exclude %q: %w", e, err)
		}
		exclude = append(exclude, re)
	}
	opts := parse.Options{Dataset: f.Dataset}
	if j := f.JSON; j != nil {
		opts.JSON = parse.JSONOptions{Mapping: j.Mapping, TimestampField: j.TimestampField, TimestampLayout: j.TimestampLayout}
	}
	p, err := parse.New(f.Parser, opts)
	if err != nil {
		return nil, err
	}
	return tail.New(tail.Config{Path: f.Path, Parser: p, Raw: parse.Raw, Exclude: exclude, Logger: log})
}
