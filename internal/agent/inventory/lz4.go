package inventory

import (
	"io"

	"github.com/pierrec/lz4/v4"
)

// newLZ4Reader decodes the LZ4 frames apt stores its lists in (Debian
// compresses /var/lib/apt/lists/*_Packages with lz4 by default).
func newLZ4Reader(r io.Reader) io.Reader { return lz4.NewReader(r) }
