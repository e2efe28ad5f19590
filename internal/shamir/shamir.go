// Package shamir implements Shamir's secret sharing over GF(2^8), the field
// of AES (reduction polynomial x^8 + x^4 + x^3 + x + 1).
//
// Each byte of the secret is the constant term of its own random polynomial
// of degree threshold-1; a share holds that polynomial evaluated at one
// non-zero x for every byte, followed by x itself. Any threshold shares
// recover the secret by Lagrange interpolation at x = 0; fewer reveal nothing
// about it.
//
// Field arithmetic is constant time: no table lookups indexed by secret data
// and no branches on it. The package does not authenticate shares: Combine
// given wrong or too few shares returns a wrong secret, not an error. Callers
// that must detect a bad share check it against something they stored.
package shamir

import (
	"errors"
	"fmt"
	"io"
)

// mul multiplies in GF(2^8) in constant time (shift-and-add with masks).
func mul(a, b byte) byte {
	var p byte
	for i := 0; i < 8; i++ {
		p ^= a & -(b & 1)          // add a if the low bit of b is set
		hi := -(a >> 7)            // 0xff if a's top bit is set
		a = (a << 1) ^ (0x1b & hi) // multiply a by x, reducing
		b >>= 1
	}
	return p
}

// inv returns the multiplicative inverse (a^254); inv(0) = 0.
func inv(a byte) byte {
	// a^254 = a^(2+4+8+16+32+64+128)
	r := byte(1)
	x := a
	for i := 0; i < 7; i++ {
		x = mul(x, x) // a^(2^(i+1))
		r = mul(r, x)
	}
	return r
}

// Split splits secret into parts shares, any threshold of which recover it.
// Each share is len(secret)+1 bytes: the y values, then the x coordinate
// (distinct, random, in 1..255). 1 <= threshold <= parts <= 255; threshold 1
// is allowed only with a single part (the share then contains the secret).
func Split(secret []byte, parts, threshold int, rand io.Reader) ([][]byte, error) {
	switch {
	case len(secret) == 0:
		return nil, errors.New("shamir: empty secret")
	case parts < 1 || parts > 255:
		return nil, fmt.Errorf("shamir: parts must be in 1..255, got %d", parts)
	case threshold < 1 || threshold > parts:
		return nil, fmt.Errorf("shamir: threshold must be in 1..parts (%d), got %d", parts, threshold)
	case threshold == 1 && parts > 1:
		return nil, errors.New("shamir: threshold 1 with several parts would put the secret in every share")
	}
	xs, err := distinctXs(parts, rand)
	if err != nil {
		return nil, err
	}
	shares := make([][]byte, parts)
	for i := range shares {
		shares[i] = make([]byte, len(secret)+1)
		shares[i][len(secret)] = xs[i]
	}
	coeffs := make([]byte, threshold)
	defer clear(coeffs)
	for j, s := range secret {
		coeffs[0] = s
		if _, err := io.ReadFull(rand, coeffs[1:]); err != nil {
			return nil, fmt.Errorf("shamir: random coefficients: %w", err)
		}
		for i := range shares {
			shares[i][j] = eval(coeffs, xs[i])
		}
	}
	return shares, nil
}

// eval evaluates the polynomial with the given coefficients at x (Horner).
func eval(coeffs []byte, x byte) byte {
	var y byte
	for i := len(coeffs) - 1; i >= 0; i-- {
		y = mul(y, x) ^ coeffs[i]
	}
	return y
}

// distinctXs picks n distinct non-zero x coordinates: a random permutation
// of 1..255 (Fisher-Yates with rejection sampling), first n taken.
func distinctXs(n int, rand io.Reader) ([]byte, error) {
	all := make([]byte, 255)
	for i := range all {
		all[i] = byte(i + 1)
	}
	var b [1]byte
	for i := len(all) - 1; i > 0; i-- {
		bound := byte(i + 1) // pick j in [0, i]
		limit := 256 - 256%int(bound)
		for {
			if _, err := io.ReadFull(rand, b[:]); err != nil {
				return nil, fmt.Errorf("shamir: random x: %w", err)
			}
			if int(b[0]) < limit {
				break
			}
		}
		j := int(b[0]) % int(bound)
		all[i], all[j] = all[j], all[i]
	}
	return all[:n], nil
}

// Combine recovers the secret from shares made by Split. Given fewer than the
// threshold, or shares of different splits, it returns a wrong secret: the
// shares carry no check. Errors: no shares, shares of different or too small
// lengths, an x coordinate of 0, duplicate x coordinates.
func Combine(shares [][]byte) ([]byte, error) {
	if len(shares) == 0 {
		return nil, errors.New("shamir: no shares")
	}
	if len(shares) > 255 {
		return nil, errors.New("shamir: more than 255 shares")
	}
	n := len(shares[0])
	if n < 2 {
		return nil, errors.New("shamir: share too short")
	}
	xs := make([]byte, len(shares))
	seen := [256]bool{}
	for i, s := range shares {
		if len(s) != n {
			return nil, errors.New("shamir: shares have different lengths")
		}
		x := s[n-1]
		if x == 0 {
			return nil, errors.New("shamir: share with x coordinate 0")
		}
		if seen[x] {
			return nil, errors.New("shamir: duplicate share")
		}
		seen[x] = true
		xs[i] = x
	}
	// Lagrange basis at 0: l_i = prod_{j != i} x_j / (x_j - x_i); in GF(2^8)
	// subtraction is xor.
	basis := make([]byte, len(shares))
	for i := range shares {
		num, den := byte(1), byte(1)
		for j := range shares {
			if i == j {
				continue
			}
			num = mul(num, xs[j])
			den = mul(den, xs[j]^xs[i])
		}
		basis[i] = mul(num, inv(den))
	}
	secret := make([]byte, n-1)
	for k := range secret {
		var v byte
		for i, s := range shares {
			v ^= mul(s[k], basis[i])
		}
		secret[k] = v
	}
	return secret, nil
}
