package authz

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
)

// sameCheckRequest reports how a and b differ, or "" if they decode to the
// same request.
func sameCheckRequest(a, b CheckRequest) string {
	switch {
	case a.Principal != b.Principal || a.Action != b.Action || a.Resource != b.Resource:
		return fmt.Sprintf("UIDs %v %v %v != %v %v %v", a.Principal, a.Action, a.Resource, b.Principal, b.Action, b.Resource)
	case !a.Context.Equal(b.Context):
		return fmt.Sprintf("context %v != %v", a.Context, b.Context)
	case a.Entities.Len() != b.Entities.Len():
		return fmt.Sprintf("%d entities != %d", a.Entities.Len(), b.Entities.Len())
	}
	for uid, ea := range a.Entities.flat() {
		eb, ok := b.Entities.Get(uid)
		if !ok || !ea.Equal(eb) {
			return fmt.Sprintf("entity %v: %+v != %+v", uid, ea, eb)
		}
	}
	return ""
}

// checkSeeds are requests in the shapes clients send, and near misses.
var checkSeeds = []string{
	`{"principal": "User::\"bob\"", "action": "Action::\"kv.read\"", "resource": {"type": "Secret", "id": "a/b"}}`,
	`{"principal": {"__entity": {"type": "User", "id": "bob"}}, "action": "Action::\"kv.read\"", "resource": "Secret::\"x\"", "context": {"n": 1, "ip": {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}, "s": [1, 2], "r": {"a": true}}, "entities": [{"uid": {"type": "User", "id": "bob"}, "attrs": {"team": "ops"}, "parents": [{"type": "Group", "id": "ops"}], "tags": {"t": "v"}}]}`,
	`{"principal": "User::\"\\u{e9}\"", "action": "A::\"b\"", "resource": "R::\"c\"", "entities": []}`,
	`{"principal":"User::\"u1\"","action":"Action::\"read\"","resource":"Doc::\"d7\"","context":{"amount":7},"entities":[{"uid":{"type":"Doc","id":"d7"},"attrs":{"team":"team-1"},"parents":[]}]}`,
	`{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\"","context":{"x":{"__entity":{"type":"U","id":"a"}},"y":[{"__extn":{"fn":"decimal","arg":"1.5"}},[],{}],"z":{"__entity":5}}}`,
	`{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\"","context":{"w":{"__extn":{"fn":"ip","arg":"x"}}}}`,
	`{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\"","context":{"__entity":{"type":"U","id":"a"}}}`,
	`{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\"","context":{"a":1,"__extn":2}}`,
	`{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\"","context":{"n":-9223372036854775808,"m":9223372036854775807,"z":0,"s":[1,1,"1"]}}`,
	`{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\"","context":{"n":-0}}`,
	`{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\"","context":{"n":9223372036854775808}}`,
	`{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\"","context":{"n":1e2}}`,
	`{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\"","context":{"n":1,"n":2}}`,
	`{"princip\u0061l":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\""}`,
	`{"principal":"U::\"a\"","action":"A::\"b\"","resource":{"__entity":{"type":"R","id":"c"},"type":"R"}}`,
	`{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\"","entities":[{"uid":{"__entity":{"type":"R","id":"c"}},"attrs":{},"parents":[{"__entity":{"type":"G","id":"g"}},{"type":"G","id":"g"}],"tags":{}}]}`,
	`{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\"","entities":[{"uid":{"type":"R","id":"c"},"attrs":{},"parents":[]},{"uid":{"type":"R","id":"c"},"attrs":{},"parents":[]}]}`,
	`{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\"","entities":[{"uid":"R::\"c\"","attrs":{},"parents":[]}]}`,
	`{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\"","entities":[{"uid":{"type":"R","id":"c"},"attrs":null,"parents":[]}]}`,
	`{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\""} `,
	`{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\""} x`,
	`{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\"","entities":[{"uid":{"type":"R","id":"c"},"attrs":{"o":{"a":1,"__entity":{"type":"U","id":"a"}}},"parents":[]},{"uid":{"type":"R","id":"d"},"attrs":{"o":{"b":2}},"parents":[]}]}`,
	`{"principal": 1}`,
	`{"Principal": "User::\"a\""}`,
	`[]`,
	``,
	`{"principal": "User::\"a\"", "principal": "User::\"b\""}`,
}

// FuzzFastDecoder checks the fast path against the reference decoder:
// whatever the fast path accepts, the reference accepts and decodes to the
// same request, with and without the entity cache.
func FuzzFastDecoder(f *testing.F) {
	for _, s := range checkSeeds {
		f.Add([]byte(s))
	}
	cache := NewEntityCache(64, 1<<20)
	f.Fuzz(func(t *testing.T, data []byte) {
		ref, refErr := decodeCheckRequestReference(data)
		for _, c := range []*EntityCache{nil, cache, cache, cache} { // the third sees a cached set
			fast, ok := decodeCheckRequestFast(data, c)
			if !ok {
				continue
			}
			if refErr != nil {
				t.Fatalf("fast path accepts what the reference refuses (%v)", refErr)
			}
			if diff := sameCheckRequest(fast, ref); diff != "" {
				t.Fatalf("fast != reference: %s", diff)
			}
		}
	})
}

// TestFastDecoderTakesUsualShapes checks that requests in the documented
// shapes stay on the fast path (a change that sent them to the reference
// decoder would still pass every other test, only slowly), and that the
// fast path leaves the rest, and every error, to the reference decoder.
func TestFastDecoderTakesUsualShapes(t *testing.T) {
	fast := []int{0, 1, 2, 3, 4, 8, 15, 19, 21}
	for _, i := range fast {
		t.Run(fmt.Sprint("seed ", i), func(t *testing.T) {
			got, ok := decodeCheckRequestFast([]byte(checkSeeds[i]), nil)
			if !ok {
				t.Fatalf("left to the reference decoder: %s", checkSeeds[i])
			}
			want, err := decodeCheckRequestReference([]byte(checkSeeds[i]))
			if err != nil {
				t.Fatal(err)
			}
			if diff := sameCheckRequest(got, want); diff != "" {
				t.Fatal(diff)
			}
		})
	}
	for i, s := range checkSeeds {
		if _, err := decodeCheckRequestReference([]byte(s)); err == nil {
			continue
		}
		if _, ok := decodeCheckRequestFast([]byte(s), nil); ok {
			t.Errorf("seed %d: the fast path accepts an invalid request: %s", i, s)
		}
	}
}

func TestEntityCache(t *testing.T) {
	mk := func(i int) []byte {
		return fmt.Appendf(nil, `{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\"","entities":[{"uid":{"type":"R","id":"c%d"},"attrs":{"v":%d},"parents":[{"type":"G","id":"g"}]}]}`, i, i)
	}
	c := NewEntityCache(4, 1<<20)
	decode := func(i int) CheckRequest {
		t.Helper()
		cr, err := DecodeCheckRequestCached(mk(i), c)
		if err != nil {
			t.Fatal(err)
		}
		e, ok := cr.Entities.Get(types.NewEntityUID("R", types.String(fmt.Sprint("c", i))))
		if v, _ := e.Attributes.Get("v"); !ok || v != types.Long(i) {
			t.Fatalf("set %d decoded as %+v", i, cr.Entities)
		}
		return cr
	}
	decode(0)
	if c.Len() != 0 {
		t.Fatalf("a set seen once is cached")
	}
	first := decode(0)
	if c.Len() != 1 {
		t.Fatalf("a set seen twice is not cached: Len %d", c.Len())
	}
	again := decode(0)
	if again.Entities.base == nil || fmt.Sprintf("%p", again.Entities.base) != fmt.Sprintf("%p", first.Entities.base) {
		t.Errorf("the third request did not get the cached set")
	}

	// Merging a request's set over stored entities, as the decision API
	// does, leaves the cached set as it was.
	stored := mustEntities(t, `[{"uid": {"type": "R", "id": "c0"}, "attrs": {"v": 99}, "parents": []}, {"uid": {"type": "R", "id": "s"}, "attrs": {}, "parents": []}]`)
	merged := stored.With(again.Entities)
	_ = merged.With(mustEntities(t, `[{"uid": {"type": "R", "id": "c0"}, "attrs": {"v": 7}, "parents": []}]`))
	if again.Entities.Len() != 1 {
		t.Errorf("the cached set grew to %d entities", again.Entities.Len())
	}
	decode(0)

	// Bounded by count: least recently used sets go first.
	for i := 1; i <= 6; i++ {
		decode(i)
		decode(i)
	}
	if c.Len() != 4 {
		t.Errorf("Len = %d, want 4", c.Len())
	}
	// Bounded by bytes, and sets larger than an eighth of the bound are
	// never cached.
	small := NewEntityCache(100, 8*len(mk(0)))
	for i := range 20 {
		for range 2 {
			if _, err := DecodeCheckRequestCached(mk(i), small); err != nil {
				t.Fatal(err)
			}
		}
	}
	if small.bytes > small.maxBytes || small.Len() == 0 || small.Len() == 20 {
		t.Errorf("byte bound %d: %d sets, %d bytes", small.maxBytes, small.Len(), small.bytes)
	}
	tiny := NewEntityCache(100, 8)
	for range 3 {
		if _, err := DecodeCheckRequestCached(mk(0), tiny); err != nil {
			t.Fatal(err)
		}
	}
	if tiny.Len() != 0 {
		t.Errorf("a set larger than maxBytes/8 is cached")
	}
	if NewEntityCache(0, 1) != nil || (*EntityCache)(nil).Len() != 0 {
		t.Errorf("a cache of no sets should be nil")
	}
}

// TestEntityCacheConcurrent is for the race detector: many requests
// sending the same and different sets at once.
func TestEntityCacheConcurrent(t *testing.T) {
	c := NewEntityCache(8, 1<<20)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				n := (g + i) % 12
				body := fmt.Sprintf(`{"principal":"U::\"a\"","action":"A::\"b\"","resource":"R::\"c\"","entities":[{"uid":{"type":"R","id":"c%d"},"attrs":{"v":%d},"parents":[]}]}`, n, n)
				cr, err := DecodeCheckRequestCached([]byte(body), c)
				if err != nil {
					t.Error(err)
					return
				}
				e, _ := cr.Entities.Get(types.NewEntityUID("R", types.String(fmt.Sprint("c", n))))
				if v, _ := e.Attributes.Get("v"); v != types.Long(n) {
					t.Errorf("set %d: v = %v", n, v)
					return
				}
			}
		}()
	}
	wg.Wait()
	if c.Len() > 8 {
		t.Errorf("Len = %d > 8", c.Len())
	}
}

func BenchmarkDecodeCheckRequest(b *testing.B) {
	body := []byte(checkSeeds[3])
	withRefs := []byte(`{"principal":"User::\"u1\"","action":"Action::\"read\"","resource":"Doc::\"d7\"","context":{"amount":7,"src":{"__extn":{"fn":"ip","arg":"10.0.0.1"}}},` +
		`"entities":[{"uid":{"type":"Doc","id":"d7"},"attrs":{"team":"team-1","owner":{"__entity":{"type":"User","id":"u1"}}},"parents":[{"type":"Folder","id":"f"}]},` +
		`{"uid":{"type":"Folder","id":"f"},"attrs":{"name":"` + strings.Repeat("x", 40) + `"},"parents":[]}]}`)
	cache := NewEntityCache(16, 1<<20)
	for _, bc := range []struct {
		name string
		body []byte
		fn   func([]byte) (CheckRequest, error)
	}{
		{"reference", body, decodeCheckRequestReference},
		{"fast", body, DecodeCheckRequest},
		{"reference/refs", withRefs, decodeCheckRequestReference},
		{"fast/refs", withRefs, DecodeCheckRequest},
		{"fast/refs/cached", withRefs, func(d []byte) (CheckRequest, error) { return DecodeCheckRequestCached(d, cache) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.fn(bc.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeEntities compares cedar-go's own unmarshaler of an entity
// array (which the fast path could have used) with the fast path's, on the
// entities of BenchmarkDecodeCheckRequest's "refs" body.
func BenchmarkDecodeEntities(b *testing.B) {
	ents := []byte(`[{"uid":{"type":"Doc","id":"d7"},"attrs":{"team":"team-1","owner":{"__entity":{"type":"User","id":"u1"}}},"parents":[{"type":"Folder","id":"f"}]},` +
		`{"uid":{"type":"Folder","id":"f"},"attrs":{"name":"` + strings.Repeat("x", 40) + `"},"parents":[]}]`)
	b.Run("cedar-go EntityMap.UnmarshalJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m types.EntityMap
			if err := m.UnmarshalJSON(ents); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f := checkDecoders.Get().(*checkDecoder)
			f.reset(ents)
			if _, ok := f.entities(); !ok {
				b.Fatal("not decoded")
			}
			f.reset(nil)
			checkDecoders.Put(f)
		}
	})
}
