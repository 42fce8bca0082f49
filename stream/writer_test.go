package stream

import (
	"bytes"
	"fmt"
	"testing"
)

// lendingWriter lends the room at the end of its buffer, as bufio.Writer
// and bytes.Buffer do, and counts the Writes that pass its own buffer back
// (nothing to copy) and the others (copied).
type lendingWriter struct {
	buf         []byte
	own, copied int
	room        int    // the room AvailableBuffer guarantees
	lend        []byte // if set, what AvailableBuffer lends instead
}

func (l *lendingWriter) AvailableBuffer() []byte {
	if l.lend != nil {
		return l.lend[:0]
	}
	if cap(l.buf)-len(l.buf) < l.room {
		l.buf = append(make([]byte, 0, 2*cap(l.buf)+l.room), l.buf...)
	}
	return l.buf[len(l.buf) : len(l.buf) : len(l.buf)+l.room]
}

func (l *lendingWriter) Write(p []byte) (int, error) {
	if len(p) > 0 && cap(l.buf) > len(l.buf) && &l.buf[:len(l.buf)+1][len(l.buf)] == &p[0] {
		l.own++
		l.buf = l.buf[:len(l.buf)+len(p)]
		return len(p), nil
	}
	l.copied++
	l.buf = append(l.buf, p...)
	return len(p), nil
}

// TestWriterSealsIntoLentBuffer checks that a sequential Writer seals
// straight into the buffer its destination lends when it has room for a
// whole chunk, that a parallel one or a lender without room gets copies,
// and that the stream is the same either way.
func TestWriterSealsIntoLentBuffer(t *testing.T) {
	const cs = MinChunkSize
	pt := plaintext(10*cs+123, 7)
	for _, suite := range suites() {
		overhead, _ := suiteOverhead(suite)
		for _, tc := range []struct {
			conc, room int
			own        int // chunks sealed in the lent buffer
		}{
			{conc: 0, room: cs + overhead, own: 11},
			{conc: 0, room: cs + overhead - 1, own: 1}, // only the short final chunk fits
			{conc: 3, room: cs + overhead, own: 0},     // workers seal into their own buffers
		} {
			for _, mode := range []writeMode{oneWrite, smallWrites, readFrom} {
				t.Run(fmt.Sprintf("%v/conc=%d/room=%d/%v", suite, tc.conc, tc.room, mode), func(t *testing.T) {
					opts := &Options{ChunkSize: cs, Concurrency: tc.conc, Suite: suite}
					dst := &lendingWriter{room: tc.room}
					encryptTo(t, dst, pt, testKey(1), opts, mode)
					got, err := decrypt(dst.buf, testKey(1), opts, readAll)
					if err != nil || !bytes.Equal(got, pt) {
						t.Fatalf("decrypt: %v (%d bytes, want %d)", err, len(got), len(pt))
					}
					if dst.own != tc.own || dst.own+dst.copied != 11 {
						t.Errorf("%d chunks sealed in the lent buffer, %d copied; want %d and %d", dst.own, dst.copied, tc.own, 11-tc.own)
					}
				})
			}
		}
	}
}

// TestWriterLentBufferOverlapsPlaintext checks that a Writer does not seal
// into a lent buffer that holds the plaintext it is sealing (the AEAD
// would panic, or overwrite plaintext it has not sealed yet). Once Write
// has returned, the lender may lend that memory: it is no longer the
// Writer's concern.
func TestWriterLentBufferOverlapsPlaintext(t *testing.T) {
	const cs = MinChunkSize
	for _, suite := range suites() {
		t.Run(suite.String(), func(t *testing.T) {
			pt := plaintext(4*cs+5, 8)
			want := bytes.Clone(pt)
			opts := &Options{ChunkSize: cs, Suite: suite}
			// The lender lends the very memory the plaintext is in.
			dst := &lendingWriter{lend: pt}
			w, err := NewWriter(dst, testKey(1), opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(pt); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := decrypt(dst.buf, testKey(1), opts, readAll)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("decrypt: %v (%d bytes, want %d)", err, len(got), len(want))
			}
		})
	}
}
