package compliance

import (
	"reflect"
	"testing"
)

func TestNodeRisk(t *testing.T) {
	st := seededState(t)
	byName := map[string]Node{}
	for _, n := range st.Nodes {
		byName[n.Name] = n
	}
	for _, c := range []struct {
		node  string
		score int
		items []RiskItem
	}{
		// 40 (critical alert) + 20 (high alert) + 15 (critical check
		// error) + 15 (45 days / 3) + 8 (high check fail) = 98.
		{"web-2", 98, []RiskItem{
			{"alert", "a-1", 40, "open critical alert webshell"},
			{"alert", "a-2", 20, "open high alert ssh-bruteforce"},
			{"check", "firewall-active", 15, "critical check error"},
			{"patch_age", "web-2", 15, "patch age 45 days (installed_versions)"},
			{"check", "sshd-permit-root-login", 8, "high check fail"},
		}},
		// The patch age is capped at 30 points (200 days).
		{"hist-1", 32, []RiskItem{
			{"patch_age", "hist-1", 30, "patch age 200 days (pending_updates)"},
			{"alert", "a-3", 2, "open low alert port-scan"},
		}},
		{"eng-ws", 10, []RiskItem{{"inventory", "eng-ws", 10, "no inventory: patch state unknown"}}},
		{"plc-gw", 3, []RiskItem{{"patch_age", "plc-gw", 3, "patch age 10 days (pending_updates)"}}},
	} {
		t.Run(c.node, func(t *testing.T) {
			got := NodeRisk(st, byName[c.node])
			if got.Score != c.score || !reflect.DeepEqual(got.Items, c.items) {
				t.Errorf("got %d %+v\nwant %d %+v", got.Score, got.Items, c.score, c.items)
			}
		})
	}
}

func TestRiskCapped(t *testing.T) {
	st := seededState(t)
	for range 5 {
		st.Alerts = append(st.Alerts, Alert{ID: "x", Level: "critical", Hosts: []string{"web-1"}})
	}
	if got := NodeRisk(st, st.Nodes[0]); got.Score != MaxRisk || len(got.Items) != 7 {
		t.Errorf("score %d with %d items, want %d with 7", got.Score, len(got.Items), MaxRisk)
	}
}

// An alert that names a host twice counts once for it, as it did when
// each node scanned every alert.
func TestNodeRiskAlertOnce(t *testing.T) {
	st := &State{Alerts: []Alert{{ID: "d", Level: "high", RuleID: "r", Hosts: []string{"n", "m", "n"}}}}
	n := Node{Name: "n", Inventory: &InventorySummary{PatchBasis: "pending_updates"}}
	want := []RiskItem{{"alert", "d", 20, "open high alert r"}}
	if got := NodeRisk(st, n); got.Score != 20 || !reflect.DeepEqual(got.Items, want) {
		t.Errorf("got %d %+v, want 20 %+v", got.Score, got.Items, want)
	}
}

func TestZoneRisk(t *testing.T) {
	st := seededState(t)
	for _, c := range []struct {
		zone  string
		score int
		items []RiskItem
	}{
		// 10 (eng-ws, the worst node) + 6 (ssh, an administration port,
		// with mTLS) + 3 (modbus with mTLS).
		{"control", 19, []RiskItem{
			{"node", "eng-ws", 10, "highest node score in the zone"},
			{"conduit", "corp->control:22/tcp", 6, "administration port 22 open from corp"},
			{"conduit", "plant->control:502/tcp", 3, "port 502 open from plant"},
		}},
		// 98 (web-2) + 6 (443 without mTLS: 3 doubled), capped at 100.
		{"dmz", 100, []RiskItem{
			{"node", "web-2", 98, "highest node score in the zone"},
			{"conduit", "internet->dmz:443/tcp", 6, "port 443 open from internet, without mutual TLS"},
		}},
		{"empty", 0, []RiskItem{}},
	} {
		t.Run(c.zone, func(t *testing.T) {
			got := ZoneRisk(st, c.zone)
			if got.Score != c.score || !reflect.DeepEqual(got.Items, c.items) {
				t.Errorf("got %d %+v\nwant %d %+v", got.Score, got.Items, c.score, c.items)
			}
		})
	}
	st.Conduits = append(st.Conduits, Conduit{From: "corp", To: "plant", Protocol: "tcp"})
	got := ZoneRisk(st, "plant")
	if got.Items[1] != (RiskItem{"conduit", "corp->plant:*/tcp", 20, "any port open from corp, without mutual TLS"}) {
		t.Errorf("any-port conduit: %+v", got.Items)
	}
}
