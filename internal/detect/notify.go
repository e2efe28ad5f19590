package detect

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store/kv"
)

// NotifierWebhook is the one notifier type: a signed JSON POST (see
// internal/detect/webhook for the signature scheme).
const NotifierWebhook = "webhook"

// Bounds of a notifier's secret.
const (
	MinSecretBytes = 16
	MaxSecretBytes = 1024
)

// Notifier is a notification target. Its secret is stored behind the
// barrier and never returned: Secret is set only on the way in.
type Notifier struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	URL         string `json:"url"`
	MinLevel    string `json:"min_level"`
	CreatedTime string `json:"created_time,omitempty"`
	Secret      []byte `json:"-"`
}

// notifierRecord is what is stored.
type notifierRecord struct {
	Notifier
	Secret []byte `json:"secret"`
}

// outboxEntry is one notification waiting for delivery: the alert's JSON
// as its creation left it.
type outboxEntry struct {
	Delivery string          `json:"delivery"`
	Notifier string          `json:"notifier"`
	AlertID  string          `json:"alert_id"`
	Alert    json.RawMessage `json:"alert"`
	Created  string          `json:"created_time"`
}

// Sender delivers one notification (webhook.Sender implements it).
type Sender interface {
	Send(ctx context.Context, url string, secret []byte, delivery string, body []byte) error
}

// NotifyConfig tunes delivery; zero fields take the defaults.
type NotifyConfig struct {
	Poll       time.Duration // how often the leader looks at the outbox (1s)
	MinBackoff time.Duration // wait after the first failure (1s), doubled after each
	MaxBackoff time.Duration // cap of the wait (10m)
	GiveUp     time.Duration // a notification not delivered this long after the alert's creation is dropped (24h)
	Logger     *slog.Logger
	// Outcome, if set, is told of each attempt's outcome: "delivered",
	// "failed" (to be retried), "abandoned" (GiveUp passed) or "dropped"
	// (the notifier was deleted). It must not block.
	Outcome func(outcome string)
}

// Notifiers stores notification targets and delivers the outbox. Safe for
// concurrent use.
type Notifiers struct {
	st    Storage
	audit Auditor
	node  string
	now   func() time.Time
	send  Sender
	cfg   NotifyConfig
	log   *slog.Logger

	mu    sync.Mutex
	tries map[string]*attempts // outbox key → failures on this leader
}

type attempts struct {
	n    int
	next time.Time
}

// NewNotifiers returns the notifications service.
func NewNotifiers(st Storage, audit Auditor, node string, now func() time.Time, send Sender, cfg NotifyConfig) *Notifiers {
	if now == nil {
		now = time.Now
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Minute
	}
	if cfg.GiveUp <= 0 {
		cfg.GiveUp = 24 * time.Hour
	}
	if cfg.Outcome == nil {
		cfg.Outcome = func(string) {}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifiers{st: st, audit: audit, node: node, now: now, send: send, cfg: cfg, log: log, tries: map[string]*attempts{}}
}

// CheckURL checks a webhook URL: https, or http to a loopback address
// (a receiver on the server's own host); no user information.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return errs.E(errs.Invalid, "url: want https://host[:port]/path")
	}
	if u.User != nil {
		return errs.E(errs.Invalid, "url: must not carry user information (the notification is signed instead)")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return errs.E(errs.Invalid, "url: http is allowed only to a loopback address; use https")
	}
	return errs.E(errs.Invalid, "url: scheme %q: want https", u.Scheme)
}

// Put creates or replaces notifier nt (its secret included).
func (n *Notifiers) Put(ctx context.Context, nt Notifier) (Notifier, error) {
	if err := checkName("notifier name", nt.Name); err != nil {
		return Notifier{}, err
	}
	if nt.Type != NotifierWebhook {
		return Notifier{}, errs.E(errs.Invalid, "type %q: want webhook", nt.Type)
	}
	if err := CheckURL(nt.URL); err != nil {
		return Notifier{}, err
	}
	if nt.MinLevel == "" {
		nt.MinLevel = "high"
	}
	if LevelRank(nt.MinLevel) == 0 {
		return Notifier{}, errs.E(errs.Invalid, "min_level %q: want informational, low, medium, high or critical", nt.MinLevel)
	}
	if len(nt.Secret) < MinSecretBytes || len(nt.Secret) > MaxSecretBytes {
		return Notifier{}, errs.E(errs.Invalid, "secret: must be %d to %d bytes", MinSecretBytes, MaxSecretBytes)
	}
	nt.CreatedTime = rfc3339(n.now())
	rec := notifierRecord{Notifier: nt, Secret: nt.Secret}
	if _, err := n.st.Txn(ctx, kv.Txn{Ops: []kv.Op{{Type: kv.OpPut, Key: prefixNotify + nt.Name, Value: mustJSON(rec)}}}); err != nil {
		return Notifier{}, err
	}
	nt.Secret = nil
	return nt, nil
}

// List returns the notifiers (without secrets), sorted by name.
func (n *Notifiers) List(ctx context.Context) ([]Notifier, error) {
	recs, err := listNotifiers(ctx, n.st)
	if err != nil {
		return nil, err
	}
	out := make([]Notifier, 0, len(recs))
	for _, r := range recs {
		nt := r.Notifier
		nt.Secret = nil
		out = append(out, nt)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func listNotifiers(ctx context.Context, st Storage) (map[string]notifierRecord, error) {
	ents, err := st.List(ctx, prefixNotify, 0)
	if err != nil {
		return nil, err
	}
	out := make(map[string]notifierRecord, len(ents))
	for _, e := range ents {
		var r notifierRecord
		if err := json.Unmarshal(e.Value, &r); err != nil {
			return nil, fmt.Errorf("detect: decode notifier %s: %w", e.Key, err)
		}
		r.Notifier.Secret = r.Secret
		out[r.Name] = r
	}
	return out, nil
}

// Delete removes notifier name; its notifications still queued are
// dropped. errs.NotFound if absent.
func (n *Notifiers) Delete(ctx context.Context, name string) error {
	if err := checkName("notifier name", name); err != nil {
		return err
	}
	if _, err := n.st.Get(ctx, prefixNotify+name); err != nil {
		if errs.Is(err, errs.NotFound) {
			return errs.E(errs.NotFound, "notifier %q not found", name)
		}
		return err
	}
	_, err := n.st.Txn(ctx, kv.Txn{Ops: []kv.Op{{Type: kv.OpDelete, Key: prefixNotify + name}}})
	return err
}

// outboxOps returns the puts that queue a notification of the new alert al
// (body: its JSON) for every notifier whose minimum level it reaches.
func outboxOps(ctx context.Context, st Storage, al *Alert, body []byte, now time.Time) ([]kv.Op, error) {
	recs, err := listNotifiers(ctx, st)
	if err != nil {
		return nil, err
	}
	var ops []kv.Op
	for name, r := range recs {
		if LevelRank(al.Level) < LevelRank(r.MinLevel) {
			continue
		}
		id := al.ID + "." + name
		ops = append(ops, kv.Op{Type: kv.OpPut, Key: prefixOutbox + id, Value: mustJSON(outboxEntry{
			Delivery: id, Notifier: name, AlertID: al.ID, Alert: body, Created: rfc3339(now)})})
	}
	return ops, nil
}

// Run delivers the outbox every Poll while isLeader says this server
// leads, until ctx ends. Run it on every server: only the leader sends.
func (n *Notifiers) Run(ctx context.Context, isLeader func() bool) {
	t := time.NewTicker(n.cfg.Poll)
	defer t.Stop()
	for {
		if isLeader() {
			if _, err := n.DeliverOnce(ctx); err != nil && ctx.Err() == nil {
				n.log.Debug("notifications: outbox pass failed; retrying", "err", err)
			}
		} else {
			n.mu.Lock()
			clear(n.tries)
			n.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// DeliverOnce makes one pass over the outbox: each notification that is
// due is sent; a 2xx removes it, a failure schedules it again (backoff
// doubling from MinBackoff up to MaxBackoff), and one older than GiveUp,
// or whose notifier was deleted, is dropped and logged. It returns how
// many notifications remain queued.
func (n *Notifiers) DeliverOnce(ctx context.Context) (int, error) {
	keys, err := n.st.ListKeys(ctx, prefixOutbox, 0)
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	recs, err := listNotifiers(ctx, n.st)
	if err != nil {
		return len(keys), err
	}
	ents, err := n.st.List(ctx, prefixOutbox, 0)
	if err != nil {
		return len(keys), err
	}
	remaining := len(ents)
	seen := map[string]bool{}
	for _, e := range ents {
		seen[e.Key] = true
		var ob outboxEntry
		if err := json.Unmarshal(e.Value, &ob); err != nil {
			// Not ours to fix here; the others are still delivered.
			n.log.Error("notification outbox: an entry does not decode; skipped", "key", e.Key, "err", err)
			continue
		}
		now := n.now()
		n.mu.Lock()
		a := n.tries[e.Key]
		n.mu.Unlock()
		// Backoff waits are measured on the real clock (the injected one
		// dates records and decides GiveUp).
		if a != nil && time.Now().Before(a.next) {
			continue
		}
		rec, ok := recs[ob.Notifier]
		created, _ := time.Parse(time.RFC3339Nano, ob.Created)
		switch {
		case !ok:
			n.log.Warn("notification dropped: its notifier was deleted", "notifier", ob.Notifier, "alert", ob.AlertID)
			err = n.remove(ctx, e, "notify.dropped", ob)
		case now.Sub(created) > n.cfg.GiveUp:
			n.log.Error("notification abandoned: not delivered in time", "notifier", ob.Notifier, "alert", ob.AlertID,
				"give_up_after", n.cfg.GiveUp.String())
			err = n.remove(ctx, e, "notify.abandoned", ob)
		default:
			sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			serr := n.send.Send(sctx, rec.URL, rec.Secret, ob.Delivery, ob.Alert)
			cancel()
			if serr != nil {
				if a == nil {
					a = &attempts{}
				}
				a.n++
				wait := n.cfg.MinBackoff << min(a.n-1, 30)
				if wait > n.cfg.MaxBackoff || wait <= 0 {
					wait = n.cfg.MaxBackoff
				}
				a.next = time.Now().Add(wait)
				n.mu.Lock()
				n.tries[e.Key] = a
				n.mu.Unlock()
				n.cfg.Outcome("failed")
				n.log.Warn("notification not delivered; will retry", "notifier", ob.Notifier, "alert", ob.AlertID,
					"attempt", a.n, "retry_in", wait.String(), "err", serr.Error())
				continue
			}
			err = n.remove(ctx, e, "notify.delivered", ob)
		}
		if err != nil {
			return remaining, err
		}
		remaining--
	}
	n.mu.Lock()
	for k := range n.tries {
		if !seen[k] {
			delete(n.tries, k)
		}
	}
	n.mu.Unlock()
	return remaining, nil
}

// remove deletes an outbox entry with the record of why.
func (n *Notifiers) remove(ctx context.Context, e kv.Entry, action string, ob outboxEntry) error {
	ctx, _ = n.audit.Pending(ctx, auditlog.SystemEntry(n.now(), n.node, action, `Notifier::"`+ob.Notifier+`"`))
	_, err := n.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: e.Key, Version: e.Version}},
		Ops: []kv.Op{{Type: kv.OpDelete, Key: e.Key}}})
	if errs.Is(err, errs.Conflict) {
		return nil // removed by another pass (a former leader's)
	}
	if err == nil {
		n.cfg.Outcome(strings.TrimPrefix(action, "notify."))
	}
	n.mu.Lock()
	delete(n.tries, e.Key)
	n.mu.Unlock()
	return err
}

// Pending returns how many notifications are queued.
func (n *Notifiers) Pending(ctx context.Context) (int, error) {
	keys, err := n.st.ListKeys(ctx, prefixOutbox, 0)
	return len(keys), err
}
