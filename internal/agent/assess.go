package agent

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/warden-sec/warden/internal/compliance/signed"
	"github.com/warden-sec/warden/internal/fsutil"
	"github.com/warden-sec/warden/pkg/client"
)

// DefaultAssessmentInterval is how often the agent runs the assessment
// policies (--assessment-interval).
const DefaultAssessmentInterval = time.Hour

// AssessmentBundleFile, in the data dir, is the last assessment bundle the
// agent verified, as the servers sent it (payload and signature): it is
// verified again when loaded, and run while no server answers.
const AssessmentBundleFile = "assessment-bundle.json"

// MaxBundleSkew bounds how far a fetched bundle's times may be from the
// agent's clock: its signature's SignedAt either way, its payload's
// issued_at ahead. A server signs the bundle when it serves it, so a
// bundle dated further from the agent's clock is replayed, or signed by
// a server whose clock is wrong, or forged with the key of a certificate
// that expired: adopted, a bundle dated in the future would make the
// agent refuse every genuine one as older until that date.
const MaxBundleSkew = 10 * time.Minute

// Bounds of a bundle's content.
const (
	maxAssessPolicies = 64
	maxBundleBytes    = 8 << 20
)

// canonicalPolicyName: [a-z0-9-], 1 to 64 bytes, no hyphen at either end.
func canonicalPolicyName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// assessor parses and runs one assessment policy on this host. An error
// means the policy could not be run at all (it does not parse); a check
// that fails to evaluate is a result with status "error", not an error.
// assess_adapter.go binds it to the assessment engine.
type assessor interface {
	Assess(ctx context.Context, name string, policy []byte) ([]client.AssessmentResult, error)
}

// bundle is a verified assessment bundle.
type bundle struct {
	raw      []byte // the file: client.SignedAssessment as JSON
	policies client.AssessmentPolicies
}

// errOlderBundle refuses a bundle issued before the one the agent runs.
var errOlderBundle = errors.New("the bundle was issued before the one this agent runs")

// verifyBundle checks the signature of a bundle loaded from the cache,
// with the chain at its SignedAt: the server's certificate may have
// expired since the bundle was fetched, when verifyFetchedBundle checked
// it against the clock. Then it decodes the payload strictly.
func verifyBundle(sa *client.SignedAssessment, roots *x509.CertPool) (*bundle, error) {
	return decodeBundle(sa, func(payload []byte, sig *signed.Signature) error {
		_, err := signed.Verify(payload, sig, roots, signed.ServerSigner)
		return err
	})
}

// verifyFetchedBundle checks the signature of a bundle a server just sent
// with the chain at now, the agent's clock, and refuses it when its
// SignedAt or issued_at is off that clock by more than MaxBundleSkew.
func verifyFetchedBundle(sa *client.SignedAssessment, roots *x509.CertPool, now time.Time) (*bundle, error) {
	b, err := decodeBundle(sa, func(payload []byte, sig *signed.Signature) error {
		if _, err := signed.VerifyAt(payload, sig, roots, signed.ServerSigner, now); err != nil {
			return err
		}
		if d := sig.SignedAt.Sub(now); d > MaxBundleSkew || d < -MaxBundleSkew {
			return fmt.Errorf("signed_at %s is %s the agent's clock (%s); at most %s either way",
				sig.SignedAt.UTC().Format(time.RFC3339), offset(d), now.UTC().Format(time.RFC3339), MaxBundleSkew)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if d := b.policies.IssuedAt.Sub(now); d > MaxBundleSkew {
		return nil, fmt.Errorf("assessment bundle: issued_at %s is %s the agent's clock (%s); at most %s ahead",
			b.policies.IssuedAt.UTC().Format(time.RFC3339), offset(d), now.UTC().Format(time.RFC3339), MaxBundleSkew)
	}
	return b, nil
}

// offset says how far ahead of (d > 0) or behind a clock a time is.
func offset(d time.Duration) string {
	if d < 0 {
		return d.Abs().Round(time.Second).String() + " behind"
	}
	return d.Round(time.Second).String() + " ahead of"
}

// decodeBundle checks a bundle's signature with verify (a server's
// cluster certificate, chained to the CA the agent enrolled with) and
// then decodes its payload strictly.
func decodeBundle(sa *client.SignedAssessment, verify func(payload []byte, sig *signed.Signature) error) (*bundle, error) {
	if sa == nil || sa.Signature == nil || len(sa.Payload) == 0 {
		return nil, errors.New("assessment bundle: no payload or no signature")
	}
	if len(sa.Payload) > maxBundleBytes {
		return nil, fmt.Errorf("assessment bundle: %d bytes; at most %d", len(sa.Payload), maxBundleBytes)
	}
	if err := verify(sa.Payload, sa.Signature); err != nil {
		return nil, fmt.Errorf("assessment bundle: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(sa.Payload))
	dec.DisallowUnknownFields()
	var b bundle
	if err := dec.Decode(&b.policies); err != nil {
		return nil, fmt.Errorf("assessment bundle: payload: %w", err)
	}
	if dec.More() {
		return nil, errors.New("assessment bundle: payload: data after the object")
	}
	if b.policies.IssuedAt.IsZero() {
		return nil, errors.New("assessment bundle: payload: no issued_at")
	}
	if len(b.policies.Policies) > maxAssessPolicies {
		return nil, fmt.Errorf("assessment bundle: %d policies; at most %d", len(b.policies.Policies), maxAssessPolicies)
	}
	seen := map[string]bool{}
	for i, p := range b.policies.Policies {
		if !canonicalPolicyName(p.Name) || seen[p.Name] {
			return nil, fmt.Errorf("assessment bundle: policies[%d].name: %q is not a canonical, unique name", i, p.Name)
		}
		seen[p.Name] = true
	}
	raw, err := json.Marshal(sa)
	if err != nil {
		return nil, err
	}
	b.raw = raw
	return &b, nil
}

// assessRunner fetches, verifies, caches and runs the assessment bundle,
// and sends the results. It is driven by one goroutine.
type assessRunner struct {
	servers   []string
	dataDir   string
	roots     func() (*x509.CertPool, error) // the agent's trust bundle, read when needed
	newClient func(server string) (*client.Client, error)
	assessor  assessor
	now       func() time.Time
	log       *slog.Logger

	cached  *bundle                              // the verified bundle being run; nil: none yet
	pending map[string]*client.AssessmentResults // latest results per policy not yet sent
}

// loadCached reads the cached bundle from the data dir and verifies it
// again (a file changed behind the agent's back is not run), with the
// chain at the bundle's SignedAt: it was checked against the clock when
// it was fetched, and the server's certificate may have expired since.
func (a *assessRunner) loadCached() {
	data, err := os.ReadFile(filepath.Join(a.dataDir, AssessmentBundleFile))
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		a.log.Warn("cached assessment bundle unreadable", "err", err)
		return
	}
	var sa client.SignedAssessment
	if err := json.Unmarshal(data, &sa); err != nil {
		a.log.Warn("cached assessment bundle unreadable", "err", err)
		return
	}
	roots, err := a.roots()
	if err != nil {
		a.log.Warn("cached assessment bundle not loaded", "err", err)
		return
	}
	b, err := verifyBundle(&sa, roots)
	if err != nil {
		a.log.Error("cached assessment bundle refused", "err", err)
		return
	}
	a.cached = b
}

// fetch asks the servers in turn for the bundle and adopts it when it
// verifies and was not issued before the cached one. It returns whether a
// server answered.
func (a *assessRunner) fetch(ctx context.Context) bool {
	var last error
	for _, s := range a.servers {
		c, err := a.newClient(s)
		if err != nil {
			a.log.Error("assessment: client", "server", s, "err", err)
			return false
		}
		sa, err := c.AssessmentBundle(ctx)
		c.CloseIdleConnections()
		var ae *client.APIError
		if errors.As(err, &ae) {
			a.log.Warn("assessment bundle not served", "server", s, "err", err)
			return true
		}
		if err != nil {
			last = err
			continue
		}
		if err := a.adopt(sa); err != nil {
			a.log.Error("assessment bundle refused", "server", s, "err", err)
		}
		return true
	}
	if ctx.Err() == nil {
		a.log.Warn("assessment bundle not fetched: no server answered; running the cached one", "err", last)
	}
	return false
}

// adopt verifies sa, just fetched, at the agent's clock and makes it the
// bundle the agent runs, cached 0600.
func (a *assessRunner) adopt(sa *client.SignedAssessment) error {
	roots, err := a.roots()
	if err != nil {
		return err
	}
	b, err := verifyFetchedBundle(sa, roots, a.now())
	if err != nil {
		return err
	}
	if a.cached != nil && b.policies.IssuedAt.Before(a.cached.policies.IssuedAt) {
		return fmt.Errorf("%w (issued %s, running %s)", errOlderBundle,
			b.policies.IssuedAt.UTC().Format(time.RFC3339), a.cached.policies.IssuedAt.UTC().Format(time.RFC3339))
	}
	if a.cached == nil || !bytes.Equal(a.cached.raw, b.raw) {
		if err := fsutil.WriteFileAtomic(filepath.Join(a.dataDir, AssessmentBundleFile), b.raw, 0o600); err != nil {
			a.log.Warn("assessment bundle not cached", "err", err)
		}
		a.log.Info("assessment bundle adopted", "policies", len(b.policies.Policies),
			"issued_at", b.policies.IssuedAt.UTC().Format(time.RFC3339))
	}
	a.cached = b
	return nil
}

// step fetches the bundle, runs the one it has (fetched or cached), and
// sends the results it holds; results that cannot be sent are kept, the
// latest per policy, for the next step.
func (a *assessRunner) step(ctx context.Context) {
	reachable := a.fetch(ctx)
	if a.cached == nil {
		a.log.Info("no assessment bundle yet: nothing to run")
		return
	}
	for _, p := range a.cached.policies.Policies {
		if ctx.Err() != nil {
			return
		}
		ranAt := a.now().UTC()
		rs, err := a.assessor.Assess(ctx, p.Name, []byte(p.YAML))
		if err != nil {
			a.log.Error("assessment policy not run", "policy", p.Name, "err", err)
			continue
		}
		if a.pending == nil {
			a.pending = map[string]*client.AssessmentResults{}
		}
		a.pending[p.Name] = &client.AssessmentResults{Policy: p.Name, RanAt: ranAt, Results: rs}
	}
	if reachable {
		a.flush(ctx)
	}
}

// flush sends the pending results, each to the first server that takes
// it; what no server took stays pending.
func (a *assessRunner) flush(ctx context.Context) {
	names := make([]string, 0, len(a.pending))
	for n := range a.pending {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := a.pending[n]
		sent := false
		for _, s := range a.servers {
			c, err := a.newClient(s)
			if err != nil {
				a.log.Error("assessment: client", "server", s, "err", err)
				return
			}
			err = c.PostAssessmentResults(ctx, r)
			c.CloseIdleConnections()
			var ae *client.APIError
			if errors.As(err, &ae) {
				// Refused (bad results, no permission): sending them again
				// would not help; the next run makes new ones.
				a.log.Warn("assessment results refused", "server", s, "policy", n, "err", err)
				sent = true
				break
			}
			if err == nil {
				sent = true
				break
			}
		}
		if !sent {
			if ctx.Err() == nil {
				a.log.Warn("assessment results kept to send later: no server answered", "policy", n)
			}
			return
		}
		delete(a.pending, n)
	}
}

// run loads the cached bundle, steps at once and then on every tick until
// ctx ends.
func (a *assessRunner) run(ctx context.Context, ticks <-chan time.Time) {
	a.loadCached()
	a.step(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
			a.step(ctx)
		}
	}
}

// caRoots reads the agent's trust bundle (the CA file it enrolled with).
// caRoots reads the cluster's trust bundle (BundleFile in the data dir,
// written at enrollment and refreshed at each renewal): the servers sign
// the check policies with certificates of the cluster's CA, which is not
// the CA of the API's TLS certificate (--ca-cert) on a server with a
// bootstrap or operator certificate.
func caRoots(caFile string) func() (*x509.CertPool, error) {
	return func() (*x509.CertPool, error) {
		pemData, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("agent: trust bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("agent: trust bundle %s: no certificate", caFile)
		}
		return pool, nil
	}
}
