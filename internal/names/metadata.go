package names

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/cryptobyte"
)

// The encoding of a metadata set, the payload of a sealed metadata value
// (FORMAT.md):
//
//	uint16 count
//	count × { uint8 len(name) || name || uint16 len(value) || value }
//
// with big-endian lengths, names of 1 to 255 bytes, unique and sorted
// bytewise, and no bytes after the last pair. The encoding is canonical:
// a set has exactly one.

// EncodeMetadata encodes the metadata set md. It fails on an empty or
// over-long name, or a set whose encoding exceeds MaxMetadataSize.
func EncodeMetadata(md map[string]string) ([]byte, error) {
	keys := make([]string, 0, len(md))
	size := 2
	for k, v := range md {
		if k == "" || len(k) > 255 {
			return nil, fmt.Errorf("blobstore: metadata name of %d bytes, want 1..255", len(k))
		}
		size += 1 + len(k) + 2 + len(v)
		keys = append(keys, k)
	}
	if size > MaxMetadataSize {
		return nil, fmt.Errorf("blobstore: metadata of %d bytes encoded, at most %d can be sealed", size, MaxMetadataSize)
	}
	slices.Sort(keys)
	var b cryptobyte.Builder
	b.AddUint16(uint16(len(keys)))
	for _, k := range keys {
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(k)) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(md[k])) })
	}
	return b.Bytes()
}

// DecodeMetadata decodes what EncodeMetadata encodes, strictly: a name
// empty, repeated or out of order, a length past the end, or bytes after
// the last pair fail with an error matching ErrTampered (the payload was
// authenticated, so only a writer that does not follow FORMAT.md makes
// one). It allocates no more than its input's size.
func DecodeMetadata(data []byte) (map[string]string, error) {
	bad := func(what string) error { return fmt.Errorf("%w: metadata %s", ErrTampered, what) }
	if len(data) > MaxMetadataSize {
		return nil, bad(fmt.Sprintf("of %d bytes", len(data)))
	}
	s := cryptobyte.String(data)
	var n uint16
	if !s.ReadUint16(&n) {
		return nil, bad("truncated")
	}
	// Each pair takes at least 4 bytes: bound the map by what is left.
	if int(n) > len(s)/4 {
		return nil, bad(fmt.Sprintf("of %d pairs in %d bytes", n, len(s)))
	}
	md := make(map[string]string, n)
	prev := ""
	for i := range int(n) {
		var k, v cryptobyte.String
		if !s.ReadUint8LengthPrefixed(&k) || !s.ReadUint16LengthPrefixed(&v) {
			return nil, bad(fmt.Sprintf("pair %d truncated", i))
		}
		name := string(k)
		if name == "" || (i > 0 && strings.Compare(name, prev) <= 0) {
			return nil, bad(fmt.Sprintf("pair %d: name empty, repeated or out of order", i))
		}
		md[name], prev = string(v), name
	}
	if !s.Empty() {
		return nil, bad(fmt.Sprintf("has %d bytes after the last pair", len(s)))
	}
	return md, nil
}
