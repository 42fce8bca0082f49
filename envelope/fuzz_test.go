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

	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/internal/formattest"
	"github.com/geoseal/geoseal/keyring"
)

// seedObjects returns well-formed objects of several shapes for the seed
// corpora, with plaintexts of fill bytes.
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

// FuzzDecrypt feeds arbitrary objects to Decrypt and DecryptAt with a
// fixed keyring. Every seed object's plaintext is all 'p' bytes and the
// fuzzer does not know the key, so any other byte that comes out would be
// unauthenticated data.
func FuzzDecrypt(f *testing.F) {
	kr := vectorKeyring(f, []string{hex.EncodeToString(vectorKEK(1))})
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
		if derr != nil && formattest.Classify(derr) == "other" {
			t.Fatalf("Decrypt: untyped error %v", derr)
		}

		ra, err := DecryptAt(ctx, bytes.NewReader(obj), int64(len(obj)), kr, nil)
		if err != nil {
			if derr == nil {
				t.Fatalf("Decrypt accepted what DecryptAt refused: %v", err)
			}
			if formattest.Classify(err) == "other" {
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
		case rerr != nil && !errors.Is(format.BodyError(rerr), ErrBodyTampered):
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
