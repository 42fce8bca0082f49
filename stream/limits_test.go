package stream

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// TestMaxChunks starts a Writer and a Reader near the 2^32 chunk limit
// (reaching it for real would take 16 TiB at the smallest chunk size).
func TestMaxChunks(t *testing.T) {
	const cs = MinChunkSize
	pt := plaintext(3*cs, 1)
	for _, conc := range []int{1, 3} {
		opts := &Options{ChunkSize: cs, Concurrency: conc}

		// Chunks MaxChunks-2 and MaxChunks-1 (final) still fit.
		var buf bytes.Buffer
		w, _ := NewWriter(&buf, testKey(1), opts)
		w.(*writerHandle).w.index = MaxChunks - 2
		if _, err := w.Write(pt[:2*cs]); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("conc %d: Close at the limit: %v", conc, err)
		}
		r, _ := NewReader(&buf, testKey(1), opts)
		r.r.index = MaxChunks - 2
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, pt[:2*cs]) {
			t.Fatalf("conc %d: reading at the limit: %v", conc, err)
		}

		// A third chunk would leave no index for a final chunk.
		w, _ = NewWriter(io.Discard, testKey(1), opts)
		w.(*writerHandle).w.index = MaxChunks - 2
		_, err := w.Write(pt)
		if err == nil {
			err = w.Close()
		}
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("conc %d: writing past the limit: %v, want ErrTooLarge", conc, err)
		}

		// A Reader refuses chunk MaxChunks whatever it holds.
		r, _ = NewReader(bytes.NewReader(make([]byte, 100)), testKey(1), opts)
		r.r.index = MaxChunks
		if _, err := io.ReadAll(r); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("conc %d: reading past the limit: %v, want ErrTooLarge", conc, err)
		}
	}
}
