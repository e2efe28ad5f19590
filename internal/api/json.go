package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"

	"github.com/warden-sec/warden/internal/api/handler"
	"github.com/warden-sec/warden/internal/errs"
)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readBody reads the (size-limited) request body. The body is read once:
// a later call (the handler, after a target function or dual control
// read it) returns the same bytes.
func (req *request) readBody() ([]byte, error) {
	if req.bodyRead {
		return req.body, nil
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if _, err := buf.ReadFrom(req.Body); err != nil {
		return nil, req.bodyError(err)
	}
	req.body, req.bodyRead = bytes.Clone(buf.Bytes()), true
	return req.body, nil
}

// decode reads and strictly decodes the request body into v.
func (req *request) decode(v any, allowEmpty bool) error {
	body, err := req.readBody()
	if err != nil {
		return err
	}
	return handler.DecodeJSON(body, v, allowEmpty)
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

// noQuery refuses a request with query parameters other than stale
// (which every GET takes), for routes that take none: a misspelt filter is
// an error, not a silently wider answer.
func noQuery(req *request) error {
	for k := range req.URL.Query() {
		if k != "stale" {
			return errs.E(errs.Invalid, "query parameter %q: this route takes none", clip(k))
		}
	}
	return nil
}
