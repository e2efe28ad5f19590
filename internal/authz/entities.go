package authz

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/cedar-policy/cedar-go/types"
)

// MaxEntities is the largest number of entities [ParseEntities] accepts in
// one document.
const MaxEntities = 100_000

// Entities is an immutable collection of Cedar entities: the principals,
// resources, groups and actions that policies refer to, with their
// attributes and parents. A store keeps its entities; a request may carry
// more, which override stored ones with the same UID (see [Entities.With]).
//
// The zero value is an empty collection. Entities is a small value, safe to
// copy and to use concurrently; nothing in it may be modified after it is
// built (NewEntities copies its input; ParseEntities owns what it decodes).
type Entities struct {
	top  types.EntityMap // looked up first; may be nil
	base types.EntityMap // may be nil
}

var _ types.EntityGetter = Entities{}

// NewEntities returns a collection of the given entities. Two entities with
// the same UID are an error wrapping ErrInvalid.
func NewEntities(list ...types.Entity) (Entities, error) {
	m := make(types.EntityMap, len(list))
	for i, e := range list {
		if _, dup := m[e.UID]; dup {
			return Entities{}, fieldErr(fmt.Sprintf("entities[%d]", i), "duplicate entity %s", e.UID)
		}
		m[e.UID] = e
	}
	return Entities{base: m}, nil
}

// ParseEntities decodes entities in Cedar's JSON entity format:
//
//	[{"uid": {"type": "User", "id": "bob"},
//	  "attrs": {"team": "ops"},
//	  "parents": [{"type": "Group", "id": "ops"}],
//	  "tags": {}}]
//
// "uid", "attrs" and "parents" are required, "tags" is optional. UIDs may
// also use the explicit form {"__entity": {"type": ..., "id": ...}}.
// Attribute values follow Cedar's schemaless JSON rules (strings, booleans,
// 64-bit integers, arrays as sets, objects as records, {"__entity": ...} for
// entity references, {"__extn": {"fn": "ip", "arg": "10.0.0.1"}} for
// extension values). Decoding is strict: unknown or repeated members,
// duplicate entities, invalid UTF-8, null and trailing data are errors, each
// a *FieldError naming the element ("entities[3].parents[0]"). An empty
// input is an error; "[]" is an empty collection.
func ParseEntities(data []byte) (Entities, error) {
	return parseEntities("entities", data)
}

func parseEntities(field string, data []byte) (Entities, error) {
	if !utf8.Valid(data) {
		return Entities{}, fieldErr(field, "invalid UTF-8")
	}
	elems, err := decodeArray(field, data, MaxEntities)
	if err != nil {
		return Entities{}, err
	}
	m := make(types.EntityMap, len(elems))
	for i, raw := range elems {
		f := fmt.Sprintf("%s[%d]", field, i)
		e, err := decodeEntity(f, raw)
		if err != nil {
			return Entities{}, err
		}
		if _, dup := m[e.UID]; dup {
			return Entities{}, fieldErr(f, "duplicate entity %s", e.UID)
		}
		m[e.UID] = e
	}
	return Entities{base: m}, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func decodeEntity(field string, raw json.RawMessage) (types.Entity, error) {
	members, err := decodeObject(field, raw, "uid", "attrs", "parents", "tags")
	if err != nil {
		return types.Entity{}, err
	}
	for _, name := range []string{"uid", "attrs", "parents"} {
		if v, ok := members[name]; !ok || isNull(v) {
			return types.Entity{}, fieldErr(field, "%q is required", name)
		}
	}
	var e types.Entity
	if e.UID, err = decodeUIDJSON(field+".uid", members["uid"], false); err != nil {
		return types.Entity{}, err
	}
	parents, err := decodeArray(field+".parents", members["parents"], MaxEntities)
	if err != nil {
		return types.Entity{}, err
	}
	uids := make([]types.EntityUID, len(parents))
	for i, p := range parents {
		if uids[i], err = decodeUIDJSON(fmt.Sprintf("%s.parents[%d]", field, i), p, false); err != nil {
			return types.Entity{}, err
		}
	}
	e.Parents = types.NewEntityUIDSet(uids...)
	if e.Attributes, err = decodeRecord(field+".attrs", members["attrs"]); err != nil {
		return types.Entity{}, err
	}
	if tags, ok := members["tags"]; ok {
		if isNull(tags) {
			return types.Entity{}, fieldErr(field+".tags", "must be an object, not null")
		}
		if e.Tags, err = decodeRecord(field+".tags", tags); err != nil {
			return types.Entity{}, err
		}
	}
	return e, nil
}

// decodeRecord decodes a JSON object into a Cedar record with cedar-go's
// schemaless rules (duplicate member names are rejected).
func decodeRecord(field string, raw json.RawMessage) (types.Record, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return types.Record{}, fieldErr(field, "must be a JSON object")
	}
	var r types.Record
	if err := r.UnmarshalJSON(raw); err != nil {
		return types.Record{}, fieldErr(field, "%s", err.Error())
	}
	return r, nil
}

// Get returns the entity with the given UID, looking in the overriding
// collection first. It makes Entities a cedar-go types.EntityGetter.
func (e Entities) Get(uid types.EntityUID) (types.Entity, bool) {
	if ent, ok := e.top[uid]; ok {
		return ent, true
	}
	ent, ok := e.base[uid]
	return ent, ok
}

// Len returns the number of distinct UIDs in the collection.
func (e Entities) Len() int {
	if len(e.top) == 0 {
		return len(e.base)
	}
	n := len(e.base)
	for uid := range e.top {
		if _, ok := e.base[uid]; !ok {
			n++
		}
	}
	return n
}

// With returns a collection holding e's entities and override's, where an
// entity in override replaces the one with the same UID in e (Warden's rule
// for request entities over stored ones). It copies neither collection
// (unless one is itself the result of With, which is flattened first), so
// merging a request's entities over a large stored collection costs nothing
// per request.
func (e Entities) With(override Entities) Entities {
	switch {
	case override.Len() == 0:
		return e
	case e.Len() == 0:
		return override
	}
	return Entities{top: override.flat(), base: e.flat()}
}

// flat returns e's entities as one map, copying only if e is layered.
func (e Entities) flat() types.EntityMap {
	if len(e.top) == 0 {
		return e.base
	}
	if len(e.base) == 0 {
		return e.top
	}
	m := make(types.EntityMap, len(e.top)+len(e.base))
	for uid, ent := range e.base {
		m[uid] = ent
	}
	for uid, ent := range e.top {
		m[uid] = ent
	}
	return m
}

// MarshalJSON encodes the collection in Cedar's JSON entity format, sorted
// by UID, so that ParseEntities reads it back.
func (e Entities) MarshalJSON() ([]byte, error) {
	m := e.flat()
	if m == nil {
		return []byte("[]"), nil
	}
	return m.MarshalJSON()
}
