package pki

import (
	"bytes"
	"crypto"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

func TestCRL(t *testing.T) {
	for _, kt := range []KeyType{KeyECP256, KeyEd25519} {
		t.Run(string(kt), func(t *testing.T) {
			_, inter := chain(t, kt)
			s := func(n int64) *big.Int { return big.NewInt(n) }
			in := []Revoked{
				{Serial: s(30), RevokedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)},            // listed
				{Serial: s(7), RevokedAt: now.Add(-48 * time.Hour), ExpiresAt: now.Add(-time.Hour)},         // expired long ago: left out
				{Serial: s(8), RevokedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-Backdate / 2)},           // expired within Backdate: listed
				{Serial: s(9), RevokedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-Backdate - time.Second)}, // expired beyond Backdate: left out
				{Serial: s(30), RevokedAt: now.Add(-2 * time.Minute), ExpiresAt: now.Add(time.Hour)},        // duplicate: the earlier wins
				{Serial: s(1), RevokedAt: now.Add(-3 * time.Minute), ExpiresAt: now.Add(24 * time.Hour)},    // listed
				{Serial: new(big.Int).Lsh(s(1), 127), RevokedAt: now, ExpiresAt: now.Add(24 * time.Hour)},   // listed, 128-bit
			}
			orig := append([]Revoked(nil), in...)
			der, err := inter.CRL(in, s(5), now, 24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			for i := range in {
				if in[i] != orig[i] {
					t.Fatal("CRL modified its input")
				}
			}
			crl, err := x509.ParseRevocationList(der)
			if err != nil {
				t.Fatal(err)
			}
			if err := crl.CheckSignatureFrom(inter.Cert); err != nil {
				t.Fatalf("signature: %v", err)
			}
			if crl.Number.Int64() != 5 || !crl.ThisUpdate.Equal(now.Add(-Backdate)) || !crl.NextUpdate.Equal(now.Add(24*time.Hour)) ||
				!bytes.Equal(crl.AuthorityKeyId, inter.Cert.SubjectKeyId) || !bytes.Equal(crl.RawIssuer, inter.Cert.RawSubject) {
				t.Errorf("number %v, this %v, next %v, AKI %x", crl.Number, crl.ThisUpdate, crl.NextUpdate, crl.AuthorityKeyId)
			}
			var got []string
			for _, e := range crl.RevokedCertificateEntries {
				got = append(got, e.SerialNumber.String()+"@"+e.RevocationTime.Format("15:04"))
			}
			want := []string{"1@11:57", "8@11:00", "30@11:58", new(big.Int).Lsh(s(1), 127).String() + "@12:00"}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("entries %v, want %v", got, want)
			}
		})
	}
	_, inter := chain(t, KeyECP256)
	empty, err := inter.CRL(nil, big.NewInt(0), now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if crl, err := x509.ParseRevocationList(empty); err != nil || len(crl.RevokedCertificateEntries) != 0 {
		t.Fatalf("empty CRL: %v", err)
	}
	for _, tc := range []struct {
		name     string
		rev      []Revoked
		number   *big.Int
		validity time.Duration
		at       time.Time
	}{
		{"nil number", nil, nil, time.Hour, now},
		{"negative number", nil, big.NewInt(-1), time.Hour, now},
		{"zero validity", nil, big.NewInt(1), 0, now},
		{"nil serial", []Revoked{{RevokedAt: now, ExpiresAt: now}}, big.NewInt(1), time.Hour, now},
		{"zero serial", []Revoked{{Serial: big.NewInt(0), RevokedAt: now, ExpiresAt: now}}, big.NewInt(1), time.Hour, now},
		{"no revocation time", []Revoked{{Serial: big.NewInt(1), ExpiresAt: now}}, big.NewInt(1), time.Hour, now},
		{"expired CA", nil, big.NewInt(1), time.Hour, inter.Cert.NotAfter.Add(time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := inter.CRL(tc.rev, tc.number, tc.at, tc.validity); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestOCSP(t *testing.T) {
	// x/crypto/ocsp signs only with ECDSA and RSA.
	_, edInter := chain(t, KeyEd25519)
	edCert := mustIssue(t, edInter, edKey(t))
	edReq, _ := ocsp.CreateRequest(edCert, edInter.Cert, nil)
	if _, err := edInter.OCSPRespond(edReq, func(*big.Int) (OCSPStatus, time.Time) { return OCSPGood, time.Time{} }, now, time.Hour); !errors.Is(err, ErrOCSPUnsupportedKey) {
		t.Errorf("Ed25519 CA: %v, want ErrOCSPUnsupportedKey", err)
	}
	// An Ed25519 root with an ECDSA issuing CA is fine.
	edRoot, _ := chain(t, KeyEd25519)
	mixed, err := NewIntermediateCA(edRoot, CAOptions{CommonName: "Warden issuing", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	for name, inter := range map[string]*CA{"ec-p256": mustCA(t, KeyECP256), "ed25519 root, ec-p256 intermediate": mixed} {
		t.Run(name, func(t *testing.T) {
			key := ecKey(t, elliptic.P256())
			good, revoked, unknown, unknownTime := mustIssue(t, inter, key), mustIssue(t, inter, key), mustIssue(t, inter, key), mustIssue(t, inter, key)
			revokedAt := now.Add(-time.Hour).Truncate(time.Second)
			status := func(s *big.Int) (OCSPStatus, time.Time) {
				switch {
				case s.Cmp(revoked.SerialNumber) == 0:
					return OCSPRevoked, revokedAt
				case s.Cmp(good.SerialNumber) == 0:
					return OCSPGood, time.Time{}
				case s.Cmp(unknownTime.SerialNumber) == 0:
					return OCSPRevoked, time.Time{} // reported as revoked now
				}
				return OCSPUnknown, time.Time{}
			}
			for _, tc := range []struct {
				name string
				cert *x509.Certificate
				hash crypto.Hash
				want int
			}{
				{"good", good, crypto.SHA1, ocsp.Good},
				{"revoked", revoked, crypto.SHA1, ocsp.Revoked},
				{"unknown", unknown, crypto.SHA1, ocsp.Unknown},
				{"good sha256", good, crypto.SHA256, ocsp.Good},
				{"revoked sha384", revoked, crypto.SHA384, ocsp.Revoked},
				{"revoked at an unknown time", unknownTime, crypto.SHA1, ocsp.Revoked},
			} {
				t.Run(tc.name, func(t *testing.T) {
					req, err := ocsp.CreateRequest(tc.cert, inter.Cert, &ocsp.RequestOptions{Hash: tc.hash})
					if err != nil {
						t.Fatal(err)
					}
					der, err := inter.OCSPRespond(req, status, now, time.Hour)
					if err != nil {
						t.Fatal(err)
					}
					r, err := ocsp.ParseResponseForCert(der, tc.cert, inter.Cert)
					if err != nil {
						t.Fatal(err)
					}
					if r.Status != tc.want || r.SerialNumber.Cmp(tc.cert.SerialNumber) != 0 || !r.ThisUpdate.Equal(now) ||
						!r.NextUpdate.Equal(now.Add(time.Hour)) || r.IssuerHash != tc.hash || r.Certificate != nil {
						t.Errorf("status %d (want %d), serial %v, this %v, next %v, hash %v", r.Status, tc.want, r.SerialNumber, r.ThisUpdate, r.NextUpdate, r.IssuerHash)
					}
					wantAt := map[*x509.Certificate]time.Time{revoked: revokedAt, unknownTime: now}[tc.cert]
					if !r.RevokedAt.Equal(wantAt) {
						t.Errorf("revoked at %v, want %v", r.RevokedAt, wantAt)
					}
				})
			}

			// A request about another issuer's certificate is unauthorized,
			// and the answer is a copy the caller may keep or modify.
			_, other := chain(t, KeyECP256)
			foreign := mustIssue(t, other, key)
			req, _ := ocsp.CreateRequest(foreign, other.Cert, nil)
			resp, err := inter.OCSPRespond(req, status, now, time.Hour)
			if err != nil || !bytes.Equal(resp, ocsp.UnauthorizedErrorResponse) {
				t.Fatalf("foreign issuer: %x, %v", resp, err)
			}
			resp[len(resp)-1] = 0xff
			if ocsp.UnauthorizedErrorResponse[len(resp)-1] == 0xff {
				t.Fatal("OCSPRespond handed out x/crypto's package variable")
			}
			if _, err := ocsp.ParseResponse(ocsp.UnauthorizedErrorResponse, nil); !errors.As(err, new(ocsp.ResponseError)) {
				t.Fatalf("unauthorized response parses as %v", err)
			}
		})
	}
}

// rawOCSPRequest mirrors the OCSPRequest of RFC 6960 4.1.1 closely enough
// to build malformed ones.
type rawOCSPRequest struct {
	TBS struct {
		Version     int `asn1:"explicit,tag:0,optional"`
		RequestList []asn1.RawValue
	}
}

func mustCA(t *testing.T, kt KeyType) *CA {
	t.Helper()
	_, inter := chain(t, kt)
	return inter
}

func TestOCSPRefuses(t *testing.T) {
	_, inter := chain(t, KeyECP256)
	cert := mustIssue(t, inter, ecKey(t, elliptic.P256()))
	good, _ := ocsp.CreateRequest(cert, inter.Cert, nil)
	var raw rawOCSPRequest
	if _, err := asn1.Unmarshal(good, &raw); err != nil {
		t.Fatal(err)
	}
	two := raw
	two.TBS.RequestList = append(two.TBS.RequestList, raw.TBS.RequestList[0])
	twoDER, _ := asn1.Marshal(two)
	v2 := raw
	v2.TBS.Version = 1
	v2DER, _ := asn1.Marshal(v2)
	asked := false
	status := func(*big.Int) (OCSPStatus, time.Time) { asked = true; return OCSPGood, time.Time{} }
	for _, tc := range []struct {
		name string
		req  []byte
	}{
		{"empty", nil},
		{"garbage", []byte("GET / HTTP/1.1")},
		{"trailing data", append(bytes.Clone(good), 0)},
		{"truncated", good[:len(good)-1]},
		{"two certificates", twoDER},
		{"version 2", v2DER},
		{"too large", append(bytes.Clone(good), make([]byte, MaxOCSPRequestBytes)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := inter.OCSPRespond(tc.req, status, now, time.Hour)
			if !errors.Is(err, ErrOCSPMalformed) || resp != nil {
				t.Fatalf("OCSPRespond = %x, %v; want ErrOCSPMalformed", resp, err)
			}
		})
	}
	if asked {
		t.Error("status was asked about a malformed request")
	}
	// Sanity: the re-encoded single request is still accepted.
	if oneDER, _ := asn1.Marshal(raw); !bytes.Equal(oneDER, good) {
		t.Fatal("test encoding differs from x/crypto's")
	}

	// A serial no certificate can have is unknown, without asking.
	raw0 := raw
	var single struct {
		CertID struct {
			Hash              asn1.RawValue
			NameHash, KeyHash []byte
			Serial            *big.Int
		}
	}
	if _, err := asn1.Unmarshal(raw.TBS.RequestList[0].FullBytes, &single); err != nil {
		t.Fatal(err)
	}
	single.CertID.Serial = big.NewInt(-5)
	sb, _ := asn1.Marshal(single)
	raw0.TBS.RequestList = []asn1.RawValue{{FullBytes: sb}}
	negDER, _ := asn1.Marshal(raw0)
	resp, err := inter.OCSPRespond(negDER, status, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := ocsp.ParseResponse(resp, inter.Cert); err != nil || r.Status != ocsp.Unknown || asked {
		t.Fatalf("negative serial: %v, %v, asked %v", r, err, asked)
	}

	for _, tc := range []struct {
		name     string
		status   func(*big.Int) (OCSPStatus, time.Time)
		validity time.Duration
	}{{"nil status", nil, time.Hour}, {"zero validity", status, 0}} {
		if _, err := inter.OCSPRespond(good, tc.status, now, tc.validity); err == nil || errors.Is(err, ErrOCSPMalformed) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
