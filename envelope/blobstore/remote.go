package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
)

// The requests every operation is made of: a HEAD that learns a blob's
// state, and ranged GETs conditional on the ETag it returned, so that a
// blob replaced in the middle of an operation fails with ErrBlobChanged
// instead of mixing versions.

// blobState is what the service reports of a blob in a HEAD.
type blobState struct {
	etag         azcore.ETag
	size         int64
	lastModified time.Time
	metadata     map[string]*string
	props        blob.GetPropertiesResponse
}

// stat returns the state of the blob, failing with the service's error
// (bloberror.BlobNotFound...) when there is none.
func stat(ctx context.Context, b *blob.Client, ac *blob.AccessConditions) (blobState, error) {
	props, err := b.GetProperties(ctx, &blob.GetPropertiesOptions{AccessConditions: ac})
	if err != nil {
		return blobState{}, err
	}
	if props.ETag == nil || props.ContentLength == nil {
		return blobState{}, errNoETag
	}
	st := blobState{etag: *props.ETag, size: *props.ContentLength, metadata: props.Metadata, props: props}
	if props.LastModified != nil {
		st.lastModified = *props.LastModified
	}
	return st, nil
}

// retryReads is how many times a ranged GET whose body breaks off is
// resumed (azblob's RetryReader; the request itself is retried by the
// pipeline's retry policy).
const retryReads = 3

// getRange fills buf with the blob's bytes from off, if its ETag is etag.
func getRange(ctx context.Context, b *blob.Client, etag azcore.ETag, buf []byte, off int64) error {
	return fetchRange(ctx, b, etag, buf, off, nil)
}

// fetchRange is getRange that reports its progress: after each read of the
// response body it calls filled, when not nil, with the number of bytes of
// buf received so far, so that a reader can use them before the rest
// arrives.
func fetchRange(ctx context.Context, b *blob.Client, etag azcore.ETag, buf []byte, off int64, filled func(int)) error {
	if len(buf) == 0 {
		return nil
	}
	fail := func(err error) error {
		return fmt.Errorf("blobstore: reading bytes %d-%d: %w", off, off+int64(len(buf))-1, blobChanged(err))
	}
	resp, err := b.DownloadStream(ctx, &blob.DownloadStreamOptions{
		Range:            blob.HTTPRange{Offset: off, Count: int64(len(buf))},
		AccessConditions: ifMatch(etag),
	})
	if err != nil {
		return fail(err)
	}
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: retryReads})
	defer body.Close()
	for got := 0; got < len(buf); {
		n, err := body.Read(buf[got:])
		got += n
		if n > 0 && filled != nil {
			filled(got)
		}
		if err == io.EOF && got < len(buf) {
			// The blob is shorter than the size it was opened with: it
			// changed, or the service lies.
			return fail(fmt.Errorf("%w: %w", ErrBlobChanged, io.ErrUnexpectedEOF))
		}
		if err != nil && err != io.EOF {
			return fail(err)
		}
	}
	return nil
}

func ifMatch(etag azcore.ETag) *blob.AccessConditions {
	return &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag}}
}

// blobChanged adds ErrBlobChanged to the chain of a service error that
// means the blob is not the one a call pinned: a failed precondition, a
// blob that exists where none was expected, or uncommitted blocks that
// another writer's commit discarded. The service error stays in the chain.
func blobChanged(err error) error {
	if err == nil || errors.Is(err, ErrBlobChanged) {
		return err
	}
	if bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobAlreadyExists, bloberror.InvalidBlockList) ||
		statusCode(err) == http.StatusPreconditionFailed {
		return fmt.Errorf("%w: %w", ErrBlobChanged, err)
	}
	return err
}

// statusCode returns the HTTP status of a service error in err's chain, or
// 0.
func statusCode(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// isNotFound reports whether err is the service saying there is no such
// blob (or container).
func isNotFound(err error) bool {
	return bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) || statusCode(err) == http.StatusNotFound
}
