// Package pki is Warden's certificate authority core: root and intermediate
// CAs, strict CSR parsing, issuance of SPIFFE X.509-SVIDs, trust bundles,
// CRLs and OCSP responses.
//
// It follows the SPIFFE X.509-SVID specification
// (https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md): an
// issued certificate is a leaf (CA false) whose key usage is
// digitalSignature (plus keyEncipherment for RSA keys) and never
// keyCertSign or cRLSign, with extended key usages serverAuth and
// clientAuth, and exactly one URI SAN, its SPIFFE ID, which has a non-root
// path. CA certificates have keyCertSign and cRLSign and no
// digitalSignature (Appendix A: that bit is for leaves).
//
// The server decides every identity. Of a CSR only the public key is used,
// and only after its signature proves possession of the private key; the
// subject and SANs it asks for are ignored.
//
// pki does no I/O and keeps no state: storage, the HTTP API, revocation
// records and the clock belong to the caller, who passes "now" in. It never
// sees an issued certificate's private key. The CA's private key never
// appears in the String, GoString, fmt or log/slog forms of a CA, and the
// PEM that MarshalPEM returns for it is a SecretPEM, redacted the same way.
// (The one impurity: golang.org/x/crypto/ocsp stamps producedAt from the
// system clock.)
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/url"
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/names"
)

// KeyType selects the key algorithm of a new CA.
type KeyType string

// The CA key types.
const (
	KeyECP256  KeyType = "ec-p256" // ECDSA on P-256 with SHA-256; the default
	KeyEd25519 KeyType = "ed25519" // Ed25519
)

// Backdate is how far before "now" certificates start and CRLs claim to have
// been issued, so that peers whose clocks lag by up to this much accept them.
const Backdate = time.Minute

// Default CA lifetimes.
const (
	DefaultRootTTL         = 10 * 365 * 24 * time.Hour
	DefaultIntermediateTTL = 5 * 365 * 24 * time.Hour
)

// CA is a certificate authority: its certificate, its private key, and the
// certificates above it, nearest first, ending with the root (empty for a
// root).
//
// Key is secret: a CA formats and logs as its subject with the key
// REDACTED; never log or print Key itself. A CA is safe for concurrent use
// by its methods as long as no one modifies its fields.
type CA struct {
	Cert  *x509.Certificate
	Key   crypto.Signer
	Chain []*x509.Certificate
}

// String returns a description of the CA without its key.
func (c CA) String() string {
	subject := "<no certificate>"
	if c.Cert != nil {
		subject = c.Cert.Subject.String()
	}
	return fmt.Sprintf("pki.CA{%s, key: REDACTED}", subject)
}

// GoString is String, so that %#v does not print the key.
func (c CA) GoString() string { return c.String() }

// Format prints String for every verb, so that no fmt verb (%d, %x, %+v)
// walks into the key.
func (c CA) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// LogValue implements slog.LogValuer without the key.
func (c CA) LogValue() slog.Value { return slog.StringValue(c.String()) }

// SecretPEM is PEM text holding a private key. It formats and logs as
// REDACTED; use its bytes (string(p), or as a []byte) only to encrypt or
// store it, and clear it after use.
type SecretPEM []byte

// String returns a redacted placeholder.
func (SecretPEM) String() string { return "pki.SecretPEM(REDACTED)" }

// GoString returns a redacted placeholder.
func (p SecretPEM) GoString() string { return p.String() }

// Format prints the redacted placeholder for every verb.
func (p SecretPEM) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, p.String()) }

// LogValue implements slog.LogValuer with the redacted placeholder.
func (p SecretPEM) LogValue() slog.Value { return slog.StringValue(p.String()) }

// CAOptions configure a new CA. The zero value gives an ECDSA P-256 CA with
// the default lifetime and no SPIFFE ID.
type CAOptions struct {
	CommonName string
	KeyType    KeyType       // "" means KeyECP256
	TTL        time.Duration // 0 means DefaultRootTTL or DefaultIntermediateTTL; capped at the parent's expiry
	// TrustDomain, if set, gives the CA the SPIFFE ID spiffe://<TrustDomain>
	// as its URI SAN (X.509-SVID section 3.2: a signing certificate's ID has
	// no path) and, on an intermediate, a URI name constraint permitting only
	// that trust domain (section 4.2), which Issue also enforces.
	TrustDomain string
	Now         time.Time // zero means time.Now()
	Rand        io.Reader // nil means crypto/rand; used for serial numbers (Go 1.26 key generation ignores it unless GODEBUG=cryptocustomrand=1)
}

func (o *CAOptions) defaults(ttl time.Duration) error {
	if o.KeyType == "" {
		o.KeyType = KeyECP256
	}
	if o.TTL == 0 {
		o.TTL = ttl
	}
	if o.TTL < 0 {
		return errors.New("pki: CA TTL must be positive")
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.TrustDomain != "" {
		if err := names.ValidateTrustDomain(o.TrustDomain); err != nil {
			return fmt.Errorf("pki: %w", err)
		}
	}
	return nil
}

func newKey(t KeyType, r io.Reader) (crypto.Signer, error) {
	switch t {
	case KeyECP256:
		return ecdsa.GenerateKey(elliptic.P256(), r)
	case KeyEd25519:
		_, k, err := ed25519.GenerateKey(r)
		return k, err
	}
	return nil, fmt.Errorf("pki: key type %q: want %q or %q", t, KeyECP256, KeyEd25519)
}

// Serial returns a random serial number of 128 bits, positive (RFC 5280
// 4.1.2.2), read from r (crypto/rand when r is nil).
func Serial(r io.Reader) (*big.Int, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [16]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("pki: serial: %w", err)
		}
		if s := new(big.Int).SetBytes(b[:]); s.Sign() > 0 {
			return s, nil
		}
	}
}

// validSerial reports whether s can be a certificate serial number: positive
// and at most 20 octets in DER (RFC 5280 4.1.2.2).
func validSerial(s *big.Int) bool { return s != nil && s.Sign() > 0 && s.BitLen() <= 159 }

// keyID returns a key identifier for pub: the leftmost 160 bits of the
// SHA-256 hash of the subjectPublicKey bits (RFC 7093 section 2, method 1).
func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
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
		NotBefore:             o.Now.Add(-Backdate),
		NotAfter:              o.Now.Add(o.TTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            pathLen,
		MaxPathLenZero:        pathLen == 0,
		SubjectKeyId:          ski,
	}
	if o.TrustDomain != "" {
		tmpl.URIs = []*url.URL{{Scheme: "spiffe", Host: o.TrustDomain}}
		if parent != nil {
			tmpl.PermittedURIDomains = []string{o.TrustDomain}
		}
	}
	issuer, signer := tmpl, key
	var chain []*x509.Certificate
	if parent != nil {
		if err := parent.usable(); err != nil {
			return nil, err
		}
		if parent.Cert.MaxPathLen == 0 && parent.Cert.MaxPathLenZero {
			return nil, errors.New("pki: the parent CA's path length forbids intermediates")
		}
		if !o.Now.Before(parent.Cert.NotAfter) {
			return nil, fmt.Errorf("pki: the parent CA expired at %s", parent.Cert.NotAfter.UTC().Format(time.RFC3339))
		}
		issuer, signer = parent.Cert, parent.Key
		if tmpl.NotAfter.After(parent.Cert.NotAfter) {
			tmpl.NotAfter = parent.Cert.NotAfter
		}
		if tmpl.NotBefore.Before(parent.Cert.NotBefore) {
			tmpl.NotBefore = parent.Cert.NotBefore
		}
		chain = append([]*x509.Certificate{parent.Cert}, parent.Chain...)
	}
	der, err := x509.CreateCertificate(o.Rand, tmpl, issuer, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse new CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key, Chain: chain}, nil
}

// NewRootCA creates a self-signed root CA, valid from Backdate before
// o.Now for o.TTL (default 10 years), with path length 1: it may sign one
// level of intermediates, which sign leaves.
func NewRootCA(o CAOptions) (*CA, error) {
	if err := o.defaults(DefaultRootTTL); err != nil {
		return nil, err
	}
	return newCA(nil, o, 1)
}

// NewIntermediateCA creates an issuing CA (path length 0) signed by parent,
// valid for o.TTL (default 5 years) but never beyond parent's expiry. Its
// Chain is parent's certificate followed by parent's Chain.
func NewIntermediateCA(parent *CA, o CAOptions) (*CA, error) {
	if parent == nil {
		return nil, errors.New("pki: intermediate CA: no parent CA")
	}
	if err := o.defaults(DefaultIntermediateTTL); err != nil {
		return nil, err
	}
	return newCA(parent, o, 0)
}

// usable checks that c has a certificate that may sign certificates and a
// key; it is the precondition of every signing method.
func (c *CA) usable() error {
	if c == nil || c.Cert == nil || c.Key == nil {
		return errors.New("pki: CA has no certificate or no key")
	}
	if !c.Cert.BasicConstraintsValid || !c.Cert.IsCA || c.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errors.New("pki: CA certificate may not sign certificates")
	}
	return nil
}

// MarshalPEM returns the CA certificate as a CERTIFICATE PEM block and its
// private key as a PKCS #8 PRIVATE KEY PEM block. The key PEM is secret.
func (c *CA) MarshalPEM() (certPEM []byte, keyPEM SecretPEM, err error) {
	if c == nil || c.Cert == nil || c.Key == nil {
		return nil, nil, errors.New("pki: CA has no certificate or no key")
	}
	kd, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: marshal CA key: %w", err)
	}
	defer clear(kd)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), nil
}

// onePEM decodes data that must hold exactly one PEM block of type typ and
// nothing else but white space.
func onePEM(data []byte, typ, what string) (*pem.Block, error) {
	b, rest := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("pki: %s: no PEM block", what)
	}
	if b.Type != typ {
		return nil, fmt.Errorf("pki: %s: PEM block is %q, want %q", what, b.Type, typ)
	}
	if len(b.Headers) != 0 {
		return nil, fmt.Errorf("pki: %s: PEM headers (encrypted PEM?) are not supported", what)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("pki: %s: data after the PEM block", what)
	}
	return b, nil
}

// checkKey refuses public keys outside the supported set: ECDSA P-256 or
// P-384, Ed25519, RSA of 2048 bits or more.
func checkKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ECDSA key on %s: want P-256 or P-384", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits: 2048 or more required", k.N.BitLen())
		}
	default:
		return fmt.Errorf("unsupported key type %T: want ECDSA P-256/P-384, Ed25519 or RSA", pub)
	}
	return nil
}

// ParseCA loads a CA from PEM, for example an operator-supplied root or
// intermediate, or one read back from storage. certPEM must hold exactly one
// CERTIFICATE, a CA (basic constraints CA true) whose key usage includes
// keyCertSign and cRLSign; keyPEM exactly one unencrypted PKCS #8 PRIVATE KEY
// (convert others with `openssl pkcs8 -topk8 -nocrypt`) of a supported type
// that matches the certificate. chainPEM, optional, holds the certificates
// above it, nearest first; each must be a CA that signed the one before.
// ParseCA does not check validity dates: Issue and the signing methods do,
// with the caller's clock.
func ParseCA(certPEM, keyPEM, chainPEM []byte) (*CA, error) {
	cb, err := onePEM(certPEM, "CERTIFICATE", "CA certificate")
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, errors.New("pki: CA certificate: not a CA (basic constraints)")
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 || cert.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return nil, errors.New("pki: CA certificate: key usage must include keyCertSign and cRLSign")
	}
	kb, err := onePEM(keyPEM, "PRIVATE KEY", "CA key")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, errors.New("pki: CA key: not a PKCS #8 private key")
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("pki: CA key: cannot sign")
	}
	if err := checkKey(signer.Public()); err != nil {
		return nil, fmt.Errorf("pki: CA key: %s", err)
	}
	if !publicKeysEqual(cert.PublicKey, signer.Public()) {
		return nil, errors.New("pki: CA key does not match the certificate")
	}
	ca := &CA{Cert: cert, Key: signer}
	below := cert
	for rest := bytes.TrimSpace(chainPEM); len(rest) > 0; rest = bytes.TrimSpace(rest) {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil || b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("pki: chain: certificate %d: not a CERTIFICATE PEM block", len(ca.Chain)+1)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: chain: certificate %d: %w", len(ca.Chain)+1, err)
		}
		if err := below.CheckSignatureFrom(c); err != nil {
			return nil, fmt.Errorf("pki: chain: certificate %d did not sign the one before it: %w", len(ca.Chain)+1, err)
		}
		ca.Chain = append(ca.Chain, c)
		below = c
	}
	return ca, nil
}

// publicKeysEqual compares two public keys of the supported types.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// Bundle returns certificates as concatenated CERTIFICATE PEM blocks, in
// order: a trust bundle (roots), or a chain (leaf first).
func Bundle(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// ParseLeaf returns the first certificate of a PEM chain such as the one an
// agent receives (leaf, then intermediates); later blocks are not parsed.
func ParseLeaf(chainPEM []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(chainPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("pki: no CERTIFICATE PEM block")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return c, nil
}

// ParseCertificates returns every CERTIFICATE block of pemBytes, in order;
// other block types are skipped. A CERTIFICATE that does not parse is an
// error.
func ParseCertificates(pemBytes []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := pemBytes; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return out, nil
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
}

// trustDomainPermitted applies a CA's URI name constraints to a trust
// domain, as RFC 5280 4.2.1.10 describes for URIs: a constraint "a.b"
// matches the host a.b and its subdomains, ".a.b" only subdomains.
func trustDomainPermitted(ca *x509.Certificate, td string) bool {
	match := func(c string) bool {
		if strings.HasPrefix(c, ".") {
			return strings.HasSuffix(td, c)
		}
		return td == c || strings.HasSuffix(td, "."+c)
	}
	for _, c := range ca.ExcludedURIDomains {
		if match(c) {
			return false
		}
	}
	if len(ca.PermittedURIDomains) == 0 {
		return true
	}
	for _, c := range ca.PermittedURIDomains {
		if match(c) {
			return true
		}
	}
	return false
}
