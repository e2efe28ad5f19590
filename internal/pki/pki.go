// Package pki is Warden's certificate authority core: root and intermediate
// CAs, strict CSR parsing, issuance of SPIFFE X.509-SVIDs, CRLs and OCSP
// responses. The server decides every identity: of a CSR only the public key
// (proved by the CSR's signature) is used.
//
// pki does no I/O and keeps no state: storage, the API and revocation lists
// are the caller's. A CA's private key never appears in its String or in
// logs.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"time"
)

// KeyType selects a CA key algorithm.
type KeyType string

// Key types.
const (
	KeyECP256  KeyType = "ec-p256"
	KeyEd25519 KeyType = "ed25519"
)

// CA is a certificate authority: its certificate, its key and the chain up
// to (not including) the root.
type CA struct {
	Cert  *x509.Certificate
	Key   crypto.Signer
	Chain []*x509.Certificate
}

func (c *CA) String() string {
	return fmt.Sprintf("pki.CA(%s, key REDACTED)", c.Cert.Subject.CommonName)
}

// LogValue implements slog.LogValuer without the key.
func (c *CA) LogValue() slog.Value { return slog.StringValue(c.String()) }

// CAOptions configure a new CA.
type CAOptions struct {
	CommonName string
	KeyType    KeyType       // default ec-p256
	TTL        time.Duration // default 10 years for a root, 5 for an intermediate
	Now        time.Time     // default time.Now()
	Rand       io.Reader     // default crypto/rand
}

func (o *CAOptions) defaults(ttl time.Duration) {
	if o.KeyType == "" {
		o.KeyType = KeyECP256
	}
	if o.TTL == 0 {
		o.TTL = ttl
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
}

func newKey(t KeyType, r io.Reader) (crypto.Signer, error) {
	switch t {
	case KeyECP256:
		return ecdsa.GenerateKey(elliptic.P256(), r)
	case KeyEd25519:
		_, k, err := ed25519.GenerateKey(r)
		return k, err
	}
	return nil, fmt.Errorf("pki: key type %q: want ec-p256 or ed25519", t)
}

// Serial returns a random positive 128-bit serial number.
func Serial(r io.Reader) (*big.Int, error) {
	if r == nil {
		r = rand.Reader
	}
	s, err := rand.Int(r, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	return s.Add(s, big.NewInt(1)), nil
}

func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum(der) // RFC 5280 4.2.1.2 method (1) style identifier, not a security function
	return sum[:], nil
}

func newCA(parent *CA, o CAOptions, pathLen int) (*CA, error) {
	key, err := newKey(o.KeyType, o.Rand)
	if err != nil {
		return nil, err
	}
	sn, err := Serial(o.Rand)
	if err != nil {
		return nil, err
	}
	ski, err := keyID(key.Public())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: o.CommonName, Organization: []string{"Warden"}},
		NotBefore:             o.Now.Add(-time.Minute),
		NotAfter:              o.Now.Add(o.TTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            pathLen,
		MaxPathLenZero:        pathLen == 0,
		SubjectKeyId:          ski,
	}
	issuer, signer := tmpl, key
	var chain []*x509.Certificate
	if parent != nil {
		issuer, signer = parent.Cert, parent.Key
		if tmpl.NotAfter.After(parent.Cert.NotAfter) {
			tmpl.NotAfter = parent.Cert.NotAfter
		}
		chain = append([]*x509.Certificate{parent.Cert}, parent.Chain...)
	}
	der, err := x509.CreateCertificate(o.Rand, tmpl, issuer, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, Chain: chain}, nil
}

// NewRootCA creates a self-signed root CA (path length 1: one intermediate).
func NewRootCA(o CAOptions) (*CA, error) {
	o.defaults(10 * 365 * 24 * time.Hour)
	return newCA(nil, o, 1)
}

// NewIntermediateCA creates an issuing CA signed by root.
func NewIntermediateCA(root *CA, o CAOptions) (*CA, error) {
	o.defaults(5 * 365 * 24 * time.Hour)
	return newCA(root, o, 0)
}

// MarshalPEM returns the certificate and the PKCS #8 private key as PEM.
// The key PEM is a secret.
func (c *CA) MarshalPEM() (certPEM, keyPEM []byte, err error) {
	kd, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), nil
}

// ParseCA loads a CA (for example an operator-supplied one): the key must
// match the certificate, which must be a CA allowed to sign certificates.
// chainPEM (optional) holds the certificates above it.
func ParseCA(certPEM, keyPEM, chainPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, errors.New("pki: CA certificate: no CERTIFICATE PEM block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("pki: CA certificate: not a CA allowed to sign certificates")
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("pki: CA key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, errors.New("pki: CA key: not a PKCS #8 private key")
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("pki: CA key: cannot sign")
	}
	want, _ := x509.MarshalPKIXPublicKey(cert.PublicKey)
	got, _ := x509.MarshalPKIXPublicKey(signer.Public())
	if !bytes.Equal(want, got) {
		return nil, errors.New("pki: CA key does not match the certificate")
	}
	ca := &CA{Cert: cert, Key: signer}
	for rest := chainPEM; len(rest) > 0; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: chain: %w", err)
		}
		ca.Chain = append(ca.Chain, c)
	}
	return ca, nil
}

// MaxCSRBytes bounds a CSR.
const MaxCSRBytes = 16 << 10

// ParseCSR parses a PEM or DER CSR strictly: size limit, signature checked
// (proof of possession of the key), and only ECDSA P-256/P-384, Ed25519 and
// RSA of 2048 bits or more.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	if len(data) > MaxCSRBytes {
		return nil, fmt.Errorf("pki: CSR larger than %d bytes", MaxCSRBytes)
	}
	der := data
	if b, rest := pem.Decode(data); b != nil {
		if b.Type != "CERTIFICATE REQUEST" || len(bytes.TrimSpace(rest)) != 0 {
			return nil, errors.New("pki: CSR: want exactly one CERTIFICATE REQUEST PEM block")
		}
		der = b.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("pki: CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("pki: CSR signature: %w", err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, errors.New("pki: CSR: ECDSA keys must be P-256 or P-384")
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("pki: CSR: RSA key of %d bits; 2048 or more required", k.N.BitLen())
		}
	default:
		return nil, fmt.Errorf("pki: CSR: unsupported key type %T", k)
	}
	return csr, nil
}

// IssueRequest is what the server decided to certify.
type IssueRequest struct {
	CSR      *x509.CertificateRequest // only its public key is used
	SPIFFEID string                   // the one URI SAN
	DNSNames []string
	IPs      []net.IP
	TTL      time.Duration
	Now      time.Time
	Serial   *big.Int // nil: random
}

// Issue signs an X.509-SVID: not a CA, exactly one URI SAN (the SPIFFE ID),
// digital signature (and key encipherment for RSA), server and client auth,
// valid from a minute before now until now+TTL or the CA's expiry if sooner.
func (c *CA) Issue(r IssueRequest) (*x509.Certificate, error) {
	if r.CSR == nil {
		return nil, errors.New("pki: issue: no CSR")
	}
	u, err := url.Parse(r.SPIFFEID)
	if err != nil || u.Scheme != "spiffe" || u.Host == "" {
		return nil, fmt.Errorf("pki: issue: %q is not a SPIFFE ID", r.SPIFFEID)
	}
	if r.TTL <= 0 {
		return nil, errors.New("pki: issue: TTL must be positive")
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	sn := r.Serial
	if sn == nil {
		if sn, err = Serial(nil); err != nil {
			return nil, err
		}
	}
	ski, err := keyID(r.CSR.PublicKey)
	if err != nil {
		return nil, err
	}
	ku := x509.KeyUsageDigitalSignature
	if _, ok := r.CSR.PublicKey.(*rsa.PublicKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	notAfter := r.Now.Add(r.TTL)
	if notAfter.After(c.Cert.NotAfter) {
		notAfter = c.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		NotBefore:             r.Now.Add(-time.Minute),
		NotAfter:              notAfter,
		KeyUsage:              ku,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		URIs:                  []*url.URL{u},
		DNSNames:              r.DNSNames,
		IPAddresses:           r.IPs,
		SubjectKeyId:          ski,
		AuthorityKeyId:        c.Cert.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert, r.CSR.PublicKey, c.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: issue: %w", err)
	}
	return x509.ParseCertificate(der)
}

// Bundle returns certificates as concatenated PEM.
func Bundle(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// Revoked is a revoked certificate.
type Revoked struct {
	Serial    *big.Int
	RevokedAt time.Time
	ExpiresAt time.Time // entries past expiry are left out of CRLs
}

// CRL returns a DER CRL signed by the CA that lists only the unexpired
// revoked certificates, so it stays small.
func (c *CA) CRL(revoked []Revoked, number *big.Int, now time.Time, validity time.Duration) ([]byte, error) {
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for _, r := range revoked {
		if !r.ExpiresAt.After(now) {
			continue
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: r.RevokedAt})
	}
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                now,
		NextUpdate:                now.Add(validity),
		RevokedCertificateEntries: entries,
	}, c.Cert, c.Key)
}

// ParseLeaf returns the first certificate of a PEM chain.
func ParseLeaf(chainPEM []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(chainPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("pki: no CERTIFICATE PEM block")
	}
	return x509.ParseCertificate(b.Bytes)
}
