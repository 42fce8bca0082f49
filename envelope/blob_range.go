package envelope

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/internal/rangesrc"
	"github.com/geoseal/geoseal/stream"
)

// DownloadRange returns a reader of count plaintext bytes of the geoseal
// object in blobName, starting at offset; a count of zero means up to the
// end (azblob's HTTPRange convention). A range that runs past the end is
// cut at the end; one that starts past it is empty.
//
// It costs one request for the blob's properties, then one round of
// parallel ranged GETs, conditional on the blob's ETag: the header, and only
// the chunks that hold the range. When the range reaches the end, the
// last of them is the final chunk, which authenticates where the object
// ends (an empty range past the end fetches the final chunk for that). The blob's
// geoseal metadata plans those requests and is then checked against the
// authenticated header (ErrInvalidMetadata on disagreement). A blob
// without that metadata (an object copied in by other means) costs one
// more round trip, to read the header first.
//
// Every chunk is authenticated before any of its bytes are returned, and
// the reader fails (never io.EOF) if one does not. ctx bounds the reads
// from the returned reader; the caller must Close it.
func (c *BlobClient) DownloadRange(ctx context.Context, blobName string, offset, count int64, opts *DownloadOptions) (io.ReadCloser, error) {
	if opts == nil {
		opts = &DownloadOptions{}
	}
	if offset < 0 || count < 0 {
		return nil, fmt.Errorf("envelope: invalid range: offset %d, count %d", offset, count)
	}
	blockSize, concurrency, err := c.downloadTransfer(opts.RangeSize, opts.Concurrency)
	if err != nil {
		return nil, err
	}
	b := c.container.NewBlobClient(blobName)
	props, err := b.GetProperties(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("envelope: download of %q: %w", blobName, err)
	}
	if isCSEv2(props.Metadata) {
		return c.downloadCSEv2(ctx, b, offset, count)
	}
	if props.ContentLength == nil || props.ETag == nil {
		return nil, fmt.Errorf("envelope: download of %q: the service sent no size or ETag", blobName)
	}
	total, etag := *props.ContentLength, *props.ETag

	ctx, cancel := context.WithCancelCause(ctx)
	ok := false
	defer func() {
		if !ok {
			cancel(errReaderClosed)
		}
	}()

	// The plan: header length, chunk size and suite, from the metadata or,
	// without it, from the (not yet authenticated) header itself.
	m, hasMeta, err := parseObjectMetadata(props.Metadata)
	if err != nil {
		return nil, err
	}
	var header []byte
	if !hasMeta {
		header, err = readBlobHeader(ctx, b, etag, total)
		if err != nil {
			return nil, err
		}
		h, err := format.Parse(header)
		if err != nil {
			return nil, err
		}
		m = objectMetadata{headerLength: len(header), chunkSize: h.ChunkSize, suite: h.Suite}
	}
	p, err := planRange(m, total, offset, count)
	if err != nil {
		return nil, err
	}
	if hasMeta && m.plaintextSize != p.size {
		return nil, fmt.Errorf("%w: plaintext size %d recorded for a blob of %d bytes", ErrInvalidMetadata, m.plaintextSize, total)
	}

	// One round: the header (unless already read) and the chunks of the
	// range, or the final chunk alone for an empty range.
	var wg sync.WaitGroup
	var headerErr, finalErr error
	if header == nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			header = make([]byte, m.headerLength)
			headerErr = getRange(ctx, b, etag, header, 0)
		}()
	}
	var final []byte
	if p.finalSeparate {
		final = make([]byte, p.finalEnd-p.finalStart)
		wg.Add(1)
		go func() {
			defer wg.Done()
			finalErr = getRange(ctx, b, etag, final, p.finalStart)
		}()
	}
	f := newFetcher(ctx, b, etag, p.spanStart, p.spanEnd, blockSize, concurrency)
	fail := func(err error) (io.ReadCloser, error) {
		cancel(err)
		f.Close()
		return nil, err
	}
	wg.Wait()
	if err := errors.Join(headerErr, finalErr); err != nil {
		return fail(err)
	}

	h, body, err := format.Unlock(ctx, header, c.keyring, &format.UnlockOptions{
		RequireContext: opts.RequireContext,
		MaxWrappedKeys: c.opts.MaxWrappedKeys,
	})
	if err != nil {
		return fail(err)
	}
	defer body.Zero()
	if h.ChunkSize != m.chunkSize || h.Suite != m.suite || len(header) != m.headerLength {
		return fail(fmt.Errorf("%w: header length %d, chunk size %d, suite %v planned; the header has %d, %d, %v",
			ErrInvalidMetadata, m.headerLength, m.chunkSize, m.suite, len(header), h.ChunkSize, h.Suite))
	}

	src := &spanReaderAt{f: f, pos: p.spanStart - int64(m.headerLength), final: final, finalOff: p.finalStart - int64(m.headerLength)}
	bodySize := total - int64(m.headerLength)
	var ra *stream.ReaderAt
	if p.finalSeparate {
		ra, err = stream.NewReaderAt(src, bodySize, body.Key, &body.Options)
	} else {
		ra, err = stream.NewReaderAt(rangesrc.Partial{ReaderAt: src}, bodySize, body.Key, &body.Options)
	}
	if err != nil {
		return fail(f.explain(err))
	}
	ok = true
	return &rangeReader{
		ra:     ra,
		f:      f,
		cancel: cancel,
		pos:    p.start,
		end:    p.end,
		chunk:  int64(m.chunkSize),
		buf:    make([]byte, min(int64(m.chunkSize), max(p.end-p.start, 0))),
	}, nil
}

// rangePlan is what DownloadRange fetches.
type rangePlan struct {
	size       int64 // plaintext size implied by the blob's size
	start, end int64 // plaintext range, end exclusive, clamped to size
	// Blob offsets of the chunks to stream through the fetcher, and of the
	// final chunk when it is fetched on its own (for an empty range).
	spanStart, spanEnd   int64
	finalSeparate        bool
	finalStart, finalEnd int64
}

// planRange works out which bytes of the blob hold the plaintext range
// [offset, offset+count).
func planRange(m objectMetadata, total, offset, count int64) (rangePlan, error) {
	var p rangePlan
	hl := int64(m.headerLength)
	if total < hl {
		return p, fmt.Errorf("%w: header length %d in a blob of %d bytes", ErrInvalidMetadata, hl, total)
	}
	sopts := &stream.Options{ChunkSize: m.chunkSize, Suite: m.suite}
	size, err := stream.PlaintextSize(total-hl, sopts)
	if err != nil {
		return p, fmt.Errorf("%w: a blob of %d bytes: %w", ErrInvalidMetadata, total, err)
	}
	cs := int64(m.chunkSize)
	enc := stream.EncryptedSize(cs, sopts) // one full chunk on the wire
	chunks := max((size+cs-1)/cs, 1)
	p.size = size
	p.start, p.end = min(offset, size), size
	if count > 0 && offset+count > offset && offset+count < size {
		p.end = offset + count
	}
	if p.start >= p.end {
		// An empty range still authenticates the final chunk: a range past
		// the end of a blob cut short must not read as past the end.
		p.finalSeparate = true
		p.finalStart, p.finalEnd = hl+(chunks-1)*enc, total
		return p, nil
	}
	// The chunks covering the range. When it reaches the end, the last of
	// them is the final chunk, opened as final: that authenticates the end.
	first, last := p.start/cs, (p.end-1)/cs
	p.spanStart, p.spanEnd = hl+first*enc, min(hl+(last+1)*enc, total)
	return p, nil
}

// readBlobHeader reads the header at the start of a blob whose metadata
// does not give its length.
func readBlobHeader(ctx context.Context, b *blob.Client, etag azcore.ETag, total int64) ([]byte, error) {
	buf := make([]byte, min(total, format.MaxHeaderSize))
	if err := getRange(ctx, b, etag, buf, 0); err != nil {
		return nil, err
	}
	return format.ReadHeader(bytes.NewReader(buf))
}

// getRange fills buf with the blob's bytes from off, if its ETag is etag.
func getRange(ctx context.Context, b *blob.Client, etag azcore.ETag, buf []byte, off int64) error {
	if len(buf) == 0 {
		return nil
	}
	resp, err := b.DownloadStream(ctx, &blob.DownloadStreamOptions{
		Range: blob.HTTPRange{Offset: off, Count: int64(len(buf))},
		AccessConditions: &blob.AccessConditions{
			ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag},
		},
	})
	if err != nil {
		return fmt.Errorf("envelope: reading bytes %d-%d: %w", off, off+int64(len(buf))-1, blobChanged(err))
	}
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: retryReads})
	defer body.Close()
	if _, err := io.ReadFull(body, buf); err != nil {
		return fmt.Errorf("envelope: reading bytes %d-%d: %w", off, off+int64(len(buf))-1, blobChanged(err))
	}
	return nil
}

// spanReaderAt serves the stream's ReadAt calls, which DownloadRange makes
// in increasing order, from the fetcher, and the final chunk from its own
// buffer. Offsets are relative to the start of the body.
type spanReaderAt struct {
	f        *fetcher
	pos      int64 // body offset of the fetcher's next byte
	final    []byte
	finalOff int64
}

var errOutOfPlan = errors.New("envelope: internal error: read outside the planned range")

func (s *spanReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if s.final != nil && off >= s.finalOff {
		if off-s.finalOff > int64(len(s.final)) {
			return 0, io.EOF
		}
		n := copy(p, s.final[off-s.finalOff:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	if off != s.pos {
		return 0, errOutOfPlan
	}
	n, err := io.ReadFull(s.f, p)
	s.pos += int64(n)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

// rangeReader returns the plaintext of [pos, end), one chunk at a time.
type rangeReader struct {
	ra     *stream.ReaderAt
	f      *fetcher
	cancel context.CancelCauseFunc
	once   sync.Once

	pos, end int64
	chunk    int64
	buf      []byte // plaintext of the current chunk, from bufPos
	avail    []byte // the part of buf not yet returned
	err      error
}

func (r *rangeReader) Read(p []byte) (int, error) {
	if len(r.avail) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.pos >= r.end {
			return 0, io.EOF
		}
		// Open the whole chunk holding pos, so that each chunk is fetched
		// and authenticated once.
		cstart := r.pos / r.chunk * r.chunk
		clen := min(r.chunk, r.ra.Size()-cstart)
		if int64(len(r.buf)) < clen {
			r.buf = make([]byte, clen)
		}
		n, err := r.ra.ReadAt(r.buf[:clen], cstart)
		if int64(n) < clen {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			r.err = r.f.explain(err)
			if errors.Is(r.err, io.ErrUnexpectedEOF) {
				r.err = format.BodyError(r.err)
			}
			return 0, r.err
		}
		r.avail = r.buf[r.pos-cstart : min(clen, r.end-cstart)]
	}
	n := copy(p, r.avail)
	r.avail = r.avail[n:]
	r.pos += int64(n)
	return n, nil
}

// Close stops the requests in flight.
func (r *rangeReader) Close() error {
	r.once.Do(func() {
		r.cancel(errReaderClosed)
		r.f.Close()
		clear(r.buf)
	})
	return nil
}
