package authz

import (
	"bytes"
	"io"
	"sync"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/go-json-experiment/json/jsontext"
)

// checkDecoder decodes the usual shapes of a check request in one pass over
// the JSON tokens, straight into Cedar values, without reflection and
// without copying member values out first. It is the fast path of
// [DecodeCheckRequest]: it answers ok = false for anything it does not
// handle itself and for every error, and the caller then runs the
// reference decoder (decodeCheckRequestReference), which produces the
// value or the error message. So the contract of DecodeCheckRequest, its
// errors included, is the reference decoder's, and the fast path only has
// to agree with it on what it accepts (FuzzFastDecoder checks that).
//
// Left to the reference decoder: member names with escapes, and null where
// a value is required. Records holding an "__entity" or "__extn" member
// are decoded here by cedar-go's own unmarshaler on that object's bytes,
// as the reference decoder does.
//
// A checkDecoder is reused through checkDecoders; it holds no reference to
// a request's data once decode returns.
type checkDecoder struct {
	dec  jsontext.Decoder
	buf  bytes.Buffer
	data []byte
	vals []types.Value     // stack of set elements being decoded
	recs []types.RecordMap // a scratch map per depth of records being decoded
	deep int               // records being decoded
	uids []types.EntityUID // parents of the entity being decoded
}

var checkDecoders = sync.Pool{New: func() any { return new(checkDecoder) }}

// fastOptions: duplicate names are found by the decoder itself (member
// bits, record maps), which is cheaper than jsontext's name tracking;
// invalid UTF-8 is refused by jsontext as it reads.
var fastOptions = jsontext.AllowDuplicateNames(true)

func decodeCheckRequestFast(data []byte, cache *EntityCache) (CheckRequest, bool) {
	if len(data) > MaxCheckRequestBytes {
		return CheckRequest{}, false
	}
	f := checkDecoders.Get().(*checkDecoder)
	f.reset(data)
	cr, ok := f.checkRequest(cache)
	f.reset(nil)
	checkDecoders.Put(f)
	if !ok {
		return CheckRequest{}, false
	}
	return cr, true
}

func (f *checkDecoder) reset(data []byte) {
	f.data = data
	f.buf = *bytes.NewBuffer(data)
	f.dec.Reset(&f.buf, fastOptions)
	clear(f.vals[:cap(f.vals)])
	f.vals = f.vals[:0]
	f.uids = f.uids[:0]
	for i, m := range f.recs {
		if len(m) > 64 {
			f.recs[i] = nil // do not keep a large map in the pool
		} else {
			clear(m)
		}
	}
	f.deep = 0
}

// end reads the closing token of the current object or array.
func (f *checkDecoder) end() bool {
	_, err := f.dec.ReadToken()
	return err == nil
}

// begin reads an opening token of the given kind ('{' or '[').
func (f *checkDecoder) begin(kind jsontext.Kind) bool {
	if f.dec.PeekKind() != kind {
		return false
	}
	_, err := f.dec.ReadToken()
	return err == nil
}

// name reads a member name and returns its bytes without the quotes, or
// ok = false for a name with escapes (the reference decoder handles those).
// The bytes are valid until the next read.
func (f *checkDecoder) name() ([]byte, bool) {
	v, err := f.dec.ReadValue()
	if err != nil || len(v) < 2 || bytes.IndexByte(v, '\\') >= 0 {
		return nil, false
	}
	return v[1 : len(v)-1], true
}

// str reads a JSON string value.
func (f *checkDecoder) str() (string, bool) {
	if f.dec.PeekKind() != '"' {
		return "", false
	}
	tok, err := f.dec.ReadToken()
	if err != nil {
		return "", false
	}
	return tok.String(), true
}

// object reads a JSON object, giving each member's name to member, which
// decodes its value and returns the bit that names the member. A member
// may appear once. It returns the bits of the members seen.
func (f *checkDecoder) object(member func(name []byte) (bit uint8, ok bool)) (uint8, bool) {
	if !f.begin('{') {
		return 0, false
	}
	var seen uint8
	for f.dec.PeekKind() == '"' {
		name, ok := f.name()
		if !ok {
			return 0, false
		}
		bit, ok := member(name)
		if !ok || seen&bit != 0 {
			return 0, false
		}
		seen |= bit
	}
	if !f.end() {
		return 0, false
	}
	return seen, true
}

func (f *checkDecoder) checkRequest(cache *EntityCache) (CheckRequest, bool) {
	const (
		principal = 1 << iota
		action
		resource
		context
		entities
	)
	var cr CheckRequest
	seen, ok := f.object(func(name []byte) (bit uint8, ok bool) {
		switch string(name) {
		case "principal":
			cr.Principal, ok = f.uid(true)
			return principal, ok
		case "action":
			cr.Action, ok = f.uid(true)
			return action, ok
		case "resource":
			cr.Resource, ok = f.uid(true)
			return resource, ok
		case "context":
			cr.Context, ok = f.topRecord()
			return context, ok
		case "entities":
			cr.Entities, ok = f.entitiesCached(cache)
			return entities, ok
		}
		return 0, false
	})
	if !ok || seen&(principal|action|resource) != principal|action|resource {
		return CheckRequest{}, false
	}
	if _, err := f.dec.ReadToken(); err != io.EOF {
		return CheckRequest{}, false
	}
	return cr, true
}

// uid reads an entity UID in the forms decodeUIDJSON accepts.
func (f *checkDecoder) uid(allowText bool) (types.EntityUID, bool) {
	switch f.dec.PeekKind() {
	case '"':
		if !allowText {
			return types.EntityUID{}, false
		}
		s, ok := f.str()
		if !ok {
			return types.EntityUID{}, false
		}
		uid, err := ParseUID(s)
		return uid, err == nil
	case '{':
		return f.uidObject(true)
	}
	return types.EntityUID{}, false
}

// uidObject reads {"type": ..., "id": ...} or, if explicit is allowed,
// {"__entity": {"type": ..., "id": ...}}.
func (f *checkDecoder) uidObject(explicit bool) (types.EntityUID, bool) {
	const (
		typ = 1 << iota
		id
		entity
	)
	var t, i string
	var uid types.EntityUID
	seen, ok := f.object(func(name []byte) (bit uint8, ok bool) {
		switch string(name) {
		case "type":
			t, ok = f.str()
			return typ, ok
		case "id":
			i, ok = f.str()
			return id, ok
		case "__entity":
			if !explicit {
				return 0, false
			}
			uid, ok = f.uidObject(false)
			return entity, ok
		}
		return 0, false
	})
	switch {
	case !ok:
		return types.EntityUID{}, false
	case seen == entity:
		return uid, true
	case seen != typ|id || !validTypeName(t) || len(t)+len(i) > MaxUIDBytes:
		return types.EntityUID{}, false // "__entity" must be alone; "type" and "id" are required
	}
	return types.NewEntityUID(types.EntityType(t), types.String(i)), true
}

// topRecord reads a record where decodeRecord would: a context, an
// entity's attrs or tags.
func (f *checkDecoder) topRecord() (types.Record, bool) {
	if f.dec.PeekKind() != '{' {
		return types.Record{}, false
	}
	v, ok := f.record(true)
	if !ok {
		return types.Record{}, false
	}
	r, ok := v.(types.Record)
	if !ok {
		return types.Record{}, false
	}
	if r.Len() == 0 {
		r = types.Record{} // as types.Record.UnmarshalJSON does
	}
	return r, true
}

// value reads a Cedar value with cedar-go's schemaless JSON rules (see
// types.UnmarshalJSON).
func (f *checkDecoder) value() (types.Value, bool) {
	switch f.dec.PeekKind() {
	case '"':
		s, ok := f.str()
		return types.String(s), ok
	case 't', 'f':
		tok, err := f.dec.ReadToken()
		if err != nil {
			return nil, false
		}
		return types.Boolean(tok.Bool()), true
	case '0':
		raw, err := f.dec.ReadValue()
		if err != nil {
			return nil, false
		}
		n, ok := parseLong(raw)
		return types.Long(n), ok
	case '[':
		return f.set()
	case '{':
		return f.record(false)
	}
	return nil, false
}

// parseLong parses a JSON number that is a 64-bit signed integer, as
// cedar-go accepts it: not -0, no fraction, no exponent, in range.
func parseLong(raw []byte) (int64, bool) {
	neg := len(raw) > 0 && raw[0] == '-'
	digits := raw
	if neg {
		digits = raw[1:]
	}
	if len(digits) == 0 || len(digits) > 19 || (neg && len(digits) == 1 && digits[0] == '0') {
		return 0, false
	}
	var u uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0') // 19 digits cannot overflow a uint64
	}
	switch {
	case neg && u <= 1<<63:
		return int64(-u), true // -(1<<63) wraps to itself, the smallest Long
	case !neg && u < 1<<63:
		return int64(u), true
	}
	return 0, false
}

func (f *checkDecoder) set() (types.Value, bool) {
	if !f.begin('[') {
		return nil, false
	}
	start := len(f.vals)
	for k := f.dec.PeekKind(); k != ']'; k = f.dec.PeekKind() {
		v, ok := f.value()
		if !ok {
			return nil, false
		}
		f.vals = append(f.vals, v)
	}
	if !f.end() {
		return nil, false
	}
	s := types.NewSet(f.vals[start:]...)
	clear(f.vals[start:])
	f.vals = f.vals[:start]
	return s, true
}

// record reads a JSON object as a Cedar value: a record, or what cedar-go
// makes of an object with an "__entity" or "__extn" member. top says the
// object is a context, attrs or tags (decoded as types.Record.UnmarshalJSON
// does) rather than a value inside one.
func (f *checkDecoder) record(top bool) (types.Value, bool) {
	start := f.dec.InputOffset()
	if !f.begin('{') {
		return nil, false
	}
	// types.NewRecord copies the map it is given, so one map per depth of
	// nesting serves every record.
	d := f.deep
	if d == len(f.recs) {
		f.recs = append(f.recs, nil)
	}
	if f.recs[d] == nil {
		f.recs[d] = make(types.RecordMap, 8)
	}
	m := f.recs[d]
	f.deep++
	for f.dec.PeekKind() == '"' {
		tok, err := f.dec.ReadToken()
		if err != nil {
			return nil, false
		}
		k := types.String(tok.String())
		if k == "__entity" || k == "__extn" {
			clear(m)
			f.deep--
			return f.escaped(start, top)
		}
		v, ok := f.value()
		if !ok {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false
		}
		m[k] = v
	}
	if !f.end() {
		return nil, false
	}
	f.deep--
	r := types.NewRecord(m)
	clear(m)
	return r, true
}

// escaped finishes reading an object that has an "__entity" or "__extn"
// member (its name just read) and decodes the whole object, from start,
// with cedar-go's unmarshaler, whose rules for these forms the reference
// decoder follows.
func (f *checkDecoder) escaped(start int64, top bool) (types.Value, bool) {
	if f.dec.SkipValue() != nil {
		return nil, false
	}
	for f.dec.PeekKind() == '"' {
		if _, err := f.dec.ReadToken(); err != nil {
			return nil, false
		}
		if f.dec.SkipValue() != nil {
			return nil, false
		}
	}
	if !f.end() {
		return nil, false
	}
	raw := f.data[start:f.dec.InputOffset()]
	// raw starts after the previous token: skip the separators before '{'.
	raw = bytes.TrimLeft(raw, " \t\r\n:,")
	if top {
		var r types.Record
		if err := r.UnmarshalJSON(raw); err != nil {
			return nil, false
		}
		return r, true
	}
	var v types.Value
	if err := types.UnmarshalJSON(raw, &v); err != nil {
		return nil, false
	}
	return v, true
}

// entitiesCached reads the entities array, through cache if there is one.
func (f *checkDecoder) entitiesCached(cache *EntityCache) (Entities, bool) {
	if cache == nil {
		return f.entities()
	}
	if f.dec.PeekKind() != '[' {
		return Entities{}, false
	}
	raw, err := f.dec.ReadValue()
	if err != nil {
		return Entities{}, false
	}
	return cache.get(raw, func(raw []byte) (Entities, bool) {
		g := checkDecoders.Get().(*checkDecoder)
		g.reset(raw)
		es, ok := g.entities()
		if ok {
			_, err := g.dec.ReadToken()
			ok = err == io.EOF
		}
		g.reset(nil)
		checkDecoders.Put(g)
		return es, ok
	})
}

// entities reads an array of entities as parseEntities does.
func (f *checkDecoder) entities() (Entities, bool) {
	if !f.begin('[') {
		return Entities{}, false
	}
	m := types.EntityMap{}
	for k := f.dec.PeekKind(); k != ']'; k = f.dec.PeekKind() {
		if len(m) == MaxEntities {
			return Entities{}, false
		}
		e, ok := f.entity()
		if !ok {
			return Entities{}, false
		}
		if _, dup := m[e.UID]; dup {
			return Entities{}, false
		}
		m[e.UID] = e
	}
	if !f.end() {
		return Entities{}, false
	}
	return Entities{base: m}, true
}

func (f *checkDecoder) entity() (types.Entity, bool) {
	const (
		uid = 1 << iota
		attrs
		parents
		tags
	)
	var e types.Entity
	seen, ok := f.object(func(name []byte) (bit uint8, ok bool) {
		switch string(name) {
		case "uid":
			if f.dec.PeekKind() != '{' {
				return 0, false
			}
			e.UID, ok = f.uidObject(true)
			return uid, ok
		case "attrs":
			e.Attributes, ok = f.topRecord()
			return attrs, ok
		case "parents":
			e.Parents, ok = f.parents()
			return parents, ok
		case "tags":
			e.Tags, ok = f.topRecord()
			return tags, ok
		}
		return 0, false
	})
	if !ok || seen&(uid|attrs|parents) != uid|attrs|parents {
		return types.Entity{}, false
	}
	return e, true
}

func (f *checkDecoder) parents() (types.EntityUIDSet, bool) {
	if !f.begin('[') {
		return types.EntityUIDSet{}, false
	}
	f.uids = f.uids[:0]
	for k := f.dec.PeekKind(); k != ']'; k = f.dec.PeekKind() {
		if len(f.uids) == MaxEntities || k != '{' {
			return types.EntityUIDSet{}, false
		}
		u, ok := f.uidObject(true)
		if !ok {
			return types.EntityUIDSet{}, false
		}
		f.uids = append(f.uids, u)
	}
	if !f.end() {
		return types.EntityUIDSet{}, false
	}
	return types.NewEntityUIDSet(f.uids...), true
}
