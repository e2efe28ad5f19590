package parse

import (
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/events"
)

// Access log fields (ECS).
const (
	FieldHTTPMethod    = "http.request.method"
	FieldHTTPReferrer  = "http.request.referrer"
	FieldHTTPVersion   = "http.version"
	FieldHTTPStatus    = "http.response.status_code"
	FieldHTTPBodyBytes = "http.response.body.bytes"
	FieldURLOriginal   = "url.original"
	FieldURLPath       = "url.path"
	FieldURLQuery      = "url.query"
	FieldUserAgent     = "user_agent.original"
	categoryWeb        = "web"
)

// accessParser parses the combined log format nginx and Apache write by
// default, and the common log format (the same without referrer and user
// agent):
//
//	host ident user [dd/Mon/yyyy:hh:mm:ss +zzzz] "request" status bytes ["referrer" "user agent"]
//
// What follows the user agent (fields operators append) is ignored.
// Quoted values are kept as logged: nginx's \xHH and Apache's \" escapes
// are not decoded.
type accessParser struct {
	opts            Options
	module, dataset string
}

func (p *accessParser) Parse(line []byte, ev events.Event) error {
	s := string(line)
	name := p.module
	rest := strings.TrimLeft(s, " ")
	host, rest, ok := field(rest)
	if !ok || host == "" {
		return lineError(name, "line ends after the client address")
	}
	rest = strings.TrimLeft(rest, " ")
	_, rest, ok = field(rest) // ident (%l), always "-" in practice
	if !ok {
		return lineError(name, "line ends after the ident field")
	}
	rest = strings.TrimLeft(rest, " ")
	// The user may be empty or hold spaces in odd logs; it ends at " [".
	i := strings.Index(rest, "[")
	if i < 0 {
		return lineError(name, "no [time] field")
	}
	user := strings.TrimRight(rest[:i], " ")
	rest = rest[i+1:]
	j := strings.IndexByte(rest, ']')
	if j < 0 {
		return lineError(name, "[time] field not closed")
	}
	t, err := clfTime(rest[:j])
	if err != nil {
		return lineError(name, "time %q: %v", cut(rest[:j], 40), err)
	}
	rest = strings.TrimLeft(rest[j+1:], " ")
	req, rest, err := quoted(rest)
	if err != nil {
		return lineError(name, "request: %v", err)
	}
	rest = strings.TrimLeft(rest, " ")
	statusTok, rest, _ := field(rest)
	status, ok := atoi(statusTok)
	if !ok || status < 100 || status > 999 {
		return lineError(name, "status %q is not a 3-digit number", cut(statusTok, 10))
	}
	rest = strings.TrimLeft(rest, " ")
	bytesTok, rest, _ := field(rest)
	size, sizeOK := atoi(bytesTok)
	if !sizeOK && bytesTok != "-" {
		return lineError(name, "body bytes %q is neither a number nor \"-\"", cut(bytesTok, 20))
	}
	var ref, agent string
	if rest = strings.TrimLeft(rest, " "); rest != "" && rest[0] == '"' {
		if ref, rest, err = quoted(rest); err != nil {
			return lineError(name, "referrer: %v", err)
		}
		if rest = strings.TrimLeft(rest, " "); rest != "" && rest[0] == '"' {
			if agent, _, err = quoted(rest); err != nil {
				return lineError(name, "user agent: %v", err)
			}
		}
	}

	base(ev, p.module, p.dataset, s)
	ev[events.FieldTimestamp] = events.FormatTime(t)
	ev[events.FieldCategory] = categoryWeb
	if status >= 400 {
		ev[events.FieldOutcome] = outcomeFailure
	} else {
		ev[events.FieldOutcome] = outcomeSuccess
	}
	setHost(ev, host)
	if user != "-" && user != "" {
		ev[events.FieldUserName] = user
	}
	request(ev, req)
	ev[FieldHTTPStatus] = int64(status)
	if sizeOK {
		ev[FieldHTTPBodyBytes] = int64(size)
	} else {
		ev[FieldHTTPBodyBytes] = int64(0) // Apache's %b writes "-" for no body
	}
	if ref != "" && ref != "-" {
		ev[FieldHTTPReferrer] = ref
	}
	if agent != "" && agent != "-" {
		ev[FieldUserAgent] = agent
	}
	return nil
}

// request sets the method, URL and version from a request line "METHOD
// URI HTTP/x.y". A line that is not one (garbage sent to the port, logged
// as is) sets nothing: the status still says what the server answered.
func request(ev events.Event, req string) {
	method, rest, ok := field(req)
	if !ok || !isMethod(method) {
		return
	}
	uri := rest
	if i := strings.LastIndexByte(rest, ' '); i >= 0 && strings.HasPrefix(rest[i+1:], "HTTP/") {
		uri = rest[:i]
		ev[FieldHTTPVersion] = rest[i+1+len("HTTP/"):]
	}
	if uri == "" {
		return
	}
	ev[FieldHTTPMethod] = method
	ev[FieldURLOriginal] = uri
	if q := strings.IndexByte(uri, '?'); q >= 0 {
		ev[FieldURLPath] = uri[:q]
		ev[FieldURLQuery] = uri[q+1:]
	} else {
		ev[FieldURLPath] = uri
	}
}

func isMethod(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'A' || c > 'Z') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// quoted returns the "..." value at the start of s (backslash escapes
// skipped, not decoded) and what follows it.
func quoted(s string) (val, rest string, err error) {
	if s == "" || s[0] != '"' {
		return "", s, errNotQuoted
	}
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return s[1:i], s[i+1:], nil
		}
	}
	return "", s, errUnclosed
}

var (
	errNotQuoted = lineError("value", "not in double quotes")
	errUnclosed  = lineError("value", "closing double quote missing")
	errCLFTime   = lineError("time", "not dd/Mon/yyyy:hh:mm:ss ±hhmm")
)

// clfTime parses "02/Dec/2026:10:00:00 +0000" (no allocation).
func clfTime(s string) (time.Time, error) {
	if len(s) != 26 || s[2] != '/' || s[6] != '/' || s[11] != ':' || s[14] != ':' || s[17] != ':' || s[20] != ' ' {
		return time.Time{}, errCLFTime
	}
	day, ok1 := two(s)
	mon := 0
	for i, m := range months {
		if s[3:6] == m {
			mon = i + 1
		}
	}
	y1, ok2 := two(s[7:])
	y2, ok3 := two(s[9:])
	hh, ok4 := two(s[12:])
	mm, ok5 := two(s[15:])
	ss, ok6 := two(s[18:])
	zh, ok7 := two(s[22:])
	zm, ok8 := two(s[24:])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && ok8) || mon == 0 || day < 1 || day > 31 ||
		hh > 23 || mm > 59 || ss > 60 || zm > 59 || (s[21] != '+' && s[21] != '-') {
		return time.Time{}, errCLFTime
	}
	off := time.Duration(zh)*time.Hour + time.Duration(zm)*time.Minute
	if s[21] == '-' {
		off = -off
	}
	t := time.Date(y1*100+y2, time.Month(mon), day, hh, mm, ss, 0, time.UTC).Add(-off)
	return t, checkYear(t)
}
