package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/warden-sec/warden/internal/browsertest"
	"github.com/warden-sec/warden/internal/console"
	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/internal/server/servertest"
	"github.com/warden-sec/warden/internal/sigma"
)

var screenshot = flag.Bool("screenshot", false, "write the pages' screenshots to docs/img/console-<page>.png")

const (
	userName = "alice"
	userPass = "console-test-passphrase-7"
	// The seeded texts that hold HTML: shown as text, they run nothing
	// (the canary window.wardenPwned stays undefined).
	scriptTitle   = `<script>window.wardenPwned=1</script> ssh brute force`
	incidentTitle = `<img src=x onerror="window.wardenPwned=2"> incident`
)

// consoleServer is a real Warden server, initialized and unsealed, and a
// TLS listener that serves the console under /ui/ and everything else with
// the server's own API handler (the same handler, policies and audit log
// as its listener). The production wiring of /ui/ is the API's route
// table; the test mounts the console itself to stay independent of it.
type consoleServer struct {
	srv  *server.Server
	ts   *httptest.Server
	root string
}

func startConsoleServer(t *testing.T) *consoleServer {
	t.Helper()
	return newConsoleServer(t, nil)
}

func newConsoleServer(t *testing.T, mod func(*server.Config)) *consoleServer {
	t.Helper()
	srv, root := servertest.Running(t, mod)
	ts := httptest.NewTLSServer(consoleMux(srv))
	t.Cleanup(ts.Close)
	return &consoleServer{srv: srv, ts: ts, root: root}
}

// consoleMux sends /ui/ to the console and everything else to srv's API.
func consoleMux(srv *server.Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, console.Handler())
	mux.Handle("/", srv.API())
	return mux
}

// call sends a JSON request with token and decodes a JSON answer into a
// map; a status other than want fails the test.
func (c *consoleServer) call(t *testing.T, method, path, token string, body any, want int) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	m := map[string]any{}
	if len(b) > 0 {
		_ = json.Unmarshal(b, &m)
	}
	return m
}

// seed makes what the pages show: a policy for the admins group, the user
// alice in it with TOTP enrolled (returned: its secret), a zone, two
// nodes, an incident and 61 open alerts (one high, whose rule title holds
// a script).
func (c *consoleServer) seed(t *testing.T) string {
	t.Helper()
	c.call(t, "PUT", "/v1/authz/stores/warden/policies/console-admins", c.root,
		map[string]string{"policy": `permit (principal in Group::"admins", action, resource);`}, 200)
	c.call(t, "POST", "/v1/users", c.root, map[string]any{"name": userName, "groups": []string{"admins"}, "password": userPass}, 200)
	sess := c.call(t, "POST", "/v1/auth/login", "", map[string]string{"user": userName, "password": userPass}, 200)
	tok, _ := sess["token"].(string)
	enr := c.call(t, "POST", "/v1/users/"+userName+"/mfa/totp", tok, nil, 200)
	secret, _ := enr["secret"].(string)
	// The previous step's code (within the accepted skew): the login's
	// code, of the current step, is then one the server has not seen.
	code, err := totp.GenerateCode(secret, time.Now().Add(-30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	c.call(t, "POST", "/v1/users/"+userName+"/mfa/totp/confirm", tok, map[string]string{"code": code}, 200)

	c.call(t, "POST", "/v1/zones", c.root, map[string]any{"name": "dmz", "level": 2}, 200)
	c.call(t, "POST", "/v1/nodes/tokens", c.root, map[string]string{"name": "web-1", "zone": "dmz"}, 200)
	c.call(t, "POST", "/v1/nodes/tokens", c.root, map[string]string{"name": "db-1", "zone": "dmz"}, 200)
	c.call(t, "POST", "/v1/incidents", c.root, map[string]string{"title": incidentTitle, "severity": "high"}, 200)

	now := time.Now().UTC().Truncate(time.Second)
	hit := func(i int, level, title string) sigma.Hit {
		host := fmt.Sprintf("web-%d", i)
		return sigma.Hit{Key: fmt.Sprintf("seed-%d", i), Rule: &sigma.Rule{ID: fmt.Sprintf("rule-%d", i%3), Title: title, Level: level},
			Group: map[string]string{"host.name": host}, Count: 1, First: now, Last: now.Add(time.Duration(i) * time.Second), Hosts: []string{host}}
	}
	var hits []sigma.Hit
	for i := range 60 {
		hits = append(hits, hit(i, "low", "seeded low alert"))
	}
	hits = append(hits, hit(60, "high", scriptTitle))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.srv.Alerts().RecordBatch(ctx, hits); err != nil {
		t.Fatal(err)
	}
	return secret
}

// TestConsoleInChromium drives the console in headless Chromium against a
// real server with seeded data: it logs in with a password and a TOTP
// code, sees the overview, the fleet, a node and the alerts (filtered and
// paged by the server), finds the seeded HTML shown as text with no script
// run, and ends with no console error and no CSP violation on any page. At
// 390 px wide no page scrolls sideways.
func TestConsoleInChromium(t *testing.T) {
	cs := startConsoleServer(t)
	secret := cs.seed(t)

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	br := browsertest.Start(t, ctx, 1280, 800)
	bctx := br.Ctx

	ready := func(page string) string {
		return fmt.Sprintf(`section[data-page=%q][data-state="ready"]`, page)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	eval := func(js string) any {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[any](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	poll := func(js string) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
			t.Fatalf("waiting for %s: %v", js, err)
		}
	}

	// Login: the password alone asks for the code; with the code, in.
	if err := chromedp.Do(bctx, chromedp.Navigate(cs.ts.URL+"/ui/"), chromedp.WaitReady(ready("login"))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.SendKeys("#login-user", userName), chromedp.SendKeys("#login-password", userPass),
		chromedp.Click(`#login-password-form button[type="submit"]`)); err != nil {
		t.Fatal(err)
	}
	poll(`document.getElementById("login-status").textContent.includes("second factor is required")`)
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.SendKeys("#login-totp", code),
		chromedp.Click(`#login-password-form button[type="submit"]`), chromedp.WaitReady(ready("overview"))); err != nil {
		t.Fatal(err)
	}
	if got := text("#whoami"); got != userName {
		t.Errorf("whoami %q", got)
	}
	if got := text("#ov-nodes"); !strings.Contains(got, "2 nodes") || !strings.Contains(got, "dmz") {
		t.Errorf("nodes card: %q", got)
	}
	if got := text("#ov-alerts"); !strings.Contains(got, "high\t1") && !strings.Contains(got, "high 1") {
		t.Errorf("alerts card: %q", got)
	}
	if got := text("#ov-incidents"); !strings.Contains(got, incidentTitle) {
		t.Errorf("incidents card does not show the title as text: %q", got)
	}
	if got := text("#ov-health"); !strings.Contains(got, "unsealed") || !strings.Contains(got, "Leader") || !strings.Contains(got, "1 (1 voting)") {
		t.Errorf("health card: %q", got)
	}
	if got := text("#ov-audit"); !strings.Contains(got, "records") || strings.Contains(got, "?") || !strings.Contains(got, "Last witnessed") {
		t.Errorf("audit card: %q", got)
	}
	if got := text("#ov-compliance"); !strings.Contains(got, "ISO/IEC 27001") || !strings.Contains(got, "IEC 62443-3-3") {
		t.Errorf("compliance card: %q", got)
	}

	// Fleet, reached through the nav (a link, so the keyboard reaches it).
	if err := chromedp.Do(bctx, chromedp.Click(`nav a[href="#/fleet"]`), chromedp.WaitReady(ready("fleet"))); err != nil {
		t.Fatal(err)
	}
	if got := text("#fleet-table"); !strings.Contains(got, "web-1") || !strings.Contains(got, "db-1") {
		t.Errorf("fleet: %q", got)
	}
	if cur := eval(`document.querySelector('nav a[aria-current="page"]').textContent`); cur != "Fleet" {
		t.Errorf("current nav entry %v", cur)
	}

	// A node's page.
	if err := chromedp.Do(bctx, chromedp.Click(`#fleet-table a[href="#/node/web-1"]`), chromedp.WaitReady(ready("node"))); err != nil {
		t.Fatal(err)
	}
	if got := text(ready("node")); !strings.Contains(got, "Node web-1") || !strings.Contains(got, "spiffe://") ||
		!strings.Contains(got, "it has sent no inventory") {
		t.Errorf("node page: %q", got)
	}

	// Alerts: open ones, 50 a page; the server's next page; the level filter.
	if err := chromedp.Do(bctx, chromedp.Click(`nav a[href="#/alerts"]`), chromedp.WaitReady(ready("alerts"))); err != nil {
		t.Fatal(err)
	}
	if n := eval(`document.querySelectorAll("#alerts-table tbody tr").length`); n != 50.0 {
		t.Errorf("first page: %v rows, want 50", n)
	}
	if err := chromedp.Do(bctx, chromedp.Click("#alerts-next")); err != nil {
		t.Fatal(err)
	}
	poll(`document.getElementById("alerts-info").textContent.startsWith("Page 2: 11 alerts")`)
	if err := chromedp.Do(bctx, chromedp.SetValue("#alerts-level", "high"), chromedp.Click(`#alerts-filter button[type="submit"]`)); err != nil {
		t.Fatal(err)
	}
	poll(`document.getElementById("alerts-info").textContent === "Page 1: 1 alerts"`)
	if got := text("#alerts-table tbody"); !strings.Contains(got, scriptTitle) {
		t.Errorf("the high alert's rule title is not shown as text: %q", got)
	}

	// No seeded markup became an element, and no script of it ran.
	if v := eval(`typeof window.wardenPwned`); v != "undefined" {
		t.Errorf("a seeded script ran: window.wardenPwned is %v", v)
	}
	if n := eval(`document.querySelectorAll("main script, main img").length`); n != 0.0 {
		t.Errorf("%v seeded elements in the page", n)
	}

	// Phone width: no page scrolls sideways.
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(390, 800)); err != nil {
		t.Fatal(err)
	}
	for _, page := range []string{"overview", "fleet", "zones", "node/web-1", "alerts"} {
		if _, err := chromedp.Run(bctx, chromedp.Evaluate[any](`location.hash = "#/`+page+`"`)); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(bctx, chromedp.WaitReady(ready(strings.Split(page, "/")[0]))); err != nil {
			t.Fatal(err)
		}
		if w := eval(`document.documentElement.scrollWidth`); w.(float64) > 390 {
			t.Errorf("%s at 390 px: the page is %v px wide", page, w)
		}
	}

	problems := browsertest.Problems(br.Messages(t))
	if len(problems) > 0 {
		t.Fatalf("the console ran with problems: %q", problems)
	}
}
