package respond

import (
	"net/netip"
	"strings"

	"github.com/warden-sec/warden/internal/errs"
)

// Default widest prefixes a ban may take (--max-ban-prefix 16,48): a ban
// of a wider range would cut off much more than an attacker.
const (
	DefaultMaxPrefix4 = 16
	DefaultMaxPrefix6 = 48
)

// ParseBanIP parses the IP of a ban's target.ip: IPv4-mapped IPv6 is
// unmapped (::ffff:203.0.113.7 is 203.0.113.7); an address with a zone
// (fe80::1%eth0) is refused, since a zone means nothing to another host.
// The error is errs.Invalid naming field.
func ParseBanIP(field, s string) (netip.Addr, error) {
	if strings.Contains(s, "%") {
		return netip.Addr{}, errs.E(errs.Invalid, "%s %q: an address with a zone cannot be banned (the zone means nothing on other hosts)", field, s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, errs.E(errs.Invalid, "%s %q: not an IP address", field, s)
	}
	return a.Unmap(), nil
}

// ParseBanPrefix parses a range: the address is masked
// (198.51.100.7/24 is 198.51.100.0/24), an IPv4-mapped range is unmapped
// (::ffff:198.51.100.0/120 is 198.51.100.0/24), and a prefix shorter than
// max4 (IPv4) or max6 (IPv6), /0 included, is refused. A single address
// without a prefix length is taken as /32 or /128.
func ParseBanPrefix(field, s string, max4, max6 int) (netip.Prefix, error) {
	p, err := parsePrefix(field, s)
	if err != nil {
		return netip.Prefix{}, err
	}
	limit := max6
	if p.Addr().Is4() {
		limit = max4
	}
	if p.Bits() == 0 || p.Bits() < limit {
		return netip.Prefix{}, errs.E(errs.Invalid, "%s %q: /%d is wider than /%d, the widest range a ban may take (--max-ban-prefix)",
			field, s, p.Bits(), limit)
	}
	return p, nil
}

// parsePrefix parses and normalises a range (any width) or a single
// address.
func parsePrefix(field, s string) (netip.Prefix, error) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, errs.E(errs.Invalid, "%s %q: a range with a zone is refused", field, s)
	}
	if !strings.Contains(s, "/") {
		a, err := ParseBanIP(field, s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, errs.E(errs.Invalid, "%s %q: not a CIDR range", field, s)
	}
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() {
		if bits < 96 {
			return netip.Prefix{}, errs.E(errs.Invalid, "%s %q: an IPv4-mapped range needs a prefix of at least /96", field, s)
		}
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// ParseAllowPrefix parses a never-block range: like a ban's range, of any
// width but /0 (which would make every ban impossible; say so by deleting
// the entry instead).
func ParseAllowPrefix(field, s string) (netip.Prefix, error) {
	p, err := parsePrefix(field, s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Bits() == 0 {
		return netip.Prefix{}, errs.E(errs.Invalid, "%s %q: /0 would forbid every ban", field, s)
	}
	return p, nil
}

// ParseMaxPrefix parses --max-ban-prefix: "16,48" (IPv4, IPv6).
func ParseMaxPrefix(s string) (max4, max6 int, err error) {
	a, b, ok := strings.Cut(s, ",")
	p4, e1 := netip.ParsePrefix("0.0.0.0/" + strings.TrimSpace(a))
	p6, e2 := netip.ParsePrefix("::/" + strings.TrimSpace(b))
	if !ok || e1 != nil || e2 != nil || p4.Bits() < 1 || p6.Bits() < 1 {
		return 0, 0, errs.E(errs.Invalid, "--max-ban-prefix %q: want IPV4,IPV6 prefix lengths such as 16,48 (1-32, 1-128)", s)
	}
	return p4.Bits(), p6.Bits(), nil
}

// targetPrefix is the range a ban's target covers (false for a user ban).
func targetPrefix(t Target) (netip.Prefix, bool) {
	switch {
	case t.IP != "":
		a, err := netip.ParseAddr(t.IP)
		if err != nil {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(a, a.BitLen()), true
	case t.CIDR != "":
		p, err := netip.ParsePrefix(t.CIDR)
		return p, err == nil
	}
	return netip.Prefix{}, false
}

// Concerns reports whether dec is about the node named node, whose
// reported addresses are addrs: its quarantine, or a ban of one of addrs
// (target.ip) or of a range holding one (target.cidr). Addresses are
// compared unmapped (::ffff:192.0.2.10 is 192.0.2.10), so an IPv4 address
// is never in an IPv6 range. A user ban concerns no node. Concerns looks
// neither at dec's zone (where a ban is enforced, not what it bans) nor at
// whether dec is in force.
func Concerns(dec Decision, node string, addrs []netip.Addr) bool {
	switch dec.Type {
	case TypeQuarantine:
		return node != "" && dec.Target.Node == node
	case TypeBan:
		p, ok := targetPrefix(dec.Target) // stored unmapped and masked
		if !ok {
			return false
		}
		for _, a := range addrs {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
	}
	return false
}

// targetValue names a target for the offender records ("ip:203.0.113.7").
func targetValue(t Target) string {
	switch {
	case t.IP != "":
		return "ip:" + t.IP
	case t.CIDR != "":
		return "cidr:" + t.CIDR
	case t.Node != "":
		return "node:" + t.Node
	}
	return "user:" + t.User
}

// parseAddrs parses the reported addresses of a node, skipping any that
// do not parse (they were checked when reported).
func parseAddrs(ss []string) []netip.Addr {
	out := make([]netip.Addr, 0, len(ss))
	for _, s := range ss {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// MaxNodeAddresses bounds the addresses a node reports.
const MaxNodeAddresses = 32

// CheckNodeAddresses validates the addresses a node reports at enrollment
// or renewal (field names them in the error) and returns them normalised:
// unmapped, without duplicates, no zones, no unspecified address.
func CheckNodeAddresses(field string, ss []string) ([]string, error) {
	if len(ss) > MaxNodeAddresses {
		return nil, errs.E(errs.Invalid, "%s: %d addresses, at most %d", field, len(ss), MaxNodeAddresses)
	}
	out := make([]string, 0, len(ss))
	seen := map[netip.Addr]bool{}
	for _, s := range ss {
		a, err := ParseBanIP(field, s)
		if err != nil {
			return nil, err
		}
		if a.IsUnspecified() {
			return nil, errs.E(errs.Invalid, "%s %q: the unspecified address is not a node's address", field, s)
		}
		if !seen[a] {
			seen[a] = true
			out = append(out, a.String())
		}
	}
	return out, nil
}
