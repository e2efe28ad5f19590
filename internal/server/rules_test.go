package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/detect"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/sigma"
)

const ruleFailedLogin = `title: Failed SSH login
id: failed-login
status: test
logsource:
  product: linux
  service: sshd
detection:
  selection:
    event.outcome: failure
  condition: selection
level: low
`

const ruleBrute = `title: SSH brute force
id: brute
correlation:
  type: event_count
  rules:
    - failed-login
  group-by:
    - source.ip
  timespan: 1m
  condition:
    gte: 10
level: high
`

// putYAML sends a rule as raw YAML.
func (h *harness) putYAML(path, token, yaml string) resp {
	h.t.Helper()
	req, err := http.NewRequest("PUT", h.srv.Addr()+path, strings.NewReader(yaml))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/yaml")
	res, err := h.http.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, body: b, header: res.Header}
}

// TestRulesAPI: rules are stored by id and versioned; a rule that does
// not parse, uses an unsupported feature, or names a rule that does not
// exist is refused with 400 naming the id, the line and the feature, and
// nothing is stored; a rule a correlation names cannot be deleted; the
// runtime's view (All, Watch) follows every change.
func TestRulesAPI(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	versions := make(chan uint64, 64)
	go h.srv.Rules().Watch(ctx, 20*time.Millisecond, func(v uint64) { versions <- v })
	nextVersion := func(want uint64) {
		t.Helper()
		for {
			select {
			case v := <-versions:
				if v == want {
					return
				}
				if v > want {
					t.Fatalf("watch saw version %d, want %d", v, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("watch did not see version %d", want)
			}
		}
	}
	nextVersion(0)
	changed := h.srv.Rules().Changes(ctx, 20*time.Millisecond)
	<-changed // the first version

	// A correlation naming a rule not stored yet is refused.
	r := h.want(h.putYAML("/v1/rules/brute", root, ruleBrute), 400)
	if msg := r.errorText(t); !strings.Contains(msg, "brute") || !strings.Contains(msg, "failed-login") {
		t.Fatalf("refusal: %s", msg)
	}
	rec := h.want(h.putYAML("/v1/rules/failed-login", root, ruleFailedLogin), 200).json(t)
	if rec["version"] != float64(1) || rec["kind"] != "detection" || rec["level"] != "low" || rec["title"] != "Failed SSH login" {
		t.Fatalf("put: %v", rec)
	}
	nextVersion(1)
	// JSON {"yaml": ...} is accepted too; a put of the same id is its next version.
	rec = h.want(h.do("PUT", "/v1/rules/failed-login", root, map[string]string{"yaml": ruleFailedLogin}), 200).json(t)
	if rec["version"] != float64(2) {
		t.Fatalf("second put: %v", rec)
	}
	rec = h.want(h.putYAML("/v1/rules/brute", root, ruleBrute), 200).json(t)
	if rec["kind"] != "correlation" || rec["version"] != float64(1) {
		t.Fatalf("correlation: %v", rec)
	}
	nextVersion(3)
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("Changes did not signal the new rules")
	}

	bad := []struct {
		name, id, yaml string
		want           []string
	}{
		{"unsupported modifier", "bad-mod", strings.Replace(ruleFailedLogin, "id: failed-login", "id: bad-mod", 1) + "",
			nil},
		{"id mismatch", "other", ruleFailedLogin, []string{"other", "failed-login"}},
		{"not yaml", "junk", "title: [unclosed\n", []string{"junk"}},
		{"two rules", "failed-login", ruleFailedLogin + "---\n" + ruleBrute, []string{"2 rules"}},
	}
	bad[0].yaml = strings.Replace(bad[0].yaml, "event.outcome: failure", "event.outcome|windows-foo: failure", 1)
	bad[0].want = []string{"bad-mod:9", `modifier "windows-foo"`}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			r := h.want(h.putYAML("/v1/rules/"+tc.id, root, tc.yaml), 400)
			msg := r.errorText(t)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("refusal %q does not name %q", msg, w)
				}
			}
		})
	}
	h.want(h.do("GET", "/v1/rules/bad-mod", root, nil), 404)

	list := h.want(h.do("GET", "/v1/rules", root, nil), 200)
	var out struct {
		Rules   []detect.RuleRecord `json:"rules"`
		Version uint64              `json:"version"`
	}
	if err := json.Unmarshal(list.body, &out); err != nil || len(out.Rules) != 2 || out.Version != 3 ||
		out.Rules[0].ID != "brute" || out.Rules[1].ID != "failed-login" || out.Rules[1].YAML != "" {
		t.Fatalf("list: %s", list.body)
	}
	show := h.want(h.do("GET", "/v1/rules/failed-login", root, nil), 200).json(t)
	if show["yaml"] != ruleFailedLogin || show["version"] != float64(2) {
		t.Fatalf("show: %v", show)
	}
	rules, v, err := h.srv.Rules().All(context.Background())
	if err != nil || len(rules) != 2 || v != 3 {
		t.Fatalf("All: %d rules, version %d, %v", len(rules), v, err)
	}

	// failed-login is named by brute: it cannot go first.
	if msg := h.want(h.do("DELETE", "/v1/rules/failed-login", root, nil), 409).errorText(t); !strings.Contains(msg, "failed-login") {
		t.Fatalf("delete refusal: %s", msg)
	}
	h.want(h.do("DELETE", "/v1/rules/brute", root, nil), 204)
	h.want(h.do("DELETE", "/v1/rules/failed-login", root, nil), 204)
	h.want(h.do("DELETE", "/v1/rules/failed-login", root, nil), 404)
	nextVersion(5)

	// Placeholders are part of the set.
	h.want(h.do("PUT", "/v1/placeholders", root, map[string]any{"placeholders": map[string][]string{"admins": {"root", "admin"}}}), 200)
	p := h.want(h.do("GET", "/v1/placeholders", root, nil), 200)
	if !bytes.Contains(p.body, []byte(`"admins":["root","admin"]`)) {
		t.Fatalf("placeholders: %s", p.body)
	}
	nextVersion(6)
}

// TestRulesMapping: operators extend the Sigma mapping in the cluster; a
// mapping that does not parse is refused naming its line; the rules are
// compiled with the extension (a custom log source and field then match).
func TestRulesMapping(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	ctx := context.Background()
	rule := `title: ACME client from the test range
id: 5d6c1f2e-0a41-4b7e-9a55-0c1d2e3f4a5b
logsource: {product: acme, service: app}
detection:
  selection:
    clientip|cidr: 203.0.113.0/24
  condition: selection
level: high
`
	h.want(h.do("PUT", "/v1/rules/5d6c1f2e-0a41-4b7e-9a55-0c1d2e3f4a5b", root, map[string]string{"yaml": rule}), 200)
	ev := events.Event{"event.dataset": "json", "source.ip": "203.0.113.9", "host.name": "web-1"}
	matches := func() int {
		t.Helper()
		rules, cfg, _, err := h.srv.Rules().Set(ctx)
		if err != nil {
			t.Fatal(err)
		}
		set, err := sigma.Compile(rules, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return len(set.Match(ev, nil))
	}
	if n := matches(); n != 0 {
		t.Fatalf("%d matches before the mapping, want 0", n)
	}
	r := h.want(h.do("PUT", "/v1/mapping", root, map[string]string{"yaml": "fields:\n  clientip: [source.ip]\n"}), 400)
	if msg := r.errorText(t); !strings.Contains(msg, "mapping:2") {
		t.Fatalf("refusal %q does not name the line", msg)
	}
	ext := "logsources:\n  - {product: acme, service: app, datasets: [json]}\nfields:\n  clientip: source.ip\n"
	h.want(h.do("PUT", "/v1/mapping", root, map[string]string{"yaml": ext}), 200)
	if got := h.want(h.do("GET", "/v1/mapping", root, nil), 200).json(t)["yaml"]; got != ext {
		t.Fatalf("GET /v1/mapping: %q", got)
	}
	if n := matches(); n != 1 {
		t.Fatalf("%d matches with the mapping, want 1", n)
	}
}
