package blobstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
)

// RewrapOptions configure Rewrap. Nil means the defaults; there are none
// yet, and the struct exists so options can be added.
type RewrapOptions struct{}

// RewrapResponse describes a rewrapped blob.
type RewrapResponse struct {
	// StoredName is the blob's name: the name given, or under SealNames
	// the name it is stored as.
	StoredName string
	// ETag and LastModified are those of the blob after the rewrap.
	ETag         *azcore.ETag
	LastModified *time.Time
	// VersionID is the blob's new version, when the account has blob
	// versioning on; the version before the rewrap keeps the old header.
	VersionID *string
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
	resp, err := c.rewrap(ctx, t.stored, to)
	resp.StoredName = t.stored
	return resp, err
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
// blocks, the header that is the first of them, and what the commit must
// keep (metadata, HTTP headers, explicit access tier, index tags).
type rewrapState struct {
	etag     azcore.ETag
	size     int64
	metadata map[string]*string
	headers  blob.HTTPHeaders
	tier     *blob.AccessTier
	tags     map[string]string
	blocks   []*blockblob.Block
	header   []byte
}

// readForRewrap reads what Rewrap needs of a blob: a HEAD for its state,
// its header (one GET, or the probe of a blob without metadata), its block
// list and, if it has any, its tags.
func readForRewrap(ctx context.Context, bb *blockblob.Client) (*rewrapState, error) {
	st, err := stat(ctx, bb.BlobClient(), nil)
	if err != nil {
		return nil, err
	}
	if f := formatOf(st.metadata); f != FormatGeoseal && f != FormatNotEncrypted {
		return nil, fmt.Errorf("%w (the blob's metadata says %s)", ErrNotGeoseal, f)
	}
	m, hasMeta, err := parseObjectMetadata(st.metadata)
	if err != nil {
		return nil, err
	}
	var header []byte
	if hasMeta {
		header = make([]byte, m.headerLength)
		if err := getRange(ctx, bb.BlobClient(), st.etag, header, 0); err != nil {
			return nil, err
		}
		if n, err := format.HeaderLength(header); err != nil {
			return nil, err
		} else if n != len(header) {
			return nil, fmt.Errorf("%w: header length %d recorded; the header says %d", ErrInvalidMetadata, len(header), n)
		}
	} else if header, err = probeHeader(ctx, bb.BlobClient(), st); err != nil {
		return nil, err
	}
	s := &rewrapState{
		etag:     st.etag,
		size:     st.size,
		metadata: st.metadata,
		header:   header,
		headers: blob.HTTPHeaders{
			BlobContentType:        st.props.ContentType,
			BlobContentEncoding:    st.props.ContentEncoding,
			BlobContentLanguage:    st.props.ContentLanguage,
			BlobContentDisposition: st.props.ContentDisposition,
			BlobCacheControl:       st.props.CacheControl,
		},
	}
	if p := st.props; p.AccessTier != nil && (p.AccessTierInferred == nil || !*p.AccessTierInferred) {
		t := blob.AccessTier(*p.AccessTier)
		s.tier = &t
	}
	if s.blocks, err = readBlocks(ctx, bb, st.etag, len(header)); err != nil {
		return nil, err
	}
	if st.props.TagCount != nil && *st.props.TagCount > 0 {
		if s.tags, err = getTags(ctx, bb); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// readBlocks reads the committed block list of the blob whose ETag is etag
// and checks that its first block is the header, of headerLen bytes.
func readBlocks(ctx context.Context, bb *blockblob.Client, etag azcore.ETag, headerLen int) ([]*blockblob.Block, error) {
	// The block list has no If-Match; its ETag says whether it describes
	// the blob whose header was read.
	bl, err := bb.GetBlockList(ctx, blockblob.BlockListTypeCommitted, nil)
	if err != nil {
		return nil, err
	}
	if bl.ETag == nil || *bl.ETag != etag {
		return nil, ErrBlobChanged
	}
	blocks := bl.BlockList.CommittedBlocks
	if len(blocks) == 0 || blocks[0] == nil || blocks[0].Size == nil || blocks[0].Name == nil || *blocks[0].Size != int64(headerLen) {
		return nil, ErrHeaderNotInOwnBlock
	}
	return blocks, nil
}

// getTags reads a blob's index tags, which are not part of its ETag, nor
// kept by a commit that does not set them.
func getTags(ctx context.Context, bb *blockblob.Client) (map[string]string, error) {
	resp, err := bb.GetTags(ctx, nil)
	if err != nil {
		return nil, err
	}
	tags := make(map[string]string, len(resp.BlobTagSet))
	for _, t := range resp.BlobTagSet {
		if t != nil && t.Key != nil && t.Value != nil {
			tags[*t.Key] = *t.Value
		}
	}
	return tags, nil
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
		if b == nil || b.Name == nil || len(*b.Name) != len(ids[0]) {
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
	md, err := s.rewrappedMetadata(len(p.header))
	if err != nil {
		return RewrapResponse{}, err
	}
	if _, err := bb.StageBlock(ctx, p.ids[0], streaming.NopCloser(bytes.NewReader(p.header)), nil); err != nil {
		return RewrapResponse{}, err
	}
	headers := s.headers
	res, err := commit(ctx, bb, p.ids, &blockblob.CommitBlockListOptions{
		Metadata:         md,
		Tags:             s.tags,
		Tier:             s.tier,
		HTTPHeaders:      &headers,
		AccessConditions: ifMatch(s.etag),
	})
	if err != nil {
		return RewrapResponse{}, err
	}
	return RewrapResponse{ETag: res.etag, LastModified: res.lastModified, VersionID: res.versionID, WrappedKeys: p.keys, HeaderSize: len(p.header)}, nil
}

// rewrappedMetadata is the blob's metadata with the new header length. A
// blob whose geoseal metadata was removed gets it back, computed from its
// header and size, so that it lists as what it is again.
func (s *rewrapState) rewrappedMetadata(headerLen int) (map[string]*string, error) {
	md := make(map[string]*string, len(s.metadata)+1)
	for k, v := range s.metadata {
		if !strings.EqualFold(k, metaHeaderLength) {
			md[k] = v
		}
	}
	hl := strconv.Itoa(headerLen)
	md[metaHeaderLength] = &hl
	if _, ok := metadataValue(s.metadata, metaVersion); ok {
		return md, nil
	}
	h, err := format.Parse(s.header)
	if err != nil {
		return nil, err
	}
	lay, err := newLayout(len(s.header), h.ChunkSize, h.Suite, s.size)
	if err != nil {
		return nil, err
	}
	if err := setObjectMetadata(md, headerLen, &stream.Options{ChunkSize: h.ChunkSize, Suite: h.Suite}, lay.size); err != nil {
		return nil, err
	}
	return md, nil
}
