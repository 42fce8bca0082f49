package blobstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/geoseal/geoseal/envelope/csev2"
	"github.com/geoseal/geoseal/internal/format"
)

// Reading what a container-wide operation needs of a blob without its
// body: the header of a geoseal object, in one ranged GET whose response
// also carries the blob's ETag, metadata, HTTP headers and tag count, so
// that no HEAD is needed. A blob without geoseal metadata is recognised by
// its first format.PrefixSize bytes (magic, version, header length)
// before it is called not encrypted.

// A blobHead is the start of a blob and its state, from one GET.
type blobHead struct {
	data     []byte // bytes [0, len(data)) of the blob
	etag     azcore.ETag
	size     int64 // of the whole blob
	metadata map[string]*string
	headers  blob.HTTPHeaders
	tagCount int
}

// readHead fetches the first n bytes of the blob (fewer if it is shorter;
// n > 0), conditional on pin when it is set.
func readHead(ctx context.Context, b *blob.Client, n int64, pin *azcore.ETag) (*blobHead, error) {
	o := &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: 0, Count: n}}
	if pin != nil {
		o.AccessConditions = ifMatch(*pin)
	}
	resp, err := b.DownloadStream(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("blobstore: reading bytes 0-%d: %w", n-1, blobChanged(err))
	}
	defer resp.Body.Close()
	if resp.ETag == nil {
		return nil, errNoETag
	}
	size, ok := rangeTotal(resp.ContentRange)
	if !ok {
		return nil, fmt.Errorf("blobstore: the service answered a ranged GET with Content-Range %v", resp.ContentRange)
	}
	h := &blobHead{
		etag:     *resp.ETag,
		size:     size,
		metadata: resp.Metadata,
		headers:  downloadHeaders(&resp),
	}
	if resp.TagCount != nil {
		h.tagCount = int(*resp.TagCount)
	}
	h.data = make([]byte, min(n, size))
	if _, err := io.ReadFull(resp.Body, h.data); err != nil {
		return nil, fmt.Errorf("blobstore: reading bytes 0-%d: %w", n-1, blobChanged(err))
	}
	return h, nil
}

// downloadHeaders are the HTTP headers of a blob as a GET returns them,
// to be set again on a blob that replaces it. A whole-blob Content-MD5 is
// left out: it does not hold for other content.
func downloadHeaders(resp *blob.DownloadStreamResponse) blob.HTTPHeaders {
	return blob.HTTPHeaders{
		BlobContentType:        resp.ContentType,
		BlobContentEncoding:    resp.ContentEncoding,
		BlobContentLanguage:    resp.ContentLanguage,
		BlobContentDisposition: resp.ContentDisposition,
		BlobCacheControl:       resp.CacheControl,
	}
}

// rangeTotal reads the blob size from "bytes first-last/total".
func rangeTotal(cr *string) (int64, bool) {
	if cr == nil {
		return 0, false
	}
	_, total, ok := strings.Cut(*cr, "/")
	n, err := strconv.ParseInt(total, 10, 64)
	return n, ok && err == nil && n >= 0
}

// header returns the complete geoseal header the head starts with,
// fetching the rest of it (conditional on the head's ETag) when the head
// is shorter. It fails with ErrNotGeoseal for a blob that does not start
// like a geoseal object.
func (h *blobHead) header(ctx context.Context, b *blob.Client) ([]byte, error) {
	n, err := format.HeaderLength(h.data)
	if err != nil {
		return nil, err
	}
	if int64(n) > h.size {
		return nil, fmt.Errorf("%w: header of %d bytes in a blob of %d", format.ErrInvalidHeader, n, h.size)
	}
	if n <= len(h.data) {
		return h.data[:n:n], nil
	}
	hdr := make([]byte, n)
	copy(hdr, h.data)
	if err := getRange(ctx, b, h.etag, hdr[len(h.data):], int64(len(h.data))); err != nil {
		return nil, err
	}
	return hdr, nil
}

// An itemHead is what a walk learns of a listed blob, snapshot or version
// without reading its body.
type itemHead struct {
	// format is the item's format: from its metadata, or, for a blob
	// without any, from its first bytes (FormatGeoseal with missingMeta).
	format      string
	missingMeta bool
	// head and header are set for a geoseal object: the GET's state and
	// the complete header, parsed in parsed.
	head   *blobHead
	header []byte
	parsed *format.Header
	// keyIDs are the key ids of its wrapped keys: from the header, or
	// from the metadata of Azure client-side encryption.
	keyIDs []string
}

// readItem classifies it and, for a geoseal object, reads its header: no
// request for Azure client-side encryption (its metadata says all), one
// GET for a geoseal object, one GET of format.PrefixSize bytes for a blob
// without metadata (and a second one if it turns out to be a geoseal
// object).
func (c *Client) readItem(ctx context.Context, it *walkItem) (itemHead, error) {
	ih := itemHead{format: it.Format}
	b, err := it.client(c)
	if err != nil {
		return ih, err
	}
	var n int64
	switch it.Format {
	case FormatCSEv2, FormatCSEv1, FormatUnknown:
		ih.keyIDs = cseKeyIDs(it.metadata)
		return ih, nil
	case FormatGeoseal:
		m, _, err := parseObjectMetadata(it.metadata)
		if err != nil {
			return ih, err
		}
		n = int64(m.headerLength)
	default:
		if it.EncryptedSize < int64(format.PrefixSize) {
			return ih, nil
		}
		n = int64(format.PrefixSize)
	}
	if ih.head, err = readHead(ctx, b, n, nil); err != nil {
		return ih, err
	}
	if ih.header, err = ih.head.header(ctx, b); err != nil {
		if it.Format == FormatGeoseal {
			return ih, err
		}
		if errors.Is(err, format.ErrNotGeoseal) {
			ih.head = nil
			return ih, nil // not encrypted after all
		}
		// The magic of a geoseal object, and something wrong after it.
		ih.format, ih.missingMeta = FormatGeoseal, true
		return ih, err
	}
	ih.format = FormatGeoseal
	m, hasMeta, err := parseObjectMetadata(ih.head.metadata)
	switch {
	case err != nil:
		return ih, err
	case !hasMeta:
		ih.missingMeta = true
	case m.headerLength != len(ih.header):
		return ih, fmt.Errorf("%w: header length %d recorded; the header says %d", ErrInvalidMetadata, m.headerLength, len(ih.header))
	}
	if ih.parsed, err = format.Parse(ih.header); err != nil {
		return ih, err
	}
	for _, wk := range ih.parsed.WrappedKeys {
		ih.keyIDs = append(ih.keyIDs, wk.KeyID)
	}
	return ih, nil
}

// cseKeyIDs returns the key-encryption key id that the "encryptiondata"
// metadata of Azure client-side encryption (v1 or v2) names, if any. It is
// read for reporting only, never trusted.
func cseKeyIDs(md map[string]*string) []string {
	v, ok := metadataValue(md, csev2.MetadataKey)
	if !ok || len(v) > csev2.MaxEncryptionDataSize {
		return nil
	}
	var ed struct {
		WrappedContentKey struct {
			KeyID string `json:"KeyId"`
		}
	}
	if json.Unmarshal([]byte(v), &ed) != nil || ed.WrappedContentKey.KeyID == "" {
		return nil
	}
	return []string{ed.WrappedContentKey.KeyID}
}
