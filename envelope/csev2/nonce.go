package csev2

import (
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"sync/atomic"
)

// A NonceScheme is one of the ways the SDKs derive a region's 12-byte GCM
// nonce from its 0-based index i. All three are counters, so a nonce never
// repeats under one key, and all three let a reader check that each region
// sits where it was written.
type NonceScheme uint8

const (
	// NonceJava is the Java SDK's scheme (EncryptorV2): i as an 8-byte
	// big-endian integer, then four zero bytes. Region 0 has the all-zero
	// nonce.
	NonceJava NonceScheme = iota + 1

	// NoncePython is the Python SDK's scheme (GCMBlobEncryptionStream): i as
	// a 12-byte big-endian integer, that is four zero bytes then 8-byte
	// big-endian i. Region 0 has the all-zero nonce.
	NoncePython

	// NonceDotNet is the .NET SDK's scheme
	// (GcmAuthenticatedCryptographicTransform): four zero bytes, then i+1 as
	// an 8-byte little-endian integer. The counter starts at 1. It is the
	// default for writing: every SDK reader that checks region order
	// accepts it, including .NET builds whose check knows only .NET's own
	// scheme (FORMAT.md, "Region order").
	NonceDotNet

	// nonceJavaInt32 is what Java's EncryptorV2 wrote before
	// azure-storage-blob-cryptography 12.34.2: NonceJava of the region index
	// truncated to a Java int, so from region 2^31 the index is
	// sign-extended (FFFFFFFF || BE32(i) || 00000000) and at 2^32 it
	// repeats region 0's nonce. It is read, never written, and only for
	// regions below 2^32, where it cannot be told from a reordering (nor is
	// it safe: GCM nonces repeat).
	nonceJavaInt32
)

// javaInt32Wrap is the first region index at which nonceJavaInt32 repeats.
const javaInt32Wrap = 1 << 32

// allSchemes is the candidate set a reader starts from, as a bit set indexed
// by NonceScheme.
const allSchemes = 1<<NonceJava | 1<<NoncePython | 1<<NonceDotNet | 1<<nonceJavaInt32

func (s NonceScheme) String() string {
	switch s {
	case NonceJava:
		return "java"
	case NoncePython:
		return "python"
	case NonceDotNet:
		return "dotnet"
	case nonceJavaInt32:
		return "java-int32"
	}
	return fmt.Sprintf("NonceScheme(%d)", uint8(s))
}

func (s NonceScheme) valid() bool { return s >= NonceJava && s <= NonceDotNet }

// nonce writes the nonce of region i under s into n.
func (s NonceScheme) nonce(n *[nonceSize]byte, i uint64) {
	*n = [nonceSize]byte{}
	switch s {
	case NonceJava:
		binary.BigEndian.PutUint64(n[:8], i)
	case NoncePython:
		binary.BigEndian.PutUint64(n[4:], i)
	case NonceDotNet:
		binary.LittleEndian.PutUint64(n[4:], i+1)
	case nonceJavaInt32:
		binary.BigEndian.PutUint64(n[:8], uint64(int64(int32(uint32(i)))))
	default:
		panic("csev2: invalid nonce scheme")
	}
}

// An orderCheck enforces that every region's nonce is the one its position
// gets under a single scheme. The scheme is not recorded in the metadata, so
// the check starts with all candidates (the three SDKs' schemes and the Java
// SDK's older int-truncated one) and keeps the intersection of the schemes
// each region agrees with, as the Java SDK's CseV2NonceOrderValidator does;
// region 0 cannot tell Java from Python (both all-zero), later regions can,
// and the two Java forms differ only from region 2^31. Sharing one orderCheck across all the ranges
// of one blob keeps a region from passing under one scheme in one range and
// another scheme in the next. It is safe for concurrent use.
type orderCheck struct {
	candidates atomic.Uint32
}

func newOrderCheck() *orderCheck {
	c := new(orderCheck)
	c.candidates.Store(allSchemes)
	return c
}

// check reports whether nonce is the nonce of region index under a scheme
// consistent with every region checked before.
func (c *orderCheck) check(nonce []byte, index uint64) error {
	if c == nil {
		return nil
	}
	var here uint32
	var want [nonceSize]byte
	for s := NonceJava; s <= nonceJavaInt32; s++ {
		if s == nonceJavaInt32 && index >= javaInt32Wrap {
			continue // repeats an earlier nonce: no position can be told
		}
		s.nonce(&want, index)
		if subtle.ConstantTimeCompare(want[:], nonce) == 1 {
			here |= 1 << s
		}
	}
	for {
		old := c.candidates.Load()
		next := old & here
		if next == 0 {
			return ErrRegionOrder
		}
		if c.candidates.CompareAndSwap(old, next) {
			return nil
		}
	}
}
