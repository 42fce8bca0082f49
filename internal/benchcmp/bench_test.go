package benchcmp

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/sio"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/streamingaead"

	"github.com/geoseal/geoseal/stream"
)

// size is the plaintext every benchmark encrypts or decrypts per op.
const size = 256 << 20

// chunk is the chunk size of the geoseal rows and of raw GCM (-chunk, to
// compare chunk sizes).
var chunk int

func init() {
	flag.IntVar(&chunk, "chunk", stream.DefaultChunkSize, "chunk size of the geoseal and raw GCM rows")
}

var (
	key = bytes.Repeat([]byte{7}, 32)
	aad = []byte("benchmark")

	plaintextOnce sync.Once
	plaintextBuf  []byte
)

func plaintext() []byte {
	plaintextOnce.Do(func() {
		plaintextBuf = make([]byte, size)
		rand.NewChaCha8([32]byte{1}).Read(plaintextBuf)
	})
	return plaintextBuf
}

// ciphertexts caches each library's encryption of plaintext() for its
// decryption benchmark, made once outside the timer.
var ciphertexts sync.Map

func ciphertext(b *testing.B, name string, enc func(io.Writer) io.WriteCloser) []byte {
	if ct, ok := ciphertexts.Load(name); ok {
		return ct.([]byte)
	}
	var buf bytes.Buffer
	buf.Grow(size + size/64)
	w := enc(&buf)
	if _, err := w.Write(plaintext()); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	ciphertexts.Store(name, buf.Bytes())
	return buf.Bytes()
}

// discard is io.Discard without ReadFrom, so io.CopyBuffer uses the
// 1 MiB buffer for the libraries whose readers lack WriteTo (io.Discard
// would read them 8 KiB at a time).
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

var copyBuf = make([]byte, 1<<20)

// encryptBench times io.Copy of the plaintext into the writer enc returns;
// bytes.Reader hands the whole plaintext to a single Write.
func encryptBench(b *testing.B, enc func(io.Writer) io.WriteCloser) {
	pt := plaintext()
	b.SetBytes(size)
	b.ResetTimer()
	cpu := cpuTime()
	for range b.N {
		w := enc(discard{})
		if _, err := io.Copy(w, bytes.NewReader(pt)); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	record(b, cpu)
}

// decryptBench times io.CopyBuffer of the reader dec returns to a discarding
// writer (geoseal's Reader implements WriterTo, which io.Copy prefers).
func decryptBench(b *testing.B, ct []byte, dec func(io.Reader) io.Reader) {
	b.SetBytes(size)
	b.ResetTimer()
	cpu := cpuTime()
	for range b.N {
		n, err := io.CopyBuffer(discard{}, dec(bytes.NewReader(ct)), copyBuf)
		if err != nil || n != size {
			b.Fatalf("decrypted %d bytes: %v", n, err)
		}
	}
	record(b, cpu)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func newGCM() cipher.AEAD {
	return must(cipher.NewGCMWithRandomNonce(must(aes.NewCipher(key))))
}

// BenchmarkRawGCM is the ceiling every row is compared with: AES-256-GCM
// (the same random-nonce AEAD geoseal uses) sealing and opening the
// plaintext in chunk-sized pieces, into a reused buffer, with no stream.
func BenchmarkRawGCM(b *testing.B) {
	aead := newGCM()
	b.Run("seal", func(b *testing.B) {
		pt := plaintext()
		out := make([]byte, chunk+aead.Overhead())
		b.SetBytes(size)
		b.ResetTimer()
		cpu := cpuTime()
		for range b.N {
			for p := pt; len(p) > 0; p = p[chunk:] {
				aead.Seal(out[:0], nil, p[:chunk], aad)
			}
		}
		record(b, cpu)
	})
	b.Run("open", func(b *testing.B) {
		ct := ciphertext(b, "raw", func(w io.Writer) io.WriteCloser { return &rawSealer{aead: aead, w: w} })
		out := make([]byte, chunk)
		enc := chunk + aead.Overhead()
		b.SetBytes(size)
		b.ResetTimer()
		cpu := cpuTime()
		for range b.N {
			for c := ct; len(c) > 0; c = c[enc:] {
				if _, err := aead.Open(out[:0], nil, c[:enc], aad); err != nil {
					b.Fatal(err)
				}
			}
		}
		record(b, cpu)
	})
}

// BenchmarkRawGCMFromReader is raw GCM opening with the one copy any
// io.Reader-based decryption must make: each chunk's ciphertext is read from
// a bytes.Reader into a reused buffer before Open. It separates the cost of
// reading the input from the cost of the stream format.
func BenchmarkRawGCMFromReader(b *testing.B) {
	aead := newGCM()
	ct := ciphertext(b, "raw", func(w io.Writer) io.WriteCloser { return &rawSealer{aead: aead, w: w} })
	in := make([]byte, chunk+aead.Overhead())
	out := make([]byte, chunk)
	b.SetBytes(size)
	b.ResetTimer()
	cpu := cpuTime()
	for range b.N {
		r := bytes.NewReader(ct)
		for {
			if _, err := io.ReadFull(r, in); err == io.EOF {
				break
			}
			if _, err := aead.Open(out[:0], nil, in, aad); err != nil {
				b.Fatal(err)
			}
		}
	}
	record(b, cpu)
}

// rawSealer seals each chunk-sized Write, to make BenchmarkRawGCM's input.
type rawSealer struct {
	aead cipher.AEAD
	w    io.Writer
}

func (r *rawSealer) Write(p []byte) (int, error) {
	for q := p; len(q) > 0; q = q[chunk:] {
		r.w.Write(r.aead.Seal(nil, nil, q[:chunk], aad))
	}
	return len(p), nil
}

func (r *rawSealer) Close() error { return nil }

func geosealOpts(conc int, suite stream.Suite) *stream.Options {
	return &stream.Options{ChunkSize: chunk, Concurrency: conc, AAD: aad, Suite: suite}
}

func BenchmarkGeoseal(b *testing.B) {
	for _, suite := range []stream.Suite{stream.AES256GCM, stream.ChaCha20Poly1305} {
		concs := []int{1, runtime.GOMAXPROCS(0)}
		if suite != stream.AES256GCM {
			concs = concs[:1] // for comparison with age, which is single-threaded
		}
		for _, conc := range concs {
			opts := geosealOpts(conc, suite)
			b.Run(fmt.Sprintf("%v/encrypt/conc=%d", suite, conc), func(b *testing.B) {
				encryptBench(b, func(w io.Writer) io.WriteCloser { return must(stream.NewWriter(w, key, opts)) })
			})
			b.Run(fmt.Sprintf("%v/decrypt/conc=%d", suite, conc), func(b *testing.B) {
				ct := ciphertext(b, "geoseal "+suite.String(), func(w io.Writer) io.WriteCloser {
					return must(stream.NewWriter(w, key, geosealOpts(1, suite)))
				})
				decryptBench(b, ct, func(r io.Reader) io.Reader { return must(stream.NewReader(r, key, opts)) })
			})
			// The same from a source that is only an io.Reader (a network
			// body, a pipe): every chunk is copied out of it before it is
			// opened, which the bytes.Reader rows avoid.
			b.Run(fmt.Sprintf("%v/decrypt-opaque-src/conc=%d", suite, conc), func(b *testing.B) {
				ct := ciphertext(b, "geoseal "+suite.String(), func(w io.Writer) io.WriteCloser {
					return must(stream.NewWriter(w, key, geosealOpts(1, suite)))
				})
				decryptBench(b, ct, func(r io.Reader) io.Reader {
					return must(stream.NewReader(struct{ io.Reader }{r}, key, opts))
				})
			})
		}
	}
}

// BenchmarkTink is tink-go's streaming AEAD AES256_GCM_HKDF_1MB.
func BenchmarkTink(b *testing.B) {
	h := must(keyset.NewHandle(streamingaead.AES256GCMHKDF1MBKeyTemplate()))
	s := must(streamingaead.New(h))
	enc := func(w io.Writer) io.WriteCloser { return must(s.NewEncryptingWriter(w, aad)) }
	b.Run("encrypt", func(b *testing.B) { encryptBench(b, enc) })
	b.Run("decrypt", func(b *testing.B) {
		ct := ciphertext(b, "tink", enc)
		decryptBench(b, ct, func(r io.Reader) io.Reader { return must(s.NewDecryptingReader(r, aad)) })
	})
}

// BenchmarkSio is minio/sio (DARE 2.0) with AES-256-GCM.
func BenchmarkSio(b *testing.B) {
	cfg := sio.Config{MinVersion: sio.Version20, MaxVersion: sio.Version20, CipherSuites: []byte{sio.AES_256_GCM}, Key: key}
	enc := func(w io.Writer) io.WriteCloser { return must(sio.EncryptWriter(w, cfg)) }
	b.Run("encrypt", func(b *testing.B) { encryptBench(b, enc) })
	b.Run("decrypt", func(b *testing.B) {
		ct := ciphertext(b, "sio", enc)
		decryptBench(b, ct, func(r io.Reader) io.Reader { return must(sio.DecryptReader(r, cfg)) })
	})
}

// BenchmarkAge is filippo.io/age with an X25519 recipient
// (ChaCha20-Poly1305, 64 KiB chunks).
func BenchmarkAge(b *testing.B) {
	id := must(age.GenerateX25519Identity())
	enc := func(w io.Writer) io.WriteCloser { return must(age.Encrypt(w, id.Recipient())) }
	b.Run("encrypt", func(b *testing.B) { encryptBench(b, enc) })
	b.Run("decrypt", func(b *testing.B) {
		ct := ciphertext(b, "age", enc)
		decryptBench(b, ct, func(r io.Reader) io.Reader { return must(age.Decrypt(r, id)) })
	})
}

// results keeps the best figures of every benchmark, over its runs.
var (
	resultsMu sync.Mutex
	results   = map[string]*result{}
)

type result struct {
	wall float64 // MB/s of wall-clock time
	cpu  float64 // MB/s of process CPU time (user + system)
}

// cpuTime returns the CPU time the process has used so far. On a shared
// machine a single-goroutine row's MB/s per CPU second moves much less than
// its wall-clock MB/s.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func record(b *testing.B, cpuStart time.Duration) {
	cpu := cpuTime() - cpuStart
	if b.N == 0 || b.Elapsed() <= 0 || cpu <= 0 {
		return
	}
	mb := float64(size) * float64(b.N) / 1e6
	name := strings.TrimPrefix(b.Name(), "Benchmark")
	if i := strings.LastIndex(name, "-"); i > 0 && !strings.Contains(name[i:], "/") {
		name = name[:i] // the -GOMAXPROCS suffix
	}
	resultsMu.Lock()
	defer resultsMu.Unlock()
	r := results[name]
	if r == nil {
		r = &result{}
		results[name] = r
	}
	r.wall = max(r.wall, mb/b.Elapsed().Seconds())
	r.cpu = max(r.cpu, mb/cpu.Seconds())
}

func TestMain(m *testing.M) {
	code := m.Run()
	if len(results) > 0 {
		printTable(os.Stdout)
	}
	os.Exit(code)
}

// printTable writes the comparison: MB/s and the ratio to raw GCM sealing
// (encryption rows) or opening (decryption rows).
func printTable(w io.Writer) {
	names := make([]string, 0, len(results))
	for n := range results {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		return rowOrder(names[i]) < rowOrder(names[j]) || rowOrder(names[i]) == rowOrder(names[j]) && names[i] < names[j]
	})
	fmt.Fprintf(w, "\n%d MiB per op, chunk %d KiB, GOMAXPROCS %d; best MB/s of the runs (shared CPU: expect noise)\n",
		size>>20, chunk>>10, runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "%-38s %9s %9s %11s %9s\n", "row", "MB/s", "x raw", "CPU MB/s", "x raw")
	for _, n := range names {
		base := results["RawGCM/seal"]
		if strings.Contains(n, "decrypt") || strings.HasSuffix(n, "open") || strings.HasSuffix(n, "FromReader") {
			base = results["RawGCM/open"]
		}
		r := results[n]
		wall, cpu := "-", "-"
		if base != nil {
			wall = fmt.Sprintf("%.2f", r.wall/base.wall)
			cpu = fmt.Sprintf("%.2f", r.cpu/base.cpu)
		}
		fmt.Fprintf(w, "%-38s %9.0f %9s %11.0f %9s\n", n, r.wall, wall, r.cpu, cpu)
	}
	fmt.Fprintln(w, "MB/s: plaintext bytes per wall-clock second. CPU MB/s: per second of process CPU time")
	fmt.Fprintln(w, "(parallel rows use more CPU, not less: judge them by MB/s). x raw: ratio to RawGCM/seal")
	fmt.Fprintln(w, "for encrypt rows, to RawGCM/open for decrypt rows.")
}

func rowOrder(name string) int {
	for i, p := range []string{"RawGCM", "Geoseal/AES", "Geoseal/", "Tink", "Sio", "Age"} {
		if strings.HasPrefix(name, p) {
			return i
		}
	}
	return 99
}
