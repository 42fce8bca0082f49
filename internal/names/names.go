// Package names implements the sealing of what Azure Blob Storage would
// otherwise hold in the clear beside a geoseal object: the blob's name,
// its user metadata and its index tags (FORMAT.md, "Sealed names,
// metadata and tags"). FORMAT.md is the specification; this package is its
// only implementation, and package blobstore its only user.
//
// Everything runs inside Go's FIPS 140 validated module: HKDF-SHA-256
// derives four keys from a container's 256-bit name key, HMAC-SHA-256
// maps names and tags to stored strings, and AES-256-GCM with random
// nonces (cipher.NewGCMWithRandomNonce) seals the logical name and the
// metadata.
//
//   - StoredName maps a logical name, segment by segment, to the blob name
//     the service sees: equal names give equal blob names, and the stored
//     name of a "directory" is a prefix of the stored names under it.
//   - Seal and Open seal a logical name or an encoded metadata set into one
//     metadata value, bound to the stored name (so it cannot be moved to
//     another blob) and carrying the object's message id (so the blob's
//     body cannot be swapped under it unnoticed).
//   - TagName and TagValue are the keyed tokens that replace index tags.
//
// Every stored string is in uppercase base32 without padding (RFC 4648,
// section 6): no lowercase text, and nothing a user wrote, can appear in
// what the service stores.
package names

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// The layout of sealed names (FORMAT.md, "Sealed names, metadata and
// tags"). These are the specification's numbers.
const (
	// KeySize is the size of a container's name key.
	KeySize = 32

	// MessageIDSize is the size of the object message id a sealed value
	// carries (that of the object format).
	MessageIDSize = 32

	// MaxNameLength is the longest logical name, in bytes: the service's
	// limit on a blob name, so that a name valid sealed is valid in the
	// clear too.
	MaxNameLength = 1024

	// SegmentLength is the length of a stored segment: 16 bytes of
	// HMAC-SHA-256 in base32.
	SegmentLength = 26

	// MaxSegments is the most segments a logical name may have: the
	// stored name, MaxSegments×(SegmentLength+1)−1 = 998 characters, fits
	// the service's 1024 (and its 254 segments).
	MaxSegments = 37

	// MaxMetadataSize bounds the encoded metadata set (the payload of a
	// sealed metadata value), so that the sealed name and metadata and
	// geoseal's own entries stay within the service's 8 KiB of metadata.
	MaxMetadataSize = 3072

	// MaxTagNameLength and MaxTagValueLength are the service's limits on
	// an index tag, enforced in the clear too.
	MaxTagNameLength  = 128
	MaxTagValueLength = 256

	// sealVersion opens every sealed value.
	sealVersion = 0x01
	// padBlock is what a sealed value's plaintext is padded to a multiple
	// of, so that its length shows only roughly how long the name or the
	// metadata is.
	padBlock = 32
	// segmentMACSize and tokenSize are the bytes of HMAC-SHA-256 kept in a
	// stored segment and in a tag token.
	segmentMACSize = 16
	tokenSize      = 16

	gcmNonceSize = 12
	gcmTagSize   = 16
	// sealOverhead is what sealing adds to a padded plaintext.
	sealOverhead = 1 + gcmNonceSize + gcmTagSize
	// maxPayload is the largest payload of any sealed value.
	maxPayload = MaxMetadataSize
)

// HKDF-SHA-256 info strings of the keys derived from a name key, and the
// labels of the sealed values (FORMAT.md). Each has its own, so no
// derived value can stand in for another.
const (
	infoSegments = "geoseal/names v1 segments"
	infoName     = "geoseal/names v1 sealed name"
	infoMetadata = "geoseal/names v1 sealed metadata"
	infoTags     = "geoseal/names v1 tags"

	labelName     = "geoseal/names v1 name"
	labelMetadata = "geoseal/names v1 metadata"
)

// Encoding is the encoding of every stored string: base32 (RFC 4648,
// section 6, uppercase) without padding.
var Encoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// The errors of sealed names, matched with errors.Is. Package blobstore
// exports each as its own, so their messages start with "blobstore:".
var (
	// ErrInvalidName means a logical name cannot be sealed: empty, longer
	// than MaxNameLength bytes, more than MaxSegments segments, an empty
	// segment (a leading, trailing or doubled "/"), or not UTF-8.
	ErrInvalidName = errors.New("blobstore: invalid name")

	// ErrTampered means a sealed value does not open: it was altered,
	// moved from another blob, sealed under another name key, or it names
	// another object than the one it is stored with.
	ErrTampered = errors.New("blobstore: sealed name or metadata does not authenticate")
)

// Keys are the keys derived from one container's name key. They are
// safe for concurrent use.
type Keys struct {
	segments []byte      // HMAC-SHA-256 key of the stored segments
	tags     []byte      // HMAC-SHA-256 key of the tag tokens
	name     cipher.AEAD // AES-256-GCM of sealed names
	metadata cipher.AEAD // AES-256-GCM of sealed metadata
}

// New derives the Keys of a name key.
func New(nameKey []byte) (*Keys, error) {
	if len(nameKey) != KeySize {
		return nil, fmt.Errorf("blobstore: name key of %d bytes, want %d", len(nameKey), KeySize)
	}
	derive := func(info string) ([]byte, error) {
		k, err := hkdf.Key(sha256.New, nameKey, nil, info, 32)
		if err != nil {
			return nil, fmt.Errorf("blobstore: deriving the %q key: %w", info, err)
		}
		return k, nil
	}
	aead := func(info string) (cipher.AEAD, error) {
		k, err := derive(info)
		if err != nil {
			return nil, err
		}
		defer clear(k)
		b, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCMWithRandomNonce(b)
	}
	var k Keys
	var err error
	if k.segments, err = derive(infoSegments); err != nil {
		return nil, err
	}
	if k.tags, err = derive(infoTags); err != nil {
		return nil, err
	}
	if k.name, err = aead(infoName); err != nil {
		return nil, err
	}
	if k.metadata, err = aead(infoMetadata); err != nil {
		return nil, err
	}
	return &k, nil
}

// CheckName returns an error matching ErrInvalidName unless logical can be
// sealed. It needs no key, so a caller can refuse a name before any
// request.
func CheckName(logical string) error {
	_, err := splitName(logical)
	return err
}

// splitName checks a logical name and cuts it into its segments.
func splitName(logical string) ([]string, error) {
	switch {
	case logical == "":
		return nil, fmt.Errorf("%w: empty", ErrInvalidName)
	case len(logical) > MaxNameLength:
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidName, len(logical), MaxNameLength)
	case !utf8.ValidString(logical):
		return nil, fmt.Errorf("%w: not UTF-8", ErrInvalidName)
	}
	n := strings.Count(logical, "/") + 1
	if n > MaxSegments {
		return nil, fmt.Errorf("%w: %d segments, at most %d", ErrInvalidName, n, MaxSegments)
	}
	segs := strings.Split(logical, "/")
	for i, s := range segs {
		if s == "" {
			return nil, fmt.Errorf("%w: segment %d is empty (a leading, trailing or doubled \"/\")", ErrInvalidName, i+1)
		}
	}
	return segs, nil
}

// StoredName returns the blob name that holds the logical name: its
// segments, each the first 16 bytes of an HMAC-SHA-256 chained over the
// segments before it, in base32, joined by "/".
func (k *Keys) StoredName(logical string) (string, error) {
	segs, err := splitName(logical)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(segs) * (SegmentLength + 1))
	m := hmac.New(sha256.New, k.segments)
	chain := make([]byte, sha256.Size) // c_0: zero bytes
	var enc [SegmentLength]byte
	for i, s := range segs {
		m.Reset()
		m.Write(chain)
		m.Write([]byte(s))
		chain = m.Sum(chain[:0])
		if i > 0 {
			b.WriteByte('/')
		}
		Encoding.Encode(enc[:], chain[:segmentMACSize])
		b.Write(enc[:])
	}
	return b.String(), nil
}

// StoredPrefix returns the stored prefix that lists the logical names
// starting with prefix, which is matched by whole segments: "a/b/" lists
// what is under a/b, "a/b" lists a/b and what is under it, and nothing
// lists the names whose last segment merely starts with "b". The empty
// prefix lists everything.
func (k *Keys) StoredPrefix(prefix string) (string, error) {
	if prefix == "" {
		return "", nil
	}
	dir := strings.HasSuffix(prefix, "/")
	stored, err := k.StoredName(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return "", fmt.Errorf("prefix: %w", err)
	}
	if dir {
		stored += "/"
	}
	return stored, nil
}

// A Kind is what a sealed value holds.
type Kind int

const (
	// Name is a sealed logical name.
	Name Kind = iota
	// Metadata is a sealed metadata set (EncodeMetadata).
	Metadata
)

func (k *Keys) aead(kind Kind) (cipher.AEAD, string) {
	if kind == Metadata {
		return k.metadata, labelMetadata
	}
	return k.name, labelName
}

// aad is the associated data of a sealed value: its label, a zero byte and
// the stored name of the blob it belongs to.
func aad(label, stored string) []byte {
	b := make([]byte, 0, len(label)+1+len(stored))
	b = append(b, label...)
	b = append(b, 0)
	return append(b, stored...)
}

// MaxSealedLength returns the length of the longest sealed value of kind,
// in characters: what a reader bounds an untrusted value by.
func MaxSealedLength(kind Kind) int {
	max := MaxNameLength
	if kind == Metadata {
		max = MaxMetadataSize
	}
	return Encoding.EncodedLen(sealOverhead + paddedLen(max))
}

// paddedLen is the length of the plaintext of a sealed value whose payload
// has n bytes: the message id, a two-byte length and the payload, padded
// with zero bytes to a multiple of padBlock.
func paddedLen(n int) int {
	l := MessageIDSize + 2 + n
	return (l + padBlock - 1) / padBlock * padBlock
}

// Seal seals payload (a logical name, or an encoded metadata set) for the
// blob named stored that holds the object with the given message id. The
// result is a base32 string for the blob's metadata.
func (k *Keys) Seal(kind Kind, payload []byte, stored string, messageID [MessageIDSize]byte) (string, error) {
	max := MaxNameLength
	if kind == Metadata {
		max = MaxMetadataSize
	}
	if len(payload) > max {
		return "", fmt.Errorf("blobstore: sealed value of %d bytes, at most %d", len(payload), max)
	}
	aead, label := k.aead(kind)
	pt := make([]byte, paddedLen(len(payload)))
	copy(pt, messageID[:])
	binary.BigEndian.PutUint16(pt[MessageIDSize:], uint16(len(payload)))
	copy(pt[MessageIDSize+2:], payload)
	sealed := make([]byte, 1, sealOverhead+len(pt))
	sealed[0] = sealVersion
	sealed = aead.Seal(sealed, nil, pt, aad(label, stored))
	return Encoding.EncodeToString(sealed), nil
}

// Open opens a sealed value of kind read from the metadata of the blob
// named stored, returning its payload and the message id of the object it
// was sealed with (which the caller compares with the object's header
// before trusting the pairing). Anything that does not open fails with an
// error matching ErrTampered; nothing longer than MaxSealedLength is
// decoded.
func (k *Keys) Open(kind Kind, value, stored string) (payload []byte, messageID [MessageIDSize]byte, err error) {
	if len(value) > MaxSealedLength(kind) {
		return nil, messageID, fmt.Errorf("%w: a value of %d characters, at most %d", ErrTampered, len(value), MaxSealedLength(kind))
	}
	raw, err := Encoding.DecodeString(value)
	if err != nil {
		return nil, messageID, fmt.Errorf("%w: not base32", ErrTampered)
	}
	if len(raw) < sealOverhead+paddedLen(0) || raw[0] != sealVersion {
		return nil, messageID, fmt.Errorf("%w: not a sealed value of version %d", ErrTampered, sealVersion)
	}
	aead, label := k.aead(kind)
	pt, err := aead.Open(nil, nil, raw[1:], aad(label, stored))
	if err != nil {
		return nil, messageID, fmt.Errorf("%w: %s does not open for this blob", ErrTampered, kindName(kind))
	}
	payload, err = unpad(pt)
	if err != nil {
		return nil, messageID, err
	}
	copy(messageID[:], pt)
	return payload, messageID, nil
}

// unpad checks the framing of an opened plaintext and returns its payload.
// The plaintext authenticated, so a failure here means a writer that does
// not follow FORMAT.md.
func unpad(pt []byte) ([]byte, error) {
	if len(pt) < MessageIDSize+2 || len(pt)%padBlock != 0 {
		return nil, fmt.Errorf("%w: plaintext of %d bytes", ErrTampered, len(pt))
	}
	n := int(binary.BigEndian.Uint16(pt[MessageIDSize:]))
	if paddedLen(n) != len(pt) {
		return nil, fmt.Errorf("%w: a payload of %d bytes in a plaintext of %d", ErrTampered, n, len(pt))
	}
	payload, pad := pt[MessageIDSize+2:MessageIDSize+2+n], pt[MessageIDSize+2+n:]
	for _, b := range pad {
		if b != 0 {
			return nil, fmt.Errorf("%w: nonzero padding", ErrTampered)
		}
	}
	return payload, nil
}

func kindName(kind Kind) string {
	if kind == Metadata {
		return "the sealed metadata"
	}
	return "the sealed name"
}

// TagName returns the token that replaces the index tag name.
func (k *Keys) TagName(name string) string {
	return k.token([]byte("name"), []byte(name))
}

// TagValue returns the token that replaces the value of the index tag
// name. It depends on the name too, so equal values of different tags
// give different tokens. name must pass CheckTag.
func (k *Keys) TagValue(name, value string) string {
	var n [2]byte
	binary.BigEndian.PutUint16(n[:], uint16(len(name)))
	return k.token([]byte("value"), n[:], []byte(name), []byte(value))
}

// token is the first tokenSize bytes of HMAC-SHA-256 under the tag key of
// label, a zero byte and parts, in base32.
func (k *Keys) token(label []byte, parts ...[]byte) string {
	m := hmac.New(sha256.New, k.tags)
	m.Write(label)
	m.Write([]byte{0})
	for _, p := range parts {
		m.Write(p)
	}
	return Encoding.EncodeToString(m.Sum(nil)[:tokenSize])
}

// CheckTag returns an error unless name and value fit the service's
// limits on an index tag (checked in the clear, and before sealing, so a
// tag set behaves the same in both modes).
func CheckTag(name, value string) error {
	switch {
	case name == "" || len(name) > MaxTagNameLength:
		return fmt.Errorf("blobstore: tag name of %d bytes, want 1..%d", len(name), MaxTagNameLength)
	case len(value) > MaxTagValueLength:
		return fmt.Errorf("blobstore: tag %q: value of %d bytes, at most %d", name, len(value), MaxTagValueLength)
	}
	return nil
}
