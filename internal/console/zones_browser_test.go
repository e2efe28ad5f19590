package console_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/warden-sec/warden/internal/agent"
	"github.com/warden-sec/warden/internal/sigma"
	"github.com/warden-sec/warden/pkg/client"
)

// nodeAlertTitle is the rule title of the alert seeded for the node: the
// node page must show it as text. (Zone and conduit names are canonical
// names, which cannot hold markup, so the map's own texts cannot carry
// any.)
const nodeAlertTitle = `<img src=x onerror="window.wardenPwned=4"> modbus write`

// TestZonesInChromium seeds two zones, a conduit between them (mutual
// TLS), an enrolled node in one, an alert naming the node and a quarantine
// of it, through the API. The zone map (#/zones, reached from the nav)
// draws two boxes coloured as the compliance status says and one arrow
// labelled "tcp/4840 mTLS", and its tables list the zones and the conduit;
// the node's page shows its certificate, the alert (its HTML title as
// text) and the quarantine. Then a user who may read zones, nodes and
// certificates but not the compliance status, alerts, decisions or a
// node's inventory and results sees the boxes uncoloured with a note, and
// on the node page an error in each refused card while the record and the
// certificates show.
func TestZonesInChromium(t *testing.T) {
	cs := startConsoleServer(t)
	root := cs.root
	cs.call(t, "POST", "/v1/zones", root, map[string]any{"name": "office", "level": 1}, 200)
	cs.call(t, "POST", "/v1/zones", root, map[string]any{"name": "plant", "level": 3}, 200)
	cs.call(t, "POST", "/v1/conduits", root, map[string]any{"from": "office", "to": "plant", "port": 4840, "mtls": true}, 200)

	// The node enrolls (so it has a certificate), as an agent does.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.New(client.Config{Address: cs.srv.Addr(), CACertFile: cs.srv.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(root)
	tok, err := c.NodeTokenCreate(ctx, client.NodeTokenRequest{Name: "plc-1", Zone: "plant"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Enroll(ctx, agent.Config{Client: c, JoinToken: tok.Token, DataDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	serial, _ := cs.call(t, "GET", "/v1/nodes/plc-1", root, nil, 200)["serial"].(string)
	if serial == "" {
		t.Fatal("the enrolled node has no certificate serial")
	}
	now := time.Now().UTC().Truncate(time.Second)
	if err := cs.srv.Alerts().RecordBatch(ctx, []sigma.Hit{{Key: "zones-plc-1",
		Rule:  &sigma.Rule{ID: "modbus-write", Title: nodeAlertTitle, Level: "high"},
		Group: map[string]string{"host.name": "plc-1"}, Count: 1, First: now, Last: now, Hosts: []string{"plc-1"}}}); err != nil {
		t.Fatal(err)
	}
	alerts := cs.call(t, "GET", "/v1/alerts?host=plc-1", root, nil, 200)["alerts"].([]any)
	if len(alerts) != 1 {
		t.Fatalf("alerts of plc-1: %v", alerts)
	}
	alertID := alerts[0].(map[string]any)["id"].(string)
	q := cs.call(t, "POST", "/v1/decisions", root, map[string]any{"type": "quarantine",
		"target": map[string]string{"node": "plc-1"}, "duration": "1h", "reason": "zone map test"}, 200)
	quarantine := q["id"].(string)

	// What the boxes must say: meets when the lowest SL-A reaches SL-T.
	want := map[string]string{}
	st := cs.call(t, "GET", "/v1/compliance/status?framework=iec62443-3-3", root, nil, 200)
	for _, z := range st["zones"].([]any) {
		z := z.(map[string]any)
		low := 5.0
		for _, a := range z["sl_a"].([]any) {
			low = min(low, a.(float64))
		}
		want[z["name"].(string)] = map[bool]string{true: "meets", false: "below"}[low >= z["sl_t"].(float64)]
	}
	if len(want) != 2 {
		t.Fatalf("compliance zones: %v", st["zones"])
	}

	b := newBrowser(t, cs, root)
	b.Do(chromedp.Click(`nav a[href="#/zones"]`), chromedp.WaitReady(ready("zones")))
	if cur := b.Eval(`document.querySelector('nav a[aria-current="page"]').textContent`); cur != "Zones" {
		t.Errorf("current nav entry %v", cur)
	}
	if n := b.Eval(`document.querySelectorAll("#zones-notes .error").length`); n != 0.0 {
		t.Errorf("notes on the map: %q", b.Text("#zones-notes"))
	}
	if n := b.Eval(`document.querySelectorAll("#zone-map g.zm-zone").length`); n != 2.0 {
		t.Errorf("%v zone boxes, want 2", n)
	}
	for zone, state := range want {
		got := b.Eval(fmt.Sprintf(`document.querySelector('#zone-map g.zm-zone[data-zone=%q]')?.dataset.state ?? null`, zone))
		if got != state {
			t.Errorf("zone %s: box state %v, want %s", zone, got, state)
		}
	}
	if got := b.Eval(`[...document.querySelectorAll("#zone-map .zm-arrow")].map((a) => a.dataset.from + ">" + a.dataset.to + ":" + a.getAttribute("marker-end")).join()`); got != "office>plant:url(#zm-arrowhead)" {
		t.Errorf("arrows: %v", got)
	}
	if got := b.Eval(`[...document.querySelectorAll("#zone-map .zm-label")].map((l) => l.textContent).join("|")`); got != "tcp/4840 mTLS" {
		t.Errorf("arrow labels: %q", got)
	}
	if got := b.Eval(`document.getElementById("zone-map").getAttribute("role") + ": " + document.getElementById("zone-map").getAttribute("aria-label")`); !strings.HasPrefix(got.(string), "img: Map of 2 zones and 1 conduit:") {
		t.Errorf("the map's role and label: %q", got)
	}
	zt := b.Text("#zones-table")
	for _, s := range []string{"office", "plant", "its target", "Nodes"} {
		if !strings.Contains(zt, s) {
			t.Errorf("zones table lacks %q: %q", s, zt)
		}
	}
	if got := b.Eval(`[...document.querySelectorAll("#zones-table tbody tr")].map((r) => [...r.cells].map((c) => c.textContent).join("/")).join("\n")`); !strings.Contains(got.(string), "plant/3/") || !strings.HasSuffix(got.(string), "/1") {
		t.Errorf("zones table rows: %q", got)
	}
	if got := b.Eval(`[...document.querySelectorAll("#conduits-table tbody tr")].map((r) => [...r.cells].map((c) => c.textContent).join("/")).join("\n")`); got != "office/plant/tcp/4840/required/conduit.office.plant.tcp.4840" {
		t.Errorf("conduits table: %q", got)
	}

	// The node's page: its certificate, the alert, the quarantine.
	b.goTo("#/node/plc-1")
	if got := b.Text("#node-certs-table"); !strings.Contains(got, serial) || !strings.Contains(got, "valid, current") {
		t.Errorf("certificates card: %q", got)
	}
	if got := b.Text("#node-alerts-table"); !strings.Contains(got, nodeAlertTitle) || !strings.Contains(got, "high") || !strings.Contains(got, "open") {
		t.Errorf("alerts card: %q", got)
	}
	if got := b.Eval(`document.querySelector("#node-alerts-table a").getAttribute("href")`); got != "#/alert/"+alertID {
		t.Errorf("alert link %v", got)
	}
	if got := b.Text("#node-decisions-table"); !strings.Contains(got, quarantine) || !strings.Contains(got, "quarantine") || !strings.Contains(got, "node plc-1") {
		t.Errorf("decisions card: %q", got)
	}
	if v := b.Eval(`typeof window.wardenPwned`); v != "undefined" {
		t.Errorf("a seeded script ran: window.wardenPwned is %v", v)
	}
	if n := b.Eval(`document.querySelectorAll("main script, main img").length`); n != 0.0 {
		t.Errorf("%v seeded elements in the page", n)
	}

	// A user who may read the zones, conduits, nodes and certificates, and
	// nothing else. The console keeps the token in memory only: loading
	// the page again asks to log in.
	cs.call(t, "PUT", "/v1/authz/stores/warden/policies/zone-viewers", root, map[string]string{"policy": `permit (principal in Group::"zone-viewers",
  action in [Action::"zone.list", Action::"node.list", Action::"node.read", Action::"cert.list"], resource);`}, 200)
	viewer := cs.call(t, "POST", "/v1/auth/token/create", root, map[string]any{"user": "vera", "groups": []string{"zone-viewers"}, "ttl": "1h"}, 200)["token"].(string)
	b.Do(chromedp.Navigate("about:blank"), chromedp.Navigate(cs.ts.URL+"/ui/#/zones"), chromedp.WaitReady(ready("login")),
		chromedp.SendKeys("#login-token", viewer), chromedp.Click(`#login-token-form button[type="submit"]`),
		chromedp.WaitReady(ready("zones")))
	if got := b.Text("#zones-notes"); !strings.Contains(got, "security levels are not shown") || !strings.Contains(got, "403") {
		t.Errorf("no note of the refused compliance status: %q", got)
	}
	if got := b.Eval(`[...document.querySelectorAll("#zone-map g.zm-zone")].map((g) => g.dataset.state).join()`); got != "unknown,unknown" {
		t.Errorf("uncoloured boxes: states %v", got)
	}
	if n := b.Eval(`document.querySelectorAll("#zone-map .zm-arrow").length`); n != 1.0 {
		t.Errorf("%v arrows for the viewer, want 1", n)
	}
	b.goTo("#/node/plc-1")
	for _, card := range []string{"#node-alerts", "#node-decisions", "#node-inventory", "#node-assessment"} {
		if got := b.Text(card + " .error"); !strings.Contains(got, "403") {
			t.Errorf("%s: %q", card, got)
		}
	}
	if got := b.Text("#node-certs-table"); !strings.Contains(got, serial) {
		t.Errorf("certificates card for the viewer: %q", got)
	}
	if n := b.Eval(`document.querySelectorAll("#node-record .error, #node-certs .error").length`); n != 0.0 {
		t.Errorf("errors outside the refused cards: %v", n)
	}

	forbidden := "error: Failed to load resource: the server responded with a status of 403 (Forbidden)"
	notFound := "error: Failed to load resource: the server responded with a status of 404 (Not Found)"
	b.finish(notFound, // the node has sent no inventory (root's visit)
		forbidden,                                  // the viewer's compliance status
		forbidden, forbidden, forbidden, forbidden) // the viewer's alerts, decisions, inventory, assessment
}
