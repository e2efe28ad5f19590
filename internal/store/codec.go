package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/warden-sec/warden/internal/store/kv"
)

// Command kinds: the first byte of every Raft command.
const (
	cmdTxn      byte = 1 // conditions and ops
	cmdTxnAudit byte = 2 // conditions, ops and audit leaves
)

// encodeTxn encodes t as a command:
//
//	kind (1) | uvarint #conds | { uvarint len(key) | key | uvarint version }*
//	         | uvarint #ops   | { type (1) | uvarint len(key) | key | [uvarint len(value) | value] }*
func encodeTxn(t Txn) []byte {
	n := 1 + binary.MaxVarintLen64*2
	for _, c := range t.Conds {
		n += 2*binary.MaxVarintLen64 + len(c.Key)
	}
	for _, op := range t.Ops {
		n += 1 + 2*binary.MaxVarintLen64 + len(op.Key) + len(op.Value)
	}
	for _, l := range t.Audit {
		n += binary.MaxVarintLen64 + len(l.Hash) + len(l.Value)
	}
	b := make([]byte, 0, n)
	if len(t.Audit) > 0 {
		b = append(b, cmdTxnAudit)
	} else {
		b = append(b, cmdTxn)
	}
	b = binary.AppendUvarint(b, uint64(len(t.Conds)))
	for _, c := range t.Conds {
		b = binary.AppendUvarint(b, uint64(len(c.Key)))
		b = append(b, c.Key...)
		b = binary.AppendUvarint(b, c.Version)
	}
	b = binary.AppendUvarint(b, uint64(len(t.Ops)))
	for _, op := range t.Ops {
		b = append(b, byte(op.Type))
		b = binary.AppendUvarint(b, uint64(len(op.Key)))
		b = append(b, op.Key...)
		if op.Type == OpPut || op.Type == OpPruneAudit {
			b = binary.AppendUvarint(b, uint64(len(op.Value)))
			b = append(b, op.Value...)
		}
	}
	if len(t.Audit) > 0 {
		b = binary.AppendUvarint(b, uint64(len(t.Audit)))
		for _, l := range t.Audit {
			b = append(b, l.Hash...)
			b = binary.AppendUvarint(b, uint64(len(l.Value)))
			b = append(b, l.Value...)
		}
	}
	return b
}

var errCodec = errors.New("store: malformed command")

type reader struct {
	b   []byte
	off int
}

func (r *reader) uvarint(max uint64, what string) (uint64, error) {
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad %s at byte %d", errCodec, what, r.off)
	}
	if n != uvarintLen(v) {
		return 0, fmt.Errorf("%w: non-minimal %s at byte %d", errCodec, what, r.off)
	}
	if v > max {
		return 0, fmt.Errorf("%w: %s %d over limit %d at byte %d", errCodec, what, v, max, r.off)
	}
	r.off += n
	return v, nil
}

func (r *reader) bytes(n uint64, what string) ([]byte, error) {
	if uint64(len(r.b)-r.off) < n {
		return nil, fmt.Errorf("%w: truncated %s at byte %d", errCodec, what, r.off)
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

// decodeTxn strictly decodes a txn command (kind byte included). Values
// alias b.
func decodeTxn(b []byte) (Txn, error) {
	var t Txn
	if len(b) == 0 || (b[0] != cmdTxn && b[0] != cmdTxnAudit) {
		return t, fmt.Errorf("%w: not a txn command", errCodec)
	}
	if len(b) > MaxTxnBytes+1024 {
		return t, fmt.Errorf("%w: command of %d bytes", errCodec, len(b))
	}
	r := &reader{b: b, off: 1}
	nc, err := r.uvarint(MaxTxnOps, "condition count")
	if err != nil {
		return t, err
	}
	if nc > 0 {
		t.Conds = make([]Cond, nc)
	}
	for i := range t.Conds {
		kl, err := r.uvarint(MaxKeyLen, "key length")
		if err != nil {
			return t, err
		}
		k, err := r.bytes(kl, "key")
		if err != nil {
			return t, err
		}
		v, err := r.uvarint(^uint64(0), "version")
		if err != nil {
			return t, err
		}
		t.Conds[i] = Cond{Key: string(k), Version: v}
	}
	no, err := r.uvarint(MaxTxnOps, "op count")
	if err != nil {
		return t, err
	}
	if no > 0 {
		t.Ops = make([]Op, no)
	}
	for i := range t.Ops {
		if r.off >= len(r.b) {
			return t, fmt.Errorf("%w: truncated op at byte %d", errCodec, r.off)
		}
		typ := OpType(r.b[r.off])
		r.off++
		if typ != OpPut && typ != OpDelete && typ != OpPruneAudit {
			return t, fmt.Errorf("%w: unknown op type %d", errCodec, typ)
		}
		kl, err := r.uvarint(MaxKeyLen, "key length")
		if err != nil {
			return t, err
		}
		k, err := r.bytes(kl, "key")
		if err != nil {
			return t, err
		}
		op := Op{Type: typ, Key: string(k)}
		if typ == OpPut || typ == OpPruneAudit {
			vl, err := r.uvarint(MaxTxnBytes, "value length")
			if err != nil {
				return t, err
			}
			if op.Value, err = r.bytes(vl, "value"); err != nil {
				return t, err
			}
		}
		t.Ops[i] = op
	}
	if b[0] == cmdTxnAudit {
		na, err := r.uvarint(MaxTxnOps, "audit leaf count")
		if err != nil {
			return t, err
		}
		if na == 0 {
			return t, fmt.Errorf("%w: audit command without leaves", errCodec)
		}
		t.Audit = make([]AuditLeaf, na)
		for i := range t.Audit {
			h, err := r.bytes(32, "audit leaf hash")
			if err != nil {
				return t, err
			}
			vl, err := r.uvarint(MaxTxnBytes, "audit value length")
			if err != nil {
				return t, err
			}
			v, err := r.bytes(vl, "audit value")
			if err != nil {
				return t, err
			}
			t.Audit[i] = AuditLeaf{Hash: h, Value: v}
		}
	}
	if r.off != len(r.b) {
		return t, fmt.Errorf("%w: %d trailing bytes", errCodec, len(r.b)-r.off)
	}
	return t, nil
}

// validate checks a transaction before it is proposed: well formed, within
// the limits, and a change carries its record. The state machine does not
// repeat the last check: logs written before it existed must still replay.
func validate(t Txn) error {
	if len(t.Ops) == 0 && len(t.Audit) == 0 {
		return fmt.Errorf("%w: no operations", ErrInvalid)
	}
	if len(t.Ops)+len(t.Conds)+len(t.Audit) > MaxTxnOps {
		return fmt.Errorf("%w: more than %d operations and conditions", ErrInvalid, MaxTxnOps)
	}
	size := 0
	for _, c := range t.Conds {
		if err := validKey(c.Key); err != nil {
			return err
		}
		size += len(c.Key) + 10
	}
	for _, op := range t.Ops {
		if err := validKey(op.Key); err != nil {
			return err
		}
		switch op.Type {
		case OpPut, OpDelete:
		case OpPruneAudit:
			if op.Key != kv.PruneAuditKey || len(op.Value) != 8 {
				return fmt.Errorf("%w: an audit prune has key %q and an 8-byte index", ErrInvalid, kv.PruneAuditKey)
			}
		default:
			return fmt.Errorf("%w: unknown op type %d", ErrInvalid, op.Type)
		}
		size += len(op.Key) + len(op.Value) + 12
	}
	for _, l := range t.Audit {
		if len(l.Hash) != 32 {
			return fmt.Errorf("%w: audit leaf hash of %d bytes, want 32", ErrInvalid, len(l.Hash))
		}
		size += len(l.Hash) + len(l.Value) + 10
	}
	if size > MaxTxnBytes {
		return fmt.Errorf("%w: transaction of about %d bytes exceeds %d", ErrInvalid, size, MaxTxnBytes)
	}
	if len(t.Ops) > 0 && len(t.Audit) == 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, ErrUnaudited)
	}
	return nil
}

func validKey(k string) error {
	if k == "" {
		return fmt.Errorf("%w: empty key", ErrInvalid)
	}
	if len(k) > MaxKeyLen {
		return fmt.Errorf("%w: key longer than %d bytes", ErrInvalid, MaxKeyLen)
	}
	return nil
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
