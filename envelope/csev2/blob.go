package csev2

import (
	"context"
	"crypto/aes"
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
//
// The key must be exactly "encryptiondata", as the Python SDK and the Java
// SDK before 12.23.0 look it up, or "Encryptiondata": Go's net/http
// canonicalizes response header names, so azblob hands over the header
// x-ms-meta-encryptiondata under that key. (Which case the entry was stored
// with cannot be recovered from a Go HTTP response: a blob read by GET or
// HEAD is matched as the service matches metadata names, without regard to
// case. Maps that keep the stored case, such as a listing's, are matched
// exactly.) Any other spelling, such as "EncryptionData", is not this entry.
func EncryptionDataFromMetadata(md map[string]*string) (*EncryptionData, error) {
	for _, k := range []string{MetadataKey, canonicalMetadataKey} {
		if v := md[k]; v != nil {
			return ParseEncryptionData([]byte(*v))
		}
	}
	return nil, ErrNotEncrypted
}

// canonicalMetadataKey is MetadataKey as net/http delivers it in a response
// header name (textproto.CanonicalMIMEHeaderKey of x-ms-meta-encryptiondata,
// less azblob's prefix).
const canonicalMetadataKey = "Encryptiondata"

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
	switch {
	case err != nil:
	case ed.isV1():
		err = opts.reader().checkV1(ed)
		if err == nil && resp.ContentLength != nil {
			err = v1Size(*resp.ContentLength)
		}
	case resp.ContentLength != nil:
		// A body whose last region cannot hold a nonce and a tag is cut.
		_, err = plaintextSize(*resp.ContentLength, ed.regionLength())
	}
	var r *Reader
	if err == nil {
		r, err = NewReader(ctx, body, ed, kr, opts.reader())
	}
	if err != nil {
		body.Close()
		return nil, err
	}
	return &downloadReader{Reader: r, r: r, body: body}, nil
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
	if ed.isV1() {
		return downloadRangeV1(ctx, b, props.ETag, csize, ed, offset, count, kr, opts)
	}
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
		if _, err := unwrapOpener(ctx, ed, kr, opts.reader()); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	first, last := offset/rl, (end-1)/rl
	cstart := first * (rl + Overhead)
	cend := min((last+1)*(rl+Overhead), csize)

	// Unwrap before downloading, so that a missing key costs no transfer.
	r, err := newReaderFrom(ctx, nil, ed, kr, first, opts.reader())
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
		r.Close()
		resp.Body.Close()
		return nil, err
	}
	return &downloadReader{Reader: io.LimitReader(r, end-offset), r: r, body: resp.Body}, nil
}

// downloadRangeV1 is DownloadRange for a CSE v1 blob of csize bytes: one
// GET, from the block before the range (its IV) to the end of the range's
// last block, or to the end of the blob when the range reaches into the last
// block, whose padding then says where the plaintext ends.
func downloadRangeV1(ctx context.Context, b *blob.Client, etag *azcore.ETag, csize int64, ed *EncryptionData, offset, count int64, kr KeyResolver, opts *DownloadOptions) (io.ReadCloser, error) {
	if err := opts.reader().checkV1(ed); err != nil {
		return nil, err
	}
	if err := v1Size(csize); err != nil {
		return nil, err
	}
	// Unwrap before downloading, so that a missing key costs no transfer.
	block, err := v1Block(ctx, ed, kr, opts.reader())
	if err != nil {
		return nil, err
	}
	const bs = aes.BlockSize
	end := csize // ciphertext end of the fetch
	unpad := true
	if count > 0 && offset+count <= csize-bs {
		// The range ends before the last block: no padding to read.
		end, unpad = (offset+count+bs-1)/bs*bs, false
	}
	if offset >= end {
		offset = end // past the end: only the padding is read, and checked
	}
	first := min(offset, end-bs) / bs * bs
	var iv []byte
	from := first
	if first == 0 {
		iv = ed.ContentEncryptionIV
	} else {
		from = first - bs // the IV of block first/bs
	}
	resp, err := b.DownloadStream(ctx, &blob.DownloadStreamOptions{
		Range:            blob.HTTPRange{Offset: from, Count: end - from},
		AccessConditions: ifMatch(opts.access(), etag),
	})
	if err != nil {
		return nil, err
	}
	r := newV1Reader(resp.Body, block, iv, unpad)
	// io.EOF here is an offset past the plaintext's end (in the padding):
	// an empty range, once the padding checked.
	if _, err := io.CopyN(io.Discard, r, offset-first); err != nil && err != io.EOF {
		r.Close()
		resp.Body.Close()
		return nil, err
	}
	var out io.Reader = r
	if count > 0 {
		out = io.LimitReader(r, count)
	}
	return &downloadReader{Reader: out, r: r, body: resp.Body}, nil
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

// downloadReader is what Download and DownloadRange return: Close zeroes the
// plaintext r holds and closes the response body.
type downloadReader struct {
	io.Reader // r, or a limit on it
	r         *Reader
	body      io.Closer
}

func (d *downloadReader) Close() error {
	d.r.Close()
	return d.body.Close()
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
