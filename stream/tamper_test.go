package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
)

const tcs = MinChunkSize // chunk size of the tamper tests

var tamperOpts = &Options{ChunkSize: tcs, AAD: []byte("header digest")}

// checkFails decrypts ct with a Reader at concurrency conc and checks that it
// fails with want (a sentinel) at chunk index, after returning exactly the
// plaintext of the chunks before it.
func checkFails(t *testing.T, name string, ct, pt []byte, conc int, index uint64, want error) {
	t.Helper()
	opts := *tamperOpts
	opts.Concurrency = conc
	for _, mode := range []readMode{readAll, writeTo} {
		got, err := decrypt(ct, testKey(1), &opts, mode)
		var ce *ChunkError
		if !errors.As(err, &ce) || ce.Index != index || !errors.Is(err, want) {
			t.Fatalf("%s (conc %d, %v): error %v, want %v at chunk %d", name, conc, mode, err, want, index)
		}
		if !bytes.Equal(got, pt[:min(len(pt), int(index)*tcs)]) {
			t.Fatalf("%s (conc %d, %v): returned %d bytes, want the %d before chunk %d", name, conc, mode, len(got), int(index)*tcs, index)
		}
	}
}

// checkReaderAtFails checks that a ReaderAt over ct either refuses to open
// or fails on the chunk index, returning only the chunks before it.
func checkReaderAtFails(t *testing.T, name string, ct, pt []byte, index uint64) {
	t.Helper()
	ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), testKey(1), tamperOpts)
	if err != nil {
		return
	}
	got := make([]byte, ra.Size())
	n, err := ra.ReadAt(got, 0)
	var ce *ChunkError
	if !errors.As(err, &ce) || ce.Index != index {
		t.Fatalf("%s: ReadAt = %d, %v; want a *ChunkError at chunk %d", name, n, err, index)
	}
	if n != int(index)*tcs || !bytes.Equal(got[:n], pt[:n]) {
		t.Fatalf("%s: ReadAt returned %d bytes, want the %d before chunk %d", name, n, int(index)*tcs, index)
	}
	if !isZero(got[n:]) {
		t.Fatalf("%s: ReadAt left bytes of the failing chunk in p", name)
	}
	// A range inside the failing chunk returns nothing.
	n, err = ra.ReadAt(got[:10], int64(index)*tcs+5)
	if n != 0 || err == nil || err == io.EOF {
		t.Fatalf("%s: ReadAt inside the failing chunk = %d, %v", name, n, err)
	}
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func TestTamperBitFlips(t *testing.T) {
	pt := plaintext(2*tcs+100, 7) // two full chunks and a short final one
	ct := encrypt(t, pt, testKey(1), tamperOpts, oneWrite)
	full := tcs + 28
	step := 1
	if testing.Short() {
		step = 13
	}
	for bit := 0; bit < len(ct)*8; bit += step {
		bad := bytes.Clone(ct)
		bad[bit/8] ^= 1 << (bit % 8)
		chunk := uint64(bit / 8 / full)
		name := fmt.Sprintf("flip bit %d", bit)
		checkFails(t, name, bad, pt, 1, chunk, ErrAuthentication)
		if bit%7 == 0 {
			checkFails(t, name, bad, pt, 3, chunk, ErrAuthentication)
			checkReaderAtFails(t, name, bad, pt, chunk)
		}
	}
}

func TestTamperTruncation(t *testing.T) {
	for _, size := range []int{2*tcs + 100, 3 * tcs} {
		pt := plaintext(size, 7)
		ct := encrypt(t, pt, testKey(1), tamperOpts, oneWrite)
		full := tcs + 28
		for cut := 0; cut < len(ct); cut++ {
			bad := ct[:cut]
			name := fmt.Sprintf("size %d cut at %d", size, cut)
			switch {
			case cut == 0:
				checkFails(t, name, bad, pt, 1, 0, ErrTruncated)
			case cut%full == 0:
				// A full chunk that was sealed as non-final now ends the
				// stream.
				checkFails(t, name, bad, pt, 1, uint64(cut/full-1), ErrTruncated)
				checkFails(t, name, bad, pt, 2, uint64(cut/full-1), ErrTruncated)
			case cut%full < 28:
				checkFails(t, name, bad, pt, 1, uint64(cut/full), ErrTruncated)
			default:
				checkFails(t, name, bad, pt, 1, uint64(cut/full), ErrAuthentication)
			}
			if _, err := NewReaderAt(bytes.NewReader(bad), int64(cut), testKey(1), tamperOpts); err == nil {
				t.Fatalf("%s: NewReaderAt succeeded", name)
			}
			// A ReaderAt opened with the full size over a short source.
			if ra, err := NewReaderAt(bytes.NewReader(bad), int64(len(ct)), testKey(1), tamperOpts); err == nil {
				t.Fatalf("%s: NewReaderAt with the original size succeeded (Size %d)", name, ra.Size())
			}
		}
	}
}

func TestTamperChunks(t *testing.T) {
	full := tcs + 28
	pt := plaintext(3*tcs+100, 8) // chunks 0, 1, 2 full, 3 short and final
	ct := encrypt(t, pt, testKey(1), tamperOpts, oneWrite)
	chunks := [][]byte{ct[:full], ct[full : 2*full], ct[2*full : 3*full], ct[3*full:]}
	join := func(idx ...int) []byte {
		var b []byte
		for _, i := range idx {
			b = append(b, chunks[i]...)
		}
		return b
	}
	ptFull := plaintext(2*tcs, 9) // chunks 0 and 1, 1 full and final
	ctFull := encrypt(t, ptFull, testKey(1), tamperOpts, oneWrite)

	for _, tc := range []struct {
		name  string
		ct    []byte
		pt    []byte
		index uint64
		err   error
	}{
		{"swap 0 and 1", join(1, 0, 2, 3), pt, 0, ErrAuthentication},
		{"swap 1 and 2", join(0, 2, 1, 3), pt, 1, ErrAuthentication},
		{"swap 2 and final", join(0, 1, 3, 2), pt, 2, ErrAuthentication},
		{"duplicate 0", join(0, 0, 1, 2, 3), pt, 1, ErrAuthentication},
		{"duplicate 1", join(0, 1, 1, 2, 3), pt, 2, ErrAuthentication},
		{"duplicate final", join(0, 1, 2, 3, 3), pt, 3, ErrAuthentication},
		{"drop 0", join(1, 2, 3), pt, 0, ErrAuthentication},
		{"drop 1", join(0, 2, 3), pt, 1, ErrAuthentication},
		{"drop final", join(0, 1, 2), pt, 2, ErrTruncated},
		{"drop final two", join(0, 1), pt, 1, ErrTruncated},
		{"final only", join(3), pt, 0, ErrAuthentication},
		{"append 1 byte", append(bytes.Clone(ct), 0), pt, 3, ErrAuthentication},
		{"append 28 bytes", append(bytes.Clone(ct), make([]byte, 28)...), pt, 3, ErrAuthentication},
		{"append a chunk", append(bytes.Clone(ct), chunks[0]...), pt, 3, ErrAuthentication},
		{"full final + 1 byte", append(bytes.Clone(ctFull), 0), ptFull, 1, ErrTrailingData},
		{"full final + 100 bytes", append(bytes.Clone(ctFull), make([]byte, 100)...), ptFull, 1, ErrTrailingData},
		{"full final + itself", append(bytes.Clone(ctFull), ctFull...), ptFull, 1, ErrTrailingData},
		{"full final + empty chunk", append(bytes.Clone(ctFull), encrypt(t, nil, testKey(1), tamperOpts, oneWrite)...), ptFull, 1, ErrTrailingData},
	} {
		for _, conc := range []int{1, 2, 4} {
			checkFails(t, tc.name, tc.ct, tc.pt, conc, tc.index, tc.err)
		}
		checkReaderAtFails(t, tc.name, tc.ct, tc.pt, min(tc.index, uint64(len(tc.ct)/full)))
	}
}

func TestWrongParameters(t *testing.T) {
	pt := plaintext(2*tcs+100, 7)
	ct := encrypt(t, pt, testKey(1), tamperOpts, oneWrite)
	ctEmpty := encrypt(t, nil, testKey(1), tamperOpts, oneWrite)
	for _, tc := range []struct {
		name string
		key  []byte
		opts Options
	}{
		{"wrong key", testKey(2), *tamperOpts},
		{"wrong AAD", testKey(1), Options{ChunkSize: tcs, AAD: []byte("header digesT")}},
		{"no AAD", testKey(1), Options{ChunkSize: tcs}},
		{"longer AAD", testKey(1), Options{ChunkSize: tcs, AAD: []byte("header digest\x00")}},
		{"wrong chunk size", testKey(1), Options{ChunkSize: 2 * tcs, AAD: tamperOpts.AAD}},
		{"wrong suite", testKey(1), Options{ChunkSize: tcs, AAD: tamperOpts.AAD, Suite: ChaCha20Poly1305}},
	} {
		if tc.opts.Suite != AES256GCM && !slices.Contains(suites(), tc.opts.Suite) {
			continue
		}
		for i, c := range [][]byte{ct, ctEmpty} {
			if i == 1 && tc.name == "wrong chunk size" {
				// A stream of one short chunk reads the same with any
				// larger chunk size: the size is not bound, only the
				// chunk boundaries are.
				continue
			}
			for _, conc := range []int{1, 3} {
				opts := tc.opts
				opts.Concurrency = conc
				got, err := decrypt(c, tc.key, &opts, readAll)
				var ce *ChunkError
				if len(got) != 0 || !errors.As(err, &ce) || ce.Index != 0 {
					t.Errorf("%s (conc %d): %d bytes, %v; want a *ChunkError at chunk 0", tc.name, conc, len(got), err)
				}
			}
			if _, err := NewReaderAt(bytes.NewReader(c), int64(len(c)), tc.key, &tc.opts); err == nil {
				t.Errorf("%s: NewReaderAt succeeded", tc.name)
			}
		}
	}
}

// TestEmptyFinalChunkAfterFull checks that a Reader refuses a stream whose
// final chunk is empty after a full one, which a Writer never produces, even
// when it authenticates (sealed here by hand with the key).
func TestEmptyFinalChunkAfterFull(t *testing.T) {
	cfg, err := newConfig(testKey(1), tamperOpts)
	if err != nil {
		t.Fatal(err)
	}
	pt := plaintext(tcs, 3)
	c := newChunk(cfg, true)
	c.seal, c.in, c.index, c.final = true, pt, 0, false
	c.run()
	ct := bytes.Clone(c.out)
	c.in, c.index, c.final = nil, 1, true
	c.run()
	ct = append(ct, c.out...)
	checkFails(t, "empty final chunk", ct, pt, 1, 1, ErrAuthentication)
	if _, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), testKey(1), tamperOpts); !errors.Is(err, ErrInvalidSize) {
		t.Errorf("NewReaderAt = %v, want ErrInvalidSize", err)
	}
}

// TestFailedReadLeavesNoPlaintext checks the caller's buffer after a chunk
// fails: a Reader may open a chunk straight into it, and must leave no
// plaintext of the failing chunk there.
func TestFailedReadLeavesNoPlaintext(t *testing.T) {
	pt := plaintext(3*tcs, 4)
	ct := encrypt(t, pt, testKey(1), tamperOpts, oneWrite)
	ct[(tcs+28)+100] ^= 1 // chunk 1
	for _, conc := range []int{1, 3} {
		opts := *tamperOpts
		opts.Concurrency = conc
		r, _ := NewReader(bytes.NewReader(ct), testKey(1), &opts)
		p := make([]byte, tcs)
		if n, err := io.ReadFull(r, p); n != tcs || err != nil || !bytes.Equal(p, pt[:tcs]) {
			t.Fatalf("conc %d: chunk 0: %d, %v", conc, n, err)
		}
		p = bytes.Repeat([]byte{0xAA}, 2*tcs)
		n, err := r.Read(p)
		if n != 0 || !errors.Is(err, ErrAuthentication) {
			t.Fatalf("conc %d: chunk 1: %d, %v", conc, n, err)
		}
		for i, b := range p {
			if b != 0xAA && b != 0 {
				t.Fatalf("conc %d: byte %d of the buffer changed to %#x after a failed Read", conc, i, b)
			}
		}
	}
}

// splitWriterTo writes its data to WriteTo's writer in pieces of the given
// sizes, to drive the carry logic of memOpener, which bytes.Reader and
// bytes.Buffer (one Write each) never reach.
type splitWriterTo struct {
	data   []byte
	pieces []int
}

func (s splitWriterTo) WriteTo(w io.Writer) (int64, error) {
	var n int64
	data := s.data
	for i := 0; len(data) > 0; i++ {
		k := min(len(data), s.pieces[i%len(s.pieces)])
		m, err := w.Write(data[:k])
		n += int64(m)
		if err != nil {
			return n, err
		}
		data = data[k:]
	}
	return n, nil
}

func TestMemOpenerSplitWrites(t *testing.T) {
	full := tcs + 28
	pt := plaintext(3*tcs+100, 6)
	ct := encrypt(t, pt, testKey(1), tamperOpts, oneWrite)
	ptFull := plaintext(2*tcs, 9)
	ctFull := encrypt(t, ptFull, testKey(1), tamperOpts, oneWrite)
	bad := bytes.Clone(ct)
	bad[full+7] ^= 1
	for _, pieces := range [][]int{{1}, {full}, {full - 1}, {full + 1}, {2 * full}, {3, full, 5000, 1}} {
		for _, tc := range []struct {
			name  string
			ct    []byte
			pt    []byte
			index uint64
			err   error
		}{
			{"intact", ct, pt, 0, nil},
			{"full final", ctFull, ptFull, 0, nil},
			{"flipped chunk 1", bad, pt, 1, ErrAuthentication},
			{"cut at a boundary", ct[:2*full], pt, 1, ErrTruncated},
			{"cut in the nonce", ct[:2*full+5], pt, 2, ErrTruncated},
			{"trailing", append(bytes.Clone(ctFull), 1, 2, 3), ptFull, 1, ErrTrailingData},
			{"empty", nil, nil, 0, ErrTruncated},
		} {
			for _, conc := range []int{1, 3} {
				opts := *tamperOpts
				opts.Concurrency = conc
				h, _ := NewReader(nil, testKey(1), &opts)
				var out bytes.Buffer
				n, err := h.r.writeToFromMemory(splitWriterTo{tc.ct, pieces}, &out)
				h.Close()
				name := fmt.Sprintf("%s, pieces %v, conc %d", tc.name, pieces, conc)
				if tc.err == nil {
					if err != nil || !bytes.Equal(out.Bytes(), tc.pt) || n != int64(len(tc.pt)) {
						t.Fatalf("%s: %d bytes, %v", name, n, err)
					}
					continue
				}
				var ce *ChunkError
				if !errors.As(err, &ce) || ce.Index != tc.index || !errors.Is(err, tc.err) {
					t.Fatalf("%s: %v, want %v at chunk %d", name, err, tc.err, tc.index)
				}
				if want := tc.pt[:int(tc.index)*tcs]; !bytes.Equal(out.Bytes(), want) || n != int64(len(want)) {
					t.Fatalf("%s: wrote %d bytes, want the %d before chunk %d", name, out.Len(), len(want), tc.index)
				}
			}
		}
	}
}
