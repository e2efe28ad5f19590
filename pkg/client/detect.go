package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Rule is a stored Sigma rule (docs/detection.md). YAML is set by RuleGet
// only.
type Rule struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Level       string `json:"level"`
	Status      string `json:"status,omitempty"`
	Kind        string `json:"kind"` // "detection" or "correlation"
	Version     uint64 `json:"version"`
	CreatedTime string `json:"created_time"`
	UpdatedTime string `json:"updated_time"`
	YAML        string `json:"yaml,omitempty"`
}

// RulePut stores the YAML of rule id (one Sigma rule whose own id is id)
// as its next version. A rule that does not parse or compile is an
// *APIError 400 naming the id, the line and the feature.
func (c *Client) RulePut(ctx context.Context, id string, yaml []byte) (Rule, error) {
	var out Rule
	_, err := c.do(ctx, http.MethodPut, "/v1/rules/"+url.PathEscape(id), map[string]string{"yaml": string(yaml)}, &out)
	return out, err
}

// RuleList returns the stored rules (without YAML) and the rule set's version.
func (c *Client) RuleList(ctx context.Context) ([]Rule, uint64, error) {
	var out struct {
		Rules   []Rule `json:"rules"`
		Version uint64 `json:"version"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/rules", nil, &out)
	return out.Rules, out.Version, err
}

// RuleGet returns rule id with its YAML.
func (c *Client) RuleGet(ctx context.Context, id string) (Rule, error) {
	var out Rule
	_, err := c.do(ctx, http.MethodGet, "/v1/rules/"+url.PathEscape(id), nil, &out)
	return out, err
}

// RuleDelete deletes rule id.
func (c *Client) RuleDelete(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/rules/"+url.PathEscape(id), nil, nil)
	return err
}

// Mapping returns the operators' extension of the Sigma mapping (YAML; ""
// for none).
func (c *Client) Mapping(ctx context.Context) (string, error) {
	var out struct {
		YAML string `json:"yaml"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/mapping", nil, &out)
	return out.YAML, err
}

// MappingPut replaces the operators' extension of the Sigma mapping (""
// removes it).
func (c *Client) MappingPut(ctx context.Context, yaml string) error {
	_, err := c.do(ctx, http.MethodPut, "/v1/mapping", map[string]string{"yaml": yaml}, nil)
	return err
}

// Placeholders returns the placeholders of the expand modifier.
func (c *Client) Placeholders(ctx context.Context) (map[string][]string, error) {
	var out struct {
		Placeholders map[string][]string `json:"placeholders"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/placeholders", nil, &out)
	return out.Placeholders, err
}

// PlaceholdersPut replaces the placeholders.
func (c *Client) PlaceholdersPut(ctx context.Context, p map[string][]string) error {
	_, err := c.do(ctx, http.MethodPut, "/v1/placeholders", map[string]any{"placeholders": p}, nil)
	return err
}

// Alert is what a rule's match makes (docs/detection.md, "Alerts").
type Alert struct {
	ID        string            `json:"id"`
	RuleID    string            `json:"rule_id"`
	RuleTitle string            `json:"rule_title"`
	Level     string            `json:"level"`
	Tags      []string          `json:"tags"`
	Status    string            `json:"status"`
	FirstSeen string            `json:"first_seen"`
	LastSeen  string            `json:"last_seen"`
	Count     int64             `json:"count"`
	Group     map[string]string `json:"group"`
	Hosts     []string          `json:"hosts"`
	Events    []json.RawMessage `json:"events"`
	EventRefs []uint64          `json:"event_refs"`
	Notes     []AlertNote       `json:"notes,omitempty"`
	Created   string            `json:"created_time"`
	Updated   string            `json:"updated_time"`
}

// AlertNote is a comment on an alert with the status change it came with.
type AlertNote struct {
	Time    string `json:"time"`
	By      string `json:"by"`
	Status  string `json:"status,omitempty"`
	Comment string `json:"comment"`
}

// AlertFilter selects alerts; empty fields select everything. Since is an
// RFC 3339 time or a duration back from now ("1h").
type AlertFilter struct {
	Status, Level, Rule, Host, Since string
	Limit                            int
	Cursor                           string
}

// AlertList returns one page of alerts, newest first, and the cursor of
// the next page ("" after the last).
func (c *Client) AlertList(ctx context.Context, f AlertFilter) ([]Alert, string, error) {
	q := url.Values{}
	for k, v := range map[string]string{"status": f.Status, "level": f.Level, "rule": f.Rule, "host": f.Host,
		"since": f.Since, "cursor": f.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	path := "/v1/alerts"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Alerts []Alert `json:"alerts"`
		Next   string  `json:"next"`
	}
	_, err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Alerts, out.Next, err
}

// AlertGet returns alert id.
func (c *Client) AlertGet(ctx context.Context, id string) (Alert, error) {
	var out Alert
	_, err := c.do(ctx, http.MethodGet, "/v1/alerts/"+url.PathEscape(id), nil, &out)
	return out, err
}

// AlertAck acknowledges alert id with a comment.
func (c *Client) AlertAck(ctx context.Context, id, comment string) (Alert, error) {
	var out Alert
	_, err := c.do(ctx, http.MethodPost, "/v1/alerts/"+url.PathEscape(id)+"/ack", map[string]string{"comment": comment}, &out)
	return out, err
}

// AlertClose closes alert id with a comment.
func (c *Client) AlertClose(ctx context.Context, id, comment string) (Alert, error) {
	var out Alert
	_, err := c.do(ctx, http.MethodPost, "/v1/alerts/"+url.PathEscape(id)+"/close", map[string]string{"comment": comment}, &out)
	return out, err
}

// AlertWatch follows GET /v1/alerts/stream: fn is called with every alert
// created or updated after index after (0: from now) and the index of its
// change. When the server ends the stream, AlertWatch reconnects from the
// last index it saw, so nothing is missed; it returns when ctx ends
// (ctx.Err()), when fn returns an error (that error), or when a request
// fails.
func (c *Client) AlertWatch(ctx context.Context, after uint64, fn func(a Alert, index uint64) error) error {
	for {
		err := c.alertStream(ctx, &after, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return err
		}
		select { // the stream ended (or broke): reconnect, not in a tight loop
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (c *Client) alertStream(ctx context.Context, after *uint64, fn func(Alert, uint64) error) error {
	path := "/v1/alerts/stream"
	if *after > 0 {
		path += "?after=" + strconv.FormatUint(*after, 10)
	}
	resp, err := c.openStream(ctx, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), MaxResponseBytes)
	var event, id string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event == "alert" && data.Len() > 0 {
				var a Alert
				if err := json.Unmarshal([]byte(data.String()), &a); err != nil {
					return fmt.Errorf("warden: alert stream: decode event %s: %w", id, err)
				}
				idx, _ := strconv.ParseUint(id, 10, 64)
				if err := fn(a, idx); err != nil {
					return err
				}
				*after = max(*after, idx)
			}
			event, id = "", ""
			data.Reset()
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		case strings.HasPrefix(line, "data:"):
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	// The stream ended, or the connection broke (sc.Err()): the caller
	// reconnects from the last index.
	return nil
}

// Notifier is a notification target; its secret is never returned.
type Notifier struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	URL         string `json:"url"`
	MinLevel    string `json:"min_level"`
	CreatedTime string `json:"created_time,omitempty"`
}

// NotifierPut creates or replaces a webhook notifier signed with secret.
func (c *Client) NotifierPut(ctx context.Context, n Notifier, secret []byte) (Notifier, error) {
	var out Notifier
	_, err := c.do(ctx, http.MethodPost, "/v1/notifiers", map[string]string{"name": n.Name, "type": n.Type, "url": n.URL,
		"min_level": n.MinLevel, "secret": string(secret)}, &out)
	return out, err
}

// NotifierList lists the notifiers.
func (c *Client) NotifierList(ctx context.Context) ([]Notifier, error) {
	var out struct {
		Notifiers []Notifier `json:"notifiers"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/notifiers", nil, &out)
	return out.Notifiers, err
}

// NotifierDelete deletes notifier name.
func (c *Client) NotifierDelete(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/notifiers/"+url.PathEscape(name), nil, nil)
	return err
}

// openStream GETs path as a stream of server-sent events: without the
// client's timeout (ctx ends it). A status other than 200 is an *APIError.
func (c *Client) openStream(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, fmt.Errorf("warden: GET %s: %w", path, err)
	}
	req.Header.Set("Accept", "text/event-stream")
	token := c.Token()
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := *c.http
	hc.Timeout = 0 // a stream lasts; ctx ends it
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("warden: GET %s: %w", path, redact(err, token))
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
		return nil, apiError(resp.StatusCode, data, token)
	}
	return resp, nil
}
