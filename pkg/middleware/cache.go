package middleware

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/warden-sec/warden/internal/fsutil"
	"github.com/warden-sec/warden/internal/names"
)

// MaxCacheFileBytes bounds the cache file New reads.
const MaxCacheFileBytes = 64 << 20

// cacheVersion is the format version of the cache file.
const cacheVersion = 1

// cacheFile is the cache file: one JSON object, written by saveCache.
// Policies is required (an empty object is an empty store); the bundle and
// CRL come together or not at all.
type cacheFile struct {
	Version     int               `json:"version"`
	Store       string            `json:"store"`
	TrustDomain string            `json:"trust_domain"`
	Self        string            `json:"self"`
	Loaded      time.Time         `json:"loaded"` // when the policies were fetched
	Policies    map[string]string `json:"policies"`
	SelfZone    *string           `json:"self_zone,omitempty"` // absent: not known
	Zones       map[string]string `json:"zones,omitempty"`
	Bundle      []byte            `json:"bundle,omitempty"` // PEM
	CRL         []byte            `json:"crl,omitempty"`    // DER
}

// decodeCache decodes a cache file strictly: unknown or repeated members,
// trailing data, a wrong version, a missing policies object, or a zone or
// peer name that is not canonical are errors.
func decodeCache(data []byte) (*cacheFile, error) {
	if len(data) > MaxCacheFileBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxCacheFileBytes)
	}
	var c cacheFile
	if err := json.Unmarshal(data, &c, json.RejectUnknownMembers(true)); err != nil {
		return nil, err
	}
	if c.Version != cacheVersion {
		return nil, fmt.Errorf("version %d, want %d", c.Version, cacheVersion)
	}
	if c.Policies == nil {
		return nil, errors.New("no policies")
	}
	if (len(c.Bundle) == 0) != (len(c.CRL) == 0) {
		return nil, errors.New("bundle and crl come together")
	}
	if c.SelfZone != nil && *c.SelfZone != "" && !names.IsCanonical(*c.SelfZone) {
		return nil, fmt.Errorf("self_zone %q is not a canonical name", *c.SelfZone)
	}
	for n, z := range c.Zones {
		if !names.IsCanonical(n) || (z != "" && !names.IsCanonical(z)) {
			return nil, fmt.Errorf("zones: %q: %q: not canonical names", n, z)
		}
	}
	if len(c.Zones) > MaxPeers {
		return nil, fmt.Errorf("zones: more than %d peers", MaxPeers)
	}
	return &c, nil
}

// encodeCache encodes a cache file deterministically (sorted members).
func encodeCache(c *cacheFile) ([]byte, error) {
	return json.Marshal(c, json.Deterministic(true))
}

// loadCache reads the cache file and puts its contents in force. The file
// must be for the same store, trust domain and service; its policies must
// compile and its CRL must be signed by its bundle.
func (a *Authorizer) loadCache() error {
	f, err := os.Open(a.cfg.CacheFile)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxCacheFileBytes+1))
	if err != nil {
		return err
	}
	c, err := decodeCache(data)
	if err != nil {
		return err
	}
	if c.Store != a.cfg.Store || c.TrustDomain != a.cfg.TrustDomain || c.Self != a.cfg.Self {
		return fmt.Errorf("the file is for store %q, trust domain %q, service %q", c.Store, c.TrustDomain, c.Self)
	}
	if len(c.CRL) > 0 {
		if err := a.setPKI(c.Bundle, c.CRL); err != nil {
			return fmt.Errorf("revocation list: %w", err)
		}
	}
	if err := a.setPolicies(c.Policies, c.Loaded); err != nil {
		a.rev.Store(nil)
		return err
	}
	a.zmu.Lock()
	a.zones = maps.Clone(c.Zones)
	if a.zones == nil {
		a.zones = map[string]string{}
	}
	if c.SelfZone != nil {
		a.selfZone, a.selfKnow = *c.SelfZone, true
	}
	a.zmu.Unlock()
	a.log.Info("policy cache loaded", "file", a.cfg.CacheFile, "fetched", c.Loaded.UTC().Format(time.RFC3339))
	return nil
}

// saveCache writes what is in force to the cache file, atomically, mode
// 0600.
func (a *Authorizer) saveCache() error {
	a.saveMu.Lock()
	defer a.saveMu.Unlock()
	pol := a.pol.Load()
	if pol == nil {
		return nil
	}
	c := &cacheFile{Version: cacheVersion, Store: a.cfg.Store, TrustDomain: a.cfg.TrustDomain, Self: a.cfg.Self,
		Loaded: pol.loaded.UTC(), Policies: pol.docs}
	if s := a.rev.Load(); s != nil {
		c.Bundle, c.CRL = s.bundle, s.crl
	}
	a.zmu.RLock()
	c.Zones = maps.Clone(a.zones)
	if a.selfKnow {
		z := a.selfZone
		c.SelfZone = &z
	}
	a.zmu.RUnlock()
	b, err := encodeCache(c)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(a.cfg.CacheFile, b, 0o600)
}
