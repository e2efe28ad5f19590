package agent

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/agent/inventory"
)

// fakeHost is an inventory the test changes.
type fakeHost struct{ kernel string }

func (h *fakeHost) collect(clock *fakeClock) func(context.Context) (*inventory.Inventory, error) {
	return func(context.Context) (*inventory.Inventory, error) {
		return &inventory.Inventory{CollectedAt: clock.now(), Hostname: "web-1", Kernel: h.kernel, Arch: "amd64",
			PackageManager: "dpkg", Addresses: []string{"10.0.0.1"},
			Packages:  []inventory.Package{{Name: "openssh-server", Version: "1:9.2p1-2", Arch: "amd64"}},
			Listening: []inventory.Socket{{Proto: "tcp", Address: "0.0.0.0", Port: 22, PID: 1, Process: "sshd"}}}, nil
	}
}

// TestInventorySchedule: sent at start, not again while unchanged, again
// within a check of a change and after the interval, and a 429's
// Retry-After is waited out without asking the servers before.
func TestInventorySchedule(t *testing.T) {
	ca := newComplianceCA(t, "example.org")
	cs := newComplianceServer(t, ca)
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	host := &fakeHost{kernel: "6.1.0-1"}
	r := &inventoryReporter{servers: []string{deadAddress(t), cs.URL}, interval: 6 * time.Hour,
		newClient: nodeClient(ca.caFile, ca.dataDir), collect: host.collect(clock), now: clock.now, log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	requests := func() int { cs.mu.Lock(); defer cs.mu.Unlock(); return len(cs.peers) }

	if !r.step(ctx) || len(cs.gotInventories()) != 1 {
		t.Fatal("not sent at start")
	}
	clock.add(InventoryCheckInterval)
	if r.step(ctx) || requests() != 1 {
		t.Fatal("sent again though unchanged")
	}
	host.kernel = "6.1.0-2"
	clock.add(InventoryCheckInterval)
	if !r.step(ctx) || cs.gotInventories()[1].Kernel != "6.1.0-2" {
		t.Fatal("a change was not sent")
	}
	clock.add(6*time.Hour - time.Second)
	if r.step(ctx) {
		t.Fatal("sent before the interval")
	}
	clock.add(time.Second)
	if !r.step(ctx) || len(cs.gotInventories()) != 3 {
		t.Fatal("not sent after the interval")
	}

	// Rate limited: nothing is asked before Retry-After passed.
	cs.mu.Lock()
	cs.limit, cs.retryAfter = 1, 120
	cs.mu.Unlock()
	host.kernel = "6.1.0-3"
	clock.add(InventoryCheckInterval)
	if r.step(ctx) {
		t.Fatal("sent through a 429")
	}
	before := requests()
	clock.add(119 * time.Second)
	if r.step(ctx) || requests() != before {
		t.Fatal("asked the servers before Retry-After")
	}
	clock.add(time.Second)
	if !r.step(ctx) || cs.gotInventories()[3].Kernel != "6.1.0-3" {
		t.Fatal("not sent after Retry-After")
	}
	for _, p := range func() []string { cs.mu.Lock(); defer cs.mu.Unlock(); return cs.peers }() {
		if p != "spiffe://example.org/node/web-1" {
			t.Errorf("request as %q", p)
		}
	}
}

// TestInventoryUnreachableThenSent: while no server answers nothing is
// lost: the next step sends.
func TestInventoryUnreachableThenSent(t *testing.T) {
	ca := newComplianceCA(t, "example.org")
	cs := newComplianceServer(t, ca)
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	host := &fakeHost{kernel: "6.1.0-1"}
	r := &inventoryReporter{servers: []string{deadAddress(t)}, interval: 6 * time.Hour,
		newClient: nodeClient(ca.caFile, ca.dataDir), collect: host.collect(clock), now: clock.now, log: slog.New(slog.DiscardHandler)}
	if r.step(context.Background()) {
		t.Fatal("sent to nobody")
	}
	r.servers = []string{cs.URL}
	clock.add(InventoryCheckInterval)
	if !r.step(context.Background()) || len(cs.gotInventories()) != 1 {
		t.Fatal("not sent once a server answered")
	}
}

// TestInventoryRunLiveHost runs the loop with this host's real inventory
// and a tick the test sends: the server validates and stores both.
func TestInventoryRunLiveHost(t *testing.T) {
	ca := newComplianceCA(t, "example.org")
	cs := newComplianceServer(t, ca)
	r := &inventoryReporter{servers: []string{cs.URL}, interval: time.Nanosecond, newClient: nodeClient(ca.caFile, ca.dataDir),
		collect: func(ctx context.Context) (*inventory.Inventory, error) {
			return inventory.Collect(ctx, inventory.Options{Root: "/", AgentVersion: "test"})
		}, now: time.Now, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	ticks := make(chan time.Time)
	done := make(chan struct{})
	go func() { r.run(ctx, ticks); close(done) }()
	ticks <- time.Now() // taken once the first step is done
	ticks <- time.Now()
	cancel()
	<-done
	invs := cs.gotInventories()
	if len(invs) < 2 || invs[0].PackageManager != "dpkg" || len(invs[0].Packages) == 0 {
		t.Fatalf("inventories stored: %d", len(invs))
	}
}
