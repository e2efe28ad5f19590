package auditlog

import (
	"context"
	"sync"

	"github.com/warden-sec/warden/internal/errs"
)

// groupCommit gathers the items of concurrent callers into batches and
// commits them with one call of commit per batch, from one goroutine at a
// time: while a batch commits, the next one fills. Each caller waits for
// its own batch. The zero value needs commit set; safe for concurrent use.
type groupCommit[T any] struct {
	// commit makes a batch durable and returns a number for its first item
	// (the journal's sequence; the later items get the following ones).
	commit func(items []T) (first uint64, err error)

	mu      sync.Mutex
	next    *gcBatch[T]
	running bool
}

type gcBatch[T any] struct {
	items []T
	done  chan struct{}
	first uint64
	err   error
}

// add commits item with the next batch and returns its number. If ctx
// ends first it returns an Unavailable error (what must wait says what),
// and the item may still be committed.
func (g *groupCommit[T]) add(ctx context.Context, item T, what string) (uint64, error) {
	g.mu.Lock()
	b := g.next
	if b == nil {
		b = &gcBatch[T]{done: make(chan struct{})}
		g.next = b
	}
	i := uint64(len(b.items))
	b.items = append(b.items, item)
	if !g.running {
		g.running = true
		go g.run()
	}
	g.mu.Unlock()
	select {
	case <-b.done:
		return b.first + i, b.err
	case <-ctx.Done():
		return 0, errs.Wrap(errs.Unavailable, ctx.Err(), "%s not durable in time", what)
	}
}

// run commits batches while there are any.
func (g *groupCommit[T]) run() {
	for {
		g.mu.Lock()
		b := g.next
		g.next = nil
		if b == nil {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		b.first, b.err = g.commit(b.items)
		close(b.done)
	}
}
