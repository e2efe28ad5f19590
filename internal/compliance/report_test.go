package compliance

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/compliance/signed"
)

func signedReport(t testing.TB, ca *testCA, edit func(*Report)) []byte {
	t.Helper()
	r, err := Evaluate(seededState(t), IEC62443, "")
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(r)
	}
	doc, err := SignReport(r, ca.server, ca.chain)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestSignVerifyRoundTrip(t *testing.T) {
	ca := newTestCA(t, "cluster")
	doc := signedReport(t, ca, nil)
	r, steps, err := VerifyDocument(doc, ca.pool())
	if err != nil {
		t.Fatalf("%v after %v", err, steps)
	}
	if len(steps) != 6 {
		t.Errorf("steps %q", steps)
	}
	for i, prefix := range []string{"document:", "signature:", "report:", "checkpoint:", "evidence:", "citations:"} {
		if !strings.HasPrefix(steps[i], prefix) {
			t.Errorf("step %d %q, want %s", i, steps[i], prefix)
		}
	}
	if !strings.Contains(steps[1], "spiffe://warden.test/server/s1") {
		t.Errorf("the signature step does not name the signer: %q", steps[1])
	}
	want, _ := Evaluate(seededState(t), IEC62443, "")
	a, _ := RenderJSON(r)
	b, _ := RenderJSON(want)
	if !bytes.Equal(a, b) {
		t.Error("the verified report is not the one signed")
	}
	if len(r.Evidence) == 0 {
		t.Error("the seeded report cites no audit record")
	}
	// Re-indenting the document keeps it valid: white space is not signed.
	var compact bytes.Buffer
	if err := json.Compact(&compact, doc); err != nil {
		t.Fatal(err)
	}
	if _, _, err := VerifyDocument(compact.Bytes(), ca.pool()); err != nil {
		t.Errorf("compacted document: %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	ca := newTestCA(t, "cluster")
	other := newTestCA(t, "other")
	good := signedReport(t, ca, nil)
	for _, c := range []struct {
		name  string
		doc   func() []byte
		roots *testCA
		want  string
	}{
		{"report field changed", func() []byte {
			return bytes.Replace(good, []byte(`"status": "fail"`), []byte(`"status": "pass"`), 1)
		}, ca, "signature: signed: the signature does not match"},
		{"summary changed", func() []byte {
			return regexp.MustCompile(`"pass": \d+`).ReplaceAll(good, []byte(`"pass": 99`))
		}, ca, "signature:"},
		{"wrong CA", func() []byte { return good }, other, "signature: signed: the signer's certificate does not chain"},
		{"signed by another cluster", func() []byte { return signedReport(t, other, nil) }, ca, "signature:"},
		{"proof altered", func() []byte {
			return signedReport(t, ca, func(r *Report) { r.Evidence[1].Proof[0][0] ^= 1 })
		}, ca, "evidence: record 2: audit: log does not verify"},
		{"entry altered", func() []byte {
			return signedReport(t, ca, func(r *Report) {
				r.Evidence[0].Entry = bytes.Replace(r.Evidence[0].Entry, []byte("alice"), []byte("mallory"), 1)
			})
		}, ca, "evidence: record 1:"},
		{"index moved", func() []byte {
			return signedReport(t, ca, func(r *Report) { r.Evidence[len(r.Evidence)-1].Index = 7 })
		}, ca, "evidence: record 7:"},
		{"checkpoint note altered", func() []byte {
			return signedReport(t, ca, func(r *Report) { r.Checkpoint.Note = strings.Replace(r.Checkpoint.Note, "\n8\n", "\n9\n", 1) })
		}, ca, "checkpoint: audit: checkpoint signature not verified"},
		{"checkpoint root differs from the note", func() []byte {
			return signedReport(t, ca, func(r *Report) { r.Checkpoint.Root = bytes.Repeat([]byte{7}, 32) })
		}, ca, "checkpoint: the note states size 8"},
		{"checkpoint missing", func() []byte {
			return signedReport(t, ca, func(r *Report) { r.Checkpoint.Note = "" })
		}, ca, "checkpoint: the report carries no signed checkpoint"},
		{"cited record missing", func() []byte {
			return signedReport(t, ca, func(r *Report) { r.Evidence = r.Evidence[1:] })
		}, ca, "citation: control SR 1.1 check human-auth cites audit record 1"},
		{"attestation record missing", func() []byte {
			return signedReport(t, ca, func(r *Report) {
				for i, e := range r.Evidence {
					if e.Index == 5 {
						r.Evidence = append(r.Evidence[:i:i], r.Evidence[i+1:]...)
					}
				}
			})
		}, ca, "citation: control SR 1.6: attestation cites audit record 5"},
		{"unknown field", func() []byte {
			return bytes.Replace(good, []byte(`"signature":`), []byte(`"extra": 1, "signature":`), 1)
		}, ca, "document: json: unknown field"},
		{"not a report", func() []byte { return []byte("<html>hello</html>") }, ca, "document: neither"},
		{"trailing data", func() []byte { return append(bytes.Clone(good), []byte("{}")...) }, ca, "document: data after"},
		{"signed at another time than generated", func() []byte {
			r, err := Evaluate(seededState(t), IEC62443, "")
			if err != nil {
				t.Fatal(err)
			}
			return signAt(t, ca, r, r.GeneratedAt.Add(time.Hour))
		}, ca, "signature: signed at 2026-03-01T13:00:00Z, but the report was generated at 2026-03-01T12:00:00Z"},
		{"trust domain not the signer's", func() []byte {
			return signedReport(t, ca, func(r *Report) { r.TrustDomain = "other.test" })
		}, ca, `signature: the signer spiffe://warden.test/server/s1 is not of the report's trust domain "other.test"`},
		{"no trust domain", func() []byte {
			return signedReport(t, ca, func(r *Report) { r.TrustDomain = "" })
		}, ca, `signature: the signer spiffe://warden.test/server/s1 is not of the report's trust domain ""`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, steps, err := VerifyDocument(c.doc(), c.roots.pool())
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error %v, want %q (steps %q)", err, c.want, steps)
			}
		})
	}
}

// signAt is SignReport with a signing time of the caller's choice.
func signAt(t testing.TB, ca *testCA, r *Report, at time.Time) []byte {
	t.Helper()
	body, err := RenderJSON(r)
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		t.Fatal(err)
	}
	sig, err := signed.Sign(ca.server, ca.chain, compact.Bytes(), at)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(Signed{Report: body, Signature: sig})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestVerifyBindsSignature: the signature is bound to its report's
// generation time and trust domain. A report generated within a second
// verifies (the signature keeps whole seconds); one second off does not.
func TestVerifyBindsSignature(t *testing.T) {
	ca := newTestCA(t, "cluster")
	st := seededState(t)
	st.GeneratedAt = st.GeneratedAt.Add(750 * time.Millisecond)
	r, err := Evaluate(st, IEC62443, "")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := SignReport(r, ca.server, ca.chain)
	if err != nil {
		t.Fatal(err)
	}
	_, steps, err := VerifyDocument(doc, ca.pool())
	if err != nil {
		t.Fatalf("a report generated at %s: %v", r.GeneratedAt.Format(time.RFC3339Nano), err)
	}
	if !strings.Contains(steps[1], "of trust domain warden.test") || !strings.Contains(steps[1], "when the report was generated") {
		t.Errorf("the signature step does not state the binding: %q", steps[1])
	}
	if _, _, err := VerifyDocument(signAt(t, ca, r, r.GeneratedAt), ca.pool()); err != nil {
		t.Errorf("signed at generated_at: %v", err)
	}
	for _, at := range []time.Time{r.GeneratedAt.Add(time.Second), r.GeneratedAt.Add(-time.Second)} {
		if _, _, err := VerifyDocument(signAt(t, ca, r, at), ca.pool()); err == nil || !strings.HasPrefix(err.Error(), "signature: signed at") {
			t.Errorf("signed at %s, generated at %s: %v", at.Format(time.RFC3339Nano), r.GeneratedAt.Format(time.RFC3339Nano), err)
		}
	}
}

func TestHTML(t *testing.T) {
	ca := newTestCA(t, "cluster")
	st := seededState(t)
	st.Nodes[0].Name = `<script>alert(1)</script>`
	st.Nodes[0].Assessment[0].Message = `" onmouseover="alert(2)`
	st.Zones = append(st.Zones, Zone{Name: `<img src=x onerror=alert(3)>`, Level: 1})
	for _, fw := range Frameworks() {
		t.Run(string(fw), func(t *testing.T) {
			r, err := Evaluate(st, fw, "")
			if err != nil {
				t.Fatal(err)
			}
			doc, err := SignReport(r, ca.server, ca.chain)
			if err != nil {
				t.Fatal(err)
			}
			page, err := RenderHTML(doc)
			if err != nil {
				t.Fatal(err)
			}
			html := string(page)
			for _, bad := range []string{"http://", "https://", "<script>alert", "<img src=x", "<script src", "<link", "@import", "url("} {
				if strings.Contains(html, bad) {
					t.Errorf("the page contains %q", bad)
				}
			}
			if m := regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`).FindString(html); m != "" {
				t.Errorf("inline event handler: %s", m)
			}
			if !strings.Contains(html, "&lt;script&gt;alert(1)&lt;/script&gt;") {
				t.Error("the node's name is not shown escaped")
			}
			if n := strings.Count(html, "<script"); n != 1 {
				t.Errorf("%d script elements, want only the JSON one", n)
			}
			for _, want := range []string{"<svg", htmlMarker, "Controls per family", "Risk per zone", "Nodes by patch age"} {
				if !strings.Contains(html, want) {
					t.Errorf("the page lacks %q", want)
				}
			}
			if fw == IEC62443 && !strings.Contains(html, "SL-A per FR beside SL-T") {
				t.Error("no SL chart")
			}
			got, steps, err := VerifyDocument(page, ca.pool())
			if err != nil {
				t.Fatalf("the HTML report does not verify: %v after %q", err, steps)
			}
			if !strings.HasPrefix(steps[0], "document: a signed report read from HTML, its visible page exactly the one") || got.Framework != fw {
				t.Errorf("steps %q, framework %s", steps, got.Framework)
			}
			tampered := strings.Replace(html, `"status": "fail"`, `"status": "pass"`, 1)
			if _, _, err := VerifyDocument([]byte(tampered), ca.pool()); err == nil {
				t.Error("a tampered HTML report verifies")
			}
		})
	}
}

// TestHTMLVisiblePageBound: the signature covers the embedded document
// only, so the visible page around it is compared with the page that
// document renders; rewriting any of it, even one character of a status
// in a table, is refused while the untouched page verifies.
func TestHTMLVisiblePageBound(t *testing.T) {
	ca := newTestCA(t, "cluster")
	page, err := RenderHTML(signedReport(t, ca, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, steps, err := VerifyDocument(page, ca.pool()); err != nil {
		t.Fatalf("the genuine page: %v after %q", err, steps)
	}
	html := string(page)
	end := strings.Index(html, htmlMarker)
	const badge = `<span class="badge b-fail">fail</span>`
	if i := strings.Index(html, badge); i < 0 || i > end {
		t.Fatalf("no failing status badge in the visible page before the signed document")
	}
	for _, c := range []struct{ name, old, new string }{
		{"one character of a status", `b-fail">fail</span>`, `b-fail">fai1</span>`},
		{"a status word and its colour", `<span class="badge b-fail">fail</span>`, `<span class="badge b-pass">pass</span>`},
		{"the trust domain", `<td>Trust domain</td><td>warden.test</td>`, `<td>Trust domain</td><td>warden.example</td>`},
		{"the title", `<h1>Warden compliance report</h1>`, `<h1>Warden compliance report: all pass</h1>`},
		{"a comment before the end", `</body>`, `<!-- -->` + "</body>"},
		{"white space after the end", `</html>` + "\n", `</html>` + "\n\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(html, c.old) {
				t.Fatalf("the page has no %q", c.old)
			}
			tampered := strings.Replace(html, c.old, c.new, 1)
			_, steps, err := VerifyDocument([]byte(tampered), ca.pool())
			if err == nil || err.Error() != "document: the visible page differs from the one its signed report renders" {
				t.Errorf("error %v after %q", err, steps)
			}
		})
	}
}

func TestRenderHTMLRefuses(t *testing.T) {
	for _, doc := range []string{"", "{}", `{"report": {}, "signature": null}`, `{"report": {"x": "<"}, "signature": {"algorithm": "ed25519"}}`} {
		if _, err := RenderHTML([]byte(doc)); err == nil {
			t.Errorf("RenderHTML(%q) succeeded", doc)
		}
	}
}

// FuzzVerifyDocument: any input is refused or verified, never a panic
// or a report beside an error. The seeds are small (a report of one
// control and one record) because the fuzzer minimizes each new input.
func FuzzVerifyDocument(f *testing.F) {
	ca := newTestCA(f, "cluster")
	doc := signedReport(f, ca, func(r *Report) {
		r.Controls = r.Controls[:1]
		r.Controls[0].Checks = r.Controls[0].Checks[:1]
		r.Controls[0].Checks[0].Evidence = r.Controls[0].Checks[0].Evidence[:2]
		r.Zones, r.Risk, r.PatchAge = nil, Risk{}, nil
		r.Evidence = r.Evidence[:1]
	})
	if _, _, err := VerifyDocument(doc, ca.pool()); err != nil {
		f.Fatal(err)
	}
	page, err := RenderHTML(doc)
	if err != nil {
		f.Fatal(err)
	}
	if _, _, err := VerifyDocument(page, ca.pool()); err != nil {
		f.Fatal(err)
	}
	f.Add(doc)
	f.Add(page)
	// Refused: a page that is not the one the document renders.
	f.Add(append(append([]byte("<html><body>"+htmlMarker), doc...), "</script></body></html>"...))
	f.Add([]byte(`{"report": {}, "signature": {}}`))
	f.Add([]byte(htmlMarker + `{"report":1}</script>`))
	roots := ca.pool()
	f.Fuzz(func(t *testing.T, data []byte) {
		r, steps, err := VerifyDocument(data, roots)
		if err == nil && (r == nil || len(steps) != 6) {
			t.Fatalf("verified without a report or all steps: %v %q", r, steps)
		}
		if err != nil && r != nil {
			t.Fatal("a report returned with an error")
		}
	})
}
