package compliance

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Risk holds the scores of a report's scope, nodes and zones by name.
type Risk struct {
	Nodes []RiskScore `json:"nodes"`
	Zones []RiskScore `json:"zones"`
}

// RiskScore is a node's or zone's score (0 to 100) with the items it
// sums, the largest first.
type RiskScore struct {
	Ref   string     `json:"ref"`
	Score int        `json:"score"`
	Items []RiskItem `json:"items"`
}

// RiskItem is one contribution to a score.
type RiskItem struct {
	// Kind is alert, check, patch_age, inventory, node or conduit.
	Kind   string `json:"kind"`
	Ref    string `json:"ref"`
	Points int    `json:"points"`
	Why    string `json:"why"`
}

// MaxRisk caps every score.
const MaxRisk = 100

// Points of the risk formula.
func alertPoints(level string) int {
	switch level {
	case "critical":
		return 40
	case "high":
		return 20
	case "medium":
		return 8
	}
	return 2
}

func checkPoints(severity string) int {
	switch severity {
	case "critical":
		return 15
	case "high":
		return 8
	case "low":
		return 1
	}
	return 4 // medium, and an unknown severity
}

// adminPorts are remote administration ports, weighted higher.
func adminPort(p int) bool {
	switch p {
	case 22, 23, 3389, 5900, 5985, 5986:
		return true
	}
	return false
}

// NodeRisk scores a node from 0 to 100, the sum (capped at 100) of:
//   - each open alert naming the node: critical 40, high 20, medium 8,
//     low (or other) 2;
//   - each assessment result that fails or errors: critical 15, high 8,
//     medium (or unknown) 4, low 1;
//   - patch age: min(30, days/3) with days the node's patch age in whole
//     days (integer division); a node with no inventory, or whose patch
//     age is unknown, scores 10 for the unknown.
//
// Items are listed by points, largest first, then by kind and ref.
func NodeRisk(st *State, n Node) RiskScore {
	return nodeRisk(alertsByHost(st.Alerts), n)
}

// alertsByHost indexes open alerts by each host they name, each host's in
// ID order: NodeRisk and ZoneRisk look a node's up instead of scanning
// every alert for every node.
func alertsByHost(as []Alert) map[string][]Alert {
	by := map[string][]Alert{}
	for _, a := range sortedAlerts(as) {
		for i, h := range a.Hosts {
			if !slices.Contains(a.Hosts[:i], h) { // an alert counts once for a host
				by[h] = append(by[h], a)
			}
		}
	}
	return by
}

func nodeRisk(byHost map[string][]Alert, n Node) RiskScore {
	var items []RiskItem
	for _, a := range byHost[n.Name] {
		items = append(items, RiskItem{Kind: "alert", Ref: a.ID, Points: alertPoints(a.Level),
			Why: fmt.Sprintf("open %s alert %s", a.Level, a.RuleID)})
	}
	for _, r := range n.Assessment {
		if r.Status == StatusFail || r.Status == StatusError {
			items = append(items, RiskItem{Kind: "check", Ref: r.Check, Points: checkPoints(r.Severity),
				Why: fmt.Sprintf("%s check %s", r.Severity, r.Status)})
		}
	}
	switch {
	case n.Inventory == nil:
		items = append(items, RiskItem{Kind: "inventory", Ref: n.Name, Points: 10, Why: "no inventory: patch state unknown"})
	case n.Inventory.PatchBasis == "unknown" || n.Inventory.PatchBasis == "":
		items = append(items, RiskItem{Kind: "patch_age", Ref: n.Name, Points: 10, Why: "patch age unknown"})
	default:
		if p := min(30, n.Inventory.PatchAgeDays/3); p > 0 {
			items = append(items, RiskItem{Kind: "patch_age", Ref: n.Name, Points: p,
				Why: fmt.Sprintf("patch age %d days (%s)", n.Inventory.PatchAgeDays, n.Inventory.PatchBasis)})
		}
	}
	return score(n.Name, items)
}

// ZoneRisk scores a zone from 0 to 100, the sum (capped at 100) of:
//   - the highest score of its nodes (one item naming that node);
//   - exposure, for each conduit into the zone: 3 for a named port, 6
//     for a remote administration port (22, 23, 3389, 5900, 5985, 5986),
//     10 for any port, doubled when the conduit is not mutual TLS.
//
// Items are listed by points, largest first, then by kind and ref.
func ZoneRisk(st *State, zone string) RiskScore {
	return zoneRisk(st, alertsByHost(st.Alerts), zone)
}

func zoneRisk(st *State, byHost map[string][]Alert, zone string) RiskScore {
	var items []RiskItem
	var worst *RiskScore
	for _, n := range st.Nodes {
		if n.Zone != zone {
			continue
		}
		s := nodeRisk(byHost, n)
		if worst == nil || s.Score > worst.Score || (s.Score == worst.Score && s.Ref < worst.Ref) {
			worst = &s
		}
	}
	if worst != nil && worst.Score > 0 {
		items = append(items, RiskItem{Kind: "node", Ref: worst.Ref, Points: worst.Score, Why: "highest node score in the zone"})
	}
	for _, c := range st.Conduits {
		if c.To != zone {
			continue
		}
		p, why := 3, fmt.Sprintf("port %d open from %s", c.Port, c.From)
		switch {
		case c.Port == 0:
			p, why = 10, "any port open from "+c.From
		case adminPort(c.Port):
			p, why = 6, fmt.Sprintf("administration port %d open from %s", c.Port, c.From)
		}
		if !c.MTLS {
			p *= 2
			why += ", without mutual TLS"
		}
		items = append(items, RiskItem{Kind: "conduit", Ref: conduitRef(c), Points: p, Why: why})
	}
	return score(zone, items)
}

func score(ref string, items []RiskItem) RiskScore {
	slices.SortFunc(items, func(a, b RiskItem) int {
		return cmp.Or(cmp.Compare(b.Points, a.Points), strings.Compare(a.Kind, b.Kind), strings.Compare(a.Ref, b.Ref), strings.Compare(a.Why, b.Why))
	})
	total := 0
	for _, it := range items {
		total += it.Points
	}
	if items == nil {
		items = []RiskItem{}
	}
	return RiskScore{Ref: ref, Score: min(total, MaxRisk), Items: items}
}

// risk scores the scope's nodes and zones.
func risk(st *State, sc *scope) Risk {
	r := Risk{Nodes: []RiskScore{}, Zones: []RiskScore{}}
	byHost := alertsByHost(st.Alerts)
	for _, n := range sc.nodes {
		r.Nodes = append(r.Nodes, nodeRisk(byHost, n))
	}
	for _, z := range sc.zones {
		r.Zones = append(r.Zones, zoneRisk(st, byHost, z.Name))
	}
	return r
}
