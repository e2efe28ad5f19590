package transit

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strconv"
)

// ExportKind is what Export returns, named as in Vault's export/{type}/{name}.
type ExportKind string

// The export kinds.
const (
	ExportEncryptionKey ExportKind = "encryption-key" // aes256-gcm96, chacha20-poly1305: base64 of the 32-byte key
	ExportSigningKey    ExportKind = "signing-key"    // ed25519: base64 of the 64-byte private key; ecdsa-p256, rsa-3072: PEM
	ExportHMACKey       ExportKind = "hmac-key"       // every type: base64 of the HMAC key
	ExportPublicKey     ExportKind = "public-key"     // ed25519: base64 of the 32-byte key; ecdsa-p256, rsa-3072: PEM "PUBLIC KEY" (PKIX)
)

// Export returns version n (0: every version the key holds) of the key's
// material, or of its public key, keyed by version number in decimal, in
// the encodings of Vault's export endpoint. Everything but public-key
// requires an exportable key. What it returns is secret: the caller hands
// it to the authorized requester and nowhere else.
func (k *Key) Export(kind ExportKind, n int) (map[string]string, error) {
	switch kind {
	case ExportEncryptionKey:
		if err := k.needs("have an encryption key", k.Type.encrypts()); err != nil {
			return nil, err
		}
	case ExportSigningKey, ExportPublicKey:
		if err := k.needs("have a "+string(kind), k.Type.signs()); err != nil {
			return nil, err
		}
	case ExportHMACKey:
	default:
		return nil, invalid("type: unknown export type %q", kind)
	}
	if kind != ExportPublicKey && !k.Exportable {
		return nil, invalid("exportable: the key is not exportable")
	}
	versions := k.Versions
	if n != 0 {
		v := k.version(n)
		if v == nil {
			return nil, invalid("version: no version %d", n)
		}
		versions = []Version{*v}
	}
	out := make(map[string]string, len(versions))
	for i := range versions {
		v := &versions[i]
		s, err := k.exportOne(kind, v)
		if err != nil {
			return nil, fmt.Errorf("transit: exporting key %q version %d: %w", k.Name, v.Number, err)
		}
		out[strconv.Itoa(v.Number)] = s
	}
	return out, nil
}

func (k *Key) exportOne(kind ExportKind, v *Version) (string, error) {
	switch {
	case kind == ExportHMACKey && k.Type != HMAC:
		return base64.StdEncoding.EncodeToString(v.HMACKey), nil
	case kind == ExportEncryptionKey || kind == ExportHMACKey:
		return base64.StdEncoding.EncodeToString(v.Material), nil
	}
	s, err := k.signer(v)
	if err != nil {
		return "", err
	}
	if kind == ExportPublicKey {
		if pub, ok := s.Public().(ed25519.PublicKey); ok {
			return base64.StdEncoding.EncodeToString(pub), nil
		}
		der, err := x509.MarshalPKIXPublicKey(s.Public())
		if err != nil {
			return "", err
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
	}
	switch priv := s.(type) {
	case ed25519.PrivateKey:
		return base64.StdEncoding.EncodeToString(priv), nil
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(priv)
		if err != nil {
			return "", err
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})), nil
	case *rsa.PrivateKey:
		return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)})), nil
	}
	return "", fmt.Errorf("unexpected private key type %T", s)
}
