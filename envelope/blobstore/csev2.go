package blobstore

import (
	"context"
	"fmt"
	"io"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/envelope/csev2"
	"github.com/geoseal/geoseal/keyring"
)

// Blobs written with the client-side encryption v2 of the Azure Storage
// SDKs are read through package csev2's blob functions, with the key
// resolver of ClientOptions.CSEv2, every request conditional on the ETag
// open saw.

// cseContent reads the plaintext of a CSE v2 blob, or of a CSE v1 blob
// (see openCSEv1).
type cseContent struct {
	ctx  context.Context
	b    *blob.Client
	etag azcore.ETag
	keys csev2.KeyResolver
	size int64
	read *csev2.ReaderOptions // ReadCSEv1 for a v1 blob
	at   *csev2.ReaderAt      // v1: ranges decrypted with the key open unwrapped
}

// openCSEv2 opens the CSE v2 blob whose state is st. CSE v2 has no
// encryption context, so a read that requires one refuses it before any
// key is asked for, configured or not. With checkKey, the blob's key is unwrapped now, so
// that a missing key fails here rather than at the first read.
func (c *Client) openCSEv2(ctx context.Context, b *blob.Client, st blobState, require keyring.Context, checkKey bool, props *Properties) (content, error) {
	// The context first: a read that requires one refuses a CSE v2 blob
	// whether or not CSE v2 reading is configured.
	if len(require) > 0 {
		return nil, fmt.Errorf("%w: a client-side encryption v2 blob has no encryption context", envelope.ErrContextMismatch)
	}
	if c.opts.CSEv2 == nil {
		return nil, ErrCSEv2NotConfigured
	}
	v, _ := metadataValue(st.metadata, csev2.MetadataKey)
	ed, err := csev2.ParseEncryptionData([]byte(v))
	if err != nil {
		return nil, fmt.Errorf("blobstore: client-side encryption v2 blob: %w", err)
	}
	size := int64(-1)
	if ed.EncryptedRegionInfo != nil {
		size = cseV2PlaintextSize(st.size, ed.EncryptedRegionInfo.DataLength)
	}
	if size < 0 {
		return nil, fmt.Errorf("blobstore: client-side encryption v2 blob of %d bytes: %w", st.size, csev2.ErrTruncated)
	}
	wk := ed.WrappedContentKey
	props.Size = size
	props.WrappedKeys = []keyring.WrappedKey{{Provider: FormatCSEv2, KeyID: wk.KeyID, Algorithm: wk.Algorithm, Ciphertext: wk.EncryptedKey}}
	cc := &cseContent{ctx: ctx, b: b, etag: st.etag, keys: c.opts.CSEv2, size: size}
	if checkKey {
		if err := cc.checkKey(); err != nil {
			return nil, err
		}
	}
	return cc, nil
}

func (c *cseContent) options() *csev2.DownloadOptions {
	return &csev2.DownloadOptions{Reader: c.read, AccessConditions: ifMatch(c.etag)}
}

// checkKey unwraps the blob's key: an empty range past the end reads
// nothing but still unwraps.
func (c *cseContent) checkKey() error {
	rc, err := csev2.DownloadRange(c.ctx, c.b, c.size, 0, c.keys, c.options())
	if err != nil {
		return cseError(err)
	}
	return rc.Close()
}

func (c *cseContent) ReadAt(p []byte, off int64) (int, error) {
	if off >= c.size {
		if off == c.size && len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := min(int64(len(p)), c.size-off)
	if n == 0 {
		return 0, nil
	}
	var m int
	var err error
	if c.at != nil {
		m, err = c.at.ReadAt(p[:n], off)
	} else {
		m, err = c.downloadRange(p[:n], off)
	}
	if err != nil {
		return m, cseError(err)
	}
	if m < len(p) {
		return m, io.EOF
	}
	return m, nil
}

// downloadRange fills p with the plaintext at off, in one ranged download
// (a CSE v2 blob: each unwraps the key again).
func (c *cseContent) downloadRange(p []byte, off int64) (int, error) {
	rc, err := csev2.DownloadRange(c.ctx, c.b, off, int64(len(p)), c.keys, c.options())
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return io.ReadFull(rc, p)
}

// reader reads [off, end): the whole blob in one GET, or a range.
func (c *cseContent) reader(off, end int64, _ int) (seqSource, error) {
	var rc io.ReadCloser
	var err error
	switch {
	case off >= end:
		if err := c.checkKey(); err != nil {
			return nil, err
		}
		return cseReader{io.NopCloser(eofReader{})}, nil
	case off == 0 && end == c.size:
		rc, err = csev2.Download(c.ctx, c.b, c.keys, c.options())
	default:
		rc, err = csev2.DownloadRange(c.ctx, c.b, off, end-off, c.keys, c.options())
	}
	if err != nil {
		return nil, cseError(err)
	}
	return cseReader{rc}, nil
}

func cseError(err error) error {
	return fmt.Errorf("blobstore: client-side encrypted blob: %w", blobChanged(err))
}

// cseReader is a csev2 reader as a seqSource.
type cseReader struct{ io.ReadCloser }

func (r cseReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = cseError(err)
	}
	return n, err
}

func (r cseReader) WriteTo(w io.Writer) (int64, error) {
	return io.Copy(w, struct{ io.Reader }{r})
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
