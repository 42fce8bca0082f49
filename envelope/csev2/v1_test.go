package csev2

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// v1File is testdata/v1_vectors.json: CSE v1 blobs the real Python SDK
// (12.15.0b1) uploaded to Azurite, single put and chunked, recorded by
// testdata/gen_v1_vectors.py.
type v1File struct {
	AESKEK  string     `json:"aes_kek"`
	AESKID  string     `json:"aes_kid"`
	RSAKID  string     `json:"rsa_kid"`
	Vectors []v1Vector `json:"vectors"`
}

type v1Vector struct {
	Name             string `json:"name"`
	Wrap             string `json:"wrap"`
	Upload           string `json:"upload"`
	CommittedBlocks  int    `json:"committed_blocks"`
	PlaintextSize    int    `json:"plaintext_size"`
	CEK              string `json:"cek"`
	EncryptionData   string `json:"encryptiondata"`
	CiphertextSize   int64  `json:"ciphertext_size"`
	CiphertextSHA256 string `json:"ciphertext_sha256"`
	Ciphertext       string `json:"ciphertext"`
}

var readV1 = &ReaderOptions{ReadCSEv1: true}

func loadV1Vectors(t testing.TB) (*v1File, KeyResolver) {
	t.Helper()
	var vf v1File
	loadJSON(t, "testdata/v1_vectors.json", &vf)
	return &vf, vectorKeys(t, vf.AESKEK, vf.AESKID, vf.RSAKID)
}

// ciphertext returns the body the SDK stored: inline, or rebuilt with
// AES-256-CBC and PKCS #7 from the recorded key and IV and checked against
// the recorded SHA-256.
func (v v1Vector) ciphertext(t testing.TB, ed *EncryptionData) []byte {
	t.Helper()
	var ct []byte
	if v.Ciphertext != "" {
		ct = mustHex(t, v.Ciphertext)
	} else {
		block, err := aes.NewCipher(mustHex(t, v.CEK))
		if err != nil {
			t.Fatal(err)
		}
		pt := testPlaintext(v.PlaintextSize)
		pad := aes.BlockSize - len(pt)%aes.BlockSize
		ct = append(pt, bytes.Repeat([]byte{byte(pad)}, pad)...)
		cipher.NewCBCEncrypter(block, ed.ContentEncryptionIV).CryptBlocks(ct, ct)
	}
	if int64(len(ct)) != v.CiphertextSize || hex.EncodeToString(sha256Sum(ct)) != v.CiphertextSHA256 {
		t.Fatalf("%s: ciphertext of %d bytes does not match the SDK's (%d bytes, SHA-256 %s)", v.Name, len(ct), v.CiphertextSize, v.CiphertextSHA256)
	}
	return ct
}

// readableV1 returns v's metadata and a resolver to read it with. In FIPS
// 140-only mode, where local A256KW and RSA-OAEP (SHA-1) are refused (which
// it checks), the recorded content key is wrapped again under the local RSA
// key with RSA-OAEP-256, so the SDK's body is still decrypted in that mode.
func readableV1(t testing.TB, v v1Vector, kr KeyResolver) (*EncryptionData, KeyResolver) {
	t.Helper()
	ed, err := ParseEncryptionData([]byte(v.EncryptionData))
	if err != nil {
		t.Fatalf("%s: %v", v.Name, err)
	}
	if !fips140.Enforced() || v.Wrap == AlgorithmRSAOAEP256 {
		return ed, kr
	}
	if _, err := NewReader(context.Background(), strings.NewReader(""), ed, kr, readV1); !errors.Is(err, ErrNotApproved) {
		t.Fatalf("%s: %s in FIPS 140-only mode: %v, want ErrNotApproved", v.Name, v.Wrap, err)
	}
	return ed, rewrapUnderRSA(t, ed, mustHex(t, v.CEK))
}

// TestV1Vectors reads every blob the Python SDK wrote in CSE v1, whole with
// NewReader and by ranges with NewReaderAt, byte for byte; refuses them all
// without ReaderOptions.ReadCSEv1; and fails a broken padding with the one
// v1 error.
func TestV1Vectors(t *testing.T) {
	vf, resolver := loadV1Vectors(t)
	ctx := context.Background()
	seen := map[string]bool{}
	for _, v := range vf.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			seen[v.Wrap+"/"+v.Upload] = true
			if v.Upload == "chunked" && v.PlaintextSize >= 16 && v.CommittedBlocks == 0 {
				t.Fatal("a chunked upload with no committed blocks")
			}
			ed, kr := readableV1(t, v, resolver)
			ct := v.ciphertext(t, ed)
			pt := testPlaintext(v.PlaintextSize)

			if _, err := NewReader(ctx, bytes.NewReader(ct), ed, kr, nil); !errors.Is(err, ErrUnsupportedProtocol) {
				t.Fatalf("NewReader without ReadCSEv1: %v, want ErrUnsupportedProtocol", err)
			}
			if _, err := NewReaderAt(ctx, bytes.NewReader(ct), int64(len(ct)), ed, kr, &ReaderOptions{}); !errors.Is(err, ErrUnsupportedProtocol) {
				t.Fatalf("NewReaderAt without ReadCSEv1: %v, want ErrUnsupportedProtocol", err)
			}

			r, err := NewReader(ctx, iotestHalfReader{bytes.NewReader(ct)}, ed, kr, readV1)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("NewReader: %v (%d bytes, want %d)", err, len(got), len(pt))
			}

			ra, err := NewReaderAt(ctx, bytes.NewReader(ct), int64(len(ct)), ed, kr, readV1)
			if err != nil {
				t.Fatal(err)
			}
			if ra.Size() != int64(len(pt)) {
				t.Fatalf("Size %d, want %d", ra.Size(), len(pt))
			}
			n := int64(len(pt))
			for _, off := range []int64{0, 1, 15, 16, 17, 31, 32, 33, n / 2, n - 17, n - 16, n - 15, n - 1, n, n + 3} {
				for _, l := range []int64{1, 15, 16, 17, 100, 70000} {
					if off < 0 {
						continue
					}
					got := make([]byte, l)
					k, err := ra.ReadAt(got, off)
					want := []byte{}
					if off < n {
						want = pt[off:min(n, off+l)]
					}
					if !bytes.Equal(got[:k], want) || (int64(k) < l) != (err == io.EOF) || (err != nil && err != io.EOF) {
						t.Fatalf("ReadAt(%d, %d) = %d bytes, %v; want %d bytes", l, off, k, err, len(want))
					}
				}
			}

			// Broken padding: the last plaintext byte made 0, through the
			// block before it (or the IV).
			pad := byte(aes.BlockSize - len(pt)%aes.BlockSize)
			bad, bed := bytes.Clone(ct), *ed
			if len(ct) == aes.BlockSize {
				bed.ContentEncryptionIV = bytes.Clone(ed.ContentEncryptionIV)
				bed.ContentEncryptionIV[aes.BlockSize-1] ^= pad
			} else {
				bad[len(bad)-aes.BlockSize-1] ^= pad
			}
			checkV1Failure(t, "broken padding", bad, &bed, kr)
		})
	}
	for _, k := range []string{"A256KW/single", "A256KW/chunked", "RSA-OAEP/single", "RSA-OAEP/chunked", "RSA-OAEP-256/single", "RSA-OAEP-256/chunked", "RSA/single", "RSA/chunked"} {
		if !seen[k] {
			t.Errorf("no vector for %s", k)
		}
	}
}

// checkV1Failure expects NewReader and NewReaderAt to fail on ct with
// ErrV1Decrypt, and its one text, and NewReader to release no byte of the
// last block.
func checkV1Failure(t *testing.T, what string, ct []byte, ed *EncryptionData, kr KeyResolver) {
	t.Helper()
	ctx := context.Background()
	r, err := NewReader(ctx, bytes.NewReader(ct), ed, kr, readV1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if !errors.Is(err, ErrV1Decrypt) || err.Error() != ErrV1Decrypt.Error() {
		t.Fatalf("%s: NewReader: %v, want ErrV1Decrypt", what, err)
	}
	if held := len(ct) / aes.BlockSize * aes.BlockSize; len(got) > max(0, held-aes.BlockSize) {
		t.Fatalf("%s: %d bytes released, past the held-back last block", what, len(got))
	}
	if _, err := NewReaderAt(ctx, bytes.NewReader(ct), int64(len(ct)), ed, kr, readV1); !errors.Is(err, ErrV1Decrypt) || err.Error() != ErrV1Decrypt.Error() {
		t.Fatalf("%s: NewReaderAt: %v, want ErrV1Decrypt", what, err)
	}
}

// iotestHalfReader returns at most half of what is asked, so that the v1
// stream is read across short reads.
type iotestHalfReader struct{ r io.Reader }

func (h iotestHalfReader) Read(p []byte) (int, error) { return h.r.Read(p[:(len(p)+1)/2]) }

// TestV1Failures: a cut, an empty body, a body that is not whole blocks and a
// broken padding all fail with ErrV1Decrypt and the same text, so that no
// failure tells a padding error from another; the padding check itself is
// table-tested, valid and invalid.
func TestV1Failures(t *testing.T) {
	vf, resolver := loadV1Vectors(t)
	var v v1Vector
	for _, c := range vf.Vectors {
		if c.Name == "1.0/RSA-OAEP-256/single/100000" {
			v = c
		}
	}
	ed, kr := readableV1(t, v, resolver)
	ct := v.ciphertext(t, ed)
	for _, c := range []struct {
		name string
		ct   []byte
	}{
		{"empty", nil},
		{"cut inside a block", ct[:len(ct)-1]},
		{"cut at a block boundary", ct[:len(ct)-16]}, // its last block is not padding
		{"cut to one block", ct[:16]},
		{"one byte", ct[:1]},
		{"extended", append(bytes.Clone(ct), 0)},
	} {
		checkV1Failure(t, c.name, c.ct, ed, kr)
	}

	for _, c := range []struct {
		last string // hex of the last plaintext block
		pad  int
		ok   bool
	}{
		{"0102030405060708090a0b0c0d0e0f01", 1, true},
		{"01020304050607080910111213140303", 3, false}, // only two 03s
		{"01020304050607080910111213030303", 3, true},
		{"10101010101010101010101010101010", 16, true},
		{"00000000000000000000000000000000", 0, false},
		{"11111111111111111111111111111111", 17, false},
		{"0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f", 15, true},
		{"000f0f0f0f0f0f0f0f0f0f0f0f0f0f0f", 15, true},
		{"0f000f0f0f0f0f0f0f0f0f0f0f0f0f0f", 15, false},
	} {
		pad, ok := pkcs7Padding(mustHex(t, c.last))
		if ok != c.ok || (ok && pad != c.pad) {
			t.Errorf("padding of %s: %d, %v; want %d, %v", c.last, pad, ok, c.pad, c.ok)
		}
	}
}

// TestV1Metadata: protocol 1.0 is AES_CBC_256 with a 16-byte IV, and nothing
// else; a 2.0 blob whose metadata is rewritten to 1.0 is refused (the
// wrapped key is 40 bytes, not a bare key) with ErrUnwrap.
func TestV1Metadata(t *testing.T) {
	vf, _ := loadV1Vectors(t)
	good := vf.Vectors[0].EncryptionData
	if _, err := ParseEncryptionData([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, old, new string
		want           error
	}{
		{"gcm", `"AES_CBC_256"`, `"AES_GCM_256"`, ErrUnsupportedProtocol},
		{"no IV", `"ContentEncryptionIV"`, `"ContentEncryptionIv"`, ErrInvalidEncryptionData},
		{"short IV", `"ContentEncryptionIV": "`, `"ContentEncryptionIV": "AAAA`, ErrInvalidEncryptionData},
		{"protocol 1.1", `"Protocol": "1.0"`, `"Protocol": "1.1"`, ErrUnsupportedProtocol},
	} {
		in := strings.Replace(good, c.old, c.new, 1)
		if in == good {
			t.Fatalf("%s: no change", c.name)
		}
		if _, err := ParseEncryptionData([]byte(in)); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}

	// Downgrade: v2 metadata edited to 1.0 (with an IV added).
	rsaKEK := testRSAKEK(t)
	_, ed := sealedBlob(t, rsaKEK, NonceDotNet, Protocol20, DefaultRegionLength, []byte("secret"))
	ed.EncryptionAgent = EncryptionAgent{Protocol: Protocol10, EncryptionAlgorithm: algorithmAESCBC256}
	ed.ContentEncryptionIV = make([]byte, 16)
	if _, err := NewReader(context.Background(), strings.NewReader(strings.Repeat("x", 16)), ed, Keys(rsaKEK), readV1); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("2.0 payload read as 1.0: %v, want ErrUnwrap", err)
	}
}

// TestDownloadV1 stores Python-written v1 blobs in Azurite and reads them
// with Download and DownloadRange: byte for byte, one HEAD and one GET per
// range (the block before the range, its IV, included), and only when
// ReadCSEv1 is set.
func TestDownloadV1(t *testing.T) {
	vf, resolver := loadV1Vectors(t)
	e := newBlobEnv(t)
	ctx := context.Background()
	for _, name := range []string{"1.0/A256KW/chunked/100000", "1.0/RSA-OAEP-256/single/17", "1.0/RSA-OAEP/single/0"} {
		var v v1Vector
		for _, c := range vf.Vectors {
			if c.Name == name {
				v = c
			}
		}
		ed, kr := readableV1(t, v, resolver)
		ct := v.ciphertext(t, ed)
		pt := testPlaintext(v.PlaintextSize)
		b := e.putRaw(t, strings.ReplaceAll(name, "/", "-"), ct, ed).BlobClient()
		opts := &DownloadOptions{Reader: readV1}

		e.counter.reset()
		if _, err := Download(ctx, b, kr, nil); !errors.Is(err, ErrUnsupportedProtocol) {
			t.Fatalf("%s: Download without ReadCSEv1: %v", name, err)
		}
		if _, err := DownloadRange(ctx, b, 0, 10, kr, nil); !errors.Is(err, ErrUnsupportedProtocol) {
			t.Fatalf("%s: DownloadRange without ReadCSEv1: %v", name, err)
		}
		if got, err := readAllClose(Download(ctx, b, kr, opts)); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%s: Download: %v", name, err)
		}
		n := int64(len(pt))
		for _, r := range [][2]int64{{0, 0}, {0, 1}, {5, 20}, {16, 16}, {17, 40000}, {n - 20, 0}, {n - 3, 3}, {n - 1, 100}, {n, 5}, {n + 20, 0}, {50000, 16}} {
			off, count := r[0], r[1]
			if off < 0 {
				continue
			}
			e.counter.reset()
			got, err := readAllClose(DownloadRange(ctx, b, off, count, kr, opts))
			want := rangeOf(pt, off, count)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: DownloadRange(%d, %d): %v (%d bytes, want %d)", name, off, count, err, len(got), len(want))
			}
			if reqs := e.counter.requests; len(reqs) != 2 || reqs[0] != "HEAD " || !strings.HasPrefix(reqs[1], "GET bytes=") {
				t.Errorf("%s: DownloadRange(%d, %d) requests %q, want HEAD and one ranged GET", name, off, count, reqs)
			}
			if e.counter.bytesIn > int64(len(want))+3*aes.BlockSize {
				t.Errorf("%s: DownloadRange(%d, %d) fetched %d bytes", name, off, count, e.counter.bytesIn)
			}
		}
	}

	// A stored blob whose padding is broken.
	v := vf.Vectors[4] // 1.0/A256KW/single/17
	ed, kr := readableV1(t, v, resolver)
	bad := v.ciphertext(t, ed)
	bad[len(bad)-aes.BlockSize-1] ^= byte(aes.BlockSize - v.PlaintextSize%aes.BlockSize)
	b := e.putRaw(t, "bad-padding", bad, ed).BlobClient()
	if _, err := readAllClose(Download(ctx, b, kr, &DownloadOptions{Reader: readV1})); !errors.Is(err, ErrV1Decrypt) {
		t.Errorf("Download of a broken padding: %v, want ErrV1Decrypt", err)
	}
	if _, err := readAllClose(DownloadRange(ctx, b, 20, 0, kr, &DownloadOptions{Reader: readV1})); !errors.Is(err, ErrV1Decrypt) {
		t.Errorf("DownloadRange of a broken padding: %v, want ErrV1Decrypt", err)
	}
	if got, err := readAllClose(DownloadRange(ctx, b, 0, 5, kr, &DownloadOptions{Reader: readV1})); err != nil || len(got) != 5 {
		// A range before the last block cannot see the padding: v1 has no
		// integrity, which the documentation says.
		t.Errorf("DownloadRange before the last block: %v", err)
	}
}
