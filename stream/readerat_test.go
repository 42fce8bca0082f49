package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// countingReaderAt records which chunks ReadAt calls touch.
type countingReaderAt struct {
	r      io.ReaderAt
	encCS  int64
	mu     sync.Mutex
	chunks []int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	for i := off / c.encCS; i*c.encCS < off+int64(len(p)); i++ {
		c.chunks = append(c.chunks, i)
	}
	c.mu.Unlock()
	return c.r.ReadAt(p, off)
}

func (c *countingReaderAt) take() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.chunks
	c.chunks = nil
	return got
}

func TestReaderAtRandomRanges(t *testing.T) {
	for _, suite := range suites() {
		for _, cs := range []int{MinChunkSize, 16 << 10} {
			for _, size := range []int{0, 1, cs, 5*cs + 17, 8 * cs} {
				t.Run(fmt.Sprintf("%v/chunk=%d/size=%d", suite, cs, size), func(t *testing.T) {
					opts := &Options{ChunkSize: cs, Suite: suite, AAD: []byte("x")}
					pt := plaintext(size, uint64(size))
					ct := encrypt(t, pt, testKey(3), opts, oneWrite)
					overhead, _ := suiteOverhead(suite)
					src := &countingReaderAt{r: bytes.NewReader(ct), encCS: int64(cs + overhead)}
					ra, err := NewReaderAt(src, int64(len(ct)), testKey(3), opts)
					if err != nil {
						t.Fatal(err)
					}
					last := max(int64(len(ct)-1)/src.encCS, 0)
					if got := src.take(); !slices.Equal(got, []int64{last}) {
						t.Fatalf("NewReaderAt read chunks %v, want only the final one %d", got, last)
					}
					rng := rand.New(rand.NewPCG(uint64(size), 1))
					for range 300 {
						off := rng.Int64N(int64(size) + 2*int64(cs))
						n := rng.IntN(3 * cs)
						if rng.IntN(4) == 0 {
							n = rng.IntN(10)
						}
						p := make([]byte, n)
						got, err := ra.ReadAt(p, off)
						end := min(off+int64(n), int64(size))
						want := 0
						if off < int64(size) {
							want = int(end - off)
						}
						if got != want {
							t.Fatalf("ReadAt(%d bytes, %d) = %d, want %d", n, off, got, want)
						}
						if want > 0 && !bytes.Equal(p[:got], pt[off:end]) {
							t.Fatalf("ReadAt(%d bytes, %d): wrong plaintext", n, off)
						}
						switch {
						case got < n && err != io.EOF:
							t.Fatalf("ReadAt(%d bytes, %d) = %d, %v; want io.EOF", n, off, got, err)
						case got == n && err != nil && !(err == io.EOF && off+int64(n) >= int64(size)):
							t.Fatalf("ReadAt(%d bytes, %d) = %d, %v", n, off, got, err)
						}
						// Exactly the chunks covering [off, end) were read.
						var needed []int64
						if want > 0 {
							for i := off / int64(cs); i*int64(cs) < end; i++ {
								needed = append(needed, i)
							}
						}
						if chunks := src.take(); !slices.Equal(chunks, needed) {
							t.Fatalf("ReadAt(%d bytes, %d) read chunks %v, want %v", n, off, chunks, needed)
						}

						// OpenAt, given the ciphertext from the chunk that
						// holds off, returns the same without reading src.
						held := ct[min(off/int64(cs)*src.encCS, int64(len(ct))):]
						q := make([]byte, n)
						got2, err2 := ra.OpenAt(q, off, held)
						if got2 != got || err2 != err || !bytes.Equal(q, p) {
							t.Fatalf("OpenAt(%d bytes, %d) = %d, %v; ReadAt gave %d, %v", n, off, got2, err2, got, err)
						}
						if chunks := src.take(); len(chunks) != 0 {
							t.Fatalf("OpenAt(%d bytes, %d) read chunks %v from src", n, off, chunks)
						}
					}
				})
			}
		}
	}
}

func TestReaderAtEdges(t *testing.T) {
	opts := &Options{ChunkSize: MinChunkSize}
	pt := plaintext(3*MinChunkSize, 1)
	ct := encrypt(t, pt, testKey(1), opts, oneWrite)
	ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), testKey(1), opts)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ra.ReadAt(nil, ra.Size()); n != 0 || err != nil {
		t.Errorf("ReadAt(nil, Size) = %d, %v; want 0, nil", n, err)
	}
	if n, err := ra.ReadAt(make([]byte, 1), ra.Size()); n != 0 || err != io.EOF {
		t.Errorf("ReadAt(1, Size) = %d, %v; want 0, io.EOF", n, err)
	}
	if n, err := ra.ReadAt(make([]byte, 1), -1); n != 0 || err == nil || err == io.EOF {
		t.Errorf("ReadAt(1, -1) = %d, %v; want an error", n, err)
	}
	if n, err := ra.ReadAt(make([]byte, 1), 1<<62); n != 0 || err != io.EOF {
		t.Errorf("ReadAt(1, 2^62) = %d, %v; want 0, io.EOF", n, err)
	}
	// io.NewSectionReader drives ReadAt like most callers do.
	got, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("SectionReader: %d bytes, %v", len(got), err)
	}
}

// TestReaderAtConcurrent runs ReadAt from many goroutines (meaningful with
// -race, which CI uses).
func TestReaderAtConcurrent(t *testing.T) {
	opts := &Options{ChunkSize: MinChunkSize}
	pt := plaintext(20*MinChunkSize+9, 1)
	ct := encrypt(t, pt, testKey(1), opts, oneWrite)
	ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), testKey(1), opts)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			for range 200 {
				off := rng.Int64N(int64(len(pt)))
				p := make([]byte, rng.IntN(3*MinChunkSize))
				n, err := ra.ReadAt(p, off)
				if err != nil && err != io.EOF || !bytes.Equal(p[:n], pt[off:off+int64(n)]) {
					t.Errorf("ReadAt(%d, %d) = %d, %v", len(p), off, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestOpenAtRefuses checks OpenAt's failures: a ciphertext that lacks a
// chunk of the range, a tampered chunk, a p that overlaps the ciphertext.
// Each returns only the authentic bytes of the chunks before it.
func TestOpenAtRefuses(t *testing.T) {
	const cs = MinChunkSize
	opts := &Options{ChunkSize: cs}
	pt := plaintext(5*cs+100, 4)
	ct := encrypt(t, pt, testKey(2), opts, oneWrite)
	enc := int64(cs + 28)
	ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), testKey(2), opts)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 3*cs)

	// From chunk 1, three chunks wanted, two and a half given.
	n, err := ra.OpenAt(p, cs, ct[enc:enc+2*enc+enc/2])
	if n != 2*cs || err == nil || err == io.EOF || !bytes.Equal(p[:n], pt[cs:cs+n]) {
		t.Errorf("OpenAt with a chunk missing = %d, %v; want %d authentic bytes and an error", n, err, 2*cs)
	}

	// Chunk 2 tampered with.
	bad := bytes.Clone(ct[enc : 4*enc])
	bad[enc+100] ^= 1
	n, err = ra.OpenAt(p, cs, bad)
	var ce *ChunkError
	if n != cs || !errors.As(err, &ce) || ce.Index != 2 || !errors.Is(err, ErrAuthentication) {
		t.Errorf("OpenAt with chunk 2 tampered = %d, %v; want %d bytes and ErrAuthentication at chunk 2", n, err, cs)
	}
	if !bytes.Equal(p[:cs], pt[cs:2*cs]) || !bytes.Equal(p[cs:2*cs], make([]byte, cs)) {
		t.Errorf("OpenAt with chunk 2 tampered left unauthenticated bytes in p")
	}

	// p inside the ciphertext.
	held := bytes.Clone(ct)
	if n, err := ra.OpenAt(held[len(held)-10:], 0, held); n != 0 || err == nil {
		t.Errorf("OpenAt into its own ciphertext = %d, %v; want an error", n, err)
	}
}
