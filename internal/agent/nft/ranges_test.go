package nft

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/google/nftables"
)

func seg(first, last string, t time.Duration) Segment {
	return Segment{First: netip.MustParseAddr(first), Last: netip.MustParseAddr(last), Timeout: t}
}

func el(p string, t time.Duration) Element {
	return Element{Prefix: netip.MustParsePrefix(p), Timeout: t}
}

func TestSegments(t *testing.T) {
	h := time.Hour
	for _, tc := range []struct {
		name   string
		in     []Element
		v4, v6 []Segment
	}{
		{name: "empty"},
		{name: "single addresses", in: []Element{el("203.0.113.7/32", h), el("2001:db8::1/128", 2*h)},
			v4: []Segment{seg("203.0.113.7", "203.0.113.7", h)}, v6: []Segment{seg("2001:db8::1", "2001:db8::1", 2*h)}},
		{name: "unmasked prefix is masked", in: []Element{el("198.51.100.7/24", h)},
			v4: []Segment{seg("198.51.100.0", "198.51.100.255", h)}},
		{name: "mapped IPv6 counts as IPv4", in: []Element{el("::ffff:203.0.113.0/120", h)},
			v4: []Segment{seg("203.0.113.0", "203.0.113.255", h)}},
		{name: "duplicates keep the longest", in: []Element{el("203.0.113.7/32", h), el("203.0.113.7/32", 3*h), el("203.0.113.7/32", 2*h)},
			v4: []Segment{seg("203.0.113.7", "203.0.113.7", 3*h)}},
		{name: "adjacent with the same time merge", in: []Element{el("10.0.0.0/25", h), el("10.0.0.128/25", h), el("10.0.1.0/32", h)},
			v4: []Segment{seg("10.0.0.0", "10.0.1.0", h)}},
		{name: "adjacent with other times stay apart", in: []Element{el("10.0.0.0/25", h), el("10.0.0.128/25", 2*h)},
			v4: []Segment{seg("10.0.0.0", "10.0.0.127", h), seg("10.0.0.128", "10.0.0.255", 2*h)}},
		{name: "a longer ban inside a range splits it", in: []Element{el("10.0.0.0/24", h), el("10.0.0.5/32", 4*h)},
			v4: []Segment{seg("10.0.0.0", "10.0.0.4", h), seg("10.0.0.5", "10.0.0.5", 4*h), seg("10.0.0.6", "10.0.0.255", h)}},
		{name: "a shorter ban inside a range disappears", in: []Element{el("10.0.0.0/24", 4*h), el("10.0.0.5/32", h)},
			v4: []Segment{seg("10.0.0.0", "10.0.0.255", 4*h)}},
		{name: "no timeout outlasts any", in: []Element{el("10.0.0.0/24", h), el("10.0.0.0/25", 0)},
			v4: []Segment{seg("10.0.0.0", "10.0.0.127", 0), seg("10.0.0.128", "10.0.0.255", h)}},
		{name: "top of the family", in: []Element{el("255.255.255.0/24", h), el("ffff::/16", h), el("255.255.255.255/32", 2*h)},
			v4: []Segment{seg("255.255.255.0", "255.255.255.254", h), seg("255.255.255.255", "255.255.255.255", 2*h)},
			v6: []Segment{seg("ffff::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", h)}},
		{name: "bottom of the family", in: []Element{el("0.0.0.0/32", h), el("::/127", h)},
			v4: []Segment{seg("0.0.0.0", "0.0.0.0", h)}, v6: []Segment{seg("::", "::1", h)}},
		{name: "timeouts round up to a millisecond", in: []Element{el("10.0.0.1/32", 1500*time.Microsecond), el("10.0.0.2/32", 2*time.Millisecond)},
			v4: []Segment{seg("10.0.0.1", "10.0.0.2", 2*time.Millisecond)}},
		{name: "invalid and negative are left out", in: []Element{{}, el("10.0.0.1/32", -time.Second)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v4, v6 := Segments(tc.in)
			if len(v4) == 0 {
				v4 = nil
			}
			if len(v6) == 0 {
				v6 = nil
			}
			if !reflect.DeepEqual(v4, tc.v4) || !reflect.DeepEqual(v6, tc.v6) {
				t.Errorf("Segments:\n got %v %v\nwant %v %v", v4, v6, tc.v4, tc.v6)
			}
			// What the kernel gives back decodes to the same segments.
			if got := fromKernel(expireAsTimeout(toKernel(v4, true)), true); !reflect.DeepEqual(got, v4) && len(v4) > 0 {
				t.Errorf("round trip v4: got %v, want %v", got, v4)
			}
			if got := fromKernel(expireAsTimeout(toKernel(v6, false)), false); !reflect.DeepEqual(got, v6) && len(v6) > 0 {
				t.Errorf("round trip v6: got %v, want %v", got, v6)
			}
		})
	}
}

// expireAsTimeout makes elements look as the kernel lists them right after
// adding: the remaining time equals the timeout.
func expireAsTimeout(els []nftables.SetElement) []nftables.SetElement {
	out := append([]nftables.SetElement(nil), els...)
	for i := range out {
		out[i].Expires = out[i].Timeout
	}
	return out
}

// FuzzSegments checks Segments against a brute-force model on a small
// address space: every address of 10.0.0.0/24 (or 2001:db8::/120) is
// covered exactly when some element covers it, with the longest timeout,
// and the segments are sorted, disjoint and maximal.
func FuzzSegments(f *testing.F) {
	f.Add([]byte{0, 24, 1, 5, 32, 4}, false)
	f.Add([]byte{128, 25, 2, 0, 25, 2, 255, 32, 0}, true)
	f.Fuzz(func(t *testing.T, data []byte, v6 bool) {
		var in []Element
		for i := 0; i+2 < len(data) && len(in) < 64; i += 3 {
			bits := 24 + int(data[i+1])%9
			var p netip.Prefix
			if v6 {
				b := netip.MustParseAddr("2001:db8::").As16()
				b[15] = data[i]
				p = netip.PrefixFrom(netip.AddrFrom16(b), bits+96)
			} else {
				p = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, data[i]}), bits)
			}
			in = append(in, Element{Prefix: p, Timeout: time.Duration(data[i+2]%5) * time.Second})
		}
		v4s, v6s := Segments(in)
		segs, other := v4s, v6s
		if v6 {
			segs, other = v6s, v4s
		}
		if len(other) != 0 {
			t.Fatalf("segments of the other family: %v", other)
		}
		// The model: the longest timeout covering each of the 256 addresses.
		var model [256]struct {
			in bool
			t  time.Duration
		}
		for _, e := range in {
			p := e.Prefix.Masked()
			for a := 0; a < 256; a++ {
				if p.Contains(addrAt(a, v6)) && (!model[a].in || longer(e.Timeout, model[a].t)) {
					model[a].in, model[a].t = true, e.Timeout
				}
			}
		}
		var got [256]struct {
			in bool
			t  time.Duration
		}
		for i, s := range segs {
			if s.Last.Less(s.First) {
				t.Fatalf("segment %v ends before it starts", s)
			}
			if i > 0 && !segs[i-1].Last.Less(s.First) {
				t.Fatalf("segments %v and %v overlap or are unsorted", segs[i-1], s)
			}
			if i > 0 && segs[i-1].Last.Next() == s.First && segs[i-1].Timeout == s.Timeout {
				t.Fatalf("segments %v and %v should have merged", segs[i-1], s)
			}
			for a := 0; a < 256; a++ {
				x := addrAt(a, v6)
				if !x.Less(s.First) && !s.Last.Less(x) {
					got[a].in, got[a].t = true, s.Timeout
				}
			}
		}
		if got != model {
			t.Fatalf("Segments(%v) = %v, not the model", in, segs)
		}
		if rt := fromKernel(expireAsTimeout(toKernel(segs, !v6)), !v6); len(segs) > 0 && !reflect.DeepEqual(rt, segs) {
			t.Fatalf("kernel round trip: %v, want %v", rt, segs)
		}
	})
}

func addrAt(a int, v6 bool) netip.Addr {
	if v6 {
		b := netip.MustParseAddr("2001:db8::").As16()
		b[15] = byte(a)
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{10, 0, 0, byte(a)})
}

// TestSegmentsLarge merges many random prefixes over the whole IPv4
// space and checks the result against membership of random addresses.
func TestSegmentsLarge(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 13))
	var in []Element
	for range 5000 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], r.Uint32())
		in = append(in, Element{Prefix: netip.PrefixFrom(netip.AddrFrom4(b), 16+r.IntN(17)), Timeout: time.Duration(1+r.IntN(3)) * time.Hour})
	}
	v4, _ := Segments(in)
	for range 20000 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], r.Uint32())
		a := netip.AddrFrom4(b)
		var want time.Duration
		for _, e := range in {
			if e.Prefix.Masked().Contains(a) && e.Timeout > want {
				want = e.Timeout
			}
		}
		var got time.Duration
		for _, s := range v4 {
			if !a.Less(s.First) && !s.Last.Less(a) {
				got = s.Timeout
			}
		}
		if got != want {
			t.Fatalf("%s: in a segment of %v, want %v", a, got, want)
		}
	}
}
