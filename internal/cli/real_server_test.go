package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/policy"
)

// TestAgainstRealServer runs the README walkthrough with the CLI against a
// real server on a 127.0.0.1:0 port, and checks the JSON contracts.
func TestAgainstRealServer(t *testing.T) {
	addr, ca := realServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := map[string]string{"WARDEN_ADDR": addr, "WARDEN_CACERT": ca}
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(ctx, args, strings.NewReader(""), &out, &errb, func(k string) string { return env[k] })
		if code != wantCode {
			t.Fatalf("warden %s: exit %d, want %d; stderr %q", strings.Join(args, " "), code, wantCode, errb.String())
		}
		if code != 0 && strings.Count(strings.TrimSpace(errb.String()), "\n") != 0 {
			t.Fatalf("error output is not one line: %q", errb.String())
		}
		return out.String()
	}
	decode := func(s string) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("not JSON: %q", s)
		}
		return m
	}
	hasFields := func(m map[string]any, fields ...string) {
		t.Helper()
		for _, f := range fields {
			if _, ok := m[f]; !ok {
				t.Fatalf("field %q missing from %v", f, m)
			}
		}
	}

	st := decode(cli(0, "status", "--format", "json"))
	hasFields(st, "initialized", "sealed", "shares", "threshold", "progress")
	if st["initialized"] != false {
		t.Fatalf("status: %v", st)
	}
	in := decode(cli(0, "operator", "init", "--key-shares", "3", "--key-threshold", "2", "--format", "json"))
	hasFields(in, "unseal_keys", "root_token")
	keys := in["unseal_keys"].([]any)
	cli(1, "operator", "unseal", "not-a-key")
	cli(0, "operator", "unseal", keys[0].(string))
	cli(0, "operator", "unseal", keys[2].(string))
	if st := decode(cli(0, "status", "--format", "json")); st["sealed"] != false || st["shares"] != float64(3) {
		t.Fatalf("after unseal: %v", st)
	}
	env["WARDEN_TOKEN"] = in["root_token"].(string)
	cli(0, "kv", "put", "app/db", "password=hunter2", "user=app")
	cli(0, "kv", "put", "--cas", "1", "app/db", "password=correct-horse")
	cli(1, "kv", "put", "--cas", "1", "app/db", "password=lost")
	got := decode(cli(0, "kv", "get", "--version", "1", "--format", "json", "app/db"))
	hasFields(got, "data", "version", "created_time")
	if got["version"] != float64(1) || got["data"].(map[string]any)["password"] != "hunter2" {
		t.Fatalf("kv get: %v", got)
	}
	if f := cli(0, "kv", "get", "--field", "password", "app/db"); strings.TrimSpace(f) != "correct-horse" {
		t.Fatalf("--field: %q", f)
	}
	if l := cli(0, "kv", "list", "app"); strings.TrimSpace(l) != "db" {
		t.Fatalf("list: %q", l)
	}
	tok := decode(cli(0, "token", "create", "--ttl", "1h", "--display-name", "ci", "--format", "json"))
	hasFields(tok, "token", "accessor", "expire_time")
	rot := decode(cli(0, "operator", "rotate", "--format", "json"))
	if rot["term"] != float64(2) {
		t.Fatalf("rotate: %v", rot)
	}

	// Authorization: a bad policy is refused with its position, a good one
	// governs a non-root token, and the decision API answers a user store.
	dir := t.TempDir()
	write := func(name, text string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"policy", "write", "ops", write("bad.cedar", "permit (principal,\n  action resource);")},
		strings.NewReader(""), &out, &errb, func(k string) string { return env[k] }); code != 1 || !strings.Contains(errb.String(), "ops:2:") {
		t.Fatalf("bad policy: exit %d, stderr %q", code, errb.String())
	}
	cli(0, "policy", "write", "ops", write("ops.cedar", `permit (principal in Group::"ops", action == Action::"kv.read", resource);`))
	// The warden store lists its built-in policies too.
	if l := decode(cli(0, "policy", "list", "--format", "json")); len(l["policies"].([]any)) != len(policy.BuiltinPolicies())+1 {
		t.Fatalf("policy list: %v", l)
	}
	opsTok := decode(cli(0, "token", "create", "--user", "olga", "--group", "ops", "--format", "json"))
	if opsTok["principal"] != `User::"olga"` {
		t.Fatalf("principal: %v", opsTok)
	}
	rootTok := env["WARDEN_TOKEN"]
	env["WARDEN_TOKEN"] = opsTok["token"].(string)
	cli(0, "kv", "get", "app/db")
	cli(1, "kv", "put", "app/db", "password=nope")
	env["WARDEN_TOKEN"] = rootTok

	cli(0, "authz", "store", "create", "shop")
	cli(0, "policy", "write", "--store", "shop", "refunds", write("refunds.cedar",
		`permit (principal in Group::"support", action == Action::"refund", resource) when { context.amount < 100 };`))
	cli(0, "authz", "entities", "write", "shop", write("ents.json",
		`[{"uid": {"type": "User", "id": "bob"}, "attrs": {}, "parents": [{"type": "Group", "id": "support"}]}]`))
	check := func(amount string) string {
		d := decode(cli(0, "authz", "check", "--store", "shop", "--principal", `User::"bob"`, "--action", `Action::"refund"`,
			"--resource", `Order::"42"`, "--context", `{"amount": `+amount+`}`, "--format", "json"))
		hasFields(d, "decision", "reasons", "errors")
		return d["decision"].(string)
	}
	if check("50") != "allow" || check("500") != "deny" {
		t.Fatal("refund decisions")
	}
	cli(2, "authz", "check", "--store", "shop", "--principal", `User::"bob"`, "--action", `Action::"refund"`,
		"--resource", `Order::"42"`, "--context", `[1]`)
	if l := decode(cli(0, "authz", "store", "list", "--format", "json")); len(l["stores"].([]any)) != 2 {
		t.Fatalf("stores: %v", l)
	}

	cli(0, "zone", "create", "dmz", "--level", "3")
	cli(0, "zone", "create", "plant", "--level", "2")
	nt := decode(cli(0, "node", "token", "create", "--name", "web-1", "--zone", "dmz", "--format", "json"))
	hasFields(nt, "token", "expires_at")
	cli(0, "node", "token", "create", "--name", "plc-1", "--zone", "plant")
	conduit := func() string {
		d := decode(cli(0, "conduit", "check", "--from-node", "web-1", "--to-node", "plc-1", "--port", "502", "--format", "json"))
		return d["decision"].(string)
	}
	if conduit() != "deny" {
		t.Fatal("flow allowed without a conduit")
	}
	cli(0, "conduit", "create", "--from", "dmz", "--to", "plant", "--port", "502")
	if l := decode(cli(0, "conduit", "list", "--format", "json"))["conduits"].([]any); len(l) != 1 ||
		l[0].(map[string]any)["policy"] != "conduit.dmz.plant.tcp.502" {
		t.Fatalf("conduit list: %v", l)
	}
	if out := cli(0, "conduit", "list"); out != "dmz -> plant\ttcp/502\n" {
		t.Fatalf("conduit list: %q", out)
	}
	if conduit() != "allow" {
		t.Fatal("flow denied on the conduit's port")
	}
	cli(1, "node", "token", "create", "--name", "wеb-1") // Cyrillic е: refused
	// The agent enrolls with the token alone; the key stays on the node (0600).
	agentDir := t.TempDir()
	if out := cli(0, "agent", "--server", addr, "--ca-cert", ca, "--join-token", nt["token"].(string), "--data-dir", agentDir, "--once"); !strings.Contains(out, "spiffe://warden.local/node/web-1") {
		t.Fatalf("agent: %q", out)
	}
	if fi, err := os.Stat(agentDir + "/svid-key.pem"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v", err)
	}
	if out, err := exec.Command("openssl", "verify", "-CAfile", agentDir+"/bundle.pem", "-untrusted", agentDir+"/svid.pem", agentDir+"/svid.pem").CombinedOutput(); err != nil {
		t.Fatalf("openssl verify of the agent's certificate: %v %s", err, out)
	}
	cli(1, "agent", "--server", addr, "--ca-cert", ca, "--join-token", nt["token"].(string), "--data-dir", t.TempDir(), "--once") // the token works once
	nodes := decode(cli(0, "node", "list", "--format", "json"))["nodes"].([]any)
	if len(nodes) != 2 {
		t.Fatalf("node list: %v", nodes)
	}
	web := decode(cli(0, "node", "show", "web-1", "--format", "json"))
	hasFields(web, "name", "zone", "spiffe_id", "state", "serial", "not_after", "created_time", "updated_time")
	if web["state"] != "active" || web["zone"] != "dmz" {
		t.Fatalf("node show: %v", web)
	}
	if out := cli(0, "node", "list"); !strings.Contains(out, "plc-1") || !strings.Contains(out, "pending") || !strings.Contains(out, web["serial"].(string)) {
		t.Fatalf("node list table: %q", out)
	}
	if out := cli(0, "node", "show", "web-1"); !strings.Contains(out, "spiffe://warden.local/node/web-1") {
		t.Fatalf("node show table: %q", out)
	}
	cli(1, "node", "show", "nope")
	certs := decode(cli(0, "cert", "list", "--state", "expiring", "--format", "json"))["certificates"].([]any)
	if len(certs) != 1 {
		t.Fatalf("cert list: %v", certs)
	}
	hasFields(certs[0].(map[string]any), "serial", "name", "spiffe_id", "not_before", "not_after", "state")
	cli(0, "node", "revoke", "web-1")
	if out := cli(0, "cert", "list", "--state", "revoked"); !strings.Contains(out, web["serial"].(string)) || !strings.Contains(out, "revoked") {
		t.Fatalf("cert list revoked: %q", out)
	}
	cli(2, "cert", "list", "--within", "1h") // a usage error

	cli(0, "operator", "seal")
	cli(1, "kv", "get", "app/db")
}
