package console_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/warden-sec/warden/internal/agent"
	"github.com/warden-sec/warden/internal/agent/config"
	"github.com/warden-sec/warden/internal/browsertest"
	"github.com/warden-sec/warden/internal/sigma"
	"github.com/warden-sec/warden/pkg/client"
)

// The attacker of the response test, and a user name holding markup that
// the alert page must show as text.
const (
	respAttacker = "203.0.113.7"
	respUser     = `<script>window.wardenPwned=3</script>`
)

// respAgent enrolls node web-1 with a join token and runs a real agent in
// this process (agent.Daemon, enforcing nothing: the test runs in the
// host's namespace) that tails the returned auth.log with the sshd parser,
// as the built-in SSH rules expect.
func respAgent(t *testing.T, ctx context.Context, cs *consoleServer) string {
	t.Helper()
	c, err := client.New(client.Config{Address: cs.srv.Addr(), CACertFile: cs.srv.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(cs.root)
	builtin, err := sigma.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range builtin {
		if _, err := c.RulePut(ctx, r.ID, r.Source); err != nil {
			t.Fatalf("rule %s: %v", r.ID, err)
		}
	}
	tok, err := c.NodeTokenCreate(ctx, client.NodeTokenRequest{Name: "web-1"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := agent.Enroll(ctx, agent.Config{Client: c, JoinToken: tok.Token, DataDir: dir}); err != nil {
		t.Fatal(err)
	}
	authLog := filepath.Join(t.TempDir(), "auth.log")
	if err := os.WriteFile(authLog, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "agent.yml")
	cfg := fmt.Sprintf("server: %s\nca_cert: %s\ndata_dir: %s\nenforce: none\nsources:\n  - {type: file, path: %s, parser: sshd}\n",
		cs.srv.Addr(), cs.srv.CAFile(), dir, authLog)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	dctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- agent.Daemon(dctx, agent.DaemonConfig{Load: func() (*config.Config, error) { return config.Load(cfgFile) }})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	return authLog
}

// TestResponseInChromium: a real agent tails an auth.log; with the alerts
// page open, the test writes an SSH brute force into the log and the alert
// appears on the page live (no reload). From the alert (whose events, one
// holding a script in its user name, show as text) it bans the source
// after a confirmation that shows the exact request, and sees the decision
// the server made, on the decisions page too; it checks the quarantine's
// request and cancels it; it opens an incident from the alert, downloads
// its report, and closes it on the incident page. The decisions and
// playbooks pages load, the built-in playbook is installed and put in
// simulate mode. No console errors, no script of the data runs.
func TestResponseInChromium(t *testing.T) {
	cs := startConsoleServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	authLog := respAgent(t, ctx, cs)

	downloads := t.TempDir()
	br := browsertest.Start(t, ctx, 1280, 800)
	bctx := br.Ctx
	events := true
	if _, err := chromedp.CallBrowser(bctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: &events}); err != nil {
		t.Fatal(err)
	}
	downloaded := make(chan string, 1)
	progress := chromedp.BrowserEvents(bctx, browser.DownloadProgress)
	go func() {
		for e, err := range progress {
			if err != nil {
				return
			}
			if e.State == browser.DownloadProgressStateCompleted {
				downloaded <- e.GUID
				return
			}
		}
	}()

	ready := func(page string) string {
		return fmt.Sprintf(`section[data-page=%q][data-state="ready"]`, page)
	}
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	visit := func(hash string) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Evaluate[any](`location.hash = "`+hash+`"`)); err != nil {
			t.Fatalf("%s: %v", hash, err)
		}
	}
	poll := func(js string) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(60*time.Second))); err != nil {
			t.Fatalf("waiting for %s: %v", js, err)
		}
	}

	// Log in with the root token; open the alerts page and wait for its
	// stream.
	do("login", chromedp.Navigate(cs.ts.URL+"/ui/"), chromedp.WaitReady(ready("login")),
		chromedp.SendKeys("#login-token", cs.root), chromedp.Click(`#login-token-form button[type="submit"]`),
		chromedp.WaitReady(ready("overview")))
	visit("#/alerts")
	do("alerts", chromedp.WaitReady(ready("alerts")),
		chromedp.WaitReady(`#alerts-live[data-live="on"]`))
	if got := text("#alerts-table"); strings.Contains(got, "SSH brute force") {
		t.Fatalf("a brute force before the attack: %q", got)
	}

	// The brute force: twelve failed logins from one address within a
	// minute, written into the tailed log.
	f, err := os.OpenFile(authLog, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-30 * time.Second)
	for i := range 12 {
		ts := base.Add(time.Duration(i) * time.Second).Local().Format(time.Stamp)
		if _, err := fmt.Fprintf(f, "%s web-1 sshd[%d]: Failed password for invalid user %s from %s port %d ssh2\n",
			ts, 4000+i, respUser, respAttacker, 50000+i); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// The alert arrives on the open page, through the stream.
	poll(`[...document.querySelectorAll('#alerts-table tbody tr[data-live="true"]')].some((r) => r.textContent.includes("SSH brute force"))`)
	if n, err := chromedp.Run(bctx, chromedp.Evaluate[float64](`performance.getEntriesByType("navigation").length`)); err != nil || n != 1 {
		t.Errorf("the page was reloaded: %v navigations, %v", n, err)
	}
	do("open the alert", chromedp.Click(`#alerts-table tbody tr[data-live="true"] a`), chromedp.WaitReady(ready("alert")))
	if got := text("#alert-record"); !strings.Contains(got, "source.ip="+respAttacker) || !strings.Contains(got, "web-1") {
		t.Errorf("alert record: %q", got)
	}
	if got := text("#alert-events"); !strings.Contains(got, respUser) || !strings.Contains(got, "Failed password") {
		t.Errorf("the events are not shown as text: %q", got)
	}

	// Ban the source: the dialog shows the exact request; confirmed, the
	// page shows the decision the server made.
	do("ban", chromedp.Click("#alert-ban"), chromedp.WaitVisible("#confirm-decision[open]"))
	if got := text("#confirm-decision-request"); !strings.HasPrefix(got, "POST /v1/decisions") ||
		!strings.Contains(got, `"type": "ban"`) || !strings.Contains(got, `"ip": "`+respAttacker+`"`) || !strings.Contains(got, `"duration": "1h"`) {
		t.Errorf("ban request shown: %q", got)
	}
	do("confirm the ban", chromedp.Click("#confirm-decision-confirm"), chromedp.WaitReady("#alert-made a.made-id"))
	made := text("#alert-made")
	decID := text("#alert-made a.made-id")
	if !strings.HasPrefix(decID, "dec-") || !strings.Contains(made, "ban of ip "+respAttacker) || !strings.Contains(made, "until 20") {
		t.Errorf("decision shown: %q", made)
	}
	d := cs.call(t, "GET", "/v1/decisions/"+decID, cs.root, nil, 200)
	if tgt, _ := d["target"].(map[string]any); tgt["ip"] != respAttacker || d["alert_id"] == "" {
		t.Errorf("stored decision: %v", d)
	}

	// The quarantine's request names the alert's host; cancelled, nothing
	// is made.
	do("quarantine", chromedp.Click("#alert-quarantine"), chromedp.WaitVisible("#confirm-decision[open]"))
	if got := text("#confirm-decision-request"); !strings.Contains(got, `"type": "quarantine"`) || !strings.Contains(got, `"node": "web-1"`) {
		t.Errorf("quarantine request shown: %q", got)
	}
	do("cancel", chromedp.Click("#confirm-decision-cancel"), chromedp.WaitNotPresent("#confirm-decision"))
	if ds := cs.call(t, "GET", "/v1/decisions", cs.root, nil, 200); len(ds["decisions"].([]any)) != 1 {
		t.Errorf("decisions after a cancelled quarantine: %v", ds)
	}

	// Acknowledge with a comment.
	do("ack", chromedp.SendKeys("#alert-comment", "looking"), chromedp.Click("#alert-ack"))
	poll(`document.getElementById("alert-status").textContent === "acknowledged"`)

	// Open an incident with the alert.
	do("incident", chromedp.Click("#alert-incident"), chromedp.WaitVisible("#confirm-incident[open]"))
	if got := text("#confirm-incident-request"); !strings.HasPrefix(got, "POST /v1/incidents") || !strings.Contains(got, `"alerts": [`) {
		t.Errorf("incident request shown: %q", got)
	}
	do("confirm the incident", chromedp.Click("#confirm-incident-confirm"), chromedp.WaitReady(`#alert-made a.made-id[href^="#/incident/"]`),
		chromedp.Click("#alert-made a.made-id"), chromedp.WaitReady(ready("incident")))
	if got := text("#incident-timeline-table"); !strings.Contains(got, "created") || !strings.Contains(got, "alert") {
		t.Errorf("timeline: %q", got)
	}

	// The report, saved by the browser from an object URL under the CSP.
	do("report", chromedp.Click("#incident-report-json"), chromedp.WaitReady("#incident-report-link"), chromedp.Click("#incident-report-link"))
	select {
	case guid := <-downloaded:
		b, err := os.ReadFile(filepath.Join(downloads, guid))
		if err != nil || !strings.Contains(string(b), `"format": "warden-incident-report/1"`) {
			t.Errorf("downloaded report: %v %.200s", err, b)
		}
	case <-ctx.Done():
		t.Fatal("the report was not downloaded")
	}

	// Close it.
	do("close", chromedp.SendKeys("#incident-comment", "banned, host checked"), chromedp.Click("#incident-close"))
	poll(`document.getElementById("incident-status").textContent === "closed"`)
	if got := text("#incident-timeline-table"); !strings.Contains(got, "banned, host checked") {
		t.Errorf("timeline after closing: %q", got)
	}

	// The incidents list; the decisions page with the ban; the playbooks.
	visit("#/incidents")
	do("incidents", chromedp.WaitReady(ready("incidents")),
		chromedp.SetValue("#incidents-status", "closed"), chromedp.Click(`#incidents-filter button[type="submit"]`))
	poll(`document.getElementById("incidents-info").textContent === "1 incidents"`)
	visit("#/decisions/" + decID)
	do("decisions", chromedp.WaitReady(ready("decisions")))
	if got := text("#decision-one"); !strings.Contains(got, respAttacker) {
		t.Errorf("decision: %q", got)
	}
	if got := text("#decisions-table"); !strings.Contains(got, decID) {
		t.Errorf("decisions table: %q", got)
	}
	do("never-block", chromedp.SendKeys("#allow-value", "192.0.2.0/24"), chromedp.SendKeys("#allow-reason", "office"),
		chromedp.Click(`#allow-add button[type="submit"]`))
	poll(`document.getElementById("allow-table").textContent.includes("192.0.2.0/24")`)
	visit("#/playbooks")
	do("playbooks", chromedp.WaitReady(ready("playbooks")),
		chromedp.Click("#playbooks-builtin"), chromedp.WaitVisible("#confirm-playbook[open]"), chromedp.Click("#confirm-playbook-confirm"),
		chromedp.WaitReady(`#playbooks-table tr[data-name="ssh-brute-force"] .playbook-simulate`),
		chromedp.Click(`#playbooks-table tr[data-name="ssh-brute-force"] .playbook-simulate`), chromedp.WaitVisible("#confirm-playbook[open]"))
	if got := text("#confirm-playbook-request"); !strings.Contains(got, `mode: simulate`) {
		t.Errorf("simulate request: %q", got)
	}
	do("simulate", chromedp.Click("#confirm-playbook-confirm"),
		chromedp.WaitReady(`#playbooks-table tr[data-name="ssh-brute-force"] .playbook-enforce`))
	poll(`document.getElementById("playbook-yaml").textContent.includes("\nmode: simulate\n")`)

	if v, err := chromedp.Run(bctx, chromedp.Evaluate[any](`typeof window.wardenPwned`)); err != nil || v != "undefined" {
		t.Errorf("a script of the data ran: %v %v", v, err)
	}
	problems := browsertest.Problems(br.Messages(t))
	if len(problems) > 0 {
		t.Fatalf("the console ran with problems: %q", problems)
	}
}
