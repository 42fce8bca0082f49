package stream

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// TestNoAllocsPerChunk checks that a running Writer, Reader and ReaderAt
// reuse their buffers: many chunks pass through with zero allocations.
func TestNoAllocsPerChunk(t *testing.T) {
	const cs = MinChunkSize
	for _, suite := range suites() {
		for _, conc := range []int{1, 3} {
			t.Run(fmt.Sprintf("%v/conc=%d", suite, conc), func(t *testing.T) {
				opts := &Options{ChunkSize: cs, Concurrency: conc, Suite: suite, AAD: []byte("aad")}
				big := plaintext(8*cs, 1)

				w, err := NewWriter(io.Discard, testKey(1), opts)
				if err != nil {
					t.Fatal(err)
				}
				w.Write(big) // allocate the buffers
				w.Write(big[:cs/2])
				if a := testing.AllocsPerRun(50, func() { w.Write(big) }); a != 0 {
					t.Errorf("Writer, large writes: %v allocations per 8 chunks", a)
				}
				if a := testing.AllocsPerRun(50, func() {
					for p := big; len(p) > 0; p = p[1000:] {
						w.Write(p[:1000])
						if len(p) < 2000 {
							break
						}
					}
				}); a != 0 {
					t.Errorf("Writer, small writes: %v allocations per 8 chunks", a)
				}
				rf := w.(io.ReaderFrom)
				src := bytes.NewReader(big)
				var limited io.Reader = onlyReader{src, 3000} // converted once: the conversion allocates
				if a := testing.AllocsPerRun(50, func() {
					src.Reset(big)
					rf.ReadFrom(limited)
				}); a != 0 {
					t.Errorf("Writer.ReadFrom: %v allocations per 8 chunks", a)
				}
				w.Close()

				// A long stream, so that the runs below stay in its middle.
				ct := encrypt(t, plaintext(600*cs, 2), testKey(1), opts, oneWrite)
				r, err := NewReader(bytes.NewReader(ct), testKey(1), opts)
				if err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 2*cs)
				io.ReadFull(r, buf)
				if a := testing.AllocsPerRun(100, func() {
					if _, err := io.ReadFull(r, buf); err != nil {
						t.Fatal(err)
					}
				}); a != 0 {
					t.Errorf("Reader: %v allocations per 2 chunks", a)
				}
				r.Close()

				if raceEnabled {
					return // ReaderAt reuses buffers through a sync.Pool, which drops items at random under -race
				}
				ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), testKey(1), opts)
				if err != nil {
					t.Fatal(err)
				}
				ra.ReadAt(buf, 100)
				if a := testing.AllocsPerRun(100, func() {
					if _, err := ra.ReadAt(buf, cs+100); err != nil {
						t.Fatal(err)
					}
					if _, err := ra.ReadAt(buf, 4*cs); err != nil {
						t.Fatal(err)
					}
				}); a != 0 {
					t.Errorf("ReaderAt: %v allocations per 5 chunks", a)
				}
			})
		}
	}
}
