package csev2

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"fmt"
)

// opener authenticates and decrypts regions. It uses
// cipher.NewGCMWithRandomNonce only for its Open, which takes
// nonce || ciphertext || tag (the region layout) and is allowed in every
// FIPS 140 mode, whatever the nonce was.
type opener struct {
	aead      cipher.AEAD
	regionLen int64
}

func newOpener(cek []byte, regionLen int64) (*opener, error) {
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, err
	}
	return &opener{aead: aead, regionLen: regionLen}, nil
}

// open checks region index's position with oc (nil: no check), then
// authenticates and decrypts it into dst[:0]. region is
// nonce || ciphertext || tag. On failure nothing is written to dst that a
// caller would see: the returned slice is nil.
func (o *opener) open(dst, region []byte, index int64, oc *orderCheck) ([]byte, error) {
	if len(region) < Overhead {
		return nil, &RegionError{Index: index, Err: ErrTruncated}
	}
	if int64(len(region)) > o.regionLen+Overhead {
		// Only callers' bugs get here; regions are cut at regionLen.
		return nil, &RegionError{Index: index, Err: ErrAuthentication}
	}
	if err := oc.check(region[:nonceSize], uint64(index)); err != nil {
		return nil, &RegionError{Index: index, Err: err}
	}
	pt, err := o.aead.Open(dst[:0], nil, region, nil)
	if err != nil {
		return nil, &RegionError{Index: index, Err: ErrAuthentication}
	}
	return pt, nil
}

// sealer encrypts regions under counter nonces. Counter nonces need
// cipher.NewGCM, which FIPS 140-only mode refuses; the check comes first so
// that the refusal is a named error.
type sealer struct {
	aead   cipher.AEAD
	scheme NonceScheme
}

func newSealer(cek []byte, scheme NonceScheme) (*sealer, error) {
	if fips140.Enforced() {
		return nil, fmt.Errorf("%w: writing CSE v2 needs caller-chosen (counter) GCM nonces", ErrNotApproved)
	}
	if !scheme.valid() {
		return nil, fmt.Errorf("csev2: invalid nonce scheme %v", scheme)
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, scheme: scheme}, nil
}

// seal appends region index, sealed from plaintext, to dst.
func (s *sealer) seal(dst, plaintext []byte, index uint64) []byte {
	var n [nonceSize]byte
	s.scheme.nonce(&n, index)
	dst = append(dst, n[:]...)
	return s.aead.Seal(dst, n[:], plaintext, nil)
}

// plaintextSize returns the plaintext length of a ciphertext of size bytes.
// A last region too short to hold a nonce and a tag is ErrTruncated.
func plaintextSize(size, regionLen int64) (int64, error) {
	if size < 0 {
		return 0, fmt.Errorf("csev2: negative size %d", size)
	}
	full := size / (regionLen + Overhead)
	rest := size % (regionLen + Overhead)
	if rest != 0 && rest < Overhead {
		return 0, &RegionError{Index: full, Err: ErrTruncated}
	}
	n := full * regionLen
	if rest != 0 {
		n += rest - Overhead
	}
	return n, nil
}

// ciphertextSize returns the ciphertext length of n plaintext bytes.
func ciphertextSize(n, regionLen int64) int64 {
	regions := (n + regionLen - 1) / regionLen
	return n + regions*Overhead
}

// versionPrefix returns the protocol string NUL-padded to 8 bytes, the
// prefix wrapped together with the CEK.
func versionPrefix(protocol string) [versionPrefixSize]byte {
	var p [versionPrefixSize]byte
	copy(p[:], protocol)
	return p
}
