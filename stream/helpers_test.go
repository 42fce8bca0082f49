package stream

import (
	"bytes"
	"crypto/fips140"
	"io"
	"math/rand/v2"
	"testing"
)

// suites returns the suites usable in this process: ChaCha20Poly1305 is
// refused in FIPS 140-only mode (tested by TestFIPSOnly).
func suites() []Suite {
	if fips140.Enforced() {
		return []Suite{AES256GCM}
	}
	return []Suite{AES256GCM, ChaCha20Poly1305}
}

func testKey(seed byte) []byte { return bytes.Repeat([]byte{seed}, KeySize) }

func plaintext(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

// writeMode is how a test feeds plaintext to a Writer.
type writeMode int

const (
	oneWrite    writeMode = iota // a single Write of everything
	smallWrites                  // Writes of 1000 bytes
	readFrom                     // io.Copy, which uses ReadFrom
)

func (m writeMode) String() string {
	return [...]string{"oneWrite", "smallWrites", "readFrom"}[m]
}

// onlyReader hides every method but Read, so io.Copy uses the Writer's
// ReadFrom, and reads at most max bytes at a time.
type onlyReader struct {
	r   io.Reader
	max int
}

func (o onlyReader) Read(p []byte) (int, error) {
	if len(p) > o.max {
		p = p[:o.max]
	}
	return o.r.Read(p)
}

func encrypt(t testing.TB, pt, key []byte, opts *Options, mode writeMode) []byte {
	t.Helper()
	var buf bytes.Buffer
	encryptTo(t, &buf, pt, key, opts, mode)
	return buf.Bytes()
}

// encryptTo writes the stream of pt to dst, feeding the Writer as mode
// says.
func encryptTo(t testing.TB, dst io.Writer, pt, key []byte, opts *Options, mode writeMode) {
	t.Helper()
	w, err := NewWriter(dst, key, opts)
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case oneWrite:
		if n, err := w.Write(pt); err != nil || n != len(pt) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	case smallWrites:
		for p := pt; len(p) > 0; {
			k := min(len(p), 1000)
			if n, err := w.Write(p[:k]); err != nil || n != k {
				t.Fatalf("Write = %d, %v", n, err)
			}
			p = p[k:]
		}
	case readFrom:
		if n, err := io.Copy(w, onlyReader{bytes.NewReader(pt), 7000}); err != nil || n != int64(len(pt)) {
			t.Fatalf("io.Copy = %d, %v", n, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// readMode is how a test drains a Reader.
type readMode int

const (
	readAll    readMode = iota // io.ReadAll: Read with growing buffers
	writeTo                    // io.Copy, which uses WriteTo
	smallReads                 // Read with 777-byte buffers
)

func (m readMode) String() string { return [...]string{"readAll", "writeTo", "smallReads"}[m] }

// decrypt returns what a Reader returned before failing, and the error
// (nil at a clean io.EOF).
func decrypt(ct, key []byte, opts *Options, mode readMode) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(ct), key, opts)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	switch mode {
	case writeTo:
		var out bytes.Buffer
		_, err := io.Copy(&out, r)
		return out.Bytes(), err
	case smallReads:
		var out []byte
		buf := make([]byte, 777)
		for {
			n, err := r.Read(buf)
			out = append(out, buf[:n]...)
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return out, err
			}
		}
	default:
		return io.ReadAll(r)
	}
}
