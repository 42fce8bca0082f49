package blobstore

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/envelope/csev2"
	"github.com/geoseal/geoseal/keyring"
)

// Blobs in the SDKs' client-side encryption v1 (protocol 1.0, AES-CBC over
// the whole blob) are read, only with ClientOptions.ReadCSEv1, through
// package csev2's v1 readers, which report every failure of a body with one
// error, csev2.ErrV1Decrypt, and check the padding in constant time. v1 has
// no integrity: a read succeeds on a modified blob, with other plaintext.

// openCSEv1 opens the CSE v1 blob whose state is st. Its plaintext size is
// in no metadata: the padding of its last block says it, so open unwraps
// the content key and decrypts that block (a GET of 32 bytes) whatever the
// read, and keeps the key for the ReadAt calls.
func (c *Client) openCSEv1(ctx context.Context, b *blob.Client, st blobState, require keyring.Context, props *Properties) (content, error) {
	switch {
	case len(require) > 0:
		return nil, fmt.Errorf("%w: a client-side encryption v1 blob has no encryption context", envelope.ErrContextMismatch)
	case !c.opts.ReadCSEv1:
		return nil, ErrCSEv1NotEnabled
	case c.opts.CSEv2 == nil:
		return nil, ErrCSEv2NotConfigured
	}
	v, _ := metadataValue(st.metadata, csev2.MetadataKey)
	ed, err := csev2.ParseEncryptionData([]byte(v))
	if err != nil {
		return nil, fmt.Errorf("blobstore: client-side encryption v1 blob: %w", err)
	}
	read := &csev2.ReaderOptions{ReadCSEv1: true}
	ra, err := csev2.NewReaderAt(ctx, blobRange{ctx: ctx, b: b, etag: st.etag}, st.size, ed, c.opts.CSEv2, read)
	if err != nil {
		return nil, cseError(err)
	}
	if c.opts.Logger != nil {
		c.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "blobstore: reading Azure client-side encryption v1, which has no integrity protection",
			slog.String("blob", b.URL()), slog.String("key_id", ed.WrappedContentKey.KeyID))
	}
	wk := ed.WrappedContentKey
	props.Size = ra.Size()
	props.WrappedKeys = []keyring.WrappedKey{{Provider: FormatCSEv1, KeyID: wk.KeyID, Algorithm: wk.Algorithm, Ciphertext: wk.EncryptedKey}}
	return &cseContent{ctx: ctx, b: b, etag: st.etag, keys: c.opts.CSEv2, size: ra.Size(), read: read, at: ra}, nil
}

// blobRange is a blob's stored bytes as an io.ReaderAt, every read
// conditional on the ETag the blob was opened with.
type blobRange struct {
	ctx  context.Context
	b    *blob.Client
	etag azcore.ETag
}

func (r blobRange) ReadAt(p []byte, off int64) (int, error) {
	if err := getRange(r.ctx, r.b, r.etag, p, off); err != nil {
		return 0, err
	}
	return len(p), nil
}
