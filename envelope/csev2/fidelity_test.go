package csev2

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

const goodEncryptionData = `{"WrappedContentKey":{"KeyId":"k","EncryptedKey":"AAAA","Algorithm":"A256KW"},"EncryptionAgent":{"Protocol":"2.0","EncryptionAlgorithm":"AES_GCM_256"},"EncryptedRegionInfo":{"DataLength":4194304,"NonceLength":12},"KeyWrappingMetadata":{"EncryptionLibrary":"x"},"EncryptionMode":"FullBlob"}`

// TestMemberNamesExact: the SDKs' readers look members up by their exact
// names (Python's dicts, Java's Jackson), so a spelling that differs in case
// is not that member; encoding/json alone would take it. A member given
// twice is refused too, rather than read one way here and another there.
// Members nobody reads are ignored, as the SDKs ignore them.
func TestMemberNamesExact(t *testing.T) {
	if _, err := ParseEncryptionData([]byte(goodEncryptionData)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, old, new string
		ok             bool
	}{
		{"root lower", `"WrappedContentKey"`, `"wrappedcontentkey"`, false},
		{"root camel", `"EncryptionAgent"`, `"encryptionAgent"`, false},
		{"region info upper", `"EncryptedRegionInfo"`, `"ENCRYPTEDREGIONINFO"`, false},
		{"key id", `"KeyId"`, `"KeyID"`, false},
		{"encrypted key", `"EncryptedKey"`, `"encryptedKey"`, false},
		{"algorithm", `"Algorithm"`, `"algorithm"`, false},
		{"protocol", `"Protocol"`, `"protocol"`, false},
		{"encryption algorithm", `"EncryptionAlgorithm"`, `"encryptionalgorithm"`, false},
		{"data length", `"DataLength"`, `"dataLength"`, false},
		{"nonce length", `"NonceLength"`, `"Noncelength"`, false},
		{"mode", `"EncryptionMode"`, `"encryptionMode"`, false},
		{"duplicate root member", `"EncryptionMode":"FullBlob"}`, `"EncryptionMode":"FullBlob","EncryptionAgent":{"Protocol":"1.0","EncryptionAlgorithm":"AES_CBC_256"}}`, false},
		{"duplicate nested member", `"Algorithm":"A256KW"}`, `"Algorithm":"A256KW","Algorithm":"RSA1_5"}`, false},
		{"duplicate metadata entry", `"EncryptionLibrary":"x"`, `"EncryptionLibrary":"x","EncryptionLibrary":"y"`, false},
		{"unknown member", `"EncryptionMode":"FullBlob"}`, `"EncryptionMode":"FullBlob","Extra":{"keyid":1}}`, true},
		{"escaped exact name", `"KeyId"`, `"Key\u0049d"`, true},
		{"metadata keys are free", `"EncryptionLibrary":"x"`, `"encryptionlibrary":"x"`, true},
	} {
		in := strings.Replace(goodEncryptionData, c.old, c.new, 1)
		_, err := ParseEncryptionData([]byte(in))
		if c.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidEncryptionData)) {
			t.Errorf("%s: %v (want ok=%v)", c.name, err, c.ok)
		}
	}
}

// TestMetadataKeyExact: the entry is "encryptiondata" as stored (Python's
// metadata['encryptiondata']), or "Encryptiondata", which is how Go's net/http
// hands over the header x-ms-meta-encryptiondata; no other spelling.
func TestMetadataKeyExact(t *testing.T) {
	v := goodEncryptionData
	for _, c := range []struct {
		key string
		ok  bool
	}{
		{"encryptiondata", true},
		{"Encryptiondata", true},
		{"EncryptionData", false},
		{"ENCRYPTIONDATA", false},
		{"encryptionData", false},
		{"encryptiondata ", false},
	} {
		_, err := EncryptionDataFromMetadata(map[string]*string{c.key: &v, "other": &v})
		if c.ok != (err == nil) || (!c.ok && !errors.Is(err, ErrNotEncrypted)) {
			t.Errorf("key %q: %v (want ok=%v)", c.key, err, c.ok)
		}
	}
}

// sparseFile is testdata/sparse_vectors.json: single regions of blobs past
// region 2^31, too large to store, written by gen_vectors.py --sparse.
type sparseFile struct {
	AESKEK  string `json:"aes_kek"`
	AESKID  string `json:"aes_kid"`
	Vectors []struct {
		Name           string `json:"name"`
		RegionLength   int64  `json:"region_length"`
		CEK            string `json:"cek"`
		EncryptionData string `json:"encryptiondata"`
		BlobRegions    int64  `json:"blob_regions"`
		Regions        []struct {
			Index      int64  `json:"index"`
			Ciphertext string `json:"ciphertext"`
		} `json:"regions"`
		ReadOffset int64  `json:"read_offset"`
		ReadLength int64  `json:"read_length"`
		Plaintext  string `json:"plaintext"`
		Result     string `json:"result"`
		Error      string `json:"error"`
	} `json:"vectors"`
}

// sparseBlob is a ReaderAt over a blob of which only some regions exist.
type sparseBlob map[int64][]byte // region start offset -> region

func (s sparseBlob) ReadAt(p []byte, off int64) (int, error) {
	r, ok := s[off]
	if !ok || len(p) > len(r) {
		return 0, fmt.Errorf("sparse blob: no region stored at %d", off)
	}
	return copy(p, r), nil
}

// TestJavaInt32Nonces reads regions past 2^31 of blobs written by the Java
// SDK before 12.34.2, whose nonces come from the region index truncated to a
// Java int (sign-extended from 2^31): accepted below 2^32, where the layout
// differs from every other scheme's; refused from 2^32, where it repeats
// region 0's nonce and so cannot be told from a reordering. The widened
// (12.34.2) Java layout, and Python's, still read there.
func TestJavaInt32Nonces(t *testing.T) {
	b, err := os.ReadFile("testdata/sparse_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var sf sparseFile
	if err := json.Unmarshal(b, &sf); err != nil {
		t.Fatal(err)
	}
	vf := &vectorFile{AESKEK: sf.AESKEK, AESKID: sf.AESKID}
	aes, err := LocalAESKEK(sf.AESKID, mustHex(t, sf.AESKEK))
	if err != nil {
		t.Fatal(err)
	}
	if len(sf.Vectors) < 6 {
		t.Fatalf("%d sparse vectors", len(sf.Vectors))
	}
	for _, v := range sf.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			ed, kr := readable(t, vf, vector{Name: v.Name, Wrap: AlgorithmA256KW, EncryptionData: v.EncryptionData}, Keys(aes))
			full := v.RegionLength + Overhead
			blob := sparseBlob{}
			for _, r := range v.Regions {
				blob[r.Index*full] = mustHex(t, r.Ciphertext)
			}
			ra, err := NewReaderAt(context.Background(), blob, v.BlobRegions*full, ed, kr, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, v.ReadLength)
			n, err := ra.ReadAt(got, v.ReadOffset)
			if v.Result == "valid" {
				if err != nil && err != io.EOF || !bytes.Equal(got[:n], mustHex(t, v.Plaintext)) {
					t.Fatalf("ReadAt: %d bytes, %v", n, err)
				}
				return
			}
			if !errors.Is(err, errorKinds[v.Error]) {
				t.Fatalf("got %v, want %s error", err, v.Error)
			}
			if first := v.Regions[0].Index; n > int(v.RegionLength) || (n > 0 && first*v.RegionLength != v.ReadOffset) {
				t.Fatalf("a refused read returned %d bytes", n)
			}
		})
	}

	// The boundary, in the order check itself.
	nonce := func(s NonceScheme, i uint64) []byte {
		var n [nonceSize]byte
		s.nonce(&n, i)
		return n[:]
	}
	for _, c := range []struct {
		i  uint64
		ok bool
	}{{1<<31 - 1, true}, {1 << 31, true}, {1<<32 - 1, true}, {1 << 32, false}, {1<<32 + 5, false}} {
		err := newOrderCheck().check(nonce(nonceJavaInt32, c.i), c.i)
		if (err == nil) != c.ok {
			t.Errorf("int-truncated Java nonce at region %d: %v, want ok=%v", c.i, err, c.ok)
		}
	}
}
