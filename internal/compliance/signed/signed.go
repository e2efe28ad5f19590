// Package signed makes and checks detached signatures by keys that the
// cluster's CA certified: compliance reports and the assessment policies
// sent to agents are signed by a server with its own cluster certificate,
// and anyone holding the CA bundle verifies them offline.
//
// It signs and verifies bytes; it does not know what they mean, and it
// never holds a key longer than the call that uses it.
package signed

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Algorithms.
const (
	ECDSASHA256  = "ecdsa-sha256"
	Ed25519      = "ed25519"
	RSAPSSSHA256 = "rsa-pss-sha256"
)

// domain separates these signatures from every other use of the same key
// (TLS handshakes sign other structures, but a prefix makes it explicit).
const domain = "warden signed v2\n"

// maxChain bounds the certificates a signature may carry.
const maxChain = 4

// Signature is a detached signature with the certificate chain of its key.
type Signature struct {
	Algorithm string `json:"algorithm"`
	// Value is the signature over SHA-256(message), message being
	// "warden signed v2\n" || SignedAt (RFC 3339, UTC, seconds) || "\n" ||
	// payload (Ed25519 signs the message itself): the signing time is
	// signed too, so it cannot be moved into another certificate's life.
	Value []byte `json:"value"`
	// Chain is DER, the signer's certificate first, up to but not
	// including a root.
	Chain [][]byte `json:"chain"`
	// SignedAt is when the signature was made: the chain is verified at
	// that time, since server certificates live for a day.
	SignedAt time.Time `json:"signed_at"`
}

func message(payload []byte, signedAt time.Time) []byte {
	at := signedAt.UTC().Format(time.RFC3339)
	m := make([]byte, 0, len(domain)+len(at)+1+len(payload))
	m = append(append(append(m, domain...), at...), '\n')
	return append(m, payload...)
}

// Sign signs payload with key, whose certificate is chain[0].
func Sign(key crypto.Signer, chain []*x509.Certificate, payload []byte, now time.Time) (*Signature, error) {
	if key == nil || len(chain) == 0 {
		return nil, errors.New("signed: a key and its certificate are required")
	}
	if len(chain) > maxChain {
		return nil, fmt.Errorf("signed: a chain of %d certificates; at most %d", len(chain), maxChain)
	}
	sig := &Signature{SignedAt: now.UTC().Truncate(time.Second)}
	for _, c := range chain {
		sig.Chain = append(sig.Chain, c.Raw)
	}
	msg := message(payload, sig.SignedAt)
	var err error
	switch key.Public().(type) {
	case ed25519.PublicKey:
		sig.Algorithm = Ed25519
		sig.Value, err = key.Sign(rand.Reader, msg, crypto.Hash(0))
	case *ecdsa.PublicKey:
		sig.Algorithm = ECDSASHA256
		h := sha256.Sum256(msg)
		sig.Value, err = key.Sign(rand.Reader, h[:], crypto.SHA256)
	case *rsa.PublicKey:
		sig.Algorithm = RSAPSSSHA256
		h := sha256.Sum256(msg)
		sig.Value, err = key.Sign(rand.Reader, h[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
	default:
		return nil, fmt.Errorf("signed: unsupported key type %T", key.Public())
	}
	if err != nil {
		return nil, fmt.Errorf("signed: %w", err)
	}
	if !publicKeysEqual(key.Public(), chain[0].PublicKey) {
		return nil, errors.New("signed: the key is not the certificate's")
	}
	return sig, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// Role checks that the signer's certificate may sign this kind of document.
type Role func(leaf *x509.Certificate) error

// ServerSigner accepts certificates of the cluster's servers (URI SAN
// spiffe://<trust domain>/server/<id>).
func ServerSigner(leaf *x509.Certificate) error {
	for _, u := range leaf.URIs {
		if u.Scheme == "spiffe" && strings.HasPrefix(u.Path, "/server/") && len(u.Path) > len("/server/") {
			return nil
		}
	}
	return errors.New("signed: the signer is not a server of the cluster (no spiffe://…/server/ identity)")
}

// Verify checks sig over payload as VerifyAt does, with the chain checked
// at sig.SignedAt: for documents verified offline (reports), whose
// signer's certificate may have expired since. SignedAt is the signer's
// word, not covered by the signature: a document received live from its
// signer is verified with VerifyAt at the receiver's clock instead.
func Verify(payload []byte, sig *Signature, roots *x509.CertPool, role Role) (*x509.Certificate, error) {
	if sig == nil {
		return nil, errors.New("signed: no signature")
	}
	if sig.SignedAt.IsZero() {
		return nil, errors.New("signed: signed_at: missing")
	}
	return VerifyAt(payload, sig, roots, role, sig.SignedAt)
}

// VerifyAt checks sig over payload: the chain leads to one of roots,
// every certificate valid at at, role accepts the signer, and the
// signature is the signer's. It returns the signer's certificate.
// sig.SignedAt must be set but is not otherwise checked: comparing it
// with at is the caller's rule.
func VerifyAt(payload []byte, sig *Signature, roots *x509.CertPool, role Role, at time.Time) (*x509.Certificate, error) {
	if sig == nil {
		return nil, errors.New("signed: no signature")
	}
	if roots == nil || role == nil {
		return nil, errors.New("signed: roots and a role are required")
	}
	if at.IsZero() {
		return nil, errors.New("signed: no time to verify the chain at")
	}
	if len(sig.Chain) == 0 || len(sig.Chain) > maxChain {
		return nil, fmt.Errorf("signed: chain: want 1 to %d certificates, got %d", maxChain, len(sig.Chain))
	}
	if sig.SignedAt.IsZero() {
		return nil, errors.New("signed: signed_at: missing")
	}
	leaf, err := x509.ParseCertificate(sig.Chain[0])
	if err != nil {
		return nil, fmt.Errorf("signed: chain[0]: %w", err)
	}
	inter := x509.NewCertPool()
	for i, der := range sig.Chain[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("signed: chain[%d]: %w", i+1, err)
		}
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("signed: the signer's certificate does not chain to the CA: %w", err)
	}
	if err := role(leaf); err != nil {
		return nil, err
	}
	msg := message(payload, sig.SignedAt)
	ok := false
	switch sig.Algorithm {
	case Ed25519:
		pub, isEd := leaf.PublicKey.(ed25519.PublicKey)
		ok = isEd && ed25519.Verify(pub, msg, sig.Value)
	case ECDSASHA256:
		pub, isEC := leaf.PublicKey.(*ecdsa.PublicKey)
		h := sha256.Sum256(msg)
		ok = isEC && ecdsa.VerifyASN1(pub, h[:], sig.Value)
	case RSAPSSSHA256:
		pub, isRSA := leaf.PublicKey.(*rsa.PublicKey)
		h := sha256.Sum256(msg)
		ok = isRSA && rsa.VerifyPSS(pub, crypto.SHA256, h[:], sig.Value, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	default:
		return nil, fmt.Errorf("signed: algorithm %q is not one of %s, %s, %s", sig.Algorithm, ECDSASHA256, Ed25519, RSAPSSSHA256)
	}
	if !ok {
		return nil, errors.New("signed: the signature does not match the document")
	}
	return leaf, nil
}
