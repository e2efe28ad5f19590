package inventory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// lz4Reader decompresses the LZ4 frame format (as apt stores its lists
// when configured to), following the published frame and block format
// descriptions. Checksums are skipped, not verified: a damaged list parses
// as garbage or fails, and is then not counted. Concatenated frames and
// skippable frames are read in turn.
type lz4Reader struct {
	r       io.Reader
	window  []byte // decoded history: up to 64 KiB before out
	out     []byte // decoded and not yet returned
	buf     []byte // the compressed block being read
	inFrame bool
	flags   byte
	maxBlk  int
	err     error
}

const (
	lz4Magic      = 0x184D2204
	lz4SkipMask   = 0xFFFFFFF0
	lz4SkipMagic  = 0x184D2A50
	lz4WindowSize = 64 << 10
)

var errLZ4 = errors.New("lz4: corrupt input")

func newLZ4Reader(r io.Reader) *lz4Reader { return &lz4Reader{r: r} }

func (z *lz4Reader) Read(p []byte) (int, error) {
	for len(z.out) == 0 {
		if z.err != nil {
			return 0, z.err
		}
		z.err = z.next()
	}
	n := copy(p, z.out)
	z.out = z.out[n:]
	return n, nil
}

// next decodes the next block into z.out, reading frame headers as needed.
func (z *lz4Reader) next() error {
	var b4 [4]byte
	if !z.inFrame {
		if _, err := io.ReadFull(z.r, b4[:]); err != nil {
			if err == io.EOF {
				return io.EOF
			}
			return errLZ4
		}
		magic := binary.LittleEndian.Uint32(b4[:])
		if magic&lz4SkipMask == lz4SkipMagic {
			if _, err := io.ReadFull(z.r, b4[:]); err != nil {
				return errLZ4
			}
			_, err := io.CopyN(io.Discard, z.r, int64(binary.LittleEndian.Uint32(b4[:])))
			if err != nil {
				return errLZ4
			}
			return nil
		}
		if magic != lz4Magic {
			return errLZ4
		}
		var hdr [2]byte
		if _, err := io.ReadFull(z.r, hdr[:]); err != nil {
			return errLZ4
		}
		z.flags = hdr[0]
		if z.flags>>6 != 1 || z.flags&0x02 != 0 || hdr[1]&0x8F != 0 {
			return errLZ4
		}
		switch (hdr[1] >> 4) & 7 {
		case 4:
			z.maxBlk = 64 << 10
		case 5:
			z.maxBlk = 256 << 10
		case 6:
			z.maxBlk = 1 << 20
		case 7:
			z.maxBlk = 4 << 20
		default:
			return errLZ4
		}
		skip := 1 // header checksum
		if z.flags&0x08 != 0 {
			skip += 8 // content size
		}
		if z.flags&0x01 != 0 {
			return fmt.Errorf("lz4: frames with a dictionary are not supported")
		}
		if _, err := io.CopyN(io.Discard, z.r, int64(skip)); err != nil {
			return errLZ4
		}
		z.inFrame, z.window = true, z.window[:0]
	}
	if _, err := io.ReadFull(z.r, b4[:]); err != nil {
		return errLZ4
	}
	size := binary.LittleEndian.Uint32(b4[:])
	if size == 0 { // end mark
		z.inFrame = false
		if z.flags&0x04 != 0 {
			if _, err := io.ReadFull(z.r, b4[:]); err != nil {
				return errLZ4
			}
		}
		return nil
	}
	raw := size&0x80000000 != 0
	size &^= 0x80000000
	if int(size) > z.maxBlk {
		return errLZ4
	}
	if cap(z.buf) < int(size) {
		z.buf = make([]byte, size)
	}
	block := z.buf[:size]
	if _, err := io.ReadFull(z.r, block); err != nil {
		return errLZ4
	}
	if z.flags&0x10 != 0 {
		if _, err := io.ReadFull(z.r, b4[:]); err != nil {
			return errLZ4
		}
	}
	// Keep the last 64 KiB of history; blocks may refer to it unless the
	// frame says they are independent.
	if len(z.window) > lz4WindowSize {
		z.window = append(z.window[:0], z.window[len(z.window)-lz4WindowSize:]...)
	}
	if z.flags&0x20 != 0 {
		z.window = z.window[:0]
	}
	start := len(z.window)
	if raw {
		z.window = append(z.window, block...)
	} else {
		var err error
		z.window, err = lz4Block(z.window, block, start+z.maxBlk)
		if err != nil {
			return err
		}
	}
	z.out = z.window[start:]
	return nil
}

// lz4Block decodes one compressed block, appending to dst (whose contents
// are the history matches may refer to), never growing it past limit.
func lz4Block(dst, src []byte, limit int) ([]byte, error) {
	length := func(n int, i *int) (int, error) {
		if n != 15 {
			return n, nil
		}
		for {
			if *i >= len(src) {
				return 0, errLZ4
			}
			c := src[*i]
			*i++
			n += int(c)
			if n > limit {
				return 0, errLZ4
			}
			if c != 255 {
				return n, nil
			}
		}
	}
	i := 0
	for i < len(src) {
		tok := src[i]
		i++
		lit, err := length(int(tok>>4), &i)
		if err != nil {
			return nil, err
		}
		if lit > len(src)-i || len(dst)+lit > limit {
			return nil, errLZ4
		}
		dst = append(dst, src[i:i+lit]...)
		i += lit
		if i == len(src) { // the last sequence has literals only
			return dst, nil
		}
		if i+2 > len(src) {
			return nil, errLZ4
		}
		off := int(binary.LittleEndian.Uint16(src[i:]))
		i += 2
		ml, err := length(int(tok&15), &i)
		if err != nil {
			return nil, err
		}
		ml += 4
		if off == 0 || off > len(dst) || len(dst)+ml > limit {
			return nil, errLZ4
		}
		from := len(dst) - off
		for k := 0; k < ml; k++ { // byte by byte: the match may overlap its output
			dst = append(dst, dst[from+k])
		}
	}
	return nil, errLZ4
}
