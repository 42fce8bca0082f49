package csev2

import (
	"context"
	"crypto/aes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
)

// ReaderOptions adjusts decryption. A nil *ReaderOptions is valid and means
// the defaults.
type ReaderOptions struct {
	// AllowMisorderedRegions turns off the check that each region's nonce
	// belongs to its position. It exists, like the .NET and Java SDKs'
	// compatibility switch for misordered regions, only to recover data
	// from a blob written by a non-conforming encoder; with it, regions
	// moved within a blob decrypt silently in the wrong order.
	AllowMisorderedRegions bool

	// ReadCSEv1 lets the readers decrypt protocol 1.0 blobs (CSE v1:
	// AES-256-CBC, what the SDKs wrote before mid-2022 and the Python SDK's
	// default still). CSE v1 has NO INTEGRITY: whoever can write to the
	// container can change what such a blob decrypts to without any error.
	// Off by default, and a 1.0 blob is then refused with
	// ErrUnsupportedProtocol, so that a reader that did not ask never
	// returns unauthenticated data. Set it only to read old blobs, and
	// convert them. Every failure of a v1 body is ErrV1Decrypt.
	ReadCSEv1 bool

	// Logger, if set, gets one record per content key unwrap: key id,
	// algorithm, outcome and, on failure, the reason the returned error
	// does not give (see ErrUnwrap). Never any key bytes.
	Logger *slog.Logger
}

func (o *ReaderOptions) logger() *slog.Logger {
	if o == nil {
		return nil
	}
	return o.Logger
}

func (o *ReaderOptions) orderCheck() *orderCheck {
	if o != nil && o.AllowMisorderedRegions {
		return nil
	}
	return newOrderCheck()
}

// initialRegionBuffer is where a region buffer starts before it grows to the
// region length. A hostile DataLength of 1 GiB must cost memory only as the
// ciphertext actually arrives.
const initialRegionBuffer = 64 << 10

// NewReader returns a reader of the plaintext of the CSE v2 ciphertext src,
// described by ed. It resolves the key-encryption key named in ed through kr
// and unwraps the content key before returning.
//
// Each Read returns only plaintext of regions that authenticated. A failure
// is returned as an error matching ErrAuthentication, ErrTruncated or
// ErrRegionOrder (a *RegionError), after which Read returns the same error.
// A ciphertext cut at a region boundary cannot be told from a shorter one:
// the format has no end marker.
//
// With ReaderOptions.ReadCSEv1 it also reads protocol 1.0, which has no
// integrity: see ReadCSEv1. Its plaintext is returned as it is decrypted,
// less the last block, held back until the padding is checked at the end.
func NewReader(ctx context.Context, src io.Reader, ed *EncryptionData, kr KeyResolver, opts *ReaderOptions) (*Reader, error) {
	if err := ed.validate(); err != nil {
		return nil, err
	}
	if ed.isV1() {
		block, err := v1Block(ctx, ed, kr, opts)
		if err != nil {
			return nil, err
		}
		return newV1Reader(src, block, ed.ContentEncryptionIV, true), nil
	}
	return newReaderFrom(ctx, src, ed, kr, 0, opts)
}

// newReaderFrom decrypts src, whose first region is region first of the blob
// the validated v2 ed describes (NewReader validates it; DownloadRange has it
// from EncryptionDataFromMetadata, which does).
func newReaderFrom(ctx context.Context, src io.Reader, ed *EncryptionData, kr KeyResolver, first int64, opts *ReaderOptions) (*Reader, error) {
	o, err := unwrapOpener(ctx, ed, kr, opts)
	if err != nil {
		return nil, err
	}
	return &Reader{src: src, o: o, index: first, order: opts.orderCheck()}, nil
}

// unwrapOpener unwraps the content key of the validated ed and returns an
// opener for its regions. The key itself lives on only in the AEAD.
func unwrapOpener(ctx context.Context, ed *EncryptionData, kr KeyResolver, opts *ReaderOptions) (*opener, error) {
	cek, err := unwrapContentKey(ctx, ed, kr, opts.logger())
	if err != nil {
		return nil, err
	}
	defer clear(cek)
	return newOpener(cek, ed.regionLength())
}

// A Reader decrypts a stream of CSE v2 regions, or CSE v1 blocks; see
// NewReader. It holds the plaintext of one region (or v1 chunk) at a time,
// and zeroes it once it has all been read, when the stream fails, and on
// Close.
type Reader struct {
	src   io.Reader
	o     *opener // v2
	order *orderCheck
	v1    *cbcStream // v1

	index int64  // of the next region to read
	buf   []byte // ciphertext of the current region
	plain []byte // unread plaintext of the current region
	pbuf  []byte // backing array of plain
	err   error
}

// Read reads plaintext into p.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		if r.err != nil {
			r.wipe()
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	if len(r.plain) == 0 && r.err != nil {
		r.wipe() // the last plaintext is out: none stays behind
	}
	return n, nil
}

// Close zeroes the plaintext the Reader holds; later reads fail. It does not
// close the source. It is safe to call more than once.
func (r *Reader) Close() error {
	r.plain = nil
	r.wipe()
	if r.err == nil || r.err == io.EOF {
		r.err = errReaderClosed
	}
	return nil
}

var errReaderClosed = errors.New("csev2: read from a closed Reader")

// wipe zeroes the plaintext buffer.
func (r *Reader) wipe() { clear(r.pbuf[:cap(r.pbuf)]) }

// next reads, checks and decrypts one region into r.plain. It returns io.EOF
// at the end of the ciphertext, and a terminal error otherwise.
func (r *Reader) next() error {
	if r.v1 != nil {
		return r.nextV1()
	}
	n, err := readRegion(r.src, &r.buf, r.o.regionLen+Overhead)
	switch {
	case n == 0 && err == io.EOF:
		return io.EOF
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		// A short region: the last one.
	case err != nil:
		return err
	}
	r.wipe() // the region before is read; a failure must leave nothing
	pt, oerr := r.o.open(r.pbuf, r.buf[:n], r.index, r.order)
	if oerr != nil {
		return oerr
	}
	r.pbuf = pt[:0]
	r.plain = pt
	r.index++
	if err != nil {
		// The short region was the last; the next call ends the stream.
		return io.EOF
	}
	return nil
}

// readRegion reads up to want bytes of src into *buf, growing it from
// initialRegionBuffer only as data arrives. It returns io.ErrUnexpectedEOF
// when src ends before want bytes, and io.EOF when it ends before any.
func readRegion(src io.Reader, buf *[]byte, want int64) (int, error) {
	b := *buf
	if cap(b) == 0 {
		b = make([]byte, min(want, initialRegionBuffer))
	}
	b = b[:cap(b)]
	n := 0
	for int64(n) < want {
		if n == len(b) {
			grown := make([]byte, min(want, int64(2*len(b))))
			copy(grown, b[:n])
			b = grown
		}
		limit := min(int64(len(b)), want)
		m, err := io.ReadFull(src, b[n:limit])
		n += m
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			*buf = b
			if n == 0 {
				return 0, io.EOF
			}
			return n, io.ErrUnexpectedEOF
		}
		if err != nil {
			*buf = b
			return n, err
		}
	}
	*buf = b
	return n, nil
}

// ReaderAt decrypts arbitrary ranges of a CSE v2 blob, reading and
// authenticating only the regions a range covers. It is safe for concurrent
// use. All the ranges read through one ReaderAt are held to one nonce
// scheme. A region is decrypted in a pooled buffer, zeroed before ReadAt
// returns.
type ReaderAt struct {
	src   io.ReaderAt
	o     *opener // v2
	order *orderCheck
	v1    *cbcAt // v1
	csize int64  // ciphertext size
	size  int64  // plaintext size
	pool  sync.Pool
}

// NewReaderAt returns a ReaderAt over the CSE v2 ciphertext src of size bytes,
// described by ed. It unwraps the content key before returning. A size whose
// last region cannot hold a nonce and a tag is an error matching
// ErrTruncated.
//
// With ReaderOptions.ReadCSEv1 it also reads protocol 1.0, which has no
// integrity (see ReadCSEv1): it decrypts the last block at once, to learn
// the plaintext size from the padding, and a range from the block before
// it (its IV) on.
func NewReaderAt(ctx context.Context, src io.ReaderAt, size int64, ed *EncryptionData, kr KeyResolver, opts *ReaderOptions) (*ReaderAt, error) {
	if err := ed.validate(); err != nil {
		return nil, err
	}
	if ed.isV1() {
		block, err := v1Block(ctx, ed, kr, opts)
		if err != nil {
			return nil, err
		}
		return newV1ReaderAt(src, size, block, ed.ContentEncryptionIV)
	}
	psize, err := plaintextSize(size, ed.regionLength())
	if err != nil {
		return nil, err
	}
	o, err := unwrapOpener(ctx, ed, kr, opts)
	if err != nil {
		return nil, err
	}
	return &ReaderAt{src: src, o: o, order: opts.orderCheck(), csize: size, size: psize}, nil
}

// Size returns the plaintext size.
func (r *ReaderAt) Size() int64 { return r.size }

// ReadAt reads len(p) plaintext bytes at off. As io.ReaderAt requires, it
// returns io.EOF with fewer bytes when the range passes the end. A region that
// fails yields an error and no bytes of that region or any later one.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("csev2: negative offset")
	}
	if off >= r.size {
		if len(p) == 0 && off == r.size {
			return 0, nil
		}
		return 0, io.EOF
	}
	if r.v1 != nil {
		return r.readAtV1(p, off)
	}
	rl := r.o.regionLen
	n := 0
	for n < len(p) && off < r.size {
		index := off / rl
		start := index * (rl + Overhead)
		end := min(start+rl+Overhead, r.csize)
		bp := r.buffer()
		region := (*bp)[:end-start]
		if _, err := r.src.ReadAt(region, start); err != nil {
			r.release(bp)
			if err == io.EOF {
				err = &RegionError{Index: index, Err: ErrTruncated}
			}
			return n, fmt.Errorf("csev2: reading region %d: %w", index, err)
		}
		pt, err := r.o.open(region[:0], region, index, r.order)
		if err != nil {
			r.release(bp)
			return n, err
		}
		m := copy(p[n:], pt[off-index*rl:])
		n += m
		off += int64(m)
		r.release(bp)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// release zeroes a region buffer, which held plaintext, and pools it.
func (r *ReaderAt) release(bp *[]byte) {
	clear(*bp)
	r.pool.Put(bp)
}

// buffer returns a region buffer, no larger than the ciphertext, so that a
// hostile region length costs no more memory than the blob's size. Plaintext
// is decrypted in place over the ciphertext, so one buffer serves both.
func (r *ReaderAt) buffer() *[]byte {
	if bp, ok := r.pool.Get().(*[]byte); ok {
		return bp
	}
	var b []byte
	if r.v1 != nil {
		b = make([]byte, v1Chunk+aes.BlockSize)
	} else {
		b = make([]byte, min(r.o.regionLen+Overhead, r.csize))
	}
	return &b
}
