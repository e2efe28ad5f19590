package auditlog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Sink receives every committed audit entry as a JSON line, in addition to
// the Merkle log, from a tailer of the local state machine (see
// Service.Healthy and docs/audit.md for the delivery guarantee). A required
// sink that fails, or falls too far behind, makes audited requests fail
// (503) until it catches up; a best-effort sink only logs and counts its
// failures.
type Sink struct {
	Name     string
	Required bool
	w        io.Writer
	sync     func() error // nil: nothing to sync
	close    func() error

	jobs chan sinkJob
	once sync.Once
}

type sinkJob struct {
	lines [][]byte
	done  chan error
}

// SinkTimeout bounds one sink write: a hung sink turns into errors, never
// into hung requests.
const SinkTimeout = 2 * time.Second

// FileSink appends JSON lines to path (created 0600) and fsyncs after every
// batch.
func FileSink(path string, required bool) (*Sink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit file: %w", err)
	}
	return newSink("file:"+path, required, f, f.Sync, f.Close), nil
}

// WriterSink writes JSON lines to w (standard output, for example) without
// syncing.
func WriterSink(name string, w io.Writer, required bool) *Sink {
	return newSink(name, required, w, nil, nil)
}

func newSink(name string, required bool, w io.Writer, sync, close func() error) *Sink {
	s := &Sink{Name: name, Required: required, w: w, sync: sync, close: close, jobs: make(chan sinkJob, 64)}
	go s.run()
	return s
}

// run is the sink's single writer: requests hand it batches and wait with a
// timeout, so a stuck write blocks only this goroutine.
func (s *Sink) run() {
	for job := range s.jobs {
		job.done <- s.write(job.lines)
	}
}

func (s *Sink) write(lines [][]byte) error {
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	buf := make([]byte, 0, n)
	for _, l := range lines {
		buf = append(append(buf, l...), '\n')
	}
	if _, err := s.w.Write(buf); err != nil {
		return err
	}
	if s.sync != nil {
		return s.sync()
	}
	return nil
}

// errSinkBusy: the sink's queue is full (it is hung or far behind).
var errSinkBusy = errors.New("sink is not keeping up")

// Write hands lines to the sink and waits up to SinkTimeout.
func (s *Sink) Write(lines [][]byte) error {
	job := sinkJob{lines: lines, done: make(chan error, 1)}
	t := time.NewTimer(SinkTimeout)
	defer t.Stop()
	select {
	case s.jobs <- job:
	case <-t.C:
		return errSinkBusy
	}
	select {
	case err := <-job.done:
		return err
	case <-t.C:
		return fmt.Errorf("write took longer than %s", SinkTimeout)
	}
}

// Close stops the writer and closes the file.
func (s *Sink) Close() error {
	var err error
	s.once.Do(func() {
		close(s.jobs)
		if s.close != nil {
			err = s.close()
		}
	})
	return err
}
