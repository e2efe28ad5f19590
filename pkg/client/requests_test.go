package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestHeldForApproval: a 202 is an *ApprovalRequiredError, from JSON calls
// and from streamed uploads alike, and never a success; a 202 without a
// request id is an error of its own; WithApprovedRequest sends the header.
func TestHeldForApproval(t *testing.T) {
	const held = `{"request_id":"req-0123456789abcdef0123","required":2,"approvals":[],"expires_at":"2026-11-23T14:00:00Z"}`
	var gotHeader string
	_, c := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		gotHeader = r.Header.Get(HeaderApprovedRequest)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		if r.URL.Path == "/v1/sys/seal" {
			io.WriteString(w, `{}`)
			return
		}
		io.WriteString(w, held)
	})
	ctx := context.Background()
	_, err := c.Rotate(ctx)
	var ae *ApprovalRequiredError
	if !errors.As(err, &ae) || ae.RequestID != "req-0123456789abcdef0123" || ae.Required != 2 ||
		ae.Error() != "approval required: request req-0123456789abcdef0123 (0 of 2 approvals), expires 2026-11-23T14:00:00Z" {
		t.Fatalf("rotate: %v", err)
	}
	if gotHeader != "" {
		t.Fatalf("header %q sent without WithApprovedRequest", gotHeader)
	}
	if _, err := c.RaftSnapshotRestore(WithApprovedRequest(ctx, "req-0123456789abcdef0123"), strings.NewReader("snapshot")); !errors.As(err, &ae) {
		t.Fatalf("restore: %v", err)
	}
	if gotHeader != "req-0123456789abcdef0123" {
		t.Fatalf("header %q", gotHeader)
	}
	if err := c.Seal(ctx); err == nil || errors.As(err, &ae) || !strings.Contains(err.Error(), "202 without a request id") {
		t.Fatalf("a 202 without a request id: %v", err)
	}
}
