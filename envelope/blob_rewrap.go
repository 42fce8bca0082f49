package envelope

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/keyring"
)

// RewrapOptions configure Rewrap. Nil means the defaults; there are none
// yet, and the struct exists so options can be added.
type RewrapOptions struct{}

// Rewrap rotates the keys of the geoseal object in blobName without moving
// its data: it unwraps the object's data key with the client's keyring,
// wraps it with to, stages the new header as a block and commits a block
// list made of that block and the blob's existing body blocks. No chunk
// is uploaded, downloaded or re-encrypted; the request bodies sent are
// the new header and the block list.
//
// The commit is conditional on the ETag the blob had when Rewrap read its
// header: if another writer changes the blob meanwhile, Rewrap fails with
// ErrBlobChanged and the other writer's blob stands. The blob's metadata,
// HTTP headers (except a whole-blob Content-MD5, which no longer holds),
// explicit access tier and index tags are kept.
//
// The region guard is asked first, as for Upload: a new header is a write.
// A blob not written by Upload (its header not alone in its first block)
// fails with ErrHeaderNotInOwnBlock.
func (c *BlobClient) Rewrap(ctx context.Context, blobName string, to keyring.Wrapper, opts *RewrapOptions) (RewrapResponse, error) {
	if to == nil {
		return RewrapResponse{}, errors.New("envelope: nil keyring")
	}
	if _, err := c.guard.CheckURL(ctx, c.container.URL()); err != nil {
		return RewrapResponse{}, fmt.Errorf("envelope: rewrap of %q refused: %w", blobName, err)
	}
	return c.rewrap(ctx, blobName, to)
}

func (c *BlobClient) rewrap(ctx context.Context, blobName string, to keyring.Wrapper) (RewrapResponse, error) {
	fail := func(err error) (RewrapResponse, error) {
		return RewrapResponse{}, fmt.Errorf("envelope: rewrap of %q: %w", blobName, err)
	}
	bb := c.container.NewBlockBlobClient(blobName)
	props, err := bb.GetProperties(ctx, nil)
	if err != nil {
		return fail(err)
	}
	if props.ETag == nil {
		return fail(errors.New("the service sent no ETag"))
	}
	etag := *props.ETag
	if isCSEv2(props.Metadata) {
		return fail(fmt.Errorf("%w (a client-side encryption v2 blob)", ErrNotGeoseal))
	}

	// The block list has no If-Match; its ETag says whether it describes
	// the blob whose properties were just read.
	bl, err := bb.GetBlockList(ctx, blockblob.BlockListTypeCommitted, nil)
	if err != nil {
		return fail(err)
	}
	if bl.ETag == nil || *bl.ETag != etag {
		return fail(ErrBlobChanged)
	}
	blocks := bl.BlockList.CommittedBlocks
	if len(blocks) == 0 || blocks[0].Size == nil || blocks[0].Name == nil ||
		*blocks[0].Size < int64(format.MinHeaderSize) || *blocks[0].Size > format.MaxHeaderSize {
		return fail(ErrHeaderNotInOwnBlock)
	}
	header := make([]byte, *blocks[0].Size)
	if err := getRange(ctx, bb.BlobClient(), etag, header, 0); err != nil {
		return fail(err)
	}
	n, err := format.HeaderLength(header)
	if err != nil {
		return fail(err)
	}
	if n != len(header) {
		return fail(ErrHeaderNotInOwnBlock)
	}

	newHeader, err := Rewrap(ctx, header, c.keyring, to)
	if err != nil {
		return fail(err)
	}
	h, err := format.Parse(newHeader)
	if err != nil {
		return fail(err)
	}

	var upload [16]byte
	rand.Read(upload[:])
	headerID := blockID(upload, 0)
	ids := make([]string, len(blocks))
	ids[0] = headerID
	for i, b := range blocks[1:] {
		if b.Name == nil || len(*b.Name) != len(headerID) {
			// The service requires IDs of one length within a blob.
			return fail(ErrHeaderNotInOwnBlock)
		}
		ids[i+1] = *b.Name
	}

	// Tags are not part of the ETag, nor kept by a commit without them.
	tags, err := bb.GetTags(ctx, nil)
	if err != nil {
		return fail(err)
	}
	var tagMap map[string]string
	if len(tags.BlobTagSet) > 0 {
		tagMap = make(map[string]string, len(tags.BlobTagSet))
		for _, t := range tags.BlobTagSet {
			if t != nil && t.Key != nil && t.Value != nil {
				tagMap[*t.Key] = *t.Value
			}
		}
	}

	if _, err := bb.StageBlock(ctx, headerID, streaming.NopCloser(bytes.NewReader(newHeader)), nil); err != nil {
		return fail(err)
	}
	md := make(map[string]*string, len(props.Metadata))
	for k, v := range props.Metadata {
		if !strings.EqualFold(k, metaHeaderLength) {
			md[k] = v
		}
	}
	hl := strconv.Itoa(len(newHeader))
	md[metaHeaderLength] = &hl
	var tier *blob.AccessTier
	if props.AccessTier != nil && (props.AccessTierInferred == nil || !*props.AccessTierInferred) {
		t := blob.AccessTier(*props.AccessTier)
		tier = &t
	}
	resp, err := bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{
		Metadata: md,
		Tags:     tagMap,
		Tier:     tier,
		HTTPHeaders: &blob.HTTPHeaders{
			BlobContentType:        props.ContentType,
			BlobContentEncoding:    props.ContentEncoding,
			BlobContentLanguage:    props.ContentLanguage,
			BlobContentDisposition: props.ContentDisposition,
			BlobCacheControl:       props.CacheControl,
		},
		AccessConditions: &blob.AccessConditions{
			ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag},
		},
	})
	if err != nil {
		return fail(blobChanged(err))
	}
	return RewrapResponse{
		ETag:         resp.ETag,
		LastModified: resp.LastModified,
		WrappedKeys:  h.WrappedKeys,
		HeaderSize:   len(newHeader),
	}, nil
}

// RewrapAllOptions configure RewrapAll. Nil means the defaults.
type RewrapAllOptions struct {
	// Prefix restricts the rotation to blobs whose names start with it.
	Prefix string

	// Concurrency is how many blobs are rewrapped at once. Zero means
	// the client's Concurrency.
	Concurrency int

	// Progress, when set, is called after each blob, from one goroutine
	// at a time.
	Progress func(RewrapProgress)
}

// RewrapProgress reports one blob of a RewrapAll.
type RewrapProgress struct {
	// Blob is the blob just handled; Err its failure, if any.
	Blob string
	Err  error
	// Done counts the blobs handled so far, failures included.
	Done int
}

// RewrapAllResponse summarizes a RewrapAll.
type RewrapAllResponse struct {
	// Rewrapped counts the blobs rewrapped.
	Rewrapped int
	// Skipped lists the blobs that are not geoseal objects (no geoseal
	// metadata), left as they were.
	Skipped []string
	// Failed lists the blobs that could not be rewrapped, in no
	// particular order.
	Failed []RewrapFailure
}

// RewrapFailure is one blob RewrapAll could not rewrap.
type RewrapFailure struct {
	Blob string
	Err  error
}

// RewrapAll rewraps, as Rewrap does, every geoseal object in the container
// whose name starts with opts.Prefix, Concurrency blobs at a time: the
// rotation of a key-encryption key, or the revocation of a recipient,
// across a container. Blobs without geoseal metadata are skipped and
// listed. A blob that fails does not stop the others: the failures are
// collected in the response, and the returned error, non-nil if any blob
// failed, joins them (errors.Is and errors.As see each). Cancelling ctx
// stops the listing and the rewraps not yet committed.
func (c *BlobClient) RewrapAll(ctx context.Context, to keyring.Wrapper, opts *RewrapAllOptions) (RewrapAllResponse, error) {
	if opts == nil {
		opts = &RewrapAllOptions{}
	}
	if to == nil {
		return RewrapAllResponse{}, errors.New("envelope: nil keyring")
	}
	_, concurrency, err := c.uploadTransfer(0, opts.Concurrency)
	if err != nil {
		return RewrapAllResponse{}, err
	}
	if _, err := c.guard.CheckURL(ctx, c.container.URL()); err != nil {
		return RewrapAllResponse{}, fmt.Errorf("envelope: rewrap refused: %w", err)
	}

	var (
		resp RewrapAllResponse
		mu   sync.Mutex
		wg   sync.WaitGroup
		done int
		sem  = make(chan struct{}, concurrency)
	)
	finish := func(name string, err error) {
		mu.Lock()
		defer mu.Unlock()
		done++
		if err != nil {
			resp.Failed = append(resp.Failed, RewrapFailure{Blob: name, Err: err})
		} else {
			resp.Rewrapped++
		}
		if opts.Progress != nil {
			opts.Progress(RewrapProgress{Blob: name, Err: err, Done: done})
		}
	}

	var listErr error
	pager := c.container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix:  &opts.Prefix,
		Include: container.ListBlobsInclude{Metadata: true},
	})
list:
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			listErr = err
			break
		}
		for _, item := range page.Segment.BlobItems {
			if item == nil || item.Name == nil {
				continue
			}
			name := *item.Name
			if !hasMetadata(item.Metadata, metaVersion) {
				mu.Lock()
				resp.Skipped = append(resp.Skipped, name)
				mu.Unlock()
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				listErr = context.Cause(ctx)
				break list
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				_, err := c.rewrap(ctx, name, to)
				finish(name, err)
			}()
		}
	}
	wg.Wait()
	if listErr != nil {
		return resp, fmt.Errorf("envelope: listing blobs to rewrap: %w", listErr)
	}
	if len(resp.Failed) > 0 {
		errs := make([]error, len(resp.Failed))
		for i, f := range resp.Failed {
			errs[i] = f.Err
		}
		return resp, fmt.Errorf("envelope: %d of %d blobs not rewrapped: %w", len(resp.Failed), done, errors.Join(errs...))
	}
	return resp, nil
}
