package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/agent/inventory"
	"github.com/warden-sec/warden/internal/api"
	"github.com/warden-sec/warden/internal/compliance"
	"github.com/warden-sec/warden/internal/compliance/assess"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestComplianceGoldenCluster: the evaluation of a seeded cluster (two
// zones, one reached by a declared mTLS conduit and guarded by an MFA
// policy, a plain conduit into the other, two enrolled nodes that report a
// fixed inventory and the built-in checks run on the fixture hosts, an
// attestation) is the one in testdata/compliance-cluster.golden: every
// control's and check's status, each zone's SL-T and SL-A and the requirements below
// target, and the risk scores. Times, keys and hashes vary from run to
// run and are not in it. Run with -update and review the diff.
func TestComplianceGoldenCluster(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	for _, z := range []string{"plant", "office"} {
		h.want(h.do("POST", "/v1/zones", root, map[string]any{"name": z, "level": 3}), 200)
	}
	h.want(h.do("POST", "/v1/conduits", root, map[string]any{"from": "office", "to": "plant", "port": 4840, "mtls": true}), 200)
	h.want(h.do("POST", "/v1/conduits", root, map[string]any{"from": "plant", "to": "office", "port": 502}), 200)
	h.want(h.do("POST", "/v1/users", root, map[string]any{"name": "alice", "groups": []string{"ops"}, "password": alicePassword}), 200)
	h.want(h.writePolicy(root, "warden", "ops", `permit (principal in Group::"ops", action in [Action::"node.read", Action::"node.list", Action::"inventory.read"], resource);`), 200)
	h.want(h.writePolicy(root, "warden", "plant-mfa", `forbid (principal is User, action in [Action::"node.read", Action::"node.revoke", Action::"node.list", Action::"inventory.read"], resource in Zone::"plant")
unless { context.auth.mfa };`), 200)
	h.want(h.do("POST", "/v1/compliance/attestations", root, map[string]string{"control": "iso27001:5.27", "text": "lessons learned, reviewed", "expires": "90d"}), 200)

	p, err := assess.Parse(api.BuiltinPolicyName, assess.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	for node, host := range map[string]string{"plc-1": "good-host", "ws-1": "bad-host"} {
		zone := map[string]string{"plc-1": "plant", "ws-1": "office"}[node]
		n := h.enrollZone(root, node, zone)
		inv := &inventory.Inventory{CollectedAt: h.clk.Now(), Hostname: node, OS: inventory.OS{ID: "debian", Name: "Debian GNU/Linux", PrettyName: "Debian GNU/Linux 12"},
			Kernel: "6.1.0", Arch: "amd64", AgentVersion: "test", PackageManager: "dpkg", PendingKnown: true,
			Packages:  []inventory.Package{{Name: "openssh-server", Version: "1:9.2p1-2", Arch: "amd64", InstalledAt: h.clk.Now().Add(-40 * 24 * time.Hour)}},
			Pending:   []inventory.Update{{Name: "openssh-server", Installed: "1:9.2p1-2", Available: "1:9.2p1-2+deb12u3", Since: h.clk.Now().Add(-45 * 24 * time.Hour)}},
			Listening: []inventory.Socket{{Proto: "tcp", Address: "0.0.0.0", Port: 22, Process: "sshd"}}, Enforcement: "none"}
		h.want(h.nodeDo(n, "POST", "/v1/inventory", inv), 200)
		fixture, err := filepath.Abs("../compliance/assess/testdata/" + host)
		if err != nil {
			t.Fatal(err)
		}
		results := assess.Run(context.Background(), p, assess.Env{Root: fixture, Run: func(context.Context, []string) ([]byte, error) {
			return nil, fmt.Errorf("no commands in this test")
		}})
		h.want(h.nodeDo(n, "POST", "/v1/compliance/results", map[string]any{"policy": p.Name, "ran_at": h.clk.Now().UTC().Format(time.RFC3339), "results": results}), 200)
	}

	var out bytes.Buffer
	for _, fw := range compliance.Frameworks() {
		var r compliance.Report
		if err := json.Unmarshal(h.want(h.do("GET", "/v1/compliance/status?framework="+string(fw), root, nil), 200).body, &r); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "# %s: %d controls, %d pass, %d fail, %d not applicable, %d manual, %d attested\n", fw,
			r.Summary.Controls, r.Summary.Pass, r.Summary.Fail, r.Summary.NotApplicable, r.Summary.Manual, r.Summary.Attested)
		for _, c := range r.Controls {
			var checks []string
			for _, ch := range c.Checks {
				checks = append(checks, ch.ID+"="+ch.Status)
			}
			fmt.Fprintf(&out, "%s\t%s\t%s\n", c.ID, c.Status, strings.Join(checks, " "))
		}
		for _, z := range r.Zones {
			var below []string
			for _, g := range z.BelowTarget {
				below = append(below, g.Requirement)
			}
			sort.Strings(below)
			fmt.Fprintf(&out, "zone %s\tSL-T %d\tSL-A %v\tbelow target: %s\n", z.Name, z.SLT, z.SLA, strings.Join(below, ", "))
		}
		for _, rs := range [][]compliance.RiskScore{r.Risk.Zones, r.Risk.Nodes} {
			for _, s := range rs {
				fmt.Fprintf(&out, "risk %s\t%d\n", s.Ref, s.Score)
			}
		}
	}
	path := filepath.Join("testdata", "compliance-cluster.golden")
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("the seeded cluster's evaluation differs from %s (run with -update and review the diff):\n%s", path, out.String())
	}
}
