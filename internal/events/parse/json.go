package parse

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/warden-sec/warden/internal/events"
)

// jsonParser parses one JSON object a line. Nested objects are flattened
// to dotted keys ({"a":{"b":1}} → "a.b"); arrays of scalars stay arrays,
// an array holding objects or arrays is kept as its JSON text; null
// values are dropped; numbers are float64 (as the wire decodes them).
// Mapping renames keys after flattening; a key the parser sets itself
// (message, event.module, event.dataset, @timestamp) is overwritten, so
// map a source "message" to another name to keep it. Strict: duplicate
// names, invalid UTF-8 and anything after the object are errors.
type jsonParser struct {
	now      func() time.Time
	dataset  string
	mapping  map[string]string
	tsFields []string
	layout   string
	decoders sync.Pool
}

func newJSON(opts Options) (*jsonParser, error) {
	p := &jsonParser{now: opts.Now, dataset: opts.Dataset, mapping: opts.JSON.Mapping, layout: opts.JSON.TimestampLayout}
	if p.dataset == "" {
		p.dataset = "json"
	}
	for src, dst := range p.mapping {
		if src == "" || dst == "" {
			return nil, fmt.Errorf("parse: json mapping %q → %q: empty field name", src, dst)
		}
	}
	switch p.layout {
	case "", "rfc3339":
		p.layout = time.RFC3339Nano
	case "unix", "unix_ms":
	default:
		if !strings.ContainsAny(p.layout, "0123456789") {
			return nil, fmt.Errorf("parse: json timestamp_layout %q: not a Go time layout (such as %q), \"unix\", \"unix_ms\" or \"rfc3339\"", p.layout, time.RFC3339)
		}
	}
	if opts.JSON.TimestampField != "" {
		p.tsFields = []string{opts.JSON.TimestampField}
	} else {
		p.tsFields = []string{"@timestamp", "timestamp", "time"}
	}
	return p, nil
}

type jsonDecoder struct {
	r   bytes.Reader
	dec *jsontext.Decoder
}

func (p *jsonParser) Parse(line []byte, ev events.Event) error {
	d, _ := p.decoders.Get().(*jsonDecoder)
	if d == nil {
		d = &jsonDecoder{}
		d.dec = jsontext.NewDecoder(&d.r)
	}
	d.r.Reset(line)
	d.dec.Reset(&d.r)
	err := p.parse(d.dec, line, ev)
	d.r.Reset(nil)
	d.dec.Reset(&d.r)
	p.decoders.Put(d)
	return err
}

func (p *jsonParser) parse(dec *jsontext.Decoder, line []byte, ev events.Event) error {
	tok, err := dec.ReadToken()
	if err != nil {
		return lineError("json", "%v", jsonErr(err))
	}
	if tok.Kind() != '{' {
		return lineError("json", "the line is a JSON %s, not an object", tok.Kind())
	}
	if err := p.object(dec, "", ev); err != nil {
		return err
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return lineError("json", "more data after the object")
	}
	var ts any
	var tsName string
	for _, f := range p.tsFields {
		if v, ok := ev[p.rename(f)]; ok {
			ts, tsName = v, f
			break
		}
	}
	if ts != nil {
		t, err := p.time(ts)
		if err == nil {
			err = checkYear(t)
		}
		if err != nil {
			return lineError("json", "timestamp field %q: %v", tsName, err)
		}
		ev[events.FieldTimestamp] = events.FormatTime(t)
	} else {
		ev[events.FieldTimestamp] = events.FormatTime(p.now())
	}
	base(ev, "json", p.dataset, string(line))
	return nil
}

func (p *jsonParser) rename(k string) string {
	if v, ok := p.mapping[k]; ok {
		return v
	}
	return k
}

// object reads the members of an object whose '{' was read, up to and
// including its '}'.
func (p *jsonParser) object(dec *jsontext.Decoder, prefix string, ev events.Event) error {
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return lineError("json", "%v", jsonErr(err))
		}
		if tok.Kind() == '}' {
			return nil
		}
		key := prefix + tok.String()
		switch dec.PeekKind() {
		case '{':
			if _, err := dec.ReadToken(); err != nil {
				return lineError("json", "%v", jsonErr(err))
			}
			if err := p.object(dec, key+".", ev); err != nil {
				return err
			}
		case '[':
			v, err := dec.ReadValue()
			if err != nil {
				return lineError("json", "%v", jsonErr(err))
			}
			ev[p.rename(key)] = array(v)
		default:
			tok, err := dec.ReadToken()
			if err != nil {
				return lineError("json", "%v", jsonErr(err))
			}
			switch tok.Kind() {
			case '"':
				ev[p.rename(key)] = tok.String()
			case '0':
				f, err := tok.Float()
				if err != nil {
					return lineError("json", "field %q: %v", key, err)
				}
				ev[p.rename(key)] = f
			case 't', 'f':
				ev[p.rename(key)] = tok.Bool()
			}
		}
	}
}

// array returns a JSON array of scalars as []any, any other as its text.
func array(v jsontext.Value) any {
	dec := jsontext.NewDecoder(bytes.NewReader(v))
	_, _ = dec.ReadToken() // '['
	var out []any
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return string(v)
		}
		switch tok.Kind() {
		case ']':
			if out == nil {
				out = []any{}
			}
			return out
		case '"':
			out = append(out, tok.String())
		case '0':
			f, _ := tok.Float()
			out = append(out, f)
		case 't', 'f':
			out = append(out, tok.Bool())
		case 'n':
		default:
			return string(v)
		}
	}
}

// time converts a timestamp field's value with the configured layout.
func (p *jsonParser) time(v any) (time.Time, error) {
	switch p.layout {
	case "unix", "unix_ms":
		var f float64
		switch v := v.(type) {
		case float64:
			f = v
		case string:
			var err error
			if f, err = strconv.ParseFloat(v, 64); err != nil {
				return time.Time{}, fmt.Errorf("%q is not a number of %s", cut(v, 40), unit(p.layout))
			}
		default:
			return time.Time{}, fmt.Errorf("a %T, not a number of %s", v, unit(p.layout))
		}
		limit := 1e11 // seconds: year 5138
		if p.layout == "unix_ms" {
			limit *= 1000
		}
		if math.IsNaN(f) || math.Abs(f) > limit {
			return time.Time{}, fmt.Errorf("%v %s is out of range", f, unit(p.layout))
		}
		// Whole units exactly, the fraction rounded to the microsecond
		// (what a float64 holds of it).
		whole := math.Floor(f)
		frac := time.Duration(math.Round((f-whole)*1e6)) * time.Microsecond
		if p.layout == "unix_ms" {
			return time.UnixMilli(int64(whole)).Add(frac / 1000).UTC(), nil
		}
		return time.Unix(int64(whole), 0).Add(frac).UTC(), nil
	}
	s, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("a %T, not a string in layout %q", v, p.layout)
	}
	t, err := time.Parse(p.layout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q does not match layout %q", cut(s, 40), p.layout)
	}
	return t, nil
}

func unit(layout string) string {
	if layout == "unix_ms" {
		return "milliseconds"
	}
	return "seconds"
}

// jsonErr shortens a decoder error (which may quote the input) to its
// cause and position.
func jsonErr(err error) error {
	if se, ok := err.(*jsontext.SyntacticError); ok {
		return fmt.Errorf("invalid JSON at byte %d: %v", se.ByteOffset, se.Err)
	}
	return err
}
