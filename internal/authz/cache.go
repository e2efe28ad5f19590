package authz

import (
	"errors"
	"sync"
)

// Cache keeps one compiled [PolicySet] per policy store, so that requests
// reuse it until the store's version changes. The zero value is an empty
// cache ready to use; a Cache must not be copied after first use. It is
// safe for concurrent use.
//
// Entries are never evicted except by [Cache.Forget]: a Cache holds at most
// one set per store name, and the number of stores is bounded by whoever
// creates them.
type Cache struct {
	mu      sync.Mutex
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	version uint64
	done    chan struct{} // closed when ps and err are set
	ps      *PolicySet
	err     error
}

// errBuildPanicked is returned to callers that waited for a build that
// panicked.
var errBuildPanicked = errors.New("authz: policy set build panicked")

// Get returns the compiled set of store name at version. If the cache holds
// that version it is returned; otherwise build is called (typically: load
// the store's policies and schema, then [Compile]) and its result is cached
// and returned. Concurrent callers asking for the same name and version
// share one call of build.
//
// Errors from build are returned to the callers that waited for that call
// and are not cached: the next Get calls build again. A version older than
// the cached one (a reader behind the latest write) is built and returned
// but does not replace the newer entry.
func (c *Cache) Get(name string, version uint64, build func() (*PolicySet, error)) (*PolicySet, error) {
	c.mu.Lock()
	if c.entries == nil {
		c.entries = make(map[string]*cacheEntry)
	}
	e := c.entries[name]
	if e != nil && e.version == version {
		c.mu.Unlock()
		<-e.done
		return e.ps, e.err
	}
	if e != nil && e.version > version {
		c.mu.Unlock()
		return build()
	}
	e = &cacheEntry{version: version, done: make(chan struct{})}
	c.entries[name] = e
	c.mu.Unlock()

	finished := false
	defer func() {
		if !finished { // build panicked
			e.err = errBuildPanicked
		}
		if e.err != nil {
			c.mu.Lock()
			if c.entries[name] == e {
				delete(c.entries, name)
			}
			c.mu.Unlock()
		}
		close(e.done)
	}()
	e.ps, e.err = build()
	if e.err == nil && e.ps == nil {
		e.err = errors.New("authz: policy set build returned nil")
	}
	finished = true
	return e.ps, e.err
}

// Forget drops the cached set of store name, for example when the store is
// deleted.
func (c *Cache) Forget(name string) {
	c.mu.Lock()
	delete(c.entries, name)
	c.mu.Unlock()
}
