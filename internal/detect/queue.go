package detect

import (
	"context"
	"encoding/json"
	"time"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store/kv"
)

// QueueOp returns the put that queues body (a JSON object) for delivery
// to notifier name under delivery id (the Warden-Delivery header; it must
// be unique per notification, and only [A-Za-z0-9._:-]), for the alert
// alertID. The delivery loop sends it like an alert's notification. For
// services that notify in their own transaction (the playbook responder).
// errs.NotFound if the notifier does not exist.
func (n *Notifiers) QueueOp(ctx context.Context, name, delivery, alertID string, body json.RawMessage, now time.Time) (kv.Op, error) {
	if err := checkName("notifier name", name); err != nil {
		return kv.Op{}, err
	}
	if _, err := n.st.Get(ctx, prefixNotify+name); err != nil {
		if errs.Is(err, errs.NotFound) {
			return kv.Op{}, errs.E(errs.NotFound, "notifier %q not found", name)
		}
		return kv.Op{}, err
	}
	return kv.Op{Type: kv.OpPut, Key: prefixOutbox + delivery, Value: mustJSON(outboxEntry{
		Delivery: delivery, Notifier: name, AlertID: alertID, Alert: body, Created: rfc3339(now)})}, nil
}
