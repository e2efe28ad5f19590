package transit

import (
	"bytes"
	"testing"
)

// BenchmarkSign signs 1 KiB with each signing type, as the service does
// (a key decoded once and shared), and, for comparison, with a key that
// parses its private key on every signature (no cache).
func BenchmarkSign(b *testing.B) {
	input := bytes.Repeat([]byte("w"), 1024)
	for _, typ := range []Type{Ed25519, ECDSAP256, RSA3072} {
		k := newKey(b, "bench-"+string(typ), typ, Options{})
		for _, cached := range []bool{true, false} {
			name := string(typ) + "/cached"
			kk := k.Clone()
			if !cached {
				name = string(typ) + "/uncached"
				kk.signers = nil
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := kk.Sign(input, SignOptions{}, seeded(1)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
