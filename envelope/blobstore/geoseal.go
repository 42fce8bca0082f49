package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
	"golang.org/x/sync/errgroup"
)

// Reading a geoseal object: open plans from the blob's metadata (or, for a
// blob without it, from its header) where the header and the final chunk
// lie, fetches both, unlocks the header with the keyring (commitment, tag,
// required context) and authenticates the final chunk. The body's chunks
// are then fetched as reads need them, always conditional on the ETag.

// layout is where the parts of a geoseal object lie in its blob.
type layout struct {
	headerLen int64 // the body starts here
	chunk     int64 // plaintext bytes of a full chunk
	enc       int64 // encrypted bytes of a full chunk
	chunks    int64 // chunks, the final one included (at least 1)
	size      int64 // plaintext size
	bodySize  int64 // encrypted body size
}

// newLayout computes the layout of a blob of total bytes whose header is
// headerLen bytes, with the given chunk size and suite.
func newLayout(headerLen, chunkSize int, suite stream.Suite, total int64) (layout, error) {
	hl := int64(headerLen)
	if total < hl {
		return layout{}, fmt.Errorf("%w: a header of %d bytes in a blob of %d", format.ErrBodyTampered, hl, total)
	}
	opts := &stream.Options{ChunkSize: chunkSize, Suite: suite}
	size, err := stream.PlaintextSize(total-hl, opts)
	if err != nil {
		return layout{}, format.BodyError(err)
	}
	l := layout{
		headerLen: hl,
		chunk:     int64(chunkSize),
		enc:       stream.EncryptedSize(int64(chunkSize), opts),
		size:      size,
		bodySize:  total - hl,
	}
	l.chunks = max(ceilDiv(size, l.chunk), 1)
	return l, nil
}

// finalOff is the body offset of the final chunk.
func (l layout) finalOff() int64 { return (l.chunks - 1) * l.enc }

// geosealContent reads the plaintext of an opened geoseal object.
type geosealContent struct {
	lay     layout
	src     *bodySource
	ra      *stream.ReaderAt
	t       transferSettings
	buffers *bufferPool // the Client's, for the ciphertext of fetches
	// messageID is the object's, from its authenticated header.
	messageID [format.MessageIDSize]byte
}

// openGeoseal opens the geoseal object in the blob whose state is st:
// read the header and the final chunk, unlock, authenticate.
func (c *Client) openGeoseal(ctx context.Context, b *blob.Client, st blobState, require keyring.Context, t transferSettings, props *Properties) (*geosealContent, error) {
	e := c.opened.get(b.URL(), st.etag)
	cached := e != nil
	if !cached {
		var err error
		if e, err = readHeaderAndFinal(ctx, b, st); err != nil {
			return nil, err
		}
	}
	h, body, err := format.Unlock(ctx, e.header, c.keyring, &format.UnlockOptions{RequireContext: require, MaxWrappedKeys: c.opts.MaxWrappedKeys})
	if err != nil {
		return nil, err
	}
	defer body.Zero()
	if plan := e.plan; h.ChunkSize != plan.chunkSize || h.Size != plan.headerLength || h.Suite != plan.suite {
		return nil, fmt.Errorf("%w: header length %d, chunk size %d, suite %v recorded; the header has %d, %d, %v",
			ErrInvalidMetadata, plan.headerLength, plan.chunkSize, plan.suite, h.Size, h.ChunkSize, h.Suite)
	}
	src := &bodySource{ctx: ctx, b: b, etag: st.etag, finalOff: e.lay.finalOff(), final: e.final}
	ra, err := stream.NewReaderAt(src, e.lay.bodySize, body.Key, &body.Options)
	if err != nil {
		return nil, format.BodyError(err)
	}
	if !cached {
		c.opened.put(e)
	}
	props.Size = ra.Size()
	props.Context = h.Context
	props.WrappedKeys = h.WrappedKeys
	return &geosealContent{lay: e.lay, src: src, ra: ra, t: t, buffers: &c.buffers, messageID: h.MessageID}, nil
}

// readHeaderAndFinal fetches the header and the final chunk of the blob,
// planning from its metadata (checked against its size), or, without
// metadata, from the header itself. The entry it returns, for the open
// cache, has the plan it followed, for the caller to check against the
// authenticated header.
func readHeaderAndFinal(ctx context.Context, b *blob.Client, st blobState) (*openEntry, error) {
	var header []byte
	m, hasMeta, err := parseObjectMetadata(st.metadata)
	if err != nil {
		return nil, err
	}
	if !hasMeta {
		if header, err = probeHeader(ctx, b, st); err != nil {
			return nil, err
		}
		h, err := format.Parse(header)
		if err != nil {
			return nil, err
		}
		m = objectMetadata{headerLength: len(header), chunkSize: h.ChunkSize, suite: h.Suite}
	}
	lay, err := newLayout(m.headerLength, m.chunkSize, m.suite, st.size)
	if err != nil {
		if hasMeta {
			err = fmt.Errorf("%w: %w", ErrInvalidMetadata, err)
		}
		return nil, err
	}
	if hasMeta && m.plaintextSize != lay.size {
		return nil, fmt.Errorf("%w: plaintext size %d recorded for a blob of %d bytes", ErrInvalidMetadata, m.plaintextSize, st.size)
	}
	final := make([]byte, lay.bodySize-lay.finalOff())
	switch {
	case header != nil:
		err = getRange(ctx, b, st.etag, final, lay.headerLen+lay.finalOff())
	case lay.chunks == 1:
		// Header and final chunk are the whole blob: one GET.
		all := make([]byte, st.size)
		err = getRange(ctx, b, st.etag, all, 0)
		header, final = all[:lay.headerLen:lay.headerLen], all[lay.headerLen:]
	default:
		header = make([]byte, lay.headerLen)
		var g errgroup.Group
		g.Go(func() error { return getRange(ctx, b, st.etag, header, 0) })
		g.Go(func() error { return getRange(ctx, b, st.etag, final, lay.headerLen+lay.finalOff()) })
		err = g.Wait()
	}
	if err != nil {
		return nil, err
	}
	if hasMeta {
		if n, err := format.HeaderLength(header); err != nil {
			return nil, err
		} else if int64(n) != lay.headerLen {
			return nil, fmt.Errorf("%w: header length %d recorded; the header says %d", ErrInvalidMetadata, lay.headerLen, n)
		}
	}
	return &openEntry{name: b.URL(), etag: st.etag, header: header, final: final, plan: m, lay: lay}, nil
}

// headerProbe is how much of a blob without geoseal metadata the first
// GET reads to find its header: enough for the header of an object
// wrapped for a few recipients.
const headerProbe = 4 << 10

// probeHeader reads the header of a blob that has no geoseal metadata (an
// object copied in by other means, or not an object at all).
func probeHeader(ctx context.Context, b *blob.Client, st blobState) ([]byte, error) {
	if st.size == 0 {
		return nil, fmt.Errorf("%w: the blob is empty", format.ErrNotGeoseal)
	}
	prefix := make([]byte, min(st.size, headerProbe))
	if err := getRange(ctx, b, st.etag, prefix, 0); err != nil {
		return nil, err
	}
	// The rest is what a walk does with the head it read.
	h := &blobHead{data: prefix, etag: st.etag, size: st.size}
	return h.header(ctx, b)
}

// A piece is a run of whole chunks a read fetches in one ranged GET, and
// the plaintext [lo, hi) it wants of them.
type piece struct {
	lo, hi int64
	err    error
}

// pieces splits the plaintext range [off, end) (0 <= off < end <= size)
// into the pieces a ReadAt fetches: runs of at most perPiece chunks, in
// order, the final chunk left out (open holds it).
func (l layout) pieces(off, end, perPiece int64) []*piece {
	first, last := off/l.chunk, min((end-1)/l.chunk, l.chunks-2)
	var ps []*piece
	for c := first; c <= last; c += perPiece {
		cl := min(c+perPiece-1, last)
		ps = append(ps, &piece{lo: max(off, c*l.chunk), hi: min(end, (cl+1)*l.chunk)})
	}
	return ps
}

// span returns where the ciphertext of the chunks holding plaintext
// [lo, hi) lies in the body: its offset and length.
func (l layout) span(lo, hi int64) (off, n int64) {
	c, cl := lo/l.chunk, (hi-1)/l.chunk
	return c * l.enc, (cl - c + 1) * l.enc
}

// chunksPerFetch is how many whole chunks a ranged GET of at most
// RangeSize holds (at least one).
func (g *geosealContent) chunksPerFetch() int64 { return max(g.t.rangeSize/g.lay.enc, 1) }

// ReadAt reads plaintext at off: the chunks of the range, in pieces of at
// most RangeSize fetched and opened in parallel (Concurrency at a time),
// and the final chunk from the copy open fetched.
func (g *geosealContent) ReadAt(p []byte, off int64) (int, error) {
	l := g.lay
	if off >= l.size {
		if off == l.size && len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), l.size)
	pieces := l.pieces(off, end, g.chunksPerFetch())
	read := func(ctx context.Context, pc *piece) error {
		bodyOff, n := l.span(pc.lo, pc.hi)
		ct := g.buffers.get(int(n))
		defer g.buffers.put(ct)
		if err := getRange(ctx, g.src.b, g.src.etag, ct, l.headerLen+bodyOff); err != nil {
			return err
		}
		_, err := g.ra.OpenAt(p[pc.lo-off:pc.hi-off], pc.lo, ct)
		return err
	}
	ctx := g.src.ctx // what the fetches run under
	if len(pieces) == 1 {
		pieces[0].err = read(ctx, pieces[0])
	} else if len(pieces) > 1 {
		var eg *errgroup.Group
		eg, ctx = errgroup.WithContext(ctx)
		eg.SetLimit(g.t.concurrency)
		for _, pc := range pieces {
			eg.Go(func() error {
				pc.err = read(ctx, pc)
				return pc.err
			})
		}
		eg.Wait()
	}
	for _, pc := range pieces {
		if pc.err != nil {
			return int(pc.lo - off), g.src.explain(ctx, pc.err)
		}
	}
	if finalStart := (l.chunks - 1) * l.chunk; end > finalStart {
		lo := max(off, finalStart)
		if n, err := g.ra.ReadAt(p[lo-off:end-off], lo); err != nil && (err != io.EOF || lo+int64(n) != end) {
			return int(lo-off) + n, g.src.explain(g.src.ctx, err)
		}
	}
	if n := int(end - off); n < len(p) {
		return n, io.EOF
	}
	return len(p), nil
}

// explain turns an error of a fetch or of the stream into the read's
// error: the context's cause when the Blob was closed or cancelled; for a
// fetch cancelled because other work under ctx (the read's errgroup)
// failed first, that failure; else a fetch's own error, or a failure of
// the body's authentication.
func (s *bodySource) explain(ctx context.Context, err error) error {
	if cause := context.Cause(s.ctx); cause != nil {
		return cause
	}
	if errors.Is(err, context.Canceled) {
		if cause := context.Cause(ctx); cause != nil {
			err = cause
		}
	}
	return format.BodyError(err)
}

// A bodySource is the io.ReaderAt of an object's body that the
// stream.ReaderAt reads the final chunk from: it holds that chunk, which
// open fetched, and the blob's requests use its context, client and ETag.
// The reads hand every other chunk to the ReaderAt with the ciphertext they
// fetched (OpenAt), so it never reads them from here: a read before the
// final chunk is an internal error, not a GET per chunk.
type bodySource struct {
	ctx      context.Context
	b        *blob.Client
	etag     azcore.ETag
	finalOff int64 // body offset of the final chunk
	final    []byte
}

// errNotFinalChunk is what a bodySource returns for a read of a chunk it
// does not hold.
var errNotFinalChunk = errors.New("blobstore: internal error: a body chunk was read without its fetched ciphertext")

func (s *bodySource) ReadAt(p []byte, off int64) (int, error) {
	if off < s.finalOff {
		return 0, errNotFinalChunk
	}
	n := copy(p, s.final[min(off-s.finalOff, int64(len(s.final))):])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
