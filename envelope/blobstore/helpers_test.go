package blobstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/internal/azurite"
	"github.com/geoseal/geoseal/internal/formattest"
	"github.com/geoseal/geoseal/internal/wire"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
	"github.com/geoseal/geoseal/stream"
)

const (
	testChunk = stream.MinChunkSize // 4 KiB: many chunks for few bytes
	testBlock = minBlockSize        // 64 KiB: many blocks for few bytes
)

// chunkOverhead is what sealing adds to every chunk under the default
// suite (AES-256-GCM: a 12-byte nonce and a 16-byte tag), the encrypted
// size of an empty stream.
var chunkOverhead = int(stream.EncryptedSize(0, nil))

// fixture is one container on a fresh Azurite, reached through a counting
// transport: the one test fixture of this package.
type fixture struct {
	srv       *azurite.Server
	wire      *wire.Counter
	transport *http.Transport
	container *container.Client // counted
	plain     *container.Client // not counted, for setting up and tampering
	kr        *keyring.AES
	client    *Client
}

// newFixture starts Azurite and makes a container and a Client allowed by
// an explicitly unrestricted guard.
func newFixture(t testing.TB, opts *ClientOptions) *fixture {
	t.Helper()
	srv := azurite.ForTest(t)
	f := &fixture{srv: srv, wire: &wire.Counter{}}
	f.transport = &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(f.transport.CloseIdleConnections)
	clientOpts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: wire.NewTransport(f.wire, f.transport),
		// Azurite refuses connections while it is stopped: retry quickly
		// so that fault tests do not wait for the production back-off.
		Retry: policy.RetryOptions{MaxRetries: 2, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond},
	}}
	ctrURL := srv.BlobEndpoint + "/" + containerName(t)
	var err error
	f.container, err = container.NewClientWithSharedKeyCredential(ctrURL, srv.Credential(), clientOpts)
	if err != nil {
		t.Fatal(err)
	}
	f.plain, err = container.NewClientWithSharedKeyCredential(ctrURL, srv.Credential(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.plain.Create(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	f.kr = formattest.NewAES(t)
	f.client = f.newClient(t, f.kr, opts)
	return f
}

// newClient returns another Client on the fixture's counted container.
func (f *fixture) newClient(t testing.TB, kr keyring.Keyring, opts *ClientOptions) *Client {
	t.Helper()
	c, err := NewClient(f.container, kr, unrestrictedGuard(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func unrestrictedGuard(t testing.TB) *region.Guard {
	t.Helper()
	g, err := region.NewGuard(region.Unrestricted(), region.Static("eastus", ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// containerName derives a valid, unique container name from the test.
func containerName(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	s := b.String()
	if len(s) > 40 {
		s = s[:40]
	}
	var suffix [4]byte
	rand.Read(suffix[:])
	return fmt.Sprintf("t%s-%x", s, suffix)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// upload stores plaintext with f.client and fails the test on error.
func (f *fixture) upload(t testing.TB, name string, plaintext []byte, opts *UploadOptions) UploadResponse {
	t.Helper()
	resp, err := f.client.Upload(context.Background(), name, bytes.NewReader(plaintext), opts)
	if err != nil {
		t.Fatalf("Upload(%q, %d bytes): %v", name, len(plaintext), err)
	}
	return resp
}

// download reads a whole object back through c.
func download(c *Client, name string, opts *DownloadOptions) ([]byte, error) {
	resp, err := c.Download(context.Background(), name, opts)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// downloadRange reads count bytes from off (count 0: to the end).
func downloadRange(c *Client, name string, off, count int64, opts *DownloadOptions) ([]byte, error) {
	o := DownloadOptions{}
	if opts != nil {
		o = *opts
	}
	o.Range = blob.HTTPRange{Offset: off, Count: count}
	return download(c, name, &o)
}

// rawBlob returns a blob's stored bytes and metadata, read without geoseal.
func (f *fixture) rawBlob(t testing.TB, name string) ([]byte, map[string]*string) {
	t.Helper()
	resp, err := f.plain.NewBlobClient(name).DownloadStream(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b, resp.Metadata
}

// putRaw replaces a blob with raw bytes and metadata in one Put Blob.
func (f *fixture) putRaw(t testing.TB, name string, data []byte, md map[string]*string) {
	t.Helper()
	_, err := f.plain.NewBlockBlobClient(name).UploadBuffer(context.Background(), data, &azblob.UploadBufferOptions{Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
}

// encryptBytes makes a geoseal object of plaintext with envelope.Encrypt.
func encryptBytes(t testing.TB, w keyring.Wrapper, plaintext []byte, opts *envelope.EncryptOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	wc, err := envelope.Encrypt(context.Background(), &buf, w, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wc.Write(plaintext); err != nil {
		t.Fatal(err)
	}
	if err := wc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decryptBytes decrypts an object with envelope.Decrypt.
func decryptBytes(u keyring.Unwrapper, object []byte) ([]byte, error) {
	r, err := envelope.Decrypt(context.Background(), bytes.NewReader(object), u, nil)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func mdGet(md map[string]*string, k string) string {
	v, _ := metadataValue(md, k)
	return v
}

func azETag(s string) azcore.ETag { return azcore.ETag(s) }
