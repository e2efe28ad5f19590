package witness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	fnote "github.com/transparency-dev/formats/note"
)

// MaxRequestSize bounds an add-checkpoint request body: the old size line,
// 63 proof lines, the empty line and a checkpoint of MaxCheckpointSize.
const MaxRequestSize = len("old 18446744073709551615\n") + maxProofLines*(44+1) + 1 + MaxCheckpointSize

// maxResponseSize bounds what Client reads of a witness's answer.
const maxResponseSize = 64 << 10

// sizeContentType is the media type of a 409 answer (c2sp.org/tlog-witness).
const sizeContentType = "text/x.tlog.size"

// ParseAddCheckpoint parses the body of an add-checkpoint request
// (c2sp.org/tlog-witness): an old size line "old <decimal without leading
// zeros>", at most 63 lines each the standard base64 of a 32-byte hash, an
// empty line, then the checkpoint (returned as it is: AddCheckpoint checks
// it). Every line ends in a newline. Errors wrap ErrMalformed and name
// the line.
func ParseAddCheckpoint(body []byte) (oldSize uint64, proof [][]byte, checkpoint []byte, err error) {
	bad := func(line int, format string, args ...any) error {
		return fmt.Errorf("%w: line %d: %s", ErrMalformed, line, fmt.Sprintf(format, args...))
	}
	if len(body) > MaxRequestSize {
		return 0, nil, nil, fmt.Errorf("%w: body of %d bytes, more than %d", ErrMalformed, len(body), MaxRequestSize)
	}
	rest := body
	next := func() ([]byte, bool) {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return nil, false
		}
		l := rest[:i]
		rest = rest[i+1:]
		return l, true
	}
	l, ok := next()
	if !ok {
		return 0, nil, nil, bad(1, "no old size line ending in a newline")
	}
	num, found := bytes.CutPrefix(l, []byte("old "))
	if !found {
		return 0, nil, nil, bad(1, "want \"old <size>\"")
	}
	oldSize, err = strconv.ParseUint(string(num), 10, 64)
	if err != nil || strconv.FormatUint(oldSize, 10) != string(num) {
		return 0, nil, nil, bad(1, "old size %q is not a decimal without leading zeros", truncate(num))
	}
	for line := 2; ; line++ {
		l, ok := next()
		if !ok {
			return 0, nil, nil, bad(line, "no empty line before the checkpoint")
		}
		if len(l) == 0 {
			break
		}
		if len(proof) == maxProofLines {
			return 0, nil, nil, bad(line, "more than %d consistency proof lines", maxProofLines)
		}
		h, err := base64.StdEncoding.Strict().DecodeString(string(l))
		if err != nil || len(h) != HashSize {
			return 0, nil, nil, bad(line, "not the standard base64 of a %d-byte hash", HashSize)
		}
		proof = append(proof, h)
	}
	if len(rest) == 0 {
		return 0, nil, nil, fmt.Errorf("%w: no checkpoint after the empty line", ErrMalformed)
	}
	return oldSize, proof, rest, nil
}

// FormatAddCheckpoint is the body of an add-checkpoint request, the
// inverse of ParseAddCheckpoint.
func FormatAddCheckpoint(oldSize uint64, proof [][]byte, checkpoint []byte) []byte {
	var b bytes.Buffer
	b.WriteString("old ")
	b.WriteString(strconv.FormatUint(oldSize, 10))
	b.WriteByte('\n')
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(checkpoint)
	return b.Bytes()
}

// Handler serves POST /add-checkpoint of the C2SP tlog-witness protocol.
//
// It also serves the protocol's monitoring call, GET /<hex SHA-256 of
// the origin>/checkpoint: the last checkpoint cosigned for that log (404
// if none). Paths are relative to where the handler is mounted: mount it
// under a prefix with http.StripPrefix. Answers: 200 with the cosignature
// line(s); 400, 403, 404, 409 (Content-Type text/x.tlog.size, the
// witness's size), 422 as AddCheckpoint's errors map; 405 for another
// method; 413 for a body over MaxRequestSize. Refusals of a checkpoint
// the log signed (409, 422) are logged with the evidence through the
// logger set by SetLogger.
func (w *Witness) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/add-checkpoint", w.serveAddCheckpoint)
	mux.HandleFunc("GET /{origin}/checkpoint", w.serveCheckpoint)
	return mux
}

// SetLogger sets the logger of Handler's refusals (nil: none). Call it
// before serving.
func (w *Witness) SetLogger(l *slog.Logger) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.logger = l
}

func (w *Witness) log() *slog.Logger {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.logger
}

func textError(rw http.ResponseWriter, code int, msg string) {
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Header().Set("X-Content-Type-Options", "nosniff")
	rw.WriteHeader(code)
	io.WriteString(rw, oneLine(msg)+"\n")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func (w *Witness) serveAddCheckpoint(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		textError(rw, http.StatusMethodNotAllowed, "add-checkpoint takes a POST")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, int64(MaxRequestSize)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			textError(rw, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", MaxRequestSize))
			return
		}
		textError(rw, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	oldSize, proof, cp, err := ParseAddCheckpoint(body)
	if err == nil {
		var cosig []byte
		cosig, err = w.AddCheckpoint(r.Context(), oldSize, proof, cp)
		if err == nil {
			rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
			rw.Write(cosig)
			return
		}
	}
	var conflict *ConflictError
	var fork *ForkError
	switch {
	case errors.As(err, &conflict):
		w.log().Info("witness: add-checkpoint: old size does not match", "old", oldSize, "size", conflict.Size, "remote", r.RemoteAddr)
		rw.Header().Set("Content-Type", sizeContentType)
		rw.WriteHeader(http.StatusConflict)
		rw.Write(append(formatSize(conflict.Size), '\n'))
	case errors.As(err, &fork):
		w.log().Warn("witness: refused a checkpoint not consistent with the one cosigned before",
			"reason", fork.Reason, "cosigned", string(fork.Cosigned), "offered", string(fork.Offered), "remote", r.RemoteAddr)
		textError(rw, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, ErrMalformed):
		textError(rw, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrBadSignature):
		textError(rw, http.StatusForbidden, err.Error())
	case errors.Is(err, ErrUnknownLog):
		textError(rw, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrBadProof):
		textError(rw, http.StatusUnprocessableEntity, err.Error())
	case r.Context().Err() != nil:
		textError(rw, http.StatusServiceUnavailable, "request cancelled")
	default:
		w.log().Error("witness: add-checkpoint failed", "err", err)
		textError(rw, http.StatusInternalServerError, "internal error")
	}
}

func (w *Witness) serveCheckpoint(rw http.ResponseWriter, r *http.Request) {
	want := r.PathValue("origin")
	for _, origin := range w.Logs() {
		sum := sha256.Sum256([]byte(origin))
		if hex.EncodeToString(sum[:]) != want {
			continue
		}
		if cp := w.Latest(origin); cp != nil {
			rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
			rw.Write(cp)
			return
		}
		break
	}
	textError(rw, http.StatusNotFound, "no checkpoint cosigned for that origin hash")
}

// Serve serves Handler on ln until ctx is done, then shuts down: it stops
// accepting connections and waits for the requests in flight, at most
// ShutdownTimeout, before closing the rest. It returns nil after a
// shutdown, or the error that stopped serving. ln may be a TLS listener.
// Serve does not Close the witness.
func (w *Witness) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           w.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(w.log().Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("witness: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("witness: shutdown: %w", err)
	}
	return nil
}

// ShutdownTimeout bounds how long Serve waits for requests in flight.
const ShutdownTimeout = 10 * time.Second

// Client submits checkpoints to a witness over the tlog-witness protocol.
type Client struct {
	URL         string       // the witness's URL prefix (…/add-checkpoint is appended)
	VerifierKey string       // the witness's note verifier key: its cosignature is checked
	HTTP        *http.Client // nil: http.DefaultClient
}

// AddCheckpoint submits a checkpoint. On 409 it returns *ConflictError with
// the witness's size; on success the verified cosignature line(s).
//
// Only the lines of VerifierKey's key that verify are returned; an answer
// without one, or with an invalid one of that key, is an error. The
// witness's refusals wrap ErrMalformed (400), ErrBadSignature (403),
// ErrUnknownLog (404) and ErrBadProof (422), with the witness's message.
func (c *Client) AddCheckpoint(ctx context.Context, oldSize uint64, proof [][]byte, checkpoint []byte) ([]byte, error) {
	v, err := fnote.NewVerifierForCosignatureV1(c.VerifierKey)
	if err != nil {
		return nil, fmt.Errorf("witness: client: verifier key %q: %w", c.VerifierKey, err)
	}
	text, _, err := splitNote(checkpoint)
	if err != nil {
		return nil, fmt.Errorf("witness: client: %w: %v", ErrMalformed, err)
	}
	url := strings.TrimSuffix(c.URL, "/") + "/add-checkpoint"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(FormatAddCheckpoint(oldSize, proof, checkpoint)))
	if err != nil {
		return nil, fmt.Errorf("witness: client: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("witness: add-checkpoint to %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return nil, fmt.Errorf("witness: add-checkpoint to %s: reading the answer: %w", url, err)
	}
	if len(body) > maxResponseSize {
		return nil, fmt.Errorf("witness: add-checkpoint to %s: answer larger than %d bytes", url, maxResponseSize)
	}
	refused := func(sentinel error) error {
		return fmt.Errorf("%w (%s answered %d: %s)", sentinel, url, resp.StatusCode, truncate([]byte(oneLine(string(body)))))
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusConflict:
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		s, ok := bytes.CutSuffix(body, []byte("\n"))
		n, err := strconv.ParseUint(string(s), 10, 64)
		if mt != sizeContentType || !ok || err != nil || strconv.FormatUint(n, 10) != string(s) {
			return nil, fmt.Errorf("witness: add-checkpoint to %s: a 409 answer that is not a %s size", url, sizeContentType)
		}
		return nil, &ConflictError{Size: n}
	case http.StatusBadRequest:
		return nil, refused(ErrMalformed)
	case http.StatusForbidden:
		return nil, refused(ErrBadSignature)
	case http.StatusNotFound:
		return nil, refused(ErrUnknownLog)
	case http.StatusUnprocessableEntity:
		return nil, refused(ErrBadProof)
	default:
		return nil, fmt.Errorf("witness: add-checkpoint to %s: answered %d: %s", url, resp.StatusCode, truncate([]byte(oneLine(string(body)))))
	}
	if len(body) == 0 || body[len(body)-1] != '\n' {
		return nil, fmt.Errorf("witness: add-checkpoint to %s: the answer is not signature lines ending in a newline", url)
	}
	var out []byte
	for _, l := range bytes.Split(body[:len(body)-1], []byte("\n")) {
		name, sig, ok := parseSigLine(l)
		if !ok {
			return nil, fmt.Errorf("witness: add-checkpoint to %s: malformed signature line %q in the answer", url, truncate(l))
		}
		if name != v.Name() || binary.BigEndian.Uint32(sig) != v.KeyHash() {
			continue // another key: ignored, as the protocol requires
		}
		if !v.Verify(text, sig[4:]) {
			return nil, fmt.Errorf("witness: add-checkpoint to %s: the cosignature by %s does not verify", url, name)
		}
		if !bytes.Contains(out, l) {
			out = append(append(out, l...), '\n')
		}
	}
	if out == nil {
		return nil, fmt.Errorf("witness: add-checkpoint to %s: the answer has no cosignature by %s", url, v.Name())
	}
	return out, nil
}

// Submit adds checkpoint to the witness starting from oldSize, the size
// the caller believes the witness has (0 if it does not know): on 409 it
// asks proof for a consistency proof from the witness's size and submits
// again, at most once more. It returns the verified cosignature line(s)
// and the size the witness had before. proof(from) returns the proof from
// size from to the checkpoint's size (from ≤ that size; an empty proof
// for 0); when the witness's size is above the checkpoint's, Submit
// returns the *ConflictError.
func (c *Client) Submit(ctx context.Context, checkpoint []byte, oldSize uint64, proof func(ctx context.Context, from uint64) ([][]byte, error)) ([]byte, uint64, error) {
	text, _, err := splitNote(checkpoint)
	if err != nil {
		return nil, 0, fmt.Errorf("witness: client: %w: %v", ErrMalformed, err)
	}
	cp, err := parseCheckpoint(text)
	if err != nil {
		return nil, 0, fmt.Errorf("witness: client: %w: %v", ErrMalformed, err)
	}
	for attempt := 0; ; attempt++ {
		var p [][]byte
		if oldSize > 0 {
			if p, err = proof(ctx, oldSize); err != nil {
				return nil, 0, fmt.Errorf("witness: consistency proof from size %d: %w", oldSize, err)
			}
		}
		cosig, err := c.AddCheckpoint(ctx, oldSize, p, checkpoint)
		var conflict *ConflictError
		if errors.As(err, &conflict) && attempt == 0 && conflict.Size <= cp.size {
			oldSize = conflict.Size
			continue
		}
		return cosig, oldSize, err
	}
}
