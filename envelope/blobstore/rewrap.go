package blobstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/keyring"
	"golang.org/x/sync/errgroup"
)

// RewrapOptions configure Rewrap. Nil means the defaults; there are none
// yet, and the struct exists so options can be added.
type RewrapOptions struct{}

// RewrapResponse describes a rewrapped blob.
type RewrapResponse struct {
	// ETag and LastModified are those of the blob after the rewrap.
	ETag         *azcore.ETag
	LastModified *time.Time
	// WrappedKeys are the blob's wrapped keys after the rewrap.
	WrappedKeys []keyring.WrappedKey
	// HeaderSize is the size of the new header block.
	HeaderSize int
}

// Rewrap rotates the keys of the geoseal object in the blob name without
// moving its data: it unwraps the object's data key with the client's
// keyring, wraps it with to, stages the new header as a block and commits
// a block list made of that block and the blob's existing body blocks. No
// chunk is uploaded, downloaded or re-encrypted; the request bodies sent
// are the new header and the block list.
//
// The new header lists only the keys to returns, so afterwards only they
// open the blob. Copies made before (snapshots, versions, soft-deleted
// blobs, backups) keep the old header and still open with the old keys:
// revoking a key also means deleting those copies, or disabling the key
// in Key Vault or the HSM.
//
// The commit is conditional on the ETag the blob had when Rewrap read its
// header: if another writer changes the blob meanwhile, Rewrap fails with
// ErrBlobChanged and the other writer's blob stands. A Rewrap that commits
// while an Upload of the same blob is staging makes that Upload fail with
// ErrBlobChanged (see Upload). The commit is certain as Upload's is. The
// blob's metadata, HTTP headers (except a whole-blob Content-MD5, which no
// longer holds), explicit access tier and index tags are kept.
//
// The region guard is asked first, as for Upload: a new header is a write.
// A blob not written by Upload (its header not alone in its first block)
// fails with ErrHeaderNotInOwnBlock.
func (c *Client) Rewrap(ctx context.Context, name string, to keyring.Wrapper, opts *RewrapOptions) (RewrapResponse, error) {
	if to == nil {
		return RewrapResponse{}, errors.New("blobstore: nil keyring")
	}
	if c.opts.SealNames {
		if err := c.checkName(name); err != nil {
			return RewrapResponse{}, fmt.Errorf("blobstore: rewrap of %q: %w", name, err)
		}
	}
	if _, err := c.guard.CheckURL(ctx, c.container.URL()); err != nil {
		return RewrapResponse{}, fmt.Errorf("blobstore: rewrap of %q refused: %w", name, err)
	}
	t, err := c.target(ctx, name, false)
	if err != nil {
		return RewrapResponse{}, fmt.Errorf("blobstore: rewrap of %q: %w", name, err)
	}
	return c.rewrap(ctx, t.stored, to)
}

// rewrap is Rewrap after the guard, of the blob stored as name: read the
// header, plan, commit. The blob's sealed name and metadata, if any, are
// kept: they are bound to the object's message id, which a rewrap keeps.
func (c *Client) rewrap(ctx context.Context, name string, to keyring.Wrapper) (RewrapResponse, error) {
	bb := c.container.NewBlockBlobClient(name)
	cur, err := readForRewrap(ctx, bb)
	if err != nil {
		return RewrapResponse{}, fmt.Errorf("blobstore: rewrap of %q: %w", name, err)
	}
	p, err := planRewrap(ctx, cur, c.keyring, to)
	if err != nil {
		return RewrapResponse{}, fmt.Errorf("blobstore: rewrap of %q: %w", name, err)
	}
	resp, err := commitRewrap(ctx, bb, cur, p)
	if err != nil {
		return RewrapResponse{}, fmt.Errorf("blobstore: rewrap of %q: %w", name, err)
	}
	return resp, nil
}

// rewrapState is what a rewrap reads of a blob: its state, its committed
// blocks, the header that is the first of them, and its index tags.
type rewrapState struct {
	st     blobState
	blocks []*blockblob.Block
	header []byte
	tags   map[string]string
}

// readForRewrap reads the state, block list and header of a blob, and
// checks that the header is its first block.
func readForRewrap(ctx context.Context, bb *blockblob.Client) (*rewrapState, error) {
	st, err := stat(ctx, bb.BlobClient(), nil)
	if err != nil {
		return nil, err
	}
	if f := formatOf(st.metadata); f != FormatGeoseal && f != FormatNotEncrypted {
		return nil, fmt.Errorf("%w (the blob's metadata says %s)", ErrNotGeoseal, f)
	}
	// The block list has no If-Match; its ETag says whether it describes
	// the blob whose properties were just read.
	bl, err := bb.GetBlockList(ctx, blockblob.BlockListTypeCommitted, nil)
	if err != nil {
		return nil, err
	}
	if bl.ETag == nil || *bl.ETag != st.etag {
		return nil, ErrBlobChanged
	}
	blocks := bl.BlockList.CommittedBlocks
	if len(blocks) == 0 || blocks[0].Size == nil || blocks[0].Name == nil ||
		*blocks[0].Size < int64(format.MinHeaderSize) || *blocks[0].Size > int64(format.MaxHeaderSize) {
		return nil, ErrHeaderNotInOwnBlock
	}
	header := make([]byte, *blocks[0].Size)
	if err := getRange(ctx, bb.BlobClient(), st.etag, header, 0); err != nil {
		return nil, err
	}
	if n, err := format.HeaderLength(header); err != nil {
		return nil, err
	} else if n != len(header) {
		return nil, ErrHeaderNotInOwnBlock
	}
	s := &rewrapState{st: st, blocks: blocks, header: header}
	// Tags are not part of the ETag, nor kept by a commit without them.
	if st.props.TagCount != nil && *st.props.TagCount > 0 {
		tags, err := bb.GetTags(ctx, nil)
		if err != nil {
			return nil, err
		}
		s.tags = make(map[string]string, len(tags.BlobTagSet))
		for _, t := range tags.BlobTagSet {
			if t != nil && t.Key != nil && t.Value != nil {
				s.tags[*t.Key] = *t.Value
			}
		}
	}
	return s, nil
}

// rewrapPlan is the new header and the block list that puts it in front
// of the old body.
type rewrapPlan struct {
	header []byte
	keys   []keyring.WrappedKey
	ids    []string // ids[0] is the new header's block
}

// planRewrap unwraps the data key with u, wraps it with w into a new
// header, and lists the blocks of the rewrapped blob.
func planRewrap(ctx context.Context, s *rewrapState, u keyring.Unwrapper, w keyring.Wrapper) (*rewrapPlan, error) {
	header, err := format.Rewrap(ctx, s.header, u, w)
	if err != nil {
		return nil, err
	}
	h, err := format.Parse(header)
	if err != nil {
		return nil, err
	}
	var upload [16]byte
	rand.Read(upload[:])
	ids := make([]string, len(s.blocks))
	ids[0] = blockID(upload, 0)
	for i, b := range s.blocks[1:] {
		if b.Name == nil || len(*b.Name) != len(ids[0]) {
			// The service requires IDs of one length within a blob.
			return nil, ErrHeaderNotInOwnBlock
		}
		ids[i+1] = *b.Name
	}
	return &rewrapPlan{header: header, keys: h.WrappedKeys, ids: ids}, nil
}

// commitRewrap stages the new header and commits the new block list,
// conditional on the ETag the header was read with, keeping what the blob
// carried.
func commitRewrap(ctx context.Context, bb *blockblob.Client, s *rewrapState, p *rewrapPlan) (RewrapResponse, error) {
	if _, err := bb.StageBlock(ctx, p.ids[0], streaming.NopCloser(bytes.NewReader(p.header)), nil); err != nil {
		return RewrapResponse{}, err
	}
	props := s.st.props
	md := make(map[string]*string, len(s.st.metadata))
	for k, v := range s.st.metadata {
		if !strings.EqualFold(k, metaHeaderLength) {
			md[k] = v
		}
	}
	hl := strconv.Itoa(len(p.header))
	md[metaHeaderLength] = &hl
	var tier *blob.AccessTier
	if props.AccessTier != nil && (props.AccessTierInferred == nil || !*props.AccessTierInferred) {
		t := blob.AccessTier(*props.AccessTier)
		tier = &t
	}
	res, err := commit(ctx, bb, p.ids, &blockblob.CommitBlockListOptions{
		Metadata: md,
		Tags:     s.tags,
		Tier:     tier,
		HTTPHeaders: &blob.HTTPHeaders{
			BlobContentType:        props.ContentType,
			BlobContentEncoding:    props.ContentEncoding,
			BlobContentLanguage:    props.ContentLanguage,
			BlobContentDisposition: props.ContentDisposition,
			BlobCacheControl:       props.CacheControl,
		},
		AccessConditions: ifMatch(s.st.etag),
	})
	if err != nil {
		return RewrapResponse{}, err
	}
	return RewrapResponse{ETag: res.etag, LastModified: res.lastModified, WrappedKeys: p.keys, HeaderSize: len(p.header)}, nil
}

// RewrapAllOptions configure RewrapAll. Nil means the defaults.
type RewrapAllOptions struct {
	// Prefix restricts the rotation to blobs whose names start with it
	// (under SealNames, a logical prefix: see ListOptions.Prefix).
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
	// Skipped lists the blobs that are not geoseal objects by their
	// metadata, left as they were.
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
// across a container (see Rewrap for the copies a rotation does not
// reach). A rotation of the whole container (no Prefix) rewraps the
// container's name key too (reported as the blob .geoseal/names.key),
// whether or not the client seals names; one with a Prefix leaves it as
// it is. Under SealNames the prefix is logical, as for NewListPager.
// Blobs that are not geoseal objects by their metadata are skipped and
// listed. A blob that fails does not stop the others: the
// failures are collected in the response, and the returned error, non-nil
// if any blob failed, joins them (errors.Is and errors.As see each).
// Cancelling ctx stops the listing and the rewraps not yet committing; a
// rewrap whose commit was sent is reported as it ended.
func (c *Client) RewrapAll(ctx context.Context, to keyring.Wrapper, opts *RewrapAllOptions) (RewrapAllResponse, error) {
	if opts == nil {
		opts = &RewrapAllOptions{}
	}
	if to == nil {
		return RewrapAllResponse{}, errors.New("blobstore: nil keyring")
	}
	t, err := c.transfer(0, opts.Concurrency)
	if err != nil {
		return RewrapAllResponse{}, err
	}
	if _, err := c.guard.CheckURL(ctx, c.container.URL()); err != nil {
		return RewrapAllResponse{}, fmt.Errorf("blobstore: rewrap refused: %w", err)
	}

	// A bounded group without a shared context: one blob's failure is
	// reported, and must not stop the others.
	var (
		resp RewrapAllResponse
		mu   sync.Mutex
		done int
		eg   errgroup.Group
	)
	eg.SetLimit(t.concurrency)
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
	if opts.Prefix == "" {
		// The container's name key is container-wide: a rotation of the
		// whole container rotates it too (first, so that a rotation
		// that stops part way has at least not left the names behind).
		ok, err := c.rewrapNameKey(ctx, to)
		if ok || err != nil {
			finish(nameKeyBlob, err)
		}
	}
	listErr := c.walk(ctx, opts.Prefix, func(it ListItem) error {
		if it.StoredName == nameKeyBlob {
			return nil
		}
		if it.Format != FormatGeoseal {
			mu.Lock()
			resp.Skipped = append(resp.Skipped, it.Name)
			mu.Unlock()
			return nil
		}
		if err := context.Cause(ctx); err != nil {
			return err
		}
		eg.Go(func() error {
			_, err := c.rewrap(ctx, it.StoredName, to)
			finish(it.Name, err)
			return nil
		})
		return nil
	})
	eg.Wait()
	if listErr != nil {
		return resp, fmt.Errorf("blobstore: listing blobs to rewrap: %w", listErr)
	}
	if len(resp.Failed) > 0 {
		errs := make([]error, len(resp.Failed))
		for i, f := range resp.Failed {
			errs[i] = f.Err
		}
		return resp, fmt.Errorf("blobstore: %d of %d blobs not rewrapped: %w", len(resp.Failed), done, errors.Join(errs...))
	}
	return resp, nil
}

// walk calls fn with every blob under prefix, in listing order, a page
// at a time, until fn or the listing fails.
func (c *Client) walk(ctx context.Context, prefix string, fn func(ListItem) error) error {
	pager := c.NewListPager(&ListOptions{Prefix: prefix})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, it := range page.Items {
			if err := fn(it); err != nil {
				return err
			}
		}
	}
	return nil
}
