package middleware

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/http"
	"slices"
	"time"

	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/pki"
	"github.com/warden-sec/warden/pkg/client"
)

// Run refreshes the cached copy at once and then every Config.Refresh until
// ctx is done, when it returns ctx.Err(). A failed refresh is logged and
// keeps the last good copy; Run never clears what it has.
func (a *Authorizer) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if err := a.Refresh(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("refresh failed; keeping the last good copy", "err", err)
		}
		t.Reset(a.cfg.Refresh)
	}
}

// Refresh fetches, in turn, the store's policies, the trust bundle and CRL,
// and the zones of the peers seen so far, then writes the cache file. Each
// part that fails keeps its last good copy and its error is returned
// (joined); a part is replaced only by a complete, valid copy, never by a
// partial one (a policy set missing a forbid would allow too much).
// Refresh may run concurrently with Handler, not with itself (Run calls it
// from one goroutine).
func (a *Authorizer) Refresh(ctx context.Context) error {
	var errs []error
	if err := a.refreshPolicies(ctx); err != nil {
		errs = append(errs, fmt.Errorf("policies: %w", err))
	}
	if err := a.refreshPKI(ctx); err != nil {
		errs = append(errs, fmt.Errorf("revocation list: %w", err))
	}
	if err := a.refreshZones(ctx); err != nil {
		errs = append(errs, fmt.Errorf("zones: %w", err))
	}
	if a.cfg.CacheFile != "" && a.pol.Load() != nil {
		if err := a.saveCache(); err != nil {
			errs = append(errs, fmt.Errorf("cache file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// refreshPolicies fetches every document of the store and compiles them.
// A document deleted between the listing and its read is left out (the
// store no longer has it); any other failure keeps the set in force.
func (a *Authorizer) refreshPolicies(ctx context.Context) error {
	list, err := a.cfg.Client.PolicyList(ctx, a.cfg.Store)
	if err != nil {
		return err
	}
	docs := make(map[string]string, len(list))
	for _, name := range list {
		p, err := a.cfg.Client.PolicyRead(ctx, a.cfg.Store, name)
		if client.IsStatus(err, http.StatusNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		docs[name] = p.Text
	}
	return a.setPolicies(docs, a.cfg.Now())
}

// setPolicies compiles docs and puts them in force. The server validated
// them against the store's schema on write; here they are only parsed.
func (a *Authorizer) setPolicies(docs map[string]string, loaded time.Time) error {
	set, err := authz.Compile(docs, "")
	if err != nil {
		return err
	}
	if old := a.pol.Load(); old == nil || !maps.Equal(old.docs, docs) {
		a.log.Info("policies loaded", "policies", len(docs), "statements", set.Len())
	}
	a.pol.Store(&policies{set: set, docs: docs, loaded: loaded})
	return nil
}

// pkiState is the trust bundle and the revocation list checked against it.
type pkiState struct {
	bundle  []byte // PEM, as fetched
	pool    *x509.CertPool
	crl     []byte // DER, as fetched
	number  *big.Int
	issuer  []byte              // raw subject of the CRL's issuer
	serials map[string]struct{} // revoked serials, big-endian bytes
}

// revoked reports whether cert is on the list. A nil state revokes nothing.
func (s *pkiState) revoked(cert *x509.Certificate) bool {
	if s == nil || !bytes.Equal(cert.RawIssuer, s.issuer) {
		return false
	}
	_, ok := s.serials[string(cert.SerialNumber.Bytes())]
	return ok
}

// parsePKI parses a PEM trust bundle and a DER CRL, and checks that the
// CRL is signed by a CA of the bundle.
func parsePKI(bundle, crlDER []byte) (*pkiState, error) {
	certs, err := pki.ParseCertificates(bundle)
	if err != nil {
		return nil, fmt.Errorf("trust bundle: %w", err)
	}
	cas := slices.DeleteFunc(certs, func(c *x509.Certificate) bool { return !c.IsCA })
	if len(cas) == 0 {
		return nil, errors.New("trust bundle: no CA certificate")
	}
	crl, err := x509.ParseRevocationList(crlDER)
	if err != nil {
		return nil, err
	}
	signed := false
	for _, c := range cas {
		if bytes.Equal(c.RawSubject, crl.RawIssuer) && crl.CheckSignatureFrom(c) == nil {
			signed = true
			break
		}
	}
	if !signed {
		return nil, errors.New("not signed by a CA of the trust bundle")
	}
	s := &pkiState{bundle: bundle, pool: x509.NewCertPool(), crl: crlDER, number: crl.Number, issuer: crl.RawIssuer,
		serials: make(map[string]struct{}, len(crl.RevokedCertificateEntries))}
	for _, c := range cas {
		s.pool.AddCert(c)
	}
	for _, e := range crl.RevokedCertificateEntries {
		s.serials[string(e.SerialNumber.Bytes())] = struct{}{}
	}
	return s, nil
}

// refreshPKI fetches the bundle and the CRL. A CRL older (by CRL number)
// than the one in force is refused: a stale copy must not un-revoke.
func (a *Authorizer) refreshPKI(ctx context.Context) error {
	bundle, err := a.cfg.Client.TrustBundle(ctx)
	if err != nil {
		return err
	}
	crl, err := a.cfg.Client.CRL(ctx)
	if err != nil {
		return err
	}
	return a.setPKI(bundle, crl)
}

func (a *Authorizer) setPKI(bundle, crl []byte) error {
	s, err := parsePKI(bundle, crl)
	if err != nil {
		return err
	}
	if old := a.rev.Load(); old != nil && old.number != nil && s.number != nil && s.number.Cmp(old.number) < 0 &&
		bytes.Equal(old.issuer, s.issuer) {
		return fmt.Errorf("CRL number %s is older than the one in force (%s)", s.number, old.number)
	}
	a.rev.Store(s)
	return nil
}

// zoneOf returns the zone of the live node name: from the cache, or else
// asked of the cluster (and remembered).
func (a *Authorizer) zoneOf(ctx context.Context, name string) (string, error) {
	a.zmu.RLock()
	z, ok := a.zones[name]
	if !ok && name == a.cfg.Self && a.selfKnow {
		z, ok = a.selfZone, true
	}
	a.zmu.RUnlock()
	if ok {
		return z, nil
	}
	if name == a.cfg.Self {
		return "", errors.New("this service's own zone is not known yet")
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.LookupTimeout)
	defer cancel()
	return a.lookup(ctx, name)
}

// lookup asks the cluster for node name's record (GET /v1/nodes/{name},
// action node.read) and remembers its zone; the service's own zone is
// learned the same way while it is not known. A node that is absent or not
// active is forgotten and ErrUnknownNode returned.
func (a *Authorizer) lookup(ctx context.Context, name string) (string, error) {
	n, err := a.cfg.Client.NodeRead(ctx, name)
	if client.IsStatus(err, http.StatusNotFound) || (err == nil && n.State != "active") {
		a.zmu.Lock()
		delete(a.zones, name)
		a.zmu.Unlock()
		return "", fmt.Errorf("%w: %q", ErrUnknownNode, name)
	}
	if err != nil {
		return "", err
	}
	a.zmu.RLock()
	selfKnown := a.selfKnow
	a.zmu.RUnlock()
	var self client.Node
	var selfErr error = errors.New("known")
	if !selfKnown && a.cfg.Self != "" {
		self, selfErr = a.cfg.Client.NodeRead(ctx, a.cfg.Self)
	}
	a.zmu.Lock()
	if _, ok := a.zones[name]; ok || len(a.zones) < MaxPeers {
		a.zones[name] = n.Zone
	}
	if selfErr == nil && self.State == "active" {
		a.selfZone, a.selfKnow = self.Zone, true
	}
	a.zmu.Unlock()
	return n.Zone, nil
}

// refreshZones looks up again every remembered peer, so that zone changes
// and revoked nodes are seen. It stops at the first failure other than an
// unknown node (the cluster is likely unreachable) and keeps what it has.
func (a *Authorizer) refreshZones(ctx context.Context) error {
	if err := a.refreshSelf(ctx); err != nil {
		return err
	}
	a.zmu.RLock()
	peers := slices.Sorted(maps.Keys(a.zones))
	a.zmu.RUnlock()
	for _, name := range peers {
		if _, err := a.lookup(ctx, name); err != nil && !errors.Is(err, ErrUnknownNode) {
			return err
		}
	}
	return nil
}

// refreshSelf learns the service's own zone from GET /v1/auth/whoami, when
// the client authenticates as Self with its SVID. A client that is not
// permitted to ask, or is someone else (a token), learns nothing here: the
// zone then comes with the first peer lookup.
func (a *Authorizer) refreshSelf(ctx context.Context) error {
	who, err := a.cfg.Client.Whoami(ctx)
	if client.IsStatus(err, http.StatusForbidden) || client.IsStatus(err, http.StatusUnauthorized) {
		return nil
	}
	if err != nil {
		return err
	}
	self, _ := a.self()
	zone, ok := who.Attributes["zone"]
	if who.AuthMethod != "mtls" || who.Principal != self.String() || !ok {
		return nil
	}
	a.zmu.Lock()
	a.selfZone, a.selfKnow = zone, true
	a.zmu.Unlock()
	return nil
}
