package auditlog

import (
	"context"
	"strconv"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/store/kv"
)

// SystemEntry is the record of a change a server makes on its own, outside
// any request (its own cluster certificate, maintenance): the principal
// names the server node, the auth method is "system".
func SystemEntry(now time.Time, node, action, resource string) *audit.Entry {
	return &audit.Entry{Time: audit.FormatTime(now), Action: action, AuthMethod: "system",
		Principal: "Server::" + strconv.Quote(node), Resource: resource, Outcome: 200} // HTTP 200: a change that committed
}

// Pending returns ctx carrying e as the pending record of the change about
// to be committed through core (core.Txn, core.Rotate, core.Restore): the
// first transaction carries it in its own Raft command, and the store
// refuses a change without one. Fields of e set before that commit are
// recorded.
func (s *Service) Pending(ctx context.Context, e *audit.Entry) (context.Context, *kv.PendingAudit) {
	p := kv.NewPendingAudit(func() (kv.AuditLeaf, error) { return s.ChangeLeaf(e) })
	return kv.WithPendingAudit(ctx, p), p
}
