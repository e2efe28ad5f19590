// Package browsertest starts Debian's Chromium for tests, driven with
// chromedp, and collects what the pages write to the console. Only tests
// import it.
package browsertest

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// endMark is what a page logs last: every console message before it has
// been collected (DevTools delivers a page's events in order).
const endMark = "warden-browsertest-end"

// Path returns Chromium's binary (installed by .ci/run), or fails the test.
func Path(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH (apt-get install chromium; .ci/run installs it)")
	return ""
}

// Browser is a headless Chromium tab whose console messages are collected
// from its start.
type Browser struct {
	// Ctx runs chromedp actions in the tab.
	Ctx  context.Context
	t    testing.TB
	msgs chan []string
}

// Start opens a headless Chromium window of width×height (a profile in a
// temporary directory, certificate errors ignored: tests serve
// self-signed TLS), on about:blank, with opts added to the defaults. The
// browser ends with the test.
func Start(t testing.TB, parent context.Context, width, height int, opts ...chromedp.ExecAllocatorOption) *Browser {
	t.Helper()
	all := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(Path(t)), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(width, height), chromedp.UserDataDir(t.TempDir()))
	all = append(all, opts...)
	actx, acancel := chromedp.NewExecAllocator(parent, all...)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() { bcancel(); acancel() })
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(int64(width), int64(height)), chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	b := &Browser{Ctx: bctx, t: t, msgs: make(chan []string, 1)}
	go func() {
		var seen []string
		for m, err := range chromedp.Console(bctx) {
			if err != nil {
				seen = append(seen, "console: "+err.Error())
				break
			}
			if m.Text == endMark {
				break
			}
			seen = append(seen, string(m.Type)+": "+m.Text)
		}
		b.msgs <- seen
	}()
	return b
}

// Messages ends the collection and returns every console message the
// tab's pages wrote, as "type: text". Call it once, after the test's
// pages ran.
func (b *Browser) Messages(t testing.TB) []string {
	t.Helper()
	if _, err := chromedp.Run(b.Ctx, chromedp.Evaluate[any](`console.log("`+endMark+`")`)); err != nil {
		t.Fatal(err)
	}
	return <-b.msgs
}

// Problems returns the messages that are not log, info or debug: errors
// (a CSP violation among them), warnings and exceptions.
func Problems(msgs []string) []string {
	var out []string
	for _, m := range msgs {
		if !strings.HasPrefix(m, "log: ") && !strings.HasPrefix(m, "info: ") && !strings.HasPrefix(m, "debug: ") {
			out = append(out, m)
		}
	}
	return out
}

// Do runs actions in the tab, failing the test on an error.
func (b *Browser) Do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.Ctx, actions...); err != nil {
		b.t.Fatal(err)
	}
}

// Eval evaluates js in the page and returns its value.
func (b *Browser) Eval(js string) any {
	b.t.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.Evaluate[any](js))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// Text returns the text of the first element sel selects.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.Ctx, chromedp.Text(sel))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// PollTimeout bounds Poll.
const PollTimeout = 30 * time.Second

// Poll waits until js is true in the page (at most PollTimeout).
func (b *Browser) Poll(js string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.Ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(PollTimeout))); err != nil {
		b.t.Fatalf("waiting for %s: %v", js, err)
	}
}
