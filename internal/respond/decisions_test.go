package respond

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/errs"
)

// testDecisions is a service whose node lookups know web-1 only; it
// touches no storage as long as only validate is called.
func testDecisions() *Decisions {
	return NewDecisions(Config{NodeAddresses: func(_ context.Context, name string) ([]string, error) {
		if name == "web-1" {
			return []string{"192.0.2.10", "2001:db8::10"}, nil
		}
		return nil, errs.E(errs.NotFound, "node %q not found", name)
	}})
}

// TestValidate: the refusals of docs/response.md name the field, and
// targets are normalised.
func TestValidate(t *testing.T) {
	now := time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		in     Input
		field  string // "" for a success
		target Target // the normalised target of a success
	}{
		{"ip", Input{Type: "ban", Target: Target{IP: "203.0.113.7"}, Duration: "4h"}, "", Target{IP: "203.0.113.7"}},
		{"mapped ip", Input{Type: "ban", Target: Target{IP: "::ffff:203.0.113.7"}, Duration: "4h"}, "", Target{IP: "203.0.113.7"}},
		{"ipv6", Input{Type: "ban", Target: Target{IP: "2001:DB8::7"}, Duration: "1m"}, "", Target{IP: "2001:db8::7"}},
		{"cidr masked", Input{Type: "ban", Target: Target{CIDR: "198.51.100.7/24"}, Duration: "1h"}, "", Target{CIDR: "198.51.100.0/24"}},
		{"mapped cidr", Input{Type: "ban", Target: Target{CIDR: "::ffff:198.51.100.0/120"}, Duration: "1h"}, "", Target{CIDR: "198.51.100.0/24"}},
		{"widest ipv4", Input{Type: "ban", Target: Target{CIDR: "10.1.0.0/16"}, Duration: "1h"}, "", Target{CIDR: "10.1.0.0/16"}},
		{"widest ipv6", Input{Type: "ban", Target: Target{CIDR: "2001:db8:1::/48"}, Duration: "1h"}, "", Target{CIDR: "2001:db8:1::/48"}},
		{"user", Input{Type: "ban", Target: Target{User: "mallory"}, Duration: "1h"}, "", Target{User: "mallory"}},
		{"quarantine", Input{Type: "quarantine", Target: Target{Node: "WEB-1"}, Duration: "1h"}, "", Target{Node: "web-1"}},
		{"zone", Input{Type: "ban", Target: Target{IP: "203.0.113.7"}, Duration: "1h", Zone: "dmz"}, "", Target{IP: "203.0.113.7"}},

		{"bad ip", Input{Type: "ban", Target: Target{IP: "203.0.113.300"}, Duration: "1h"}, "target.ip", Target{}},
		{"zoned ip", Input{Type: "ban", Target: Target{IP: "fe80::1%eth0"}, Duration: "1h"}, "target.ip", Target{}},
		{"unspecified", Input{Type: "ban", Target: Target{IP: "0.0.0.0"}, Duration: "1h"}, "target.ip", Target{}},
		{"bad cidr", Input{Type: "ban", Target: Target{CIDR: "198.51.100.0/33"}, Duration: "1h"}, "target.cidr", Target{}},
		{"slash 0", Input{Type: "ban", Target: Target{CIDR: "0.0.0.0/0"}, Duration: "1h"}, "target.cidr", Target{}},
		{"v6 slash 0", Input{Type: "ban", Target: Target{CIDR: "::/0"}, Duration: "1h"}, "target.cidr", Target{}},
		{"too wide v4", Input{Type: "ban", Target: Target{CIDR: "10.0.0.0/8"}, Duration: "1h"}, "target.cidr", Target{}},
		{"too wide v6", Input{Type: "ban", Target: Target{CIDR: "2001:db8::/32"}, Duration: "1h"}, "target.cidr", Target{}},
		{"too wide mapped", Input{Type: "ban", Target: Target{CIDR: "::ffff:10.0.0.0/104"}, Duration: "1h"}, "target.cidr", Target{}},
		{"zoned cidr", Input{Type: "ban", Target: Target{CIDR: "fe80::%eth0/64"}, Duration: "1h"}, "target.cidr", Target{}},
		{"two targets", Input{Type: "ban", Target: Target{IP: "203.0.113.7", User: "x"}, Duration: "1h"}, "target", Target{}},
		{"no target", Input{Type: "ban", Duration: "1h"}, "target", Target{}},
		{"ban of a node", Input{Type: "ban", Target: Target{Node: "web-1"}, Duration: "1h"}, "target", Target{}},
		{"quarantine of an ip", Input{Type: "quarantine", Target: Target{IP: "203.0.113.7"}, Duration: "1h"}, "target", Target{}},
		{"unknown node", Input{Type: "quarantine", Target: Target{Node: "web-9"}, Duration: "1h"}, "target.node", Target{}},
		{"bad node name", Input{Type: "quarantine", Target: Target{Node: "web 1"}, Duration: "1h"}, "target.node", Target{}},
		{"zero duration", Input{Type: "ban", Target: Target{IP: "203.0.113.7"}, Duration: "0s"}, "duration", Target{}},
		{"negative duration", Input{Type: "ban", Target: Target{IP: "203.0.113.7"}, Duration: "-1h"}, "duration", Target{}},
		{"no duration", Input{Type: "ban", Target: Target{IP: "203.0.113.7"}}, "duration", Target{}},
		{"bad duration", Input{Type: "ban", Target: Target{IP: "203.0.113.7"}, Duration: "4 hours"}, "duration", Target{}},
		{"bad zone", Input{Type: "ban", Target: Target{IP: "203.0.113.7"}, Duration: "1h", Zone: "DMZ zone"}, "zone", Target{}},
		{"bad type", Input{Type: "block", Target: Target{IP: "203.0.113.7"}, Duration: "1h"}, "type", Target{}},
		{"bad alert id", Input{Type: "ban", Target: Target{IP: "203.0.113.7"}, Duration: "1h", AlertID: "x"}, "alert_id", Target{}},
		{"long reason", Input{Type: "ban", Target: Target{IP: "203.0.113.7"}, Duration: "1h", Reason: strings.Repeat("r", 2000)}, "reason", Target{}},
	}
	d := testDecisions()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dec, err := d.validate(context.Background(), c.in, now)
			if c.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if dec.Target != c.target {
					t.Fatalf("target %+v, want %+v", dec.Target, c.target)
				}
				return
			}
			if !errs.Is(err, errs.Invalid) || !strings.HasPrefix(err.Error(), c.field) {
				t.Fatalf("error %v, want a 400 naming %s", err, c.field)
			}
		})
	}
	// A quarantine carries the node's reported addresses.
	dec, err := d.validate(context.Background(), Input{Type: "quarantine", Target: Target{Node: "web-1"}, Duration: "1h"}, now)
	if err != nil || len(dec.Addresses) != 2 || dec.Origin != "manual" {
		t.Fatalf("quarantine: %+v, %v", dec, err)
	}
}

// TestEscalate: requested × factor^n, capped at the maximum; a request
// longer than the cap is kept.
func TestEscalate(t *testing.T) {
	d := NewDecisions(Config{})
	for _, c := range []struct {
		dur  time.Duration
		n    int
		want time.Duration
	}{
		{time.Hour, 0, time.Hour},
		{time.Hour, 1, 2 * time.Hour},
		{time.Hour, 3, 8 * time.Hour},
		{time.Hour, 8, 168 * time.Hour},
		{time.Hour, 1000, 168 * time.Hour},
		{200 * time.Hour, 2, 200 * time.Hour},
	} {
		if got := d.escalate(c.dur, c.n); got != c.want {
			t.Errorf("escalate(%s, %d) = %s, want %s", c.dur, c.n, got, c.want)
		}
	}
}

func TestParseMaxPrefix(t *testing.T) {
	if a, b, err := ParseMaxPrefix("16,48"); err != nil || a != 16 || b != 48 {
		t.Fatal(a, b, err)
	}
	for _, bad := range []string{"", "16", "0,48", "33,48", "16,129", "a,b", "16,48,1"} {
		if _, _, err := ParseMaxPrefix(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestCheckNodeAddresses(t *testing.T) {
	got, err := CheckNodeAddresses("addresses", []string{"::ffff:192.0.2.1", "192.0.2.1", "2001:db8::1"})
	if err != nil || strings.Join(got, ",") != "192.0.2.1,2001:db8::1" {
		t.Fatal(got, err)
	}
	many := make([]string, MaxNodeAddresses+1)
	for i := range many {
		many[i] = "192.0.2.1"
	}
	for _, bad := range [][]string{{"x"}, {"fe80::1%eth0"}, {"0.0.0.0"}, many} {
		if _, err := CheckNodeAddresses("addresses", bad); !errs.Is(err, errs.Invalid) || !strings.HasPrefix(err.Error(), "addresses") {
			t.Errorf("%v: %v", bad, err)
		}
	}
}

// TestConcerns: a node's decisions are its quarantine and the bans of
// one of its addresses, exactly or in a range, whichever way the ban was
// written; nothing else.
func TestConcerns(t *testing.T) {
	now := time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC)
	d := testDecisions()
	// As a node reports them (CheckNodeAddresses unmaps; parseAddrs too).
	addrs := parseAddrs([]string{"::ffff:192.0.2.10", "2001:db8::10", "not an address"})
	cases := []struct {
		name string
		in   Input
		want bool
	}{
		{"its quarantine", Input{Type: TypeQuarantine, Target: Target{Node: "web-1"}}, true},
		{"its quarantine, name made canonical", Input{Type: TypeQuarantine, Target: Target{Node: "WEB-1"}}, true},
		{"a ban of its address", Input{Type: TypeBan, Target: Target{IP: "192.0.2.10"}}, true},
		{"a ban of its address, IPv4-mapped", Input{Type: TypeBan, Target: Target{IP: "::ffff:192.0.2.10"}}, true},
		{"a ban of its IPv6 address", Input{Type: TypeBan, Target: Target{IP: "2001:db8:0:0::10"}}, true},
		{"a ban of a range holding it", Input{Type: TypeBan, Target: Target{CIDR: "192.0.2.0/24"}}, true},
		{"a ban of a range written unmasked", Input{Type: TypeBan, Target: Target{CIDR: "192.0.2.7/28"}}, true},
		{"a ban of an IPv4-mapped range holding it", Input{Type: TypeBan, Target: Target{CIDR: "::ffff:192.0.0.0/112"}}, true},
		{"a ban of an IPv6 range holding it", Input{Type: TypeBan, Target: Target{CIDR: "2001:db8::/64"}}, true},
		{"a ban of another address", Input{Type: TypeBan, Target: Target{IP: "192.0.2.11"}}, false},
		{"a ban of a range beside it", Input{Type: TypeBan, Target: Target{CIDR: "192.0.2.16/28"}}, false},
		{"a ban of another IPv6 range", Input{Type: TypeBan, Target: Target{CIDR: "2001:db8:1::/48"}}, false},
		{"a ban of a user", Input{Type: TypeBan, Target: Target{User: "web-1"}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.in.Duration = "1h"
			dec, err := d.validate(context.Background(), c.in, now)
			if err != nil {
				t.Fatal(err)
			}
			if got := Concerns(dec, "web-1", addrs); got != c.want {
				t.Fatalf("Concerns(%+v) = %v, want %v", dec.Target, got, c.want)
			}
			if Concerns(dec, "web-2", nil) {
				t.Fatalf("%+v concerns a node without addresses of another name", dec.Target)
			}
		})
	}
	// A quarantine of another node holding the same address is its own.
	if Concerns(Decision{Type: TypeQuarantine, Target: Target{Node: "web-2"}, Addresses: []string{"192.0.2.10"}}, "web-1", addrs) {
		t.Fatal("another node's quarantine")
	}
	if Concerns(Decision{Type: "unknown", Target: Target{IP: "192.0.2.10"}}, "web-1", addrs) {
		t.Fatal("a decision of an unknown type")
	}
}

// FuzzConcerns: a ban of a node's reported address concerns the node,
// and a ban of a range concerns it exactly when the address, cut to the
// range's length, is the range (same family, unmapped).
func FuzzConcerns(f *testing.F) {
	for _, s := range [][2]string{{"192.0.2.10", "192.0.2.0/24"}, {"::ffff:192.0.2.10", "::ffff:192.0.2.0/120"},
		{"2001:db8::10", "2001:db8::/64"}, {"192.0.2.10", "::/0"}, {"2001:db8::10", "192.0.2.0/24"}, {"10.0.0.1", "10.0.0.2"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, addr, cidr string) {
		reported, err := CheckNodeAddresses("addresses", []string{addr})
		if err != nil {
			return
		}
		as := parseAddrs(reported)
		a := as[0]
		if !Concerns(Decision{Type: TypeBan, Target: Target{IP: a.String()}}, "web-1", as) {
			t.Fatalf("a ban of %s does not concern a node reporting %q", a, addr)
		}
		p, err := ParseBanPrefix("target.cidr", cidr, 1, 1)
		if err != nil {
			return
		}
		want := a.Is4() == p.Addr().Is4() && netip.PrefixFrom(a, p.Bits()).Masked() == p
		if got := Concerns(Decision{Type: TypeBan, Target: Target{CIDR: p.String()}}, "web-1", as); got != want {
			t.Fatalf("a ban of %s, node reporting %s: %v, want %v", p, a, got, want)
		}
	})
}

// FuzzBanTarget: whatever parses is canonical (parsing it again gives
// itself), unmapped, unzoned, and no wider than the limits.
func FuzzBanTarget(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "::ffff:203.0.113.7", "fe80::1%eth0", "198.51.100.7/24", "::ffff:198.51.100.0/120",
		"0.0.0.0/0", "::/0", "2001:db8::/48", "::ffff:0.0.0.0/96", "1.2.3.4/32", "::1/128"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if a, err := ParseBanIP("target.ip", s); err == nil {
			if a.Is4In6() || a.Zone() != "" {
				t.Fatalf("%q: %s not normalised", s, a)
			}
			if b, err := ParseBanIP("target.ip", a.String()); err != nil || b != a {
				t.Fatalf("%q: %s does not parse to itself (%s, %v)", s, a, b, err)
			}
		}
		p, err := ParseBanPrefix("target.cidr", s, DefaultMaxPrefix4, DefaultMaxPrefix6)
		if err != nil {
			if !errs.Is(err, errs.Invalid) || !strings.HasPrefix(err.Error(), "target.cidr") {
				t.Fatalf("%q: error %v does not name the field", s, err)
			}
			return
		}
		if p.Addr().Is4In6() || p.Addr().Zone() != "" || p != p.Masked() {
			t.Fatalf("%q: %s not normalised", s, p)
		}
		if limit := map[bool]int{true: DefaultMaxPrefix4, false: DefaultMaxPrefix6}[p.Addr().Is4()]; p.Bits() < limit {
			t.Fatalf("%q: %s wider than /%d", s, p, limit)
		}
		if q, err := ParseBanPrefix("target.cidr", p.String(), DefaultMaxPrefix4, DefaultMaxPrefix6); err != nil || q != p {
			t.Fatalf("%q: %s does not parse to itself (%s, %v)", s, p, q, err)
		}
	})
}

// FuzzDecisionInput: a request body is decoded strictly and validated; a
// refusal is a 400 naming a field, an acceptance is normalised (validating
// its own target again changes nothing).
func FuzzDecisionInput(f *testing.F) {
	for _, s := range []string{
		`{"type":"ban","target":{"ip":"203.0.113.7"},"duration":"4h"}`,
		`{"type":"ban","target":{"cidr":"::ffff:198.51.100.0/120"},"duration":"1h","zone":"dmz"}`,
		`{"type":"quarantine","target":{"node":"web-1"},"duration":"1h"}`,
		`{"type":"ban","target":{"ip":"fe80::1%eth0"},"duration":"1h"}`,
		`{"type":"ban","target":{"user":"x"},"duration":"-1s","extra":1}`,
	} {
		f.Add([]byte(s))
	}
	d := testDecisions()
	now := time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		var in Input
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if dec.Decode(&in) != nil {
			return
		}
		out, err := d.validate(context.Background(), in, now)
		if err != nil {
			if errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("%s: %v is not a 400", b, err)
			}
			return
		}
		again := in
		again.Target = out.Target
		out2, err := d.validate(context.Background(), again, now)
		if err != nil || out2.Target != out.Target {
			t.Fatalf("%s: %+v is not stable (%+v, %v)", b, out.Target, out2.Target, err)
		}
	})
}
