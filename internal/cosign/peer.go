package cosign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/warden-sec/warden/internal/witness"
)

// Guard is a node's own witness as the cluster uses it: every refusal that
// is a fork (a *witness.ForkError) is reported to OnFork with the node
// that submitted the checkpoint ("" for this node itself) before the
// refusal is returned. Safe for concurrent use.
type Guard struct {
	W *witness.Witness
	// OnFork must not block for long: it runs on the submitter's request.
	OnFork func(from string, fe *witness.ForkError)
	// Log, if set, gets PeerHandler's internal errors.
	Log *slog.Logger
}

// AddCheckpoint submits a checkpoint of this node's own log to its own
// witness.
func (g *Guard) AddCheckpoint(ctx context.Context, oldSize uint64, proof [][]byte, checkpoint []byte) ([]byte, error) {
	return g.add(ctx, "", oldSize, proof, checkpoint)
}

func (g *Guard) add(ctx context.Context, from string, oldSize uint64, proof [][]byte, checkpoint []byte) ([]byte, error) {
	cos, err := g.W.AddCheckpoint(ctx, oldSize, proof, checkpoint)
	var fe *witness.ForkError
	if errors.As(err, &fe) && g.OnFork != nil {
		g.OnFork(from, fe)
	}
	return cos, err
}

// PeerHandler serves POST <prefix>/add-checkpoint of c2sp.org/tlog-witness
// with g, for the cluster port: node returns the member that sent the
// request (authenticated by the transport, which serves members only).
// Statuses are those of witness.Handler: 200 with the cosignature lines;
// 409 with the witness's size (text/x.tlog.size) when the old size is not
// its latest; 400 malformed, 403 bad log signature, 404 unknown log, 422
// a checkpoint not consistent with the one cosigned (a fork, as Handler
// answers it).
func PeerHandler(g *Guard, node func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/add-checkpoint") {
			http.NotFound(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(witness.MaxRequestSize)))
		if err != nil {
			http.Error(w, "request body too large or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
		old, proof, cp, err := witness.ParseAddCheckpoint(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		cos, err := g.add(r.Context(), node(r), old, proof, cp)
		if err != nil {
			status, size := Status(err)
			if status == http.StatusConflict {
				w.Header().Set("Content-Type", "text/x.tlog.size")
				w.WriteHeader(status)
				fmt.Fprintf(w, "%d\n", size)
				return
			}
			if status == http.StatusInternalServerError && g.Log != nil {
				g.Log.Error("audit witness: add-checkpoint failed", "from", node(r), "err", err)
			}
			http.Error(w, publicError(err), status)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(cos) //nolint:errcheck // the submitter sees a broken response
	})
}

// Status maps an AddCheckpoint error to its tlog-witness HTTP status, and
// for 409 the size to answer with.
func Status(err error) (status int, size uint64) {
	var ce *witness.ConflictError
	switch {
	case errors.As(err, &ce):
		return http.StatusConflict, ce.Size
	case errors.Is(err, witness.ErrMalformed):
		return http.StatusBadRequest, 0
	case errors.Is(err, witness.ErrBadSignature):
		return http.StatusForbidden, 0
	case errors.Is(err, witness.ErrUnknownLog):
		return http.StatusNotFound, 0
	case errors.Is(err, witness.ErrBadProof): // a *ForkError too
		return http.StatusUnprocessableEntity, 0
	}
	return http.StatusInternalServerError, 0
}

// publicError is what a submitter is told of a refusal: the witness
// package's error texts hold no key; anything else is not detailed.
func publicError(err error) string {
	if status, _ := Status(err); status == http.StatusInternalServerError {
		return "the witness failed; its log has the details"
	}
	return err.Error()
}
