// Package transit is the pure cryptographic core of Warden's transit engine:
// named keys with numbered versions, their configuration rules (minimum
// versions, trimming, rotation and retirement on a schedule, exportability),
// and the operations applications call without holding a key — encrypt,
// decrypt, rewrap, data keys, sign, verify and HMAC — in the formats of
// Vault's transit engine with a "wdn:" prefix.
//
// # What it must not do
//
// transit does no I/O: no network, no files, no storage, no Raft, no clock
// and no global randomness. Time and entropy are passed in. A [Key] is a
// value the service loads, changes with the methods here and stores again
// (as JSON, encrypted by the barrier first); methods that change a key
// validate everything before changing anything, so a refused change leaves
// the key as it was. A Key is not safe for concurrent use while it is being
// changed; read-only operations (Encrypt, Decrypt, Sign, ...) may run
// concurrently with each other.
//
// Key material never appears in a String, GoString, log value, error or
// json.Marshal of a Key: the [Material] type shows "[redacted]". Only
// [Key.Marshal] writes it, in the stored form that exists to be encrypted
// by the barrier and stored; [Unmarshal] reads that form back.
//
// # Formats
//
// Ciphertexts, signatures and HMACs read "wdn:v<N>:<base64>", N being the
// key version in decimal without leading zeros and base64 the standard,
// padded alphabet (RFC 4648 section 4), parsed strictly.
//
//   - aes256-gcm96 and chacha20-poly1305: the payload is a 12-byte random
//     nonce, then the AEAD ciphertext and its 16-byte tag. The additional
//     data is "warden-transit/v1", 0x00, the key name, 0x00, N in decimal, so
//     a ciphertext of another key or version fails. Nonces are random, as
//     in Vault: keep well under 2^32 encryptions per version (rotate). With derived keys the
//     AEAD key is HKDF-SHA-256 (RFC 5869) of the version's key with no salt
//     and the request's context as info, as Vault derives keys.
//   - ed25519: Ed25519 (RFC 8032, pure, not prehashed) of the input.
//   - ecdsa-p256: ECDSA over P-256 of SHA-256(input), ASN.1 DER signature.
//   - rsa-3072: SHA-256 and, by default (as Vault), RSASSA-PSS with a salt
//     as long as the hash (32 bytes); verification accepts any PSS salt
//     length, as Vault's default "auto" does. "pkcs1v15" selects RSASSA-
//     PKCS1-v1_5.
//   - HMACs: HMAC-SHA-256 (RFC 2104) of the input under the version's key
//     for an hmac key; as in Vault, keys of every other type compute HMACs
//     too, each version with an HMAC key of its own.
//
// [Key.Export] returns material in the encodings of Vault's export
// endpoint, only for a key created exportable (public keys always).
//
// # Errors
//
// Errors are *errs.Error with code Invalid whose message names the field
// (for example "ciphertext: not base64"), except one: a ciphertext that
// parses but does not open says only [ErrCannotDecrypt], whatever the
// reason, so decryption is not an oracle. Verify reports a wrong signature
// or HMAC as false, not as an error.
package transit
