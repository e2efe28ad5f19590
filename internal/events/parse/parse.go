// Package parse turns one log line into one normalized event: flat ECS
// field names (events.Event), @timestamp from the line, event.module,
// event.dataset and the original line in message.
//
// Parsers are pure: no I/O, no clock except Options.Now, no shared
// mutable state, so one Parser may be used from several goroutines. They
// are hand-written scanners rather than regular expressions, because the
// agent parses every line it ships (a parser costs about a microsecond).
//
// A line a parser cannot make sense of is an error, never a panic; the
// caller keeps it as a raw event (Raw) with error.message, so nothing is
// dropped silently. Parsers do not set the fields the server owns
// (event.ingested, host.name, agent.id) nor log.file.path (the tail does).
package parse

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/events"
)

// Options configure a parser. The zero value is usable.
type Options struct {
	// Dataset, when set, is the event.dataset of every event the parser
	// makes (the json parser's default is "json"; the others' are fixed:
	// sshd, nginx.access, apache.access, syslog, raw).
	Dataset string
	// Location is the zone of RFC 3164 syslog timestamps, which carry
	// none. Nil means time.Local.
	Location *time.Location
	// Now is the clock: it infers the year of RFC 3164 timestamps and
	// stamps lines that carry no time of their own. Nil means time.Now.
	Now func() time.Time
	// JSON configures the json parser.
	JSON JSONOptions
}

// JSONOptions configure the json parser.
type JSONOptions struct {
	// Mapping renames fields: source field (a dotted path into nested
	// objects, such as "req.remote") → ECS name ("source.ip").
	Mapping map[string]string
	// TimestampField is the (flattened, before mapping) field holding the
	// event's time; empty means "@timestamp", then "timestamp", then
	// "time" are tried.
	TimestampField string
	// TimestampLayout is a Go time layout, or "unix" (seconds, may be
	// fractional), "unix_ms" (milliseconds), "rfc3339" (the default).
	TimestampLayout string
}

// Parser parses one line into ev, which the caller passes empty (a map
// it may reuse after clearing). Parse does not keep line or ev. On error
// ev may hold some fields; the caller discards them and keeps the line
// with Raw. Implementations are safe for concurrent use.
type Parser interface {
	Parse(line []byte, ev events.Event) error
}

// Names returns the parser names New accepts, sorted.
func Names() []string { return []string{"apache", "json", "nginx", "raw", "sshd", "syslog"} }

// New returns the parser called name. An unknown name is an error naming
// it and the known ones; bad JSON options are errors naming the option.
func New(name string, opts Options) (Parser, error) {
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var p Parser
	switch name {
	case "syslog":
		p = &syslogParser{opts: opts}
	case "sshd":
		p = &sshdParser{sys: syslogParser{opts: opts}}
	case "nginx":
		p = &accessParser{opts: opts, module: "nginx", dataset: "nginx.access"}
	case "apache":
		p = &accessParser{opts: opts, module: "apache", dataset: "apache.access"}
	case "json":
		return newJSON(opts) // sets its own dataset
	case "raw":
		p = rawParser{now: opts.Now}
	default:
		return nil, fmt.Errorf("parse: unknown parser %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	if opts.Dataset != "" {
		p = datasetParser{p, opts.Dataset}
	}
	return p, nil
}

// datasetParser overrides the dataset of the events p makes.
type datasetParser struct {
	p       Parser
	dataset string
}

func (d datasetParser) Parse(line []byte, ev events.Event) error {
	if err := d.p.Parse(line, ev); err != nil {
		return err
	}
	ev[events.FieldDataset] = d.dataset
	return nil
}

// Raw fills ev as a raw event holding line: event.module and
// event.dataset "raw", message, and error.message when parseErr is not
// nil (why the configured parser refused the line). It sets no
// @timestamp: the caller stamps its read time with SetReadTime.
func Raw(line []byte, parseErr error, ev events.Event) {
	ev[events.FieldModule] = "raw"
	ev[events.FieldDataset] = "raw"
	ev[events.FieldMessage] = string(line)
	if parseErr != nil {
		ev[events.FieldError] = parseErr.Error()
	}
}

// SetReadTime stamps ev with t (the time the line was read) when it has
// no @timestamp of its own, and reports whether it did.
func SetReadTime(ev events.Event, t time.Time) bool {
	if _, ok := ev[events.FieldTimestamp]; ok {
		return false
	}
	ev[events.FieldTimestamp] = events.FormatTime(t)
	return true
}

type rawParser struct{ now func() time.Time }

func (p rawParser) Parse(line []byte, ev events.Event) error {
	Raw(line, nil, ev)
	SetReadTime(ev, p.now())
	return nil
}

// ErrEmpty is returned for an empty (or all-blank) line.
var ErrEmpty = errors.New("empty line")

// lineError is a parse error naming the parser and why.
func lineError(parser, format string, args ...any) error {
	return fmt.Errorf("%s: %s", parser, fmt.Sprintf(format, args...))
}

func base(ev events.Event, module, dataset, msg string) {
	ev[events.FieldModule] = module
	ev[events.FieldDataset] = dataset
	ev[events.FieldMessage] = msg
}
