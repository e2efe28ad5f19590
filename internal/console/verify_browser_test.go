package console_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/browsertest"
	"github.com/warden-sec/warden/internal/console"
	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/internal/server/servertest"
	"github.com/warden-sec/warden/internal/witness"
)

// verifyServer is a real Warden server, initialized and unsealed, with
// an HTTPS client that trusts it.
type verifyServer struct {
	t     *testing.T
	srv   *server.Server
	http  *http.Client
	token string
}

func startVerifyServer(t *testing.T) *verifyServer {
	t.Helper()
	srv := servertest.Started(t, nil)
	pem, err := os.ReadFile(srv.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	v := &verifyServer{t: t, srv: srv, http: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}}
	var init struct {
		UnsealKeys []string `json:"unseal_keys"`
		RootToken  string   `json:"root_token"`
	}
	v.json("POST", "/v1/sys/init", map[string]int{"key_shares": 1, "key_threshold": 1}, &init)
	v.json("POST", "/v1/sys/unseal", map[string]string{"key": init.UnsealKeys[0]}, nil)
	v.token = init.RootToken
	return v
}

// do sends a request with the root token and returns the status and body.
func (v *verifyServer) do(method, path string, body any) (int, []byte) {
	v.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			v.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, v.srv.Addr()+path, rd)
	if err != nil {
		v.t.Fatal(err)
	}
	if v.token != "" {
		req.Header.Set("Authorization", "Bearer "+v.token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := v.http.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		v.t.Fatal(err)
	}
	return res.StatusCode, b
}

// json sends a request that must succeed and decodes its answer into out.
func (v *verifyServer) json(method, path string, body, out any) {
	v.t.Helper()
	code, b := v.do(method, path, body)
	if code/100 != 2 {
		v.t.Fatalf("%s %s: %d %s", method, path, code, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			v.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// verifyInput is what audit-verify.js verifyEntry takes.
type verifyInput struct {
	Checkpoint   string   `json:"checkpoint"`
	VerifierKey  string   `json:"verifierKey"`
	WitnessKeys  []string `json:"witnessKeys"`
	MinWitnesses int      `json:"minWitnesses"`
	Index        uint64   `json:"index"`
	Leaf         string   `json:"leaf"`
	Proof        []string `json:"proof"`
}

type verifyStep struct {
	Step   string `json:"step"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

type verifyResult struct {
	OK       bool         `json:"ok"`
	Steps    []verifyStep `json:"steps"`
	Reported []verifyStep `json:"reported"`
	Secure   bool         `json:"secure"`
	Error    string       `json:"error"`
}

// tamperByte returns b64's bytes with byte i flipped, in base64.
func tamperByte(t *testing.T, b64 string, i int) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) <= i {
		t.Fatalf("tamper %q: %v", b64, err)
	}
	b[i] ^= 0x01
	return base64.StdEncoding.EncodeToString(b)
}

// tamperSignature flips a byte of the Ed25519 signature on the note's
// signature line by name (the first one).
func tamperSignature(t *testing.T, note, name string, off int) string {
	t.Helper()
	prefix := "— " + name + " "
	lines := strings.Split(note, "\n")
	for i, l := range lines {
		if b64, ok := strings.CutPrefix(l, prefix); ok {
			lines[i] = prefix + tamperByte(t, b64, off)
			return strings.Join(lines, "\n")
		}
	}
	t.Fatalf("no signature line by %s in %q", name, note)
	return ""
}

// TestAuditVerifyInChromium verifies audit entries of a real server in
// headless Chromium with static/audit-verify.js: the module on a test
// page given the data the server returned (a real entry passes every
// step, the same leaf hash as Go computes; a proof with one hash byte
// changed fails the inclusion step, a checkpoint with its signature or a
// witness's cosignature altered fails that step), then static/pages/audit.js
// rendered against the real API: "Verify" on an entry passes every step,
// and fails at the inclusion step once the test serves a tampered proof.
// Every page is served under the console's CSP, and no console error or
// CSP violation may appear.
func TestAuditVerifyInChromium(t *testing.T) {
	v := startVerifyServer(t)
	for i := range 3 {
		v.json("PUT", fmt.Sprintf("/v1/kv/data/app/verify-%d", i), map[string]any{"data": map[string]string{"k": fmt.Sprint(i)}}, nil)
	}

	// The checkpoint with the server witness's cosignature (the node's
	// witness registers in the background after unseal: the server waits
	// for it within the request).
	code, cpBody := v.do("GET", "/v1/audit/checkpoint?witnesses=1", nil)
	if code != http.StatusOK {
		t.Fatalf("checkpoint?witnesses=1: %d %s", code, cpBody)
	}
	cpText := string(cpBody)
	var ver struct {
		Origin      string `json:"origin"`
		VerifierKey string `json:"verifier_key"`
	}
	v.json("GET", "/v1/audit/verifier", nil, &ver)
	var ws struct {
		Servers []struct {
			VerifierKey string `json:"verifier_key"`
		} `json:"servers"`
		External []struct {
			VerifierKey string `json:"verifier_key"`
		} `json:"external"`
	}
	v.json("GET", "/v1/audit/witnesses", nil, &ws)
	var witnessKeys []string
	for _, w := range ws.Servers {
		witnessKeys = append(witnessKeys, w.VerifierKey)
	}
	for _, w := range ws.External {
		witnessKeys = append(witnessKeys, w.VerifierKey)
	}
	if len(witnessKeys) == 0 {
		t.Fatal("the server lists no witness")
	}
	cp, err := audit.Open(cpBody, ver.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := witness.VerifyCosigned(cpBody, ver.VerifierKey, witnessKeys, 1); err != nil {
		t.Fatalf("Go does not verify the cosigned checkpoint: %v", err)
	}

	// An entry in the middle of the tree (index 1 of at least 4), so the
	// proof has inner and border hashes in most sizes.
	var entries struct {
		Entries []struct {
			Index uint64 `json:"index"`
			Leaf  string `json:"leaf"`
		} `json:"entries"`
	}
	v.json("GET", "/v1/audit/entries?start=1&count=1", nil, &entries)
	if len(entries.Entries) != 1 || entries.Entries[0].Leaf == "" {
		t.Fatalf("entries: %+v", entries)
	}
	entry := entries.Entries[0]
	var proof struct {
		Hashes []string `json:"hashes"`
	}
	v.json("GET", fmt.Sprintf("/v1/audit/proof/inclusion?index=%d&tree_size=%d", entry.Index, cp.Size), nil, &proof)
	if len(proof.Hashes) == 0 {
		t.Fatalf("an empty proof for entry %d of %d", entry.Index, cp.Size)
	}
	leaf, err := base64.StdEncoding.DecodeString(entry.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	goLeafHash := hex.EncodeToString(audit.LeafHash(leaf))
	var hashes [][]byte
	for _, h := range proof.Hashes {
		b, _ := base64.StdEncoding.DecodeString(h)
		hashes = append(hashes, b)
	}
	if err := audit.VerifyInclusion(leaf, entry.Index, cp.Size, cp.Root, hashes); err != nil {
		t.Fatalf("Go does not verify the proof: %v", err)
	}

	good := verifyInput{Checkpoint: cpText, VerifierKey: ver.VerifierKey, WitnessKeys: witnessKeys, MinWitnesses: 1,
		Index: entry.Index, Leaf: entry.Leaf, Proof: proof.Hashes}
	badProof := good
	badProof.Proof = append([]string(nil), good.Proof...)
	badProof.Proof[len(badProof.Proof)-1] = tamperByte(t, badProof.Proof[len(badProof.Proof)-1], 7)
	badSig := good
	badSig.Checkpoint = tamperSignature(t, cpText, cp.Origin, 4+10) // a byte of the signature, after the key ID
	wname := strings.SplitN(witnessKeys[0], "+", 2)[0]
	badCosig := good
	badCosig.Checkpoint = tamperSignature(t, cpText, wname, 4+8+10) // after the key ID and the time
	// A log key of the same name that did not sign: what a user who
	// pinned the right key sees when a server signs with another.
	_, otherKey, err := audit.GenerateSigner(cp.Origin, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherLog := good
	otherLog.VerifierKey = otherKey
	cases := map[string]verifyInput{"real": good, "tampered-proof": badProof, "tampered-signature": badSig,
		"tampered-cosignature": badCosig, "other-log-key": otherLog}

	// The test origin: the static files from disk, the test pages, the
	// cases, and the real server's API (whose proofs the test may
	// tamper), all under the console's CSP.
	var tamper atomic.Bool
	api := v.srv.API()
	mux := http.NewServeMux()
	mux.Handle("/static/", http.StripPrefix("/static/", http.FileServer(http.Dir("static"))))
	mux.Handle("/testdata/", http.StripPrefix("/testdata/", http.FileServer(http.Dir("testdata"))))
	mux.HandleFunc("/test/case/{name}", func(w http.ResponseWriter, r *http.Request) {
		c, ok := cases[r.PathValue("name")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(c)
	})
	mux.HandleFunc("/test/token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, v.token)
	})
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		if !tamper.Load() || r.URL.Path != "/v1/audit/proof/inclusion" {
			api.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, r)
		var p struct {
			Hashes []string `json:"hashes"`
		}
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &p) != nil || len(p.Hashes) == 0 {
			t.Errorf("tampering a proof: %d %s", rec.Code, rec.Body)
			http.Error(w, "test: no proof to tamper", http.StatusInternalServerError)
			return
		}
		h, err := base64.StdEncoding.DecodeString(p.Hashes[0])
		if err != nil || len(h) == 0 {
			http.Error(w, "test: a proof hash is not base64", http.StatusInternalServerError)
			return
		}
		h[0] ^= 0x01
		p.Hashes[0] = base64.StdEncoding.EncodeToString(h)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(p)
	})
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", console.CSP)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		mux.ServeHTTP(w, r)
	}))
	ts.StartTLS()
	defer ts.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	br := browsertest.Start(t, ctx, 1280, 800)
	bctx := br.Ctx

	run := func(name string) verifyResult {
		t.Helper()
		if err := chromedp.Do(bctx, chromedp.Navigate(ts.URL+"/testdata/verify.html?case="+name), chromedp.WaitReady("#result")); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		js, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById("result").textContent`))
		if err != nil {
			t.Fatal(err)
		}
		var r verifyResult
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			t.Fatalf("%s: %v: %s", name, err, js)
		}
		if r.Error != "" {
			t.Fatalf("%s: the page failed: %s", name, r.Error)
		}
		if len(r.Reported) != len(r.Steps) {
			t.Errorf("%s: onStep saw %d steps, the result has %d", name, len(r.Reported), len(r.Steps))
		}
		return r
	}
	wantNames := []string{"log-key", "checkpoint-format", "checkpoint-signature", "witness-cosignature", "witness-quorum", "leaf-hash", "inclusion-proof"}
	// stepsOf maps step names to the steps of that name.
	stepsOf := func(t *testing.T, r verifyResult) map[string][]verifyStep {
		t.Helper()
		m := map[string][]verifyStep{}
		for _, s := range r.Steps {
			m[s.Step] = append(m[s.Step], s)
		}
		for _, n := range wantNames {
			if len(m[n]) == 0 {
				t.Fatalf("no step %s in %+v", n, r.Steps)
			}
		}
		return m
	}

	t.Run("module/real", func(t *testing.T) {
		r := run("real")
		if !r.Secure {
			t.Error("the test page is not a secure context")
		}
		if !r.OK {
			t.Fatalf("a real entry did not verify: %+v", r.Steps)
		}
		m := stepsOf(t, r)
		var order []string
		for _, s := range r.Steps {
			if len(order) == 0 || order[len(order)-1] != s.Step {
				order = append(order, s.Step)
			}
		}
		if strings.Join(order, ",") != strings.Join(wantNames, ",") {
			t.Errorf("step order %v, want %v", order, wantNames)
		}
		if !strings.Contains(m["leaf-hash"][0].Detail, goLeafHash) {
			t.Errorf("leaf hash step %q, Go computes %s", m["leaf-hash"][0].Detail, goLeafHash)
		}
		if d := m["inclusion-proof"][0].Detail; !strings.Contains(d, hex.EncodeToString(cp.Root)) {
			t.Errorf("inclusion step %q does not name the root %x", d, cp.Root)
		}
		if d := m["witness-cosignature"][0].Detail; !strings.Contains(d, wname) || !strings.Contains(d, "cosigned this checkpoint at") {
			t.Errorf("witness step %q", d)
		}
	})
	t.Run("module/tampered-proof", func(t *testing.T) {
		r := run("tampered-proof")
		m := stepsOf(t, r)
		if r.OK {
			t.Fatalf("a tampered proof verified: %+v", r.Steps)
		}
		for _, s := range r.Steps {
			if s.Step != "inclusion-proof" && !s.OK {
				t.Errorf("step %s failed with a good checkpoint: %s", s.Step, s.Detail)
			}
		}
		if d := m["inclusion-proof"][0].Detail; !strings.Contains(d, "leads to root") || !strings.Contains(d, "checkpoint's signed root is "+hex.EncodeToString(cp.Root)) {
			t.Errorf("the inclusion step's reason: %q", d)
		}
	})
	t.Run("module/tampered-signature", func(t *testing.T) {
		r := run("tampered-signature")
		m := stepsOf(t, r)
		if r.OK || m["checkpoint-signature"][0].OK {
			t.Fatalf("a tampered checkpoint signature verified: %+v", r.Steps)
		}
		if d := m["checkpoint-signature"][0].Detail; !strings.Contains(d, "does not verify") || !strings.Contains(d, cp.Origin) {
			t.Errorf("the signature step's reason: %q", d)
		}
		if !m["checkpoint-format"][0].OK || !m["leaf-hash"][0].OK {
			t.Errorf("steps before or beside the signature failed: %+v", r.Steps)
		}
		if s := m["inclusion-proof"][0]; s.OK || !strings.Contains(s.Detail, "not checked") {
			t.Errorf("the inclusion step after a bad signature: %+v", s)
		}
	})
	t.Run("module/tampered-cosignature", func(t *testing.T) {
		r := run("tampered-cosignature")
		m := stepsOf(t, r)
		if r.OK || m["witness-cosignature"][0].OK || m["witness-quorum"][0].OK {
			t.Fatalf("a tampered cosignature verified: %+v", r.Steps)
		}
		if d := m["witness-cosignature"][0].Detail; !strings.Contains(d, wname) || !strings.Contains(d, "does not verify") {
			t.Errorf("the witness step's reason: %q", d)
		}
		if !m["checkpoint-signature"][0].OK || !m["inclusion-proof"][0].OK {
			t.Errorf("the log's signature or the proof failed: %+v", r.Steps)
		}
	})

	t.Run("module/other-log-key", func(t *testing.T) {
		r := run("other-log-key")
		m := stepsOf(t, r)
		if r.OK || m["checkpoint-signature"][0].OK {
			t.Fatalf("a checkpoint verified with a key that did not sign it: %+v", r.Steps)
		}
		if d := m["checkpoint-signature"][0].Detail; !strings.Contains(d, "no signature line by the log key") {
			t.Errorf("the signature step's reason: %q", d)
		}
	})

	// pageSteps clicks Verify on entry index and returns the steps and
	// the verdict the page shows.
	pageSteps := func(t *testing.T, index uint64) ([]verifyStep, string) {
		t.Helper()
		row := fmt.Sprintf(`#audit-entries tr[data-index="%d"] button.verify`, index)
		if err := chromedp.Do(bctx, chromedp.Evaluate[chromedp.Void](`document.getElementById("audit-verify").replaceChildren()`),
			chromedp.Click(row), chromedp.WaitReady("#audit-verify .verdict[data-ok]")); err != nil {
			t.Fatal(err)
		}
		js, err := chromedp.Run(bctx, chromedp.Evaluate[string](`JSON.stringify({
			steps: [...document.querySelectorAll("#audit-verify li[data-step]")].map((li) => ({step: li.dataset.step, ok: li.dataset.ok === "true", detail: li.textContent})),
			verdict: document.querySelector("#audit-verify .verdict").dataset.ok})`))
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Steps   []verifyStep `json:"steps"`
			Verdict string       `json:"verdict"`
		}
		if err := json.Unmarshal([]byte(js), &out); err != nil {
			t.Fatal(err)
		}
		return out.Steps, out.Verdict
	}
	t.Run("page/real", func(t *testing.T) {
		if err := chromedp.Do(bctx, chromedp.Navigate(ts.URL+"/testdata/audit-page.html"), chromedp.WaitReady("body[data-rendered]")); err != nil {
			t.Fatal(err)
		}
		rendered, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.dataset.rendered`))
		if err != nil || rendered != "ok" {
			t.Fatalf("render: %q %v", rendered, err)
		}
		// The newest page is shown; go to the first entries.
		if err := chromedp.Do(bctx, chromedp.SetValue("#audit-start", "0"), chromedp.Click("#audit-go"),
			chromedp.WaitReady(`#audit-entries tr[data-index="0"]`)); err != nil {
			t.Fatal(err)
		}
		action, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector('#audit-entries tr[data-index="1"] td:nth-child(4)').textContent`))
		if err != nil {
			t.Fatal(err)
		}
		var e audit.Entry
		if err := json.Unmarshal(leaf, &e); err != nil {
			t.Fatal(err)
		}
		if action != e.Action {
			t.Errorf("entry 1 shows action %q, its leaf holds %q", action, e.Action)
		}
		steps, verdict := pageSteps(t, 1)
		if verdict != "true" || len(steps) < len(wantNames) {
			t.Fatalf("verify on the page: verdict %s, steps %+v", verdict, steps)
		}
		for _, s := range steps {
			if !s.OK {
				t.Errorf("step %s failed: %s", s.Step, s.Detail)
			}
		}
	})
	t.Run("page/tampered-proof", func(t *testing.T) {
		tamper.Store(true)
		defer tamper.Store(false)
		steps, verdict := pageSteps(t, 1)
		if verdict != "false" {
			t.Fatalf("a tampered proof verified on the page: %+v", steps)
		}
		var failed []string
		for _, s := range steps {
			if !s.OK {
				failed = append(failed, s.Step)
				if !strings.Contains(s.Detail, "leads to root") {
					t.Errorf("the failed step's reason: %q", s.Detail)
				}
			}
		}
		if strings.Join(failed, ",") != "inclusion-proof" {
			t.Errorf("failed steps %v, want only inclusion-proof", failed)
		}
	})

	problems := browsertest.Problems(br.Messages(t))
	if len(problems) > 0 {
		t.Errorf("console errors or CSP violations: %q", problems)
	}
}
