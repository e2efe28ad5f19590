package authz

import (
	"container/list"
	"crypto/sha256"
	"sync"
)

// EntityCache remembers the entity sets that check requests carry, keyed
// by the SHA-256 of their JSON bytes, so that a client sending the same set
// again and again (a user's groups, a resource's folders) pays for parsing
// it once. It is content-addressed: an entry can never be stale, so there
// is no invalidation, only eviction of the least recently used sets beyond
// a count and a byte bound (the bytes are the sets' JSON sizes, a proxy for
// the memory they hold).
//
// A set is cached only when its bytes are seen a second time while still
// remembered as recently seen, so that sets sent once (a new resource with
// every request) neither evict useful ones nor pay for the insertion.
//
// The cached Entities are shared by every request that sends the same
// bytes: they must never be modified, which Entities guarantees (it has no
// method that writes; [Entities.With] builds a new collection).
//
// The zero value is not usable; make one with [NewEntityCache]. A nil
// *EntityCache caches nothing. It is safe for concurrent use.
type EntityCache struct {
	maxSets  int
	maxBytes int

	mu    sync.Mutex
	lru   *list.List // of *cachedSet, most recently used first
	sets  map[[sha256.Size]byte]*list.Element
	bytes int
	seen  map[[sha256.Size]byte]struct{} // seen once, not cached yet
}

type cachedSet struct {
	key  [sha256.Size]byte
	size int
	es   Entities
}

// NewEntityCache returns a cache holding at most maxSets entity sets whose
// JSON forms total at most maxBytes. A set larger than maxBytes/8 is never
// cached. maxSets < 1 makes a nil cache (no caching).
func NewEntityCache(maxSets, maxBytes int) *EntityCache {
	if maxSets < 1 || maxBytes < 1 {
		return nil
	}
	return &EntityCache{
		maxSets:  maxSets,
		maxBytes: maxBytes,
		lru:      list.New(),
		sets:     make(map[[sha256.Size]byte]*list.Element),
		seen:     make(map[[sha256.Size]byte]struct{}),
	}
}

// Len returns the number of cached sets.
func (c *EntityCache) Len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// get returns the set whose JSON is raw, from the cache or by calling
// parse (outside the lock), which caches it when it is seen again.
func (c *EntityCache) get(raw []byte, parse func([]byte) (Entities, bool)) (Entities, bool) {
	if c == nil || len(raw) > c.maxBytes/8 {
		return parse(raw)
	}
	key := sha256.Sum256(raw)
	c.mu.Lock()
	if el, ok := c.sets[key]; ok {
		c.lru.MoveToFront(el)
		es := el.Value.(*cachedSet).es
		c.mu.Unlock()
		return es, true
	}
	_, again := c.seen[key]
	if !again {
		if len(c.seen) >= c.maxSets {
			clear(c.seen) // forget the one-off sets in bulk
		}
		c.seen[key] = struct{}{}
	}
	c.mu.Unlock()

	es, ok := parse(raw)
	if !ok || !again {
		return es, ok
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.seen, key)
	if _, ok := c.sets[key]; ok { // another request cached it meanwhile
		return es, true
	}
	c.sets[key] = c.lru.PushFront(&cachedSet{key: key, size: len(raw), es: es})
	c.bytes += len(raw)
	for c.lru.Len() > c.maxSets || c.bytes > c.maxBytes {
		old := c.lru.Remove(c.lru.Back()).(*cachedSet)
		delete(c.sets, old.key)
		c.bytes -= old.size
	}
	return es, true
}
