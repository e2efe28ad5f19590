package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Event is one event: ECS field name → value (strings, numbers, booleans,
// arrays of those).
type Event map[string]any

// EventSearch is what GET /v1/events asks: a query (docs/detection-stream.md)
// over the batches stored between Since and Until (RFC 3339 times or
// durations back from now such as "1h"; "" for the server's defaults: the
// last hour, until now), optionally of one host, at most Limit events.
type EventSearch struct {
	Query        string
	Since, Until string
	Host         string
	Limit        int
}

func (s EventSearch) values() url.Values {
	v := url.Values{}
	for k, x := range map[string]string{"query": s.Query, "since": s.Since, "until": s.Until, "host": s.Host} {
		if x != "" {
			v.Set(k, x)
		}
	}
	if s.Limit > 0 {
		v.Set("limit", strconv.Itoa(s.Limit))
	}
	return v
}

// EventSearchResult is the answer: the newest matching events, newest
// first; Matched counts all the window held, Truncated says there were
// more than Events.
type EventSearchResult struct {
	Events         []Event `json:"events"`
	Matched        int     `json:"matched"`
	Truncated      bool    `json:"truncated"`
	ScannedBatches int     `json:"scanned_batches"`
}

// EventsSearch searches the event stream (action events.read).
func (c *Client) EventsSearch(ctx context.Context, s EventSearch) (EventSearchResult, error) {
	var out EventSearchResult
	path := "/v1/events"
	if q := s.values().Encode(); q != "" {
		path += "?" + q
	}
	_, err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// EventsTail follows the stream from now on (GET /v1/events/tail, action
// events.read), calling fn with each event stored that matches s.Query
// and s.Host (Since, Until and Limit are not used), until ctx ends (it
// then returns nil) or fn errs (it returns that error).
func (c *Client) EventsTail(ctx context.Context, s EventSearch, fn func(Event) error) error {
	v := s.values()
	v.Del("limit")
	path := "/v1/events/tail"
	if q := v.Encode(); q != "" {
		path += "?" + q
	}
	resp, err := c.openStream(ctx, path)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	// A watchdog: the server writes a heartbeat every 15 s; silence for
	// far longer means the connection is gone.
	alive := make(chan struct{}, 1)
	go func() {
		t := time.NewTimer(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-alive:
				if !ok {
					return
				}
				t.Reset(time.Minute)
			case <-t.C:
				resp.Body.Close()
				return
			}
		}
	}()
	defer close(alive)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		select {
		case alive <- struct{}{}:
		default:
		}
		line := sc.Bytes()
		data, ok := bytes.CutPrefix(line, []byte("data: "))
		if !ok {
			continue // event names, heartbeats (comments), blank separators
		}
		var ev Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("warden: tail: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("warden: tail: %w", err)
	}
	return errors.New("warden: tail: the server closed the stream")
}
