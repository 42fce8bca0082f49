package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/keyring"
)

// OpenOptions configure Open. Nil means the defaults.
type OpenOptions struct {
	// RequireContext lists pairs the object's encryption context must
	// contain, besides ClientOptions.RequireContext (see
	// envelope.DecryptOptions.RequireContext). An object without one of
	// them fails with envelope.ErrContextMismatch, as does every CSE v2
	// blob when any pair is required.
	RequireContext keyring.Context

	// RangeSize and Concurrency override the client's for the Blob's
	// reads.
	RangeSize   int64
	Concurrency int
}

// Properties describe a blob and the object it holds.
type Properties struct {
	// Name is the blob's name, as given to the call (under SealNames, the
	// logical name).
	Name string
	// StoredName is the blob's name in the container: Name, or under
	// SealNames the keyed hashes of its segments.
	StoredName string
	// NameSealed reports that the blob carries a sealed name.
	NameSealed bool
	// Size is the plaintext size. For a geoseal object it is
	// authenticated: the final chunk was verified. For a CSE v2 blob it is
	// computed from the blob's size (CSE v2 cannot detect a blob cut at a
	// region boundary).
	Size int64
	// EncryptedSize is the blob's size.
	EncryptedSize int64
	// ETag and LastModified are the blob's, as the service reports them.
	ETag         azcore.ETag
	LastModified time.Time
	// Format is FormatGeoseal, FormatCSEv2 or (with ClientOptions.ReadCSEv1)
	// FormatCSEv1, whose plaintext nothing authenticates.
	Format string
	// Context is the object's encryption context, authenticated with its
	// header (nil for CSE v2, which has none).
	Context keyring.Context
	// WrappedKeys are the object's wrapped data keys: the provider, key id
	// and algorithm of each key-encryption key that can open it. For a CSE
	// v2 blob the provider is FormatCSEv2.
	WrappedKeys []keyring.WrappedKey
	// Metadata is the blob's user metadata (geoseal's own entries left
	// out). It is not authenticated, except under SealNames: then it is
	// the sealed metadata, which opened only for this blob and object.
	Metadata map[string]*string
}

// A Blob is an opened blob: an io.Reader, io.ReaderAt, io.Seeker and
// io.Closer over the plaintext of the object it holds, with its Size and
// Properties.
//
// Reads fetch lazily, conditional on the ETag the blob had when it was
// opened (a blob replaced since fails with ErrBlobChanged), and size each
// fetch to the read: a ReadAt of 100 bytes costs the chunk or two that
// hold them. Sequential Reads ramp up, doubling each fetch and the number
// in flight up to RangeSize × Concurrency, so that reading a whole Blob
// runs at the speed of Download; a Seek that breaks the sequence starts
// the ramp again. A Read returns once the whole chunks it has room for
// (those the current fetch holds) have arrived, not the first of them.
// Every chunk is authenticated before any of its bytes is returned, and a
// read that fails returns the error, never io.EOF.
//
// ReadAt is safe for concurrent use; Read and Seek share a position and
// are not. The context given to Open governs the Blob's requests: cancel
// it, or Close the Blob, to stop them. Close stops the goroutines a Blob
// started before it returns.
type Blob struct {
	props   Properties
	content content
	ctx     context.Context // done when the caller's is, or at Close
	cancel  context.CancelCauseFunc

	mu     sync.Mutex // guards the fields below (Read, Seek, WriteTo, Close)
	pos    int64
	seq    seqSource // the sequential reader at seqPos, or nil
	seqPos int64
	closed bool
}

// content reads the plaintext of one kind of object.
type content interface {
	// ReadAt follows io.ReaderAt; it is safe for concurrent use.
	ReadAt(p []byte, off int64) (int, error)
	// reader returns a sequential reader of [off, end). first is the size
	// of the first read (0: the reader is read to the end at full speed).
	reader(off, end int64, first int) (seqSource, error)
}

// seqSource is a sequential reader of part of a blob's plaintext.
type seqSource interface {
	io.ReadCloser
	io.WriterTo
}

// errBlobClosed is what a Blob's reads return after Close.
var errBlobClosed = fmt.Errorf("blobstore: blob: %w", fs.ErrClosed)

// Open opens the blob name for reading.
//
// Everything that can fail before the first byte fails here: a missing
// blob (the service's bloberror.BlobNotFound), a blob that is not a
// geoseal object (ErrNotGeoseal) or whose metadata lies
// (ErrInvalidMetadata), no key that unwraps it (*keyring.NoMatchError), a
// key commitment or header tag that does not verify, a context mismatch,
// and the final chunk, which Open fetches and authenticates so that Size
// is trusted. It costs a HEAD and one round of two ranged GETs (the
// header, the final chunk), or one GET for an object of one chunk.
//
// A CSE v2 blob is opened through ClientOptions.CSEv2 (Open checks that
// its key unwraps); each of its ReadAt calls costs a round trip of its
// own.
//
// Under SealNames name is a logical name, and the blob must carry its
// own sealed name and metadata, sealed with the object it holds
// (ErrNameTampered otherwise); Properties.Metadata is then the sealed
// metadata.
//
// The caller must Close the Blob.
func (c *Client) Open(ctx context.Context, name string, opts *OpenOptions) (*Blob, error) {
	if opts == nil {
		opts = &OpenOptions{}
	}
	b, err := c.open(ctx, name, openRequest{require: opts.RequireContext, rangeSize: opts.RangeSize, concurrency: opts.Concurrency, checkKey: true})
	if err != nil {
		return nil, fmt.Errorf("blobstore: open %q: %w", name, err)
	}
	return b, nil
}

// openRequest is what the read operations ask of open.
type openRequest struct {
	// own means that the name is one of the client's own blobs (the name
	// key), read by its stored name whatever SealNames says, and without
	// the client's RequireContext.
	own         bool
	require     keyring.Context
	rangeSize   int64
	concurrency int
	// checkKey makes the CSE v2 path unwrap the key in open, for callers
	// that would not read at once (Open, GetProperties).
	checkKey bool
}

// open does the work of Open, Download, GetProperties and ServeBlob: it
// learns the blob's state and format, then opens it as what it is.
func (c *Client) open(ctx context.Context, name string, req openRequest) (*Blob, error) {
	t, err := c.transfer(req.rangeSize, req.concurrency)
	if err != nil {
		return nil, err
	}
	require, ok := req.require, true
	if !req.own {
		require, ok = c.requireContext(req.require)
	}
	if !ok {
		return nil, fmt.Errorf("%w: the client and the call require different values for one key", envelope.ErrContextMismatch)
	}
	target := uploadTarget{logical: name, stored: name}
	if !req.own {
		if target, err = c.target(ctx, name, false); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	b := c.container.NewBlobClient(target.stored)
	st, err := stat(ctx, b, nil)
	if err != nil {
		cancel(err)
		return nil, err
	}
	props := Properties{
		Name:          name,
		StoredName:    target.stored,
		NameSealed:    hasSealedName(st.metadata),
		EncryptedSize: st.size,
		ETag:          st.etag,
		LastModified:  st.lastModified,
		Metadata:      userMetadata(st.metadata),
	}
	ct, err := c.openContent(ctx, b, st, target, require, req, t, &props)
	if err != nil {
		cancel(err)
		return nil, err
	}
	return &Blob{props: props, content: ct, ctx: ctx, cancel: cancel}, nil
}

// openContent opens the blob whose state is st as what it is. Under
// SealNames it must be a geoseal object whose sealed name is the one asked
// for and whose sealed entries belong to the object it holds.
func (c *Client) openContent(ctx context.Context, b *blob.Client, st blobState, target uploadTarget, require keyring.Context, req openRequest, t transferSettings, props *Properties) (content, error) {
	if target.keys != nil {
		sealed, err := openSealed(target.keys, st.metadata, target.stored)
		if err != nil {
			return nil, err
		}
		props.Format = FormatGeoseal
		props.Metadata = sealed.metadata
		ct, err := c.openGeoseal(ctx, b, st, require, t, props)
		if err != nil {
			return nil, err
		}
		if err := checkSealedObject(sealed, target.logical, ct.messageID); err != nil {
			return nil, err
		}
		return ct, nil
	}
	switch f := formatOf(st.metadata); f {
	case FormatCSEv2:
		props.Format = f
		return c.openCSEv2(ctx, b, st, require, req.checkKey, props)
	case FormatCSEv1:
		props.Format = f
		return c.openCSEv1(ctx, b, st, require, props)
	case FormatUnknown:
		return nil, fmt.Errorf("%w: the blob's metadata marks client-side encryption this package does not read (%s)", ErrNotGeoseal, f)
	}
	// A geoseal object, or a blob without metadata, which may be a geoseal
	// object copied in by other means: its header decides.
	props.Format = FormatGeoseal
	ct, err := c.openGeoseal(ctx, b, st, require, t, props)
	if err != nil {
		return nil, err
	}
	return ct, nil
}

// Size returns the plaintext size (see Properties.Size).
func (b *Blob) Size() int64 { return b.props.Size }

// Properties returns the blob's properties, as of Open.
func (b *Blob) Properties() Properties {
	p := b.props
	p.Context = maps.Clone(p.Context)
	p.Metadata = maps.Clone(p.Metadata)
	p.WrappedKeys = append([]keyring.WrappedKey(nil), p.WrappedKeys...)
	return p
}

// ReadAt reads len(p) plaintext bytes from off, as io.ReaderAt: fewer only
// with an error, io.EOF past the end. It fetches, in parallel ranged GETs
// of at most RangeSize, only the chunks that hold the range.
func (b *Blob) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("blobstore: ReadAt: negative offset")
	}
	// A read the final chunk's copy serves makes no request: it must
	// still fail once the Blob is closed or its context done.
	if err := context.Cause(b.ctx); err != nil {
		return 0, err
	}
	return b.content.ReadAt(p, off)
}

// Read reads the plaintext at the Blob's position and advances it.
func (b *Blob) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.sequence(len(p)); err != nil {
		return 0, err
	}
	if b.seq == nil {
		return 0, io.EOF
	}
	n, err := b.seq.Read(p)
	b.pos += int64(n)
	b.seqPos = b.pos
	return n, err
}

// WriteTo writes the plaintext from the Blob's position to the end to w,
// fetching at full speed from the start (io.Copy uses it).
func (b *Blob) WriteTo(w io.Writer) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.sequence(0); err != nil {
		return 0, err
	}
	if b.seq == nil {
		return 0, nil
	}
	n, err := b.seq.WriteTo(w)
	b.pos += n
	b.seqPos = b.pos
	return n, err
}

// sequence makes b.seq a sequential reader at b.pos, or nil at the end.
// first is the size of the read about to be made (0: to the end).
func (b *Blob) sequence(first int) error {
	if err := context.Cause(b.ctx); err != nil {
		return err
	}
	if b.seq != nil && b.seqPos == b.pos {
		return nil
	}
	if b.seq != nil {
		b.seq.Close()
		b.seq = nil
	}
	if b.pos >= b.props.Size {
		return nil
	}
	seq, err := b.content.reader(b.pos, b.props.Size, first)
	if err != nil {
		return err
	}
	b.seq, b.seqPos = seq, b.pos
	return nil
}

// Seek sets the position of the next Read, as io.Seeker. Seeking costs
// nothing; the next Read fetches from the new position.
func (b *Blob) Seek(offset int64, whence int) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errBlobClosed
	}
	var pos int64
	switch whence {
	case io.SeekStart:
		pos = offset
	case io.SeekCurrent:
		pos = b.pos + offset
	case io.SeekEnd:
		pos = b.props.Size + offset
	default:
		return 0, errors.New("blobstore: Seek: invalid whence")
	}
	if pos < 0 {
		return 0, errors.New("blobstore: Seek: negative position")
	}
	b.pos = pos
	return pos, nil
}

// Close stops the Blob's requests and goroutines and releases its buffers.
// Reads after Close fail. Close is safe to call more than once.
func (b *Blob) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.cancel(errBlobClosed)
	if b.seq != nil {
		b.seq.Close()
		b.seq = nil
	}
	return nil
}

// blobBody is the io.ReadCloser of a DownloadResponse: a sequential reader
// whose Close closes the Blob too.
type blobBody struct {
	seqSource
	blob *Blob
}

func (d *blobBody) Close() error {
	d.seqSource.Close()
	return d.blob.Close()
}
