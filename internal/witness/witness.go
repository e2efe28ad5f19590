// Package witness is a witness of transparency logs in the C2SP
// tlog-witness sense, and the client side of that protocol.
//
// A Witness keeps, for every log it knows (origin → the log's note
// verifier key), the last checkpoint it cosigned, in files on its own disk
// (never in Raft: a witness must not trust the state it witnesses). It
// cosigns a new checkpoint (C2SP tlog-cosignature, cosignature/v1) only if
// the log's signature verifies and a consistency proof shows it extends
// the last one it cosigned; otherwise it refuses, and the refusal carries
// both checkpoints as evidence of a fork.
//
// It must not: trust anything but its own state and the log keys it was
// given, write its state anywhere but its directory, or hold a key in a
// log line or error.
package witness

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Errors of AddCheckpoint, each mapped to the status the C2SP tlog-witness
// protocol gives it by Handler.
var (
	ErrMalformed    = errors.New("witness: malformed request")            // 400
	ErrBadSignature = errors.New("witness: checkpoint signature invalid") // 403
	ErrUnknownLog   = errors.New("witness: unknown log origin")           // 404
	ErrBadProof     = errors.New("witness: consistency proof invalid")    // 422
)

// ConflictError is the answer when the submitter's old size is not the
// witness's latest size for the log (409 with that size).
type ConflictError struct{ Size uint64 }

func (e *ConflictError) Error() string { return "witness: old size does not match the witnessed size" }

// ForkError reports a checkpoint that is not an extension of the one the
// witness cosigned before: both, as evidence.
type ForkError struct {
	Cosigned []byte // the checkpoint the witness cosigned last (signed note)
	Offered  []byte // the checkpoint refused (signed note)
	Reason   string
}

func (e *ForkError) Error() string {
	return "witness: checkpoint is not consistent with the one cosigned before: " + e.Reason
}

// Config configures Open.
type Config struct {
	Dir    string            // state directory (created 0700; files 0600)
	Signer string            // the witness's note signer key (see GenerateKey)
	Logs   map[string]string // origin → the log's note verifier key
	Now    func() time.Time  // nil: time.Now
}

// Witness cosigns checkpoints of the logs it knows. Safe for concurrent use.
type Witness struct{}

// GenerateKey makes an Ed25519 witness key pair named name (a valid note
// key name). vkey is what logs and verifiers are given.
func GenerateKey(name string) (skey, vkey string, err error) {
	return "", "", errors.New("witness: not implemented")
}

// Open opens (creating if needed) a witness's state directory.
func Open(cfg Config) (*Witness, error) { return nil, errors.New("witness: not implemented") }

// Name is the witness's key name; VerifierKey its note verifier key.
func (w *Witness) Name() string        { return "" }
func (w *Witness) VerifierKey() string { return "" }

// AddLog makes the witness accept checkpoints of origin signed by vkey.
func (w *Witness) AddLog(origin, vkey string) error { return errors.New("witness: not implemented") }

// AddCheckpoint is the tlog-witness add-checkpoint operation: checkpoint
// is a signed note, oldSize the size the submitter believes the witness
// has seen, proof the consistency proof from oldSize to the checkpoint's
// size. It returns the cosignature's note signature line(s) ("— name
// base64\n") and has persisted the checkpoint (fsynced) before returning.
func (w *Witness) AddCheckpoint(ctx context.Context, oldSize uint64, proof [][]byte, checkpoint []byte) ([]byte, error) {
	return nil, errors.New("witness: not implemented")
}

// Latest returns the last checkpoint cosigned for origin (with its
// signatures), or nil.
func (w *Witness) Latest(origin string) []byte { return nil }

// Handler serves POST /add-checkpoint of the C2SP tlog-witness protocol.
func (w *Witness) Handler() http.Handler { return http.NotFoundHandler() }

// Client submits checkpoints to a witness over the tlog-witness protocol.
type Client struct {
	URL         string       // the witness's URL prefix (…/add-checkpoint is appended)
	VerifierKey string       // the witness's note verifier key: its cosignature is checked
	HTTP        *http.Client // nil: http.DefaultClient
}

// AddCheckpoint submits a checkpoint. On 409 it returns *ConflictError with
// the witness's size; on success the verified cosignature line(s).
func (c *Client) AddCheckpoint(ctx context.Context, oldSize uint64, proof [][]byte, checkpoint []byte) ([]byte, error) {
	return nil, errors.New("witness: not implemented")
}

// Verified is a checkpoint whose log signature and cosignatures verified.
type Verified struct {
	Origin    string
	Size      uint64
	Root      []byte
	Cosigners []string // names of the witnesses whose cosignatures verified
}

// VerifyCosigned checks a signed checkpoint's log signature and that at
// least quorum of witnessVKeys cosigned it.
func VerifyCosigned(checkpoint []byte, logVKey string, witnessVKeys []string, quorum int) (*Verified, error) {
	return nil, errors.New("witness: not implemented")
}

// Combine returns checkpoint with the signature lines of cosigs appended
// (each line once).
func Combine(checkpoint []byte, cosigs ...[]byte) []byte { return checkpoint }
