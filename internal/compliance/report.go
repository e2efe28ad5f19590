package compliance

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/compliance/signed"
)

// MaxDocument bounds a document VerifyDocument and RenderHTML read.
const MaxDocument = 64 << 20

// RenderJSON encodes r as indented JSON. The same report always gives the
// same bytes: fields in declaration order, slices in the order Evaluate
// sorted them, no maps, times in UTC, and <, > and & escaped inside
// strings (so the JSON can sit in an HTML script element). There is no
// trailing newline.
func RenderJSON(r *Report) ([]byte, error) {
	if r == nil {
		return nil, errors.New("compliance: no report")
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("compliance: encode report: %w", err)
	}
	return b, nil
}

// Signed is a signed report document. The signature covers the report
// member's JSON with insignificant white space removed (json.Compact of
// its bytes), so re-indenting the document does not break it, while any
// change to a value does.
type Signed struct {
	Report    json.RawMessage   `json:"report"`
	Signature *signed.Signature `json:"signature"`
}

// SignReport renders r, signs it with key (whose certificate is chain[0],
// the cluster's server certificate) at r.GeneratedAt, and returns the
// signed JSON document: {"report": <RenderJSON(r)>, "signature": {...}}.
func SignReport(r *Report, key crypto.Signer, chain []*x509.Certificate) ([]byte, error) {
	body, err := RenderJSON(r)
	if err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		return nil, fmt.Errorf("compliance: compact report: %w", err)
	}
	sig, err := signed.Sign(key, chain, compact.Bytes(), r.GeneratedAt)
	if err != nil {
		return nil, fmt.Errorf("compliance: sign report: %w", err)
	}
	sj, err := json.Marshal(sig)
	if err != nil {
		return nil, fmt.Errorf("compliance: encode signature: %w", err)
	}
	var doc bytes.Buffer
	doc.WriteString("{\n\"report\": ")
	doc.Write(body)
	doc.WriteString(",\n\"signature\": ")
	doc.Write(sj)
	doc.WriteString("\n}\n")
	return doc.Bytes(), nil
}

// htmlMarker opens the script element that carries the signed document
// in an HTML report.
const htmlMarker = `<script type="application/json" id="warden-report">`

// extract returns the signed JSON document in data: data itself when it
// is JSON, or the content of the warden-report script element of an
// HTML report.
func extract(data []byte) ([]byte, string, error) {
	if len(data) > MaxDocument {
		return nil, "", fmt.Errorf("document: %d bytes, more than %d", len(data), MaxDocument)
	}
	t := bytes.TrimSpace(data)
	if len(t) > 0 && t[0] == '{' {
		return t, "JSON", nil
	}
	i := bytes.Index(data, []byte(htmlMarker))
	if i < 0 {
		return nil, "", errors.New("document: neither a signed JSON report nor an HTML report (no warden-report script element)")
	}
	rest := data[i+len(htmlMarker):]
	if bytes.Contains(rest, []byte(htmlMarker)) {
		return nil, "", errors.New("document: more than one warden-report script element")
	}
	j := bytes.Index(rest, []byte("</script>"))
	if j < 0 {
		return nil, "", errors.New("document: the warden-report script element is not closed")
	}
	return bytes.TrimSpace(rest[:j]), "HTML", nil
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// parseSigned reads a signed document (JSON or HTML).
func parseSigned(data []byte) (*Signed, []byte, string, error) {
	doc, kind, err := extract(data)
	if err != nil {
		return nil, nil, "", err
	}
	var s Signed
	if err := decodeStrict(doc, &s); err != nil {
		return nil, nil, "", fmt.Errorf("document: %w", err)
	}
	if len(s.Report) == 0 || s.Signature == nil {
		return nil, nil, "", errors.New("document: a report and a signature are required")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, s.Report); err != nil {
		return nil, nil, "", fmt.Errorf("document: report: %w", err)
	}
	return &s, compact.Bytes(), kind, nil
}

// VerifyDocument checks a signed report, JSON or HTML, offline against
// the cluster's CA certificates (roots), and returns the report with the
// steps it checked, in order (the first reads the document):
//
//  1. the signature: the signer's certificate chains to roots at the
//     signing time, is a server of the cluster (signed.ServerSigner), and
//     signed the report; the signing time is the report's generated_at
//     (to the second) and the signer's SPIFFE ID
//     (spiffe://<td>/server/<id>) is of the report's trust_domain;
//  2. the report decodes strictly and is in this package's format;
//  3. the checkpoint: its note is signed by Checkpoint.LogKey and states
//     the report's size and root;
//  4. every evidence record's RFC 6962 inclusion proof of its entry at
//     its index against that root;
//  5. every audit index a check or attestation cites is in the evidence.
//
// Of an HTML report, the signature covers only the embedded document;
// once that verifies, the file must be, byte for byte, the page
// RenderHTML makes of it, or VerifyDocument fails at the document step
// (so the visible page cannot be rewritten around a genuine report).
//
// The error names the step and the record that failed; the steps before
// it are returned too.
func VerifyDocument(data []byte, roots *x509.CertPool) (*Report, []string, error) {
	var steps []string
	s, payload, kind, err := parseSigned(data)
	if err != nil {
		return nil, steps, err
	}
	steps = append(steps, "document: a signed report read from "+kind)
	leaf, err := signed.Verify(payload, s.Signature, roots, signed.ServerSigner)
	if err != nil {
		return nil, steps, fmt.Errorf("signature: %w", err)
	}
	signer := leaf.Subject.CommonName
	if len(leaf.URIs) > 0 {
		signer = leaf.URIs[0].String()
	}
	td, err := bindSignature(s, leaf)
	if err != nil {
		return nil, steps, fmt.Errorf("signature: %w", err)
	}
	steps = append(steps, fmt.Sprintf("signature: %s by %s of trust domain %s, its certificate chains to the CA at %s, when the report was generated",
		s.Signature.Algorithm, signer, td, s.Signature.SignedAt.UTC().Format("2006-01-02T15:04:05Z")))

	var r Report
	if err := decodeStrict(s.Report, &r); err != nil {
		return nil, steps, fmt.Errorf("report: %w", err)
	}
	if r.Format != ReportFormat {
		return nil, steps, fmt.Errorf("report: format %q, want %q", r.Format, ReportFormat)
	}
	steps = append(steps, fmt.Sprintf("report: %s, %s, generated %s", r.Format, r.Framework, r.GeneratedAt.UTC().Format("2006-01-02T15:04:05Z")))

	cp := r.Checkpoint
	if cp.Note == "" || cp.LogKey == "" {
		return nil, steps, errors.New("checkpoint: the report carries no signed checkpoint")
	}
	c, err := audit.Open([]byte(cp.Note), cp.LogKey)
	if err != nil {
		return nil, steps, fmt.Errorf("checkpoint: %w", err)
	}
	if c.Size != cp.Size || !bytes.Equal(c.Root, cp.Root) {
		return nil, steps, fmt.Errorf("checkpoint: the note states size %d root %x; the report states size %d root %x", c.Size, c.Root, cp.Size, cp.Root)
	}
	steps = append(steps, fmt.Sprintf("checkpoint: note signed by %s, size %d, root %x", c.Origin, c.Size, c.Root))

	have := make(map[uint64]bool, len(r.Evidence))
	for i, rec := range r.Evidence {
		if i > 0 && rec.Index <= r.Evidence[i-1].Index {
			return nil, steps, fmt.Errorf("evidence: record %d: indexes are not strictly increasing", rec.Index)
		}
		if err := audit.VerifyInclusion(rec.Entry, rec.Index, c.Size, c.Root, rec.Proof); err != nil {
			return nil, steps, fmt.Errorf("evidence: record %d: %w", rec.Index, err)
		}
		have[rec.Index] = true
	}
	steps = append(steps, fmt.Sprintf("evidence: %d audit records, each included in the checkpoint's tree", len(r.Evidence)))

	for _, ctl := range r.Controls {
		if a := ctl.Attestation; a != nil && !have[a.AuditIndex] {
			return nil, steps, fmt.Errorf("citation: control %s: attestation cites audit record %d, which the evidence lacks", ctl.ID, a.AuditIndex)
		}
		for _, ch := range ctl.Checks {
			for _, e := range ch.Evidence {
				if e.AuditIndex != nil && !have[*e.AuditIndex] {
					return nil, steps, fmt.Errorf("citation: control %s check %s cites audit record %d, which the evidence lacks", ctl.ID, ch.ID, *e.AuditIndex)
				}
			}
		}
	}
	steps = append(steps, "citations: every audit record a check or attestation cites is in the evidence")

	if kind == "HTML" {
		// The signature covers only the embedded document: the page an
		// auditor reads around it must be the one that document renders,
		// byte for byte, or it could say anything.
		doc, _, err := extract(data)
		if err != nil {
			return nil, steps, err
		}
		page, err := RenderHTML(doc)
		if err != nil {
			return nil, steps, fmt.Errorf("document: the signed report does not render: %w", err)
		}
		if !bytes.Equal(page, data) {
			return nil, steps, errors.New("document: the visible page differs from the one its signed report renders")
		}
		steps[0] += ", its visible page exactly the one the signed report renders"
	}
	return &r, steps, nil
}

// bindSignature checks that a verified signature belongs to its report:
// it was made when the report was generated (SignReport signs at
// GeneratedAt, which the signature keeps to the second), and by a server
// of the report's trust domain (every spiffe://<td>/server/<id> identity
// of the signer's certificate). It returns the trust domain.
func bindSignature(s *Signed, leaf *x509.Certificate) (string, error) {
	// Only the two fields; step 3 decodes the whole report strictly.
	var head struct {
		GeneratedAt time.Time `json:"generated_at"`
		TrustDomain string    `json:"trust_domain"`
	}
	if err := json.Unmarshal(s.Report, &head); err != nil {
		return "", fmt.Errorf("the report's generated_at and trust_domain: %w", err)
	}
	signedAt := s.Signature.SignedAt
	if !head.GeneratedAt.Truncate(time.Second).Equal(signedAt) {
		return "", fmt.Errorf("signed at %s, but the report was generated at %s",
			signedAt.UTC().Format(time.RFC3339), head.GeneratedAt.UTC().Format(time.RFC3339Nano))
	}
	servers := 0
	for _, u := range leaf.URIs {
		if u.Scheme == "spiffe" && strings.HasPrefix(u.Path, "/server/") {
			if u.Host != head.TrustDomain {
				return "", fmt.Errorf("the signer %s is not of the report's trust domain %q", u, head.TrustDomain)
			}
			servers++
		}
	}
	if servers == 0 || head.TrustDomain == "" {
		return "", fmt.Errorf("the signer names no server of the report's trust domain %q", head.TrustDomain)
	}
	return head.TrustDomain, nil
}

// signerName describes a signature's signer for display, without
// verifying anything.
func signerName(sig *signed.Signature) string {
	if sig == nil || len(sig.Chain) == 0 {
		return ""
	}
	c, err := x509.ParseCertificate(sig.Chain[0])
	if err != nil {
		return ""
	}
	var names []string
	for _, u := range c.URIs {
		names = append(names, u.String())
	}
	if len(names) == 0 {
		return c.Subject.CommonName
	}
	return strings.Join(names, ", ")
}
