package cosign

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/store/kv"
)

// Storage keys of the witness configuration (values JSON, encrypted by the
// barrier like every value written through core).
const (
	PrefixServer   = "audit/witnesses/server/"   // + node ID → ServerWitness
	PrefixExternal = "audit/witnesses/external/" // + name → ExternalWitness
)

// Bounds of the configuration.
const (
	MaxExternal    = 32
	MaxURLBytes    = 2048
	MaxCACertBytes = 64 << 10
)

// Storage is what the configuration needs of core (core.Core implements
// it): reads (List is linearizable unless ctx asks for a stale read) and
// transactions that carry the pending audit record of ctx.
type Storage interface {
	Get(ctx context.Context, key string) (kv.Entry, error)
	GetStale(key string) (kv.Entry, error)
	List(ctx context.Context, prefix string, limit int) ([]kv.Entry, error)
	Txn(ctx context.Context, t kv.Txn) (uint64, error)
}

// ServerWitness is a server node's witness as the cluster configuration
// records it: the node registers its own verifier key; raft.remove deletes
// the entry with the member (ServerDelete).
type ServerWitness struct {
	Node        string    `json:"node"`
	VerifierKey string    `json:"verifier_key"`
	Registered  time.Time `json:"registered"`
}

// ExternalWitness is a witness outside the cluster that the serving node
// submits checkpoints to over HTTPS (c2sp.org/tlog-witness).
type ExternalWitness struct {
	Name        string `json:"name"`
	URL         string `json:"url"` // the submission prefix: URL + "/add-checkpoint"
	VerifierKey string `json:"verifier_key"`
	// CACert, if set, is the PEM CA the witness's certificate must chain
	// to instead of the system roots.
	CACert string    `json:"ca_cert,omitempty"`
	Added  time.Time `json:"added"`
}

// Config is the witness configuration in storage. Safe for concurrent use.
type Config struct {
	st  Storage
	now func() time.Time
}

// NewConfig returns the configuration kept in st (now nil: time.Now).
func NewConfig(st Storage, now func() time.Time) *Config {
	if now == nil {
		now = time.Now
	}
	return &Config{st: st, now: now}
}

func decodeAll[T any](es []kv.Entry) ([]T, error) {
	out := make([]T, 0, len(es))
	for _, e := range es {
		var v T
		if err := json.Unmarshal(e.Value, &v); err != nil {
			return nil, fmt.Errorf("cosign: %s: %w", e.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// Servers lists the server witnesses, by node ID.
func (c *Config) Servers(ctx context.Context) ([]ServerWitness, error) {
	es, err := c.st.List(ctx, PrefixServer, 0)
	if err != nil {
		return nil, err
	}
	return decodeAll[ServerWitness](es)
}

// Externals lists the external witnesses, by name.
func (c *Config) Externals(ctx context.Context) ([]ExternalWitness, error) {
	es, err := c.st.List(ctx, PrefixExternal, 0)
	if err != nil {
		return nil, err
	}
	return decodeAll[ExternalWitness](es)
}

// Registered returns the verifier key recorded for node's witness, from
// this node's local state ("" if none).
func (c *Config) Registered(node string) (string, error) {
	e, err := c.st.GetStale(PrefixServer + node)
	if errors.Is(err, kv.ErrNotFound) || errs.Is(err, errs.NotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var sw ServerWitness
	if err := json.Unmarshal(e.Value, &sw); err != nil {
		return "", fmt.Errorf("cosign: %s: %w", e.Key, err)
	}
	return sw.VerifierKey, nil
}

// Register records vkey as node's witness key, replacing what was there,
// in one transaction with the pending audit record of ctx.
func (c *Config) Register(ctx context.Context, node, vkey string) error {
	if !names.IsCanonical(node) {
		return errs.E(errs.Invalid, "node: %q is not a canonical node ID", node)
	}
	if _, err := CheckVerifierKey(vkey); err != nil {
		return errs.E(errs.Invalid, "verifier_key: %v", err)
	}
	b, _ := json.Marshal(ServerWitness{Node: node, VerifierKey: vkey, Registered: c.now().UTC()})
	_, err := c.st.Txn(ctx, kv.Txn{Ops: []kv.Op{{Type: kv.OpPut, Key: PrefixServer + node, Value: b}}})
	return err
}

// ServerDelete is the op that removes node's witness entry: raft.remove
// commits it with the member's removal.
func ServerDelete(node string) kv.Op { return kv.Op{Type: kv.OpDelete, Key: PrefixServer + node} }

// CheckExternal checks an external witness as given by an operator and
// returns it canonical: name a canonical name, URL an https URL without
// credentials, query or fragment (a trailing "/" removed), the verifier key
// a witness key (CheckVerifierKey), the CA certificate, if any, PEM
// certificates. Errors are Invalid and name the field.
func CheckExternal(w ExternalWitness) (ExternalWitness, error) {
	name, err := names.Canonical(w.Name)
	if err != nil || name != w.Name {
		if err == nil {
			err = fmt.Errorf("use %q", name)
		}
		return w, errs.E(errs.Invalid, "name: %v", err)
	}
	if len(w.URL) > MaxURLBytes {
		return w, errs.E(errs.Invalid, "url: longer than %d bytes", MaxURLBytes)
	}
	u, err := url.Parse(w.URL)
	switch {
	case err != nil:
		return w, errs.E(errs.Invalid, "url: %v", err)
	case u.Scheme != "https":
		return w, errs.E(errs.Invalid, "url: %q: want an https:// URL (the submission prefix)", w.URL)
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return w, errs.E(errs.Invalid, "url: %q: want https://host[:port][/path], without credentials, query or fragment", w.URL)
	}
	w.URL = strings.TrimSuffix(w.URL, "/")
	if _, err := CheckVerifierKey(w.VerifierKey); err != nil {
		return w, errs.E(errs.Invalid, "verifier_key: %v", err)
	}
	if w.CACert != "" {
		if len(w.CACert) > MaxCACertBytes {
			return w, errs.E(errs.Invalid, "ca_cert: longer than %d bytes", MaxCACertBytes)
		}
		if _, err := CAPool([]byte(w.CACert)); err != nil {
			return w, errs.E(errs.Invalid, "ca_cert: %v", err)
		}
	}
	return w, nil
}

// CAPool reads PEM certificates (an external witness's CA) into a pool;
// anything else in the text is an error.
func CAPool(b []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for {
		blk, rest := pem.Decode(b)
		if blk == nil {
			if len(strings.TrimSpace(string(b))) > 0 {
				return nil, errors.New("text that is not a PEM block")
			}
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a PEM block of type %q, want CERTIFICATE", blk.Type)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		pool.AddCert(cert)
		n++
		b = rest
	}
	if n == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return pool, nil
}

// AddExternal records an external witness, checked by CheckExternal, in
// one transaction with the pending audit record of ctx. A name already
// used, or a verifier key already configured (as an external or a server
// witness), is a Conflict; past MaxExternal witnesses it is Invalid.
func (c *Config) AddExternal(ctx context.Context, w ExternalWitness) (*ExternalWitness, error) {
	w, err := CheckExternal(w)
	if err != nil {
		return nil, err
	}
	ext, err := c.st.List(ctx, PrefixExternal, 0)
	if err != nil {
		return nil, err
	}
	exts, err := decodeAll[ExternalWitness](ext)
	if err != nil {
		return nil, err
	}
	srvs, err := c.Servers(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range exts {
		if e.Name == w.Name {
			return nil, errs.E(errs.Conflict, "name: a witness named %q exists; remove it first", w.Name)
		}
		if e.VerifierKey == w.VerifierKey {
			return nil, errs.E(errs.Conflict, "verifier_key: witness %q has this key", e.Name)
		}
	}
	if slices.ContainsFunc(srvs, func(s ServerWitness) bool { return s.VerifierKey == w.VerifierKey }) {
		return nil, errs.E(errs.Conflict, "verifier_key: a server node's witness has this key")
	}
	if len(exts) >= MaxExternal {
		return nil, errs.E(errs.Invalid, "name: there are %d external witnesses already, the most allowed", MaxExternal)
	}
	w.Added = c.now().UTC()
	b, _ := json.Marshal(w)
	// Conditioned on the name being free: version 0 is "absent".
	_, err = c.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: PrefixExternal + w.Name, Version: 0}},
		Ops: []kv.Op{{Type: kv.OpPut, Key: PrefixExternal + w.Name, Value: b}}})
	if errors.Is(err, kv.ErrConflict) || errs.Is(err, errs.Conflict) {
		return nil, errs.E(errs.Conflict, "name: a witness named %q exists; remove it first", w.Name)
	}
	if err != nil {
		return nil, err
	}
	return &w, nil
}

// RemoveExternal deletes the external witness name, in one transaction
// with the pending audit record of ctx; NotFound if there is none.
func (c *Config) RemoveExternal(ctx context.Context, name string) error {
	if !names.IsCanonical(name) {
		return errs.E(errs.Invalid, "name: %q is not a canonical name", name)
	}
	e, err := c.st.Get(ctx, PrefixExternal+name)
	if errors.Is(err, kv.ErrNotFound) || errs.Is(err, errs.NotFound) {
		return errs.E(errs.NotFound, "no external witness named %q", name)
	}
	if err != nil {
		return err
	}
	_, err = c.st.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: e.Key, Version: e.Version}},
		Ops: []kv.Op{{Type: kv.OpDelete, Key: e.Key}}})
	return err
}
