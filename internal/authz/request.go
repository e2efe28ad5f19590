package authz

import (
	"bytes"
	"unicode/utf8"

	"github.com/cedar-policy/cedar-go/types"
)

// MaxCheckRequestBytes is the largest check request DecodeCheckRequest
// accepts. The API should also limit request bodies before reading them.
const MaxCheckRequestBytes = 4 << 20

// CheckRequest is a decoded authorization check: the JSON body
//
//	{"principal": "User::\"bob\"",
//	 "action":    "Action::\"kv.read\"",
//	 "resource":  {"type": "Secret", "id": "team-1/db"},
//	 "context":   {"amount": 50},
//	 "entities":  [{"uid": ..., "attrs": ..., "parents": ...}]}
//
// principal, action and resource are required, each either the Cedar text
// form of an entity UID (see [ParseUID]) or the object {"type", "id"};
// context (a JSON object, decoded with Cedar's schemaless rules) and
// entities (Cedar's JSON entity format, see [ParseEntities]) are optional.
type CheckRequest struct {
	Request
	// Entities are the request's own entities; they override the store's
	// entities with the same UID (see [Entities.With]).
	Entities Entities
}

// DecodeCheckRequest strictly decodes a check request from JSON: unknown,
// repeated or misspelt fields (names are case-sensitive), missing required
// fields, null, invalid UTF-8 and trailing data are errors. Every error is a
// *FieldError naming the field ("resource", "context",
// "entities[1].attrs"), wrapping ErrInvalid. It is safe to call on untrusted
// input.
func DecodeCheckRequest(data []byte) (CheckRequest, error) {
	return DecodeCheckRequestCached(data, nil)
}

// DecodeCheckRequestCached is [DecodeCheckRequest] with the request's
// entities taken from cache when a request sent the same entities before
// (nil: no cache). The result is the same either way.
//
// The usual shapes of a request are decoded in one pass straight into
// Cedar values (see checkDecoder); anything else, and every error, goes to
// the reference decoder, whose results and messages define the contract.
func DecodeCheckRequestCached(data []byte, cache *EntityCache) (CheckRequest, error) {
	if cr, ok := decodeCheckRequestFast(data, cache); ok {
		return cr, nil
	}
	return decodeCheckRequestReference(data)
}

// decodeCheckRequestReference is the reference decoder of check requests:
// each object's members are split out, then decoded one by one, records by
// cedar-go's unmarshaler. It is simple and slow; the fast path must accept
// nothing it refuses and decode what both accept to the same values.
func decodeCheckRequestReference(data []byte) (CheckRequest, error) {
	var cr CheckRequest
	if len(data) > MaxCheckRequestBytes {
		return cr, fieldErr("", "check request is larger than %d bytes", MaxCheckRequestBytes)
	}
	if !utf8.Valid(data) {
		return cr, fieldErr("", "check request is not valid UTF-8")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return cr, fieldErr("", "check request is empty; want a JSON object")
	}
	members, err := decodeObject("", data, "principal", "action", "resource", "context", "entities")
	if err != nil {
		return cr, err
	}
	uids := []struct {
		name string
		dst  *types.EntityUID
	}{
		{"principal", &cr.Principal},
		{"action", &cr.Action},
		{"resource", &cr.Resource},
	}
	for _, u := range uids {
		raw, ok := members[u.name]
		if !ok || isNull(raw) {
			return CheckRequest{}, fieldErr(u.name, "is required")
		}
		if *u.dst, err = decodeUIDJSON(u.name, raw, true); err != nil {
			return CheckRequest{}, err
		}
	}
	if raw, ok := members["context"]; ok {
		if isNull(raw) {
			return CheckRequest{}, fieldErr("context", "must be an object, not null")
		}
		if cr.Context, err = decodeRecord("context", raw); err != nil {
			return CheckRequest{}, err
		}
	}
	if raw, ok := members["entities"]; ok {
		if isNull(raw) {
			return CheckRequest{}, fieldErr("entities", "must be an array, not null")
		}
		if cr.Entities, err = parseEntities("entities", raw); err != nil {
			return CheckRequest{}, err
		}
	}
	return cr, nil
}
