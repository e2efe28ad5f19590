package transit

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"testing"
	"time"
)

func TestExport(t *testing.T) {
	for _, typ := range Types() {
		t.Run(string(typ), func(t *testing.T) {
			opts := Options{Exportable: true}
			k, err := New("x", typ, opts, t0, seeded(1))
			if err != nil {
				t.Fatal(err)
			}
			mustRotate(t, k, t0.Add(time.Hour))
			kinds := map[Type]ExportKind{AES256GCM96: ExportEncryptionKey, ChaCha20Poly1305: ExportEncryptionKey, HMAC: ExportHMACKey, Ed25519: ExportSigningKey, ECDSAP256: ExportSigningKey, RSA3072: ExportSigningKey}
			kind := kinds[typ]
			all, err := k.Export(kind, 0)
			if err != nil || len(all) != 2 || all["1"] == "" || all["2"] == "" {
				t.Fatalf("Export(%s, all) = %d versions, %v", kind, len(all), err)
			}
			one, err := k.Export(kind, 2)
			if err != nil || len(one) != 1 || one["2"] != all["2"] {
				t.Fatalf("Export(%s, 2) = %v, %v", kind, len(one), err)
			}
			// The exported private key is the one that signs; the
			// exported secret key is the material.
			switch typ {
			case Ed25519:
				b, _ := base64.StdEncoding.DecodeString(all["2"])
				pub, _ := k.PublicKey(2)
				if !bytes.Equal(ed25519.PrivateKey(b).Public().(ed25519.PublicKey), pub.(ed25519.PublicKey)) {
					t.Fatal("exported ed25519 key does not match")
				}
			case ECDSAP256:
				blk, _ := pem.Decode([]byte(all["2"]))
				priv, err := x509.ParseECPrivateKey(blk.Bytes)
				pub, _ := k.PublicKey(2)
				if err != nil || !priv.PublicKey.Equal(pub.(*ecdsa.PublicKey)) {
					t.Fatalf("exported ecdsa key does not match: %v", err)
				}
			case RSA3072:
				blk, _ := pem.Decode([]byte(all["2"]))
				priv, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
				pub, _ := k.PublicKey(2)
				if err != nil || !priv.PublicKey.Equal(pub.(*rsa.PublicKey)) {
					t.Fatalf("exported rsa key does not match: %v", err)
				}
			default:
				if all["2"] != base64.StdEncoding.EncodeToString(k.Versions[1].Material) {
					t.Fatal("exported key is not the material")
				}
			}
			if typ.signs() {
				pubs, err := k.Export(ExportPublicKey, 0)
				if err != nil || len(pubs) != 2 {
					t.Fatalf("public keys: %v, %v", pubs, err)
				}
			}
			// Every type has an HMAC key, and it is the one HMAC uses.
			macs, err := k.Export(ExportHMACKey, 2)
			if err != nil {
				t.Fatal(err)
			}
			hk, _ := base64.StdEncoding.DecodeString(macs["2"])
			h := hmac.New(sha256.New, hk)
			h.Write([]byte("m"))
			if got, _ := k.HMAC([]byte("m"), 2); got != formatVersioned(2, h.Sum(nil)) {
				t.Fatal("the exported HMAC key is not the one HMAC uses")
			}
			_, err = k.Export(kind, 3)
			wantInvalid(t, err, "version")
			_, err = k.Export("private-key", 0)
			wantInvalid(t, err, "type")
			wrong := ExportEncryptionKey
			if typ.encrypts() || typ == HMAC {
				wrong = ExportSigningKey
			}
			_, err = k.Export(wrong, 0)
			wantInvalid(t, err, "type")

			// Not exportable: refused, except public keys.
			no := false
			if err := k.Configure(Config{Exportable: &no}); err != nil {
				t.Fatal(err)
			}
			_, err = k.Export(kind, 0)
			wantInvalid(t, err, "exportable")
			if typ.signs() {
				if _, err := k.Export(ExportPublicKey, 0); err != nil {
					t.Fatalf("public key of a non-exportable key: %v", err)
				}
			}
		})
	}
}
