package envelope

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
)

// DownloadOptions configure Download and DownloadRange. Nil means the
// defaults.
type DownloadOptions struct {
	// RequireContext lists pairs the object's encryption context must
	// contain (see DecryptOptions.RequireContext).
	RequireContext keyring.Context

	// RangeSize is the size of each ranged GET, and Concurrency how many
	// are in flight; they override the client's (see BlobClientOptions).
	RangeSize   int64
	Concurrency int
}

// retryReads is how many times a ranged GET whose body breaks off is
// resumed (azblob's RetryReader; the request itself is retried by the
// pipeline's retry policy).
const retryReads = 3

// Download returns a reader of the plaintext of the geoseal object stored
// in blobName.
//
// The first request fetches the blob's first block, with its metadata and
// ETag; the header in it is verified (key commitment, header tag,
// opts.RequireContext) while the rest of the blob is fetched, Concurrency
// ranges at a time, each conditional on the ETag, so a blob replaced
// during the download fails with ErrBlobChanged instead of mixing
// versions. The reader authenticates every chunk before returning any of
// its bytes; if anything fails (a chunk was modified, the blob is cut
// short or extended, a request fails) Read returns the error, never
// io.EOF. Errors of the body match ErrBodyTampered.
//
// ctx bounds the whole download, including the reads from the returned
// reader. The caller must Close the reader, which stops the requests in
// flight. A blob written with the Azure SDKs' client-side encryption v2
// is read through BlobClientOptions.CSEv2.
func (c *BlobClient) Download(ctx context.Context, blobName string, opts *DownloadOptions) (io.ReadCloser, error) {
	if opts == nil {
		opts = &DownloadOptions{}
	}
	blockSize, concurrency, err := c.downloadTransfer(opts.RangeSize, opts.Concurrency)
	if err != nil {
		return nil, err
	}
	b := c.container.NewBlobClient(blobName)
	resp, err := b.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Count: blockSize}})
	if err != nil {
		if bloberror.HasCode(err, bloberror.InvalidRange) {
			// An empty blob: a ranged GET of it fails.
			return nil, fmt.Errorf("envelope: blob %q is empty: %w", blobName, ErrNotGeoseal)
		}
		return nil, fmt.Errorf("envelope: download of %q: %w", blobName, err)
	}
	if isCSEv2(resp.Metadata) {
		resp.Body.Close()
		return c.downloadCSEv2(ctx, b, 0, 0)
	}
	total, err := totalSize(resp.ContentRange, resp.ContentLength)
	if err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("envelope: download of %q: %w", blobName, err)
	}
	if resp.ETag == nil {
		resp.Body.Close()
		return nil, fmt.Errorf("envelope: download of %q: the service sent no ETag", blobName)
	}
	etag := *resp.ETag

	// Start fetching the rest of the blob now, while the first range
	// arrives and the keyring unwraps (which may be a round trip to Key
	// Vault or an HSM).
	ctx, cancel := context.WithCancelCause(ctx)
	first := make([]byte, min(blockSize, total))
	f := newFetcher(ctx, b, etag, int64(len(first)), total, blockSize, concurrency)
	fail := func(err error) (io.ReadCloser, error) {
		cancel(err)
		f.Close()
		return nil, err
	}
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: retryReads})
	_, err = io.ReadFull(body, first)
	body.Close()
	if err != nil {
		return fail(fmt.Errorf("envelope: download of %q: %w", blobName, blobChanged(err)))
	}
	br := bytes.NewReader(first)
	header, err := format.ReadHeader(br)
	if err != nil {
		return fail(err)
	}
	h, content, err := format.Unlock(ctx, header, c.keyring, &format.UnlockOptions{
		RequireContext: opts.RequireContext,
		MaxWrappedKeys: c.opts.MaxWrappedKeys,
	})
	if err != nil {
		return fail(err)
	}
	defer content.Zero()
	content.Options.Concurrency = cryptoConcurrency(concurrency)
	if err := checkMetadata(resp.Metadata, h, len(header), total); err != nil {
		return fail(err)
	}
	sr, err := stream.NewReader(io.MultiReader(br, f), content.Key, &content.Options)
	if err != nil {
		return fail(fmt.Errorf("envelope: %w", err))
	}
	return &downloadReader{r: sr, f: f, cancel: cancel}, nil
}

// checkMetadata compares the geoseal metadata of a blob, if any, with its
// authenticated header and its size.
func checkMetadata(md map[string]*string, h *format.Header, headerLen int, total int64) error {
	m, ok, err := parseObjectMetadata(md)
	if err != nil || !ok {
		return err
	}
	if m.headerLength != headerLen || m.chunkSize != h.ChunkSize || m.suite != h.Suite {
		return fmt.Errorf("%w: header length %d, chunk size %d, suite %v recorded; the header has %d, %d, %v",
			ErrInvalidMetadata, m.headerLength, m.chunkSize, m.suite, headerLen, h.ChunkSize, h.Suite)
	}
	if want := stream.EncryptedSize(m.plaintextSize, &stream.Options{ChunkSize: h.ChunkSize, Suite: h.Suite}); want < 0 || int64(headerLen)+want != total {
		return fmt.Errorf("%w: plaintext size %d recorded for a blob of %d bytes", ErrInvalidMetadata, m.plaintextSize, total)
	}
	return nil
}

// totalSize returns the size of the whole blob from the Content-Range of a
// ranged GET ("bytes 0-99/1234").
func totalSize(contentRange *string, contentLength *int64) (int64, error) {
	if contentRange == nil {
		if contentLength == nil {
			return 0, errors.New("the service sent no Content-Range")
		}
		return *contentLength, nil
	}
	_, s, ok := strings.Cut(*contentRange, "/")
	n, err := strconv.ParseInt(s, 10, 64)
	if !ok || err != nil || n < 0 {
		return 0, fmt.Errorf("malformed Content-Range %q", *contentRange)
	}
	return n, nil
}

// downloadReader is the plaintext reader Download returns.
type downloadReader struct {
	r      *stream.Reader
	f      *fetcher
	cancel context.CancelCauseFunc
	once   sync.Once
}

func (d *downloadReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		err = d.f.explain(err)
	}
	return n, err
}

// Close stops the requests in flight and releases the buffers.
func (d *downloadReader) Close() error {
	d.once.Do(func() {
		d.r.Close()
		d.cancel(errReaderClosed)
		d.f.Close()
	})
	return nil
}

var errReaderClosed = errors.New("envelope: download reader closed")

// explain turns an error of the stream reader into the download's error:
// the fetcher's own failure (a request, a changed blob) when there was
// one, which the stream only passed on, else a failure of the body's
// authentication.
func (f *fetcher) explain(err error) error {
	if ferr := f.failure(); ferr != nil {
		return ferr
	}
	var ce *stream.ChunkError
	if errors.As(err, &ce) {
		return format.BodyError(err)
	}
	return err
}

// A fetcher reads bytes [start, end) of a blob with ranged GETs of
// blockSize bytes, concurrency of them in flight, and returns them in
// order. Every GET is conditional on the blob's ETag. It holds at most
// concurrency + 1 buffers.
type fetcher struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	b      *blob.Client
	etag   azcore.ETag

	queue chan *fetch // in blob order
	free  chan []byte
	wg    sync.WaitGroup

	cur *fetch // being read
	off int    // read position in cur

	mu  sync.Mutex
	err error // first failure of a request
}

type fetch struct {
	buf  []byte
	n    int
	err  error
	done chan struct{}
}

func newFetcher(ctx context.Context, b *blob.Client, etag azcore.ETag, start, end, blockSize int64, concurrency int) *fetcher {
	f := &fetcher{
		b:     b,
		etag:  etag,
		queue: make(chan *fetch, concurrency+1),
		free:  make(chan []byte, concurrency+1),
	}
	f.ctx, f.cancel = context.WithCancelCause(ctx)
	f.wg.Add(1)
	go f.produce(start, end, blockSize, concurrency+1)
	return f
}

// produce starts one GET per range, in order, as buffers become free.
func (f *fetcher) produce(start, end, blockSize int64, maxBufs int) {
	defer f.wg.Done()
	defer close(f.queue)
	nbufs := 0
	for off := start; off < end; off += blockSize {
		var buf []byte
		select {
		case buf = <-f.free:
		default:
			if nbufs < maxBufs {
				nbufs++
				buf = make([]byte, min(blockSize, end-start))
			} else {
				select {
				case buf = <-f.free:
				case <-f.ctx.Done():
					return
				}
			}
		}
		n := min(blockSize, end-off)
		ft := &fetch{buf: buf, n: int(n), done: make(chan struct{})}
		f.queue <- ft // never blocks: the queue holds as many as there are buffers
		f.wg.Add(1)
		go f.get(ft, off)
	}
}

func (f *fetcher) get(ft *fetch, off int64) {
	defer f.wg.Done()
	defer close(ft.done)
	ft.err = getRange(f.ctx, f.b, f.etag, ft.buf[:ft.n], off)
	if ft.err != nil {
		f.fail(ft.err)
	}
}

func (f *fetcher) fail(err error) {
	f.mu.Lock()
	if f.err == nil && context.Cause(f.ctx) == nil {
		f.err = err
	}
	f.mu.Unlock()
	f.cancel(err)
}

// failure returns the first failure of a request, or the reason the
// fetcher was stopped.
func (f *fetcher) failure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if err := context.Cause(f.ctx); err != nil && !errors.Is(err, errReaderClosed) {
		return err
	}
	return nil
}

// Read returns the blob's bytes in order; io.EOF at end.
func (f *fetcher) Read(p []byte) (int, error) {
	for f.cur == nil || f.off == f.cur.n {
		if f.cur != nil {
			f.free <- f.cur.buf
			f.cur = nil
		}
		var ft *fetch
		var ok bool
		select {
		case ft, ok = <-f.queue:
		case <-f.ctx.Done():
			return 0, context.Cause(f.ctx)
		}
		if !ok {
			if err := f.failure(); err != nil {
				return 0, err
			}
			return 0, io.EOF
		}
		select {
		case <-ft.done:
		case <-f.ctx.Done():
			return 0, context.Cause(f.ctx)
		}
		if ft.err != nil {
			return 0, ft.err
		}
		f.cur, f.off = ft, 0
	}
	n := copy(p, f.cur.buf[f.off:f.cur.n])
	f.off += n
	return n, nil
}

// Close cancels the requests in flight and waits for their goroutines.
func (f *fetcher) Close() error {
	f.cancel(errReaderClosed)
	f.wg.Wait()
	return nil
}
