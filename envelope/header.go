package envelope

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
	"golang.org/x/crypto/cryptobyte"
)

// The header layout, version 1. FORMAT.md is the normative description;
// these constants are the same numbers.
const (
	// magic opens every geoseal object. It never changes: a reader that does
	// not find it reports ErrNotGeoseal.
	magic = "geoseal\x00"

	// formatVersion is the only version this package writes and reads. Any
	// change to the header layout, to a derivation or to the body binding
	// bumps it (the vectors in testdata/vectors pin version 1).
	formatVersion = 1

	// headerPrefixLen is how many bytes from the start of an object
	// headerLength needs: magic, version and the total header length.
	headerPrefixLen = len(magic) + 1 + 4

	// MaxHeaderSize bounds the encoded header, so a reader never allocates
	// more than this for a header whatever it claims.
	MaxHeaderSize = 64 << 10

	// MaxWrappedKeys is the hard limit on the wrapped keys one header can
	// list. DecryptOptions.MaxWrappedKeys lowers it (keyring.
	// DefaultMaxWrappedKeys by default).
	MaxWrappedKeys = 64

	// Limits on the fields of one wrapped key.
	maxProviderLen   = 255  // uint8 length, at least 1
	maxKeyIDLen      = 1024 // uint16 length
	maxAlgorithmLen  = 255  // uint8 length
	maxWrappedDEKLen = 2048 // uint16 length, at least 1 (RSA-16384 fits)

	// Chunk sizes are powers of two, stored as their base-2 logarithm.
	minChunkLog2 = 12 // 4 KiB
	maxChunkLog2 = 24 // 16 MiB

	// Wire codes of the body suites.
	suiteCodeAES256GCM        = 0x01
	suiteCodeChaCha20Poly1305 = 0x02

	messageIDLen  = 32
	commitmentLen = 32
	tagLen        = sha256.Size
	dekLen        = 32

	// fixedLen covers magic, version, length, suite, chunk size, message id
	// and commitment; the context length prefix starts right after.
	fixedLen = headerPrefixLen + 1 + 1 + messageIDLen + commitmentLen
	// minHeaderLen is the shortest well-formed header: an empty context
	// and one wrapped key with one-byte provider and ciphertext.
	minHeaderLen = fixedLen + 2 + 2 + 1 + (1 + 1 + 2 + 1 + 2 + 1) + tagLen
)

// HKDF-SHA-256 info strings. Each derived value has its own, so no output
// can stand in for another.
const (
	infoContentKey = "geoseal/v1 content key"
	infoHeaderKey  = "geoseal/v1 header key"
	infoCommitment = "geoseal/v1 key commitment"
)

// A Header describes a geoseal object: everything before the encrypted body.
//
// Inspect returns a Header without any key, so its fields are unauthenticated
// there: fit for display and audit, not for decisions. Decrypt trusts them
// only after the commitment and the header tag have been verified.
type Header struct {
	// Version is the format version, 1.
	Version int
	// Suite is the AEAD that seals the body's chunks.
	Suite stream.Suite
	// ChunkSize is the plaintext size of every chunk but the last.
	ChunkSize int
	// MessageID is the object's random 256-bit identifier, the HKDF salt
	// of its keys.
	MessageID [32]byte
	// Context is the encryption context, authenticated by the header tag.
	Context keyring.Context
	// WrappedKeys are the object's data key, wrapped for each recipient.
	WrappedKeys []keyring.WrappedKey
	// Commitment is the HKDF commitment to the data key.
	Commitment [32]byte
	// Size is the length of the encoded header in bytes: the body starts
	// at this offset.
	Size int
}

// headerLength returns the total length of the header that starts with
// prefix, which must hold at least headerPrefixLen bytes. The result is
// between minHeaderLen and MaxHeaderSize.
func headerLength(prefix []byte) (int, error) {
	if len(prefix) < headerPrefixLen {
		if len(prefix) == 0 ||
			len(prefix) < len(magic) && !bytes.HasPrefix([]byte(magic), prefix) ||
			len(prefix) >= len(magic) && string(prefix[:len(magic)]) != magic {
			return 0, ErrNotGeoseal
		}
		return 0, fmt.Errorf("%w: truncated after %d bytes: %w", ErrInvalidHeader, len(prefix), io.ErrUnexpectedEOF)
	}
	if string(prefix[:len(magic)]) != magic {
		return 0, ErrNotGeoseal
	}
	if v := prefix[len(magic)]; v != formatVersion {
		return 0, fmt.Errorf("%w: %d (this package reads version %d)", ErrUnsupportedVersion, v, formatVersion)
	}
	n := binary.BigEndian.Uint32(prefix[len(magic)+1:])
	if n < uint32(minHeaderLen) || n > MaxHeaderSize {
		return 0, fmt.Errorf("%w: header length %d outside %d..%d", ErrInvalidHeader, n, minHeaderLen, MaxHeaderSize)
	}
	return int(n), nil
}

// readHeader reads exactly one header from r, leaving r at the first byte
// of the body. It never allocates more than MaxHeaderSize.
func readHeader(r io.Reader) ([]byte, error) {
	var prefix [headerPrefixLen]byte
	n, err := io.ReadFull(r, prefix[:])
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if _, err := headerLength(prefix[:n]); err != nil {
				return nil, err
			}
		}
		return nil, fmt.Errorf("envelope: reading header: %w", err)
	}
	size, err := headerLength(prefix[:])
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, size)
	copy(hdr, prefix[:])
	if _, err := io.ReadFull(r, hdr[headerPrefixLen:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: truncated: %w", ErrInvalidHeader, io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("envelope: reading header: %w", err)
	}
	return hdr, nil
}

// readHeaderAt is readHeader for an io.ReaderAt of the given size.
func readHeaderAt(r io.ReaderAt, size int64) ([]byte, error) {
	if size < 0 {
		return nil, fmt.Errorf("envelope: negative size %d", size)
	}
	return readHeader(io.NewSectionReader(r, 0, size))
}

// Inspect reads the header of the object in src and returns it without
// unwrapping anything: what a human or an auditor may see of an object
// without its keys. The fields are NOT authenticated (see Header). On
// success src is positioned at the first byte of the body.
func Inspect(src io.Reader) (*Header, error) {
	raw, err := readHeader(src)
	if err != nil {
		return nil, err
	}
	h, _, err := parseHeader(raw)
	return h, err
}

// parseHeader decodes a complete encoded header. It checks structure and
// bounds only; the tag is returned for the caller to verify once it holds
// the header key.
func parseHeader(raw []byte) (*Header, [tagLen]byte, error) {
	var tag [tagLen]byte
	size, err := headerLength(raw)
	if err != nil {
		return nil, tag, err
	}
	if len(raw) != size {
		return nil, tag, fmt.Errorf("%w: %d bytes given, header length is %d", ErrInvalidHeader, len(raw), size)
	}
	invalid := func(what string) error { return fmt.Errorf("%w: %s", ErrInvalidHeader, what) }

	h := &Header{Version: formatVersion, Size: size}
	s := cryptobyte.String(raw[headerPrefixLen : size-tagLen])
	copy(tag[:], raw[size-tagLen:])

	var suiteCode, chunkLog2 uint8
	if !s.ReadUint8(&suiteCode) || !s.ReadUint8(&chunkLog2) {
		return nil, tag, invalid("truncated")
	}
	suite, err := suiteFromCode(suiteCode)
	if err != nil {
		return nil, tag, err
	}
	h.Suite = suite
	if chunkLog2 < minChunkLog2 || chunkLog2 > maxChunkLog2 {
		return nil, tag, invalid(fmt.Sprintf("chunk size 2^%d outside 2^%d..2^%d", chunkLog2, minChunkLog2, maxChunkLog2))
	}
	h.ChunkSize = 1 << chunkLog2
	if !s.CopyBytes(h.MessageID[:]) || !s.CopyBytes(h.Commitment[:]) {
		return nil, tag, invalid("truncated")
	}

	var ec cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&ec) {
		return nil, tag, invalid("truncated encryption context")
	}
	if err := h.Context.UnmarshalBinary(ec); err != nil {
		return nil, tag, fmt.Errorf("%w: %w", ErrInvalidHeader, err)
	}

	var count uint8
	if !s.ReadUint8(&count) {
		return nil, tag, invalid("truncated")
	}
	if count == 0 || count > MaxWrappedKeys {
		return nil, tag, invalid(fmt.Sprintf("%d wrapped keys, want 1..%d", count, MaxWrappedKeys))
	}
	// count is at most MaxWrappedKeys, so this allocation is bounded.
	h.WrappedKeys = make([]keyring.WrappedKey, count)
	for i := range h.WrappedKeys {
		var provider, keyID, alg, ct cryptobyte.String
		if !s.ReadUint8LengthPrefixed(&provider) || !s.ReadUint16LengthPrefixed(&keyID) ||
			!s.ReadUint8LengthPrefixed(&alg) || !s.ReadUint16LengthPrefixed(&ct) {
			return nil, tag, invalid(fmt.Sprintf("truncated wrapped key %d", i))
		}
		if err := checkWrappedKey(len(provider), len(keyID), len(alg), len(ct)); err != nil {
			return nil, tag, fmt.Errorf("%w: wrapped key %d: %w", ErrInvalidHeader, i, err)
		}
		h.WrappedKeys[i] = keyring.WrappedKey{
			Provider:   string(provider),
			KeyID:      string(keyID),
			Algorithm:  string(alg),
			Ciphertext: bytes.Clone(ct),
		}
	}
	if !s.Empty() {
		return nil, tag, invalid(fmt.Sprintf("%d bytes before the tag do not belong to any field", len(s)))
	}
	return h, tag, nil
}

// checkWrappedKey enforces the limits on the fields of one wrapped key.
func checkWrappedKey(provider, keyID, alg, ciphertext int) error {
	switch {
	case provider < 1 || provider > maxProviderLen:
		return fmt.Errorf("provider of %d bytes, want 1..%d", provider, maxProviderLen)
	case keyID > maxKeyIDLen:
		return fmt.Errorf("key id of %d bytes, at most %d", keyID, maxKeyIDLen)
	case alg > maxAlgorithmLen:
		return fmt.Errorf("algorithm of %d bytes, at most %d", alg, maxAlgorithmLen)
	case ciphertext < 1 || ciphertext > maxWrappedDEKLen:
		return fmt.Errorf("ciphertext of %d bytes, want 1..%d", ciphertext, maxWrappedDEKLen)
	}
	return nil
}

// headerFields are the fields of a header that a rewrap keeps.
type headerFields struct {
	suite      stream.Suite
	chunkSize  int
	messageID  [messageIDLen]byte
	commitment [commitmentLen]byte
	context    keyring.Context
}

// buildHeader encodes a header with the given wrapped keys and appends its
// tag, computed with headerKey.
func buildHeader(f *headerFields, keys []keyring.WrappedKey, headerKey []byte) ([]byte, error) {
	code, err := suiteCode(f.suite)
	if err != nil {
		return nil, err
	}
	log2, err := chunkLog2(f.chunkSize)
	if err != nil {
		return nil, err
	}
	ec, err := f.context.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	if len(keys) == 0 || len(keys) > MaxWrappedKeys {
		return nil, fmt.Errorf("envelope: the wrapper returned %d wrapped keys, want 1..%d: %w", len(keys), MaxWrappedKeys, keyring.ErrTooManyKeys)
	}
	for i, k := range keys {
		if err := checkWrappedKey(len(k.Provider), len(k.KeyID), len(k.Algorithm), len(k.Ciphertext)); err != nil {
			return nil, fmt.Errorf("envelope: wrapped key %d (%s) does not fit the header: %s", i, k.Provider, err)
		}
	}

	var b cryptobyte.Builder
	b.AddBytes([]byte(magic))
	b.AddUint8(formatVersion)
	b.AddUint32(0) // total length, patched below
	b.AddUint8(code)
	b.AddUint8(log2)
	b.AddBytes(f.messageID[:])
	b.AddBytes(f.commitment[:])
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(ec) })
	b.AddUint8(uint8(len(keys)))
	for _, k := range keys {
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(k.Provider)) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(k.KeyID)) })
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(k.Algorithm)) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(k.Ciphertext) })
	}
	raw, err := b.Bytes()
	if err != nil {
		// Only a length prefix overflow gets here: the context is larger
		// than a uint16 can count.
		return nil, fmt.Errorf("envelope: header field too long: %w", err)
	}
	if len(raw)+tagLen > MaxHeaderSize {
		return nil, fmt.Errorf("envelope: header of %d bytes exceeds the limit of %d (too many or too large wrapped keys, or too large a context)", len(raw)+tagLen, MaxHeaderSize)
	}
	binary.BigEndian.PutUint32(raw[len(magic)+1:], uint32(len(raw)+tagLen))
	return append(raw, headerTag(headerKey, raw)...), nil
}

// headerTag is HMAC-SHA-256 under the header key of every header byte that
// precedes the tag.
func headerTag(headerKey, headerWithoutTag []byte) []byte {
	m := hmac.New(sha256.New, headerKey)
	m.Write(headerWithoutTag)
	return m.Sum(nil)
}

// bodyAAD is the additional data bound into every chunk of the body: the
// magic, version, suite code, chunk size and message id. It leaves out the
// header length and the wrapped keys, which a rewrap changes, and the
// context, which the header tag already authenticates.
func bodyAAD(suite stream.Suite, chunkSize int, messageID [messageIDLen]byte) ([]byte, error) {
	code, err := suiteCode(suite)
	if err != nil {
		return nil, err
	}
	log2, err := chunkLog2(chunkSize)
	if err != nil {
		return nil, err
	}
	aad := make([]byte, 0, len(magic)+3+messageIDLen)
	aad = append(aad, magic...)
	aad = append(aad, formatVersion, code, log2)
	return append(aad, messageID[:]...), nil
}

// objectKeys are the values derived from an object's data key.
type objectKeys struct {
	content    []byte // the stream's 32-byte content key
	header     []byte // the HMAC-SHA-256 key of the header tag
	commitment []byte // stored in the header, compared on open
}

// deriveKeys derives an object's keys from its data key with HKDF-SHA-256,
// salted with the message id.
func deriveKeys(dek []byte, messageID [messageIDLen]byte) (*objectKeys, error) {
	if len(dek) != dekLen {
		return nil, fmt.Errorf("envelope: data key of %d bytes, want %d", len(dek), dekLen)
	}
	var k objectKeys
	var err error
	if k.content, err = hkdf.Key(sha256.New, dek, messageID[:], infoContentKey, 32); err != nil {
		return nil, fmt.Errorf("envelope: deriving the content key: %w", err)
	}
	if k.header, err = hkdf.Key(sha256.New, dek, messageID[:], infoHeaderKey, 32); err != nil {
		return nil, fmt.Errorf("envelope: deriving the header key: %w", err)
	}
	if k.commitment, err = hkdf.Key(sha256.New, dek, messageID[:], infoCommitment, commitmentLen); err != nil {
		return nil, fmt.Errorf("envelope: deriving the key commitment: %w", err)
	}
	return &k, nil
}

// zero overwrites b, for key material no longer needed.
func zero(b []byte) { clear(b) }

func suiteCode(s stream.Suite) (uint8, error) {
	switch s {
	case stream.AES256GCM:
		return suiteCodeAES256GCM, nil
	case stream.ChaCha20Poly1305:
		return suiteCodeChaCha20Poly1305, nil
	}
	return 0, fmt.Errorf("%w: %v", ErrUnsupportedSuite, s)
}

func suiteFromCode(c uint8) (stream.Suite, error) {
	switch c {
	case suiteCodeAES256GCM:
		return stream.AES256GCM, nil
	case suiteCodeChaCha20Poly1305:
		return stream.ChaCha20Poly1305, nil
	}
	return 0, fmt.Errorf("%w: code 0x%02x", ErrUnsupportedSuite, c)
}

// chunkLog2 returns the base-2 logarithm of a valid chunk size.
func chunkLog2(size int) (uint8, error) {
	if size < 1<<minChunkLog2 || size > 1<<maxChunkLog2 || size&(size-1) != 0 {
		return 0, fmt.Errorf("envelope: chunk size %d is not a power of two between %d and %d", size, 1<<minChunkLog2, 1<<maxChunkLog2)
	}
	return uint8(bits.TrailingZeros(uint(size))), nil
}
