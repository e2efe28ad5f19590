package events

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// DefaultMaxBatchBytes bounds a batch's body, compressed and decompressed
// (--events-max-batch-bytes).
const DefaultMaxBatchBytes = 4 << 20

// Errors of ReadBatch; a *BatchError wraps one of them.
var (
	ErrBatchInvalid  = errors.New("invalid batch")   // 400
	ErrBatchTooLarge = errors.New("batch too large") // 413
)

// BatchError says why a batch was refused: the line (1-based, 0 for the
// whole body) and the reason. errors.Is it with ErrBatchInvalid or
// ErrBatchTooLarge.
type BatchError struct {
	Line int
	Kind error
	Msg  string
}

func (e *BatchError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("batch line %d: %s", e.Line, e.Msg)
	}
	return "batch: " + e.Msg
}

func (e *BatchError) Unwrap() error { return e.Kind }

// Stamp is what the server sets on every event of a batch, overwriting
// what the agent sent: the node's name and SPIFFE ID from its certificate,
// and the time the server accepted the batch.
type Stamp struct {
	Host, AgentID string
	Ingested      time.Time
}

// BatchStats counts what a batch holds, for metrics.
type BatchStats struct {
	Events int
	// Bytes is the decompressed body's size.
	Bytes int64
	// ParseErrors counts the raw events carrying error.message (lines the
	// agent could not parse), by log.file.path.
	ParseErrors map[string]int
}

// ReadBatch reads a batch body (JSON lines; gzip when gzipped is set),
// checks every line and returns them stamped, re-encoded, one JSON object
// each. Limits: maxBytes (0: DefaultMaxBatchBytes) on the decompressed
// body (the caller bounds the compressed one), MaxEventBytes on one
// event. Blank lines are skipped. On any error nothing of the batch is
// returned: a batch is taken whole or refused.
func ReadBatch(body io.Reader, gzipped bool, maxBytes int64, st Stamp) ([][]byte, BatchStats, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBatchBytes
	}
	var stats BatchStats
	if gzipped {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, stats, &BatchError{Kind: ErrBatchInvalid, Msg: "Content-Encoding is gzip but the body is not: " + err.Error()}
		}
		defer zr.Close()
		body = zr
	}
	// One byte more than the limit tells a body over it from one at it:
	// a gzip bomb stops there.
	lr := &io.LimitedReader{R: body, N: maxBytes + 1}
	br := bufio.NewReaderSize(lr, 64<<10)
	ingested := FormatTime(st.Ingested)
	var out [][]byte
	for n := 1; ; n++ {
		line, err := readLine(br, MaxEventBytes)
		if errors.Is(err, errLineTooLong) {
			if lr.N <= 0 {
				return nil, stats, tooLarge(maxBytes)
			}
			return nil, stats, &BatchError{Line: n, Kind: ErrBatchTooLarge, Msg: fmt.Sprintf("the event is larger than %d bytes", MaxEventBytes)}
		}
		if err != nil && err != io.EOF {
			return nil, stats, &BatchError{Kind: ErrBatchInvalid, Msg: "reading the body: " + err.Error()}
		}
		if lr.N <= 0 {
			return nil, stats, tooLarge(maxBytes)
		}
		stats.Bytes += int64(len(line))
		if t := bytes.TrimSpace(line); len(t) > 0 {
			ev, perr := decodeEvent(t)
			if perr != "" {
				return nil, stats, &BatchError{Line: n, Kind: ErrBatchInvalid, Msg: perr}
			}
			ev[FieldHostName], ev[FieldAgentID], ev[FieldIngested] = st.Host, st.AgentID, ingested
			if _, ok := ev[FieldError]; ok {
				if stats.ParseErrors == nil {
					stats.ParseErrors = map[string]int{}
				}
				stats.ParseErrors[ev.String(FieldFilePath)]++
			}
			b, merr := json.Marshal(ev)
			if merr != nil {
				return nil, stats, &BatchError{Line: n, Kind: ErrBatchInvalid, Msg: merr.Error()}
			}
			if len(b) > MaxEventBytes {
				return nil, stats, &BatchError{Line: n, Kind: ErrBatchTooLarge, Msg: fmt.Sprintf("the event is larger than %d bytes", MaxEventBytes)}
			}
			out = append(out, b)
		}
		if err == io.EOF {
			break
		}
	}
	if len(out) == 0 {
		return nil, stats, &BatchError{Kind: ErrBatchInvalid, Msg: "no events"}
	}
	stats.Events = len(out)
	return out, stats, nil
}

func tooLarge(max int64) *BatchError {
	return &BatchError{Kind: ErrBatchTooLarge, Msg: fmt.Sprintf("the body is larger than %d bytes (decompressed); send smaller batches", max)}
}

var errLineTooLong = errors.New("line too long")

// readLine reads one line without its '\n' (io.EOF with the last one), or
// errLineTooLong once it passes max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > max+1 { // +1: the '\n'
			return nil, errLineTooLong
		}
		line = append(line, frag...)
		switch err {
		case nil:
			return line[:len(line)-1], nil
		case bufio.ErrBufferFull:
			continue
		default:
			return line, err
		}
	}
}

// decodeEvent decodes one line into an event: a JSON object whose values
// are strings, numbers, booleans, null or arrays of those. It returns why
// not, or "".
func decodeEvent(line []byte) (Event, string) {
	if line[0] != '{' {
		return nil, "not a JSON object"
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	var ev Event
	if err := dec.Decode(&ev); err != nil {
		return nil, "invalid JSON: " + err.Error()
	}
	if dec.More() {
		return nil, "invalid JSON: text after the object"
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, "invalid JSON: text after the object"
	}
	for k, v := range ev {
		if k == "" {
			return nil, "empty field name"
		}
		switch x := v.(type) {
		case map[string]any:
			return nil, fmt.Sprintf("field %q: nested objects are not allowed (use dotted names)", k)
		case []any:
			for _, e := range x {
				switch e.(type) {
				case map[string]any, []any:
					return nil, fmt.Sprintf("field %q: arrays hold only strings, numbers and booleans", k)
				}
			}
		}
	}
	return ev, ""
}
