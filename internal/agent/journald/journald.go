// Package journald is the agent source that reads the systemd journal, by
// running `journalctl -o json --follow` and turning each entry into an
// event. The journal cursor of an entry is the state handed to emit, so
// after a restart the source resumes with --after-cursor and neither
// loses nor repeats an entry.
//
// A unit mapped to a parser (sshd.service → sshd) has its MESSAGE parsed
// by it, so an sshd line from the journal is the same event as one from
// auth.log (the parser's event.dataset); other entries, and messages the
// parser does not know, are journald events.
//
// It reads the journal through journalctl rather than libsystemd (no cgo)
// and does nothing where journalctl is absent: Run says journald is not
// available.
package journald

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/agent/source"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/events/parse"
)

// Fields of journald events beyond the parsers' (Filebeat's journald
// names where ECS has none).
const (
	FieldUnit       = "systemd.unit"      // _SYSTEMD_UNIT
	FieldIdentifier = "syslog.identifier" // SYSLOG_IDENTIFIER (also process.name)
)

// MaxEntryBytes bounds one journal entry's JSON; a longer one is skipped
// and logged.
const MaxEntryBytes = 1 << 20

// Config configures the journald source.
type Config struct {
	// Units restricts the entries to these systemd units (-u, repeated);
	// empty means the whole journal.
	Units []string
	// Parsers maps a unit ("sshd.service") to the parser its MESSAGE is
	// parsed with ("sshd"); see parse.New.
	Parsers map[string]string
	// ParseOptions are given to the parsers.
	ParseOptions parse.Options
	// Journalctl is the journalctl program (a path, or a name looked up in
	// PATH); empty means "journalctl".
	Journalctl string
	// Restart is the first delay before journalctl is started again after
	// it exited (doubling up to a minute); 0 means one second.
	Restart time.Duration
	// Logf reports what does not stop the source; nil discards.
	Logf func(format string, args ...any)
}

// Journald is the journald source.
type Journald struct {
	cfg     Config
	name    string
	parsers map[string]parse.Parser
}

var _ source.Source = (*Journald)(nil)

// New checks cfg (every mapped parser must exist) and returns the source.
func New(cfg Config) (*Journald, error) {
	j := &Journald{cfg: cfg, parsers: map[string]parse.Parser{}}
	units := make([]string, 0, len(cfg.Parsers))
	for u := range cfg.Parsers {
		units = append(units, u)
	}
	sort.Strings(units)
	for _, u := range units {
		p, err := parse.New(cfg.Parsers[u], cfg.ParseOptions)
		if err != nil {
			return nil, fmt.Errorf("journald: unit %s: %w", u, err)
		}
		j.parsers[u] = p
	}
	for _, u := range cfg.Units {
		if u == "" || strings.HasPrefix(u, "-") {
			return nil, fmt.Errorf("journald: unit %q is not a unit name", u)
		}
	}
	if j.cfg.Journalctl == "" {
		j.cfg.Journalctl = "journalctl"
	}
	if j.cfg.Restart <= 0 {
		j.cfg.Restart = time.Second
	}
	if j.cfg.Logf == nil {
		j.cfg.Logf = func(string, ...any) {}
	}
	j.name = "journald:*"
	if len(cfg.Units) > 0 {
		j.name = "journald:" + strings.Join(cfg.Units, ",")
	}
	return j, nil
}

// Name is "journald:" and the units ("journald:sshd.service,cron.service"),
// or "journald:*" for the whole journal.
func (j *Journald) Name() string { return j.name }

// ErrNotAvailable is returned by Run where journalctl cannot be found.
var ErrNotAvailable = errors.New("journald is not available on this host")

// Args returns journalctl's arguments for a start after cursor (empty:
// only entries written from now on).
func (j *Journald) Args(cursor string) []string {
	args := []string{"-o", "json", "--follow", "--no-pager"}
	if cursor != "" {
		args = append(args, "--after-cursor="+cursor)
	} else {
		args = append(args, "--lines=0")
	}
	for _, u := range j.cfg.Units {
		args = append(args, "-u", u)
	}
	return args
}

// Run follows the journal from state (a cursor; nil: from now on) until
// ctx ends, starting journalctl again (from the last cursor) when it
// exits. It returns an error wrapping ErrNotAvailable when journalctl is
// absent.
func (j *Journald) Run(ctx context.Context, state []byte, emit source.Emit) error {
	path, err := exec.LookPath(j.cfg.Journalctl)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotAvailable, err)
	}
	cursor := string(state)
	delay := j.cfg.Restart
	for {
		n, err := j.follow(ctx, path, &cursor, emit)
		if ctx.Err() != nil {
			return nil
		}
		var ee emitError
		if errors.As(err, &ee) {
			return ee.err
		}
		if n > 0 {
			delay = j.cfg.Restart
		}
		j.cfg.Logf("journald: journalctl exited (%v); starting it again in %v", err, delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Minute)
	}
}

// emitError marks an error of emit (the shipper is stopping).
type emitError struct{ err error }

func (e emitError) Error() string { return e.err.Error() }

// follow runs journalctl once, emitting entries and advancing *cursor,
// and returns how many entries it read and why it stopped.
func (j *Journald) follow(ctx context.Context, path string, cursor *string, emit source.Emit) (int, error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(cctx, path, j.Args(*cursor)...)
	cmd.WaitDelay = 2 * time.Second
	stderr := &tailBuffer{max: 4096}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	n, rerr := j.read(out, cursor, emit)
	if rerr != nil {
		cancel()
	}
	werr := cmd.Wait()
	if rerr != nil {
		return n, rerr
	}
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		return n, fmt.Errorf("%v: %s", werr, msg)
	}
	if werr == nil {
		werr = errors.New("end of output")
	}
	return n, werr
}

func (j *Journald) read(out io.Reader, cursor *string, emit source.Emit) (int, error) {
	br := bufio.NewReaderSize(out, 64<<10)
	n := 0
	var line []byte
	tooLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > MaxEntryBytes {
				tooLong, line = true, line[:0]
			} else {
				line = append(line, chunk...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if tooLong {
			j.cfg.Logf("journald: skipped an entry over %d bytes", MaxEntryBytes)
		} else if l := bytes.TrimSpace(line); len(l) > 0 {
			ev, cur, perr := j.Entry(l)
			if perr != nil {
				j.cfg.Logf("journald: %v", perr)
			} else {
				if err := emit(ev, []byte(cur)); err != nil {
					return n, emitError{err}
				}
				*cursor = cur
				n++
			}
		}
		line, tooLong = line[:0], false
		if err != nil {
			if err == io.EOF {
				return n, nil
			}
			return n, err
		}
	}
}

// entry is what the source reads of a journal entry. Fields are strings,
// or arrays of bytes for values that are not valid UTF-8.
type entry struct {
	Message    field `json:"MESSAGE"`
	Realtime   field `json:"__REALTIME_TIMESTAMP"`
	Cursor     field `json:"__CURSOR"`
	Hostname   field `json:"_HOSTNAME"`
	PID        field `json:"_PID"`
	Unit       field `json:"_SYSTEMD_UNIT"`
	Identifier field `json:"SYSLOG_IDENTIFIER"`
	Comm       field `json:"_COMM"`
	Priority   field `json:"PRIORITY"`
}

// field is a journal field's value: a JSON string, an array of byte
// values, or null (a value too large for journalctl to print).
type field string

func (f *field) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = field(s)
	case len(b) > 0 && b[0] == '[':
		var bs []byte
		var ns []int
		if err := json.Unmarshal(b, &ns); err != nil {
			// Several values for one field: keep the first.
			var ss []json.RawMessage
			if err := json.Unmarshal(b, &ss); err != nil || len(ss) == 0 {
				return fmt.Errorf("field value %.40s: neither a string nor bytes", b)
			}
			return f.UnmarshalJSON(ss[0])
		}
		for _, n := range ns {
			bs = append(bs, byte(n))
		}
		*f = field(strings.ToValidUTF8(string(bs), "\ufffd"))
	case string(b) == "null":
	default:
		return fmt.Errorf("field value %.40s: neither a string nor bytes", b)
	}
	return nil
}

var severityNames = [...]string{"emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug"}

// Entry turns one line of `journalctl -o json` into an event and returns
// it with the entry's cursor. An entry without __CURSOR is an error.
func (j *Journald) Entry(line []byte) (events.Event, string, error) {
	var e entry
	if err := json.Unmarshal(line, &e); err != nil {
		return nil, "", fmt.Errorf("entry is not a journal JSON object: %v", err)
	}
	if e.Cursor == "" {
		return nil, "", errors.New("entry has no __CURSOR")
	}
	msg := string(e.Message)
	ev := events.Event{}
	parsed := false
	if p := j.parsers[string(e.Unit)]; p != nil {
		if err := p.Parse([]byte(msg), ev); err == nil {
			parsed = true
		} else {
			clear(ev)
		}
	}
	if !parsed {
		ev[events.FieldModule] = "journald"
		ev[events.FieldDataset] = "journald"
		ev[events.FieldMessage] = msg
	}
	if us, err := strconv.ParseInt(string(e.Realtime), 10, 64); err == nil {
		ev[events.FieldTimestamp] = events.FormatTime(time.UnixMicro(us))
	} else {
		parse.SetReadTime(ev, time.Now())
	}
	set := func(k, v string) {
		if _, ok := ev[k]; !ok && v != "" {
			ev[k] = v
		}
	}
	set(parse.FieldHostHostname, string(e.Hostname))
	set(FieldUnit, string(e.Unit))
	set(FieldIdentifier, string(e.Identifier))
	if e.Identifier != "" {
		set(parse.FieldProcessName, string(e.Identifier))
	} else {
		set(parse.FieldProcessName, string(e.Comm))
	}
	if pid, err := strconv.ParseInt(string(e.PID), 10, 64); err == nil {
		if _, ok := ev[parse.FieldProcessPID]; !ok {
			ev[parse.FieldProcessPID] = pid
		}
	}
	if sev, err := strconv.Atoi(string(e.Priority)); err == nil && sev >= 0 && sev < len(severityNames) {
		if _, ok := ev[parse.FieldSyslogSeverityCode]; !ok {
			ev[parse.FieldSyslogSeverityCode] = int64(sev)
			ev[parse.FieldSyslogSeverityName] = severityNames[sev]
		}
	}
	return ev, string(e.Cursor), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
