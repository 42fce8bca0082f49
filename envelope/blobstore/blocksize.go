package blobstore

import (
	"fmt"
	"io"
	"os"

	"github.com/geoseal/geoseal/stream"
)

// Block sizing, as Upload's documentation describes it: the smallest
// blocks that fit a source's reported size, growing with a stream of
// unknown length so that every block is at least 1/growthDivisor of what
// came before it. That growth lets 49,999 blocks hold 98.6% of the
// service's largest blob (TestBlockGrowth).
const growthDivisor = 100

// blockSizer chooses the size of each block of one upload.
type blockSizer struct {
	fixed int64 // an explicit block size, or 0
	size  int64 // the current block size; it never shrinks
	hint  int64 // the encrypted body size the source announced, or -1
}

// planBlocks returns the sizer for an upload whose encrypted body is
// hint bytes (-1: unknown), failing when it cannot fit.
func planBlocks(fixed, hint int64) (blockSizer, error) {
	s := blockSizer{fixed: fixed, size: fixed, hint: hint}
	if fixed != 0 {
		if hint >= 0 && ceilDiv(hint, fixed) > maxBlocks-1 {
			return s, fmt.Errorf("%w: %d bytes in blocks of %d", ErrTooManyBlocks, hint, fixed)
		}
		return s, nil
	}
	s.size = DefaultBlockSize
	if hint >= 0 {
		need := ceilDiv(hint, maxBlocks-1)
		if need > MaxBlockSize {
			return s, fmt.Errorf("%w: %d encrypted bytes need blocks of %d, the service's largest is %d", ErrTooLarge, hint, need, int64(MaxBlockSize))
		}
		s.size = max(s.size, roundUp(need, minBlockSize))
	}
	return s, nil
}

// next returns the size of the block that follows staged bytes of body.
func (s *blockSizer) next(staged int64) int64 {
	if s.fixed != 0 || staged < s.hint {
		return s.size
	}
	if grown := roundUp(staged/growthDivisor, minBlockSize); grown > s.size {
		s.size = min(grown, MaxBlockSize)
	}
	return s.size
}

// tooMany is the error for a block beyond the service's limit.
func (s *blockSizer) tooMany() error {
	if s.fixed != 0 {
		return ErrTooManyBlocks
	}
	return ErrTooLarge
}

// sourceSize returns how many bytes r will yield, when it says, or -1.
func sourceSize(r io.Reader) int64 {
	if f, ok := r.(*os.File); ok {
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return -1
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil || off > fi.Size() {
			return -1
		}
		return fi.Size() - off
	}
	if s, ok := r.(interface{ Size() int64 }); ok && s.Size() >= 0 {
		return s.Size()
	}
	return -1
}

// encryptedHint is the encrypted body size of a plaintext of the given
// size (-1: unknown), failing with ErrTooLarge for one the format cannot
// hold.
func encryptedHint(plaintext int64, body *stream.Options) (int64, error) {
	if plaintext < 0 {
		return -1, nil
	}
	n := stream.EncryptedSize(plaintext, body)
	if n < 0 {
		return 0, fmt.Errorf("%w: %d bytes exceed the stream's chunk limit", ErrTooLarge, plaintext)
	}
	return n, nil
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

func roundUp(n, unit int64) int64 { return ceilDiv(n, unit) * unit }
