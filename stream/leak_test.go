package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"testing"
	"time"

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
			r.Close()
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

// TestCloseWaitsForWorkers closes Readers half way through, and Writers
// after a failed write, at every concurrency, and checks that no worker
// goroutine is left the moment Close returns: Close waits for them, rather
// than letting them exit some time later.
func TestCloseWaitsForWorkers(t *testing.T) {
	const cs = MinChunkSize
	pt := plaintext(64*cs, 2)
	ct := encrypt(t, pt, testKey(1), &Options{ChunkSize: cs}, oneWrite)
	boom := errors.New("boom")
	for _, conc := range []int{1, 2, 3, 4, 8, 16, 64} {
		opts := &Options{ChunkSize: cs, Concurrency: conc}
		t.Run(fmt.Sprint("concurrency ", conc), func(t *testing.T) {
			for rep := range 10 {
				r, err := NewReader(bytes.NewReader(ct), testKey(1), opts)
				if err != nil {
					t.Fatal(err)
				}
				half := make([]byte, len(pt)/2+rep*1000)
				if _, err := io.ReadFull(r, half); err != nil || !bytes.Equal(half, pt[:len(half)]) {
					t.Fatalf("reading half: %v", err)
				}
				if conc > 1 && rep == 0 {
					// The count must see the workers while they run, or
					// the checks after Close could not fail.
					seeWorkers(t)
				}
				if err := r.Close(); err != nil {
					t.Fatalf("Close = %v", err)
				}
				if n := workerGoroutines(); n != 0 {
					t.Fatalf("reader: %d worker goroutines after Close", n)
				}
				if err := r.Close(); err != nil {
					t.Fatalf("second Close = %v", err)
				}
				if n, err := r.Read(half); n != 0 || !errors.Is(err, fs.ErrClosed) {
					t.Fatalf("Read after Close = %d, %v; want fs.ErrClosed", n, err)
				}
				if _, err := r.WriteTo(io.Discard); !errors.Is(err, fs.ErrClosed) {
					t.Fatalf("WriteTo after Close = %v; want fs.ErrClosed", err)
				}

				w, err := NewWriter(&failingWriter{limit: 5 * cs, err: boom}, testKey(1), opts)
				if err != nil {
					t.Fatal(err)
				}
				w.Write(pt) // fails part way, with chunks in flight
				if err := w.Close(); !errors.Is(err, boom) {
					t.Fatalf("Writer.Close = %v, want %v", err, boom)
				}
				if n := workerGoroutines(); n != 0 {
					t.Fatalf("writer: %d worker goroutines after Close", n)
				}
			}
			goleak.VerifyNone(t)
		})
	}
}

// seeWorkers waits until workerGoroutines finds a worker running (a
// Reader's workers run until it is closed, but may not have been scheduled
// yet), and fails if it finds none within a few seconds.
func seeWorkers(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); workerGoroutines() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no worker goroutine found while a parallel Reader runs: workerGoroutines does not recognize them")
		}
		time.Sleep(time.Millisecond)
	}
}

// workerGoroutines counts the goroutines running a worker of this package,
// from a dump of every goroutine's stack (goleak waits for goroutines to
// exit; this does not).
func workerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("geoseal/stream.work(")) {
			count++
		}
	}
	return count
}
