package blobstore

import (
	"context"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/internal/names"
)

// ListOptions configure NewListPager. Nil means the defaults.
type ListOptions struct {
	// Prefix lists only the blobs whose names start with it. Under
	// SealNames it is a logical prefix matched by whole segments:
	// "programs/x57/" lists what is under programs/x57, "programs/x57"
	// that name and what is under it, and "programs/x5" does not list
	// programs/x57 (the service sees only keyed hashes of segments).
	Prefix string
	// MaxResults bounds the items of a page (the service's default, 5000,
	// when zero).
	MaxResults int32
	// Marker resumes a listing where a previous page's NextMarker left it.
	Marker *string
}

// ListResponse is one page of a listing.
type ListResponse struct {
	Items []ListItem
	// NextMarker resumes the listing after this page (nil at the end).
	NextMarker *string
}

// ListItem describes a listed blob, from the listing's metadata alone: no
// blob is read, so nothing in it is authenticated (GetProperties
// authenticates), except under SealNames the name and metadata, which
// open only for the blob they were sealed for.
type ListItem struct {
	// Name is the blob's name: under SealNames its logical name, once its
	// sealed name opened; otherwise (and for a blob without a sealed name)
	// StoredName.
	Name string
	// StoredName is the blob's name in the container.
	StoredName string
	// NameSealed reports that the blob carries a sealed name: its stored
	// name is keyed hashes, and only a client with SealNames and the
	// container's name key can tell its logical name.
	NameSealed bool
	// SealErr is why, under SealNames, the blob's sealed name or metadata
	// did not open (an error matching ErrNameTampered); Name is then the
	// stored name and Metadata nil.
	SealErr error
	// Format is FormatGeoseal, FormatCSEv2, FormatCSEv1,
	// FormatNotEncrypted or FormatUnknown, as the blob's metadata says.
	Format string
	// Size is the plaintext size the metadata records (for a blob that is
	// not encrypted, its size), or -1 when it says nothing that agrees
	// with the blob's size.
	Size int64
	// EncryptedSize is the blob's size.
	EncryptedSize int64
	ETag          azcore.ETag
	LastModified  time.Time
	// Metadata is the blob's user metadata (geoseal's own entries left
	// out); for a sealed name listed under SealNames, the sealed metadata.
	Metadata map[string]*string
}

// NewListPager lists the blobs of the container, a page at a time, with
// each blob's format and plaintext size read from the listing's metadata:
// one request per page, whatever the blobs hold.
//
// Under SealNames the prefix is logical (see ListOptions.Prefix) and the
// items have their logical names and metadata, opened from the listing's
// metadata, in the order of their stored names; a blob whose sealed entries do not open is listed with its
// stored name and SealErr. A container without a name key lists
// nothing under a prefix, and everything, by stored name, without one.
func (c *Client) NewListPager(opts *ListOptions) *runtime.Pager[ListResponse] {
	if opts == nil {
		opts = &ListOptions{}
	}
	var inner *runtime.Pager[container.ListBlobsFlatResponse]
	var keys *names.Keys
	return runtime.NewPager(runtime.PagingHandler[ListResponse]{
		More: func(ListResponse) bool { return inner != nil && inner.More() },
		Fetcher: func(ctx context.Context, _ *ListResponse) (ListResponse, error) {
			if inner == nil {
				lo, k, ok, err := c.listStart(ctx, opts)
				if err != nil || !ok {
					return ListResponse{}, err
				}
				inner, keys = c.container.NewListBlobsFlatPager(lo), k
			}
			page, err := inner.NextPage(ctx)
			if err != nil {
				return ListResponse{}, err
			}
			return listPage(page, keys), nil
		},
	})
}

// listStart returns the service's listing options for opts and, under
// SealNames, the name keys. ok is false when nothing can match.
func (c *Client) listStart(ctx context.Context, opts *ListOptions) (lo *container.ListBlobsFlatOptions, keys *names.Keys, ok bool, err error) {
	lo = &container.ListBlobsFlatOptions{
		Include: container.ListBlobsInclude{Metadata: true},
		Marker:  opts.Marker,
	}
	if opts.MaxResults > 0 {
		lo.MaxResults = &opts.MaxResults
	}
	prefix, keys, ok, err := c.storedPrefix(ctx, opts.Prefix)
	if err != nil || !ok {
		return nil, nil, false, err
	}
	if prefix != "" {
		lo.Prefix = &prefix
	}
	return lo, keys, true, nil
}

// listPage turns a page of the service's listing into ours.
func listPage(page container.ListBlobsFlatResponse, keys *names.Keys) ListResponse {
	resp := ListResponse{NextMarker: page.NextMarker}
	if page.Segment == nil {
		return resp
	}
	for _, it := range page.Segment.BlobItems {
		if it == nil || it.Name == nil {
			continue
		}
		resp.Items = append(resp.Items, listItem(keys, it))
	}
	return resp
}

// listItem describes a listed blob (it.Name is not nil), opening its
// sealed entries with keys (nil: names are not sealed, or there is no name
// key).
func listItem(keys *names.Keys, it *container.BlobItem) ListItem {
	var size int64
	var etag azcore.ETag
	var lastModified time.Time
	if p := it.Properties; p != nil {
		if p.ContentLength != nil {
			size = *p.ContentLength
		}
		if p.ETag != nil {
			etag = *p.ETag
		}
		if p.LastModified != nil {
			lastModified = *p.LastModified
		}
	}
	return describeBlob(keys, *it.Name, it.Metadata, size, etag, lastModified)
}

// describeBlob describes the blob stored with metadata md, as listItem
// does.
func describeBlob(keys *names.Keys, stored string, md map[string]*string, size int64, etag azcore.ETag, lastModified time.Time) ListItem {
	li := ListItem{
		Name:          stored,
		StoredName:    stored,
		NameSealed:    hasSealedName(md),
		EncryptedSize: size,
		ETag:          etag,
		LastModified:  lastModified,
	}
	li.Format = formatOf(md)
	li.Size = listedSize(li.Format, md, size)
	if keys == nil || !li.NameSealed {
		li.Metadata = userMetadata(md)
		return li
	}
	e, err := openSealed(keys, md, stored)
	if err != nil {
		li.SealErr = err
		return li
	}
	li.Name, li.Metadata = e.logical, e.metadata
	return li
}
