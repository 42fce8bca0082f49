package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"runtime"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
	"github.com/geoseal/geoseal/stream"
)

// UploadOptions configure Upload. Nil means the defaults.
type UploadOptions struct {
	// Context is the encryption context (see envelope.EncryptOptions). It
	// is stored, in the clear, in the object's header, not in blob
	// metadata.
	Context keyring.Context

	// ChunkSize and Suite are those of envelope.EncryptOptions.
	ChunkSize int
	Suite     stream.Suite

	// BlockSize fixes the block size (see ClientOptions.BlockSize), and
	// Concurrency overrides the client's.
	BlockSize   int64
	Concurrency int

	// Metadata is stored with the blob, next to the entries Upload adds
	// (names starting with "geoseal", which Metadata must not use, nor
	// "encryptiondata"). It is in the clear, unless the client has
	// SealNames: then it is sealed, as one value bound to the blob and
	// the object (at most 3072 bytes encoded: FORMAT.md), and reads back
	// authenticated.
	Metadata map[string]*string

	// Tags are the blob index tags (at most 10), in the clear, unless the
	// client has SealNames: then each value, and each name not in
	// ClientOptions.PublicTagNames, is stored as a keyed token that
	// NewFindBlobsByTagsPager can still find by equality.
	Tags map[string]string

	// HTTPHeaders are the blob's HTTP headers (content type...). They are
	// stored in the clear, not authenticated, and ServeBlob does not use
	// them. Under SealNames only what describes nothing is accepted (a
	// Content-Type of application/octet-stream, a Cache-Control of
	// standard directives); anything else fails with ErrClearHTTPHeader
	// before any request.
	HTTPHeaders *blob.HTTPHeaders

	// AccessConditions make the upload conditional: IfNoneMatch:
	// to.Ptr(azcore.ETagAny) to never overwrite a blob, IfMatch to replace
	// only the version read before. They are checked before anything is
	// staged, and again by the commit; a condition that fails leaves the
	// blob untouched and returns an error matching ErrBlobChanged (with the
	// service's error, bloberror.ConditionNotMet or BlobAlreadyExists, in
	// the chain when the service refused). A lease ID in them is sent with
	// every block.
	AccessConditions *blob.AccessConditions

	// Progress, when set, is called after each block is staged with the
	// number of bytes of the blob (header and encrypted body) staged so
	// far. Calls are sequential and the count increases.
	Progress func(bytesStaged int64)
}

// UploadResponse describes a committed upload.
type UploadResponse struct {
	// StoredName is the blob's name in the container: the name given,
	// or under SealNames the name it is stored as.
	StoredName string
	// ETag and LastModified are those of the committed blob.
	ETag         *azcore.ETag
	LastModified *time.Time
	// VersionID is set when the account has blob versioning on.
	VersionID *string
	// Size is the plaintext size, EncryptedSize the blob's size (header
	// and body).
	Size, EncryptedSize int64
	// Decision is the region guard's decision that allowed the upload.
	Decision *region.Decision
}

// Upload encrypts what r yields into a new geoseal object and stores it as
// the block blob name, replacing the blob of that name, if any, only once
// all of it is staged.
//
// Before anything else, and before a byte is sent, Upload asks the
// client's region guard about the container's storage account; a refusal
// is returned as it is (a *region.Violation that errors.As finds). It then
// notes the blob's current ETag (or that there is none), wraps a fresh
// data key with the client's keyring, stages the header as the first
// block, and encrypts r into body blocks staged Concurrency at a time
// while r is still being read. When r is exhausted and every block is
// staged, it commits the block list with opts' metadata, tags and access
// conditions. Until then the previous blob, if any, is what readers see.
//
// Block sizes: a blob holds at most 50,000 blocks. When r reports its
// size (a Size() int64 method, as bytes.Reader and strings.Reader have,
// or a regular *os.File, measured from its offset), the blocks are the
// smallest that fit it, at least DefaultBlockSize; a size that does not
// fit even in blocks of MaxBlockSize fails with ErrTooLarge before any
// request. For a stream of unknown length (or one that runs past the
// size it reported) the blocks grow with it, each at least a hundredth of
// what was staged before it, so that a stream of up to about 188 TiB (98%
// of the service's largest blob) fits, and the buffers stay under
// (Concurrency + 1)% of what was uploaded once past 400 MiB. An explicit
// BlockSize is used as given.
//
// Concurrent writers: the commit is conditional on the ETag noted at the
// start, so of two uploads of one blob that overlap, the one that commits
// second fails with ErrBlobChanged and the first one's blob stands; a
// blob never mixes the blocks of two writers. Every few blocks Upload
// checks that ETag again, so the loser stops early instead of sending the
// rest of its data. A Rewrap of the blob during an Upload is such a
// writer: the Rewrap commits, the Upload fails with ErrBlobChanged (its
// staged blocks were discarded by the Rewrap's commit) and can be retried.
//
// Cancellation and failures: if anything fails, or ctx is cancelled,
// while blocks are staged, Upload stops reading r, waits for the requests
// in flight and returns the error with nothing committed. Once everything
// is staged, the commit is no longer cancelled by ctx: it runs under its
// own deadline, so that its outcome is known. If the commit fails in a way
// that leaves it unknown whether the service applied it (a lost response),
// Upload reads the block list back and reports success if it did; only
// if that fails too does it return ErrCommitUncertain.
//
// Memory stays at about BlockSize × (Concurrency + 1) whatever the size of
// r.
//
// Under SealNames name is a logical name, stored as described in the
// package documentation; a name that cannot be sealed (ErrInvalidName),
// metadata too large to seal and refused HTTP headers (ErrClearHTTPHeader)
// fail before any request. The first sealed Upload into a container
// creates its name key.
func (c *Client) Upload(ctx context.Context, name string, r io.Reader, opts *UploadOptions) (UploadResponse, error) {
	if opts == nil {
		opts = &UploadOptions{}
	}
	if err := c.checkName(name); err != nil {
		return UploadResponse{}, fmt.Errorf("blobstore: upload of %q: %w", name, err)
	}
	if err := c.checkTags(opts.Tags); err != nil {
		return UploadResponse{}, fmt.Errorf("blobstore: upload of %q: %w", name, err)
	}
	check := checkSealedUpload
	if !c.opts.SealNames {
		check = func(opts *UploadOptions) error { return checkClearMetadata(opts.Metadata) }
	}
	if err := check(opts); err != nil {
		return UploadResponse{}, fmt.Errorf("blobstore: upload of %q: %w", name, err)
	}
	plan, err := c.planUpload(r, opts)
	if err != nil {
		return UploadResponse{}, fmt.Errorf("blobstore: upload of %q: %w", name, err)
	}

	// The guard decides before any byte leaves, before even the keyring is
	// asked (a remote keyring call says nothing about the data, but there
	// is no reason to make it for a write that will not happen).
	decision, err := c.guard.CheckURL(ctx, c.container.URL())
	if err != nil {
		return UploadResponse{}, fmt.Errorf("blobstore: upload of %q refused: %w", name, err)
	}
	// Under SealNames this may create the container's name key: a write,
	// so after the guard.
	t, err := c.target(ctx, name, true)
	if err != nil {
		return UploadResponse{}, fmt.Errorf("blobstore: upload of %q: %w", name, err)
	}
	resp, err := c.put(ctx, t, r, opts, plan)
	if err != nil {
		return UploadResponse{}, fmt.Errorf("blobstore: upload of %q: %w", name, err)
	}
	resp.Decision = decision
	return resp, nil
}

// put does the work of Upload once the guard allowed it, writing the blob
// t.stored and, under SealNames (t.keys set), sealing its name, metadata
// and tags for it.
func (c *Client) put(ctx context.Context, t uploadTarget, r io.Reader, opts *UploadOptions, plan uploadPlan) (UploadResponse, error) {
	bb := c.container.NewBlockBlobClient(t.stored)
	pin, err := pinBlob(ctx, bb.BlobClient(), opts.AccessConditions)
	if err != nil {
		return UploadResponse{}, err
	}

	header, body, err := format.New(ctx, c.keyring, &format.Params{Suite: opts.Suite, ChunkSize: opts.ChunkSize, Context: opts.Context})
	if err != nil {
		return UploadResponse{}, err
	}
	defer body.Zero()
	body.Options.Concurrency = cryptoConcurrency(plan.concurrency)

	st := newStager(ctx, bb, pin, plan, opts, &c.buffers)
	src := &countingReader{r: r, ctx: st.ctx}
	err = st.run(header, func(dst io.Writer) error {
		sw, err := stream.NewWriter(dst, body.Key, &body.Options)
		body.Zero()
		if err != nil {
			return err
		}
		if err := src.copyTo(sw); err != nil {
			sw.Close() // stops the sealing goroutines
			return err
		}
		return sw.Close()
	})
	if err != nil {
		return UploadResponse{}, err
	}

	md, tags, err := c.commitMetadata(t, header, &body.Options, src.n, opts)
	if err != nil {
		return UploadResponse{}, err
	}
	res, err := commit(ctx, bb, st.ids, &blockblob.CommitBlockListOptions{
		Metadata:         md,
		Tags:             tags,
		HTTPHeaders:      opts.HTTPHeaders,
		AccessConditions: pin.conditions(opts.AccessConditions),
	})
	if err != nil {
		return UploadResponse{}, err
	}
	return UploadResponse{
		StoredName:    t.stored,
		ETag:          res.etag,
		LastModified:  res.lastModified,
		VersionID:     res.versionID,
		Size:          src.n,
		EncryptedSize: st.total,
	}, nil
}

// commitMetadata returns the metadata and tags an upload commits: the
// object's own entries and the user's, in the clear or, under SealNames,
// sealed for the blob and the object whose header is given.
func (c *Client) commitMetadata(t uploadTarget, header []byte, body *stream.Options, size int64, opts *UploadOptions) (map[string]*string, map[string]string, error) {
	md := map[string]*string{}
	if t.keys == nil {
		md = maps.Clone(opts.Metadata)
		if md == nil {
			md = map[string]*string{}
		}
	}
	if err := setObjectMetadata(md, len(header), body, size); err != nil {
		return nil, nil, err
	}
	if t.keys == nil {
		return md, opts.Tags, nil
	}
	h, err := format.Parse(header)
	if err != nil {
		return nil, nil, err
	}
	if err := sealEntries(md, t, opts.Metadata, h.MessageID); err != nil {
		return nil, nil, err
	}
	return md, c.storedTags(t.keys, opts.Tags), nil
}

// uploadPlan is what Upload decided before any request.
type uploadPlan struct {
	sizer       blockSizer
	concurrency int
}

// planUpload checks an upload's arguments and sizes its blocks. Nothing
// it refuses reaches the network.
func (c *Client) planUpload(r io.Reader, opts *UploadOptions) (uploadPlan, error) {
	if r == nil {
		return uploadPlan{}, errors.New("nil reader")
	}
	if err := checkUserMetadata(opts.Metadata); err != nil {
		return uploadPlan{}, err
	}
	t, err := c.transfer(0, opts.Concurrency)
	if err != nil {
		return uploadPlan{}, err
	}
	fixed := firstNonZero(opts.BlockSize, c.opts.BlockSize)
	if fixed != 0 {
		if err := checkSize("block", fixed); err != nil {
			return uploadPlan{}, err
		}
	}
	chunk := opts.ChunkSize
	if chunk == 0 {
		chunk = stream.DefaultChunkSize
	}
	if err := format.CheckChunkSize(chunk); err != nil {
		return uploadPlan{}, err
	}
	if _, err := format.SuiteCode(opts.Suite); err != nil {
		return uploadPlan{}, err
	}
	hint, err := encryptedHint(sourceSize(r), &stream.Options{ChunkSize: chunk, Suite: opts.Suite})
	if err != nil {
		return uploadPlan{}, err
	}
	sizer, err := planBlocks(fixed, hint)
	if err != nil {
		return uploadPlan{}, err
	}
	return uploadPlan{sizer: sizer, concurrency: t.concurrency}, nil
}

// cryptoConcurrency is how many goroutines seal chunks for an upload
// moving data with the given I/O concurrency: enough to keep the cores
// that the network leaves free busy, no more. AES-GCM outruns the network
// on one core; on many cores and a fast link it no longer does. On two
// cores, sealing on two goroutines cost 5-30% more CPU than sealing inline
// for the same throughput (the workers spin before parking while the
// stager waits for the network), CPU the storage service's side needed.
func cryptoConcurrency(io int) int {
	n := min(io, runtime.GOMAXPROCS(0)-1)
	if n <= 1 {
		return 0
	}
	return n
}

// countingReader counts the plaintext read and stops at cancellation, so
// that a cancelled upload stops consuming its source.
type countingReader struct {
	r   io.Reader
	ctx context.Context
	n   int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := context.Cause(c.ctx); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// copyTo copies the source to sw, a stream.Writer. A source in memory
// (*bytes.Reader, *bytes.Buffer) hands all its bytes over in one Write,
// whose chunks the Writer seals where they lie, without copying them into
// its buffers first; at cancellation the stager refuses the next chunk.
// Any other source is read straight into the Writer's chunk buffers
// (io.Copy uses its ReadFrom), and not read again once ctx is done.
func (c *countingReader) copyTo(sw io.Writer) error {
	if err := context.Cause(c.ctx); err != nil {
		return err
	}
	switch r := c.r.(type) {
	case *bytes.Reader, *bytes.Buffer:
		n, err := r.(io.WriterTo).WriteTo(sw)
		c.n += n
		return err
	}
	_, err := io.Copy(sw, c)
	return err
}

// pinned is the state of the blob an upload replaces, as noted before it
// stages anything: its ETag, or that there was no blob.
type pinned struct {
	etag *azcore.ETag // nil: no blob
}

// pinBlob notes the blob's state, checking the caller's access conditions
// against it, so that a condition that cannot hold fails before any data
// is sent.
func pinBlob(ctx context.Context, b *blob.Client, ac *blob.AccessConditions) (pinned, error) {
	// The service refuses If-None-Match * on a read: check it by hand.
	var mustNotExist bool
	if ac != nil && ac.ModifiedAccessConditions != nil {
		if inm := ac.ModifiedAccessConditions.IfNoneMatch; inm != nil && *inm == azcore.ETagAny {
			mac := *ac.ModifiedAccessConditions
			mac.IfNoneMatch = nil
			ac = &blob.AccessConditions{ModifiedAccessConditions: &mac, LeaseAccessConditions: ac.LeaseAccessConditions}
			mustNotExist = true
		}
	}
	st, err := stat(ctx, b, ac)
	switch {
	case err == nil && mustNotExist:
		return pinned{}, fmt.Errorf("%w: If-None-Match *, and the blob exists", ErrBlobChanged)
	case err == nil:
		return pinned{etag: &st.etag}, nil
	case isNotFound(err):
		if ac != nil && ac.ModifiedAccessConditions != nil && ac.ModifiedAccessConditions.IfMatch != nil {
			return pinned{}, fmt.Errorf("%w: If-Match, and there is no blob: %w", ErrBlobChanged, err)
		}
		return pinned{}, nil
	case statusCode(err) == http.StatusNotModified:
		// A HEAD answers a failed If-None-Match with Not Modified.
		return pinned{}, fmt.Errorf("%w: %w", ErrBlobChanged, err)
	}
	return pinned{}, blobChanged(err)
}

// conditions returns the access conditions of the commit: the caller's,
// and the pinned state (If-Match its ETag, or If-None-Match * when there
// was no blob).
func (p pinned) conditions(user *blob.AccessConditions) *blob.AccessConditions {
	var out blob.AccessConditions
	var mac blob.ModifiedAccessConditions
	if user != nil {
		out = *user
		if user.ModifiedAccessConditions != nil {
			mac = *user.ModifiedAccessConditions
		}
	}
	if p.etag != nil {
		mac.IfMatch = p.etag
	} else {
		anyETag := azcore.ETagAny
		mac.IfMatch, mac.IfNoneMatch = nil, &anyETag
	}
	out.ModifiedAccessConditions = &mac
	return &out
}

// unchanged checks that the blob is still in its pinned state.
func (p pinned) unchanged(ctx context.Context, b *blob.Client) error {
	st, err := stat(ctx, b, nil)
	switch {
	case err == nil && p.etag != nil && st.etag == *p.etag:
		return nil
	case isNotFound(err) && p.etag == nil:
		return nil
	case err == nil || isNotFound(err):
		return fmt.Errorf("%w: another writer committed the blob", ErrBlobChanged)
	}
	return err
}
