package blobstore

import (
	"context"
	"fmt"
	"io"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/geoseal/geoseal/keyring"
)

// DownloadOptions configure Download. Nil means the defaults.
type DownloadOptions struct {
	// Range is the plaintext range to read, in azblob's convention: Count
	// zero means to the end. A range that runs past the end is cut at the
	// end; one that starts past it is empty.
	Range blob.HTTPRange

	// RequireContext lists pairs the object's encryption context must
	// contain (see OpenOptions.RequireContext).
	RequireContext keyring.Context

	// RangeSize is the size of each ranged GET, and Concurrency how many
	// are in flight; they override the client's.
	RangeSize   int64
	Concurrency int
}

// DownloadResponse is what Download returns.
type DownloadResponse struct {
	// Body is the plaintext of the range. The caller must Close it, which
	// stops the requests in flight.
	Body io.ReadCloser
	// Properties are those of the blob, as Open reports them.
	Properties Properties
}

// Download returns a reader of the plaintext of the blob name, or of
// opts.Range of it.
//
// It opens the blob as Open does (everything that can fail before the
// first byte fails here, and Properties.Size is authenticated), then
// fetches the chunks of the range Concurrency ranged GETs at a time, each
// of RangeSize (the header and the final chunk are not fetched again), so
// the bytes fetched are the blob's size for a whole download, and the
// chunks that hold the range for a part. Every GET is conditional on the
// ETag: a blob replaced during the download fails with ErrBlobChanged
// instead of mixing versions. The reader authenticates every chunk before
// returning any of its bytes; if anything fails Read returns the error,
// never io.EOF. Errors of the body match envelope.ErrBodyTampered.
//
// ctx bounds the whole download, including the reads from Body. A CSE v2
// blob is read through ClientOptions.CSEv2 with one GET for a whole
// download.
func (c *Client) Download(ctx context.Context, name string, opts *DownloadOptions) (DownloadResponse, error) {
	if opts == nil {
		opts = &DownloadOptions{}
	}
	if opts.Range.Offset < 0 || opts.Range.Count < 0 {
		return DownloadResponse{}, fmt.Errorf("blobstore: download of %q: invalid range: offset %d, count %d", name, opts.Range.Offset, opts.Range.Count)
	}
	b, err := c.open(ctx, name, openRequest{require: opts.RequireContext, rangeSize: opts.RangeSize, concurrency: opts.Concurrency})
	if err != nil {
		return DownloadResponse{}, fmt.Errorf("blobstore: download of %q: %w", name, err)
	}
	size := b.props.Size
	off, end := min(opts.Range.Offset, size), size
	if n := opts.Range.Count; n > 0 && n < size-off {
		end = off + n
	}
	seq, err := b.content.reader(off, end, 0)
	if err != nil {
		b.Close()
		return DownloadResponse{}, fmt.Errorf("blobstore: download of %q: %w", name, err)
	}
	return DownloadResponse{Body: &blobBody{seqSource: seq, blob: b}, Properties: b.Properties()}, nil
}

// GetPropertiesOptions configure GetProperties. Nil means the defaults.
type GetPropertiesOptions struct {
	// RequireContext lists pairs the object's encryption context must
	// contain (see OpenOptions.RequireContext).
	RequireContext keyring.Context
}

// GetProperties returns the properties of the blob name: what Open
// verifies (the header through the keyring, so the context and wrapped
// keys are authenticated, and the final chunk, so the size is) without
// reading the body. It costs what Open costs; a keyring.Cache in front of
// a remote keyring makes it one unwrap per object, not per call.
func (c *Client) GetProperties(ctx context.Context, name string, opts *GetPropertiesOptions) (Properties, error) {
	if opts == nil {
		opts = &GetPropertiesOptions{}
	}
	b, err := c.open(ctx, name, openRequest{require: opts.RequireContext, checkKey: true})
	if err != nil {
		return Properties{}, fmt.Errorf("blobstore: properties of %q: %w", name, err)
	}
	defer b.Close()
	return b.Properties(), nil
}
