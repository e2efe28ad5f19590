package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"

	"github.com/warden-sec/warden/internal/errs"
)

// DecodeJSON strictly decodes one JSON object from body into v: unknown
// fields, trailing data, wrong types and syntax errors are errs.Invalid with a
// message naming the field or the byte offset. An empty body is an error
// unless allowEmpty is set (then v is left as is).
func DecodeJSON(body []byte, v any, allowEmpty bool) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		if allowEmpty {
			return nil
		}
		return errs.E(errs.Invalid, "request body: a JSON object is required")
	}
	if trimmed[0] != '{' {
		return errs.E(errs.Invalid, "request body: must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if dec.More() {
		return errs.E(errs.Invalid, "request body: unexpected data after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errs.E(errs.Invalid, "request body: unexpected data after the JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return errs.E(errs.Invalid, "request body: malformed JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(top level)"
		}
		return errs.E(errs.Invalid, "%s: expected %s, got JSON %s", field, te.Type.String(), te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errs.E(errs.Invalid, "request body: truncated JSON")
	}
	// encoding/json reports unknown fields as `json: unknown field "x"`.
	if msg := err.Error(); len(msg) > 6 && msg[:6] == "json: " {
		return errs.E(errs.Invalid, "request body: %s", msg[6:])
	}
	return errs.E(errs.Invalid, "request body: %s", err.Error())
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readBody reads the (size-limited) request body.
func (req *request) readBody() ([]byte, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if _, err := buf.ReadFrom(req.Body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errs.E(errs.TooLarge, "request body is larger than %d bytes", mbe.Limit)
		}
		return nil, errs.E(errs.Invalid, "request body: %s", err.Error())
	}
	return bytes.Clone(buf.Bytes()), nil
}

// decode reads and strictly decodes the request body into v.
func (req *request) decode(v any, allowEmpty bool) error {
	body, err := req.readBody()
	if err != nil {
		return err
	}
	return DecodeJSON(body, v, allowEmpty)
}

// writeJSON writes body with status. A nil body with 204 writes nothing.
func writeJSON(w http.ResponseWriter, status int, body any) int {
	if status == http.StatusNoContent || body == nil {
		w.WriteHeader(status)
		return status
	}
	switch b := body.(type) {
	case derBody:
		return writeRaw(w, status, b.contentType, b.b)
	case pemText:
		return writeRaw(w, status, "application/x-pem-file", b)
	case rawText:
		return writeRaw(w, status, "text/plain; charset=utf-8", b)
	case fileBody:
		return writeFile(w, status, b)
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if err := json.NewEncoder(buf).Encode(body); err != nil {
		return writeError(w, http.StatusInternalServerError, "internal error: cannot encode response")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
	return status
}

type errorBody struct {
	Errors []string `json:"errors"`
}

func writeError(w http.ResponseWriter, status int, msg string) int {
	b, _ := json.Marshal(errorBody{Errors: []string{msg}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return status
}

// queryUint parses an optional unsigned query parameter.
func queryUint(r *http.Request, name string) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, errs.E(errs.Invalid, "%s: must be a non-negative integer, got %q", name, fmt.Sprint(v))
	}
	return n, nil
}

// fileBody is a response too large for memory: head, then the file's
// content. The file is already unlinked; writing closes it.
type fileBody struct {
	contentType string
	head        []byte
	f           *os.File
	size        int64
}

func writeFile(w http.ResponseWriter, status int, b fileBody) int {
	defer b.f.Close()
	w.Header().Set("Content-Type", b.contentType)
	w.Header().Set("Content-Length", strconv.FormatInt(int64(len(b.head))+b.size, 10))
	w.WriteHeader(status)
	if _, err := w.Write(b.head); err == nil {
		_, _ = io.Copy(w, b.f)
	}
	return status
}

// writeRaw writes a non-JSON body (a checkpoint note, PEM, DER).
func writeRaw(w http.ResponseWriter, status int, contentType string, b []byte) int {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return status
}
