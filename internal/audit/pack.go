package audit

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The at-rest form of a leaf (docs/audit.md, "Stored leaves"): what the
// barrier encrypts and the journal, the Raft log and the state machine
// keep. It is never what is hashed, signed or served: the leaf bytes are
// the entry's canonical JSON, and PackLeaf and UnpackLeaf only change how
// they are kept.
//
//	'{' …              the canonical bytes as they are (every leaf written
//	                   before packing existed, and any leaf packing would
//	                   not make shorter); any first byte but 0x01 is read
//	                   this way, and DecodeEntry judges the bytes
//	0x01 ‖ deflate     the canonical bytes compressed with raw DEFLATE
//	                   (RFC 1951) against the fixed dictionary packDict
//
// packDict is part of the format: a leaf packed under it must unpack the
// same forever, so it never changes; a new dictionary takes a new tag.
const packDeflate byte = 0x01

// packDict holds what most entries repeat: the member names in canonical
// order and the common values. DEFLATE matches against its end most
// cheaply, so the most common strings come last.
const packDict = `"error":"permission denied","count":` +
	`"auth_method":"mtls","principal":"Node::\"","resource":"Node::\"","action":"node.enroll","action":"pki.enroll","action":"node.create",` +
	`"action":"token.create","resource":"Token::\"token:","action":"kv.write","action":"kv.read","resource":"Secret::\"",` +
	`"outcome":403,"outcome":404,"outcome":201,"principal":"User::\"","principal":"Root::\"root\"",` +
	`{"accessor":"","action":"","auth_method":"token","hashes":{"data":"hmac-sha256:"},"outcome":200,"principal":"",` +
	`"raft_index":0,"request_id":"","resource":"","source_addr":"127.0.0.1","time":"20`

var errUnpack = errors.New("audit: stored leaf does not unpack")

var packers = sync.Pool{New: func() any {
	w, err := flate.NewWriterDict(nil, flate.DefaultCompression, []byte(packDict))
	if err != nil {
		panic(err) // only for an invalid level
	}
	return w
}}

// unpacker is a DEFLATE reader with its 32 KiB window and a buffer, reused:
// every record a store commits is unpacked to check its hash, and a new
// reader per record was most of that check's time and garbage.
type unpacker struct {
	src bytes.Reader
	r   io.ReadCloser
	dst bytes.Buffer
}

var unpackers = sync.Pool{New: func() any {
	u := new(unpacker)
	u.r = flate.NewReaderDict(&u.src, []byte(packDict))
	return u
}}

// PackLeaf returns the at-rest form of leaf bytes b: packed if that is
// shorter, else b itself. b must be canonical entry bytes (they start
// with '{').
func PackLeaf(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b)/2 + 16)
	buf.WriteByte(packDeflate)
	w := packers.Get().(*flate.Writer)
	defer packers.Put(w)
	w.Reset(&buf)
	if _, err := w.Write(b); err != nil || w.Close() != nil || buf.Len() >= len(b) {
		return b
	}
	return buf.Bytes()
}

// UnpackLeaf returns the leaf bytes of an at-rest form (PackLeaf's, or
// unpacked canonical bytes from before packing existed, returned as they
// are). It refuses a packed form that is damaged, would unpack to more
// than MaxEntrySize or to something other than a JSON object; it does not
// check that the result is a canonical entry (DecodeEntry and the leaf
// hash do).
func UnpackLeaf(p []byte) ([]byte, error) {
	if len(p) == 0 {
		return nil, fmt.Errorf("%w: empty", errUnpack)
	}
	if p[0] != packDeflate {
		return p, nil
	}
	u := unpackers.Get().(*unpacker)
	defer unpackers.Put(u)
	u.src.Reset(p[1:])
	if err := u.r.(flate.Resetter).Reset(&u.src, []byte(packDict)); err != nil {
		return nil, fmt.Errorf("%w: %v", errUnpack, err)
	}
	u.dst.Reset()
	_, err := u.dst.ReadFrom(io.LimitReader(u.r, MaxEntrySize+1))
	b := bytes.Clone(u.dst.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUnpack, err)
	}
	if len(b) > MaxEntrySize {
		return nil, fmt.Errorf("%w: more than %d bytes", errUnpack, MaxEntrySize)
	}
	if len(b) == 0 || b[0] != '{' {
		return nil, fmt.Errorf("%w: not an entry", errUnpack)
	}
	return b, nil
}
