package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/warden-sec/warden/internal/api"
	"github.com/warden-sec/warden/internal/browsertest"
	"github.com/warden-sec/warden/internal/compliance/assess"
	"github.com/warden-sec/warden/internal/sigma"
	"github.com/warden-sec/warden/pkg/client"
)

var perf = flag.Bool("perf", false, "seed 10,000 enrolled nodes and 100,000 alerts and log each page's time to ready and bytes loaded")

// browserT is a headless Chromium tab on a console server, logged in with
// a token, collecting console messages until done.
type browserT struct {
	*browsertest.Browser
	t   *testing.T
	ctx context.Context
	cs  *consoleServer
}

func newBrowser(t *testing.T, cs *consoleServer, token string) *browserT {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	t.Cleanup(cancel)
	br := browsertest.Start(t, ctx, 1280, 800)
	b := &browserT{Browser: br, t: t, ctx: br.Ctx, cs: cs}
	b.Do(chromedp.Navigate(cs.ts.URL+"/ui/"), chromedp.WaitReady(ready("login")),
		chromedp.SendKeys("#login-token", token), chromedp.Click(`#login-token-form button[type="submit"]`),
		chromedp.WaitReady(ready("overview")))
	return b
}

func ready(page string) string {
	return fmt.Sprintf(`section[data-page=%q][data-state="ready"]`, page)
}

// goTo sets the fragment and waits for the page to be ready.
func (b *browserT) goTo(hash string) {
	b.t.Helper()
	b.Eval(fmt.Sprintf(`location.hash = %q`, hash))
	page := strings.Split(strings.TrimPrefix(hash, "#/"), "/")[0]
	b.Do(chromedp.WaitReady(fmt.Sprintf(`section[data-page=%q][data-state]`, page)))
	if st := b.Eval(`document.querySelector("main section").dataset.state`); st != "ready" {
		b.t.Fatalf("%s: state %v: %s", hash, st, b.Text("main section"))
	}
}

// finish ends the console collection and fails on any error or warning
// but the expected ones: each of expected (a message's text) is allowed
// once, as the test caused it.
func (b *browserT) finish(expected ...string) {
	b.t.Helper()
	var problems []string
	for _, m := range browsertest.Problems(b.Messages(b.t)) {
		if i := slices.Index(expected, m); i >= 0 {
			expected = slices.Delete(expected, i, i+1)
			continue
		}
		problems = append(problems, m)
	}
	if len(expected) > 0 {
		b.t.Errorf("expected console messages not seen: %q", expected)
	}
	if len(problems) > 0 {
		b.t.Fatalf("the console ran with problems: %q", problems)
	}
}

// seedNodes creates n pending nodes (node-00000, ...) in zone through the
// API (POST /v1/nodes/tokens), 16 requests at a time: the store takes no
// change without its audit record, so there is no faster way in.
func seedNodes(t *testing.T, cs *consoleServer, n int, zone string) {
	t.Helper()
	names := make(chan string)
	errc := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				body, _ := json.Marshal(map[string]string{"name": name, "zone": zone})
				req, err := http.NewRequest("POST", cs.ts.URL+"/v1/nodes/tokens", bytes.NewReader(body))
				if err != nil {
					errc <- err
					continue
				}
				req.Header.Set("Authorization", "Bearer "+cs.root)
				req.Header.Set("Content-Type", "application/json")
				res, err := cs.ts.Client().Do(req)
				if err != nil {
					errc <- err
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					errc <- fmt.Errorf("token for %s: %s", name, res.Status)
				}
			}
		}()
	}
	var first error
	for i := range n {
		select {
		case names <- fmt.Sprintf("node-%05d", i):
		case first = <-errc:
		}
		if first != nil {
			break
		}
	}
	close(names)
	wg.Wait()
	if first == nil && len(errc) > 0 {
		first = <-errc
	}
	if first != nil {
		t.Fatal(first)
	}
}

// seedEnrolledNodes enrolls n nodes (node-00000, ...) through the API, 16
// at a time, the i-th in zones[i%len(zones)], each as an agent does
// (enrollNode), and each reports over mutual TLS an inventory
// (nodeInventory) and the results of the built-in check policy on a
// fixture host (internal/compliance/assess/testdata: good-host for an even
// node, bad-host for an odd one). The store takes no change without its
// audit record, so there is no faster way in. It fails the test at the
// first error or when ctx ends.
func seedEnrolledNodes(t *testing.T, ctx context.Context, cs *consoleServer, n int, zones []string) {
	t.Helper()
	admin, err := client.New(client.Config{Address: cs.srv.Addr(), CACertFile: cs.srv.CAFile(), Token: cs.root})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.CloseIdleConnections()
	pol, err := assess.Parse(api.BuiltinPolicyName, assess.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var results [2]*client.AssessmentResults
	for i, host := range []string{"good-host", "bad-host"} {
		root, err := filepath.Abs(filepath.Join("..", "compliance", "assess", "testdata", host))
		if err != nil {
			t.Fatal(err)
		}
		r := &client.AssessmentResults{Policy: pol.Name, RanAt: now.UTC()}
		for _, res := range assess.Run(ctx, pol, assess.Env{Root: root}) {
			r.Results = append(r.Results, client.AssessmentResult(res))
		}
		results[i] = r
	}
	dir := t.TempDir()
	seed := func(ctx context.Context, i int) error {
		name := fmt.Sprintf("node-%05d", i)
		nc, err := enrollNode(ctx, cs, admin, name, zones[i%len(zones)], filepath.Join(dir, name))
		if err != nil {
			return err
		}
		defer nc.CloseIdleConnections()
		if st, err := nc.PostInventory(ctx, nodeInventory(name, now)); err != nil {
			return fmt.Errorf("inventory of %s: %w", name, err)
		} else if !st.Stored {
			return fmt.Errorf("inventory of %s: not stored: %+v", name, st)
		}
		if err := nc.PostAssessmentResults(ctx, results[i%2]); err != nil {
			return fmt.Errorf("results of %s: %w", name, err)
		}
		return nil
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range next {
				if err := seed(ctx, i); err != nil {
					cancel(err) // the first cause stays
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestGovernancePagesInChromium drives the policies, compliance, secrets
// and fleet pages against a real server: a policy's syntax error is shown
// at its line (selected in the editor), the decision API answers allow and
// deny with reasons, the compliance page shows the controls and the zones'
// levels and exports a signed report through a blob: download under the
// CSP, the secrets page lists metadata and shows a value only after
// "Reveal" and a confirmation, and the fleet pages by the server.
func TestGovernancePagesInChromium(t *testing.T) {
	cs := startConsoleServer(t)
	root := cs.root
	cs.call(t, "POST", "/v1/authz/stores", root, map[string]string{"name": "shop"}, 204)
	cs.call(t, "PUT", "/v1/authz/stores/shop/policies/refunds", root,
		map[string]string{"policy": `permit (principal == User::"bob", action == Action::"refund", resource);`}, 200)
	cs.call(t, "PUT", "/v1/kv/data/app/db", root, map[string]any{"data": map[string]string{"password": "s3cr3t-v1"}}, 200)
	cs.call(t, "PUT", "/v1/kv/data/app/db", root, map[string]any{"data": map[string]string{"password": "s3cr3t-v2"}}, 200)
	cs.call(t, "PUT", "/v1/kv/data/top", root, map[string]any{"data": map[string]string{"k": "v"}}, 200)
	cs.call(t, "POST", "/v1/transit/keys/orders", root, map[string]string{"type": "aes256-gcm96"}, 200)
	cs.call(t, "POST", "/v1/zones", root, map[string]any{"name": "dmz", "level": 2}, 200)
	seedNodes(t, cs, 250, "dmz")

	b := newBrowser(t, cs, root)

	// Policies: the stores, a store's policies, the decision API.
	b.goTo("#/policies")
	if got := b.Text("#policy-stores"); !strings.Contains(got, "warden") || !strings.Contains(got, "shop") {
		t.Errorf("stores: %q", got)
	}
	b.Do(chromedp.Click(`#policy-stores a[href="#/policies/shop"]`), chromedp.WaitReady(ready("policies")),
		chromedp.WaitReady("#policy-list"))
	if got := b.Text("#policy-list"); !strings.Contains(got, "refunds") {
		t.Errorf("policies: %q", got)
	}
	ask := func(principal string) {
		t.Helper()
		b.Do(chromedp.SetValue("#try-principal", principal), chromedp.SetValue("#try-action", `Action::"refund"`),
			chromedp.SetValue("#try-resource", `Order::"42"`), chromedp.SetValue("#try-context", `{"amount": 50}`),
			chromedp.Click(`#try-form button[type="submit"]`))
		b.Poll(`document.getElementById("try-decision") !== null`)
	}
	ask(`User::"bob"`)
	if d, r := b.Text("#try-decision"), b.Text("#try-reasons"); d != "allow" || !strings.Contains(r, "refunds") {
		t.Errorf("bob: %q by %q", d, r)
	}
	b.Eval(`document.getElementById("try-result").replaceChildren()`)
	ask(`User::"eve"`)
	if d := b.Text("#try-decision"); d != "deny" {
		t.Errorf("eve: %q", d)
	}

	// A policy: a syntax error on line 3 is shown and its line selected;
	// the fixed text saves as version 2.
	b.goTo("#/policies/shop/refunds")
	if v := b.Eval(`document.getElementById("policy-text").value`); !strings.Contains(v.(string), `User::"bob"`) {
		t.Errorf("editor: %q", v)
	}
	bad := "// refunds\npermit (principal, action, resource)\nwhen { context.amount < };\n"
	b.Eval(fmt.Sprintf(`document.getElementById("policy-text").value = %q`, bad))
	b.Do(chromedp.Click("#policy-save"))
	b.Poll(`document.getElementById("policy-status").classList.contains("error")`)
	if got := b.Text("#policy-status"); !strings.HasPrefix(got, "Line 3, column") {
		t.Errorf("status: %q", got)
	}
	sel := b.Eval(`(() => { const e = document.getElementById("policy-text");
		return [e.value.substring(e.selectionStart, e.selectionEnd), document.activeElement === e, e.getAttribute("aria-invalid")]; })()`)
	if s := sel.([]any); s[0] != "when { context.amount < };" || s[1] != true || s[2] != "true" {
		t.Errorf("selection: %q", s)
	}
	b.Eval(fmt.Sprintf(`document.getElementById("policy-text").value = %q`, "permit (principal == User::\"bob\", action, resource);\n"))
	b.Do(chromedp.Click("#policy-save"))
	b.Poll(`document.getElementById("policy-status").textContent === "Saved: version 2."`)

	// Compliance: IEC 62443-3-3, the zone's levels, the controls, and a
	// signed JSON report downloaded from a blob: URL.
	b.goTo("#/compliance/iec62443-3-3")
	if got := b.Text("#compliance-zones"); !strings.Contains(got, "dmz") {
		t.Errorf("zones: %q", got)
	}
	if n := b.Eval(`document.querySelectorAll("#compliance-controls tbody tr").length`); n.(float64) < 50 {
		t.Errorf("%v controls", n)
	}
	if got := b.Text("#compliance-summary"); !strings.Contains(got, "controls pass") {
		t.Errorf("summary: %q", got)
	}
	dir := t.TempDir()
	progress := chromedp.Events(b.ctx, browser.DownloadProgress)
	b.Do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: ptr(true)})
		return err
	}), chromedp.Click("#compliance-export-json"), chromedp.WaitReady("#compliance-download-json"))
	if href := b.Eval(`document.getElementById("compliance-download-json").href`); !strings.HasPrefix(href.(string), "blob:") {
		t.Errorf("download link %v", href)
	}
	b.Do(chromedp.Click("#compliance-download-json"))
	var file string
	for ev, err := range progress {
		if err != nil {
			t.Fatal(err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("the download was canceled")
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			file = filepath.Join(dir, ev.GUID)
			break
		}
	}
	rep, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var signedRep struct {
		Report    json.RawMessage `json:"report"`
		Signature json.RawMessage `json:"signature"`
	}
	if err := json.Unmarshal(rep, &signedRep); err != nil || len(signedRep.Report) == 0 || len(signedRep.Signature) == 0 {
		t.Errorf("downloaded report (%d bytes): %v", len(rep), err)
	}

	// Secrets: metadata, no value until revealed and confirmed.
	b.goTo("#/secrets")
	if got := b.Text("#kv-list"); !strings.Contains(got, "app/") || !strings.Contains(got, "top") {
		t.Errorf("kv: %q", got)
	}
	if got := b.Text("#transit-keys"); !strings.Contains(got, "orders") || !strings.Contains(got, "aes256-gcm96") {
		t.Errorf("transit: %q", got)
	}
	b.Do(chromedp.Click(`#kv-list a[href="#/secrets/kv/app"]`), chromedp.WaitReady(ready("secrets")), chromedp.WaitReady("#kv-list"))
	b.Do(chromedp.Click(`#kv-list a[href="#/secrets/secret/app/db"]`), chromedp.WaitReady(ready("secrets")), chromedp.WaitReady("#kv-versions"))
	noValue := func() {
		t.Helper()
		if v := b.Eval(`document.body.textContent.includes("s3cr3t")`); v != false {
			t.Error("a secret value is in the page before it was revealed")
		}
	}
	noValue()
	if n := b.Eval(`document.querySelectorAll("#kv-versions tbody tr").length`); n != 2.0 {
		t.Errorf("%v versions", n)
	}
	b.Do(chromedp.Click("#kv-reveal-1"), chromedp.WaitReady("#kv-reveal-cancel"), chromedp.Click("#kv-reveal-cancel"))
	noValue()
	b.Do(chromedp.Click("#kv-reveal-1"), chromedp.WaitReady("#kv-reveal-confirm"), chromedp.Click("#kv-reveal-confirm"),
		chromedp.WaitReady("#kv-data"))
	if got := b.Text("#kv-data"); !strings.Contains(got, "password") || !strings.Contains(got, "s3cr3t-v1") {
		t.Errorf("revealed: %q", got)
	}
	b.Do(chromedp.Click("#kv-hide"))
	noValue()

	// Fleet: 250 nodes, 100 a page, by the server.
	b.Eval(`performance.clearResourceTimings()`)
	b.goTo("#/fleet")
	rows := func() any { return b.Eval(`document.querySelectorAll("#fleet-table tbody tr").length`) }
	if n := rows(); n != 100.0 {
		t.Errorf("page 1: %v rows", n)
	}
	b.Do(chromedp.Click("#fleet-next"))
	b.Poll(`document.getElementById("fleet-info").textContent.startsWith("Page 2: nodes 101 to 200")`)
	b.Do(chromedp.Click("#fleet-next"))
	b.Poll(`document.getElementById("fleet-info").textContent === "Page 3: nodes 201 to 250"`)
	if n, dis := rows(), b.Eval(`document.getElementById("fleet-next").disabled`); n != 50.0 || dis != true {
		t.Errorf("page 3: %v rows, next disabled %v", n, dis)
	}
	b.Do(chromedp.Click("#fleet-prev"))
	b.Poll(`document.getElementById("fleet-info").textContent.startsWith("Page 2: nodes 101 to 200")`)
	if got := b.Text("#fleet-table tbody tr:first-child th"); got != "node-00100" {
		t.Errorf("page 2 starts at %q", got)
	}
	if v := b.Eval(`performance.getEntriesByType("resource").filter((e) => e.name.includes("/v1/nodes") && !e.name.includes("limit=")).map((e) => e.name)`); len(v.([]any)) != 0 {
		t.Errorf("requests for the whole fleet: %v", v)
	}
	// The policy with a syntax error: the browser logs the API's 400.
	b.finish("error: Failed to load resource: the server responded with a status of 400 (Bad Request)")
}

func ptr[T any](v T) *T { return &v }

// TestPagePerformance (with -perf) seeds 10,000 enrolled nodes in two
// zones, each with an inventory and assessment results, and 100,000
// alerts, evaluates compliance once, and logs, for each page, the time from navigation to its
// data-state="ready" and the bytes it transferred (the navigation entry and
// the resources of the Performance API), in a fresh tab each. It asserts
// nothing about time.
//
//	go test ./internal/console -run TestPagePerformance -perf -v
func TestPagePerformance(t *testing.T) {
	if !*perf {
		t.Log("run with -perf to seed and measure")
		return
	}
	// The compliance loop is off: its first evaluation would come a
	// minute after the start, in the middle of the measurements; one runs
	// below, once the seeding is done.
	cs := startConsoleServer(t)
	cs.call(t, "POST", "/v1/zones", cs.root, map[string]any{"name": "dmz", "level": 2}, 200)
	cs.call(t, "POST", "/v1/zones", cs.root, map[string]any{"name": "plant", "level": 3}, 200)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Second)
	defer cancel()
	start := time.Now()
	seedEnrolledNodes(t, ctx, cs, 10000, []string{"dmz", "plant"})
	t.Logf("seeded 10,000 enrolled nodes, each with an inventory and assessment results, in %v", time.Since(start).Round(time.Millisecond))
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Second)
	defer cancel()
	start = time.Now()
	now := time.Now().UTC().Truncate(time.Second)
	levels := []string{"low", "medium", "high", "critical"}
	for i := 0; i < 100000; {
		var hits []sigma.Hit
		for ; i < 100000 && len(hits) < 64; i++ {
			host := fmt.Sprintf("node-%05d", i%10000)
			hits = append(hits, sigma.Hit{Key: fmt.Sprintf("perf-%d", i),
				Rule:  &sigma.Rule{ID: fmt.Sprintf("rule-%d", i%50), Title: fmt.Sprintf("seeded rule %d", i%50), Level: levels[i%4]},
				Group: map[string]string{"host.name": host}, Count: 1, First: now, Last: now.Add(time.Duration(i) * time.Millisecond), Hosts: []string{host}})
		}
		if err := cs.srv.Alerts().RecordBatch(ctx, hits); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seeded 100,000 alerts in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if err := cs.srv.EvaluateCompliance(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("evaluated compliance (the overview's summary, the fleet's risk) in %v", time.Since(start).Round(time.Millisecond))

	b := newBrowser(t, cs, cs.root)
	const measure = `(() => {
		const nav = performance.getEntriesByType("navigation")[0];
		const res = performance.getEntriesByType("resource");
		const api = res.filter((e) => e.name.includes("/v1/")).map((e) => [new URL(e.name).pathname + new URL(e.name).search, Math.round(e.responseEnd - e.requestStart), e.transferSize]);
		const bytes = (nav ? nav.transferSize : 0) + res.reduce((s, e) => s + e.transferSize, 0);
		return {bytes, api};
	})()`
	inc := cs.call(t, "POST", "/v1/incidents", cs.root, map[string]string{"title": "seeded incident", "severity": "high"}, 200)
	al := cs.call(t, "GET", "/v1/alerts?limit=1", cs.root, nil, 200)["alerts"].([]any)[0].(map[string]any)
	for _, page := range []string{"overview", "fleet", "zones", "node/node-00042", "alerts", "alert/" + al["id"].(string),
		"incidents", "incident/" + inc["id"].(string), "decisions", "playbooks", "policies", "compliance", "secrets", "audit", "account"} {
		// A fresh load of the page's address: the shell asks to log in
		// (the token is memory only), then the page renders.
		b.Do(chromedp.Navigate("about:blank"), chromedp.Navigate(cs.ts.URL+"/ui/#/"+page), chromedp.WaitReady(ready("login")),
			chromedp.SendKeys("#login-token", cs.root))
		b.Eval(`window.wardenT0 = performance.now()`)
		b.Do(chromedp.Click(`#login-token-form button[type="submit"]`), chromedp.WaitReady(ready(strings.Split(page, "/")[0])))
		ms := b.Eval(`Math.round(performance.now() - window.wardenT0)`)
		m := b.Eval(measure).(map[string]any)
		t.Logf("%-16s ready %v ms after the login, %v bytes transferred (page load included); API calls [path, ms, bytes]: %v",
			page, ms, m["bytes"], m["api"])
	}
	// The secrets page lists an empty KV: a 404 (as Vault answers), which
	// the page shows as "no secrets" and Chromium logs.
	b.finish("error: Failed to load resource: the server responded with a status of 404 (Not Found)")
}
