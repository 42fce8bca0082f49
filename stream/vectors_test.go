package stream

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"testing"
	"testing/cryptotest"

	"golang.org/x/crypto/chacha20poly1305"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

const vectorsFile = "testdata/vectors.json"

// vector is a known-answer test: the stream a Writer produced for these
// parameters. Implementations in other languages can check against the
// same file (see FORMAT.md).
type vector struct {
	Name       string `json:"name"`
	Suite      Suite  `json:"suite"`
	ChunkSize  int    `json:"chunk_size"`
	Key        string `json:"key"`        // hex
	AAD        string `json:"aad"`        // hex
	Plaintext  string `json:"plaintext"`  // hex
	Ciphertext string `json:"ciphertext"` // hex
}

type decodedVector struct {
	vector
	key, aad, pt, ct []byte
}

func (v *decodedVector) opts(conc int) *Options {
	return &Options{ChunkSize: v.ChunkSize, Suite: v.Suite, AAD: v.aad, Concurrency: conc}
}

// vectorSpecs are the streams in testdata/vectors.json, generated with
// -update from a fixed random seed.
var vectorSpecs = []struct {
	name  string
	suite Suite
	size  int
}{
	{"aes-empty", AES256GCM, 0},
	{"aes-one-byte", AES256GCM, 1},
	{"aes-one-full-chunk", AES256GCM, 4096},
	{"aes-two-full-chunks", AES256GCM, 2 * 4096},
	{"aes-three-chunks", AES256GCM, 2*4096 + 100},
	{"xchacha-empty", ChaCha20Poly1305, 0},
	{"xchacha-two-chunks", ChaCha20Poly1305, 4096 + 1},
}

func loadVectors(tb testing.TB) []decodedVector {
	tb.Helper()
	data, err := os.ReadFile(vectorsFile)
	if err != nil {
		tb.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(data, &vs); err != nil {
		tb.Fatal(err)
	}
	var out []decodedVector
	for _, v := range vs {
		d := decodedVector{vector: v}
		for _, f := range []struct {
			dst *[]byte
			src string
		}{{&d.key, v.Key}, {&d.aad, v.AAD}, {&d.pt, v.Plaintext}, {&d.ct, v.Ciphertext}} {
			if *f.dst, err = hex.DecodeString(f.src); err != nil {
				tb.Fatalf("%s: %v", v.Name, err)
			}
		}
		out = append(out, d)
	}
	return out
}

func TestVectors(t *testing.T) {
	// A fixed seed makes every random nonce, and so every ciphertext,
	// reproducible: the vectors pin the whole format, AAD included.
	cryptotest.SetGlobalRandom(t, 2026)
	if *update {
		var vs []vector
		for i, s := range vectorSpecs {
			key := plaintext(KeySize, uint64(100+i))
			aad := []byte("geoseal stream test vector " + s.name)
			pt := plaintext(s.size, uint64(200+i))
			opts := &Options{ChunkSize: 4096, Suite: s.suite, AAD: aad}
			ct := encrypt(t, pt, key, opts, oneWrite)
			vs = append(vs, vector{
				Name: s.name, Suite: s.suite, ChunkSize: 4096,
				Key: hex.EncodeToString(key), AAD: hex.EncodeToString(aad),
				Plaintext: hex.EncodeToString(pt), Ciphertext: hex.EncodeToString(ct),
			})
		}
		data, err := json.MarshalIndent(vs, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsFile, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vs := loadVectors(t)
	if len(vs) != len(vectorSpecs) {
		t.Fatalf("%s has %d vectors, want %d", vectorsFile, len(vs), len(vectorSpecs))
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(v.ct), v.key, v.opts(1))
			if v.Suite == ChaCha20Poly1305 && !isSuiteUsable(v.Suite) {
				if !errors.Is(err, ErrNotApproved) {
					t.Fatalf("NewReader = %v, want ErrNotApproved", err)
				}
				return
			}
			for _, conc := range []int{1, 3} {
				got, err := decrypt(v.ct, v.key, v.opts(conc), readAll)
				if err != nil || !bytes.Equal(got, v.pt) {
					t.Fatalf("decrypt (conc %d): %d bytes, %v", conc, len(got), err)
				}
			}
			ra, err := NewReaderAt(bytes.NewReader(v.ct), int64(len(v.ct)), v.key, v.opts(0))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
			if err != nil || !bytes.Equal(got, v.pt) {
				t.Fatalf("ReaderAt: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestVectorsReproduce re-encrypts each vector with the random source the
// vectors were made with and compares bytes, so that any change to the
// layout or the AAD fails here even if it round-trips.
func TestVectorsReproduce(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 2026)
	for _, v := range loadVectors(t) {
		if !isSuiteUsable(v.Suite) {
			continue
		}
		if got := encrypt(t, v.pt, v.key, v.opts(0), oneWrite); !bytes.Equal(got, v.ct) {
			t.Errorf("%s: re-encryption differs from the vector", v.Name)
		}
	}
}

func isSuiteUsable(s Suite) bool {
	for _, u := range suites() {
		if u == s {
			return true
		}
	}
	return false
}

// TestFormatByHand decodes every vector with nothing but the AEADs and the
// layout written in FORMAT.md, as an implementation in another language
// would, so the document and the code cannot drift apart.
func TestFormatByHand(t *testing.T) {
	for _, v := range loadVectors(t) {
		if !isSuiteUsable(v.Suite) {
			continue
		}
		var aead cipher.AEAD
		overhead := 12 + 16
		switch v.Suite {
		case AES256GCM:
			block, err := aes.NewCipher(v.key)
			if err != nil {
				t.Fatal(err)
			}
			if aead, err = cipher.NewGCMWithRandomNonce(block); err != nil {
				t.Fatal(err)
			}
		case ChaCha20Poly1305:
			overhead = 24 + 16
			x, err := chacha20poly1305.NewX(v.key)
			if err != nil {
				t.Fatal(err)
			}
			aead = xchachaRandomNonce{x}
		}
		full := v.ChunkSize + overhead
		var pt []byte
		ct := v.ct
		for i := uint64(0); ; i++ {
			n := min(full, len(ct))
			final := n == len(ct) // the chunk that ends the stream is final
			aad := binary.BigEndian.AppendUint64(bytes.Clone(v.aad), i)
			if final {
				aad = append(aad, 0x01)
			} else {
				aad = append(aad, 0x00)
			}
			out, err := aead.Open(nil, nil, ct[:n], aad)
			if err != nil {
				t.Fatalf("%s: chunk %d: %v", v.Name, i, err)
			}
			if !final && len(out) != v.ChunkSize || final && len(out) == 0 && i > 0 {
				t.Fatalf("%s: chunk %d holds %d bytes", v.Name, i, len(out))
			}
			pt = append(pt, out...)
			ct = ct[n:]
			if final {
				break
			}
		}
		if !bytes.Equal(pt, v.pt) {
			t.Errorf("%s: decoded plaintext differs", v.Name)
		}
	}
}
