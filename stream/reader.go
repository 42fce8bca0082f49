package stream

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"runtime"
)

// errReaderClosed is returned by Read after Close.
var errReaderClosed = fmt.Errorf("stream: Reader is closed: %w", fs.ErrClosed)

// A Reader decrypts a stream, returning the plaintext of each chunk only
// after the chunk authenticates. NewReader makes one.
//
// With Options.Concurrency > 1 a Reader opens chunks on goroutines of its
// own. They exit at io.EOF, at the first error, or on Close, which does not
// return before they have: call Close (a defer right after NewReader) on
// every Reader not read to the end. A Reader abandoned without Close keeps
// its goroutines and buffers until the garbage collector finds it
// unreachable, which may be never in a program that allocates little.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	r *reader
}

// NewReader returns a Reader that decrypts the stream read from src. key
// and opts (ChunkSize, AAD, Suite) must be those the stream was written
// with; opts.Concurrency may differ. The Reader keeps no reference to key:
// the caller may overwrite it once NewReader returns.
//
// The Reader returns the bytes of a chunk only after the chunk
// authenticates, and io.EOF only after the final chunk authenticates and
// src is exhausted. A stream that was modified, reordered, cut short or
// extended fails with a *ChunkError wrapping ErrAuthentication,
// ErrTruncated, ErrTrailingData or ErrTooLarge; errors from src are returned
// as they are. Everything returned before the error is authentic plaintext,
// but the stream as a whole is not: callers that act on the plaintext
// before reading to io.EOF must be prepared to undo it.
//
// To know which chunk is the last, the Reader reads one byte past each
// full-size chunk before opening it, so it reads from src up to a chunk
// ahead of what it returns. With opts.Concurrency > 1 it reads up to
// Concurrency chunks ahead and opens them on that many goroutines (and on
// the calling goroutine while it waits for them). Buffers take at most
// 2 × ChunkSize × (Concurrency + 1) bytes (2 × ChunkSize without
// Concurrency) whatever the length of the stream.
func NewReader(src io.Reader, key []byte, opts *Options) (*Reader, error) {
	cfg, err := newConfig(key, opts)
	if err != nil {
		return nil, err
	}
	r := &reader{cfg: cfg, src: src}
	n := 1
	if cfg.concurrency > 1 {
		// Concurrency chunks being opened, one being returned.
		n = cfg.concurrency + 1
		r.pool = newWorkers(cfg.concurrency, n)
	}
	r.nslots = n
	r.ready = newQueue(n)
	h := &Reader{r}
	if r.pool != nil {
		// A backstop for a Reader abandoned without Close. The workers
		// reference only the chunks, never the Reader, so it can become
		// unreachable while they run; the methods keep it alive for the
		// length of each call.
		runtime.AddCleanup(h, (*workers).stop, r.pool)
	}
	return h, nil
}

// Read reads up to len(p) bytes of authenticated plaintext into p. It
// returns io.EOF only at the authenticated end of the stream, and an error
// after Close.
func (h *Reader) Read(p []byte) (int, error) {
	defer runtime.KeepAlive(h)
	return h.r.Read(p)
}

// WriteTo writes the plaintext to dst until the end of the stream or an
// error, straight from the chunk buffers. io.Copy uses it. If src is a
// *bytes.Reader or *bytes.Buffer that nothing has been read from yet, the
// chunks are opened where they lie in its memory instead of being copied
// out first.
func (h *Reader) WriteTo(dst io.Writer) (int64, error) {
	defer runtime.KeepAlive(h)
	return h.r.WriteTo(dst)
}

// Close stops the Reader's goroutines, waiting for them to exit, and
// releases its buffers. Read and WriteTo fail afterwards. Close is safe to
// call more than once and always returns nil.
func (h *Reader) Close() error {
	defer runtime.KeepAlive(h)
	return h.r.Close()
}

// reader is the state of a Reader.
type reader struct {
	cfg    *config
	src    io.Reader
	pool   *workers // nil: open in the calling goroutine
	nslots int
	nalloc int
	free   []*chunk
	ready  queue // chunks read from src, in stream order, opened or being opened

	cur    *chunk // the chunk being returned, cur.out[off:] unread
	off    int
	index  uint64 // index of the next chunk to read from src
	srcEnd bool   // the final chunk (or an error) has been read from src

	peek    [1]byte // the byte read past a full chunk to see if it was the last
	hasPeek bool

	// direct, if set, is where fill opens the next chunk instead of the
	// chunk's own buffer (Read with a large p, without workers).
	direct []byte

	err error // returned once cur is consumed: io.EOF or the failure
}

func (r *reader) Read(p []byte) (int, error) {
	if r.pool == nil && len(p) >= r.cfg.chunkSize && r.err == nil && (r.cur == nil || r.off == len(r.cur.out)) {
		// p can hold a whole chunk: open it straight into p, saving a copy.
		// On failure Open clears what it wrote and n is 0.
		r.direct = p[:0:r.cfg.chunkSize]
		r.advance()
		r.direct = nil
		if r.cur == nil {
			return 0, r.err
		}
		n := len(r.cur.out)
		r.cur.out, r.off = r.cur.out[:0], 0 // the bytes are the caller's now
		if n == 0 && r.err != nil {
			return 0, r.err
		}
		return n, nil
	}
	for {
		if r.cur != nil && r.off < len(r.cur.out) {
			n := copy(p, r.cur.out[r.off:])
			r.off += n
			return n, nil
		}
		if r.err != nil {
			return 0, r.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		r.advance()
	}
}

func (r *reader) WriteTo(dst io.Writer) (int64, error) {
	if r.cur == nil && r.index == 0 && r.err == nil {
		// Sources that hold the whole stream in memory hand it over
		// through their WriteTo: open the chunks where they are instead of
		// copying them out first.
		switch src := r.src.(type) {
		case *bytes.Reader:
			return r.writeToFromMemory(src, dst)
		case *bytes.Buffer:
			return r.writeToFromMemory(src, dst)
		}
	}
	var total int64
	for {
		if r.cur != nil && r.off < len(r.cur.out) {
			n, err := dst.Write(r.cur.out[r.off:])
			r.off += n
			total += int64(n)
			if err == nil && r.off < len(r.cur.out) {
				err = io.ErrShortWrite
			}
			if err != nil {
				return total, err
			}
			continue
		}
		if r.err == io.EOF {
			return total, nil
		}
		if r.err != nil {
			return total, r.err
		}
		r.advance()
	}
}

func (r *reader) Close() error {
	r.stop(errReaderClosed)
	r.cur = nil
	return nil
}

// advance makes cur the next authenticated chunk, or sets r.err.
func (r *reader) advance() {
	if r.cur != nil {
		r.cur.out = nil
		r.free = append(r.free, r.cur)
		r.cur = nil
	}
	r.fill()
	c := r.ready.pop() // fill leaves at least one: srcEnd is set only with one queued
	if r.pool != nil {
		r.pool.wait(c)
	}
	if c.err != nil {
		r.stop(c.err)
		return
	}
	r.cur, r.off = c, 0
	if c.final {
		// The Reader returns io.EOF once this chunk is consumed.
		r.stop(io.EOF)
	}
}

// stop records the error Read returns once the current chunk is consumed
// and lets the workers go.
func (r *reader) stop(err error) {
	if r.err == nil || r.err == io.EOF {
		r.err = err
	}
	r.srcEnd = true
	if r.pool != nil {
		// Let the workers finish the chunks still being opened and exit,
		// so that no goroutine outlives the error (or Close).
		for r.ready.len() > 0 {
			r.pool.wait(r.ready.pop())
		}
		r.pool.close()
	}
	r.free = nil
}

// fill reads chunks from src into idle buffers until they run out or the
// stream ends, and has them opened.
func (r *reader) fill() {
	for !r.srcEnd {
		c := r.idle()
		if c == nil {
			return
		}
		r.readChunk(c)
		r.ready.push(c)
		switch {
		case c.err != nil:
			r.srcEnd = true
			if r.pool != nil {
				c.done <- struct{}{}
			}
		case r.pool != nil:
			r.pool.submit(c)
		case r.direct != nil:
			c.open(r.direct)
		default:
			c.run()
		}
	}
}

// idle returns a free chunk, or a new one while fewer than nslots exist,
// or nil.
func (r *reader) idle() *chunk {
	if n := len(r.free); n > 0 {
		c := r.free[n-1]
		r.free = r.free[:n-1]
		return c
	}
	if r.nalloc < r.nslots {
		r.nalloc++
		return newChunk(r.cfg, true)
	}
	return nil
}

// readChunk reads the next chunk's ciphertext into c.in and decides whether
// it is the final chunk: it is if it is shorter than a full chunk, or if src
// ends right after it.
func (r *reader) readChunk(c *chunk) {
	c.index, c.seal, c.err, c.out = r.index, false, nil, nil
	r.index++
	if c.index >= MaxChunks {
		c.err = &ChunkError{Index: c.index, Err: ErrTooLarge}
		return
	}
	buf := c.ct[:r.cfg.encChunkSize()]
	n := 0
	if r.hasPeek {
		buf[0] = r.peek[0]
		n, r.hasPeek = 1, false
	}
	m, err := io.ReadFull(r.src, buf[n:])
	n += m
	switch err {
	case nil:
		c.full = true
		switch _, err := io.ReadFull(r.src, r.peek[:]); err {
		case nil:
			r.hasPeek = true
			c.final = false
		case io.EOF:
			c.final = true
		default:
			c.err = err
			return
		}
	case io.EOF, io.ErrUnexpectedEOF:
		c.full, c.final = false, true
	default:
		c.err = err
		return
	}
	if c.final {
		r.srcEnd = true
	}
	if c.err = r.cfg.lastChunkError(n, c.index); c.err == nil {
		c.in = buf[:n]
	}
}

// lastChunkError returns the error for chunk index of n bytes on the wire
// if no Writer produces such a chunk, or nil. Only a final chunk can be
// short enough to fail it; readChunk and memOpener.finish share it.
func (c *config) lastChunkError(n int, index uint64) error {
	switch {
	case n < c.overhead:
		// Nothing (at the start of the stream) or less than a nonce and a
		// tag: the rest of the stream is missing.
		return &ChunkError{Index: index, Err: ErrTruncated}
	case n == c.overhead && index > 0:
		// Only the first chunk may be empty; a Writer never produces an
		// empty final chunk after a full one.
		return &ChunkError{Index: index, Err: ErrAuthentication}
	}
	return nil
}

// writeToFromMemory decrypts the whole stream, pushed by src.WriteTo into a
// memOpener, to dst.
func (r *reader) writeToFromMemory(src io.WriterTo, dst io.Writer) (int64, error) {
	m := &memOpener{r: r, dst: dst}
	_, err := src.WriteTo(m)
	if m.err == nil && err == nil {
		m.finish()
	}
	switch {
	case m.err != nil:
		err = m.err
	case err == nil:
		r.stop(io.EOF)
		return m.n, nil
	}
	r.stop(err)
	return m.n, err
}

// memOpener opens the chunks of a stream written to it straight from the
// caller's buffer, on the reader's workers if it has any, and writes the
// plaintext to dst in order. It applies the rules of readChunk: a full
// chunk is final only if nothing follows it, so the last full chunk of each
// Write is carried (copied) until the next Write or finish.
type memOpener struct {
	r      *reader
	carry  *chunk // carry.ct[:carryN] holds the bytes carried between Writes
	carryN int
	dst    io.Writer
	n      int64 // plaintext bytes written to dst
	err    error
}

func (m *memOpener) Write(b []byte) (int, error) {
	total := len(b)
	full := m.r.cfg.encChunkSize()
	for m.err == nil && len(b) > 0 {
		switch {
		case m.carryN > 0:
			k := copy(m.carry.ct[m.carryN:full], b)
			m.carryN += k
			b = b[k:]
			if m.carryN == full && len(b) > 0 {
				c := m.carry
				m.carry, m.carryN = nil, 0
				m.submit(c, c.ct[:full], false)
			}
		case len(b) > full:
			// A full chunk and more: open it where it is, into the
			// plaintext buffer of an idle chunk.
			c := m.carry
			m.carry = nil
			if c == nil {
				if c = m.get(); c == nil {
					break
				}
			}
			m.submit(c, b[:full], false)
			b = b[full:]
		default:
			if m.carry == nil {
				if m.carry = m.get(); m.carry == nil {
					break
				}
			}
			m.carryN = copy(m.carry.ct, b)
			b = nil
		}
	}
	// Workers must be done with b before Write returns.
	m.drain()
	if m.err != nil {
		return 0, m.err
	}
	return total, nil
}

// finish opens the carried bytes as the final chunk.
func (m *memOpener) finish() {
	n := m.carryN
	if m.err = m.r.cfg.lastChunkError(n, m.r.index); m.err == nil {
		c := m.carry
		m.carry, m.carryN = nil, 0
		m.submit(c, c.ct[:n], true)
		m.drain()
	}
}

// get returns an idle chunk, once the oldest in flight is written if need
// be, or nil after an error.
func (m *memOpener) get() *chunk {
	r := m.r
	if c := r.idle(); c != nil {
		return c
	}
	c := r.ready.pop()
	r.pool.wait(c)
	m.emit(c)
	if m.err != nil {
		r.free = append(r.free, c)
		return nil
	}
	return c
}

// submit opens in as the next chunk with c's plaintext buffer: now, or on a
// worker and written by get or drain.
func (m *memOpener) submit(c *chunk, in []byte, final bool) {
	c.index, c.seal, c.err, c.out = m.r.index, false, nil, nil
	m.r.index++
	c.in, c.final, c.full = in, final, len(in) == m.r.cfg.encChunkSize()
	if c.index >= MaxChunks {
		c.err = &ChunkError{Index: c.index, Err: ErrTooLarge}
		m.emit(c)
		m.r.free = append(m.r.free, c)
		return
	}
	if m.r.pool == nil {
		c.run()
		m.emit(c)
		m.r.free = append(m.r.free, c)
		return
	}
	m.r.ready.push(c)
	m.r.pool.submit(c)
}

// drain waits for every chunk in flight and writes them in order.
func (m *memOpener) drain() {
	for m.r.ready.len() > 0 {
		c := m.r.ready.pop()
		m.r.pool.wait(c)
		m.emit(c)
		m.r.free = append(m.r.free, c)
	}
}

// emit writes c's plaintext to dst, unless c or an earlier chunk failed.
func (m *memOpener) emit(c *chunk) {
	c.in = nil
	if m.err != nil {
		return
	}
	if c.err != nil {
		m.err = c.err
		return
	}
	k, err := m.dst.Write(c.out)
	m.n += int64(k)
	if err == nil && k < len(c.out) {
		err = io.ErrShortWrite
	}
	m.err = err
	c.out = nil
}
