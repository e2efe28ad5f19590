package pki

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// Revoked is a revoked certificate, as the caller records it.
type Revoked struct {
	Serial    *big.Int  // the certificate's serial number; required
	RevokedAt time.Time // when it was revoked; required
	ExpiresAt time.Time // the certificate's NotAfter: once past, the entry leaves the CRL
}

// CRL returns a DER X.509 v2 CRL (RFC 5280 section 5) signed by the CA,
// with CRL number number, thisUpdate Backdate before now and nextUpdate
// now+validity. It lists each revoked serial once (the earliest revocation
// wins), in serial order, and only while the certificate is unexpired: an
// entry is left out once ExpiresAt is more than Backdate before now, so the
// CRL stays small and peers whose clocks lag still see every certificate
// they might yet accept. revoked is not modified.
func (c *CA) CRL(revoked []Revoked, number *big.Int, now time.Time, validity time.Duration) ([]byte, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	if number == nil || number.Sign() < 0 || number.BitLen() > 159 {
		return nil, errors.New("pki: CRL number must be non-negative and at most 20 octets")
	}
	if validity <= 0 {
		return nil, errors.New("pki: CRL validity must be positive")
	}
	if !now.Before(c.Cert.NotAfter) {
		return nil, fmt.Errorf("pki: CRL: the CA expired at %s", c.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	cutoff := now.Add(-Backdate)
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for i, r := range revoked {
		if !validSerial(r.Serial) {
			return nil, fmt.Errorf("pki: CRL: entry %d: serial must be positive and at most 20 octets", i)
		}
		if r.RevokedAt.IsZero() {
			return nil, fmt.Errorf("pki: CRL: entry %d: no revocation time", i)
		}
		if r.ExpiresAt.Before(cutoff) {
			continue
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: r.RevokedAt.UTC()})
	}
	slices.SortFunc(entries, func(a, b x509.RevocationListEntry) int {
		if n := a.SerialNumber.Cmp(b.SerialNumber); n != 0 {
			return n
		}
		return a.RevocationTime.Compare(b.RevocationTime)
	})
	entries = slices.CompactFunc(entries, func(a, b x509.RevocationListEntry) bool {
		return a.SerialNumber.Cmp(b.SerialNumber) == 0
	})
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                now.Add(-Backdate),
		NextUpdate:                now.Add(validity),
		RevokedCertificateEntries: entries,
	}, c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: CRL: %w", err)
	}
	return der, nil
}
