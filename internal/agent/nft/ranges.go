package nft

import (
	"cmp"
	"container/heap"
	"encoding/binary"
	"net/netip"
	"slices"
	"time"
)

// Element is one entry the ban sets are to hold: a prefix (a single
// address is a /32 or /128) and how long it stays. Timeout zero means no
// timeout; otherwise it is rounded up to the kernel's millisecond.
type Element struct {
	Prefix  netip.Prefix
	Timeout time.Duration
}

// Segment is a range of addresses [First, Last] of one family with the
// time it has left (0: no timeout). The sets hold disjoint segments.
type Segment struct {
	First, Last netip.Addr
	Timeout     time.Duration
}

// Segments turns elements into what an interval set can hold: sorted,
// disjoint ranges, IPv4 and IPv6 apart. Overlapping elements are split at
// their boundaries, each piece keeping the longest time of the elements
// that cover it (no timeout counts as the longest), so that every address
// is blocked exactly as long as the longest element that covers it; then
// adjacent pieces with the same time are merged. Invalid prefixes and
// elements whose timeout is negative are left out; IPv4-mapped IPv6
// prefixes count as IPv4.
func Segments(want []Element) (v4, v6 []Segment) {
	var in4, in6 []span
	for _, e := range want {
		p := e.Prefix
		if !p.IsValid() || e.Timeout < 0 {
			continue
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		s := span{first: toU128(p.Addr()), last: toU128(lastAddr(p)), timeout: roundMS(e.Timeout)}
		if p.Addr().Is4() {
			in4 = append(in4, s)
		} else {
			in6 = append(in6, s)
		}
	}
	return toSegments(sweep(in4, u128{lo: 0xffffffff}), true), toSegments(sweep(in6, u128{hi: ^uint64(0), lo: ^uint64(0)}), false)
}

// roundMS rounds a timeout up to a whole millisecond (the kernel's unit).
func roundMS(d time.Duration) time.Duration {
	if r := d % time.Millisecond; r != 0 {
		d += time.Millisecond - r
	}
	return d
}

// longer reports whether timeout a outlasts b (0 is forever).
func longer(a, b time.Duration) bool {
	switch {
	case a == b:
		return false
	case a == 0:
		return true
	case b == 0:
		return false
	}
	return a > b
}

type span struct {
	first, last u128
	timeout     time.Duration
}

// sweep splits overlapping spans at their boundaries, gives each piece the
// longest timeout covering it, and merges adjacent pieces of equal timeout.
func sweep(in []span, maxAddr u128) []span {
	if len(in) == 0 {
		return nil
	}
	// Boundaries: every first, and every last+1 below the top.
	var points []u128
	for _, s := range in {
		points = append(points, s.first)
		if s.last != maxAddr {
			points = append(points, s.last.next())
		}
	}
	slices.SortFunc(points, u128.cmp)
	points = slices.Compact(points)
	slices.SortFunc(in, func(a, b span) int { return a.first.cmp(b.first) })
	var out []span
	h := &spanHeap{}
	next := 0
	for i, p := range points {
		for next < len(in) && in[next].first == p {
			heap.Push(h, in[next])
			next++
		}
		for h.Len() > 0 && (*h)[0].last.cmp(p) < 0 {
			heap.Pop(h)
		}
		if h.Len() == 0 {
			continue
		}
		last := maxAddr
		if i+1 < len(points) {
			last = points[i+1].prev()
		}
		t := (*h)[0].timeout
		if n := len(out); n > 0 && out[n-1].timeout == t && out[n-1].last.next() == p {
			out[n-1].last = last
			continue
		}
		out = append(out, span{first: p, last: last, timeout: t})
	}
	return out
}

// spanHeap is a max-heap of spans by timeout.
type spanHeap []span

func (h spanHeap) Len() int           { return len(h) }
func (h spanHeap) Less(i, j int) bool { return longer(h[i].timeout, h[j].timeout) }
func (h spanHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *spanHeap) Push(x any)        { *h = append(*h, x.(span)) }
func (h *spanHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func toSegments(in []span, v4 bool) []Segment {
	out := make([]Segment, 0, len(in))
	for _, s := range in {
		out = append(out, Segment{First: s.first.addr(v4), Last: s.last.addr(v4), Timeout: s.timeout})
	}
	return out
}

// lastAddr is the highest address of p (masked).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// u128 is an address as a number, for arithmetic on range ends.
type u128 struct{ hi, lo uint64 }

func toU128(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

func (u u128) addr(v4 bool) netip.Addr {
	if v4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(u.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.hi)
	binary.BigEndian.PutUint64(b[8:], u.lo)
	return netip.AddrFrom16(b)
}

func (u u128) cmp(v u128) int {
	if c := cmp.Compare(u.hi, v.hi); c != 0 {
		return c
	}
	return cmp.Compare(u.lo, v.lo)
}

func (u u128) next() u128 {
	if u.lo == ^uint64(0) {
		return u128{hi: u.hi + 1}
	}
	return u128{hi: u.hi, lo: u.lo + 1}
}

func (u u128) prev() u128 {
	if u.lo == 0 {
		return u128{hi: u.hi - 1, lo: ^uint64(0)}
	}
	return u128{hi: u.hi, lo: u.lo - 1}
}
