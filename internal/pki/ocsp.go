package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSPStatus is a certificate's status as an OCSP response states it.
type OCSPStatus int

// The OCSP certificate statuses (RFC 6960 section 2.2).
const (
	OCSPGood    OCSPStatus = iota // issued and not revoked
	OCSPRevoked                   // revoked (or on hold)
	OCSPUnknown                   // the responder does not know the certificate
)

// MaxOCSPRequestBytes bounds an OCSP request. A request for one certificate
// with a nonce is under 150 bytes.
const MaxOCSPRequestBytes = 4 << 10

// ErrOCSPUnsupportedKey is returned by OCSPRespond on a CA whose key
// golang.org/x/crypto/ocsp cannot sign with: it signs only with ECDSA and RSA
// (and cannot verify Ed25519 responses either). An Ed25519 issuing CA
// publishes revocations by CRL only; the caller answers OCSP requests with
// ocsp.InternalErrorResponse, or issues from an ECDSA intermediate.
var ErrOCSPUnsupportedKey = errors.New("pki: OCSP responses can be signed only with ECDSA or RSA CA keys")

// ErrOCSPMalformed is wrapped by OCSPRespond's errors about the request
// itself; the caller answers those with ocsp.MalformedRequestErrorResponse.
var ErrOCSPMalformed = errors.New("malformed OCSP request")

// ocspRequestASN1 is the OCSPRequest of RFC 6960 section 4.1.1, decoded only
// to check what golang.org/x/crypto/ocsp.ParseRequest does not: the version
// and the number of requests.
type ocspRequestASN1 struct {
	TBSRequest struct {
		Version       int           `asn1:"explicit,tag:0,default:0,optional"`
		RequestorName asn1.RawValue `asn1:"explicit,tag:1,optional"`
		RequestList   []asn1.RawValue
		Extensions    []pkix.Extension `asn1:"explicit,tag:2,optional"`
	}
	OptionalSignature asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

// OCSPRespond answers a DER RFC 6960 OCSP request about one certificate
// issued by the CA, with a response signed by the CA itself (no delegated
// responder, so the CA's key must be ECDSA or RSA: see ErrOCSPUnsupportedKey),
// valid from now until now+validity. status is called once with
// the serial number and reports its status and, when revoked, when; a zero
// revocation time is reported as now.
//
// The request must be at most MaxOCSPRequestBytes, DER with nothing after
// it, version 1, unsigned, and about exactly one certificate; otherwise
// OCSPRespond returns an error wrapping ErrOCSPMalformed. A request about a
// certificate of another issuer gets the "unauthorized" response (RFC 6960
// 2.3), and one whose serial number no certificate can have (not positive,
// over 20 octets) gets "unknown" without asking status. Request extensions,
// including a nonce, are ignored, so responses carry no nonce (as in the
// RFC 5019 profile); `openssl ocsp` then needs -no_nonce or warns.
func (c *CA) OCSPRespond(reqDER []byte, status func(serial *big.Int) (OCSPStatus, time.Time), now time.Time, validity time.Duration) ([]byte, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	switch c.Key.Public().(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey:
	default:
		return nil, ErrOCSPUnsupportedKey
	}
	if status == nil {
		return nil, errors.New("pki: OCSP: no status function")
	}
	if validity <= 0 {
		return nil, errors.New("pki: OCSP: validity must be positive")
	}
	if len(reqDER) > MaxOCSPRequestBytes {
		return nil, fmt.Errorf("pki: OCSP request larger than %d bytes: %w", MaxOCSPRequestBytes, ErrOCSPMalformed)
	}
	// ParseRequest refuses trailing data, signed requests, empty request
	// lists and hash algorithms other than SHA-1 and SHA-2.
	req, err := ocsp.ParseRequest(reqDER)
	if err != nil {
		return nil, fmt.Errorf("pki: OCSP request: %w: %w", err, ErrOCSPMalformed)
	}
	var raw ocspRequestASN1
	if rest, err := asn1.Unmarshal(reqDER, &raw); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("pki: OCSP request: not DER: %w", ErrOCSPMalformed)
	}
	if raw.TBSRequest.Version != 0 {
		return nil, fmt.Errorf("pki: OCSP request: version %d, want 1: %w", raw.TBSRequest.Version+1, ErrOCSPMalformed)
	}
	if n := len(raw.TBSRequest.RequestList); n != 1 {
		return nil, fmt.Errorf("pki: OCSP request: about %d certificates, want exactly 1: %w", n, ErrOCSPMalformed)
	}
	if !req.HashAlgorithm.Available() {
		return nil, fmt.Errorf("pki: OCSP request: hash %v unavailable: %w", req.HashAlgorithm, ErrOCSPMalformed)
	}
	nameHash, keyHash, err := issuerHashes(c, req.HashAlgorithm)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(nameHash, req.IssuerNameHash) || !bytes.Equal(keyHash, req.IssuerKeyHash) {
		return bytes.Clone(ocsp.UnauthorizedErrorResponse), nil
	}
	tmpl := ocsp.Response{
		Status:       ocsp.Unknown,
		SerialNumber: req.SerialNumber,
		ThisUpdate:   now,
		NextUpdate:   now.Add(validity),
		IssuerHash:   req.HashAlgorithm,
	}
	if validSerial(req.SerialNumber) {
		switch st, revokedAt := status(req.SerialNumber); st {
		case OCSPGood:
			tmpl.Status = ocsp.Good
		case OCSPRevoked:
			if revokedAt.IsZero() {
				revokedAt = now
			}
			tmpl.Status = ocsp.Revoked
			tmpl.RevokedAt = revokedAt
			tmpl.RevocationReason = ocsp.Unspecified
		}
	}
	resp, err := ocsp.CreateResponse(c.Cert, c.Cert, tmpl, c.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: OCSP response: %w", err)
	}
	return resp, nil
}

// issuerHashes returns the hashes by which OCSP names the CA (RFC 6960
// 4.1.1): of its DER subject, and of the bits of its public key.
func issuerHashes(c *CA, h crypto.Hash) (nameHash, keyHash []byte, err error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(c.Cert.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, nil, fmt.Errorf("pki: CA public key: %w", err)
	}
	nh := h.New()
	nh.Write(c.Cert.RawSubject)
	kh := h.New()
	kh.Write(spki.PublicKey.RightAlign())
	return nh.Sum(nil), kh.Sum(nil), nil
}
