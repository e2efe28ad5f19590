package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/compliance"
	"github.com/warden-sec/warden/internal/witness"
	"github.com/warden-sec/warden/pkg/client"
)

// startInProcessWitness runs an external witness of the server's log over
// TLS on 127.0.0.1:0 and returns its URL, verifier key and CA file.
func startInProcessWitness(t *testing.T, origin, logKey string) (url, vkey, caFile string) {
	t.Helper()
	skey, vkey, err := witness.GenerateKey("witness.test/ext")
	if err != nil {
		t.Fatal(err)
	}
	w, err := witness.Open(witness.Config{Dir: t.TempDir(), Signer: skey, Logs: map[string]string{origin: logKey}})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, _ := selfSigned(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- w.Serve(ctx, tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("witness: %v", err)
		}
		w.Close()
	})
	return "https://" + ln.Addr().String(), vkey, certFile
}

// TestComplianceZonesEndToEnd is the scenario, run as an operator
// would: two zones with the same target level; "plant" is reached only
// through a conduit with mutual TLS and its nodes only with a second
// factor, "office" through a plain one and with passwords alone; the
// audit log is verified and witnessed by an external witness. The signed
// report verifies offline, plant reaches a higher SL-A than office, and
// office's report names the requirements that differ (MFA, the conduits'
// integrity and confidentiality); HTML verifies too.
func TestComplianceZonesEndToEnd(t *testing.T) {
	e := unsealedServer(t)
	ctx := context.Background()
	c, err := client.New(client.Config{Address: e["WARDEN_ADDR"], CACertFile: e["WARDEN_CACERT"], Token: e["WARDEN_TOKEN"]})
	if err != nil {
		t.Fatal(err)
	}
	ok := func(argv ...string) string {
		t.Helper()
		r := runCLI(t, e, "", argv...)
		if r.code != 0 {
			t.Fatalf("%s: %+v", strings.Join(argv, " "), r)
		}
		return r.stdout
	}

	// The audit log, witnessed by an external witness.
	v, err := c.AuditVerifierKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	url, wkey, wca := startInProcessWitness(t, v.Origin, v.VerifierKey)
	ok("audit", "witness", "add", "ext1", "--url", url, "--key", wkey, "--witness-ca-cert", wca)
	ok("audit", "verify", "--state", filepath.Join(t.TempDir(), "verify.json"), "--witness-quorum", "2")

	ok("zone", "create", "plant", "--level", "3")
	ok("zone", "create", "office", "--level", "3")
	ok("conduit", "create", "--from", "office", "--to", "plant", "--port", "4840", "--mtls")
	ok("conduit", "create", "--from", "plant", "--to", "office", "--port", "502")
	if r := runCLI(t, e, "a long enough passphrase 7\n", "user", "create", "alice", "--group", "ops", "--password-stdin"); r.code != 0 {
		t.Fatalf("user create: %+v", r)
	}

	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok("policy", "write", "ops", write("ops.cedar", `permit (principal in Group::"ops", action in [Action::"node.read", Action::"node.list", Action::"inventory.read"], resource);`))
	ok("policy", "write", "plant-mfa", write("mfa.cedar", `forbid (principal is User, action in [Action::"node.read", Action::"node.revoke", Action::"node.list", Action::"inventory.read"], resource in Zone::"plant")
unless { context.auth.mfa };`))

	// A malformed check policy: refused naming its line.
	r := runCLI(t, e, "", "compliance", "policy", "write", "site", write("site.yaml", "policy: site\nchecks:\n  - id: a\n    title: t\n    severity: severe\n    sysctl: {key: kernel.x, equals: \"1\"}\n"))
	checkErr(t, r, 1, "site:5")

	ca, err := c.CABundle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	caPath := write("ca.pem", string(ca))
	for _, format := range []string{"json", "html"} {
		out := filepath.Join(dir, "report."+format)
		ok("compliance", "report", "--framework", "iec62443-3-3", "--format", format, "--out", out)
		vr := ok("compliance", "verify", out, "--ca", caPath)
		if !strings.Contains(vr, "Verified") {
			t.Fatalf("verify %s: %q", format, vr)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Report compliance.Report `json:"report"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	zone := func(name string) compliance.ZoneLevel {
		for _, z := range doc.Report.Zones {
			if z.Name == name {
				return z
			}
		}
		t.Fatalf("no zone %s in %+v", name, doc.Report.Zones)
		return compliance.ZoneLevel{}
	}
	plant, office := zone("plant"), zone("office")
	higher := false
	for fr := range 7 {
		if plant.SLA[fr] < office.SLA[fr] {
			t.Errorf("FR%d: plant %d below office %d", fr+1, plant.SLA[fr], office.SLA[fr])
		}
		higher = higher || plant.SLA[fr] > office.SLA[fr]
	}
	if !higher {
		t.Fatalf("plant SL-A %v is not higher than office %v", plant.SLA, office.SLA)
	}
	reqs := func(z compliance.ZoneLevel) []string {
		var out []string
		for _, g := range z.BelowTarget {
			out = append(out, g.Requirement)
		}
		return out
	}
	var differ []string
	for _, q := range reqs(office) {
		if !slices.Contains(reqs(plant), q) {
			differ = append(differ, q)
		}
	}
	for _, want := range []string{"SR 1.1 RE 2", "SR 3.1", "SR 4.1"} {
		if !slices.ContainsFunc(differ, func(q string) bool { return strings.HasPrefix(q, want) }) {
			t.Errorf("office's gaps %q do not name %s (plant's: %q)", differ, want, reqs(plant))
		}
	}
	t.Logf("SL-A plant %v, office %v; office alone misses %q", plant.SLA, office.SLA, differ)

	// The status table shows both zones.
	st := ok("compliance", "status", "--framework", "iec62443-3-3")
	if !strings.Contains(st, "plant") || !strings.Contains(st, "office") || !strings.Contains(st, "SL-A") {
		t.Fatalf("status:\n%s", st)
	}
}
