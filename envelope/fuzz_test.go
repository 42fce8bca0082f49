package envelope

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/geoseal/geoseal/keyring"
)

// seedHeaders returns well-formed headers for the seed corpora: the test
// vectors' and fresh ones with several shapes.
func seedObjects(f *testing.F, kr keyring.Wrapper, fill byte) [][]byte {
	var objs [][]byte
	for _, o := range []struct {
		n    int
		opts *EncryptOptions
	}{
		{0, &EncryptOptions{ChunkSize: 4 << 10}},
		{100, &EncryptOptions{ChunkSize: 4 << 10, Context: keyring.Context{"project": "x-57", "site": "lab"}}},
		{4096, &EncryptOptions{ChunkSize: 4 << 10}},
		{9000, &EncryptOptions{ChunkSize: 4 << 10, Concurrency: 2}},
		{10, &EncryptOptions{}},
	} {
		objs = append(objs, encryptBytes(f, kr, bytes.Repeat([]byte{fill}, o.n), o.opts))
	}
	return objs
}

func FuzzParseHeader(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(vectorsDir, "*.json"))
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			var v vector
			if jsonUnmarshal(data, &v) == nil {
				if obj, err := hex.DecodeString(v.Object); err == nil && len(obj) >= v.HeaderLength {
					f.Add(obj[:v.HeaderLength])
				}
			}
		}
	}
	for _, obj := range seedObjects(f, fixedKeyring{"fuzz"}, 'p') {
		h, _ := Inspect(bytes.NewReader(obj))
		f.Add(obj[:h.Size])
	}
	f.Add([]byte(magic))
	f.Add([]byte("not a geoseal object at all"))

	f.Fuzz(func(t *testing.T, data []byte) {
		n, lerr := headerLength(data)
		h, tag, err := parseHeader(data)
		ih, ierr := Inspect(bytes.NewReader(data))
		if err != nil {
			if h != nil {
				t.Fatal("parseHeader returned a header with an error")
			}
			if classify(err) == "other" {
				t.Fatalf("untyped error: %v", err)
			}
			if ierr == nil && ih.Size == len(data) {
				t.Fatalf("Inspect accepted what parseHeader refused: %v", err)
			}
			return
		}
		if lerr != nil || n != len(data) || h.Size != len(data) {
			t.Fatalf("headerLength = %d, %v; parsed %d bytes", n, lerr, len(data))
		}
		if ierr != nil || ih.Size != h.Size || ih.MessageID != h.MessageID {
			t.Fatalf("Inspect disagrees with parseHeader: %v", ierr)
		}
		if len(h.WrappedKeys) < 1 || len(h.WrappedKeys) > MaxWrappedKeys || h.ChunkSize < 1<<12 || h.ChunkSize > 1<<24 {
			t.Fatalf("parsed a header outside the limits: %+v", h)
		}
		// The encoding is canonical: what parses re-encodes to the same
		// bytes.
		fields := headerFields{suite: h.Suite, chunkSize: h.ChunkSize, messageID: h.MessageID, commitment: h.Commitment, context: h.Context}
		again, err := buildHeader(&fields, h.WrappedKeys, make([]byte, 32))
		if err != nil {
			t.Fatalf("re-encoding a parsed header: %v", err)
		}
		if !bytes.Equal(again[:len(again)-tagLen], data[:len(data)-tagLen]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, data)
		}
		if !bytes.Equal(data[len(data)-tagLen:], tag[:]) {
			t.Fatal("tag not returned")
		}
	})
}

// FuzzDecrypt feeds arbitrary objects to Decrypt and DecryptAt with a
// fixed keyring. Every seed object's plaintext is all 'p' bytes and the
// fuzzer does not know the key, so any other byte that comes out would be
// unauthenticated data.
func FuzzDecrypt(f *testing.F) {
	kr, err := keyring.NewAES(vectorKEK(1), nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, obj := range seedObjects(f, kr, 'p') {
		f.Add(obj)
	}
	files, _ := filepath.Glob(filepath.Join(vectorsDir, "*.json"))
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			var v vector
			// Only vectors for this key whose plaintext is not 'p' bytes
			// would break the oracle; use their headers with a 'p' body.
			if jsonUnmarshal(data, &v) == nil && v.Plaintext == "" {
				if obj, err := hex.DecodeString(v.Object); err == nil {
					f.Add(obj)
				}
			}
		}
	}

	onlyP := func(t *testing.T, what string, b []byte) {
		for _, c := range b {
			if c != 'p' {
				t.Fatalf("%s returned unauthenticated data", what)
			}
		}
	}
	f.Fuzz(func(t *testing.T, obj []byte) {
		ctx := context.Background()
		var derr error
		r, err := Decrypt(ctx, bytes.NewReader(obj), kr, nil)
		if err == nil {
			var got []byte
			got, derr = io.ReadAll(io.LimitReader(r, 1<<20))
			onlyP(t, "Decrypt", got)
		} else {
			derr = err
		}
		if derr != nil && classify(derr) == "other" {
			t.Fatalf("Decrypt: untyped error %v", derr)
		}

		ra, err := DecryptAt(ctx, bytes.NewReader(obj), int64(len(obj)), kr, nil)
		if err != nil {
			if derr == nil {
				t.Fatalf("Decrypt accepted what DecryptAt refused: %v", err)
			}
			if classify(err) == "other" {
				t.Fatalf("DecryptAt: untyped error %v", err)
			}
			return
		}
		size := min(ra.Size(), 1<<20)
		buf := make([]byte, size)
		n, rerr := ra.ReadAt(buf, 0)
		onlyP(t, "ReadAt", buf[:n])
		if rerr == io.EOF && int64(n) == size {
			rerr = nil
		}
		switch {
		case rerr != nil && !errors.Is(bodyError(rerr), ErrBodyTampered):
			// Opening authenticates only the final chunk; a bad
			// earlier chunk fails here, as an authentication error.
			t.Fatalf("ReadAt: %v", rerr)
		case rerr != nil && derr == nil:
			t.Fatalf("Decrypt accepted what ReadAt refused: %v", rerr)
		case rerr == nil && derr != nil && size == ra.Size():
			t.Fatalf("DecryptAt read all of what Decrypt refused: %v", derr)
		}
	})
}

func jsonUnmarshal(data []byte, v *vector) error { return json.Unmarshal(data, v) }
