package csev2

import (
	"bytes"
	"context"
	"crypto/fips140"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/internal/azurite"
)

// transport records every request the client sends: method, range, and
// the bytes of response body that came back.
type transport struct {
	mu       sync.Mutex
	requests []string
	bytesIn  int64
}

func (c *transport) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	c.mu.Lock()
	defer c.mu.Unlock()
	r := req.Raw()
	// The generated client sets x-ms-range without canonicalizing the key.
	//lint:ignore SA1008 the key is looked up exactly as azblob stores it
	c.requests = append(c.requests, r.Method+" "+strings.Join(r.Header["x-ms-range"], ","))
	if err == nil && r.Method == http.MethodGet && resp.ContentLength > 0 {
		c.bytesIn += resp.ContentLength
	}
	return resp, err
}

func (c *transport) reset() {
	c.mu.Lock()
	c.requests, c.bytesIn = nil, 0
	c.mu.Unlock()
}

type blobEnv struct {
	srv       *azurite.Server
	client    *azblob.Client
	counter   *transport
	container *container.Client
}

func newBlobEnv(t *testing.T) *blobEnv {
	t.Helper()
	srv := azurite.ForTest(t)
	counter := &transport{}
	client, err := srv.NewClient(&azblob.ClientOptions{ClientOptions: policy.ClientOptions{
		PerRetryPolicies: []policy.Policy{counter},
	}})
	if err != nil {
		t.Fatal(err)
	}
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	name = strings.Trim(name[:min(len(name), 60)], "-")
	cc := client.ServiceClient().NewContainerClient(name)
	if _, err := cc.Create(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return &blobEnv{srv: srv, client: client, counter: counter, container: cc}
}

// putRaw stores ciphertext and metadata as given, the way a peer SDK (or an
// attacker with write access) would.
func (e *blobEnv) putRaw(t *testing.T, name string, ct []byte, ed *EncryptionData) *blockblob.Client {
	t.Helper()
	bb := e.container.NewBlockBlobClient(name)
	var md map[string]*string
	if ed != nil {
		js, err := ed.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		s := string(js)
		md = map[string]*string{MetadataKey: &s}
	}
	if _, err := bb.UploadBuffer(context.Background(), ct, &blockblob.UploadBufferOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	return bb
}

// sealedBlob builds a CSE v2 ciphertext without the package's writer (so
// that it works in FIPS 140-only mode too) and its metadata.
func sealedBlob(t *testing.T, kek KeyEncryptionKey, scheme NonceScheme, protocol string, rl int64, pt []byte) ([]byte, *EncryptionData) {
	t.Helper()
	cek := bytes.Repeat([]byte{byte(scheme)}, 32)
	prefix := versionPrefix(protocol)
	alg := wrapAlgorithm(t, kek)
	wrapped, err := kek.WrapKey(context.Background(), alg, append(prefix[:], cek...))
	if err != nil {
		t.Fatal(err)
	}
	return testSeal(t, cek, scheme, int(rl), pt), &EncryptionData{
		WrappedContentKey:   WrappedContentKey{KeyID: kek.KeyID(), EncryptedKey: wrapped, Algorithm: alg},
		EncryptionAgent:     EncryptionAgent{Protocol: protocol, EncryptionAlgorithm: algorithmAESGCM256},
		EncryptedRegionInfo: &EncryptedRegionInfo{DataLength: rl, NonceLength: nonceSize},
		EncryptionMode:      "FullBlob",
	}
}

func readAllClose(rc io.ReadCloser, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestBlobRanges stores a blob of 1000-byte regions and checks that
// DownloadRange fetches exactly the regions a range covers: one properties
// request and one GET whose x-ms-range spans those regions and nothing more.
func TestBlobRanges(t *testing.T) {
	e := newBlobEnv(t)
	ctx := context.Background()
	kek := testRSAKEK(t)
	const rl = 1000
	pt := testPlaintext(10*rl + 123)
	for _, scheme := range []NonceScheme{NonceJava, NoncePython, NonceDotNet} {
		ct, ed := sealedBlob(t, kek, scheme, Protocol21, rl, pt)
		b := e.putRaw(t, "ranges-"+scheme.String(), ct, ed).BlobClient()

		e.counter.reset()
		got, err := readAllClose(Download(ctx, b, Keys(kek), nil))
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%v Download: %v", scheme, err)
		}
		if len(e.counter.requests) != 1 {
			t.Errorf("Download made %d requests, want 1: %v", len(e.counter.requests), e.counter.requests)
		}

		for _, r := range [][2]int64{{0, 1}, {0, rl}, {rl - 1, 2}, {rl, rl}, {2500, 3000}, {int64(len(pt)) - 5, 5}, {int64(len(pt)) - 5, 100}, {9000, 0}, {0, 0}, {int64(len(pt)), 10}} {
			e.counter.reset()
			off, count := r[0], r[1]
			got, err := readAllClose(DownloadRange(ctx, b, off, count, Keys(kek), nil))
			if err != nil {
				t.Fatalf("%v DownloadRange(%d, %d): %v", scheme, off, count, err)
			}
			end := int64(len(pt))
			if count > 0 {
				end = min(off+count, end)
			}
			if !bytes.Equal(got, pt[off:end]) {
				t.Fatalf("%v DownloadRange(%d, %d): wrong bytes (%d)", scheme, off, count, len(got))
			}
			if off >= end {
				if len(e.counter.requests) != 1 {
					t.Errorf("empty range made requests %v", e.counter.requests)
				}
				continue
			}
			first, last := off/rl, (end-1)/rl
			cstart, cend := first*(rl+Overhead), min((last+1)*(rl+Overhead), int64(len(ct)))
			want := []string{"HEAD ", fmt.Sprintf("GET bytes=%d-%d", cstart, cend-1)}
			if fmt.Sprint(e.counter.requests) != fmt.Sprint(want) || e.counter.bytesIn != cend-cstart {
				t.Errorf("%v DownloadRange(%d, %d): requests %q (%d bytes), want %q (%d bytes)",
					scheme, off, count, e.counter.requests, e.counter.bytesIn, want, cend-cstart)
			}
		}
	}
}

// TestBlobTampering stores reordered, truncated and unencrypted blobs.
func TestBlobTampering(t *testing.T) {
	e := newBlobEnv(t)
	ctx := context.Background()
	kek := testRSAKEK(t)
	const rl = 64
	pt := testPlaintext(4*rl + 10)
	ct, ed := sealedBlob(t, kek, NonceDotNet, Protocol21, rl, pt)
	R := rl + Overhead

	swapped := append(append(append([]byte{}, ct[:R]...), ct[2*R:3*R]...), ct[R:2*R]...)
	swapped = append(swapped, ct[3*R:]...)
	b := e.putRaw(t, "swapped", swapped, ed).BlobClient()
	got, err := readAllClose(Download(ctx, b, Keys(kek), nil))
	if !errors.Is(err, ErrRegionOrder) || len(got) > rl {
		t.Errorf("swapped Download: %v, %d bytes", err, len(got))
	}
	if _, err := readAllClose(DownloadRange(ctx, b, int64(rl), 10, Keys(kek), nil)); !errors.Is(err, ErrRegionOrder) {
		t.Errorf("swapped DownloadRange: %v", err)
	}

	b = e.putRaw(t, "cut", ct[:len(ct)-(10+Overhead-5)], ed).BlobClient()
	if _, err := readAllClose(Download(ctx, b, Keys(kek), nil)); !errors.Is(err, ErrTruncated) {
		t.Errorf("cut Download: %v", err)
	}
	if _, err := readAllClose(DownloadRange(ctx, b, 0, 10, Keys(kek), nil)); !errors.Is(err, ErrTruncated) {
		t.Errorf("cut DownloadRange: %v", err)
	}

	b = e.putRaw(t, "plain", pt, nil).BlobClient()
	if _, err := readAllClose(Download(ctx, b, Keys(kek), nil)); !errors.Is(err, ErrNotEncrypted) {
		t.Errorf("plain Download: %v", err)
	}
	if _, err := readAllClose(DownloadRange(ctx, b, 0, 10, Keys(kek), nil)); !errors.Is(err, ErrNotEncrypted) {
		t.Errorf("plain DownloadRange: %v", err)
	}

	// A downgraded protocol in the stored metadata.
	ed2 := *ed
	ed2.EncryptionAgent.Protocol = Protocol20
	b = e.putRaw(t, "downgraded", ct, &ed2).BlobClient()
	if _, err := readAllClose(Download(ctx, b, Keys(kek), nil)); !errors.Is(err, ErrUnwrap) {
		t.Errorf("downgraded Download: %v", err)
	}
}

// TestBlobUpload round-trips through Upload in every nonce scheme, and
// checks the refusal in FIPS 140-only mode happens before any request.
func TestBlobUpload(t *testing.T) {
	e := newBlobEnv(t)
	ctx := context.Background()
	kek := testAESKEK(t)
	if fips140.Enforced() {
		e.counter.reset()
		_, err := Upload(ctx, e.container.NewBlockBlobClient("refused"), bytes.NewReader([]byte("x")), kek, nil)
		if !errors.Is(err, ErrNotApproved) || len(e.counter.requests) != 0 {
			t.Fatalf("Upload in FIPS 140-only mode: %v after %d requests", err, len(e.counter.requests))
		}
		return
	}
	pt := testPlaintext(2*DefaultRegionLength + 77)
	for _, scheme := range []NonceScheme{NonceJava, NoncePython, NonceDotNet} {
		bb := e.container.NewBlockBlobClient("up-" + scheme.String())
		resp, err := Upload(ctx, bb, bytes.NewReader(pt), kek, &UploadOptions{
			Encryption: &WriterOptions{NonceScheme: scheme},
			Metadata:   map[string]*string{"owner": ptr("test")},
		})
		if err != nil {
			t.Fatal(err)
		}
		if resp.EncryptionData.EncryptionAgent.Protocol != Protocol20 {
			t.Fatal(resp.EncryptionData.EncryptionAgent)
		}
		props, err := bb.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *props.ContentLength != ciphertextSize(int64(len(pt)), DefaultRegionLength) {
			t.Fatalf("stored %d bytes", *props.ContentLength)
		}
		if _, err := EncryptionDataFromMetadata(props.Metadata); err != nil {
			t.Fatal(err)
		}
		got, err := readAllClose(Download(ctx, bb.BlobClient(), Keys(kek), nil))
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%v: Download: %v", scheme, err)
		}
		got, err = readAllClose(DownloadRange(ctx, bb.BlobClient(), DefaultRegionLength-3, 10, Keys(kek), nil))
		if err != nil || !bytes.Equal(got, pt[DefaultRegionLength-3:DefaultRegionLength+7]) {
			t.Fatalf("%v: DownloadRange: %v", scheme, err)
		}
	}
	_, err := Upload(ctx, e.container.NewBlockBlobClient("bad"), strings.NewReader(""), kek,
		&UploadOptions{Metadata: map[string]*string{"EncryptionData": ptr("x")}})
	if err == nil {
		t.Error("Upload accepted caller metadata named encryptiondata")
	}
}

func ptr[T any](v T) *T { return &v }
