// Package format implements the geoseal object format, version 1: the
// header layout, its parsing and building, the keys derived from an
// object's data key, the key commitment and the header tag. FORMAT.md at
// the root of the module is the specification; this package is its only
// implementation, shared by package envelope (the public object API) and
// the Azure Blob client, which stores the header in a block of its own.
//
// The API is a handful of steps, each explicit about what it trusts:
//
//   - Reading bytes: ReadHeader (from an io.Reader, leaving it at the
//     body), ReadHeaderAt (from an io.ReaderAt), and HeaderLength, which
//     needs only the first PrefixSize bytes, for callers that fetch the
//     header themselves (a ranged GET). None reads or allocates more than
//     MaxHeaderSize bytes.
//   - Parse decodes a complete header and checks its structure and bounds.
//     Nothing in the result is authenticated: fit for display and
//     planning (Inspect, blob metadata), not for decisions.
//   - Unlock parses a header, unwraps its data key with a keyring and
//     verifies, in the order of FORMAT.md section 5, the FIPS 140 suite
//     check, the wrapped-key limit, the required context, the commitment
//     (in constant time) and the header tag. It returns the authenticated
//     Header and the Body that opens what follows it.
//   - New makes the header of a new object (a fresh data key wrapped by a
//     keyring, a fresh message id) and the Body that seals what follows it.
//     Rewrap makes a new header for the same body with other wrapped keys.
//   - A Body is the content key and the stream.Options (chunk size, suite,
//     body AAD) of package stream. Its key belongs to the caller, who
//     zeroes it (Body.Zero) once the stream is set up: package stream
//     keeps no copy of it. BodyError classifies what a stream returns.
//   - SuiteCode, SuiteFromCode and CheckChunkSize give the wire codes and
//     bounds that blob metadata records, so that metadata is checked with
//     the same rules as the header.
//   - DeriveKeys and Build are the primitives underneath, exported for
//     tests that craft objects (a commitment to one key, a tag with
//     another) and for re-encoding.
//
// The errors are the sentinels package envelope exports as its own (it
// declares them as these values), so their messages start with
// "envelope:": that is where users meet them.
package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
	"golang.org/x/crypto/cryptobyte"
)

// The header layout, version 1. FORMAT.md section 2 is the normative
// description; these are the same numbers.
const (
	// magic opens every geoseal object. It never changes: a reader that does
	// not find it reports ErrNotGeoseal.
	magic = "geoseal\x00"

	// Version is the only format version this package writes and reads.
	// Any change to the header layout, to a derivation or to the body
	// binding bumps it (the vectors in testdata/vectors pin version 1).
	Version = 1

	// PrefixSize is how many bytes from the start of an object
	// HeaderLength needs: magic, version and the total header length.
	PrefixSize = len(magic) + 1 + 4

	// MaxHeaderSize bounds the encoded header, so a reader never allocates
	// more than this for a header whatever it claims.
	MaxHeaderSize = 64 << 10

	// MinHeaderSize is the shortest well-formed header: an empty context
	// and one wrapped key with a one-byte provider and ciphertext.
	MinHeaderSize = fixedLen + 2 + 2 + 1 + (1 + 1 + 2 + 1 + 2 + 1) + TagSize

	// MaxWrappedKeys is the hard limit on the wrapped keys one header can
	// list; UnlockOptions.MaxWrappedKeys lowers it.
	MaxWrappedKeys = 64

	// MinChunkSize and MaxChunkSize bound the chunk size, a power of two
	// stored as its base-2 logarithm. They are those of package stream.
	MinChunkSize = 1 << minChunkLog2
	MaxChunkSize = 1 << maxChunkLog2

	// MessageIDSize, CommitmentSize and TagSize are the sizes of the fixed
	// fields; DataKeySize is that of the data key.
	MessageIDSize  = 32
	CommitmentSize = 32
	TagSize        = 32
	DataKeySize    = 32

	minChunkLog2 = 12 // 4 KiB
	maxChunkLog2 = 24 // 16 MiB

	// Limits on the fields of one wrapped key.
	maxProviderLen   = 255  // uint8 length, at least 1
	maxKeyIDLen      = 1024 // uint16 length
	maxAlgorithmLen  = 255  // uint8 length
	maxWrappedDEKLen = 2048 // uint16 length, at least 1 (RSA-16384 fits)

	// Wire codes of the body suites.
	suiteCodeAES256GCM        = 0x01
	suiteCodeChaCha20Poly1305 = 0x02

	// fixedLen covers magic, version, length, suite, chunk size, message id
	// and commitment; the context length prefix starts right after.
	fixedLen = PrefixSize + 1 + 1 + MessageIDSize + CommitmentSize
)

// The errors of the format, matched with errors.Is. Package envelope
// exports each as its own (envelope.ErrNotGeoseal is ErrNotGeoseal...), and
// documents them there.
var (
	ErrNotGeoseal         = errors.New("envelope: not a geoseal object")
	ErrUnsupportedVersion = fmt.Errorf("envelope: unsupported format version: %w", errors.ErrUnsupported)
	ErrUnsupportedSuite   = fmt.Errorf("envelope: unsupported cipher suite: %w", errors.ErrUnsupported)
	ErrInvalidHeader      = errors.New("envelope: invalid header")
	ErrCommitment         = errors.New("envelope: data key does not match the header's key commitment")
	ErrHeaderTampered     = errors.New("envelope: header authentication failed")
	ErrBodyTampered       = errors.New("envelope: body authentication failed")
	ErrContextMismatch    = errors.New("envelope: encryption context does not match the required pairs")
)

// A Header is the decoded header of an object. After Parse its fields are
// not authenticated; after Unlock they are.
type Header struct {
	// Suite is the AEAD that seals the body's chunks.
	Suite stream.Suite
	// ChunkSize is the plaintext size of every chunk but the last.
	ChunkSize int
	// MessageID is the object's random identifier, the HKDF salt of its
	// keys.
	MessageID [MessageIDSize]byte
	// Commitment is the HKDF commitment to the data key.
	Commitment [CommitmentSize]byte
	// Context is the encryption context, authenticated by the tag.
	Context keyring.Context
	// WrappedKeys are the object's data key, wrapped for each recipient.
	WrappedKeys []keyring.WrappedKey
	// Size is the length of the encoded header in bytes: the body starts
	// at this offset. Parse sets it; Build ignores it.
	Size int
	// Tag is the header tag as read by Parse (Unlock verifies it); Build
	// computes its own.
	Tag [TagSize]byte
}

// HeaderLength returns the total length of the header that starts with
// prefix, which must hold at least PrefixSize bytes (a shorter prefix
// fails with ErrNotGeoseal or ErrInvalidHeader, whichever it already
// shows). The result is between MinHeaderSize and MaxHeaderSize.
func HeaderLength(prefix []byte) (int, error) {
	if len(prefix) < PrefixSize {
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
	if v := prefix[len(magic)]; v != Version {
		return 0, fmt.Errorf("%w: %d (this package reads version %d)", ErrUnsupportedVersion, v, Version)
	}
	n := binary.BigEndian.Uint32(prefix[len(magic)+1:])
	if n < uint32(MinHeaderSize) || n > MaxHeaderSize {
		return 0, fmt.Errorf("%w: header length %d outside %d..%d", ErrInvalidHeader, n, MinHeaderSize, MaxHeaderSize)
	}
	return int(n), nil
}

// ReadHeader reads exactly one encoded header from r, leaving r at the
// first byte of the body. It never allocates more than MaxHeaderSize
// bytes, and checks only the prefix (HeaderLength): Parse or Unlock the
// result.
func ReadHeader(r io.Reader) ([]byte, error) {
	var prefix [PrefixSize]byte
	n, err := io.ReadFull(r, prefix[:])
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if _, err := HeaderLength(prefix[:n]); err != nil {
				return nil, err
			}
		}
		return nil, fmt.Errorf("envelope: reading header: %w", err)
	}
	size, err := HeaderLength(prefix[:])
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, size)
	copy(hdr, prefix[:])
	if _, err := io.ReadFull(r, hdr[PrefixSize:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: truncated: %w", ErrInvalidHeader, io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("envelope: reading header: %w", err)
	}
	return hdr, nil
}

// ReadHeaderAt is ReadHeader for the object of the given size in r.
func ReadHeaderAt(r io.ReaderAt, size int64) ([]byte, error) {
	if size < 0 {
		return nil, fmt.Errorf("envelope: negative size %d", size)
	}
	return ReadHeader(io.NewSectionReader(r, 0, size))
}

// Parse decodes a complete encoded header (exactly Header.Size bytes). It
// checks structure and bounds only; the commitment and the tag are left
// for Unlock, which holds the keys.
func Parse(raw []byte) (*Header, error) {
	size, err := HeaderLength(raw)
	if err != nil {
		return nil, err
	}
	if len(raw) != size {
		return nil, fmt.Errorf("%w: %d bytes given, header length is %d", ErrInvalidHeader, len(raw), size)
	}
	invalid := func(what string) error { return fmt.Errorf("%w: %s", ErrInvalidHeader, what) }

	h := &Header{Size: size}
	s := cryptobyte.String(raw[PrefixSize : size-TagSize])
	copy(h.Tag[:], raw[size-TagSize:])

	var suiteCode, chunkLog2 uint8
	if !s.ReadUint8(&suiteCode) || !s.ReadUint8(&chunkLog2) {
		return nil, invalid("truncated")
	}
	if h.Suite, err = SuiteFromCode(suiteCode); err != nil {
		return nil, err
	}
	if chunkLog2 < minChunkLog2 || chunkLog2 > maxChunkLog2 {
		return nil, invalid(fmt.Sprintf("chunk size 2^%d outside 2^%d..2^%d", chunkLog2, minChunkLog2, maxChunkLog2))
	}
	h.ChunkSize = 1 << chunkLog2
	if !s.CopyBytes(h.MessageID[:]) || !s.CopyBytes(h.Commitment[:]) {
		return nil, invalid("truncated")
	}

	var ec cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&ec) {
		return nil, invalid("truncated encryption context")
	}
	if err := h.Context.UnmarshalBinary(ec); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidHeader, err)
	}

	var count uint8
	if !s.ReadUint8(&count) {
		return nil, invalid("truncated")
	}
	if count == 0 || count > MaxWrappedKeys {
		return nil, invalid(fmt.Sprintf("%d wrapped keys, want 1..%d", count, MaxWrappedKeys))
	}
	// count is at most MaxWrappedKeys, so this allocation is bounded.
	h.WrappedKeys = make([]keyring.WrappedKey, count)
	for i := range h.WrappedKeys {
		var provider, keyID, alg, ct cryptobyte.String
		if !s.ReadUint8LengthPrefixed(&provider) || !s.ReadUint16LengthPrefixed(&keyID) ||
			!s.ReadUint8LengthPrefixed(&alg) || !s.ReadUint16LengthPrefixed(&ct) {
			return nil, invalid(fmt.Sprintf("truncated wrapped key %d", i))
		}
		if err := checkWrappedKey(len(provider), len(keyID), len(alg), len(ct)); err != nil {
			return nil, fmt.Errorf("%w: wrapped key %d: %w", ErrInvalidHeader, i, err)
		}
		h.WrappedKeys[i] = keyring.WrappedKey{
			Provider:   string(provider),
			KeyID:      string(keyID),
			Algorithm:  string(alg),
			Ciphertext: bytes.Clone(ct),
		}
	}
	if !s.Empty() {
		return nil, invalid(fmt.Sprintf("%d bytes before the tag do not belong to any field", len(s)))
	}
	return h, nil
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

// Build encodes h (all fields but Size and Tag) and appends the tag
// computed with headerKey. It refuses what Parse would refuse: a wrapped
// key out of bounds, no wrapped key or more than MaxWrappedKeys (an error
// matching keyring.ErrTooManyKeys), a header over MaxHeaderSize.
func Build(h *Header, headerKey []byte) ([]byte, error) {
	code, err := SuiteCode(h.Suite)
	if err != nil {
		return nil, err
	}
	log2, err := chunkLog2(h.ChunkSize)
	if err != nil {
		return nil, err
	}
	ec, err := h.Context.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	keys := h.WrappedKeys
	if len(keys) == 0 || len(keys) > MaxWrappedKeys {
		return nil, fmt.Errorf("envelope: the wrapper returned %d wrapped keys, want 1..%d: %w", len(keys), MaxWrappedKeys, keyring.ErrTooManyKeys)
	}
	for i, k := range keys {
		if err := checkWrappedKey(len(k.Provider), len(k.KeyID), len(k.Algorithm), len(k.Ciphertext)); err != nil {
			return nil, fmt.Errorf("envelope: wrapped key %d (%q) does not fit the header: %s", i, k.Provider, err)
		}
	}

	var b cryptobyte.Builder
	b.AddBytes([]byte(magic))
	b.AddUint8(Version)
	b.AddUint32(0) // total length, patched below
	b.AddUint8(code)
	b.AddUint8(log2)
	b.AddBytes(h.MessageID[:])
	b.AddBytes(h.Commitment[:])
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
	if len(raw)+TagSize > MaxHeaderSize {
		return nil, fmt.Errorf("envelope: header of %d bytes exceeds the limit of %d (too many or too large wrapped keys, or too large a context)", len(raw)+TagSize, MaxHeaderSize)
	}
	binary.BigEndian.PutUint32(raw[len(magic)+1:], uint32(len(raw)+TagSize))
	return append(raw, headerTag(headerKey, raw)...), nil
}

// BodyOptions returns the stream options of the body that follows h: its
// suite, chunk size and body AAD (FORMAT.md section 4: magic, version,
// suite code, chunk size and message id). The AAD leaves out the header
// length and the wrapped keys, which a rewrap changes, and the context,
// which the header tag already authenticates. Concurrency is the
// caller's to set.
func BodyOptions(h *Header) (stream.Options, error) {
	code, err := SuiteCode(h.Suite)
	if err != nil {
		return stream.Options{}, err
	}
	log2, err := chunkLog2(h.ChunkSize)
	if err != nil {
		return stream.Options{}, err
	}
	aad := make([]byte, 0, len(magic)+3+MessageIDSize)
	aad = append(aad, magic...)
	aad = append(aad, Version, code, log2)
	aad = append(aad, h.MessageID[:]...)
	return stream.Options{ChunkSize: h.ChunkSize, AAD: aad, Suite: h.Suite}, nil
}

// SuiteCode returns the wire code of a suite, or an error matching
// ErrUnsupportedSuite.
func SuiteCode(s stream.Suite) (uint8, error) {
	switch s {
	case stream.AES256GCM:
		return suiteCodeAES256GCM, nil
	case stream.ChaCha20Poly1305:
		return suiteCodeChaCha20Poly1305, nil
	}
	return 0, fmt.Errorf("%w: %v", ErrUnsupportedSuite, s)
}

// SuiteFromCode returns the suite of a wire code, or an error matching
// ErrUnsupportedSuite.
func SuiteFromCode(c uint8) (stream.Suite, error) {
	switch c {
	case suiteCodeAES256GCM:
		return stream.AES256GCM, nil
	case suiteCodeChaCha20Poly1305:
		return stream.ChaCha20Poly1305, nil
	}
	return 0, fmt.Errorf("%w: code 0x%02x", ErrUnsupportedSuite, c)
}

// CheckChunkSize returns an error unless size is a chunk size the format
// can record: a power of two from MinChunkSize to MaxChunkSize.
func CheckChunkSize(size int) error {
	_, err := chunkLog2(size)
	return err
}

// chunkLog2 returns the base-2 logarithm of a valid chunk size.
func chunkLog2(size int) (uint8, error) {
	if size < MinChunkSize || size > MaxChunkSize || size&(size-1) != 0 {
		return 0, fmt.Errorf("envelope: chunk size %d is not a power of two between %d and %d", size, MinChunkSize, MaxChunkSize)
	}
	return uint8(bits.TrailingZeros(uint(size))), nil
}
