package periodic

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWhileLeader: the job runs only when leader() holds, its errors go to
// failed, and WhileLeader returns when ctx ends. leader is asked before
// each run, so its fourth call comes after the two runs it allowed ended.
func TestWhileLeader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls, runs := 0, 0
	var failures []error
	boom := errors.New("boom")
	WhileLeader(ctx, time.Millisecond, func() bool {
		calls++
		if calls == 4 {
			cancel()
		}
		return calls == 2 || calls == 3
	}, func(context.Context) error {
		runs++
		if runs == 2 {
			return boom
		}
		return nil
	}, func(err error) { failures = append(failures, err) })
	if runs != 2 || len(failures) != 1 || failures[0] != boom {
		t.Fatalf("runs %d, failures %v; want 2 runs and the second's error", runs, failures)
	}
}
