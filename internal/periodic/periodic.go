// Package periodic runs a server's background job every interval while
// this server leads: the leader's chores (collecting old decisions,
// rotating transit keys on schedule) that must run on one server only.
//
// periodic knows nothing about Raft or leadership itself: the caller says,
// with leader, whether to run now.
package periodic

import (
	"context"
	"time"
)

// WhileLeader calls job every interval, each time leader() holds, until
// ctx ends. A job's error, unless ctx has ended, goes to failed (nil:
// dropped); the next interval tries again. Jobs never overlap: the next
// waits for the previous to return.
func WhileLeader(ctx context.Context, interval time.Duration, leader func() bool, job func(context.Context) error, failed func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !leader() {
			continue
		}
		if err := job(ctx); err != nil && ctx.Err() == nil && failed != nil {
			failed(err)
		}
	}
}
