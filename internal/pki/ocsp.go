package pki

import (
	"bytes"
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSPStatus is a certificate's status for OCSP.
type OCSPStatus int

// Statuses.
const (
	OCSPGood OCSPStatus = iota
	OCSPRevoked
	OCSPUnknown
)

// MaxOCSPRequestBytes bounds an OCSP request.
const MaxOCSPRequestBytes = 4 << 10

// OCSPRespond answers an RFC 6960 request for a certificate issued by the CA,
// signed by the CA itself. status reports a serial's status and, when
// revoked, when. A request about another issuer gets an "unauthorized"
// response; a malformed request is an error (answer "malformedRequest").
func (c *CA) OCSPRespond(reqDER []byte, status func(*big.Int) (OCSPStatus, time.Time), now time.Time, validity time.Duration) ([]byte, error) {
	if len(reqDER) > MaxOCSPRequestBytes {
		return nil, errors.New("pki: OCSP request too large")
	}
	req, err := ocsp.ParseRequest(reqDER)
	if err != nil {
		return nil, err
	}
	if !req.HashAlgorithm.Available() {
		return nil, errors.New("pki: OCSP request: unsupported hash")
	}
	nameHash, keyHash, err := issuerHashes(c, req.HashAlgorithm)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(nameHash, req.IssuerNameHash) || !bytes.Equal(keyHash, req.IssuerKeyHash) {
		return ocsp.UnauthorizedErrorResponse, nil
	}
	st, revokedAt := status(req.SerialNumber)
	tmpl := ocsp.Response{
		SerialNumber: req.SerialNumber,
		ThisUpdate:   now,
		NextUpdate:   now.Add(validity),
		IssuerHash:   req.HashAlgorithm,
	}
	switch st {
	case OCSPGood:
		tmpl.Status = ocsp.Good
	case OCSPRevoked:
		tmpl.Status = ocsp.Revoked
		tmpl.RevokedAt = revokedAt
		tmpl.RevocationReason = ocsp.Unspecified
	default:
		tmpl.Status = ocsp.Unknown
	}
	return ocsp.CreateResponse(c.Cert, c.Cert, tmpl, c.Key)
}

// issuerHashes returns the hashes of the CA's subject and public key bits as
// OCSP names the issuer.
func issuerHashes(c *CA, h crypto.Hash) ([]byte, []byte, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(c.Cert.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, nil, err
	}
	nh := h.New()
	nh.Write(c.Cert.RawSubject)
	kh := h.New()
	kh.Write(spki.PublicKey.RightAlign())
	return nh.Sum(nil), kh.Sum(nil), nil
}
