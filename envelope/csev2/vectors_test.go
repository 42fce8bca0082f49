package csev2

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/geoseal/geoseal/internal/keywrap"
)

// vectorFile is testdata/vectors.json, written by testdata/gen_vectors.py
// with Python's cryptography and the Python SDK's own code, independently of
// this package.
type vectorFile struct {
	AESKEK  string   `json:"aes_kek"`
	AESKID  string   `json:"aes_kid"`
	RSAKID  string   `json:"rsa_kid"`
	Vectors []vector `json:"vectors"`
}

type vector struct {
	Name             string `json:"name"`
	Wrap             string `json:"wrap"`
	Scheme           string `json:"scheme"`
	Protocol         string `json:"protocol"`
	RegionLength     int    `json:"region_length"`
	PlaintextSize    int    `json:"plaintext_size"`
	CEK              string `json:"cek"`
	EncryptionData   string `json:"encryptiondata"`
	CiphertextSize   int64  `json:"ciphertext_size"`
	CiphertextSHA256 string `json:"ciphertext_sha256"`
	Ciphertext       string `json:"ciphertext"`
	Result           string `json:"result"`
	Error            string `json:"error"`
}

// find returns the vector called name.
func (vf *vectorFile) find(t testing.TB, name string) vector {
	t.Helper()
	for _, v := range vf.Vectors {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no vector %q", name)
	return vector{}
}

// readable returns the metadata of v and a resolver to read it with. In FIPS
// 140-only mode, where local A256KW and RSA-OAEP with SHA-1 are refused, the
// same payload is wrapped again under the local RSA key with RSA-OAEP-256, so
// that the vector's body (its regions, their order, its truncations) and its
// payload (protocol prefix and all) are still checked in that mode.
func readable(t testing.TB, vf *vectorFile, v vector, kr KeyResolver) (*EncryptionData, KeyResolver) {
	t.Helper()
	ed, err := ParseEncryptionData([]byte(v.EncryptionData))
	if err != nil {
		t.Fatalf("%s: ParseEncryptionData: %v", v.Name, err)
	}
	if !fips140.Enforced() || v.Wrap == AlgorithmRSAOAEP256 {
		return ed, kr
	}
	var payload []byte
	switch v.Wrap {
	case AlgorithmA256KW:
		// Unwrap as the vault would, outside this process's FIPS mode.
		payload, err = keywrap.TestHSM{}.Unwrap(mustHex(t, vf.AESKEK), ed.WrappedContentKey.EncryptedKey)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
	case AlgorithmRSAOAEP:
		// SHA-1 cannot run in this mode; every RSA-OAEP vector wraps its
		// metadata's protocol and recorded CEK.
		prefix := versionPrefix(v.Protocol)
		payload = append(prefix[:], mustHex(t, v.CEK)...)
	default:
		t.Fatalf("%s: wrap %q", v.Name, v.Wrap)
	}
	return ed, rewrapUnderRSA(t, ed, payload)
}

// rewrapUnderRSA replaces ed's wrapped key by payload wrapped under the local
// RSA key with RSA-OAEP-256, which reads in FIPS 140-only mode, and returns a
// resolver for it.
func rewrapUnderRSA(t testing.TB, ed *EncryptionData, payload []byte) KeyResolver {
	t.Helper()
	rsaKEK := testRSAKEK(t)
	wrapped, err := rsaKEK.WrapKey(context.Background(), AlgorithmRSAOAEP256, payload)
	if err != nil {
		t.Fatal(err)
	}
	ed.WrappedContentKey = WrappedContentKey{KeyID: rsaKEK.KeyID(), EncryptedKey: wrapped, Algorithm: AlgorithmRSAOAEP256}
	return Keys(rsaKEK)
}

func loadVectors(t testing.TB) (*vectorFile, KeyResolver) {
	t.Helper()
	var vf vectorFile
	loadJSON(t, "testdata/vectors.json", &vf)
	return &vf, vectorKeys(t, vf.AESKEK, vf.AESKID, vf.RSAKID)
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func schemeByName(t testing.TB, name string) NonceScheme {
	for s := NonceJava; s <= NonceDotNet; s++ {
		if s.String() == name {
			return s
		}
	}
	t.Fatalf("unknown scheme %q", name)
	return 0
}

var errorKinds = map[string]error{
	"order":     ErrRegionOrder,
	"truncated": ErrTruncated,
	"auth":      ErrAuthentication,
	"protocol":  ErrUnwrap,
}

// TestVectors decrypts every vector with NewReader and NewReaderAt, and
// checks that the package's sealer reproduces every valid ciphertext byte for
// byte (where FIPS 140-only mode allows sealing).
func TestVectors(t *testing.T) {
	vf, resolver := loadVectors(t)
	ctx := context.Background()
	seen := map[string]bool{}
	for _, v := range vf.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			kr := resolver
			seen[v.Wrap+"/"+v.Scheme+"/"+v.Result] = true
			scheme := schemeByName(t, v.Scheme)
			want := testPlaintext(v.PlaintextSize)

			var ct []byte
			if v.Ciphertext != "" {
				ct = mustHex(t, v.Ciphertext)
			} else {
				ct = testSeal(t, mustHex(t, v.CEK), scheme, v.RegionLength, want)
			}
			if int64(len(ct)) != v.CiphertextSize || hex.EncodeToString(sha256Sum(ct)) != v.CiphertextSHA256 {
				t.Fatalf("ciphertext (%d bytes) does not match the vector's size %d and SHA-256", len(ct), v.CiphertextSize)
			}
			if v.Result == "valid" && !fips140.Enforced() {
				s, err := newSealer(mustHex(t, v.CEK), scheme)
				if err != nil {
					t.Fatal(err)
				}
				var got []byte
				for i := 0; i*v.RegionLength < len(want); i++ {
					got = s.seal(got, want[i*v.RegionLength:min((i+1)*v.RegionLength, len(want))], uint64(i))
				}
				if !bytes.Equal(got, ct) {
					t.Fatal("sealer output differs from the vector")
				}
			}

			ed, err := ParseEncryptionData([]byte(v.EncryptionData))
			if err != nil {
				t.Fatalf("ParseEncryptionData: %v", err)
			}
			if v.Protocol == Protocol20 && v.Result == "valid" && !strings.Contains(v.EncryptionData, `"Python 12.15.0b1"`) {
				t.Errorf("2.0 metadata should come from the Python SDK: %s", v.EncryptionData)
			}

			if fips140.Enforced() && v.Wrap != AlgorithmRSAOAEP256 {
				// Local A256KW and RSA-OAEP (SHA-1) are refused before
				// any work; the body is then read under RSA-OAEP-256.
				_, err := NewReader(ctx, bytes.NewReader(ct), ed, kr, nil)
				if !errors.Is(err, ErrNotApproved) {
					t.Fatalf("%s in FIPS 140-only mode: %v, want ErrNotApproved", v.Wrap, err)
				}
				ed, kr = readable(t, vf, v, kr)
			}

			r, err := NewReader(ctx, bytes.NewReader(ct), ed, kr, nil)
			var got []byte
			if err == nil {
				got, err = io.ReadAll(r)
			}
			checkResult(t, "NewReader", v.Result, v.Error, want, got, err, v.RegionLength)

			ra, err := NewReaderAt(ctx, bytes.NewReader(ct), int64(len(ct)), ed, kr, nil)
			got = nil
			if err == nil {
				got = make([]byte, ra.Size())
				var n int
				n, err = ra.ReadAt(got, 0)
				got = got[:n]
				if err == io.EOF {
					err = nil
				}
			}
			checkResult(t, "ReaderAt", v.Result, v.Error, want, got, err, v.RegionLength)
		})
	}
	for _, k := range []string{
		"A256KW/java/valid", "A256KW/python/valid", "A256KW/dotnet/valid",
		"RSA-OAEP-256/java/valid", "RSA-OAEP-256/python/valid", "RSA-OAEP-256/dotnet/valid",
		"RSA-OAEP/java/valid", "RSA-OAEP/python/valid", "RSA-OAEP/dotnet/valid",
		"A256KW/java/invalid", "A256KW/python/invalid", "A256KW/dotnet/invalid",
	} {
		if !seen[k] {
			t.Errorf("no vector for %s", k)
		}
	}
}

// checkResult checks a decryption against a vector's expectation. On failure,
// whatever plaintext came out must be a prefix of the true plaintext that
// ends at a region boundary before the failing region: no unauthenticated
// byte, nothing from after a bad region.
func checkResult(t *testing.T, what, result, kind string, want, got []byte, err error, regionLen int) {
	t.Helper()
	if result == "valid" {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: plaintext differs (%d bytes, want %d)", what, len(got), len(want))
		}
		return
	}
	if !errors.Is(err, errorKinds[kind]) {
		t.Fatalf("%s: got %v, want %s error", what, err, kind)
	}
	if len(got) > len(want) || !bytes.Equal(got, want[:len(got)]) || len(got)%regionLen != 0 {
		t.Fatalf("%s: failed decryption returned %d bytes that are not whole authenticated regions", what, len(got))
	}
	var re *RegionError
	if errors.As(err, &re) && int64(len(got)) > re.Index*int64(regionLen) {
		t.Fatalf("%s: returned %d bytes, past failing region %d", what, len(got), re.Index)
	}
}

func sha256Sum(b []byte) []byte { h := sha256.Sum256(b); return h[:] }

// TestTestSeal checks the test's FIPS-mode GCM against crypto/cipher, so that
// the vectors mean the same in both modes.
func TestTestSeal(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	nonce := []byte("twelve bytes")
	for _, n := range []int{0, 1, 15, 16, 17, 100, 1000} {
		pt := testPlaintext(n)
		got := manualGCMSeal(block, nonce, pt)
		// NewGCMWithRandomNonce's Open takes nonce||ct||tag and works in every mode.
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := aead.Open(nil, nil, append(append([]byte{}, nonce...), got...), nil)
		if err != nil || !bytes.Equal(dec, pt) {
			t.Fatalf("manual GCM, %d bytes: does not open: %v", n, err)
		}
	}
}
