package envelope

import (
	"context"
	"fmt"
	"io"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
)

// A CSEv2Reader decrypts blobs written with the client-side encryption v2
// of the Azure Storage SDKs for .NET, Java and Python, which keep their
// parameters in the blob metadata entry "encryptiondata".
//
// Download and DownloadRange hand such a blob to BlobClientOptions.CSEv2
// instead of failing, so that a service moving to geoseal reads its old
// blobs through the same client. Package envelope/csev2 implements the
// format.
type CSEv2Reader interface {
	// DownloadCSEv2 returns a reader of count plaintext bytes of the blob
	// from offset (count 0: to the end), failing, as geoseal objects do,
	// rather than return unauthenticated bytes. The caller closes it.
	DownloadCSEv2(ctx context.Context, b *blob.Client, offset, count int64) (io.ReadCloser, error)
}

// isCSEv2 reports whether blob metadata marks a CSE v2 blob rather than a
// geoseal object. A blob carrying both is treated as geoseal: the header
// decides, and a forged "encryptiondata" entry cannot divert it.
func isCSEv2(md map[string]*string) bool {
	return hasMetadata(md, metaCSEv2) && !hasMetadata(md, metaVersion)
}

// downloadCSEv2 reads a CSE v2 blob through the configured reader.
func (c *BlobClient) downloadCSEv2(ctx context.Context, b *blob.Client, offset, count int64) (io.ReadCloser, error) {
	if c.opts.CSEv2 == nil {
		return nil, ErrCSEv2NotConfigured
	}
	r, err := c.opts.CSEv2.DownloadCSEv2(ctx, b, offset, count)
	if err != nil {
		return nil, fmt.Errorf("envelope: client-side encryption v2 blob: %w", err)
	}
	return r, nil
}
