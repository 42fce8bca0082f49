package blobstore

import (
	"bytes"
	"context"
	"crypto/fips140"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/envelope/csev2"
	"github.com/geoseal/geoseal/internal/pysdk"
	"github.com/geoseal/geoseal/keyring"
)

// v1EncryptionData is the "encryptiondata" the Python SDK (12.15.0b1)
// writes for CSE v1 with an A256KW key: its layout, with made-up values.
const v1EncryptionData = `{"WrappedContentKey": {"KeyId": "local:v1", "EncryptedKey": "3u9KkyRxtfeHQ/vcHdCOl5rh+BFWw3GzNLsjSZuyfV0GeGsLt7Ag2g==", "Algorithm": "A256KW"}, "EncryptionAgent": {"Protocol": "1.0", "EncryptionAlgorithm": "AES_CBC_256"}, "ContentEncryptionIV": "aS8XeXf9rL8b4+u0Fd3KWw==", "KeyWrappingMetadata": {"EncryptionLibrary": "Python 12.15.0b1"}, "EncryptionMode": "FullBlob"}`

// TestFormatOfCSE: the listing's classification of "encryptiondata" is
// csev2's parse: protocol 1.0 is CSE v1 only with the members v1 needs.
func TestFormatOfCSE(t *testing.T) {
	_, blobs := loadCSE(t)
	for _, tc := range []struct {
		name, encryptionData, want string
	}{
		{"v1", v1EncryptionData, FormatCSEv1},
		{"v2", blobs[0].EncryptionData, FormatCSEv2},
		{"v1 without IV or key", `{"EncryptionAgent":{"Protocol":"1.0","EncryptionAlgorithm":"AES_CBC_256"}}`, FormatUnknown},
		{"v1 with GCM", `{"WrappedContentKey": {"KeyId": "k", "EncryptedKey": "AAAA", "Algorithm": "A256KW"}, "EncryptionAgent": {"Protocol": "1.0", "EncryptionAlgorithm": "AES_GCM_256"}, "ContentEncryptionIV": "aS8XeXf9rL8b4+u0Fd3KWw=="}`, FormatUnknown},
		{"protocol 3.0", `{"EncryptionAgent":{"Protocol":"3.0"}}`, FormatUnknown},
		{"not JSON", `not json`, FormatUnknown},
	} {
		if got := formatOf(map[string]*string{csev2.MetadataKey: to.Ptr(tc.encryptionData)}); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// pythonV1 is a container of CSE v1 blobs the Python SDK wrote, and a
// resolver for their keys.
type pythonV1 struct {
	blobs    []pysdk.Blob
	resolver csev2.KeyResolver
}

// cseKEKs makes an A256KW key and an RSA key, as the SDK and csev2 each
// see them.
func cseKEKs(t *testing.T) (aesSDK, rsaSDK pysdk.KEK, resolver csev2.KeyResolver) {
	t.Helper()
	key := randomBytes(32)
	priv := mustRSAKey(t)
	aes, err := csev2.LocalAESKEK("local:v1-aes", key)
	if err != nil {
		t.Fatal(err)
	}
	rsa, err := csev2.LocalRSAKEK("local:v1-rsa", priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return pysdk.AESKEK(aes.KeyID(), key), pysdk.RSAKEK(t, rsa.KeyID(), csev2.AlgorithmRSAOAEP256, priv), csev2.Keys(aes, rsa)
}

// containerName is the name of the fixture's container.
func (f *fixture) containerName() string {
	u, _ := url.Parse(f.container.URL())
	return path.Base(u.Path)
}

// newPythonV1 has the Python SDK write CSE v1 blobs of many sizes, single
// put and chunked, under an A256KW and an RSA-OAEP-256 key.
func newPythonV1(t *testing.T, f *fixture) *pythonV1 {
	t.Helper()
	pysdk.Require(t)
	aes, rsa, resolver := cseKEKs(t)
	p := &pythonV1{resolver: resolver}
	add := func(kek pysdk.KEK, size int, chunked bool) {
		p.blobs = append(p.blobs, pysdk.Blob{
			Name:      fmt.Sprintf("v1/%s-%d-%v", kek.Algorithm(), size, map[bool]string{false: "single", true: "chunked"}[chunked]),
			Plaintext: randomBytes(size), Version: pysdk.V1, KEK: kek, Chunked: chunked,
		})
	}
	for _, n := range []int{0, 1, 15, 16, 17, 100000} {
		add(aes, n, false)
	}
	add(aes, 100000, true)
	add(aes, 4<<20+1, true)
	add(rsa, 17, false)
	add(rsa, 100000, true)
	add(rsa, 300000, false)
	pysdk.Upload(t, f.srv.ConnectionString(), f.containerName(), p.blobs)
	return p
}

// checkUpload checks that the SDK uploaded b as asked: in committed
// blocks when chunked, in one Put Blob (no blocks) otherwise.
func (f *fixture) checkUpload(t testing.TB, b pysdk.Blob) {
	t.Helper()
	bl, err := f.plain.NewBlockBlobClient(b.Name).GetBlockList(context.Background(), blockblob.BlockListTypeCommitted, nil)
	if err != nil {
		t.Fatal(err)
	}
	if blocks := len(bl.BlockList.CommittedBlocks); b.Chunked != (blocks > 1) {
		t.Fatalf("%s: %d committed blocks (chunked: %v)", b.Name, blocks, b.Chunked)
	}
}

// TestCSEv1Reads: with ReadCSEv1, the client reads CSE v1 blobs the Python
// SDK wrote, whole, by ranges, by ReadAt, and reports them as CSE v1.
// Local A256KW is refused in FIPS 140-only mode (it runs outside the
// validated module), which is checked instead.
func TestCSEv1Reads(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	p := newPythonV1(t, f)
	keys := &countingResolver{KeyResolver: p.resolver}
	c := f.newClient(t, f.kr, &ClientOptions{CSEv2: keys, ReadCSEv1: true})
	for _, b := range p.blobs {
		t.Run(b.Name, func(t *testing.T) {
			pt := b.Plaintext
			n := int64(len(pt))
			f.checkUpload(t, b)
			got, err := download(c, b.Name, nil)
			if b.KEK.Algorithm() == csev2.AlgorithmA256KW && fips140.Enforced() {
				if !errors.Is(err, csev2.ErrNotApproved) {
					t.Fatalf("Download in FIPS 140-only mode: %v, want csev2.ErrNotApproved", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Download: %v (%d bytes, want %d)", err, len(got), n)
			}
			for _, r := range [][2]int64{{0, 10}, {15, 2}, {16, 16}, {65530, 20}, {n - 3, 3}, {n - 17, 0}, {n, 5}} {
				if r[0] < 0 {
					continue
				}
				got, err := downloadRange(c, b.Name, r[0], r[1], nil)
				lo := min(r[0], n)
				hi := n
				if r[1] > 0 {
					hi = min(lo+r[1], n)
				}
				if err != nil || !bytes.Equal(got, pt[lo:hi]) {
					t.Fatalf("range %v: %v (%d bytes, want %d)", r, err, len(got), hi-lo)
				}
			}
			bl, err := c.Open(ctx, b.Name, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer bl.Close()
			props := bl.Properties()
			if props.Format != FormatCSEv1 || props.Size != n || props.Context != nil || len(props.WrappedKeys) != 1 ||
				props.WrappedKeys[0].Provider != FormatCSEv1 || props.WrappedKeys[0].KeyID != b.KEK.KeyID() {
				t.Fatalf("properties: %+v", props)
			}
			for _, off := range []int64{0, 1, 16, n / 2, n - 1} {
				if off < 0 || off >= n {
					continue
				}
				buf := make([]byte, min(70000, n-off))
				if k, err := bl.ReadAt(buf, off); err != nil || !bytes.Equal(buf[:k], pt[off:off+int64(k)]) || k != len(buf) {
					t.Fatalf("ReadAt(%d bytes at %d): %d, %v", len(buf), off, k, err)
				}
			}
			if all, err := io.ReadAll(bl); err != nil || !bytes.Equal(all, pt) {
				t.Fatalf("Read: %v (%d bytes)", err, len(all))
			}
		})
	}

	// Listed as what it is, from metadata alone.
	pager := c.NewListPager(&ListOptions{Prefix: "v1/"})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			if it.Format != FormatCSEv1 || it.Size != -1 {
				t.Errorf("%s lists as %s, size %d", it.Name, it.Format, it.Size)
			}
		}
	}
}

// TestCSEv1Refusals: CSE v1 is refused without ReadCSEv1 and under a
// required context (the client's or the call's), before any key is
// looked up; a broken padding fails with csev2's one v1 error and no
// plaintext.
func TestCSEv1Refusals(t *testing.T) {
	f := newFixture(t, nil)
	pysdk.Require(t)
	_, rsa, resolver := cseKEKs(t)
	pt := randomBytes(1000)
	pysdk.Upload(t, f.srv.ConnectionString(), f.containerName(), []pysdk.Blob{{Name: "v1", Plaintext: pt, Version: pysdk.V1, KEK: rsa}})
	keys := &countingResolver{KeyResolver: resolver}
	require := keyring.Context{"project": "x-57"}
	for _, tc := range []struct {
		name    string
		opts    *ClientOptions
		require keyring.Context
		want    error
	}{
		{"ReadCSEv1 off", &ClientOptions{CSEv2: keys}, nil, ErrCSEv1NotEnabled},
		{"no key resolver", &ClientOptions{ReadCSEv1: true}, nil, ErrCSEv2NotConfigured},
		{"context required by the call", &ClientOptions{CSEv2: keys, ReadCSEv1: true}, require, envelope.ErrContextMismatch},
		{"context required by the client", &ClientOptions{CSEv2: keys, ReadCSEv1: true, RequireContext: require}, nil, envelope.ErrContextMismatch},
		{"context required, v1 off", &ClientOptions{CSEv2: keys}, require, envelope.ErrContextMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := f.newClient(t, f.kr, tc.opts)
			for op, run := range readOps(c, "v1", tc.require) {
				keys.n.Store(0)
				if err := run(); !errors.Is(err, tc.want) {
					t.Errorf("%s: %v, want %v", op, err, tc.want)
				}
				if keys.n.Load() != 0 {
					t.Errorf("%s: the key was looked up", op)
				}
			}
		})
	}

	// The last plaintext byte, a padding byte, changed through the block
	// before it.
	c := f.newClient(t, f.kr, &ClientOptions{CSEv2: keys, ReadCSEv1: true})
	raw, md := f.rawBlob(t, "v1")
	raw[len(raw)-17] ^= 0x80
	f.putRaw(t, "v1-bad-padding", raw, md)
	for op, run := range readOps(c, "v1-bad-padding", nil) {
		if err := run(); !errors.Is(err, csev2.ErrV1Decrypt) {
			t.Errorf("%s of a broken padding: %v, want csev2.ErrV1Decrypt", op, err)
		}
	}
	// A modification elsewhere is not noticed: v1 has no integrity.
	raw, _ = f.rawBlob(t, "v1")
	raw[100] ^= 1
	f.putRaw(t, "v1-modified", raw, md)
	if got, err := download(c, "v1-modified", nil); err != nil || bytes.Equal(got, pt) {
		t.Fatalf("a modified v1 blob: %v; want it read, to other plaintext", err)
	}
}
