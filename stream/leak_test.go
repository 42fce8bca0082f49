package stream

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestNoGoroutineLeaks ends parallel Writers and Readers every way they can
// end and checks that their worker goroutines exit.
func TestNoGoroutineLeaks(t *testing.T) {
	const cs = MinChunkSize
	opts := &Options{ChunkSize: cs, Concurrency: 4}
	pt := plaintext(40*cs+1, 1)
	ct := encrypt(t, pt, testKey(1), opts, oneWrite)
	bad := bytes.Clone(ct)
	bad[10*(cs+28)+50] ^= 1
	boom := errors.New("boom")

	for _, tc := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"writer closed", func(t *testing.T) {
			w, _ := NewWriter(io.Discard, testKey(1), opts)
			w.Write(pt)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"writer dst error", func(t *testing.T) {
			w, _ := NewWriter(&failingWriter{limit: 3 * cs, err: boom}, testKey(1), opts)
			for range 10 {
				w.Write(pt[:5000])
			}
			if err := w.Close(); !errors.Is(err, boom) {
				t.Fatalf("Close = %v", err)
			}
		}},
		{"writer abandoned", func(t *testing.T) {
			w, _ := NewWriter(io.Discard, testKey(1), opts)
			w.Write(pt[:10*cs+5]) // chunks in flight, no Close
		}},
		{"reader to EOF", func(t *testing.T) {
			r, _ := NewReader(bytes.NewReader(ct), testKey(1), opts)
			if _, err := io.Copy(io.Discard, r); err != nil {
				t.Fatal(err)
			}
		}},
		{"reader authentication error", func(t *testing.T) {
			r, _ := NewReader(bytes.NewReader(bad), testKey(1), opts)
			if _, err := io.ReadAll(r); !errors.Is(err, ErrAuthentication) {
				t.Fatalf("ReadAll = %v", err)
			}
		}},
		{"reader WriteTo from memory, authentication error", func(t *testing.T) {
			r, _ := NewReader(bytes.NewReader(bad), testKey(1), opts)
			if _, err := io.Copy(io.Discard, r); !errors.Is(err, ErrAuthentication) {
				t.Fatalf("io.Copy = %v", err)
			}
		}},
		{"reader WriteTo from memory, dst error", func(t *testing.T) {
			r, _ := NewReader(bytes.NewBuffer(bytes.Clone(ct)), testKey(1), opts)
			if _, err := io.Copy(&failingWriter{limit: 5 * cs, err: boom}, r); !errors.Is(err, boom) {
				t.Fatalf("io.Copy = %v", err)
			}
		}},
		{"reader src error", func(t *testing.T) {
			r, _ := NewReader(io.MultiReader(bytes.NewReader(ct[:5*cs]), errReader{boom}), testKey(1), opts)
			if _, err := io.ReadAll(r); !errors.Is(err, boom) {
				t.Fatalf("ReadAll = %v", err)
			}
		}},
		{"reader closed early", func(t *testing.T) {
			r, _ := NewReader(bytes.NewReader(ct), testKey(1), opts)
			r.Read(make([]byte, 100))
			r.(io.Closer).Close()
		}},
		{"reader abandoned", func(t *testing.T) {
			r, _ := NewReader(bytes.NewReader(ct), testKey(1), opts)
			r.Read(make([]byte, 100)) // read-ahead in flight, no Close
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t)
			// Abandoned streams are stopped by a cleanup after the GC
			// finds them unreachable.
			runtime.GC()
			runtime.GC()
			goleak.VerifyNone(t)
		})
	}
}
