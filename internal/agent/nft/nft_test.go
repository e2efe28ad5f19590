package nft_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/agent/nft"
	"github.com/warden-sec/warden/internal/netnstest"
)

// topology is the test network: two clients and a service namespace,
// each linked to a router namespace that the enforcer protects. The
// router serves TCP itself (the input hook) and forwards to the service
// (the forward hook).
//
//	c1 10.213.1.2, fd00:213:1::2 ── 10.213.1.1 router 10.213.3.1 ── 10.213.3.2 svc
//	c2 10.213.2.2, fd00:213:2::2 ── 10.213.2.1
type topology struct {
	router, svc, c1, c2 *netnstest.NS
	local, remote       string // the router's and the service's TCP addresses (IPv4)
	local6              string // the router's, over IPv6 from c1
}

func newTopology(t *testing.T) *topology {
	netnstest.Require(t, "nft")
	tp := &topology{router: netnstest.New(t, "r"), svc: netnstest.New(t, "s"), c1: netnstest.New(t, "c1"), c2: netnstest.New(t, "c2")}
	netnstest.Link(t, tp.router, "to-c1", "10.213.1.1/24,fd00:213:1::1/64", tp.c1, "eth0", "10.213.1.2/24,fd00:213:1::2/64")
	netnstest.Link(t, tp.router, "to-c2", "10.213.2.1/24,fd00:213:2::1/64", tp.c2, "eth0", "10.213.2.2/24,fd00:213:2::2/64")
	netnstest.Link(t, tp.router, "to-svc", "10.213.3.1/24", tp.svc, "eth0", "10.213.3.2/24")
	for _, ns := range []struct {
		ns *netnstest.NS
		gw string
	}{{tp.c1, "10.213.1.1"}, {tp.c2, "10.213.2.1"}, {tp.svc, "10.213.3.1"}} {
		ns.ns.IP(t, "route", "add", "default", "via", ns.gw)
	}
	if out, err := tp.router.Exec("sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		t.Fatalf("sysctl: %v: %s", err, out)
	}
	tp.local = tp.router.ServeOK(t, "10.213.1.1:0")
	tp.local6 = tp.router.ServeOK(t, "[fd00:213:1::1]:0")
	tp.remote = tp.svc.ServeOK(t, "10.213.3.2:0")
	return tp
}

// expect checks each client's reach of each address.
func (tp *topology) expect(t *testing.T, step string, want map[*netnstest.NS]map[string]bool) {
	t.Helper()
	for ns, addrs := range want {
		for addr, ok := range addrs {
			if got := ns.Served(addr); got != ok {
				t.Errorf("%s: from %s to %s: served %v, want %v", step, ns.Name, addr, got, ok)
			}
		}
	}
}

func el(p string, d time.Duration) nft.Element {
	return nft.Element{Prefix: netip.MustParsePrefix(p), Timeout: d}
}

// TestEnforcer drives the enforcer in a namespace of its own and checks
// it with real connections: a ban drops one client's new connections, to
// the router and through it, while the other is served; removing the ban,
// or its timeout, lets the traffic through again; the ruleset around the
// table is left as it was.
func TestEnforcer(t *testing.T) {
	tp := newTopology(t)
	// Something else's rules that must survive untouched.
	tp.router.NFT(t, `table inet other {
	set keep {
		type ipv4_addr
		elements = { 192.0.2.1 }
	}
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 9 counter accept
	}
}
table ip legacy {
	chain forward {
		type filter hook forward priority 0; policy accept;
	}
}
`)
	before := tp.router.Ruleset(t)
	all := func(ok1, ok2 bool) map[*netnstest.NS]map[string]bool {
		return map[*netnstest.NS]map[string]bool{
			tp.c1: {tp.local: ok1, tp.remote: ok1},
			tp.c2: {tp.local: ok2, tp.remote: ok2},
		}
	}
	tp.expect(t, "before setup", all(true, true))

	e, err := nft.Open(nft.Config{NetNS: tp.router.FD()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for range 2 { // idempotent
		if err := e.Setup(); err != nil {
			t.Fatal(err)
		}
	}
	table, err := tp.router.Exec("nft", "list", "table", "inet", "warden")
	if err != nil {
		t.Fatalf("nft list table: %v: %s", err, table)
	}
	for _, want := range []string{"set ban4", "type ipv4_addr", "set ban6", "type ipv6_addr", "flags interval,timeout",
		"hook input priority filter - 10; policy accept;", "hook forward priority filter - 10; policy accept;",
		"ip saddr @ban4 counter packets 0 bytes 0 drop", "ip6 saddr @ban6 counter packets 0 bytes 0 drop"} {
		if !strings.Contains(table, want) {
			t.Errorf("table inet warden lacks %q:\n%s", want, table)
		}
	}
	if n := strings.Count(table, "saddr @ban"); n != 4 {
		t.Errorf("table inet warden has %d rules, want 4:\n%s", n, table)
	}
	tp.expect(t, "after setup", all(true, true))

	// A ban of c1's IPv4 address: dropped to the router and through it,
	// not over IPv6; c2 is served.
	if err := e.Reconcile([]nft.Element{el("10.213.1.2/32", time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tp.expect(t, "c1 banned", all(false, true))
	tp.expect(t, "c1 banned", map[*netnstest.NS]map[string]bool{tp.c1: {tp.local6: true}})
	if err := e.Reconcile([]nft.Element{el("10.213.1.2/32", time.Hour), el("fd00:213:1::2/128", time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tp.expect(t, "c1 banned on both families", map[*netnstest.NS]map[string]bool{tp.c1: {tp.local6: false, tp.local: false}})
	v4, v6, err := e.Elements()
	if err != nil {
		t.Fatal(err)
	}
	if len(v4) != 1 || v4[0].First.String() != "10.213.1.2" || v4[0].Last != v4[0].First || len(v6) != 1 || v6[0].First.String() != "fd00:213:1::2" {
		t.Errorf("Elements = %v %v", v4, v6)
	}
	if v4[0].Timeout <= 59*time.Minute || v4[0].Timeout > time.Hour {
		t.Errorf("the kernel's remaining time %v is not about an hour", v4[0].Timeout)
	}

	// The ban is lifted by Reconcile without it.
	if err := e.Reconcile(nil); err != nil {
		t.Fatal(err)
	}
	tp.expect(t, "ban lifted", all(true, true))
	tp.expect(t, "ban lifted", map[*netnstest.NS]map[string]bool{tp.c1: {tp.local6: true}})

	// Overlapping and adjacent prefixes with different times: the kernel
	// takes them, and a second Reconcile with the same finds nothing to do.
	mixed := []nft.Element{el("10.213.1.0/24", time.Hour), el("10.213.1.2/32", 2*time.Hour), el("10.213.1.3/32", time.Hour),
		el("10.213.0.0/24", time.Hour), el("10.213.1.0/25", 30*time.Minute), el("fd00:213:1::/64", time.Hour), el("fd00:213:1::2/128", 3*time.Hour)}
	if err := e.Reconcile(mixed); err != nil {
		t.Fatal(err)
	}
	got4, got6, err := e.Elements()
	if err != nil {
		t.Fatal(err)
	}
	want4, want6 := nft.Segments(mixed)
	if !sameSegments(got4, want4) || !sameSegments(got6, want6) {
		t.Errorf("the sets hold\n%v %v\nwant\n%v %v", got4, got6, want4, want6)
	}
	tp.expect(t, "ranges", all(false, true))
	if err := e.Reconcile(mixed); err != nil {
		t.Fatal(err)
	}
	// Narrowed to c1's address alone; then to another address of its
	// range: c1 is served again.
	if err := e.Reconcile([]nft.Element{el("10.213.1.2/32", 2*time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tp.expect(t, "narrowed", all(false, true))
	if err := e.Reconcile([]nft.Element{el("10.213.1.3/32", 2*time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tp.expect(t, "moved", all(true, true))

	// A restart keeps the bans: a new enforcer's Setup leaves the sets.
	if err := e.Reconcile([]nft.Element{el("10.213.1.2/32", time.Hour)}); err != nil {
		t.Fatal(err)
	}
	e.Close()
	e, err = nft.Open(nft.Config{NetNS: tp.router.FD()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Setup(); err != nil {
		t.Fatal(err)
	}
	tp.expect(t, "after a restart", all(false, true))

	// The kernel lifts a ban at its timeout, with no Reconcile.
	reconciled := time.Now()
	if err := e.Reconcile([]nft.Element{el("10.213.1.2/32", 1500*time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	tp.expect(t, "short ban", all(false, true))
	start := time.Now()
	for !tp.c1.Served(tp.remote) {
		if time.Since(start) > 30*time.Second {
			t.Fatal("the kernel did not lift the ban within 30s of its 1.5s timeout")
		}
	}
	t.Logf("the 1.5s ban was lifted by the kernel; traffic flowed %v after Reconcile", time.Since(reconciled).Round(10*time.Millisecond))
	tp.expect(t, "expired", all(true, true))

	for range 2 { // idempotent
		if err := e.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
	if after := tp.router.Ruleset(t); after != before {
		t.Errorf("the ruleset after Cleanup differs from before Setup:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	tp.expect(t, "after cleanup", all(true, true))
}

// sameSegments compares segments, their times within a second (the kernel
// reports what is left).
func sameSegments(a, b []nft.Segment) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		d := a[i].Timeout - b[i].Timeout
		if a[i].First != b[i].First || a[i].Last != b[i].Last || d > time.Second || d < -time.Second {
			return false
		}
	}
	return true
}

// TestEnforcerMany reconciles sets of thousands of elements (more than
// one netlink batch) and then a change of one of them.
func TestEnforcerMany(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t, "many")
	e, err := nft.Open(nft.Config{NetNS: ns.FD()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Setup(); err != nil {
		t.Fatal(err)
	}
	var want []nft.Element
	for i := range 3000 {
		want = append(want, el(fmt.Sprintf("198.18.%d.%d/32", i/128, 2*(i%128)), time.Hour+time.Duration(i)*time.Second))
		want = append(want, el(fmt.Sprintf("fd00:213::%x/128", 2*i), time.Hour))
	}
	if err := e.Reconcile(want); err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		t.Helper()
		got4, got6, err := e.Elements()
		if err != nil {
			t.Fatal(err)
		}
		w4, w6 := nft.Segments(want)
		if !sameSegments(got4, w4) || !sameSegments(got6, w6) {
			t.Errorf("%s: the sets hold %d+%d segments, want %d+%d", step, len(got4), len(got6), len(w4), len(w6))
		}
	}
	check("3000 of each")
	want = append(want[:10:10], want[12:]...)
	want[0].Timeout = 3 * time.Hour
	if err := e.Reconcile(want); err != nil {
		t.Fatal(err)
	}
	check("one of each removed, one changed")
	if err := e.Reconcile(nil); err != nil {
		t.Fatal(err)
	}
	if got4, got6, err := e.Elements(); err != nil || len(got4)+len(got6) != 0 {
		t.Errorf("after Reconcile(nil): %v %v %v", got4, got6, err)
	}
	if err := e.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if out := ns.Ruleset(t); strings.TrimSpace(out) != "" {
		t.Errorf("ruleset after Cleanup:\n%s", out)
	}
}

// TestSetupForeignTable: a table inet warden that is not the enforcer's
// (its set has another type) makes Setup fail, saying how to remove it;
// Cleanup does, and Setup then works.
func TestSetupForeignTable(t *testing.T) {
	netnstest.Require(t, "nft")
	ns := netnstest.New(t, "foreign")
	ns.NFT(t, "table inet warden {\n\tset ban4 {\n\t\ttype ipv6_addr\n\t}\n}\n")
	e, err := nft.Open(nft.Config{NetNS: ns.FD()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Setup(); err == nil || !strings.Contains(err.Error(), "warden agent --cleanup") {
		t.Fatalf("Setup over a foreign table: %v", err)
	}
	if err := e.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := e.Setup(); err != nil {
		t.Fatal(err)
	}
	if err := e.Reconcile([]nft.Element{el("198.18.0.1/32", time.Minute)}); err != nil {
		t.Fatal(err)
	}
}
