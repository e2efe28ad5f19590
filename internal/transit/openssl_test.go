package transit

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenSSL verifies Sign's signatures with openssl, the tool operators
// use: ECDSA and RSA with `openssl dgst -sha256 -verify`, Ed25519 with
// `openssl pkeyutl -verify -rawin`. It requires openssl on PATH (CI
// installs it: apt-get install openssl) and fails, rather than skips,
// without it.
func TestOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is required for this test (apt-get install openssl)")
	}
	msg := []byte("a message for openssl\n")
	for _, tc := range []struct {
		name string
		typ  Type
		alg  SignatureAlgorithm
		args []string // the verify command; PUB, SIG and MSG are replaced by paths
	}{
		{"ecdsa-p256", ECDSAP256, "", []string{"dgst", "-sha256", "-verify", "PUB", "-signature", "SIG", "MSG"}},
		{"rsa-3072 pss", RSA3072, PSS, []string{"dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32", "-verify", "PUB", "-signature", "SIG", "MSG"}},
		{"rsa-3072 pkcs1v15", RSA3072, PKCS1v15, []string{"dgst", "-sha256", "-verify", "PUB", "-signature", "SIG", "MSG"}},
		{"ed25519", Ed25519, "", []string{"pkeyutl", "-verify", "-pubin", "-inkey", "PUB", "-rawin", "-in", "MSG", "-sigfile", "SIG"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKey(t, "k", tc.typ, Options{})
			sig, err := k.Sign(msg, SignOptions{Algorithm: tc.alg}, seeded(1))
			if err != nil {
				t.Fatal(err)
			}
			p, _ := Parse("signature", sig)
			pubs, err := k.Export(ExportPublicKey, 1)
			if err != nil {
				t.Fatal(err)
			}
			pub := pubs["1"]
			if tc.typ == Ed25519 {
				// openssl reads PEM; Export gives Ed25519 keys as base64.
				pk, _ := k.PublicKey(1)
				pub = pemPublic(t, pk)
			}
			dir := t.TempDir()
			write := func(name string, b []byte) string {
				path := filepath.Join(dir, name)
				if err := os.WriteFile(path, b, 0o600); err != nil {
					t.Fatal(err)
				}
				return path
			}
			paths := map[string]string{"PUB": write("pub.pem", []byte(pub)), "SIG": write("sig", p.Payload), "MSG": write("msg", msg)}
			run := func() ([]byte, error) {
				args := make([]string, len(tc.args))
				for i, a := range tc.args {
					if p, ok := paths[a]; ok {
						a = p
					}
					args[i] = a
				}
				return exec.Command("openssl", args...).CombinedOutput()
			}
			if out, err := run(); err != nil || !strings.Contains(string(out), "Verified OK") && !strings.Contains(string(out), "Signature Verified Successfully") {
				t.Fatalf("openssl %s: %v\n%s", strings.Join(tc.args, " "), err, out)
			}
			paths["MSG"] = write("other", []byte("another message\n"))
			if out, err := run(); err == nil {
				t.Fatalf("openssl verified the signature over another message:\n%s", out)
			}
		})
	}
}

func pemPublic(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}
