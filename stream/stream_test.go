package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	key := testKey(1)
	for _, suite := range suites() {
		for _, cs := range []int{MinChunkSize, 16 << 10, DefaultChunkSize} {
			sizes := []int{0, 1, cs - 1, cs, cs + 1, 3 * cs, 3*cs + 1}
			for _, conc := range []int{0, 1, 2, 3, 8} {
				for _, size := range sizes {
					for _, mode := range []writeMode{oneWrite, smallWrites, readFrom} {
						name := fmt.Sprintf("%v/chunk=%d/conc=%d/size=%d/%v", suite, cs, conc, size, mode)
						t.Run(name, func(t *testing.T) {
							opts := &Options{ChunkSize: cs, Concurrency: conc, AAD: []byte("aad"), Suite: suite}
							pt := plaintext(size, uint64(size))
							ct := encrypt(t, pt, key, opts, mode)
							if want := EncryptedSize(int64(size), opts); int64(len(ct)) != want {
								t.Fatalf("len(ct) = %d, EncryptedSize = %d", len(ct), want)
							}
							if got, err := PlaintextSize(int64(len(ct)), opts); err != nil || got != int64(size) {
								t.Fatalf("PlaintextSize = %d, %v; want %d", got, err, size)
							}
							// Read back at every other concurrency.
							for _, rconc := range []int{1, 2, 5} {
								for _, rmode := range []readMode{readAll, writeTo, smallReads} {
									ropts := *opts
									ropts.Concurrency = rconc
									got, err := decrypt(ct, key, &ropts, rmode)
									if err != nil || !bytes.Equal(got, pt) {
										t.Fatalf("read conc=%d %v: %d bytes, %v; want %d bytes", rconc, rmode, len(got), err, len(pt))
									}
								}
							}
							ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), key, opts)
							if err != nil {
								t.Fatal(err)
							}
							if ra.Size() != int64(size) {
								t.Fatalf("Size = %d, want %d", ra.Size(), size)
							}
							got := make([]byte, size)
							if n, err := ra.ReadAt(got, 0); n != size || err != nil || !bytes.Equal(got, pt) {
								t.Fatalf("ReadAt = %d, %v", n, err)
							}
						})
					}
				}
			}
		}
	}
}

// TestFinalChunkRule pins the layout: full chunks, a full final chunk for a
// multiple of the chunk size, and one empty chunk for the empty plaintext.
func TestFinalChunkRule(t *testing.T) {
	const cs = MinChunkSize
	opts := &Options{ChunkSize: cs}
	for _, tc := range []struct{ size, want int64 }{
		{0, 28},
		{1, 29},
		{cs, cs + 28},
		{cs + 1, cs + 1 + 2*28},
		{2 * cs, 2*cs + 2*28},
	} {
		if got := EncryptedSize(tc.size, opts); got != tc.want {
			t.Errorf("EncryptedSize(%d) = %d, want %d", tc.size, got, tc.want)
		}
		ct := encrypt(t, plaintext(int(tc.size), 1), testKey(1), opts, oneWrite)
		if int64(len(ct)) != tc.want {
			t.Errorf("size %d: wrote %d bytes, want %d", tc.size, len(ct), tc.want)
		}
	}
	x := &Options{ChunkSize: cs, Suite: ChaCha20Poly1305}
	if got := EncryptedSize(cs+1, x); got != cs+1+2*40 {
		t.Errorf("XChaCha EncryptedSize(cs+1) = %d, want %d", got, cs+1+2*40)
	}
}

func TestSizes(t *testing.T) {
	opts := &Options{ChunkSize: MinChunkSize}
	full := int64(MinChunkSize + 28)
	for _, tc := range []struct {
		enc  int64
		want int64 // -1: invalid
	}{
		{-1, -1}, {0, -1}, {27, -1}, {28, 0}, {29, 1},
		{full, MinChunkSize}, {full + 28, -1}, {full + 29, MinChunkSize + 1},
		{2 * full, 2 * MinChunkSize}, {2*full + 1, -1},
		{MaxChunks * full, MaxChunks * MinChunkSize}, {MaxChunks*full + 29, -1},
	} {
		got, err := PlaintextSize(tc.enc, opts)
		if tc.want < 0 {
			if !errors.Is(err, ErrInvalidSize) {
				t.Errorf("PlaintextSize(%d) = %d, %v; want ErrInvalidSize", tc.enc, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("PlaintextSize(%d) = %d, %v; want %d", tc.enc, got, err, tc.want)
		}
		if back := EncryptedSize(got, opts); back != tc.enc {
			t.Errorf("EncryptedSize(%d) = %d, want %d", got, back, tc.enc)
		}
	}
	for _, bad := range []int64{-1, MaxChunks*MinChunkSize + 1} {
		if got := EncryptedSize(bad, opts); got != -1 {
			t.Errorf("EncryptedSize(%d) = %d, want -1", bad, got)
		}
	}
}

func TestInvalidOptions(t *testing.T) {
	key := testKey(1)
	for _, tc := range []struct {
		name string
		key  []byte
		opts *Options
	}{
		{"short key", key[:16], nil},
		{"long key", append(key, 0), nil},
		{"nil key", nil, nil},
		{"chunk not power of two", key, &Options{ChunkSize: 5000}},
		{"chunk too small", key, &Options{ChunkSize: 2048}},
		{"chunk too large", key, &Options{ChunkSize: 32 << 20}},
		{"negative chunk", key, &Options{ChunkSize: -4096}},
		{"negative concurrency", key, &Options{Concurrency: -1}},
		{"huge concurrency", key, &Options{Concurrency: 1 << 20}},
		{"unknown suite", key, &Options{Suite: 7}},
	} {
		if _, err := NewWriter(io.Discard, tc.key, tc.opts); err == nil {
			t.Errorf("%s: NewWriter succeeded", tc.name)
		}
		if _, err := NewReader(bytes.NewReader(nil), tc.key, tc.opts); err == nil {
			t.Errorf("%s: NewReader succeeded", tc.name)
		}
		if _, err := NewReaderAt(bytes.NewReader(nil), 28, tc.key, tc.opts); err == nil {
			t.Errorf("%s: NewReaderAt succeeded", tc.name)
		}
	}
	if EncryptedSize(1, &Options{ChunkSize: 3}) != -1 {
		t.Error("EncryptedSize accepted chunk size 3")
	}
	if _, err := PlaintextSize(100, &Options{Suite: 9}); err == nil {
		t.Error("PlaintextSize accepted suite 9")
	}
}

func TestAADIsCopied(t *testing.T) {
	aad := []byte("original")
	opts := &Options{AAD: aad, ChunkSize: MinChunkSize}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testKey(1), opts)
	if err != nil {
		t.Fatal(err)
	}
	copy(aad, "mutated!")
	w.Write([]byte("hello"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := decrypt(buf.Bytes(), testKey(1), &Options{AAD: []byte("original"), ChunkSize: MinChunkSize}, readAll)
	if err != nil || string(got) != "hello" {
		t.Fatalf("decrypt = %q, %v", got, err)
	}
}

func TestWriterAfterClose(t *testing.T) {
	for _, conc := range []int{1, 4} {
		w, err := NewWriter(io.Discard, testKey(1), &Options{Concurrency: conc})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("x"))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("y")); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("conc %d: Write after Close = %v, want fs.ErrClosed", conc, err)
		}
		if err := w.Close(); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("conc %d: second Close = %v, want fs.ErrClosed", conc, err)
		}
	}
}

// failingWriter accepts limit bytes, then fails.
type failingWriter struct {
	limit int
	err   error
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.limit {
		n := f.limit
		f.limit = 0
		return n, f.err
	}
	f.limit -= len(p)
	return len(p), nil
}

func TestWriterDstError(t *testing.T) {
	boom := errors.New("boom")
	pt := plaintext(10*MinChunkSize+5, 1)
	for _, conc := range []int{1, 3} {
		for _, limit := range []int{0, 100, 3 * (MinChunkSize + 28)} {
			for _, mode := range []writeMode{oneWrite, smallWrites} {
				dst := &failingWriter{limit: limit, err: boom}
				w, err := NewWriter(dst, testKey(1), &Options{ChunkSize: MinChunkSize, Concurrency: conc})
				if err != nil {
					t.Fatal(err)
				}
				var werr error
				switch mode {
				case oneWrite:
					_, werr = w.Write(pt)
				case smallWrites:
					for p := pt; len(p) > 0 && werr == nil; p = p[min(len(p), 1000):] {
						_, werr = w.Write(p[:min(len(p), 1000)])
					}
				}
				if werr == nil {
					werr = w.Close()
				}
				if !errors.Is(werr, boom) {
					t.Errorf("conc %d limit %d %v: error %v, want boom", conc, limit, mode, werr)
				}
				if _, err := w.Write([]byte("more")); !errors.Is(err, boom) {
					t.Errorf("Write after failure = %v, want boom", err)
				}
				if err := w.Close(); !errors.Is(err, boom) {
					t.Errorf("Close after failure = %v, want boom", err)
				}
			}
		}
	}
}

func TestShortWrite(t *testing.T) {
	w, _ := NewWriter(shortWriter{}, testKey(1), nil)
	w.Write([]byte("x"))
	if err := w.Close(); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("Close = %v, want io.ErrShortWrite", err)
	}
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

// TestWriteDoesNotKeepInput checks that the parallel Writer, which seals
// large writes straight from the caller's buffer, is done with it when
// Write returns: overwriting it afterwards must not change the stream.
func TestWriteDoesNotKeepInput(t *testing.T) {
	pt := plaintext(20*MinChunkSize+3, 5)
	for _, conc := range []int{1, 2, 4} {
		opts := &Options{ChunkSize: MinChunkSize, Concurrency: conc}
		var buf bytes.Buffer
		w, _ := NewWriter(&buf, testKey(1), opts)
		in := bytes.Clone(pt)
		w.Write(in)
		clear(in)
		w.Close()
		got, err := decrypt(buf.Bytes(), testKey(1), opts, readAll)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("conc %d: %v", conc, err)
		}
	}
}

func TestReaderSrcError(t *testing.T) {
	boom := errors.New("boom")
	opts := &Options{ChunkSize: MinChunkSize}
	ct := encrypt(t, plaintext(5*MinChunkSize, 1), testKey(1), opts, oneWrite)
	for _, conc := range []int{1, 3} {
		for _, cut := range []int{0, 10, MinChunkSize + 28, 2*(MinChunkSize+28) + 5} {
			src := io.MultiReader(bytes.NewReader(ct[:cut]), errReader{boom})
			r, _ := NewReader(src, testKey(1), &Options{ChunkSize: MinChunkSize, Concurrency: conc})
			got, err := io.ReadAll(r)
			if !errors.Is(err, boom) {
				t.Errorf("conc %d cut %d: %v, want boom", conc, cut, err)
			}
			// Bytes before the failing read are returned only if the
			// chunk holding them was complete and followed by more data.
			if want := (cut / (MinChunkSize + 28)) * MinChunkSize; len(got) > want {
				t.Errorf("conc %d cut %d: got %d bytes, at most %d", conc, cut, len(got), want)
			}
		}
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestReaderClose(t *testing.T) {
	opts := &Options{ChunkSize: MinChunkSize, Concurrency: 2}
	ct := encrypt(t, plaintext(5*MinChunkSize, 1), testKey(1), opts, oneWrite)
	r, _ := NewReader(bytes.NewReader(ct), testKey(1), opts)
	buf := make([]byte, 10)
	if _, err := r.Read(buf); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(buf); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("Read after Close = %v, want fs.ErrClosed", err)
	}
}

func TestSuiteString(t *testing.T) {
	for s, want := range map[Suite]string{AES256GCM: "AES-256-GCM", ChaCha20Poly1305: "XChaCha20-Poly1305", 9: "Suite(9)"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", uint8(s), s.String(), want)
		}
	}
}

func TestReadFromSrcError(t *testing.T) {
	boom := errors.New("boom")
	for _, conc := range []int{1, 3} {
		var buf bytes.Buffer
		w, _ := NewWriter(&buf, testKey(1), &Options{ChunkSize: MinChunkSize, Concurrency: conc})
		src := io.MultiReader(bytes.NewReader(plaintext(3*MinChunkSize+7, 1)), errReader{boom})
		n, err := w.(io.ReaderFrom).ReadFrom(src)
		if !errors.Is(err, boom) || n != 3*MinChunkSize+7 {
			t.Errorf("conc %d: ReadFrom = %d, %v; want all bytes and boom", conc, n, err)
		}
		w.Close()
	}
}

func TestZeroLengthRead(t *testing.T) {
	ct := encrypt(t, []byte("hi"), testKey(1), nil, oneWrite)
	r, _ := NewReader(bytes.NewReader(ct), testKey(1), nil)
	if n, err := r.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
	if got, err := io.ReadAll(r); err != nil || string(got) != "hi" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	if n, err := r.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF = %d, %v", n, err)
	}
}

// TestKeyNotRetained overwrites the key right after each constructor and
// checks that the stream still works: a Writer, Reader or ReaderAt keeps no
// reference to the caller's key, so the caller can zero it at once.
func TestKeyNotRetained(t *testing.T) {
	for _, suite := range suites() {
		opts := &Options{ChunkSize: MinChunkSize, Suite: suite}
		pt := plaintext(3*MinChunkSize+1, 7)
		key := testKey(9)
		var buf bytes.Buffer
		w, err := NewWriter(&buf, key, opts)
		if err != nil {
			t.Fatal(err)
		}
		clear(key)
		w.Write(pt)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		ct := buf.Bytes()
		if got, err := decrypt(ct, testKey(9), opts, readAll); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%v: the stream written after the key was zeroed does not open with the key: %v", suite, err)
		}

		key = testKey(9)
		r, err := NewReader(bytes.NewReader(ct), key, opts)
		if err != nil {
			t.Fatal(err)
		}
		clear(key)
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, pt) {
			t.Errorf("%v: Reader after the key was zeroed: %d bytes, %v", suite, len(got), err)
		}

		key = testKey(9)
		ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), key, opts)
		if err != nil {
			t.Fatal(err)
		}
		clear(key)
		got := make([]byte, len(pt))
		if n, err := ra.ReadAt(got, 0); n != len(pt) || !bytes.Equal(got, pt) {
			t.Errorf("%v: ReaderAt after the key was zeroed: %d bytes, %v", suite, n, err)
		}
	}
}
