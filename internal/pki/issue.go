package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/names"
)

// MaxCSRBytes bounds the CSR ParseCSR accepts, PEM or DER. A CSR for an
// RSA-4096 key with a few names is about 2 KiB.
const MaxCSRBytes = 16 << 10

// Limits on what one certificate may name besides its SPIFFE ID.
const (
	MaxDNSNames = 100
	MaxIPs      = 100
)

// ParseCSR parses a certificate signing request, PEM (exactly one
// CERTIFICATE REQUEST block and nothing else) or DER (nothing after it),
// strictly: at most MaxCSRBytes, its signature verified (proof of
// possession of the private key), and its key ECDSA P-256 or P-384, Ed25519,
// or RSA of 2048 bits or more.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	if len(data) > MaxCSRBytes {
		return nil, fmt.Errorf("pki: CSR larger than %d bytes", MaxCSRBytes)
	}
	der := data
	if trimmed := bytes.TrimSpace(data); bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		b, err := onePEM(trimmed, "CERTIFICATE REQUEST", "CSR")
		if err != nil {
			return nil, err
		}
		der = b.Bytes
	}
	// x509.ParseCertificateRequest refuses trailing data after the DER.
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("pki: CSR: %w", err)
	}
	if err := checkCSR(csr); err != nil {
		return nil, err
	}
	return csr, nil
}

// checkCSR checks a CSR's key type and its signature.
func checkCSR(csr *x509.CertificateRequest) error {
	if err := checkKey(csr.PublicKey); err != nil {
		return fmt.Errorf("pki: CSR: %s", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("pki: CSR signature: %w", err)
	}
	return nil
}

// IssueRequest is what the server decided to certify. Only the CSR's public
// key is used; everything else in the certificate comes from the other
// fields.
type IssueRequest struct {
	CSR      *x509.CertificateRequest // required; its key and signature are checked again
	SPIFFEID string                   // required: the one URI SAN, with a non-root path
	DNSNames []string                 // optional DNS SANs, each a canonical name (see package names); no wildcards
	IPs      []net.IP                 // optional IP SANs
	TTL      time.Duration            // required, positive; capped at the issuer's expiry
	Now      time.Time                // zero means time.Now()
	Serial   *big.Int                 // nil means a random 128-bit serial; else positive, at most 20 octets
}

// Issue signs an X.509-SVID for r.CSR's public key: not a CA, key usage
// digitalSignature (and keyEncipherment for an RSA key), extended key usages
// serverAuth and clientAuth, exactly one URI SAN (r.SPIFFEID) plus r's DNS
// and IP SANs, an empty subject (so the SAN extension is critical), subject
// and authority key identifiers, valid from Backdate before r.Now (never
// before the issuer) until r.Now+r.TTL or the issuer's expiry, whichever is
// sooner.
//
// Issue refuses a CSR whose signature or key type ParseCSR would refuse, a
// SPIFFE ID that is not valid per the SPIFFE ID specification or lies
// outside the CA's URI name constraints, and an issuer that has expired at
// r.Now.
func (c *CA) Issue(r IssueRequest) (*x509.Certificate, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	if r.CSR == nil {
		return nil, errors.New("pki: issue: no CSR")
	}
	if err := checkCSR(r.CSR); err != nil {
		return nil, err
	}
	id, err := parseLeafSPIFFEID(r.SPIFFEID)
	if err != nil {
		return nil, fmt.Errorf("pki: issue: %w", err)
	}
	for _, ca := range append([]*x509.Certificate{c.Cert}, c.Chain...) {
		if !trustDomainPermitted(ca, id.Host) {
			return nil, fmt.Errorf("pki: issue: trust domain %q is outside the name constraints of %q", id.Host, ca.Subject.CommonName)
		}
	}
	if len(r.DNSNames) > MaxDNSNames || len(r.IPs) > MaxIPs {
		return nil, fmt.Errorf("pki: issue: at most %d DNS names and %d IP addresses", MaxDNSNames, MaxIPs)
	}
	for _, d := range r.DNSNames {
		if !names.IsCanonical(d) {
			return nil, fmt.Errorf("pki: issue: DNS name %q is not a canonical name", d)
		}
	}
	for _, ip := range r.IPs {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return nil, fmt.Errorf("pki: issue: invalid IP address %v", ip)
		}
	}
	if r.TTL <= 0 {
		return nil, errors.New("pki: issue: TTL must be positive")
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	if !r.Now.Before(c.Cert.NotAfter) {
		return nil, fmt.Errorf("pki: issue: the issuing CA expired at %s", c.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	sn := r.Serial
	if sn == nil {
		if sn, err = Serial(nil); err != nil {
			return nil, err
		}
	} else if !validSerial(sn) {
		return nil, errors.New("pki: issue: serial must be positive and at most 20 octets")
	}
	ski, err := keyID(r.CSR.PublicKey)
	if err != nil {
		return nil, err
	}
	ku := x509.KeyUsageDigitalSignature
	if _, ok := r.CSR.PublicKey.(*rsa.PublicKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	notBefore := r.Now.Add(-Backdate)
	if notBefore.Before(c.Cert.NotBefore) {
		notBefore = c.Cert.NotBefore
	}
	notAfter := r.Now.Add(r.TTL)
	if notAfter.After(c.Cert.NotAfter) {
		notAfter = c.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              ku,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		URIs:                  []*url.URL{id},
		DNSNames:              r.DNSNames,
		IPAddresses:           r.IPs,
		SubjectKeyId:          ski,
		AuthorityKeyId:        c.Cert.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert, r.CSR.PublicKey, c.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: issue: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: issue: parse new certificate: %w", err)
	}
	return cert, nil
}

// parseLeafSPIFFEID checks a SPIFFE ID for a leaf SVID against the SPIFFE ID
// specification: scheme spiffe, a valid trust domain with no user info or
// port, a non-root path of non-empty segments other than "." and ".." made
// of letters, digits, '.', '-' and '_', no query or fragment, at most 2048
// bytes. It is deliberately not Warden's narrower names.ParseSPIFFEID, so
// that pki can certify any SPIFFE identity the caller decides on.
func parseLeafSPIFFEID(id string) (*url.URL, error) {
	bad := func(why string) (*url.URL, error) {
		return nil, fmt.Errorf("%q is not a SPIFFE ID for a certificate: %s", id, why)
	}
	if len(id) > names.MaxSPIFFEID {
		return bad(fmt.Sprintf("longer than %d bytes", names.MaxSPIFFEID))
	}
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return bad("must start with spiffe://")
	}
	td, path, ok := strings.Cut(rest, "/")
	if !ok || path == "" {
		return bad("a certificate's SPIFFE ID needs a path (X.509-SVID 3.1)")
	}
	if err := names.ValidateTrustDomain(td); err != nil {
		return bad(err.Error())
	}
	for i, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return bad(fmt.Sprintf("path segment %d is empty, '.' or '..'", i+1))
		}
		c := names.BadChar(seg, func(_ int, c rune) bool {
			return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
		})
		if c != "" {
			return bad(fmt.Sprintf("path segment %d: %s is not allowed", i+1, c))
		}
	}
	return &url.URL{Scheme: "spiffe", Host: td, Path: "/" + path}, nil
}
