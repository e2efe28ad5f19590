package auditlog

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/fsutil"
	store "github.com/warden-sec/warden/internal/store/kv"
)

// Journal is a node's local, append-only file of audit leaves waiting to be
// merged into the replicated Merkle log (docs/audit.md, "The journal").
// Append returns once the leaf is on disk (fsynced, one fsync per batch of
// concurrent appends); the merger (merge.go) moves journaled leaves into the
// log and calls Merged, which lets the files of merged leaves go.
//
// On disk: a directory (0700) with a file "id" naming the journal (random,
// so a cursor in the replicated store never matches a newer journal in a
// wiped directory) and segment files "<first sequence, 20 digits>.wal"
// (0600). A segment is a sequence of records:
//
//	length  uint32, big endian: the body's length
//	crc     uint32, big endian: CRC-32C (Castagnoli) of the body
//	body    sequence uint64 big endian ‖ leaf hash (32 bytes) ‖ leaf value
//
// Sequences start at 1 and have no gaps. A record that is short, too long,
// fails its checksum or breaks the sequence ends the last segment: it was
// being written when the process stopped, so it was never acknowledged, and
// Open truncates it away. Anything wrong in an earlier segment (which was
// complete and fsynced before the next began) is damage, and Open fails.
//
// Safe for concurrent use. Leaves in memory (every leaf not yet merged) are
// bounded by the caller: see Service's MaxJournalLag.
type Journal struct {
	dir string
	id  string

	wmu      sync.Mutex // the writer: file, size, rotation
	f        *os.File
	sz       int64
	segBytes int64 // SegmentBytes; smaller in tests

	batches groupCommit[store.AuditLeaf]

	mu      sync.Mutex
	segs    []uint64        // first sequence of every segment, ascending; the last is being written
	nextSeq uint64          // the sequence the next record written gets
	durable uint64          // the last sequence on disk
	merged  uint64          // the last sequence known merged
	queue   []JournaledLeaf // durable, not merged, ascending from merged+1
	failed  error           // a write or sync failed: the journal refuses appends
}

// JournaledLeaf is a leaf in the journal with its sequence.
type JournaledLeaf struct {
	Seq  uint64
	Leaf store.AuditLeaf
}

const (
	journalIDFile = "id"
	mergedFile    = "merged"
	segSuffix     = ".wal"
	// maxRecordBody bounds a record (an entry is at most 64 KiB, its
	// ciphertext a little more): a longer length is a torn or damaged header.
	maxRecordBody = 1 << 20
	recHeader     = 8
	// SegmentBytes is the size after which appends start a new segment, so
	// the files of merged leaves can be removed.
	SegmentBytes = 8 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrJournalDamaged: a complete segment of the journal does not read back.
var ErrJournalDamaged = errors.New("auditlog: audit journal damaged")

// OpenJournal opens the journal in dir, creating it if needed, and reads
// every leaf it holds into memory (they are taken as not merged until
// Merged says otherwise), discarding a torn tail.
func OpenJournal(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	// The directory's own name must survive a crash as its files do.
	if err := fsutil.SyncDir(filepath.Dir(dir)); err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	j := &Journal{dir: dir, segBytes: SegmentBytes}
	j.batches.commit = j.write
	id, err := os.ReadFile(filepath.Join(dir, journalIDFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		if id, err = j.create(); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	j.id = strings.TrimSpace(string(id))
	if b, err := hex.DecodeString(j.id); err != nil || len(b) != 16 {
		return nil, fmt.Errorf("%w: %s holds no journal id", ErrJournalDamaged, filepath.Join(dir, journalIDFile))
	}
	if err := j.load(); err != nil {
		return nil, err
	}
	return j, nil
}

// create writes a new journal id (refusing a directory that holds segments
// without one: their cursor would be unknown).
func (j *Journal) create() ([]byte, error) {
	if segs, err := j.listSegments(); err != nil || len(segs) > 0 {
		if err == nil {
			err = fmt.Errorf("%w: segments without an id file in %s", ErrJournalDamaged, j.dir)
		}
		return nil, err
	}
	b := make([]byte, 16)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return nil, err
	}
	id := []byte(hex.EncodeToString(b) + "\n")
	if err := fsutil.WriteFileAtomic(filepath.Join(j.dir, journalIDFile), id, 0o600); err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	return id, nil
}

func (j *Journal) listSegments() ([]uint64, error) {
	des, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	var segs []uint64
	for _, de := range des {
		name, ok := strings.CutSuffix(de.Name(), segSuffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil || len(name) != 20 || n == 0 {
			return nil, fmt.Errorf("%w: unexpected file %s", ErrJournalDamaged, de.Name())
		}
		segs = append(segs, n)
	}
	sort.Slice(segs, func(a, b int) bool { return segs[a] < segs[b] })
	return segs, nil
}

func (j *Journal) segPath(first uint64) string {
	return filepath.Join(j.dir, fmt.Sprintf("%020d%s", first, segSuffix))
}

// load reads every segment, truncates the last one's torn tail and opens
// it for appending.
func (j *Journal) load() error {
	segs, err := j.listSegments()
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		j.nextSeq = 1
		return j.openSegment(1)
	}
	j.nextSeq = segs[0]
	j.merged = segs[0] - 1
	for i, first := range segs {
		if first != j.nextSeq {
			return fmt.Errorf("%w: segment %s starts at %d, want %d", ErrJournalDamaged, filepath.Base(j.segPath(first)), first, j.nextSeq)
		}
		last := i == len(segs)-1
		good, err := j.readSegment(first)
		if err != nil && !last {
			return err
		}
		if last {
			// A record cut short by a crash: discard it and whatever follows.
			if err := os.Truncate(j.segPath(first), good); err != nil {
				return fmt.Errorf("audit journal: %w", err)
			}
		}
	}
	j.durable = j.nextSeq - 1
	j.segs = segs[:len(segs)-1]
	if err := j.openSegment(segs[len(segs)-1]); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(j.dir, mergedFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	mark, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || mark > j.durable {
		return fmt.Errorf("%w: %s holds %q, beyond the journal's last record %d", ErrJournalDamaged, mergedFile, b, j.durable)
	}
	j.mu.Lock()
	remove := j.drop(mark)
	j.mu.Unlock()
	for _, first := range remove {
		if err := os.Remove(j.segPath(first)); err != nil {
			return fmt.Errorf("audit journal: %w", err)
		}
	}
	return nil
}

// readSegment appends the segment's records to the queue and returns the
// length of its valid prefix; the error says why the rest is not valid.
func (j *Journal) readSegment(first uint64) (int64, error) {
	f, err := os.Open(j.segPath(first))
	if err != nil {
		return 0, fmt.Errorf("audit journal: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	var off int64
	for {
		rec, n, err := readRecord(r)
		if err == io.EOF {
			return off, nil
		}
		if err == nil && rec.Seq != j.nextSeq {
			err = fmt.Errorf("sequence %d, want %d", rec.Seq, j.nextSeq)
		}
		if err != nil {
			return off, fmt.Errorf("%w: %s at offset %d: %v", ErrJournalDamaged, filepath.Base(j.segPath(first)), off, err)
		}
		j.queue = append(j.queue, rec)
		j.nextSeq++
		off += int64(n)
	}
}

// readRecord reads one record; io.EOF only at a clean end.
func readRecord(r io.Reader) (JournaledLeaf, int, error) {
	var h [recHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.EOF {
			return JournaledLeaf{}, 0, io.EOF
		}
		return JournaledLeaf{}, 0, errors.New("short header")
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n < 8+32 || n > maxRecordBody {
		return JournaledLeaf{}, 0, fmt.Errorf("record length %d", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return JournaledLeaf{}, 0, errors.New("short record")
	}
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(h[4:]) {
		return JournaledLeaf{}, 0, errors.New("checksum mismatch")
	}
	return JournaledLeaf{Seq: binary.BigEndian.Uint64(body),
		Leaf: store.AuditLeaf{Hash: body[8:40:40], Value: body[40:]}}, recHeader + int(n), nil
}

func appendRecord(buf []byte, r JournaledLeaf) []byte {
	n := 8 + len(r.Leaf.Hash) + len(r.Leaf.Value)
	start := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, uint32(n))
	buf = append(buf, 0, 0, 0, 0)
	buf = binary.BigEndian.AppendUint64(buf, r.Seq)
	buf = append(append(buf, r.Leaf.Hash...), r.Leaf.Value...)
	binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start+recHeader:], castagnoli))
	return buf
}

// openSegment makes first the segment being written (creating it).
func (j *Journal) openSegment(first uint64) error {
	f, err := os.OpenFile(j.segPath(first), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	st, err := f.Stat()
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = fsutil.SyncDir(j.dir)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("audit journal: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.sz = f, st.Size()
	j.mu.Lock()
	j.segs = append(j.segs, first)
	j.mu.Unlock()
	return nil
}

// ID names the journal (32 hex digits).
func (j *Journal) ID() string { return j.id }

// Append writes leaf to the journal and returns its sequence once it is on
// disk. Concurrent appends share one write and one fsync. If ctx ends
// first, Append returns an Unavailable error and the leaf may still be
// written (and merged). After a failed write or sync the journal refuses
// every append (the kernel may have dropped the dirty pages: nothing
// written after it could be trusted) until the process restarts.
func (j *Journal) Append(ctx context.Context, leaf store.AuditLeaf) (uint64, error) {
	return j.batches.add(ctx, leaf, "audit record")
}

// write writes a batch and syncs it (Append's group commit), and returns
// the sequence of its first leaf.
func (j *Journal) write(leaves []store.AuditLeaf) (uint64, error) {
	j.mu.Lock()
	failed, first := j.failed, j.nextSeq
	j.mu.Unlock()
	if failed != nil {
		return 0, errs.Wrap(errs.Unavailable, failed, "the audit journal failed")
	}
	recs := make([]JournaledLeaf, len(leaves))
	var buf []byte
	for i, l := range leaves {
		recs[i] = JournaledLeaf{Seq: first + uint64(i), Leaf: l}
		buf = appendRecord(buf, recs[i])
	}
	err := j.writeSync(first, buf)
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		j.failed = err
		return 0, errs.Wrap(errs.Unavailable, err, "the audit journal failed")
	}
	j.nextSeq += uint64(len(recs))
	j.durable = j.nextSeq - 1
	j.queue = append(j.queue, recs...)
	return first, nil
}

func (j *Journal) writeSync(first uint64, buf []byte) error {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	if j.sz >= j.segBytes {
		if err := j.openSegment(first); err != nil {
			return err
		}
	}
	n, err := j.f.Write(buf)
	j.sz += int64(n)
	if err != nil {
		return fmt.Errorf("audit journal: write: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("audit journal: sync: %w", err)
	}
	return nil
}

// Unmerged returns the leaves on disk that are not merged, from the
// oldest, at most limit of them and about maxBytes in all (at least one).
// The slices are shared: callers must not modify them.
func (j *Journal) Unmerged(limit, maxBytes int) []JournaledLeaf {
	j.mu.Lock()
	defer j.mu.Unlock()
	n, size := 0, 0
	for n < len(j.queue) && n < limit {
		size += len(j.queue[n].Leaf.Hash) + len(j.queue[n].Leaf.Value) + 16
		if n > 0 && size > maxBytes {
			break
		}
		n++
	}
	return j.queue[:n:n]
}

// Backlog returns how many leaves on disk are not merged, and the sequence
// of the last leaf on disk.
func (j *Journal) Backlog() (n int, durable uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.queue), j.durable
}

// Merged records that every leaf up to seq is in the replicated log: they
// leave memory, and the segments that hold nothing else are removed.
//
// The journal also keeps seq in a file of its own ("merged"), so a restart
// never merges a record again even if the replicated cursor went back (a
// snapshot restore puts the snapshot's keys back, the cursor among them,
// while the log keeps every leaf). Merged is called by one goroutine at a
// time (the merger).
func (j *Journal) Merged(seq uint64) error {
	j.mu.Lock()
	if seq <= j.merged {
		j.mu.Unlock()
		return nil
	}
	remove := j.drop(seq)
	j.mu.Unlock()
	err := fsutil.WriteFileAtomic(filepath.Join(j.dir, mergedFile), []byte(strconv.FormatUint(seq, 10)+"\n"), 0o600)
	if err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	for _, first := range remove {
		err = errors.Join(err, os.Remove(j.segPath(first)))
	}
	if len(remove) > 0 {
		err = errors.Join(err, fsutil.SyncDir(j.dir))
	}
	return err
}

// drop forgets the leaves up to seq and returns the segments that hold
// nothing else. j.mu is held.
func (j *Journal) drop(seq uint64) (remove []uint64) {
	if seq <= j.merged {
		return nil
	}
	j.merged = seq
	i := sort.Search(len(j.queue), func(i int) bool { return j.queue[i].Seq > seq })
	j.queue = append([]JournaledLeaf(nil), j.queue[i:]...)
	// A segment other than the last holds sequences up to the next
	// segment's first minus one.
	for len(j.segs) > 1 && j.segs[1]-1 <= seq {
		remove = append(remove, j.segs[0])
		j.segs = j.segs[1:]
	}
	return remove
}

// Close closes the segment being written. Appends must have returned.
func (j *Journal) Close() error {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
