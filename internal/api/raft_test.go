package api

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/warden-sec/warden/internal/errs"
)

// FuzzSnapshotHeader: any bytes are either a well-formed header with a
// bounded sealed digest or refused as bad input.
func FuzzSnapshotHeader(f *testing.F) {
	good := append([]byte(snapshotMagic), 0, 3, 'a', 'b', 'c')
	f.Add(good)
	f.Add([]byte(snapshotMagic))
	f.Add([]byte("WARDEN-SNAPSHOT 2\n\x00\x01x"))
	f.Add(binary.BigEndian.AppendUint16([]byte(snapshotMagic), 65535))
	f.Fuzz(func(t *testing.T, b []byte) {
		sealed, err := readSnapshotHeader(bytes.NewReader(b))
		if err != nil {
			if !errs.Is(err, errs.Invalid) {
				t.Fatalf("not a bad-input error: %v", err)
			}
			return
		}
		if len(sealed) == 0 || len(sealed) > maxSealedDigest || !bytes.HasPrefix(b, []byte(snapshotMagic)) {
			t.Fatalf("accepted a bad header: %q", b)
		}
	})
}
