package stream

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// ReaderAt decrypts any range of a stream held in an io.ReaderAt, reading
// and authenticating only the chunks the range covers. It is safe for
// concurrent use if the underlying io.ReaderAt is.
type ReaderAt struct {
	cfg     *config
	src     io.ReaderAt
	size    int64  // plaintext size
	chunks  uint64 // number of chunks, final included
	lastEnc int    // encrypted size of the final chunk
	bufs    sync.Pool
}

// NewReaderAt returns a ReaderAt over the stream of size bytes (the
// encrypted size) in src. key and opts must be those the stream was written
// with; opts.Concurrency is ignored. The ReaderAt keeps no reference to
// key.
//
// NewReaderAt reads and authenticates the final chunk, so Size is the
// trusted plaintext size: a stream cut or extended at a chunk boundary, or a
// size that does not match the stream, fails here (ErrInvalidSize, or a
// *ChunkError wrapping ErrAuthentication or ErrTruncated). Chunks before the
// final one are authenticated by the ReadAt calls that cover them. Bytes of
// src past size are not read, so they are not detected: callers that need
// that must compare size with the object's length.
func NewReaderAt(src io.ReaderAt, size int64, key []byte, opts *Options) (*ReaderAt, error) {
	r, err := newReaderAt(src, size, key, opts)
	if err != nil {
		return nil, err
	}
	c := r.getChunk()
	defer r.bufs.Put(c)
	if _, err := r.openChunkInto(c, r.chunks-1, nil, nil); err != nil {
		return nil, err
	}
	clear(c.pt)
	return r, nil
}

// newReaderAt is NewReaderAt without opening the final chunk.
func newReaderAt(src io.ReaderAt, size int64, key []byte, opts *Options) (*ReaderAt, error) {
	cfg, err := newConfig(key, opts)
	if err != nil {
		return nil, err
	}
	pt, err := PlaintextSize(size, opts)
	if err != nil {
		return nil, err
	}
	chunks := chunkCount(pt, cfg.chunkSize)
	r := &ReaderAt{
		cfg:     cfg,
		src:     src,
		size:    pt,
		chunks:  uint64(chunks),
		lastEnc: int(size - (chunks-1)*int64(cfg.encChunkSize())),
	}
	r.bufs.New = func() any { return newChunk(cfg, true) }
	return r, nil
}

// Size returns the plaintext size of the stream, authenticated: NewReaderAt
// opened the final chunk.
func (r *ReaderAt) Size() int64 { return r.size }

// ReadAt reads len(p) bytes of plaintext starting at offset off, following
// the io.ReaderAt contract: it returns n < len(p) only with an error, which
// is io.EOF if the range runs past Size. A chunk that fails to authenticate
// returns a *ChunkError, and n counts only bytes of chunks before it, all
// authentic.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	return r.readAt(p, off, nil)
}

// OpenAt is ReadAt for a caller that has the ciphertext at hand already
// (fetched it for this read, say): it opens the chunks the range covers
// where they lie in ciphertext, without reading src or copying them.
// ciphertext holds the stream from the first byte of the chunk that holds
// off (chunk i at ciphertext[(i - off/ChunkSize) × (ChunkSize + overhead):],
// the final chunk shorter) and must hold every chunk the range covers,
// within Size; more is ignored. It must not change during the call, nor
// overlap p. Errors are those of ReadAt, and a descriptive one for a
// ciphertext that is too short.
func (r *ReaderAt) OpenAt(p []byte, off int64, ciphertext []byte) (int, error) {
	if anyOverlap(p, ciphertext) {
		return 0, errors.New("stream: OpenAt: p overlaps the ciphertext")
	}
	if ciphertext == nil {
		ciphertext = []byte{} // nil means: read from src
	}
	return r.readAt(p, off, ciphertext)
}

// readAt is ReadAt, and OpenAt when held is not nil: then the chunks are
// those in held, from the one that holds off.
func (r *ReaderAt) readAt(p []byte, off int64, held []byte) (int, error) {
	if off < 0 {
		return 0, errors.New("stream: ReadAt: negative offset")
	}
	if off >= r.size {
		if off == r.size && len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	end := off + int64(len(p))
	if end > r.size || end < off {
		end = r.size
	}
	cs := int64(r.cfg.chunkSize)
	c := r.getChunk()
	defer r.bufs.Put(c)
	n := 0
	for i := off / cs; n < int(end-off); i++ {
		start := off + int64(n) - i*cs // offset in the chunk's plaintext
		want := min(end-off-int64(n), cs-start)
		var dst []byte
		if start == 0 && want == cs {
			// The whole chunk is wanted: open it straight into p. On
			// failure Open clears what it wrote, and n excludes it.
			dst = p[n : n : n+int(cs)]
		}
		var ct []byte
		if held != nil {
			var err error
			if ct, err = r.heldChunk(held, off/cs, uint64(i)); err != nil {
				return n, err
			}
		}
		pt, err := r.openChunkInto(c, uint64(i), ct, dst)
		if err != nil {
			return n, err
		}
		if dst == nil {
			copy(p[n:], pt[start:start+want])
			clear(pt)
		}
		n += int(want)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// heldChunk returns chunk i from held, which starts with chunk first.
func (r *ReaderAt) heldChunk(held []byte, first int64, i uint64) ([]byte, error) {
	enc := int64(r.cfg.encChunkSize())
	lo := (int64(i) - first) * enc
	hi := lo + r.encLen(i)
	if hi > int64(len(held)) {
		return nil, fmt.Errorf("stream: OpenAt: %d bytes of ciphertext from chunk %d do not hold chunk %d", len(held), first, i)
	}
	return held[lo:hi], nil
}

// encLen is the encrypted size of chunk i.
func (r *ReaderAt) encLen(i uint64) int64 {
	if i == r.chunks-1 {
		return int64(r.lastEnc)
	}
	return int64(r.cfg.encChunkSize())
}

func (r *ReaderAt) getChunk() *chunk { return r.bufs.Get().(*chunk) }

// openChunkInto opens chunk i into dst, or into c.pt if dst is nil. Its
// ciphertext is ct, or, if ct is nil, read from src into c's buffer.
func (r *ReaderAt) openChunkInto(c *chunk, i uint64, ct, dst []byte) ([]byte, error) {
	if ct == nil {
		ct = c.ct[:r.encLen(i)]
		m, err := r.src.ReadAt(ct, int64(i)*int64(r.cfg.encChunkSize()))
		if m < len(ct) {
			if err == nil || err == io.EOF {
				// src is shorter than the size it was opened with.
				return nil, &ChunkError{Index: i, Err: ErrTruncated}
			}
			return nil, fmt.Errorf("stream: reading chunk %d: %w", i, err)
		}
	}
	c.index, c.final, c.in = i, i == r.chunks-1, ct
	c.full = len(ct) == r.cfg.encChunkSize()
	if dst == nil {
		dst = c.pt[:0]
	}
	c.open(dst)
	c.in = nil
	out, err := c.out, c.err
	c.out, c.err = nil, nil
	if err != nil {
		return nil, err
	}
	return out, nil
}
