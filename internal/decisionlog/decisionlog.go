// Package decisionlog writes an optional log of the decision API's
// decisions, like OPA's decision logs: one JSON line per logged decision
// (time, store, principal, action, resource, decision, the determining
// policies, request id) in a file only its owner can read.
//
// A decision never waits for the log: Log hands the entry to a bounded
// channel and returns; one goroutine writes what it finds there in batches
// (one write per batch). When the channel is full the entry is dropped and
// counted. It is not an audit log: nothing is fsynced, entries may be lost
// in a crash or dropped under load, and it holds no request context or
// entities (they may carry personal data), only the names the decision was
// about.
package decisionlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/prometheus/client_golang/prometheus"
)

// Entry is one decision. Reasons is not copied: the caller must not change
// it after Log.
type Entry struct {
	Time                        time.Time
	Store                       string
	Principal, Action, Resource types.EntityUID
	Allow                       bool
	Reasons                     []string // the policies that determined the decision
	RequestID                   string
}

// line is an entry's JSON form.
type line struct {
	Time      string   `json:"time"`
	Store     string   `json:"store"`
	Principal string   `json:"principal"`
	Action    string   `json:"action"`
	Resource  string   `json:"resource"`
	Decision  string   `json:"decision"`
	Policies  []string `json:"policies"`
	RequestID string   `json:"request_id"`
}

// Options configure a Logger. Zero values take the defaults.
type Options struct {
	// Sample is the fraction of decisions logged, 0 to 1 (every one when
	// 1; none when 0).
	Sample float64
	// Buffer is the number of entries waiting to be written beyond which
	// entries are dropped (default 8192).
	Buffer int
	// Metrics registers warden_authz_decision_log_entries_total{outcome}
	// (nil: not registered).
	Metrics prometheus.Registerer
	// Rand draws the sampling numbers in [0, 1) (default math/rand/v2).
	Rand func() float64
	// OnError is told of write errors (the entries of that batch are
	// counted as "failed"); default: ignored.
	OnError func(error)
}

func (opt Options) check() error {
	if !(opt.Sample >= 0 && opt.Sample <= 1) { // NaN too
		return fmt.Errorf("decisionlog: sample rate %v is not between 0 and 1", opt.Sample)
	}
	return nil
}

// DefaultBuffer is the default bound of entries waiting to be written.
const DefaultBuffer = 8192

// maxBatch bounds the entries written in one write.
const maxBatch = 512

// Logger writes decision log entries to a file. Log and Close are safe for
// concurrent use.
type Logger struct {
	w       io.WriteCloser
	sample  float64
	rand    func() float64
	onError func(error)
	ch      chan Entry
	quit    chan struct{} // closed by Close
	done    chan struct{} // closed when the writer has finished
	once    sync.Once

	written, dropped, failed prometheus.Counter
}

// Open opens (creating, mode 0600, or appending to) the log file at path
// and starts its writer.
func Open(path string, opt Options) (*Logger, error) {
	if err := opt.check(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("decisionlog: %w", err)
	}
	if err := f.Chmod(0o600); err != nil { // an existing file keeps its mode otherwise
		f.Close()
		return nil, fmt.Errorf("decisionlog: %w", err)
	}
	l, err := newLogger(f, opt)
	if err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// newLogger starts a logger writing to w (Open's file; a test's writer).
func newLogger(w io.WriteCloser, opt Options) (*Logger, error) {
	if err := opt.check(); err != nil {
		return nil, err
	}
	if opt.Buffer <= 0 {
		opt.Buffer = DefaultBuffer
	}
	if opt.Rand == nil {
		opt.Rand = rand.Float64
	}
	if opt.OnError == nil {
		opt.OnError = func(error) {}
	}
	entries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warden_authz_decision_log_entries_total",
		Help: "Decision log entries: written, dropped (the writer was behind; the decision was not delayed) or failed (the write failed).",
	}, []string{"outcome"})
	if opt.Metrics != nil {
		if err := opt.Metrics.Register(entries); err != nil {
			return nil, fmt.Errorf("decisionlog: %w", err)
		}
	}
	l := &Logger{
		w: w, sample: opt.Sample, rand: opt.Rand, onError: opt.OnError,
		ch: make(chan Entry, opt.Buffer), quit: make(chan struct{}), done: make(chan struct{}),
		written: entries.WithLabelValues("written"),
		dropped: entries.WithLabelValues("dropped"),
		failed:  entries.WithLabelValues("failed"),
	}
	go l.run()
	return l, nil
}

// Log records e if it is sampled, without waiting: if the writer is
// behind by the buffer's size, e is dropped and counted. A nil *Logger
// logs nothing.
func (l *Logger) Log(e Entry) {
	if l == nil || l.sample == 0 || (l.sample < 1 && l.rand() >= l.sample) {
		return
	}
	select {
	case l.ch <- e:
	default:
		l.dropped.Inc()
	}
}

// Close writes the entries already logged and closes the file. An entry
// logged after Close (a request still running when a server's shutdown
// gave up waiting) is not written.
func (l *Logger) Close() error {
	if l == nil {
		return nil
	}
	var err error
	l.once.Do(func() {
		close(l.quit)
		<-l.done
		err = l.w.Close()
	})
	return err
}

func (l *Logger) run() {
	defer close(l.done)
	var buf bytes.Buffer
	for {
		select {
		case e := <-l.ch:
			l.write(&buf, e)
		case <-l.quit:
			for {
				select {
				case e := <-l.ch:
					l.write(&buf, e)
				default:
					return
				}
			}
		}
	}
}

// write writes e and the entries waiting after it, up to maxBatch, in one
// write.
func (l *Logger) write(buf *bytes.Buffer, e Entry) {
	buf.Reset()
	appendLine(buf, e)
	n := 1
	for more := true; more && n < maxBatch; {
		select {
		case e := <-l.ch:
			appendLine(buf, e)
			n++
		default:
			more = false
		}
	}
	if _, err := l.w.Write(buf.Bytes()); err != nil {
		l.failed.Add(float64(n))
		l.onError(err)
		return
	}
	l.written.Add(float64(n))
}

func appendLine(buf *bytes.Buffer, e Entry) {
	ln := line{
		Time:      e.Time.UTC().Format(time.RFC3339Nano),
		Store:     e.Store,
		Principal: e.Principal.String(),
		Action:    e.Action.String(),
		Resource:  e.Resource.String(),
		Decision:  "deny",
		Policies:  e.Reasons,
		RequestID: e.RequestID,
	}
	if e.Allow {
		ln.Decision = "allow"
	}
	if ln.Policies == nil {
		ln.Policies = []string{}
	}
	// json.Encoder escapes what a terminal or a log shipper could misread
	// and ends the line; strings and string slices always encode.
	_ = json.NewEncoder(buf).Encode(ln)
}
