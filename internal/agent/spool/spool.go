// Package spool is the agent's on-disk FIFO of event batches: what the
// shipper has sealed but no server has acknowledged yet. It survives a kill
// -9 at any point and is bounded in size; when full it drops the oldest
// batches and counts their events, so the count can be reported to a
// server.
//
// It does not know HTTP, events or sources: a batch is a sequence number, an
// event count, opaque per-source states and an opaque body.
//
// On disk (directory of its own, files mode 0600):
//
//	seg-<first seq, 20 digits>.log   records, appended and fsynced
//	state.json                       {"head": H, "dropped": D, "dropped_states": {...}}
//
// A record is [u32 payload length][u32 CRC-32C of payload][payload], both
// integers big-endian; a payload is [u64 seq][u32 events][u32 n] then n
// times ([u16 name length][name][u32 state length][state]), then the body
// (the rest). A record whose length runs past the end of its file or whose
// CRC does not match is a torn write: it and everything after it in that
// file are cut off when the spool is opened. Records with seq < head are
// gone (acknowledged or dropped); a segment whose records are all gone is
// deleted. state.json is replaced atomically (temp file, fsync, rename).
package spool

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/warden-sec/warden/internal/fsutil"
)

// DefaultMaxBytes bounds a spool when Open is given 0.
const DefaultMaxBytes = 1 << 30

// MinMaxBytes is the smallest bound Open accepts.
const MinMaxBytes = 64 << 10

const (
	headerLen   = 8
	maxRecord   = 64 << 20 // a record longer than this is corrupt
	maxSegBytes = 64 << 20
	stateFile   = "state.json"
	segPrefix   = "seg-"
	segSuffix   = ".log"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrTooLarge is returned by Append for a batch that cannot fit even in an
// empty spool.
var ErrTooLarge = errors.New("spool: batch larger than the spool's bound")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("spool: closed")

// Batch is one sealed batch.
type Batch struct {
	Seq    uint64            // the batch's sequence number; strictly increasing across Appends
	Events int               // how many events Body holds
	States map[string][]byte // per source, its state after its last event in this batch
	Body   []byte            // opaque (the shipper stores the gzip-compressed request body)
}

// State is a source state with the sequence number of the batch it came
// with.
type State struct {
	Seq   uint64 `json:"seq"`
	State []byte `json:"state"`
}

type record struct {
	seq    uint64
	off    int64 // of the record header in its segment
	size   int64 // header + payload
	events int
}

type segment struct {
	path string
	size int64
	recs []record // in seq order
}

type persisted struct {
	Head          uint64           `json:"head"`
	Dropped       uint64           `json:"dropped"`
	DroppedStates map[string]State `json:"dropped_states,omitempty"`
}

// Spool is safe for concurrent use: typically one goroutine appends while
// another reads the oldest batch and acknowledges it.
type Spool struct {
	dir      string
	max      int64
	segBytes int64

	mu      sync.Mutex
	closed  bool
	segs    []*segment // oldest first; the last is the one appended to
	active  *os.File
	total   int64 // bytes of all segment files
	st      persisted
	last    uint64           // newest seq appended or found (0: none)
	scanned uint64           // while opening: the last seq read
	latest  map[string]State // newest state per source seen in any record
	notify  chan struct{}
}

// Open opens (creating it if needed) the spool in dir, bounded by maxBytes
// (0: DefaultMaxBytes). Torn records at the end of segments are cut off.
func Open(dir string, maxBytes int64) (*Spool, error) {
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes
	}
	if maxBytes < MinMaxBytes {
		return nil, fmt.Errorf("spool: max bytes %d is below the minimum %d", maxBytes, MinMaxBytes)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{dir: dir, max: maxBytes, segBytes: min(max(maxBytes/8, 16<<10), maxSegBytes),
		latest: map[string]State{}, notify: make(chan struct{}, 1)}
	if b, err := os.ReadFile(filepath.Join(dir, stateFile)); err == nil {
		if err := json.Unmarshal(b, &s.st); err != nil {
			return nil, fmt.Errorf("spool: %s: %w", stateFile, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("spool: %w", err)
	}
	for name, st := range s.st.DroppedStates {
		s.latest[name] = st
	}
	if s.st.Head > 0 {
		s.last = s.st.Head - 1
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), segPrefix) && strings.HasSuffix(e.Name(), segSuffix) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names) // zero-padded: lexical order is seq order
	for _, n := range names {
		seg, err := s.load(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		if len(seg.recs) == 0 {
			os.Remove(seg.path)
			continue
		}
		s.segs = append(s.segs, seg)
		s.total += seg.size
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if n := len(s.segs); n > 0 {
		f, err := os.OpenFile(s.segs[n-1].path, os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		s.active = f
	}
	return s, nil
}

// load scans one segment, truncating it at the first torn record, and
// returns its live records (seq >= head).
func (s *Spool) load(path string) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	seg := &segment{path: path}
	r := bufio.NewReaderSize(f, 256<<10)
	var off int64
	var hdr [headerLen]byte
	var payload []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			break // clean end, or a torn header
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if n < 16 || n > maxRecord {
			break
		}
		if cap(payload) < int(n) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			break
		}
		if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(hdr[4:]) {
			break
		}
		b, err := decode(payload, false)
		if err != nil || b.Seq <= s.scanned {
			break // not a record we wrote, or out of order: treat as torn
		}
		s.scanned = b.Seq
		size := int64(headerLen) + int64(n)
		for name, st := range b.States {
			s.latest[name] = State{Seq: b.Seq, State: st}
		}
		s.last = max(s.last, b.Seq)
		if b.Seq >= s.st.Head {
			seg.recs = append(seg.recs, record{seq: b.Seq, off: off, size: size, events: b.Events})
		}
		off += size
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if fi.Size() != off {
		// A torn tail (a write cut by a crash): drop it.
		if err := f.Truncate(off); err != nil {
			return nil, fmt.Errorf("spool: cut torn tail of %s: %w", filepath.Base(path), err)
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	seg.size = off
	return seg, nil
}

func encode(b Batch) []byte {
	n := 16 + len(b.Body)
	for name, st := range b.States {
		n += 6 + len(name) + len(st)
	}
	buf := make([]byte, headerLen, headerLen+n)
	buf = binary.BigEndian.AppendUint64(buf, b.Seq)
	buf = binary.BigEndian.AppendUint32(buf, uint32(b.Events))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(b.States)))
	names := make([]string, 0, len(b.States))
	for name := range b.States {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(name)))
		buf = append(buf, name...)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(b.States[name])))
		buf = append(buf, b.States[name]...)
	}
	buf = append(buf, b.Body...)
	payload := buf[headerLen:]
	binary.BigEndian.PutUint32(buf[0:], uint32(len(payload)))
	binary.BigEndian.PutUint32(buf[4:], crc32.Checksum(payload, crcTable))
	return buf
}

var errCorrupt = errors.New("spool: corrupt record")

// decode parses a payload; with body false the body is not copied.
func decode(p []byte, body bool) (Batch, error) {
	if len(p) < 16 {
		return Batch{}, errCorrupt
	}
	b := Batch{Seq: binary.BigEndian.Uint64(p), Events: int(binary.BigEndian.Uint32(p[8:]))}
	ns := binary.BigEndian.Uint32(p[12:])
	p = p[16:]
	if ns > 0 {
		b.States = make(map[string][]byte, min(ns, 1024))
	}
	for range ns {
		if len(p) < 2 {
			return Batch{}, errCorrupt
		}
		nl := int(binary.BigEndian.Uint16(p))
		if len(p) < 2+nl+4 {
			return Batch{}, errCorrupt
		}
		name := string(p[2 : 2+nl])
		sl := int(binary.BigEndian.Uint32(p[2+nl:]))
		p = p[6+nl:]
		if len(p) < sl {
			return Batch{}, errCorrupt
		}
		b.States[name] = append([]byte(nil), p[:sl]...)
		p = p[sl:]
	}
	if body {
		b.Body = append([]byte(nil), p...)
	}
	return b, nil
}

// Append writes b durably (fsync) at the end of the spool. If the spool
// would exceed its bound, the oldest batches are dropped first (whole
// segments); it returns how many events were dropped. b.Seq must be greater
// than every seq appended before.
func (s *Spool) Append(b Batch) (dropped int, err error) {
	rec := encode(b)
	size := int64(len(rec))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	if size > s.max || size > maxRecord {
		return 0, ErrTooLarge
	}
	if b.Seq <= s.last {
		return 0, fmt.Errorf("spool: seq %d is not after the last seq %d", b.Seq, s.last)
	}
	n := len(s.segs)
	if n == 0 || s.segs[n-1].size > 0 && s.segs[n-1].size+size > s.segBytes {
		if err := s.roll(b.Seq); err != nil {
			return 0, err
		}
	}
	if s.total+size > s.max && len(s.segs) > 1 {
		if dropped, err = s.dropOldest(size); err != nil {
			return dropped, err
		}
	}
	seg := s.segs[len(s.segs)-1]
	if _, err := s.active.Write(rec); err != nil {
		// Cut what may have been written, so the next append starts clean.
		_ = s.active.Truncate(seg.size)
		return dropped, fmt.Errorf("spool: append: %w", err)
	}
	if err := s.active.Sync(); err != nil {
		return dropped, fmt.Errorf("spool: append: %w", err)
	}
	seg.recs = append(seg.recs, record{seq: b.Seq, off: seg.size, size: size, events: b.Events})
	seg.size += size
	s.total += size
	s.last = b.Seq
	for name, st := range b.States {
		s.latest[name] = State{Seq: b.Seq, State: append([]byte(nil), st...)}
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return dropped, nil
}

// roll starts a new segment whose first record has seq first.
func (s *Spool) roll(first uint64) error {
	path := filepath.Join(s.dir, fmt.Sprintf("%s%020d%s", segPrefix, first, segSuffix))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := fsutil.SyncDir(s.dir); err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	if s.active != nil {
		s.active.Close()
	}
	s.active = f
	s.segs = append(s.segs, &segment{path: path})
	return nil
}

// dropOldest drops whole segments, oldest first, never the active one,
// until size more bytes fit. The drop is made durable (state.json) before
// the files are removed.
func (s *Spool) dropOldest(size int64) (int, error) {
	var k, events int
	var freed int64
	next := s.st
	next.DroppedStates = map[string]State{}
	for name, st := range s.st.DroppedStates {
		next.DroppedStates[name] = st
	}
	for k < len(s.segs)-1 && s.total-freed+size > s.max {
		seg := s.segs[k]
		for _, r := range seg.recs {
			if r.seq >= s.st.Head {
				events += r.events
			}
		}
		if len(seg.recs) > 0 {
			next.Head = max(next.Head, seg.recs[len(seg.recs)-1].seq+1)
		}
		freed += seg.size
		k++
	}
	if k == 0 {
		return 0, nil
	}
	// The states that went with the dropped batches stay known, so that a
	// restart resumes after them rather than re-reading dropped lines as
	// if they were new (their loss is what the dropped count reports).
	for name, st := range s.latest {
		if st.Seq < next.Head {
			next.DroppedStates[name] = st
		}
	}
	next.Dropped += uint64(events)
	if err := s.save(next); err != nil {
		return 0, err
	}
	for _, seg := range s.segs[:k] {
		os.Remove(seg.path)
	}
	s.segs = append([]*segment(nil), s.segs[k:]...)
	s.total -= freed
	return events, nil
}

func (s *Spool) save(next persisted) error {
	b, err := json.Marshal(next)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(s.dir, stateFile), b, 0o600); err != nil {
		return fmt.Errorf("spool: save %s: %w", stateFile, err)
	}
	s.st = next
	return nil
}

// Oldest returns the oldest batch not yet acknowledged or dropped; ok is
// false when the spool is empty.
func (s *Spool) Oldest() (b Batch, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Batch{}, false, ErrClosed
	}
	for _, seg := range s.segs {
		for _, r := range seg.recs {
			if r.seq < s.st.Head {
				continue
			}
			return s.read(seg, r)
		}
	}
	return Batch{}, false, nil
}

func (s *Spool) read(seg *segment, r record) (Batch, bool, error) {
	f, err := os.Open(seg.path)
	if err != nil {
		return Batch{}, false, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	buf := make([]byte, r.size)
	if _, err := f.ReadAt(buf, r.off); err != nil {
		return Batch{}, false, fmt.Errorf("spool: read seq %d: %w", r.seq, err)
	}
	p := buf[headerLen:]
	if crc32.Checksum(p, crcTable) != binary.BigEndian.Uint32(buf[4:]) {
		return Batch{}, false, fmt.Errorf("spool: seq %d: %w", r.seq, errCorrupt)
	}
	b, err := decode(p, true)
	if err != nil {
		return Batch{}, false, fmt.Errorf("spool: seq %d: %w", r.seq, err)
	}
	return b, true, nil
}

// Ack removes every batch with seq <= seq (acknowledged by a server, or
// refused for good) and subtracts reported from the dropped count (what the
// acknowledged request reported), durably. Acknowledging a batch that was
// dropped meanwhile is not an error.
func (s *Spool) Ack(seq uint64, reported uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	next := s.st
	next.Head = max(next.Head, seq+1)
	next.Dropped -= min(reported, next.Dropped)
	if next.Head == s.st.Head && next.Dropped == s.st.Dropped {
		return nil
	}
	if err := s.save(next); err != nil {
		return err
	}
	// Delete the segments now wholly gone, except the active one.
	k := 0
	for k < len(s.segs)-1 {
		recs := s.segs[k].recs
		if len(recs) > 0 && recs[len(recs)-1].seq >= s.st.Head {
			break
		}
		os.Remove(s.segs[k].path)
		s.total -= s.segs[k].size
		k++
	}
	s.segs = append([]*segment(nil), s.segs[k:]...)
	return nil
}

// Notify returns a channel that receives (without blocking the appender)
// after each Append.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Dropped is the number of events dropped since the last report.
func (s *Spool) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Dropped
}

// Bytes is the size of the spool's segment files.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Pending is the number of batches and events not yet acknowledged.
func (s *Spool) Pending() (batches, events int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range s.segs {
		for _, r := range seg.recs {
			if r.seq >= s.st.Head {
				batches++
				events += r.events
			}
		}
	}
	return batches, events
}

// LastSeq is the greatest seq ever appended (including acknowledged and
// dropped batches whose record is gone), 0 if none: the next batch must
// have a greater one.
func (s *Spool) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// States returns, per source, the newest state that came with a batch
// still in the spool or dropped from it (acknowledged batches' states may
// be missing: the shipper's checkpoint has them; compare Seq).
func (s *Spool) States() map[string]State {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]State, len(s.latest))
	for name, st := range s.latest {
		out[name] = st
	}
	return out
}

// Close closes the spool's files; what was appended is already durable.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.active != nil {
		return s.active.Close()
	}
	return nil
}
