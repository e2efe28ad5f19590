package nft

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The names of what the enforcer owns in the kernel: one table and what
// it holds. Nothing else is read or written.
const (
	Table   = "warden" // family inet
	SetV4   = "ban4"   // ipv4_addr, flags interval,timeout
	SetV6   = "ban6"   // ipv6_addr, flags interval,timeout
	Input   = "input"  // hook input, priority filter-10, policy accept
	Forward = "forward"
	// Priority runs the chains before the filter tables of other
	// firewalls (priority filter, 0), so that a ban holds even where they
	// accept.
	Priority = -10
)

// ErrUnavailable is returned by Open when the kernel's nftables cannot be
// used through netlink: no CAP_NET_ADMIN, or no nf_tables in the kernel.
var ErrUnavailable = errors.New("nft: nftables is not available through netlink")

// Config configures Open.
type Config struct {
	// NetNS is an open file descriptor of the network namespace to work
	// in; 0 means the caller's. The caller keeps it open while the
	// Enforcer is in use and closes it after Close.
	NetNS int
}

// Enforcer owns the table inet warden in one network namespace. Its
// methods are safe for concurrent use; each is one or a few netlink
// transactions.
type Enforcer struct {
	mu    sync.Mutex
	conn  *nftables.Conn
	table *nftables.Table
	sets  [2]*nftables.Set // ban4, ban6
}

// Open connects to the kernel's nftables and checks that it can be used
// (it lists the inet tables, which needs CAP_NET_ADMIN). Its error wraps
// ErrUnavailable when it cannot.
func Open(cfg Config) (*Enforcer, error) {
	opts := []nftables.ConnOption{nftables.AsLasting()}
	if cfg.NetNS != 0 {
		opts = append(opts, nftables.WithNetNSFd(cfg.NetNS))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if _, err := conn.ListTablesOfFamily(nftables.TableFamilyINet); err != nil {
		conn.CloseLasting()
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	t := &nftables.Table{Name: Table, Family: nftables.TableFamilyINet}
	e := &Enforcer{conn: conn, table: t}
	e.sets[0] = &nftables.Set{Table: t, Name: SetV4, KeyType: nftables.TypeIPAddr, Interval: true, HasTimeout: true}
	e.sets[1] = &nftables.Set{Table: t, Name: SetV6, KeyType: nftables.TypeIP6Addr, Interval: true, HasTimeout: true}
	return e, nil
}

// Close closes the netlink connection; the table stays.
func (e *Enforcer) Close() error {
	return e.conn.CloseLasting()
}

// Setup creates the table, its sets and chains, in one transaction. It is
// idempotent: on a table left by an earlier run the sets keep their
// elements (the bans hold across a restart) and the chains' rules are
// replaced by the ones below. A table inet warden whose sets have other
// types makes it fail; Cleanup removes such a table.
//
//	table inet warden {
//		set ban4 { type ipv4_addr; flags interval,timeout; }
//		set ban6 { type ipv6_addr; flags interval,timeout; }
//		chain input { type filter hook input priority filter - 10; policy accept;
//			ip saddr @ban4 counter drop
//			ip6 saddr @ban6 counter drop }
//		chain forward { (the same, hook forward) }
//	}
func (e *Enforcer) Setup() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.conn
	c.AddTable(e.table)
	for _, s := range e.sets {
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("nft: setup: %w", err)
		}
	}
	accept := nftables.ChainPolicyAccept
	for _, hook := range []struct {
		name string
		hook *nftables.ChainHook
	}{{Input, nftables.ChainHookInput}, {Forward, nftables.ChainHookForward}} {
		ch := c.AddChain(&nftables.Chain{Name: hook.name, Table: e.table, Type: nftables.ChainTypeFilter,
			Hooknum: hook.hook, Priority: nftables.ChainPriorityRef(Priority), Policy: &accept})
		c.FlushChain(ch)
		c.AddRule(&nftables.Rule{Table: e.table, Chain: ch, Exprs: dropFrom(e.sets[0], unix.NFPROTO_IPV4, 12, 4)})
		c.AddRule(&nftables.Rule{Table: e.table, Chain: ch, Exprs: dropFrom(e.sets[1], unix.NFPROTO_IPV6, 8, 16)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nft: setup of table inet %s (if it was made by something else, `warden agent --cleanup` removes it): %w", Table, err)
	}
	return nil
}

// dropFrom is "<family> saddr @set counter drop": the source address is
// at offset off (len bytes) of the network header.
func dropFrom(s *nftables.Set, family byte, off, n uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{family}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// Cleanup deletes the table inet warden, with its sets and chains, if it
// exists. Nothing else in the ruleset is touched.
func (e *Enforcer) Cleanup() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	tables, err := e.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("nft: cleanup: %w", err)
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == Table }) {
		return nil
	}
	e.conn.DelTable(e.table)
	if err := e.conn.Flush(); err != nil {
		return fmt.Errorf("nft: cleanup: delete table inet %s: %w", Table, err)
	}
	return nil
}

// Elements reads what the sets hold now, as sorted segments with the time
// they have left.
func (e *Enforcer) Elements() (v4, v6 []Segment, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.elements()
}

func (e *Enforcer) elements() (v4, v6 []Segment, err error) {
	var out [2][]Segment
	for i, s := range e.sets {
		els, err := e.conn.GetSetElements(s)
		if err != nil {
			return nil, nil, fmt.Errorf("nft: list set %s: %w", s.Name, err)
		}
		out[i] = fromKernel(els, i == 0)
	}
	return out[0], out[1], nil
}

// Tolerance is how far an element's remaining time may drift from the
// wanted one before Reconcile replaces it.
const Tolerance = time.Second

// chunk bounds the elements sent in one netlink batch (the socket's send
// buffer bounds a batch's size).
const chunk = 512

// Reconcile makes the sets hold exactly want (see Segments for how
// overlapping and adjacent prefixes are combined). It reads the sets and
// changes only what differs: segments that are no longer wanted, or whose
// remaining time is off by more than Tolerance, are deleted, missing ones
// added. Up to 512 changed elements go in one transaction; more are
// applied in several. If the difference cannot be applied (the kernel
// expired an element meanwhile), it reads again and retries, and at last
// replaces the sets' contents whole.
func (e *Enforcer) Reconcile(want []Element) error {
	w4, w6 := Segments(want)
	e.mu.Lock()
	defer e.mu.Unlock()
	var err error
	for range 3 {
		var h4, h6 []Segment
		if h4, h6, err = e.elements(); err != nil {
			return err
		}
		var dels, adds [2][]nftables.SetElement
		dels[0], adds[0] = diff(h4, w4, true)
		dels[1], adds[1] = diff(h6, w6, false)
		if err = e.apply(dels, adds); err == nil {
			return nil
		}
	}
	// Replace whole: flush each set and add everything, the flush in the
	// same transaction as the first chunk.
	for i, s := range e.sets {
		w := w4
		if i == 1 {
			w = w6
		}
		e.conn.FlushSet(s)
		els := toKernel(w, i == 0)
		if len(els) == 0 {
			if ferr := e.conn.Flush(); ferr != nil {
				return fmt.Errorf("nft: flush set %s: %w (the difference failed: %v)", s.Name, ferr, err)
			}
			continue
		}
		if serr := e.send(s, els, false); serr != nil {
			return fmt.Errorf("%w (the difference failed: %v)", serr, err)
		}
	}
	return nil
}

func (e *Enforcer) apply(dels, adds [2][]nftables.SetElement) error {
	for i, s := range e.sets {
		if err := e.send(s, dels[i], true); err != nil {
			return err
		}
		if err := e.send(s, adds[i], false); err != nil {
			return err
		}
	}
	return nil
}

// send adds (or deletes) elements, in chunks that keep a start element
// with its end.
func (e *Enforcer) send(s *nftables.Set, els []nftables.SetElement, del bool) error {
	for len(els) > 0 {
		n := min(len(els), chunk)
		if n < len(els) && els[n].IntervalEnd {
			n++
		}
		var err error
		if del {
			err = e.conn.SetDeleteElements(s, els[:n])
		} else {
			err = e.conn.SetAddElements(s, els[:n])
		}
		if err == nil {
			err = e.conn.Flush()
		}
		if err != nil {
			op := "add to"
			if del {
				op = "delete from"
			}
			return fmt.Errorf("nft: %s set %s: %w", op, s.Name, err)
		}
		els = els[n:]
	}
	return nil
}

// diff is what turns the segments the kernel has into the wanted ones:
// the elements to delete and to add.
func diff(have, want []Segment, v4 bool) (dels, adds []nftables.SetElement) {
	type key struct{ first, last netip.Addr }
	h := make(map[key]Segment, len(have))
	for _, s := range have {
		h[key{s.First, s.Last}] = s
	}
	keep := map[key]bool{}
	var add []Segment
	for _, w := range want {
		k := key{w.First, w.Last}
		if got, ok := h[k]; ok && near(got.Timeout, w.Timeout) {
			keep[k] = true
			continue
		}
		add = append(add, w)
	}
	var del []Segment
	for _, s := range have {
		if !keep[key{s.First, s.Last}] {
			del = append(del, s)
		}
	}
	return toKernel(del, v4), toKernel(add, v4)
}

// near reports whether a remaining time the kernel reports matches a
// wanted timeout.
func near(have, want time.Duration) bool {
	if have == 0 || want == 0 {
		return have == want
	}
	d := have - want
	return d <= Tolerance && d >= -Tolerance
}

// toKernel encodes segments as interval set elements: a start element
// with the timeout, and an end element (flag interval end) at the address
// after the last, omitted when the segment reaches the top of the family.
func toKernel(segs []Segment, v4 bool) []nftables.SetElement {
	var out []nftables.SetElement
	top := u128{hi: ^uint64(0), lo: ^uint64(0)}
	if v4 {
		top = u128{lo: 0xffffffff}
	}
	for _, s := range segs {
		out = append(out, nftables.SetElement{Key: s.First.AsSlice(), Timeout: s.Timeout})
		if last := toU128(s.Last); last != top {
			out = append(out, nftables.SetElement{Key: last.next().addr(v4).AsSlice(), IntervalEnd: true})
		}
	}
	return out
}

// fromKernel decodes a set's elements into segments: each start element
// runs to the address before the next end element (or the next start), or
// to the top of the family. End elements with no start before them (left
// by an expired start the kernel has not collected yet) are skipped.
func fromKernel(els []nftables.SetElement, v4 bool) []Segment {
	type el struct {
		at      u128
		end     bool
		timeout time.Duration
	}
	n := 16
	if v4 {
		n = 4
	}
	var list []el
	for _, x := range els {
		a, ok := netip.AddrFromSlice(x.Key)
		if !ok || len(x.Key) != n {
			continue
		}
		t := x.Expires
		if x.Timeout == 0 {
			t = 0
		} else if t == 0 {
			t = time.Millisecond // about to expire
		}
		list = append(list, el{at: toU128(a), end: x.IntervalEnd, timeout: t})
	}
	slices.SortFunc(list, func(a, b el) int {
		if c := a.at.cmp(b.at); c != 0 {
			return c
		}
		switch { // at one address, the end of a range sorts before the start of the next
		case a.end && !b.end:
			return -1
		case !a.end && b.end:
			return 1
		}
		return 0
	})
	top := u128{hi: ^uint64(0), lo: ^uint64(0)}
	if v4 {
		top = u128{lo: 0xffffffff}
	}
	var out []Segment
	for i := 0; i < len(list); i++ {
		if list[i].end {
			continue
		}
		last := top
		if i+1 < len(list) {
			last = list[i+1].at.prev()
			if list[i+1].at.cmp(list[i].at) == 0 {
				continue // a zero-width range; not ours
			}
		}
		out = append(out, Segment{First: list[i].at.addr(v4), Last: last.addr(v4), Timeout: list[i].timeout})
	}
	return out
}
