package stream

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"io"
	"runtime"
	"testing"
)

// The benchmarks that pick DefaultChunkSize: throughput per chunk size, next
// to raw AES-256-GCM on the same chunks (BENCHMARKS.md records what they
// measured). internal/benchcmp compares with other libraries over 256 MiB.

const benchSize = 16 << 20

var benchChunkSizes = []int{16 << 10, 64 << 10, 256 << 10, 1 << 20}

func benchConcurrencies() []int {
	if p := runtime.GOMAXPROCS(0); p > 1 {
		return []int{1, p}
	}
	return []int{1}
}

func BenchmarkEncrypt(b *testing.B) {
	pt := plaintext(benchSize, 1)
	for _, cs := range benchChunkSizes {
		for _, conc := range benchConcurrencies() {
			b.Run(fmt.Sprintf("chunk=%dK/conc=%d", cs>>10, conc), func(b *testing.B) {
				opts := &Options{ChunkSize: cs, Concurrency: conc}
				b.SetBytes(benchSize)
				for b.Loop() {
					w, _ := NewWriter(io.Discard, testKey(1), opts)
					w.Write(pt)
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	pt := plaintext(benchSize, 1)
	for _, cs := range benchChunkSizes {
		ct := encrypt(b, pt, testKey(1), &Options{ChunkSize: cs}, oneWrite)
		for _, conc := range benchConcurrencies() {
			b.Run(fmt.Sprintf("chunk=%dK/conc=%d", cs>>10, conc), func(b *testing.B) {
				opts := &Options{ChunkSize: cs, Concurrency: conc}
				b.SetBytes(benchSize)
				for b.Loop() {
					r, _ := NewReader(bytes.NewReader(ct), testKey(1), opts)
					if _, err := io.Copy(io.Discard, r); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRawGCM is the ceiling: AES-256-GCM Seal and Open over the same
// chunks with no stream around them.
func BenchmarkRawGCM(b *testing.B) {
	pt := plaintext(benchSize, 1)
	block, _ := aes.NewCipher(testKey(1))
	aead, _ := cipher.NewGCMWithRandomNonce(block)
	aad := make([]byte, 9)
	for _, cs := range benchChunkSizes {
		out := make([]byte, cs+aead.Overhead())
		b.Run(fmt.Sprintf("seal/chunk=%dK", cs>>10), func(b *testing.B) {
			b.SetBytes(benchSize)
			for b.Loop() {
				for p := pt; len(p) > 0; p = p[cs:] {
					aead.Seal(out[:0], nil, p[:cs], aad)
				}
			}
		})
		sealed := aead.Seal(nil, nil, pt[:cs], aad)
		opened := make([]byte, cs)
		b.Run(fmt.Sprintf("open/chunk=%dK", cs>>10), func(b *testing.B) {
			b.SetBytes(benchSize)
			for b.Loop() {
				for range benchSize / cs {
					if _, err := aead.Open(opened[:0], nil, sealed, aad); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkReadAt reads 4 KiB at scattered offsets, the random-access cost
// the chunk size trades against.
func BenchmarkReadAt(b *testing.B) {
	pt := plaintext(benchSize, 1)
	for _, cs := range benchChunkSizes {
		ct := encrypt(b, pt, testKey(1), &Options{ChunkSize: cs}, oneWrite)
		b.Run(fmt.Sprintf("chunk=%dK", cs>>10), func(b *testing.B) {
			ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), testKey(1), &Options{ChunkSize: cs})
			if err != nil {
				b.Fatal(err)
			}
			p := make([]byte, 4096)
			b.SetBytes(int64(len(p)))
			off := int64(0)
			for b.Loop() {
				off = (off + 7919*4096 + 1234) % (benchSize - 4096)
				if _, err := ra.ReadAt(p, off); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
