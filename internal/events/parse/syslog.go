package parse

import (
	"fmt"
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/events"
)

// Syslog fields (ECS log.syslog.* where ECS has one). The message part
// after the header has no ECS name (message is the whole line), so it
// goes in syslog.message.
const (
	FieldSyslogPriority     = "log.syslog.priority"
	FieldSyslogFacilityCode = "log.syslog.facility.code"
	FieldSyslogFacilityName = "log.syslog.facility.name"
	FieldSyslogSeverityCode = "log.syslog.severity.code"
	FieldSyslogSeverityName = "log.syslog.severity.name"
	FieldSyslogVersion      = "log.syslog.version"
	FieldSyslogMsgID        = "log.syslog.msgid"
	FieldSyslogProcID       = "log.syslog.procid" // a non-numeric RFC 5424 PROCID
	FieldSyslogSD           = "syslog.structured_data"
	FieldSyslogMessage      = "syslog.message"
	FieldHostHostname       = "host.hostname"
	FieldProcessName        = "process.name"
	FieldProcessPID         = "process.pid"
)

var facilityNames = [...]string{"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
	"uucp", "cron", "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
	"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"}

var severityNames = [...]string{"emergency", "alert", "critical", "error", "warning", "notice",
	"informational", "debug"}

// frame is a syslog header, its parts sliced from the line.
type frame struct {
	pri     int // -1: none
	version int // 0: RFC 3164 (or a file without PRI)
	t       time.Time
	host    string
	app     string
	pid     string
	msgid   string
	sd      string
	msg     string
}

type syslogParser struct{ opts Options }

func (p *syslogParser) Parse(line []byte, ev events.Event) error {
	s := string(line)
	var f frame
	if err := p.frame(s, &f); err != nil {
		return err
	}
	base(ev, "syslog", "syslog", s)
	f.apply(ev)
	return nil
}

// apply writes the frame's fields to ev.
func (f *frame) apply(ev events.Event) {
	ev[events.FieldTimestamp] = events.FormatTime(f.t)
	if f.pri >= 0 {
		ev[FieldSyslogPriority] = int64(f.pri)
		fac, sev := f.pri>>3, f.pri&7
		ev[FieldSyslogFacilityCode] = int64(fac)
		if fac < len(facilityNames) {
			ev[FieldSyslogFacilityName] = facilityNames[fac]
		}
		ev[FieldSyslogSeverityCode] = int64(sev)
		ev[FieldSyslogSeverityName] = severityNames[sev]
	}
	if f.version > 0 {
		ev[FieldSyslogVersion] = int64(f.version)
	}
	if f.host != "" {
		ev[FieldHostHostname] = f.host
	}
	if f.app != "" {
		ev[FieldProcessName] = f.app
	}
	if f.pid != "" {
		if n, ok := atoi(f.pid); ok {
			ev[FieldProcessPID] = int64(n)
		} else {
			ev[FieldSyslogProcID] = f.pid
		}
	}
	if f.msgid != "" {
		ev[FieldSyslogMsgID] = f.msgid
	}
	if f.sd != "" {
		ev[FieldSyslogSD] = f.sd
	}
	ev[FieldSyslogMessage] = f.msg
}

// frame parses the syslog header of s: RFC 5424, RFC 3164 (with or
// without PRI, as written to files), or a 3164-style line with an RFC
// 3339 timestamp (rsyslog's high-precision file format).
func (p *syslogParser) frame(s string, f *frame) error {
	f.pri = -1
	rest := s
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("syslog: %w", ErrEmpty)
	}
	if rest[0] == '<' {
		end := strings.IndexByte(rest, '>')
		if end < 2 || end > 4 {
			return lineError("syslog", "bad priority %q at the start of the line", cut(rest, 6))
		}
		n, ok := atoi(rest[1:end])
		if !ok || n > 191 {
			return lineError("syslog", "bad priority %q at the start of the line", rest[:end+1])
		}
		f.pri = n
		rest = rest[end+1:]
		// RFC 5424: VERSION SP.
		if i := strings.IndexByte(rest, ' '); i > 0 && i <= 2 {
			if v, ok := atoi(rest[:i]); ok && v > 0 {
				f.version = v
				return p.frame5424(rest[i+1:], f)
			}
		}
	}
	return p.frame3164(rest, f)
}

func (p *syslogParser) frame5424(s string, f *frame) error {
	var ts string
	var ok bool
	if ts, s, ok = field(s); !ok {
		return lineError("syslog", "RFC 5424 line ends after the version")
	}
	if ts == "-" {
		f.t = p.opts.Now()
	} else {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err == nil {
			err = checkYear(t)
		}
		if err != nil {
			return lineError("syslog", "RFC 5424 timestamp %q: not RFC 3339", cut(ts, 40))
		}
		f.t = t
	}
	var host, app, pid, msgid string
	if host, s, ok = field(s); !ok {
		return lineError("syslog", "RFC 5424 line ends before HOSTNAME")
	}
	if app, s, ok = field(s); !ok {
		return lineError("syslog", "RFC 5424 line ends before APP-NAME")
	}
	if pid, s, ok = field(s); !ok {
		return lineError("syslog", "RFC 5424 line ends before PROCID")
	}
	if msgid, s, ok = field(s); !ok && s == "" && msgid == "" {
		return lineError("syslog", "RFC 5424 line ends before MSGID")
	}
	f.host, f.app, f.pid, f.msgid = nilValue(host), nilValue(app), nilValue(pid), nilValue(msgid)
	// STRUCTURED-DATA: "-" or one or more [id k="v" ...] elements; values
	// may hold escaped \] \" \\.
	switch {
	case s == "":
	case s[0] == '-':
		s = s[1:]
	case s[0] == '[':
		i := 0
		for i < len(s) && s[i] == '[' {
			j, err := sdElement(s, i)
			if err != nil {
				return err
			}
			i = j
		}
		f.sd, s = s[:i], s[i:]
	default:
		return lineError("syslog", "RFC 5424 STRUCTURED-DATA starts with %q, not '[' or '-'", s[:1])
	}
	if s != "" {
		if s[0] != ' ' {
			return lineError("syslog", "RFC 5424: no space after STRUCTURED-DATA")
		}
		s = strings.TrimPrefix(s[1:], "\ufeff")
	}
	f.msg = s
	return nil
}

// sdElement returns the index after the SD-ELEMENT starting at s[i]=='['.
func sdElement(s string, i int) (int, error) {
	inQuote := false
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case inQuote && c == '\\':
			j++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == ']':
			return j + 1, nil
		}
	}
	return 0, lineError("syslog", "RFC 5424 STRUCTURED-DATA element not closed with ']'")
}

func (p *syslogParser) frame3164(s string, f *frame) error {
	s = strings.TrimLeft(s, " ")
	if s == "" {
		return lineError("syslog", "line ends before the timestamp")
	}
	var rest string
	if c := s[0]; c >= '0' && c <= '9' {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			i = len(s)
		}
		t, err := time.Parse(time.RFC3339Nano, s[:i])
		if err == nil {
			err = checkYear(t)
		}
		if err != nil {
			return lineError("syslog", "timestamp %q: neither RFC 3339 nor \"Mmm dd hh:mm:ss\"", cut(s[:i], 40))
		}
		f.t, rest = t, s[i:]
	} else {
		t, n, err := p.stamp3164(s)
		if err != nil {
			return err
		}
		f.t, rest = t, s[n:]
	}
	rest = strings.TrimLeft(rest, " ")
	// HOSTNAME, unless the next token is already the TAG (local messages
	// sent without one).
	tok, after, _ := field(rest)
	if tok != "" && !isTag(tok) {
		f.host = tok
		rest = strings.TrimLeft(after, " ")
	}
	// TAG: name, optional [pid], then ':'. A line without one keeps it
	// all as the message.
	if i := tagEnd(rest); i >= 0 {
		tag := rest[:i]
		if b := strings.IndexByte(tag, '['); b >= 0 && strings.HasSuffix(tag, "]") {
			f.app, f.pid = tag[:b], tag[b+1:len(tag)-1]
		} else {
			f.app = tag
		}
		rest = rest[i+1:]
		if rest != "" && rest[0] == ' ' {
			rest = rest[1:]
		}
	}
	f.msg = rest
	return nil
}

// isTag reports whether tok (one space-free token) is a TAG rather than
// a HOSTNAME: it ends with ':' or holds '['.
func isTag(tok string) bool {
	return tok[len(tok)-1] == ':' || strings.IndexByte(tok, '[') >= 0
}

// tagEnd returns the index of the ':' ending the TAG at the start of s,
// or -1 when s does not start with one (a TAG holds no space; a pid in
// brackets may follow it).
func tagEnd(s string) int {
	for i := 0; i < len(s) && i < 64; i++ {
		switch s[i] {
		case ':':
			if i == 0 {
				return -1
			}
			return i
		case ' ', '\t':
			return -1
		case '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 || i+j+1 >= len(s) || s[i+j+1] != ':' {
				return -1
			}
			return i + j + 1
		}
	}
	return -1
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// stamp3164 parses "Mmm dd hh:mm:ss" (day space-padded or not, optional
// fraction of a second) at the start of s in p's location, inferring the
// year from p's clock: the year of now, or the one before when that would
// put the line more than two days in the future (a December line read in
// January, or last year's log replayed). It returns the time and the bytes consumed.
func (p *syslogParser) stamp3164(s string) (time.Time, int, error) {
	bad := func() (time.Time, int, error) {
		return time.Time{}, 0, lineError("syslog", "timestamp %q: neither RFC 3339 nor \"Mmm dd hh:mm:ss\"", cut(s, 20))
	}
	if len(s) < 14 || s[3] != ' ' {
		return bad()
	}
	mon := 0
	for i, m := range months {
		if s[:3] == m {
			mon = i + 1
			break
		}
	}
	if mon == 0 {
		return bad()
	}
	i := 4
	if s[i] == ' ' {
		i++
	}
	day := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9' && day < 100; i++ {
		day = day*10 + int(s[i]-'0')
	}
	if day < 1 || day > 31 || i+9 > len(s) || s[i] != ' ' {
		return bad()
	}
	i++
	hh, ok1 := two(s[i:])
	mm, ok2 := two(s[i+3:])
	ss, ok3 := two(s[i+6:])
	if !ok1 || !ok2 || !ok3 || s[i+2] != ':' || s[i+5] != ':' || hh > 23 || mm > 59 || ss > 60 {
		return bad()
	}
	i += 8
	nsec := 0
	if i < len(s) && s[i] == '.' {
		j, scale := i+1, 100000000
		for ; j < len(s) && s[j] >= '0' && s[j] <= '9'; j++ {
			nsec += int(s[j]-'0') * scale
			scale /= 10
		}
		if j == i+1 {
			return bad()
		}
		i = j
	}
	if i < len(s) && s[i] != ' ' {
		return bad()
	}
	now := p.opts.Now().In(p.opts.Location)
	t := time.Date(now.Year(), time.Month(mon), day, hh, mm, ss, nsec, p.opts.Location)
	if t.Sub(now) > 48*time.Hour {
		t = t.AddDate(-1, 0, 0)
	}
	return t, i, nil
}

func two(s string) (int, bool) {
	if len(s) < 2 || s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return 0, false
	}
	return int(s[0]-'0')*10 + int(s[1]-'0'), true
}

// field splits s at its first space: the token, what follows the space,
// and whether there was a space.
func field(s string) (tok, rest string, ok bool) {
	i := strings.IndexByte(s, ' ')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

func nilValue(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// atoi parses a non-negative decimal of at most 18 digits.
func atoi(s string) (int, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// cut shortens s for an error message.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// checkYear refuses a time whose UTC year is outside 1–9999 (RFC 3339
// cannot write it).
func checkYear(t time.Time) error {
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return errYear
	}
	return nil
}

var errYear = lineError("time", "year outside 1–9999 in UTC")
