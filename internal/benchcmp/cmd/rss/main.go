// Command rss encrypts a generated stream (4 GiB by default) to io.Discard
// with geoseal's stream package and reports throughput and the peak
// resident set size (VmHWM) of the process, to show that memory does not grow with
// the length of the stream.
//
//	go run ./cmd/rss                 # encrypt 4 GiB, GOMAXPROCS workers
//	go run ./cmd/rss -decrypt        # also decrypt it through a pipe and check every byte
//	go run ./cmd/rss -concurrency 1 -size 1G
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/geoseal/geoseal/stream"
)

// pattern is the repeating plaintext: random, so nothing compresses or
// short-circuits, and cheap to generate and to check.
var pattern = func() []byte {
	b := make([]byte, 1<<20+17) // not a multiple of the chunk size
	rand.NewChaCha8([32]byte{42}).Read(b)
	return b
}()

// generator reads size bytes of the repeating pattern.
type generator struct{ off, size int64 }

func (g *generator) Read(p []byte) (int, error) {
	if g.off >= g.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.size-g.off)]
	n := 0
	for n < len(p) {
		i := (g.off + int64(n)) % int64(len(pattern))
		n += copy(p[n:], pattern[i:])
	}
	g.off += int64(n)
	return n, nil
}

// checker verifies that what is written is the pattern.
type checker struct{ off int64 }

func (c *checker) Write(p []byte) (int, error) {
	for n := 0; n < len(p); {
		i := (c.off + int64(n)) % int64(len(pattern))
		k := min(len(p)-n, len(pattern)-int(i))
		if !bytes.Equal(p[n:n+k], pattern[i:int(i)+k]) {
			return n, fmt.Errorf("plaintext differs near offset %d", c.off+int64(n))
		}
		n += k
	}
	c.off += int64(len(p))
	return len(p), nil
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}

// peakRSS returns the peak resident set size of this process image:
// VmHWM from /proc/self/status. getrusage's ru_maxrss is not used because
// Linux carries it over from the parent across fork and exec, so under
// "go run" it reports the go command's own peak.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}

func main() {
	sizeFlag := flag.String("size", "4G", "plaintext size (suffix M or G)")
	conc := flag.Int("concurrency", runtime.GOMAXPROCS(0), "Options.Concurrency")
	chunk := flag.Int("chunk", 0, "Options.ChunkSize (0 = stream.DefaultChunkSize)")
	decrypt := flag.Bool("decrypt", false, "also decrypt through a pipe and check the plaintext")
	flag.Parse()
	size, err := parseSize(*sizeFlag)
	if err != nil || size < 0 {
		log.Fatalf("bad -size %q", *sizeFlag)
	}
	key := make([]byte, stream.KeySize)
	opts := &stream.Options{ChunkSize: *chunk, Concurrency: *conc}
	rssBefore := peakRSS()
	start := time.Now()

	var dst io.Writer = io.Discard
	done := make(chan error, 1)
	var pr *io.PipeReader
	var pw *io.PipeWriter
	if *decrypt {
		pr, pw = io.Pipe()
		dst = pw
		go func() {
			r, err := stream.NewReader(pr, key, opts)
			if err != nil {
				done <- err
				return
			}
			c := &checker{}
			if _, err := io.Copy(c, r); err != nil {
				pr.CloseWithError(err)
				done <- err
				return
			}
			if c.off != size {
				done <- fmt.Errorf("decrypted %d bytes, want %d", c.off, size)
				return
			}
			done <- nil
		}()
	}

	w, err := stream.NewWriter(dst, key, opts)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := io.Copy(w, &generator{size: size}); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	if *decrypt {
		pw.Close()
		if err := <-done; err != nil {
			log.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	peak := peakRSS()
	what := "encrypted"
	if *decrypt {
		what = "encrypted and decrypted"
	}
	chunkSize := *chunk
	if chunkSize == 0 {
		chunkSize = stream.DefaultChunkSize
	}
	fmt.Printf("%s %d MiB (chunk %d KiB, concurrency %d) in %v: %.0f MB/s\n",
		what, size>>20, chunkSize>>10, *conc, elapsed.Round(time.Millisecond), float64(size)/1e6/elapsed.Seconds())
	fmt.Printf("peak RSS %.1f MiB (%.1f MiB before the stream started)\n", float64(peak)/(1<<20), float64(rssBefore)/(1<<20))
	if peak >= 64<<20 {
		fmt.Fprintln(os.Stderr, "peak RSS is not under the 64 MiB target")
		os.Exit(1)
	}
}
