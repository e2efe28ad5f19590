package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/agent/nft"
	"github.com/warden-sec/warden/pkg/client"
)

var planNow = time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC)

func ban(id string, target client.DecisionTarget, left time.Duration) client.DecisionRecord {
	return client.DecisionRecord{ID: id, Type: "ban", Target: target, ExpiresAt: planNow.Add(left).Format(time.RFC3339)}
}

func TestPlanEnforcement(t *testing.T) {
	h := time.Hour
	scope := enforceScope{Node: "web-1", Zone: "dmz", Servers: []netip.Addr{netip.MustParseAddr("10.213.0.1")}}
	office := client.AllowEntry{ID: "allow-0000000000000001", CIDR: "192.0.2.0/24", Reason: "office"}
	allowHit := func(d client.DecisionRecord) (client.AllowEntry, bool) {
		st := client.DecisionState{Allow: map[string]client.AllowEntry{office.ID: office}}
		return st.AllowHit(d)
	}
	withZone := func(d client.DecisionRecord, z string) client.DecisionRecord { d.Zone = z; return d }
	simulated := ban("dec-sim", client.DecisionTarget{IP: "203.0.113.9"}, h)
	simulated.Simulated = true
	quarantine := func(id, node string, addrs ...string) client.DecisionRecord {
		return client.DecisionRecord{ID: id, Type: "quarantine", Target: client.DecisionTarget{Node: node}, Addresses: addrs,
			ExpiresAt: planNow.Add(4 * h).Format(time.RFC3339)}
	}
	for _, tc := range []struct {
		name     string
		in       []client.DecisionRecord
		elements []nft.Element
		refused  []string // "id: part of the reason"
		skipped  int
	}{
		{name: "ban of an address and a range, the time left as timeout",
			in: []client.DecisionRecord{ban("dec-1", client.DecisionTarget{IP: "203.0.113.7"}, h), ban("dec-2", client.DecisionTarget{CIDR: "198.51.100.0/24"}, 2*h),
				ban("dec-3", client.DecisionTarget{IP: "2001:db8::7"}, h)},
			elements: []nft.Element{{Prefix: netip.MustParsePrefix("203.0.113.7/32"), Timeout: h}, {Prefix: netip.MustParsePrefix("198.51.100.0/24"), Timeout: 2 * h},
				{Prefix: netip.MustParsePrefix("2001:db8::7/128"), Timeout: h}}},
		{name: "mapped IPv6 is IPv4", in: []client.DecisionRecord{ban("dec-1", client.DecisionTarget{IP: "::ffff:203.0.113.7"}, h),
			ban("dec-2", client.DecisionTarget{CIDR: "::ffff:198.51.100.7/120"}, h)},
			elements: []nft.Element{{Prefix: netip.MustParsePrefix("203.0.113.7/32"), Timeout: h}, {Prefix: netip.MustParsePrefix("198.51.100.0/24"), Timeout: h}}},
		{name: "zones: everywhere and this node's only", in: []client.DecisionRecord{withZone(ban("dec-1", client.DecisionTarget{IP: "203.0.113.7"}, h), "dmz"),
			withZone(ban("dec-2", client.DecisionTarget{IP: "203.0.113.8"}, h), "office")},
			elements: []nft.Element{{Prefix: netip.MustParsePrefix("203.0.113.7/32"), Timeout: h}}, skipped: 1},
		{name: "simulated is not enforced", in: []client.DecisionRecord{simulated}},
		{name: "expired is not enforced", in: []client.DecisionRecord{ban("dec-1", client.DecisionTarget{IP: "203.0.113.7"}, -time.Second)}},
		{name: "a user ban is for services", in: []client.DecisionRecord{ban("dec-1", client.DecisionTarget{User: "mallory"}, h)}, skipped: 1},
		{name: "never-block list", in: []client.DecisionRecord{ban("dec-1", client.DecisionTarget{CIDR: "192.0.2.128/25"}, h),
			quarantine("dec-2", "db-1", "10.0.0.5", "192.0.2.9")},
			refused: []string{"dec-1: hits never-block entry allow-0000000000000001 (192.0.2.0/24, \"office\")", "dec-2: hits never-block entry"}},
		{name: "the agent's server", in: []client.DecisionRecord{ban("dec-1", client.DecisionTarget{CIDR: "10.213.0.0/24"}, h),
			quarantine("dec-2", "srv-1", "10.213.0.1")},
			refused: []string{"dec-1: would drop this agent's server 10.213.0.1", "dec-2: would drop this agent's server 10.213.0.1"}},
		{name: "quarantine drops the node's addresses, not this node's own", in: []client.DecisionRecord{quarantine("dec-1", "db-1", "10.0.0.5", "fd00::5"),
			quarantine("dec-2", "web-1", "10.0.0.1")},
			elements: []nft.Element{{Prefix: netip.MustParsePrefix("10.0.0.5/32"), Timeout: 4 * h}, {Prefix: netip.MustParsePrefix("fd00::5/128"), Timeout: 4 * h}}, skipped: 1},
		{name: "what does not parse is refused", in: []client.DecisionRecord{ban("dec-1", client.DecisionTarget{IP: "203.0.113.300"}, h),
			ban("dec-2", client.DecisionTarget{CIDR: "0.0.0.0/0"}, h), ban("dec-3", client.DecisionTarget{IP: "fe80::1%eth0"}, h),
			quarantine("dec-4", "db-1"), {ID: "dec-5", Type: "ban", Target: client.DecisionTarget{IP: "203.0.113.7"}, ExpiresAt: "soon"},
			ban("dec-6", client.DecisionTarget{CIDR: "::ffff:0:0/95"}, h)},
			refused: []string{"dec-1: target.ip", "dec-2: would drop every address", "dec-3: has a zone", "dec-4: carries no addresses",
				"dec-5: expires_at", "dec-6: mixes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := planEnforcement(tc.in, allowHit, scope, planNow)
			if !reflect.DeepEqual(p.Elements, tc.elements) {
				t.Errorf("elements %v, want %v", p.Elements, tc.elements)
			}
			if len(p.Refused) != len(tc.refused) {
				t.Fatalf("refused %v, want %v", p.Refused, tc.refused)
			}
			for i, r := range p.Refused {
				id, part, _ := strings.Cut(tc.refused[i], ": ")
				if r.ID != id || !strings.Contains(r.Reason, part) {
					t.Errorf("refusal %d: %s %q, want %s containing %q", i, r.ID, r.Reason, id, part)
				}
			}
			if p.Skipped != tc.skipped {
				t.Errorf("skipped %d, want %d", p.Skipped, tc.skipped)
			}
		})
	}
	// Simulated decisions are listed for the log.
	if p := planEnforcement([]client.DecisionRecord{simulated}, allowHit, scope, planNow); len(p.Simulated) != 1 || len(p.Enforced) != 0 {
		t.Errorf("simulated: %+v", p)
	}
}

// FuzzPlanEnforcement feeds arbitrary targets and addresses: the plan
// never panics, every element is a valid masked prefix with a positive
// timeout, none covers the agent's server, and nothing is /0.
func FuzzPlanEnforcement(f *testing.F) {
	for _, s := range [][3]string{{"203.0.113.7", "", ""}, {"", "198.51.100.0/24", ""}, {"::ffff:1.2.3.4", "::ffff:0:0/96", "10.213.0.1"},
		{"fe80::1%eth0", "0.0.0.0/0", "2001:db8::/32"}, {"", "10.213.0.0/16", "1.2.3.4"}} {
		f.Add(s[0], s[1], s[2], int64(3600))
	}
	server := netip.MustParseAddr("10.213.0.1")
	scope := enforceScope{Node: "web-1", Servers: []netip.Addr{server}}
	f.Fuzz(func(t *testing.T, ip, cidr, addr string, secs int64) {
		left := time.Duration(secs%1_000_000) * time.Second
		in := []client.DecisionRecord{
			ban("dec-1", client.DecisionTarget{IP: ip}, left),
			ban("dec-2", client.DecisionTarget{CIDR: cidr}, left),
			{ID: "dec-3", Type: "quarantine", Target: client.DecisionTarget{Node: "db-1"}, Addresses: []string{addr, ip},
				ExpiresAt: planNow.Add(left).Format(time.RFC3339)},
		}
		p := planEnforcement(in, nil, scope, planNow)
		for _, e := range p.Elements {
			if !e.Prefix.IsValid() || e.Prefix != e.Prefix.Masked() || e.Prefix.Bits() == 0 || e.Timeout <= 0 {
				t.Fatalf("bad element %+v from %q %q %q", e, ip, cidr, addr)
			}
			if e.Prefix.Addr().Is4In6() || e.Prefix.Addr().Zone() != "" {
				t.Fatalf("element %v is not canonical", e.Prefix)
			}
			if e.Prefix.Contains(server) {
				t.Fatalf("element %v drops the server", e.Prefix)
			}
		}
	})
}

// fakeFirewall records what it is asked to hold; its first fail calls of
// Reconcile fail.
type fakeFirewall struct {
	fail  int
	calls chan []nft.Element
}

func (f *fakeFirewall) Setup() error { return nil }

func (f *fakeFirewall) Reconcile(want []nft.Element) error {
	f.calls <- want
	if f.fail > 0 {
		f.fail--
		return errors.New("netlink: operation not permitted")
	}
	return nil
}

// TestEnforcementLoop: each state from the stream is applied; a failed
// Reconcile is retried without a new state; refusals are counted once
// however often the state is applied again.
func TestEnforcementLoop(t *testing.T) {
	fw := &fakeFirewall{fail: 1, calls: make(chan []nft.Element, 16)}
	var logs strings.Builder // written by run's goroutine only, read after it ended
	e := newEnforcement(fw, enforceScope{Node: "web-1"}, slog.New(slog.NewTextHandler(&logs, nil)))
	e.now = func() time.Time { return planNow }
	e.retry = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	next := func() []nft.Element {
		t.Helper()
		select {
		case got := <-fw.calls:
			return got
		case <-time.After(30 * time.Second):
			t.Fatal("no Reconcile within 30s")
			return nil
		}
	}
	office := client.AllowEntry{ID: "allow-1", CIDR: "192.0.2.0/24"}
	st := &client.DecisionState{Revision: 7, Allow: map[string]client.AllowEntry{office.ID: office}, Decisions: map[string]client.DecisionRecord{
		"dec-1": ban("dec-1", client.DecisionTarget{IP: "203.0.113.7"}, time.Hour),
		"dec-2": ban("dec-2", client.DecisionTarget{IP: "192.0.2.7"}, time.Hour),
	}}
	e.onChange(st)
	want := []nft.Element{{Prefix: netip.MustParsePrefix("203.0.113.7/32"), Timeout: time.Hour}}
	for i := range 2 { // the failure, then the retry
		if got := next(); !reflect.DeepEqual(got, want) {
			t.Fatalf("Reconcile %d: %v, want %v", i, got, want)
		}
	}
	e.onChange(st) // the same again: the refusal is not counted twice
	next()
	if e.failures.Load() != 1 || e.refusals.Load() != 1 {
		t.Errorf("failures %d, refusals %d; want 1 and 1", e.failures.Load(), e.refusals.Load())
	}
	e.onChange(&client.DecisionState{Revision: 8})
	if got := next(); len(got) != 0 {
		t.Errorf("after the decisions went: %v", got)
	}
	cancel()
	<-done
	if n := e.reconcile.Load(); n != 3 {
		t.Errorf("%d successful reconciliations, want 3", n)
	}
	if out := logs.String(); strings.Count(out, "decision refused") != 1 || !strings.Contains(out, "allow-1") {
		t.Errorf("logs:\n%s", out)
	}
}
