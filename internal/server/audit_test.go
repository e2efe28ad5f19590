package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
)

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAuditLogVerifies writes, reads and is denied, then verifies the log
// from the API alone, as a third party would: checkpoint signature, root
// over every leaf, inclusion proofs, consistency with an older checkpoint;
// and checks that no secret reaches an entry while its HMAC confirms it.
func TestAuditLogVerifies(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	const secret = "s3cr3t-in-the-audit-test"
	h.want(h.do("PUT", "/v1/kv/data/app/db", root, map[string]any{"data": map[string]string{"password": secret}}), 200)
	h.want(h.do("GET", "/v1/kv/data/app/db", root, nil), 200)
	bob := h.token(root, "bob")
	h.want(h.do("GET", "/v1/kv/data/app/db", bob, nil), 403)
	h.want(h.do("GET", "/v1/kv/data/app/db", "wdn_"+strings.Repeat("x", 43), nil), 401)
	h.want(h.do("GET", "/v1/kv/data/app/db", "wdn_"+strings.Repeat("y", 43), nil), 401)
	// Failures before authentication are aggregated: one record per
	// address and reason, with a count, at the end of each window.
	if err := h.srv.API().FlushAuthFailures(context.Background()); err != nil {
		t.Fatal(err)
	}
	bobAccessor := h.want(h.do("POST", "/v1/auth/token/lookup", root, map[string]string{"token": bob}), 200).json(t)["accessor"].(string)

	v := h.want(h.do("GET", "/v1/audit/verifier", root, nil), 200).json(t)
	vkey := v["verifier_key"].(string)
	if !strings.HasPrefix(v["origin"].(string), "warden.local/audit/") {
		t.Fatalf("origin %v", v["origin"])
	}
	oldNote := h.want(h.do("GET", "/v1/audit/checkpoint", root, nil), 200).body
	old, err := audit.Open(oldNote, vkey)
	if err != nil {
		t.Fatalf("checkpoint: %v\n%s", err, oldNote)
	}
	for i := 0; i < 5; i++ {
		h.want(h.do("PUT", fmt.Sprintf("/v1/kv/data/more/%d", i), root, map[string]any{"data": map[string]int{"i": i}}), 200)
	}
	cp, err := audit.Open(h.want(h.do("GET", "/v1/audit/checkpoint", root, nil), 200).body, vkey)
	if err != nil || cp.Size <= old.Size {
		t.Fatalf("checkpoint %d after %d: %v", cp.Size, old.Size, err)
	}
	r := h.want(h.do("GET", fmt.Sprintf("/v1/audit/entries?start=0&count=%d", cp.Size), root, nil), 200).json(t)
	ents := r["entries"].([]any)
	var leaves [][]byte
	actions := map[string]int{}
	var writeHash string
	for i, e := range ents {
		m := e.(map[string]any)
		if m["index"] != float64(i) {
			t.Fatalf("entry %d has index %v", i, m["index"])
		}
		leaf := b64(t, m["leaf"].(string))
		if bytes.Contains(leaf, []byte(secret)) || bytes.Contains(leaf, []byte(root[4:])) || bytes.Contains(leaf, []byte(bob[4:])) {
			t.Fatalf("entry %d holds a secret: %s", i, leaf)
		}
		if _, err := audit.DecodeEntry(leaf); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		leaves = append(leaves, leaf)
		ent := m["entry"].(map[string]any)
		actions[fmt.Sprint(ent["action"], " ", ent["outcome"])]++
		switch {
		case ent["action"] == "kv.read" && ent["outcome"] == float64(403):
			if ent["accessor"] != bobAccessor {
				t.Errorf("the deny names accessor %v, want bob's %s", ent["accessor"], bobAccessor)
			}
		case ent["action"] == "auth.failed":
			if ent["count"] != float64(2) || ent["principal"] != "" || ent["resource"] != "authenticate" || ent["outcome"] != float64(401) {
				t.Errorf("aggregated failure record: %v", ent)
			}
		case ent["principal"] == `Root::"root"` && ent["accessor"] == nil:
			t.Errorf("a root request's entry names no accessor: %v", ent)
		}
		if ent["action"] == "kv.write" && ent["resource"] == `Secret::"app/db"` {
			writeHash = ent["hashes"].(map[string]any)["data"].(string)
			if m["raft_index"].(float64) == 0 {
				t.Fatalf("the write's entry names no Raft index: %v", m)
			}
		}
	}
	for _, want := range []string{"kv.write 200", "kv.read 200", "kv.read 403", "auth.failed 401", "token.create 200"} {
		if actions[want] == 0 {
			t.Errorf("no %q entry in %v", want, actions)
		}
	}
	if !bytes.Equal(audit.RootOf(leaves), cp.Root) {
		t.Fatal("root over all entries differs from the checkpoint")
	}
	for _, i := range []uint64{0, cp.Size / 2, cp.Size - 1} {
		p := h.want(h.do("GET", fmt.Sprintf("/v1/audit/proof/inclusion?index=%d&tree_size=%d", i, cp.Size), root, nil), 200).json(t)
		var proof [][]byte
		for _, x := range p["hashes"].([]any) {
			proof = append(proof, b64(t, x.(string)))
		}
		if err := audit.VerifyInclusion(leaves[i], i, cp.Size, cp.Root, proof); err != nil {
			t.Fatalf("inclusion of %d: %v", i, err)
		}
	}
	p := h.want(h.do("GET", fmt.Sprintf("/v1/audit/proof/consistency?old=%d&new=%d", old.Size, cp.Size), root, nil), 200).json(t)
	var proof [][]byte
	for _, x := range p["hashes"].([]any) {
		proof = append(proof, b64(t, x.(string)))
	}
	if err := audit.VerifyConsistency(old.Size, cp.Size, old.Root, cp.Root, proof); err != nil {
		t.Fatalf("consistency: %v", err)
	}
	// The HMAC lets the audit-key holder confirm a guessed value.
	guess := h.want(h.do("POST", "/v1/audit/hash", root, map[string]any{"value": map[string]string{"password": secret}}), 200).json(t)
	wrong := h.want(h.do("POST", "/v1/audit/hash", root, map[string]any{"value": map[string]string{"password": "nope"}}), 200).json(t)
	if writeHash == "" || guess["hash"] != writeHash || wrong["hash"] == writeHash {
		t.Fatalf("hash check: entry %q, guess %v, wrong %v", writeHash, guess["hash"], wrong["hash"])
	}
	h.want(h.do("GET", "/v1/audit/proof/inclusion?index=5&tree_size=999999", root, nil), 400)
	h.want(h.do("GET", "/v1/audit/entries?start=0", root, nil), 400)
}

// TestAuditSinkFailsClosed: a required audit file that cannot be written
// (/dev/full) receives records only after they committed; once its
// delivery fails, writes and audited reads are refused and change nothing,
// while health still answers. A working file receives exactly the
// committed entries, each with its index.
func TestAuditSinkFailsClosed(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, nil)
	keys, root := h.initUnseal(1, 1)
	h.want(h.do("PUT", "/v1/kv/data/app/db", root, map[string]any{"data": map[string]string{"v": "before"}}), 200)

	h.cfg.AuditFile = "/dev/full"
	h.restart()
	h.unseal(keys)
	// Nothing was delivered yet, so nothing has failed: this write commits,
	// and its record is what the sink then fails to receive.
	h.want(h.do("PUT", "/v1/kv/data/app/db", root, map[string]any{"data": map[string]string{"v": "committed"}}), 200)
	ctx := context.Background()
	if err := h.srv.Audit().SinksSettled(ctx); !errors.Is(err, auditlog.ErrSinkFailed) {
		t.Fatalf("delivery to /dev/full: %v", err)
	}
	r := h.want(h.do("PUT", "/v1/kv/data/app/db", root, map[string]any{"data": map[string]string{"v": "refused"}}), 503)
	if !strings.Contains(r.errorText(t), "audit") {
		t.Fatalf("503 does not say why: %s", r.body)
	}
	h.want(h.do("GET", "/v1/kv/data/app/db", root, nil), 503)
	h.want(h.do("GET", "/v1/sys/health", "", nil), 200)
	body := h.want(h.do("GET", "/metrics", root, nil), 200).body
	if !bytes.Contains(body, []byte(`warden_audit_sink_failures_total{sink="file:/dev/full"}`)) {
		t.Fatal("no sink failure metric")
	}

	file := dir + "/audit.log"
	h.cfg.AuditFile = file
	h.restart()
	h.unseal(keys)
	got := h.want(h.do("GET", "/v1/kv/data/app/db", root, nil), 200).json(t)
	if got["data"].(map[string]any)["v"] != "committed" || got["version"] != float64(2) {
		t.Fatalf("data changed while the sink was failing: %v", got)
	}
	h.want(h.do("PUT", "/v1/kv/data/app/db", root, map[string]any{"data": map[string]string{"v": "after"}}), 200)
	// A conflicting write: its change never commits, only its failure.
	h.want(h.do("PUT", "/v1/kv/data/app/db", root, map[string]any{"data": map[string]string{"v": "lost"}, "cas": 1}), 409)
	h.mergeAudit()
	if err := h.srv.Audit().SinksSettled(ctx); err != nil {
		t.Fatal(err)
	}
	size, err := h.srv.Audit().Size()
	if err != nil {
		t.Fatal(err)
	}
	h.stop()
	lines, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []float64
	for i, l := range bytes.Split(bytes.TrimSpace(lines), []byte("\n")) {
		var sl struct {
			Index uint64          `json:"index"`
			Entry json.RawMessage `json:"entry"`
		}
		if err := json.Unmarshal(l, &sl); err != nil {
			t.Fatalf("sink line %q: %v", l, err)
		}
		if want := size - 3 + uint64(i); sl.Index != want {
			t.Fatalf("sink line %d has index %d, want %d", i, sl.Index, want)
		}
		e, err := audit.DecodeEntry(sl.Entry)
		if err != nil {
			t.Fatalf("sink line is not a canonical entry: %s: %v", l, err)
		}
		if bytes.Contains(l, []byte("before")) || bytes.Contains(l, []byte("after")) || bytes.Contains(l, []byte(root[4:])) {
			t.Fatalf("secret in the sink: %s", l)
		}
		outcomes = append(outcomes, float64(e.Outcome))
	}
	// The read, the write, and the refused write's failure: not the record
	// its change would have carried had it committed.
	if want := []float64{200, 200, 409}; !slices.Equal(outcomes, want) {
		t.Fatalf("sink outcomes %v, want %v:\n%s", outcomes, want, lines)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit file mode %v", fi.Mode())
	}
}
