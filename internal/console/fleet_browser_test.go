package console_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/agent"
	"github.com/warden-sec/warden/internal/agent/inventory"
	"github.com/warden-sec/warden/internal/browsertest"
	"github.com/warden-sec/warden/pkg/client"
)

// enrollWithInventory enrolls node name in zone dmz with a join token, as
// an agent does, and sends an inventory over mutual TLS with the node's
// new certificate: agent 1.4.2, one pending update 45 days old.
func enrollWithInventory(t *testing.T, ctx context.Context, cs *consoleServer, name string) {
	t.Helper()
	c, err := client.New(client.Config{Address: cs.srv.Addr(), CACertFile: cs.srv.CAFile(), Token: cs.root})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := enrollNode(ctx, cs, c, name, "dmz", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if st, err := nc.PostInventory(ctx, nodeInventory(name, time.Now())); err != nil || !st.Stored {
		t.Fatalf("inventory of %s: %+v %v", name, st, err)
	}
}

// enrollNode enrolls node name in zone as an agent does: admin (a client
// with a token that may create nodes) creates its join token, and
// agent.Enroll makes a key, has its CSR signed (POST /v1/pki/enroll) and
// writes the key and certificate under dir. It returns a client of cs's
// listener that presents them (mutual TLS), whose connections the caller
// closes (CloseIdleConnections). Safe to call concurrently.
func enrollNode(ctx context.Context, cs *consoleServer, admin *client.Client, name, zone, dir string) (*client.Client, error) {
	tok, err := admin.NodeTokenCreate(ctx, client.NodeTokenRequest{Name: name, Zone: zone})
	if err != nil {
		return nil, fmt.Errorf("token for %s: %w", name, err)
	}
	if _, err := agent.Enroll(ctx, agent.Config{Client: admin, JoinToken: tok.Token, DataDir: dir}); err != nil {
		return nil, fmt.Errorf("enroll %s: %w", name, err)
	}
	return client.New(client.Config{Address: cs.srv.Addr(), CACertFile: cs.srv.CAFile(),
		ClientCertFile: filepath.Join(dir, agent.SVIDFile), ClientKeyFile: filepath.Join(dir, agent.KeyFile)})
}

// nodeInventory is name's inventory collected at now: Debian 13, agent
// 1.4.2, openssl with one pending update 45 days old.
func nodeInventory(name string, now time.Time) *inventory.Inventory {
	now = now.UTC()
	return &inventory.Inventory{CollectedAt: now, Hostname: name, Kernel: "6.12.0", Arch: "amd64", AgentVersion: "1.4.2",
		OS:             inventory.OS{ID: "debian", Name: "Debian GNU/Linux", Version: "13 (trixie)", VersionID: "13", PrettyName: "Debian GNU/Linux 13 (trixie)"},
		PackageManager: "dpkg", Packages: []inventory.Package{{Name: "openssl", Version: "3.5.1-1", Arch: "amd64"}},
		PendingKnown: true, Pending: []inventory.Update{{Name: "openssl", Installed: "3.5.1-1", Available: "3.5.1-2", Since: now.Add(-45*24*time.Hour - time.Hour)}}}
}

// TestFleetColumnsInChromium: the fleet page fills Agent, Patch age and
// Risk for its page of nodes from the two batch routes: the node that sent
// an inventory shows its agent version and patch age with its basis, a
// pending node "not enrolled", and Risk "not evaluated yet" (this server
// never evaluates). A user who may list the nodes but read neither their
// inventories nor compliance sees "—" in those columns and one note naming
// both, and the page is still ready.
func TestFleetColumnsInChromium(t *testing.T) {
	cs := startConsoleServer(t)
	root := cs.root
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs.call(t, "POST", "/v1/zones", root, map[string]any{"name": "dmz", "level": 2}, 200)
	enrollWithInventory(t, ctx, cs, "web-1")
	cs.call(t, "POST", "/v1/nodes/tokens", root, map[string]string{"name": "db-1", "zone": "dmz"}, 200)

	// cells returns the Agent, Patch age and Risk cells of node's row.
	cells := func(b *browserT, node string) []string {
		t.Helper()
		v := b.Eval(`[...document.querySelectorAll("#fleet-table tbody tr")].filter((tr) => tr.querySelector("th").textContent === ` +
			`"` + node + `").map((tr) => [...tr.querySelectorAll("td")].slice(3).map((td) => td.textContent))[0] ?? []`)
		var out []string
		for _, s := range v.([]any) {
			out = append(out, s.(string))
		}
		return out
	}

	b := newBrowser(t, cs, root)
	b.goTo("#/fleet")
	if got := cells(b, "web-1"); len(got) != 3 || got[0] != "1.4.2" || got[1] != "45 days (pending updates)" || got[2] != "not evaluated yet" {
		t.Errorf("web-1: agent, patch age, risk %q", got)
	}
	if got := cells(b, "db-1"); len(got) != 3 || got[0] != "not enrolled" || got[1] != "—" || got[2] != "not evaluated yet" {
		t.Errorf("db-1: agent, patch age, risk %q", got)
	}
	if got := b.Text("#fleet-risk-info"); !strings.Contains(got, "not evaluated yet") {
		t.Errorf("risk info: %q", got)
	}
	if n := b.Eval(`document.querySelectorAll("#fleet-denied, #fleet-notes .error").length`); n != 0.0 {
		t.Errorf("%v notes with every column readable: %q", n, b.Text("#fleet-notes"))
	}
	b.finish()

	// A user who may do everything but read inventories and compliance.
	cs.call(t, "PUT", "/v1/authz/stores/warden/policies/viewer", root, map[string]string{"policy": `permit (principal == User::"vic", action, resource);
forbid (principal == User::"vic", action in [Action::"inventory.read", Action::"compliance.read"], resource);`}, 200)
	vic := cs.call(t, "POST", "/v1/auth/token/create", root, map[string]any{"user": "vic", "ttl": "1h"}, 200)["token"].(string)
	v := newBrowser(t, cs, vic)
	v.goTo("#/fleet")
	if got := cells(v, "web-1"); len(got) != 3 || got[0] != "—" || got[1] != "—" || got[2] != "—" {
		t.Errorf("web-1 without inventory.read and compliance.read: %q", got)
	}
	want := "Not shown: you may not read Agent and Patch age (inventory.read) or Risk (compliance.read)."
	if got := v.Text("#fleet-notes"); got != want {
		t.Errorf("note %q, want %q", got, want)
	}
	if n := v.Eval(`document.querySelectorAll("#fleet-notes > *").length`); n != 1.0 {
		t.Errorf("%v notes, want one", n)
	}
	// The only problems are the browser's reports of the refused requests
	// (the fleet's two, the overview's compliance card's).
	for _, m := range browsertest.Problems(v.Messages(t)) {
		if !strings.Contains(m, "status of 403") {
			t.Errorf("console problem: %q", m)
		}
	}
}
