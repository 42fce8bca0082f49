package stream_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/geoseal/geoseal/stream"
)

func Example() {
	// A fresh random key for this one stream. (envelope derives it from a
	// wrapped data key; use envelope unless you are building a format.)
	key := make([]byte, stream.KeySize)
	rand.Read(key)
	opts := &stream.Options{AAD: []byte("object 42")}

	var encrypted bytes.Buffer
	w, err := stream.NewWriter(&encrypted, key, opts)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := io.Copy(w, strings.NewReader("technical data, export controlled")); err != nil {
		log.Fatal(err)
	}
	// Close writes the final chunk: without it the stream is truncated.
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	r, err := stream.NewReader(&encrypted, key, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close() // stops its goroutines, if any, when not read to the end
	plaintext, err := io.ReadAll(r)
	if err != nil {
		log.Fatal(err) // tampered, truncated, wrong key or wrong AAD
	}
	fmt.Printf("%s\n", plaintext)
	// Output: technical data, export controlled
}

func ExampleNewReaderAt() {
	key := make([]byte, stream.KeySize)
	rand.Read(key)
	opts := &stream.Options{ChunkSize: 4096}

	var encrypted bytes.Buffer
	w, _ := stream.NewWriter(&encrypted, key, opts)
	for i := range 1000 {
		fmt.Fprintf(w, "line %04d\n", i)
	}
	w.Close()

	// Opening authenticates the final chunk, so Size can be trusted.
	ra, err := stream.NewReaderAt(bytes.NewReader(encrypted.Bytes()), int64(encrypted.Len()), key, opts)
	if err != nil {
		log.Fatal(err)
	}
	line := make([]byte, 10)
	if _, err := ra.ReadAt(line, 10*777); err != nil { // reads and opens one chunk
		log.Fatal(err)
	}
	fmt.Printf("%d bytes; %s", ra.Size(), line)
	// Output: 10000 bytes; line 0777
}

func ExampleEncryptedSize() {
	opts := &stream.Options{ChunkSize: 64 << 10}
	for _, n := range []int64{0, 1, 64 << 10, 1 << 30} {
		fmt.Println(n, "->", stream.EncryptedSize(n, opts))
	}
	pt, err := stream.PlaintextSize(100, opts)
	fmt.Println(pt, err)
	_, err = stream.PlaintextSize(20, opts)
	fmt.Println(err)
	// Output:
	// 0 -> 28
	// 1 -> 29
	// 65536 -> 65564
	// 1073741824 -> 1074200576
	// 72 <nil>
	// stream: impossible encrypted size: 20 bytes is shorter than one chunk
}

func ExampleOptions_concurrency() {
	key := make([]byte, stream.KeySize)
	rand.Read(key)
	// Four goroutines seal chunks; the stream is the same format, and any
	// Reader, parallel or not, reads it back.
	opts := &stream.Options{Concurrency: 4}
	var encrypted bytes.Buffer
	w, _ := stream.NewWriter(&encrypted, key, opts)
	w.Write(bytes.Repeat([]byte("x"), 1<<20))
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	r, _ := stream.NewReader(&encrypted, key, &stream.Options{Concurrency: 2})
	defer r.Close()
	n, err := io.Copy(io.Discard, r)
	fmt.Println(n, err)
	// Output: 1048576 <nil>
}

// A Reader that opens chunks in parallel owns goroutines: Close stops them,
// and returns only once they have exited, when the plaintext is not read
// to the end.
func ExampleReader_Close() {
	key := make([]byte, stream.KeySize)
	rand.Read(key)
	var encrypted bytes.Buffer
	w, _ := stream.NewWriter(&encrypted, key, nil)
	w.Write(bytes.Repeat([]byte("record\n"), 100000))
	w.Close()

	r, err := stream.NewReader(&encrypted, key, &stream.Options{Concurrency: 4})
	if err != nil {
		log.Fatal(err)
	}
	first := make([]byte, 7)
	if _, err := io.ReadFull(r, first); err != nil {
		log.Fatal(err)
	}
	r.Close() // the chunks read ahead are dropped, the workers gone
	_, err = r.Read(first)
	fmt.Printf("%q, then: %v\n", first, err)
	// Output: "record\n", then: stream: Reader is closed: file already closed
}
