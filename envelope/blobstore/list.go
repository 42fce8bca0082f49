package blobstore

import (
	"context"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// ListOptions configure NewListPager. Nil means the defaults.
type ListOptions struct {
	// Prefix lists only the blobs whose names start with it.
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
// authenticates).
type ListItem struct {
	Name string
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
	// out).
	Metadata map[string]*string
}

// NewListPager lists the blobs of the container, a page at a time, with
// each blob's format and plaintext size read from the listing's metadata:
// one request per page, whatever the blobs hold.
func (c *Client) NewListPager(opts *ListOptions) *runtime.Pager[ListResponse] {
	if opts == nil {
		opts = &ListOptions{}
	}
	lo := &container.ListBlobsFlatOptions{
		Include: container.ListBlobsInclude{Metadata: true},
		Marker:  opts.Marker,
	}
	if opts.Prefix != "" {
		lo.Prefix = &opts.Prefix
	}
	if opts.MaxResults > 0 {
		lo.MaxResults = &opts.MaxResults
	}
	inner := c.container.NewListBlobsFlatPager(lo)
	return runtime.NewPager(runtime.PagingHandler[ListResponse]{
		More: func(ListResponse) bool { return inner.More() },
		Fetcher: func(ctx context.Context, _ *ListResponse) (ListResponse, error) {
			page, err := inner.NextPage(ctx)
			if err != nil {
				return ListResponse{}, err
			}
			return listPage(page), nil
		},
	})
}

// listPage turns a page of the service's listing into ours.
func listPage(page container.ListBlobsFlatResponse) ListResponse {
	resp := ListResponse{NextMarker: page.NextMarker}
	if page.Segment == nil {
		return resp
	}
	for _, it := range page.Segment.BlobItems {
		if it == nil || it.Name == nil {
			continue
		}
		resp.Items = append(resp.Items, listItem(it))
	}
	return resp
}

// listItem describes a listed blob (it.Name is not nil).
func listItem(it *container.BlobItem) ListItem {
	li := ListItem{Name: *it.Name, Metadata: userMetadata(it.Metadata)}
	if p := it.Properties; p != nil {
		if p.ContentLength != nil {
			li.EncryptedSize = *p.ContentLength
		}
		if p.ETag != nil {
			li.ETag = *p.ETag
		}
		if p.LastModified != nil {
			li.LastModified = *p.LastModified
		}
	}
	li.Format = formatOf(it.Metadata)
	li.Size = listedSize(li.Format, it.Metadata, li.EncryptedSize)
	return li
}
