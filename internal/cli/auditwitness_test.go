package cli

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/auditcheck"
	"github.com/warden-sec/warden/internal/witness"
	"github.com/warden-sec/warden/pkg/client"
)

// TestAuditWitnessExternal: a server submits its checkpoints to an
// external witness, `warden witness` run as its own process over TLS,
// added with `warden audit witness add`; `audit verify` requires both
// cosignatures (its own witness's and the external one's), pins their keys
// on first use in its state file and checks consistency with the
// checkpoint it verified last; bad input is refused naming the field;
// removed, the witness is no longer asked, and a verifier that requires it
// fails.
func TestAuditWitnessExternal(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "warden")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/warden").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	e := unsealedServer(t)
	ctx := context.Background()
	c, err := client.New(client.Config{Address: e["WARDEN_ADDR"], CACertFile: e["WARDEN_CACERT"], Token: e["WARDEN_TOKEN"]})
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.AuditVerifierKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, _ := selfSigned(t, t.TempDir())
	p := startWitness(t, bin, "--data-dir", t.TempDir(), "--name", "witness.test/ext", "--tls-cert", certFile, "--tls-key", keyFile,
		"--log", v.Origin+"="+v.VerifierKey)

	// Bad input: each refused naming what is wrong, nothing added.
	checkErr(t, runCLI(t, e, "", "audit", "witness", "add", "ext1", "--key", p.vkey), ExitUsage, "--url and --key are required")
	checkErr(t, runCLI(t, e, "", "audit", "witness", "add", "ext1", "--url", "http"+strings.TrimPrefix(p.url, "https"), "--key", p.vkey), 1, "url:")
	checkErr(t, runCLI(t, e, "", "audit", "witness", "add", "ext1", "--url", p.url, "--key", "witness.test/ext+00000000+BA=="), 1, "verifier_key:")
	checkErr(t, runCLI(t, e, "", "audit", "witness", "add", "Ext_1", "--url", p.url, "--key", p.vkey), 1, "name:")
	checkErr(t, runCLI(t, e, "", "audit", "witness", "add", "ext1", "--url", p.url, "--key", p.vkey, "--witness-ca-cert", keyFile), 1, "ca_cert:")
	if l, err := c.AuditWitnesses(ctx); err != nil || len(l.External) != 0 || len(l.Servers) != 1 || !l.Servers[0].Member {
		t.Fatalf("witnesses after bad input: %+v %v", l, err)
	}

	if r := runCLI(t, e, "", "audit", "witness", "add", "ext1", "--url", p.url, "--key", p.vkey, "--witness-ca-cert", certFile); r.code != 0 ||
		!strings.Contains(r.stdout, "submit their checkpoints to witness ext1") {
		t.Fatalf("add: %+v", r)
	}
	checkErr(t, runCLI(t, e, "", "audit", "witness", "add", "ext1", "--url", p.url, "--key", p.vkey, "--witness-ca-cert", certFile), 1, "exists")

	state := filepath.Join(t.TempDir(), "state", "verify.json")
	r := runCLI(t, e, "", "audit", "verify", "--state", state, "--witness-quorum", "2")
	if r.code != 0 || !strings.Contains(r.stdout, "Pinned 2 witness keys") || !strings.Contains(r.stdout, "2 of 2 trusted witnesses cosigned (quorum 2)") ||
		!strings.Contains(r.stdout, "witness.test/ext") {
		t.Fatalf("verify with the external witness: %+v", r)
	}
	st, err := auditcheck.LoadState(state)
	if err != nil || st == nil || len(st.Witnesses) != 2 {
		t.Fatalf("state: %+v %v", st, err)
	}
	if _, err := witness.VerifyCosigned([]byte(st.Checkpoint), v.VerifierKey, []string{p.vkey}, 1); err != nil {
		t.Fatalf("the saved checkpoint lacks the external cosignature: %v", err)
	}
	// The log grows: consistent with the saved checkpoint, both cosign.
	if r := runCLI(t, e, "", "kv", "put", "app/x", "k=v"); r.code != 0 {
		t.Fatal(r)
	}
	r = runCLI(t, e, "", "audit", "verify", "--state", state, "--witness-quorum", "2")
	if r.code != 0 || !strings.Contains(r.stdout, "Consistent with the checkpoint verified before") || strings.Contains(r.stdout, "Pinned") {
		t.Fatalf("second verify: %+v", r)
	}
	r = runCLI(t, e, "", "audit", "witness", "list", "--format", "json")
	var l client.AuditWitnesses
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &l) != nil || len(l.External) != 1 || l.External[0].Status == nil ||
		l.External[0].Status.Size == 0 || l.External[0].Status.Error != "" {
		t.Fatalf("list: %+v", r)
	}
	if r := runCLI(t, e, "", "audit", "witness", "list"); r.code != 0 || !strings.Contains(r.stdout, "external ext1") || !strings.Contains(r.stdout, "server node1") {
		t.Fatalf("list table: %+v", r)
	}

	// A witness key that is not one; a quorum above the trusted keys.
	checkErr(t, runCLI(t, e, "", "audit", "verify", "--state", state, "--witness-key", "nope"), 1, `witness key "nope"`)
	checkErr(t, runCLI(t, e, "", "audit", "verify", "--state", state, "--witness-quorum", "3"), 1, "only 2 witness keys are trusted")
	checkErr(t, runCLI(t, e, "", "audit", "verify", "--witness-quorum", "-1"), ExitUsage, "--witness-quorum")

	if r := runCLI(t, e, "", "audit", "witness", "remove", "ext1"); r.code != 0 {
		t.Fatalf("remove: %+v", r)
	}
	checkErr(t, runCLI(t, e, "", "audit", "witness", "remove", "ext1"), 1, "no external witness named")
	// The verifier still requires two cosignatures: the server can no
	// longer give them.
	checkErr(t, runCLI(t, e, "", "audit", "verify", "--state", state, "--witness-quorum", "2"), 1, "2 asked for, but 1 witnesses are configured")
	// By default, a majority of the server witnesses: its own.
	if r := runCLI(t, e, "", "audit", "verify", "--state", state); r.code != 0 || !strings.Contains(r.stdout, "(quorum 1)") {
		t.Fatalf("verify after the removal: %+v", r)
	}
}
