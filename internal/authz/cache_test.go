package authz

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestCache(t *testing.T) {
	docs := map[string]string{"p": `permit(principal, action, resource);`}
	var c Cache // the zero value is ready
	var builds atomic.Int32
	build := func() (*PolicySet, error) {
		builds.Add(1)
		return Compile(docs, "")
	}

	t.Run("reuse while the version is unchanged", func(t *testing.T) {
		a, err := c.Get("store", 1, build)
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Get("store", 1, build)
		if err != nil || a != b {
			t.Fatalf("second Get: %p %p %v", a, b, err)
		}
		if n := builds.Load(); n != 1 {
			t.Fatalf("%d builds, want 1", n)
		}
	})
	t.Run("stores are separate", func(t *testing.T) {
		builds.Store(0)
		if _, err := c.Get("other", 1, build); err != nil {
			t.Fatal(err)
		}
		if n := builds.Load(); n != 1 {
			t.Fatalf("%d builds, want 1", n)
		}
	})
	t.Run("rebuild on a new version", func(t *testing.T) {
		builds.Store(0)
		a, _ := c.Get("store", 1, build)
		b, err := c.Get("store", 2, build)
		if err != nil || a == b || builds.Load() != 1 {
			t.Fatalf("version 2: same set %v, %d builds, %v", a == b, builds.Load(), err)
		}
		c2, _ := c.Get("store", 2, build)
		if c2 != b || builds.Load() != 1 {
			t.Fatalf("version 2 not reused")
		}
	})
	t.Run("an older version does not replace the newer one", func(t *testing.T) {
		builds.Store(0)
		newer, _ := c.Get("store", 2, build)
		older, err := c.Get("store", 1, build)
		if err != nil || older == newer || builds.Load() != 1 {
			t.Fatalf("old version: %v, %d builds", err, builds.Load())
		}
		if again, _ := c.Get("store", 2, build); again != newer || builds.Load() != 1 {
			t.Fatalf("newer entry was replaced")
		}
	})
	t.Run("errors are returned and not cached", func(t *testing.T) {
		boom := errors.New("boom")
		if _, err := c.Get("bad", 1, func() (*PolicySet, error) { return nil, boom }); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		ps, err := c.Get("bad", 1, build)
		if err != nil || ps == nil {
			t.Fatalf("retry after error: %v", err)
		}
		if _, err := c.Get("nil", 1, func() (*PolicySet, error) { return nil, nil }); err == nil {
			t.Fatalf("a nil set without error was accepted")
		}
	})
	t.Run("concurrent callers share one build", func(t *testing.T) {
		builds.Store(0)
		release := make(chan struct{})
		slow := func() (*PolicySet, error) {
			<-release
			return build()
		}
		const n = 16
		var wg sync.WaitGroup
		sets := make([]*PolicySet, n)
		for i := range n {
			wg.Go(func() {
				ps, err := c.Get("busy", 7, slow)
				if err != nil {
					t.Error(err)
				}
				sets[i] = ps
			})
		}
		close(release)
		wg.Wait()
		if n := builds.Load(); n != 1 {
			t.Errorf("%d builds, want 1", n)
		}
		for i := range sets {
			if sets[i] != sets[0] {
				t.Fatalf("callers got different sets")
			}
		}
	})
	t.Run("a panicking build releases waiters", func(t *testing.T) {
		func() {
			defer func() { _ = recover() }()
			_, _ = c.Get("panics", 1, func() (*PolicySet, error) { panic("boom") })
		}()
		ps, err := c.Get("panics", 1, build)
		if err != nil || ps == nil {
			t.Fatalf("after panic: %v", err)
		}
	})
	t.Run("forget", func(t *testing.T) {
		builds.Store(0)
		_, _ = c.Get("gone", 1, build)
		c.Forget("gone")
		_, _ = c.Get("gone", 1, build)
		if n := builds.Load(); n != 2 {
			t.Fatalf("%d builds, want 2", n)
		}
	})
}
