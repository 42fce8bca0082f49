package stream

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// fuzzVectors seeds the fuzzers with the known-answer streams and broken
// copies of them, so that mutations explore near-valid input.
func fuzzVectors(f *testing.F) []decodedVector {
	vs := loadVectors(f)
	var usable []decodedVector
	for _, v := range vs {
		if isSuiteUsable(v.Suite) {
			usable = append(usable, v)
		}
	}
	return usable
}

func seedBroken(f *testing.F, add func(data []byte, which uint8), vs []decodedVector) {
	for i, v := range vs {
		w := uint8(i)
		add(v.ct, w)
		add(v.ct[:len(v.ct)/2], w)
		add(v.ct[:max(len(v.ct)-1, 0)], w)
		add(append(bytes.Clone(v.ct), 0), w)
		flipped := bytes.Clone(v.ct)
		flipped[len(flipped)/3] ^= 0x40
		add(flipped, w)
	}
	add(nil, 0)
	add(make([]byte, 28), 0)
	add(bytes.Repeat([]byte{0xff}, 4096+28+1), 0)
}

// checkAuthentic checks what a reader returned from data against vector v,
// the only stream that authenticates under v's key: bytes may come out only
// for chunks that are exactly v's chunks, and a clean end only for exactly
// v's stream.
func checkAuthentic(t *testing.T, v *decodedVector, data, got []byte, err error) {
	overhead, _ := suiteOverhead(v.Suite)
	full := v.ChunkSize + overhead
	if !bytes.Equal(got, v.pt[:min(len(got), len(v.pt))]) || len(got) > len(v.pt) {
		t.Fatalf("returned %d bytes that are not the vector's plaintext", len(got))
	}
	if err == nil {
		if !bytes.Equal(data, v.ct) || !bytes.Equal(got, v.pt) {
			t.Fatalf("clean end for input that is not the vector")
		}
		return
	}
	if errors.Is(err, io.EOF) {
		t.Fatalf("io.EOF as a failure: %v", err)
	}
	if len(got)%v.ChunkSize != 0 {
		t.Fatalf("returned %d bytes, part of a chunk, then %v", len(got), err)
	}
	if k := len(got) / v.ChunkSize; !bytes.HasPrefix(data, v.ct[:k*full]) {
		t.Fatalf("returned %d chunks of input that does not hold them", k)
	}
}

func FuzzReader(f *testing.F) {
	vs := fuzzVectors(f)
	seedBroken(f, func(data []byte, which uint8) {
		f.Add(data, which, uint8(1))
		f.Add(data, which, uint8(0x80))
	}, vs)
	f.Fuzz(func(t *testing.T, data []byte, which, conc uint8) {
		v := &vs[int(which)%len(vs)]
		r, err := NewReader(bytes.NewReader(data), v.key, v.opts(int(conc%5)))
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		if conc&0x80 != 0 {
			// io.Copy uses WriteTo, which opens chunks in place in data.
			var buf bytes.Buffer
			_, err = io.Copy(&buf, r)
			got = buf.Bytes()
		} else {
			got, err = io.ReadAll(r)
		}
		checkAuthentic(t, v, data, got, err)
	})
}

func FuzzReaderAt(f *testing.F) {
	vs := fuzzVectors(f)
	seedBroken(f, func(data []byte, which uint8) { f.Add(data, which, int64(0), uint16(5000)) }, vs)
	f.Add(vs[0].ct, uint8(0), int64(4000), uint16(200))
	f.Fuzz(func(t *testing.T, data []byte, which uint8, off int64, n uint16) {
		v := &vs[int(which)%len(vs)]
		ra, err := NewReaderAt(bytes.NewReader(data), int64(len(data)), v.key, v.opts(0))
		if err != nil {
			return
		}
		// Opening authenticated the final chunk, so the sizes match.
		if int64(len(data)) != int64(len(v.ct)) || ra.Size() != int64(len(v.pt)) {
			t.Fatalf("opened %d bytes as a stream of %d plaintext bytes", len(data), ra.Size())
		}
		p := make([]byte, n)
		got, err := ra.ReadAt(p, off)
		if got > 0 {
			if off < 0 || !bytes.Equal(p[:got], v.pt[off:off+int64(got)]) {
				t.Fatalf("ReadAt(%d, %d) returned %d bytes that are not the vector's plaintext", n, off, got)
			}
			overhead, _ := suiteOverhead(v.Suite)
			full := int64(v.ChunkSize + overhead)
			first, last := off/int64(v.ChunkSize), (off+int64(got)-1)/int64(v.ChunkSize)
			if !bytes.Equal(data[first*full:min((last+1)*full, int64(len(data)))], v.ct[first*full:min((last+1)*full, int64(len(v.ct)))]) {
				t.Fatalf("ReadAt returned bytes of chunks %d..%d that differ from the vector", first, last)
			}
		}
		if got < int(n) && err == nil {
			t.Fatalf("ReadAt = %d < %d with no error", got, n)
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add(uint32(0), uint8(0), uint8(0), uint8(1), uint8(0), []byte("aad"), uint64(1), uint8(0))
	f.Add(uint32(4096), uint8(0), uint8(2), uint8(0), uint8(0), []byte{}, uint64(2), uint8(1))
	f.Add(uint32(3*4096+1), uint8(1), uint8(3), uint8(2), uint8(1), []byte("x"), uint64(3), uint8(2))
	f.Add(uint32(100000), uint8(2), uint8(1), uint8(4), uint8(0), []byte(nil), uint64(4), uint8(0))
	f.Fuzz(func(t *testing.T, size uint32, csExp, wconc, rconc, suite uint8, aad []byte, seed uint64, mode uint8) {
		size %= 1 << 20
		opts := &Options{
			ChunkSize:   MinChunkSize << (csExp % 4),
			Concurrency: int(wconc % 5),
			AAD:         aad,
			Suite:       suites()[int(suite)%len(suites())],
		}
		pt := plaintext(int(size), seed)
		ct := encrypt(t, pt, testKey(byte(seed)), opts, writeMode(mode%3))
		if EncryptedSize(int64(size), opts) != int64(len(ct)) {
			t.Fatalf("EncryptedSize = %d, wrote %d", EncryptedSize(int64(size), opts), len(ct))
		}
		ropts := *opts
		ropts.Concurrency = int(rconc % 5)
		got, err := decrypt(ct, testKey(byte(seed)), &ropts, readMode(mode%3))
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("decrypt: %d bytes, %v", len(got), err)
		}
		ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), testKey(byte(seed)), opts)
		if err != nil {
			t.Fatal(err)
		}
		off := int64(seed % (uint64(size) + 1))
		p := make([]byte, min(int64(size)-off, int64(seed>>32)%(3*int64(opts.ChunkSize))))
		if n, err := ra.ReadAt(p, off); n != len(p) || (err != nil && err != io.EOF) || !bytes.Equal(p, pt[off:off+int64(n)]) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", len(p), off, n, err)
		}
	})
}

func FuzzSizes(f *testing.F) {
	f.Add(int64(0), uint8(0), uint8(0))
	f.Add(int64(28), uint8(0), uint8(0))
	f.Add(int64(4096+28+28), uint8(0), uint8(0))
	f.Add(int64(1<<44), uint8(3), uint8(1))
	f.Fuzz(func(t *testing.T, n int64, csExp, suite uint8) {
		opts := &Options{ChunkSize: MinChunkSize << (csExp % 13), Suite: Suite(suite % 2)}
		if pt, err := PlaintextSize(n, opts); err == nil {
			if pt < 0 || EncryptedSize(pt, opts) != n {
				t.Fatalf("PlaintextSize(%d) = %d, EncryptedSize of that = %d", n, pt, EncryptedSize(pt, opts))
			}
		} else if !errors.Is(err, ErrInvalidSize) {
			t.Fatalf("PlaintextSize(%d): %v", n, err)
		}
		if enc := EncryptedSize(n, opts); enc >= 0 {
			if pt, err := PlaintextSize(enc, opts); err != nil || pt != n {
				t.Fatalf("PlaintextSize(EncryptedSize(%d) = %d) = %d, %v", n, enc, pt, err)
			}
		} else if n >= 0 && chunkCount(n, opts.ChunkSize) <= MaxChunks {
			t.Fatalf("EncryptedSize(%d) = %d", n, enc)
		}
	})
}
