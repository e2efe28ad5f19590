package agent

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/warden-sec/warden/internal/agent/nft"
	"github.com/warden-sec/warden/pkg/client"
)

// enforceScope is who the agent enforces for: its node's name (a
// quarantine of itself is not applied: it keeps its stream and its
// servers), its zone (decisions of other zones are not applied) and the
// addresses of its configured servers (a decision that would drop them
// is refused).
type enforceScope struct {
	Node    string
	Zone    string
	Servers []netip.Addr
}

// refusal is a decision the agent does not apply, and why.
type refusal struct {
	ID     string
	Reason string
}

// plan is what the agent makes of the active decisions.
type plan struct {
	Elements  []nft.Element
	Enforced  []string // ids of the decisions applied
	Simulated []client.DecisionRecord
	Refused   []refusal
	Skipped   int // other zones, user bans, and quarantines of this node
}

// planEnforcement turns the active decisions (client.DecisionState.Active)
// into nftables elements. It applies a decision that is not simulated
// (those are listed, to be logged), of zone "" or the agent's own, whose
// target parses, that hits no never-block entry (allowHit, the state's
// AllowHit) and would not drop one of the agent's servers; each element's
// timeout is the time left until expires_at by now. A ban becomes its
// address or range; a quarantine the addresses the node reported, unless
// the node is the agent's own. Everything else is refused, with the
// reason.
func planEnforcement(active []client.DecisionRecord, allowHit func(client.DecisionRecord) (client.AllowEntry, bool),
	scope enforceScope, now time.Time) plan {
	var p plan
	for _, d := range active {
		if d.Zone != "" && d.Zone != scope.Zone {
			p.Skipped++
			continue
		}
		if (d.Type == "quarantine" && d.Target.Node == scope.Node) || (d.Type == "ban" && d.Target.User != "") {
			p.Skipped++ // its own quarantine; a user ban is for services, not the firewall
			continue
		}
		exp, err := time.Parse(time.RFC3339Nano, d.ExpiresAt)
		if err != nil {
			p.Refused = append(p.Refused, refusal{d.ID, fmt.Sprintf("expires_at %q does not parse", d.ExpiresAt)})
			continue
		}
		left := exp.Sub(now)
		if left <= 0 || d.PendingApproval || d.Deleted {
			continue // not active (the state's Active leaves these out)
		}
		prefixes, err := decisionPrefixes(d)
		if err != nil {
			p.Refused = append(p.Refused, refusal{d.ID, err.Error()})
			continue
		}
		if allowHit != nil {
			if e, ok := allowHit(d); ok {
				p.Refused = append(p.Refused, refusal{d.ID, "it hits never-block entry " + allowDesc(e)})
				continue
			}
		}
		if s, ok := hitsServer(prefixes, scope.Servers); ok {
			p.Refused = append(p.Refused, refusal{d.ID, "it would drop this agent's server " + s.String()})
			continue
		}
		if d.Simulated {
			p.Simulated = append(p.Simulated, d)
			continue
		}
		for _, pr := range prefixes {
			p.Elements = append(p.Elements, nft.Element{Prefix: pr, Timeout: left})
		}
		p.Enforced = append(p.Enforced, d.ID)
	}
	sort.Slice(p.Refused, func(i, j int) bool { return p.Refused[i].ID < p.Refused[j].ID })
	return p
}

func allowDesc(e client.AllowEntry) string {
	what := e.CIDR
	if e.Node != "" {
		what = "node " + e.Node
	}
	if e.Reason != "" {
		return fmt.Sprintf("%s (%s, %q)", e.ID, what, e.Reason)
	}
	return fmt.Sprintf("%s (%s)", e.ID, what)
}

// decisionPrefixes parses what a decision drops: a ban's ip (as a /32 or
// /128) or cidr, a quarantine's addresses. IPv4-mapped IPv6 is taken as
// IPv4; an address with a zone or a /0 is an error, as is a quarantine
// without addresses.
func decisionPrefixes(d client.DecisionRecord) ([]netip.Prefix, error) {
	var out []netip.Prefix
	switch {
	case d.Type == "ban" && d.Target.IP != "":
		p, err := hostPrefix(d.Target.IP)
		if err != nil {
			return nil, fmt.Errorf("target.ip: %w", err)
		}
		out = append(out, p)
	case d.Type == "ban" && d.Target.CIDR != "":
		p, err := netip.ParsePrefix(d.Target.CIDR)
		if err != nil {
			return nil, fmt.Errorf("target.cidr %q does not parse", d.Target.CIDR)
		}
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				return nil, fmt.Errorf("target.cidr %q mixes IPv4-mapped and IPv6 addresses", d.Target.CIDR)
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		if p.Bits() == 0 {
			return nil, fmt.Errorf("target.cidr %q would drop every address", d.Target.CIDR)
		}
		out = append(out, p.Masked())
	case d.Type == "quarantine":
		for _, a := range d.Addresses {
			p, err := hostPrefix(a)
			if err != nil {
				return nil, fmt.Errorf("addresses: %w", err)
			}
			out = append(out, p)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("the quarantine of node %q carries no addresses", d.Target.Node)
		}
	default:
		return nil, fmt.Errorf("a %q decision with target %+v is not one the agent applies", d.Type, d.Target)
	}
	return out, nil
}

// hostPrefix parses one address as a /32 or /128.
func hostPrefix(s string) (netip.Prefix, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q has a zone", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func hitsServer(prefixes []netip.Prefix, servers []netip.Addr) (netip.Addr, bool) {
	for _, p := range prefixes {
		for _, s := range servers {
			if p.Contains(s.Unmap()) {
				return s, true
			}
		}
	}
	return netip.Addr{}, false
}
