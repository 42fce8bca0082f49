package csev2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
)

// EncryptionDataFromMetadata returns the parsed "encryptiondata" entry of
// blob metadata, or an error matching ErrNotEncrypted when there is none.
// Metadata keys are matched without regard to case, because HTTP headers
// (x-ms-meta-encryptiondata) carry them and Go canonicalizes header names.
func EncryptionDataFromMetadata(md map[string]*string) (*EncryptionData, error) {
	for k, v := range md {
		if strings.EqualFold(k, MetadataKey) && v != nil {
			return ParseEncryptionData([]byte(*v))
		}
	}
	return nil, ErrNotEncrypted
}

// BlobReader returns the reader of CSE v2 blobs that an envelope.BlobClient
// uses when given as BlobClientOptions.CSEv2: its Download and DownloadRange
// then recognize blobs with "encryptiondata" metadata and read them, whole or
// by range, with the key-encryption keys kr resolves, so a service moving to
// geoseal reads the blobs the .NET, Java and Python SDKs wrote through one
// client. It returns a concrete type, so that this package does not import
// the blob client's: the client accepts anything with its DownloadCSEv2.
func BlobReader(kr KeyResolver, opts *DownloadOptions) *BlobDecrypter {
	return &BlobDecrypter{keys: kr, opts: opts}
}

// A BlobDecrypter reads client-side encrypted blobs with one KeyResolver and
// one set of DownloadOptions; see BlobReader.
type BlobDecrypter struct {
	keys KeyResolver
	opts *DownloadOptions
}

// DownloadCSEv2 returns a reader of count plaintext bytes of the blob from
// offset (count 0: to the end): Download for the whole blob, DownloadRange
// otherwise.
func (d *BlobDecrypter) DownloadCSEv2(ctx context.Context, b *blob.Client, offset, count int64) (io.ReadCloser, error) {
	if offset == 0 && count == 0 {
		return Download(ctx, b, d.keys, d.opts)
	}
	return DownloadRange(ctx, b, offset, count, d.keys, d.opts)
}

// DownloadOptions configures Download and DownloadRange. A nil
// *DownloadOptions is valid.
type DownloadOptions struct {
	// Reader adjusts decryption; see ReaderOptions.
	Reader *ReaderOptions
	// AccessConditions are sent with the requests. DownloadRange adds an
	// If-Match on the ETag it read the metadata with, unless this sets one.
	AccessConditions *blob.AccessConditions
}

func (o *DownloadOptions) reader() *ReaderOptions {
	if o == nil {
		return nil
	}
	return o.Reader
}

func (o *DownloadOptions) access() *blob.AccessConditions {
	if o == nil {
		return nil
	}
	return o.AccessConditions
}

// Download downloads a CSE v2 blob and returns a reader of its plaintext. It
// makes one request: the metadata comes with the body. The blob's key
// encryption key is found through kr by the key id in the metadata. A blob
// without "encryptiondata" metadata is an error matching ErrNotEncrypted:
// this function never returns stored bytes undecrypted.
//
// The returned reader fails as the Reader of NewReader does; the caller must
// close it.
func Download(ctx context.Context, b *blob.Client, kr KeyResolver, opts *DownloadOptions) (io.ReadCloser, error) {
	resp, err := b.DownloadStream(ctx, &blob.DownloadStreamOptions{AccessConditions: opts.access()})
	if err != nil {
		return nil, err
	}
	body := resp.Body
	ed, err := EncryptionDataFromMetadata(resp.Metadata)
	if err == nil && resp.ContentLength != nil {
		// A body whose last region cannot hold a nonce and a tag is cut.
		_, err = plaintextSize(*resp.ContentLength, ed.regionLength())
	}
	var r io.Reader
	if err == nil {
		r, err = NewReader(ctx, body, ed, kr, opts.reader())
	}
	if err != nil {
		body.Close()
		return nil, err
	}
	return readCloser{r, body}, nil
}

// DownloadRange returns a reader of count plaintext bytes of a CSE v2 blob
// from offset (count 0: to the end). It reads the metadata and size first,
// then downloads only the regions the range covers, conditional on the blob
// being unchanged since. A range past the end is cut at the end, as a
// ranged HTTP GET is.
func DownloadRange(ctx context.Context, b *blob.Client, offset, count int64, kr KeyResolver, opts *DownloadOptions) (io.ReadCloser, error) {
	if offset < 0 || count < 0 {
		return nil, fmt.Errorf("csev2: invalid range offset %d count %d", offset, count)
	}
	props, err := b.GetProperties(ctx, &blob.GetPropertiesOptions{AccessConditions: opts.access()})
	if err != nil {
		return nil, err
	}
	ed, err := EncryptionDataFromMetadata(props.Metadata)
	if err != nil {
		return nil, err
	}
	if props.ContentLength == nil {
		return nil, errors.New("csev2: blob properties lack Content-Length")
	}
	csize := *props.ContentLength
	rl := ed.regionLength()
	psize, err := plaintextSize(csize, rl)
	if err != nil {
		return nil, err
	}
	end := psize
	if count > 0 && offset < psize && count < psize-offset {
		end = offset + count
	}
	if offset >= end {
		// Nothing to read, but the key must still unwrap: a wrong key is
		// an error whatever the range.
		if _, err := unwrapOpener(ctx, ed, kr); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	first, last := offset/rl, (end-1)/rl
	cstart := first * (rl + Overhead)
	cend := min((last+1)*(rl+Overhead), csize)

	// Unwrap before downloading, so that a missing key costs no transfer.
	r, err := newReaderFrom(ctx, nil, ed, kr, first, opts.reader().orderCheck())
	if err != nil {
		return nil, err
	}
	ac := ifMatch(opts.access(), props.ETag)
	resp, err := b.DownloadStream(ctx, &blob.DownloadStreamOptions{
		Range:            blob.HTTPRange{Offset: cstart, Count: cend - cstart},
		AccessConditions: ac,
	})
	if err != nil {
		return nil, err
	}
	r.src = resp.Body
	if _, err := io.CopyN(io.Discard, r, offset-first*rl); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return readCloser{io.LimitReader(r, end-offset), resp.Body}, nil
}

// ifMatch returns ac with If-Match set to etag, unless ac sets one.
func ifMatch(ac *blob.AccessConditions, etag *azcore.ETag) *blob.AccessConditions {
	if etag == nil {
		return ac
	}
	var out blob.AccessConditions
	if ac != nil {
		out = *ac
	}
	var mac blob.ModifiedAccessConditions
	if out.ModifiedAccessConditions != nil {
		mac = *out.ModifiedAccessConditions
	}
	if mac.IfMatch == nil {
		mac.IfMatch = etag
	}
	out.ModifiedAccessConditions = &mac
	return &out
}

type readCloser struct {
	io.Reader
	io.Closer
}

// UploadOptions configures Upload. A nil *UploadOptions is valid.
type UploadOptions struct {
	// Encryption configures the format; see WriterOptions.
	Encryption *WriterOptions
	// BlockSize, Concurrency, HTTPHeaders, Metadata and AccessConditions are
	// passed to blockblob.Client.UploadStream. Metadata must not hold
	// "encryptiondata"; Upload sets it.
	BlockSize        int64
	Concurrency      int
	HTTPHeaders      *blob.HTTPHeaders
	Metadata         map[string]*string
	AccessConditions *blob.AccessConditions
}

// UploadResponse is what Upload returns.
type UploadResponse struct {
	blockblob.UploadStreamResponse
	// EncryptionData is the metadata stored with the blob.
	EncryptionData *EncryptionData
}

// Upload encrypts r into a CSE v2 block blob, as the SDKs' encrypted
// uploads do: the ciphertext is the blob's body and the encryption data its
// "encryptiondata" metadata entry, committed together with the block list.
// In FIPS 140-only mode it returns an error matching ErrNotApproved before
// any request.
func Upload(ctx context.Context, bb *blockblob.Client, r io.Reader, kek KeyEncryptionKey, opts *UploadOptions) (UploadResponse, error) {
	var o UploadOptions
	if opts != nil {
		o = *opts
	}
	md := make(map[string]*string, len(o.Metadata)+1)
	for k, v := range o.Metadata {
		if strings.EqualFold(k, MetadataKey) {
			return UploadResponse{}, fmt.Errorf("csev2: UploadOptions.Metadata must not set %q", MetadataKey)
		}
		md[k] = v
	}
	ed, s, err := newEncryption(ctx, kek, o.Encryption)
	if err != nil {
		return UploadResponse{}, err
	}
	js, err := ed.Marshal()
	if err != nil {
		return UploadResponse{}, err
	}
	v := string(js)
	md[MetadataKey] = &v
	body := &encryptingReader{src: r, s: s, regionLen: ed.regionLength()}
	resp, err := bb.UploadStream(ctx, body, &blockblob.UploadStreamOptions{
		BlockSize:        o.BlockSize,
		Concurrency:      o.Concurrency,
		HTTPHeaders:      o.HTTPHeaders,
		Metadata:         md,
		AccessConditions: o.AccessConditions,
	})
	if err != nil {
		return UploadResponse{}, err
	}
	return UploadResponse{UploadStreamResponse: resp, EncryptionData: ed}, nil
}
