// Package keywrap implements the AES key wrap algorithms of RFC 3394 (KW, the
// JOSE "A128KW"/"A192KW"/"A256KW" and NIST SP 800-38F "KW") and RFC 5649 (KWP,
// PKCS#11 CKM_AES_KEY_WRAP_PAD, SP 800-38F "KWP").
//
// Key wrap is a deterministic authenticated encryption for key material: the
// same KEK and key always wrap to the same bytes, and unwrapping checks a
// 64-bit integrity value. It needs no nonce, which is why HSMs and Key Vault
// use it to export and import keys. It is not a general-purpose AEAD: use it
// for high-entropy keys only.
//
// Both algorithms are implemented here, on the crypto/aes block cipher. That
// does not make them part of Go's FIPS 140 validated module: the module
// validates AES, not this package's key wrap mode around it. So when the
// process runs with GODEBUG=fips140=only, Wrap, Unwrap, WrapPad and UnwrapPad
// refuse with [ErrNotApproved] before any work; wrap and unwrap in Azure Key
// Vault, Managed HSM or a PKCS #11 HSM instead, whose key wrap runs inside
// their own validated modules. [TestHSM] is the one way past the refusal, for
// test servers that play such a remote HSM in the test process.
//
// Unwrap and UnwrapPad verify the integrity value in constant time and return
// no bytes when it does not match. Inputs longer than [MaxLen] are refused
// before any work is done: key wrap exists for keys, and a bound keeps a
// hostile input from costing unbounded CPU.
package keywrap

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/geoseal/geoseal/internal/fips"
)

// MaxLen is the largest plaintext, in bytes, that Wrap and WrapPad accept; a
// ciphertext may be 8 bytes longer. Key material is at most a few hundred
// bytes (an RSA private key); 64 KiB leaves room without leaving the work
// unbounded.
const MaxLen = 1 << 16

// Errors returned by this package. They are matched with errors.Is; the
// returned errors add detail such as the offending length.
var (
	// ErrKEKSize is returned when the key-encryption key is not 16, 24 or
	// 32 bytes long.
	ErrKEKSize = errors.New("keywrap: key-encryption key must be 16, 24 or 32 bytes")
	// ErrPlaintextLength is returned by Wrap and WrapPad for a plaintext they
	// cannot wrap: KW takes a multiple of 8 bytes, at least 16; KWP takes 1
	// to MaxLen bytes.
	ErrPlaintextLength = errors.New("keywrap: invalid plaintext length")
	// ErrCiphertextLength is returned by Unwrap and UnwrapPad for a
	// ciphertext whose length no wrap could have produced.
	ErrCiphertextLength = errors.New("keywrap: invalid ciphertext length")
	// ErrIntegrity is returned by Unwrap and UnwrapPad when the integrity
	// check fails: wrong KEK, corrupted or forged ciphertext, or (for KWP) a
	// malformed length or padding. No bytes are returned with it.
	ErrIntegrity = errors.New("keywrap: integrity check failed")
	// ErrNotApproved is returned by every function of this package when
	// the process runs with GODEBUG=fips140=only: key wrap implemented
	// here is outside Go's validated module. It matches the other
	// packages' ErrNotApproved and errors.ErrUnsupported.
	ErrNotApproved = fips.NotApproved("keywrap: AES key wrap is not implemented in the FIPS 140 module, refused in FIPS 140-only mode")
)

// refuseInFIPSOnly returns ErrNotApproved, naming alg, in FIPS 140-only mode.
func refuseInFIPSOnly(alg string) error {
	if fips140.Enforced() {
		return fmt.Errorf("%w (%s)", ErrNotApproved, alg)
	}
	return nil
}

// defaultIV is the RFC 3394 section 2.2.3.1 initial value.
var defaultIV = [8]byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}

// aivPrefix is the first half of the RFC 5649 alternative initial value; the
// second half is the plaintext length (the "message length indicator").
var aivPrefix = [4]byte{0xA6, 0x59, 0x59, 0xA6}

func newBlock(kek []byte) (cipher.Block, error) {
	switch len(kek) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("%w: got %d bytes", ErrKEKSize, len(kek))
	}
	return aes.NewCipher(kek)
}

// Wrap wraps plaintext under kek with RFC 3394 key wrap and the default
// initial value A6A6A6A6A6A6A6A6, returning len(plaintext)+8 bytes.
//
// The plaintext must be a multiple of 8 bytes and at least 16 bytes long (NIST
// SP 800-38F; the single-block case of RFC 3394 section 2 is not supported),
// and at most MaxLen. kek must be an AES key of 16, 24 or 32 bytes. In FIPS
// 140-only mode it returns ErrNotApproved.
func Wrap(kek, plaintext []byte) ([]byte, error) {
	if err := refuseInFIPSOnly("KW"); err != nil {
		return nil, err
	}
	return wrapKW(kek, plaintext)
}

func wrapKW(kek, plaintext []byte) ([]byte, error) {
	if len(plaintext) < 16 || len(plaintext)%8 != 0 || len(plaintext) > MaxLen {
		return nil, fmt.Errorf("%w: KW needs a multiple of 8 bytes from 16 to %d, got %d", ErrPlaintextLength, MaxLen, len(plaintext))
	}
	b, err := newBlock(kek)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 8+len(plaintext))
	copy(out[8:], plaintext)
	wrap(b, defaultIV, out)
	return out, nil
}

// Unwrap reverses Wrap. It returns ErrIntegrity, and no plaintext, when the
// integrity check fails; the check runs in constant time. In FIPS 140-only
// mode it returns ErrNotApproved.
func Unwrap(kek, ciphertext []byte) ([]byte, error) {
	if err := refuseInFIPSOnly("KW"); err != nil {
		return nil, err
	}
	return unwrapKW(kek, ciphertext)
}

func unwrapKW(kek, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) < 24 || len(ciphertext)%8 != 0 || len(ciphertext) > MaxLen+8 {
		return nil, fmt.Errorf("%w: KW ciphertexts are a multiple of 8 bytes from 24 to %d, got %d", ErrCiphertextLength, MaxLen+8, len(ciphertext))
	}
	b, err := newBlock(kek)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, len(ciphertext))
	copy(buf, ciphertext)
	a := unwrap(b, buf)
	if subtle.ConstantTimeCompare(a[:], defaultIV[:]) != 1 {
		clear(buf)
		return nil, ErrIntegrity
	}
	return buf[8:], nil
}

// WrapPad wraps plaintext under kek with RFC 5649 key wrap with padding. Any
// plaintext length from 1 to MaxLen bytes is accepted; the result is the
// length rounded up to a multiple of 8, plus 8.
func WrapPad(kek, plaintext []byte) ([]byte, error) {
	if err := refuseInFIPSOnly("KWP"); err != nil {
		return nil, err
	}
	return wrapKWP(kek, plaintext)
}

func wrapKWP(kek, plaintext []byte) ([]byte, error) {
	if len(plaintext) < 1 || len(plaintext) > MaxLen {
		return nil, fmt.Errorf("%w: KWP needs 1 to %d bytes, got %d", ErrPlaintextLength, MaxLen, len(plaintext))
	}
	b, err := newBlock(kek)
	if err != nil {
		return nil, err
	}
	padded := (len(plaintext) + 7) / 8 * 8
	var aiv [8]byte
	copy(aiv[:4], aivPrefix[:])
	binary.BigEndian.PutUint32(aiv[4:], uint32(len(plaintext)))

	out := make([]byte, 8+padded) // zero padding comes from make
	copy(out[8:], plaintext)
	if padded == 8 {
		// RFC 5649 section 4.1: a single 64-bit block is encrypted with
		// the AIV as one AES block, in ECB mode.
		copy(out[:8], aiv[:])
		b.Encrypt(out, out)
		return out, nil
	}
	wrap(b, aiv, out)
	return out, nil
}

// UnwrapPad reverses WrapPad. It returns ErrIntegrity, and no plaintext, when
// the integrity value, the encoded length or the padding is wrong; those
// checks run in constant time with respect to the unwrapped bytes. In FIPS
// 140-only mode it returns ErrNotApproved.
func UnwrapPad(kek, ciphertext []byte) ([]byte, error) {
	if err := refuseInFIPSOnly("KWP"); err != nil {
		return nil, err
	}
	return unwrapKWP(kek, ciphertext)
}

func unwrapKWP(kek, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) < 16 || len(ciphertext)%8 != 0 || len(ciphertext) > MaxLen+8 {
		return nil, fmt.Errorf("%w: KWP ciphertexts are a multiple of 8 bytes from 16 to %d, got %d", ErrCiphertextLength, MaxLen+8, len(ciphertext))
	}
	b, err := newBlock(kek)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, len(ciphertext))
	copy(buf, ciphertext)
	var a [8]byte
	if len(buf) == 16 {
		b.Decrypt(buf, buf)
		copy(a[:], buf[:8])
	} else {
		a = unwrap(b, buf)
	}

	// All checks are folded into ok without branching on secret data.
	ok := subtle.ConstantTimeCompare(a[:4], aivPrefix[:])
	n := uint64(len(buf) - 8) // padded plaintext length, a multiple of 8
	mli := uint64(binary.BigEndian.Uint32(a[4:]))
	// n-8 < mli <= n. All values are below 2^33, so the top bit of a
	// difference is its sign.
	greater := int((n - 8 - mli) >> 63)    // 1 if mli > n-8
	notAbove := int(1 ^ ((n - mli) >> 63)) // 1 if mli <= n
	ok &= greater & notAbove
	// Every byte of the last block at or beyond mli must be zero.
	var acc byte
	for i := uint64(0); i < 8; i++ {
		pos := n - 8 + i
		beyond := byte((mli - pos - 1) >> 63) // 1 if pos >= mli
		acc |= buf[8+pos] & -beyond
	}
	ok &= subtle.ConstantTimeByteEq(acc, 0)
	if ok != 1 {
		clear(buf)
		return nil, ErrIntegrity
	}
	return buf[8 : 8+mli], nil
}

// wrap runs the RFC 3394 wrapping process W in place on buf, whose first 8
// bytes are overwritten with the result A and whose remaining bytes hold the
// plaintext blocks R[1..n] on entry and the wrapped blocks on return.
func wrap(b cipher.Block, iv [8]byte, buf []byte) {
	n := uint64(len(buf)/8 - 1)
	var block [16]byte
	copy(block[:8], iv[:])
	for j := uint64(0); j < 6; j++ {
		for i := uint64(1); i <= n; i++ {
			r := buf[8*i : 8*i+8]
			copy(block[8:], r)
			b.Encrypt(block[:], block[:])
			t := n*j + i
			binary.BigEndian.PutUint64(block[:8], binary.BigEndian.Uint64(block[:8])^t)
			copy(r, block[8:])
		}
	}
	copy(buf[:8], block[:8])
	clear(block[:])
}

// unwrap runs the RFC 3394 unwrapping process W⁻¹ in place on buf and returns
// the recovered integrity value A; buf[8:] then holds the plaintext blocks.
func unwrap(b cipher.Block, buf []byte) [8]byte {
	n := uint64(len(buf)/8 - 1)
	var block [16]byte
	copy(block[:8], buf[:8])
	for j := int64(5); j >= 0; j-- {
		for i := n; i >= 1; i-- {
			r := buf[8*i : 8*i+8]
			t := n*uint64(j) + i
			binary.BigEndian.PutUint64(block[:8], binary.BigEndian.Uint64(block[:8])^t)
			copy(block[8:], r)
			b.Decrypt(block[:], block[:])
			copy(r, block[8:])
		}
	}
	var a [8]byte
	copy(a[:], block[:8])
	clear(block[:])
	return a
}

// TestHSM is the key wrap of a remote HSM, played in the test process: its
// methods are Wrap, Unwrap, WrapPad and UnwrapPad without the FIPS 140-only
// refusal. It exists for internal/kvtest, which answers for Azure Key Vault
// and Managed HSM, whose key wraps run inside their own validated modules and
// so keep working when this process runs with GODEBUG=fips140=only. Nothing
// that wraps real keys may use it.
type TestHSM struct{}

// Wrap is Wrap without the FIPS 140-only refusal.
func (TestHSM) Wrap(kek, plaintext []byte) ([]byte, error) { return wrapKW(kek, plaintext) }

// Unwrap is Unwrap without the FIPS 140-only refusal.
func (TestHSM) Unwrap(kek, ciphertext []byte) ([]byte, error) { return unwrapKW(kek, ciphertext) }

// WrapPad is WrapPad without the FIPS 140-only refusal.
func (TestHSM) WrapPad(kek, plaintext []byte) ([]byte, error) { return wrapKWP(kek, plaintext) }

// UnwrapPad is UnwrapPad without the FIPS 140-only refusal.
func (TestHSM) UnwrapPad(kek, ciphertext []byte) ([]byte, error) { return unwrapKWP(kek, ciphertext) }
