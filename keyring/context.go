package keyring

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/crypto/cryptobyte"

	"github.com/geoseal/geoseal/internal/untrusted"
)

// A Context is an encryption context: non-secret string pairs that describe
// an object ("project": "x-57", "classification": "ECCN 9E003") and are
// authenticated with it. Keyrings built on AES-GCM bind the context to the
// wrapped key; the envelope format authenticates it in the object header, and
// decryption can require that given pairs be present.
//
// A Context is not secret: it is stored in the clear. Never put technical
// data in it.
type Context map[string]string

// Limits on a Context, checked when it is encoded and when it is decoded, so
// that a hostile header cannot make a reader allocate without bound.
const (
	MaxContextPairs   = 64
	MaxContextKeyLen  = 256
	MaxContextValLen  = 1024
	maxContextEncoded = 2 + MaxContextPairs*(4+MaxContextKeyLen+MaxContextValLen)
)

// ErrInvalidContext is matched by errors about a malformed or oversized
// encryption context.
var ErrInvalidContext = errors.New("keyring: invalid encryption context")

// MarshalBinary returns the canonical encoding of c, the bytes keyrings
// authenticate and the envelope header stores:
//
//	uint16 count
//	count × { uint16 len(key) || key || uint16 len(value) || value }
//
// with big-endian lengths and pairs sorted by key, bytewise. Keys must be
// non-empty. A nil or empty Context encodes as two zero bytes.
func (c Context) MarshalBinary() ([]byte, error) {
	if len(c) > MaxContextPairs {
		return nil, fmt.Errorf("%w: %d pairs, at most %d", ErrInvalidContext, len(c), MaxContextPairs)
	}
	keys := make([]string, 0, len(c))
	for k, v := range c {
		switch {
		case k == "":
			return nil, fmt.Errorf("%w: empty key", ErrInvalidContext)
		case len(k) > MaxContextKeyLen:
			return nil, fmt.Errorf("%w: key of %d bytes, at most %d", ErrInvalidContext, len(k), MaxContextKeyLen)
		case len(v) > MaxContextValLen:
			return nil, fmt.Errorf("%w: value of %s has %d bytes, at most %d", ErrInvalidContext, untrusted.Quote(k), len(v), MaxContextValLen)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b cryptobyte.Builder
	b.AddUint16(uint16(len(keys)))
	for _, k := range keys {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(k)) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c[k])) })
	}
	return b.Bytes()
}

// UnmarshalBinary decodes the canonical encoding written by MarshalBinary.
// It is strict: keys must be non-empty, unique and sorted, every length
// within the limits, and no bytes may follow. It replaces *c.
func (c *Context) UnmarshalBinary(data []byte) error {
	if len(data) > maxContextEncoded {
		return fmt.Errorf("%w: %d bytes", ErrInvalidContext, len(data))
	}
	s := cryptobyte.String(data)
	var n uint16
	if !s.ReadUint16(&n) {
		return fmt.Errorf("%w: truncated", ErrInvalidContext)
	}
	if n > MaxContextPairs {
		return fmt.Errorf("%w: %d pairs, at most %d", ErrInvalidContext, n, MaxContextPairs)
	}
	m := make(Context, n)
	prev := ""
	for i := 0; i < int(n); i++ {
		var k, v cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&k) || !s.ReadUint16LengthPrefixed(&v) {
			return fmt.Errorf("%w: truncated", ErrInvalidContext)
		}
		switch {
		case len(k) == 0:
			return fmt.Errorf("%w: empty key", ErrInvalidContext)
		case len(k) > MaxContextKeyLen || len(v) > MaxContextValLen:
			return fmt.Errorf("%w: pair %d too long", ErrInvalidContext, i)
		case i > 0 && string(k) <= prev:
			return fmt.Errorf("%w: keys not sorted or not unique", ErrInvalidContext)
		}
		prev = string(k)
		m[prev] = string(v)
	}
	if !s.Empty() {
		return fmt.Errorf("%w: %d trailing bytes", ErrInvalidContext, len(s))
	}
	*c = m
	return nil
}

// Contains reports whether every pair of want is in c with the same value.
// The comparison takes time independent of where values differ, since
// contexts sometimes carry values that are confidential if not secret.
func (c Context) Contains(want Context) bool {
	ok := 1
	for k, v := range want {
		got, present := c[k]
		if !present {
			ok = 0
			continue
		}
		ok &= subtle.ConstantTimeCompare([]byte(got), []byte(v))
	}
	return ok == 1
}
