package envelope

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/internal/azurite"
	"github.com/geoseal/geoseal/internal/formattest"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

// wireCounter counts what crosses the HTTP transport: request bodies sent
// and response bodies received, per method. It sits in
// ClientOptions.Transport, below azcore's retry policy, so retries count.
type wireCounter struct {
	requests atomic.Int64
	sent     atomic.Int64 // request body bytes
	received atomic.Int64 // response body bytes
	gets     atomic.Int64
	puts     atomic.Int64

	inflightPuts atomic.Int64
	maxPuts      atomic.Int64

	mu     sync.Mutex
	onSend func(*http.Request) // called before a request is sent
}

func (c *wireCounter) reset() {
	c.requests.Store(0)
	c.sent.Store(0)
	c.received.Store(0)
	c.gets.Store(0)
	c.puts.Store(0)
	c.maxPuts.Store(0)
}

func (c *wireCounter) String() string {
	return fmt.Sprintf("%d requests (%d GET, %d PUT), %d bytes sent, %d received",
		c.requests.Load(), c.gets.Load(), c.puts.Load(), c.sent.Load(), c.received.Load())
}

// countingTransport is a policy.Transporter that counts into a wireCounter.
type countingTransport struct {
	c      *wireCounter
	client *http.Client
}

func (t *countingTransport) Do(req *http.Request) (*http.Response, error) {
	t.c.requests.Add(1)
	switch req.Method {
	case http.MethodGet:
		t.c.gets.Add(1)
	case http.MethodPut:
		t.c.puts.Add(1)
		n := t.c.inflightPuts.Add(1)
		defer t.c.inflightPuts.Add(-1)
		for {
			m := t.c.maxPuts.Load()
			if n <= m || t.c.maxPuts.CompareAndSwap(m, n) {
				break
			}
		}
	}
	t.c.mu.Lock()
	hook := t.c.onSend
	t.c.mu.Unlock()
	if hook != nil {
		hook(req)
	}
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &countingBody{ReadCloser: req.Body, n: &t.c.sent}
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, n: &t.c.received}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// blobFixture is one container on a fresh Azurite, reached through a
// counting transport.
type blobFixture struct {
	srv       *azurite.Server
	wire      *wireCounter
	transport *http.Transport
	container *container.Client // counted
	plain     *container.Client // not counted, for setting up and tampering
	kr        *keyring.AES
	client    *BlobClient
}

// newBlobFixture starts Azurite and makes a container and a BlobClient
// allowed by an explicitly unrestricted guard.
func newBlobFixture(t testing.TB, opts *BlobClientOptions) *blobFixture {
	t.Helper()
	srv := azurite.ForTest(t)
	f := &blobFixture{srv: srv, wire: &wireCounter{}}
	f.transport = &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(f.transport.CloseIdleConnections)
	clientOpts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: &countingTransport{c: f.wire, client: &http.Client{Transport: f.transport}},
		// Azurite refuses connections while it is stopped: retry quickly
		// so that fault tests do not wait for the production back-off.
		Retry: policy.RetryOptions{MaxRetries: 2, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond},
	}}
	name := blobContainerName(t)
	ctrURL := srv.BlobEndpoint + "/" + name
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
	f.client, err = NewBlobClient(f.container, f.kr, unrestrictedGuard(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func unrestrictedGuard(t testing.TB) *region.Guard {
	t.Helper()
	g, err := region.NewGuard(region.Unrestricted(), region.Static("eastus", ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// blobContainerName derives a valid, unique container name from the test.
func blobContainerName(t testing.TB) string {
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

func blobRandom(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// upload stores plaintext with f.client and fails the test on error.
func (f *blobFixture) upload(t testing.TB, name string, plaintext []byte, opts *UploadOptions) UploadResponse {
	t.Helper()
	resp, err := f.client.Upload(context.Background(), name, bytes.NewReader(plaintext), opts)
	if err != nil {
		t.Fatalf("Upload(%q, %d bytes): %v", name, len(plaintext), err)
	}
	return resp
}

// download reads a whole object back through c.
func blobDownload(c *BlobClient, name string, opts *DownloadOptions) ([]byte, error) {
	r, err := c.Download(context.Background(), name, opts)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func blobDownloadRange(c *BlobClient, name string, off, n int64, opts *DownloadOptions) ([]byte, error) {
	r, err := c.DownloadRange(context.Background(), name, off, n, opts)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// rawBlob returns a blob's stored bytes and metadata, read without geoseal.
func (f *blobFixture) rawBlob(t testing.TB, name string) ([]byte, map[string]*string) {
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
func (f *blobFixture) putRaw(t testing.TB, name string, data []byte, md map[string]*string) {
	t.Helper()
	_, err := f.plain.NewBlockBlobClient(name).UploadBuffer(context.Background(), data, &azblob.UploadBufferOptions{Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
}
