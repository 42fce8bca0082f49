package csev2

import (
	"bytes"
	"context"
	"crypto/fips140"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/geoseal/geoseal/internal/pysdk"
)

// A pyKEK is one key-encryption key as the Python SDK and as geoseal hold
// it.
type pyKEK struct {
	sdk pysdk.KEK
	kek KeyEncryptionKey
}

func pythonKEKs(t *testing.T) []pyKEK {
	aesKey := bytes.Repeat([]byte{0x42}, 32)
	aes, err := LocalAESKEK("local:py-aes", aesKey)
	if err != nil {
		t.Fatal(err)
	}
	priv := loadRSAKey(t)
	rsa, err := LocalRSAKEK("local:py-rsa", priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return []pyKEK{
		{pysdk.AESKEK(aes.KeyID(), aesKey), aes},
		{pysdk.RSAKEK(t, rsa.KeyID(), AlgorithmRSAOAEP256, priv), rsa},
		{pysdk.RSAKEK(t, rsa.KeyID(), AlgorithmRSAOAEP, priv), rsa},
	}
}

// runPython runs interop.py's cmd on blob name with the key k, then args.
func runPython(t *testing.T, cmd, conn, container, name string, k pysdk.KEK, path string, args ...string) {
	t.Helper()
	argv := append([]string{"testdata/interop.py", cmd, conn, container, name, k.Spec(), k.Algorithm(), k.KeyID(), path}, args...)
	if out, err := exec.Command(pysdk.Python, argv...).CombinedOutput(); err != nil {
		t.Fatalf("interop.py %s: %v\n%s", cmd, err, out)
	}
}

// checkRanges fails the test unless DownloadRange of each {offset, count}
// in ranges returns that range of the blob's plaintext pt. A negative
// offset, as a range counted back from the end of a short plaintext gets, is
// skipped.
func checkRanges(t *testing.T, name string, b *blob.Client, pt []byte, ranges [][2]int64, kr KeyResolver, opts *DownloadOptions) {
	t.Helper()
	for _, r := range ranges {
		if r[0] < 0 {
			continue
		}
		got, err := readAllClose(DownloadRange(context.Background(), b, r[0], r[1], kr, opts))
		if err != nil || !bytes.Equal(got, rangeOf(pt, r[0], r[1])) {
			t.Fatalf("%s: DownloadRange(%d, %d): %v", name, r[0], r[1], err)
		}
	}
}

// TestPythonWritesGeosealReads: the Python SDK uploads CSE v2 (single-shot
// and chunked) and geoseal downloads it whole and by ranges.
func TestPythonWritesGeosealReads(t *testing.T) {
	pysdk.Require(t)
	e := newBlobEnv(t)
	ctx := context.Background()
	cname := e.container.URL()[len(e.srv.BlobEndpoint)+1:]
	dir := t.TempDir()
	for _, k := range pythonKEKs(t) {
		for _, c := range []struct {
			size, maxPut int
		}{{0, 0}, {1000, 0}, {DefaultRegionLength + 999, 1 << 20}} {
			alg := k.sdk.Algorithm()
			name := fmt.Sprintf("py-%s-%d", alg, c.size)
			pt := testPlaintext(c.size)
			in := filepath.Join(dir, name)
			if err := os.WriteFile(in, pt, 0o600); err != nil {
				t.Fatal(err)
			}
			var maxPut []string
			if c.maxPut > 0 {
				maxPut = []string{strconv.Itoa(c.maxPut)}
			}
			runPython(t, "upload", e.srv.ConnectionString(), cname, name, k.sdk, in, maxPut...)

			b := e.container.NewBlobClient(name)
			got, err := readAllClose(Download(ctx, b, Keys(k.kek), nil))
			if alg != AlgorithmRSAOAEP256 && fips140.Enforced() {
				// Local A256KW and RSA-OAEP (SHA-1) are not run in this mode.
				if !errors.Is(err, ErrNotApproved) {
					t.Fatalf("%s: %s in FIPS 140-only mode: %v", name, alg, err)
				}
				continue
			}
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("%s: Download: %v (%d bytes, want %d)", name, err, len(got), len(pt))
			}
			checkRanges(t, name, b, pt, [][2]int64{{0, 10}, {DefaultRegionLength - 5, 10}, {int64(c.size) - 3, 3}, {5, 0}}, Keys(k.kek), nil)
		}
	}
}

// TestGeosealWritesPythonReads: geoseal uploads CSE v2 in every nonce scheme
// and wrap algorithm, and the Python SDK (require_encryption, a key resolver)
// downloads it whole and by a range. In FIPS 140-only mode geoseal refuses to
// write, which is checked instead.
func TestGeosealWritesPythonReads(t *testing.T) {
	pysdk.Require(t)
	e := newBlobEnv(t)
	ctx := context.Background()
	cname := e.container.URL()[len(e.srv.BlobEndpoint)+1:]
	dir := t.TempDir()
	for _, k := range pythonKEKs(t) {
		alg := k.sdk.Algorithm()
		for _, scheme := range []NonceScheme{NonceJava, NoncePython, NonceDotNet} {
			for _, size := range []int{0, 1, DefaultRegionLength + 1} {
				if size > 1 && alg != AlgorithmA256KW {
					continue // one big blob per scheme is enough
				}
				name := fmt.Sprintf("go-%s-%v-%d", alg, scheme, size)
				pt := testPlaintext(size)
				bb := e.container.NewBlockBlobClient(name)
				_, err := Upload(ctx, bb, bytes.NewReader(pt), k.kek, &UploadOptions{
					Encryption: &WriterOptions{NonceScheme: scheme, KeyWrapAlgorithm: alg},
				})
				if fips140.Enforced() {
					if !errors.Is(err, ErrNotApproved) {
						t.Fatalf("%s: Upload in FIPS 140-only mode: %v", name, err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				out := filepath.Join(dir, name)
				runPython(t, "download", e.srv.ConnectionString(), cname, name, k.sdk, out)
				got, err := os.ReadFile(out)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("%s: Python read %d bytes, want %d (%v)", name, len(got), len(pt), err)
				}
				if size > 10 {
					off := DefaultRegionLength - 4
					runPython(t, "download", e.srv.ConnectionString(), cname, name, k.sdk, out, strconv.Itoa(off), "5")
					got, _ := os.ReadFile(out)
					if !bytes.Equal(got, pt[off:off+5]) {
						t.Fatalf("%s: Python ranged read %x, want %x", name, got, pt[off:off+5])
					}
				}
			}
		}
	}
}

// TestPythonWritesV1GeosealReads: the Python SDK uploads CSE v1 (its default
// encryption_version, AES-CBC), single put and chunked, and geoseal reads it
// with ReadCSEv1, whole and by ranges; without ReadCSEv1 it is refused. In
// FIPS 140-only mode only the RSA-OAEP-256 blobs can be read (local A256KW
// and RSA-OAEP with SHA-1 are refused), which is checked instead.
func TestPythonWritesV1GeosealReads(t *testing.T) {
	pysdk.Require(t)
	e := newBlobEnv(t)
	ctx := context.Background()
	cname := e.container.URL()[len(e.srv.BlobEndpoint)+1:]
	aesKey := bytes.Repeat([]byte{0x24}, 32)
	aes, _ := LocalAESKEK("local:py-v1-aes", aesKey)
	priv := loadRSAKey(t)
	rsa, _ := LocalRSAKEK("local:py-v1-rsa", priv, nil)
	kr := Keys(aes, rsa)
	sdkAES := pysdk.AESKEK(aes.KeyID(), aesKey)
	sdkRSA := func(alg string) pysdk.KEK { return pysdk.RSAKEK(t, rsa.KeyID(), alg, priv) }
	// One Python process uploads them all, chunked as pysdk.Blob.Chunked
	// says: from 16 bytes of padded ciphertext up, in 64 KiB blocks.
	var blobs []pysdk.Blob
	add := func(kek pysdk.KEK, size int, chunked bool) {
		blobs = append(blobs, pysdk.Blob{
			Name:      fmt.Sprintf("py-v1-%s-%d-%v", kek.Algorithm(), size, chunked),
			Plaintext: testPlaintext(size),
			Version:   pysdk.V1, KEK: kek, Chunked: chunked,
		})
	}
	// Every size with A256KW, a few with RSA-OAEP: the wrap does not change
	// the body. (testdata/v1_vectors.json has every size with both.)
	for _, k := range []struct {
		kek   pysdk.KEK
		sizes []int
	}{
		{sdkAES, []int{0, 1, 15, 16, 17, 100000, 4<<20 + 1}},
		{sdkRSA(AlgorithmRSAOAEP), []int{17, 100000}},
	} {
		for _, n := range k.sizes {
			for _, ch := range []bool{false, true} {
				add(k.kek, n, ch)
			}
		}
	}
	add(sdkRSA(AlgorithmRSAOAEP256), 100000, true)
	add(sdkRSA(AlgorithmRSAOAEP256), 17, false)
	add(sdkRSA(algorithmRSA), 17, true)
	pysdk.Upload(t, e.srv.ConnectionString(), cname, blobs)

	for _, c := range blobs {
		name, pt, alg := c.Name, c.Plaintext, c.KEK.Algorithm()
		b := e.container.NewBlobClient(name)
		if _, err := Download(ctx, b, kr, nil); !errors.Is(err, ErrUnsupportedProtocol) {
			t.Fatalf("%s: Download without ReadCSEv1: %v, want ErrUnsupportedProtocol", name, err)
		}
		opts := &DownloadOptions{Reader: &ReaderOptions{ReadCSEv1: true}}
		got, err := readAllClose(Download(ctx, b, kr, opts))
		if alg != AlgorithmRSAOAEP256 && fips140.Enforced() {
			if !errors.Is(err, ErrNotApproved) {
				t.Fatalf("%s: %s in FIPS 140-only mode: %v, want ErrNotApproved", name, alg, err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%s: Download: %v (%d bytes, want %d)", name, err, len(got), len(pt))
		}
		size := int64(len(pt))
		checkRanges(t, name, b, pt, [][2]int64{{0, 10}, {15, 2}, {65530, 20}, {size - 3, 3}, {size - 17, 0}}, kr, opts)
	}
}
