package stream

import (
	"fmt"
	"io"
	"io/fs"
	"runtime"
)

// errWriterClosed is returned by Write and Close after a successful Close.
var errWriterClosed = fmt.Errorf("stream: Writer is closed: %w", fs.ErrClosed)

// NewWriter returns a WriteCloser that encrypts what is written to it and
// writes the stream to dst. key must be KeySize (32) bytes of uniformly
// random key material used for this one stream (see the package
// documentation); the Writer keeps no reference to it. opts may be nil.
//
// Writes are buffered into chunks: the stream is complete only after Close,
// which seals the final chunk (also for an empty plaintext) and writes it.
// Close does not close dst. After Close, or after any error (from dst,
// or ErrTooLarge), Write and Close return that error.
//
// With opts.Concurrency > 1, chunks are sealed by that many goroutines
// (and by the goroutine calling Write or Close, while it waits for them)
// and written to dst in order, from the goroutine calling Write or Close.
// Write does not keep p after it returns. The goroutines exit on error or
// on Close, which returns only once they have; call Close also after an
// error. A Writer abandoned without Close keeps them until the garbage
// collector finds it unreachable.
//
// Buffers take at most 2 × ChunkSize × (Concurrency + 2) bytes (counting a
// Concurrency of 1 as 0) whatever the length of the stream.
//
// The returned WriteCloser also implements io.ReaderFrom, which io.Copy
// uses to read straight into chunk buffers. It is not safe for concurrent
// use.
//
// Copies are avoided where the other side allows. A Write of more than a
// chunk seals its full chunks straight from p (so io.Copy from a
// *bytes.Reader, which hands over all its bytes in one Write, copies no
// plaintext). If dst has an AvailableBuffer method, as *bufio.Writer and
// *bytes.Buffer do, chunks sealed in the calling goroutine go straight into
// the buffer it returns when that has room for the whole sealed chunk, and
// are then passed to Write, which must accept its own buffer (those types
// do); otherwise they are sealed into the Writer's buffer and copied by
// Write.
func NewWriter(dst io.Writer, key []byte, opts *Options) (io.WriteCloser, error) {
	cfg, err := newConfig(key, opts)
	if err != nil {
		return nil, err
	}
	w := &writer{cfg: cfg, dst: dst, nslots: 1}
	w.lender, _ = dst.(bufferLender)
	if cfg.concurrency > 1 {
		// Concurrency chunks being sealed, one being filled and one read
		// ahead by ReadFrom.
		w.nslots = cfg.concurrency + 2
		w.pool = newWorkers(cfg.concurrency, w.nslots)
		w.inflight = newQueue(w.nslots)
	} else {
		w.nslots = 2 // one being filled, one read ahead by ReadFrom
	}
	h := &writerHandle{w}
	if w.pool != nil {
		runtime.AddCleanup(h, (*workers).stop, w.pool)
	}
	return h, nil
}

// writerHandle is what NewWriter returns; when it becomes unreachable the
// cleanup stops the worker goroutines, which only reference the writer's
// chunks. Its methods keep it alive until they return, so that the cleanup
// cannot run during a call.
type writerHandle struct{ w *writer }

func (h *writerHandle) Write(p []byte) (int, error) {
	defer runtime.KeepAlive(h)
	return h.w.Write(p)
}

func (h *writerHandle) ReadFrom(src io.Reader) (int64, error) {
	defer runtime.KeepAlive(h)
	return h.w.ReadFrom(src)
}

func (h *writerHandle) Close() error {
	defer runtime.KeepAlive(h)
	return h.w.Close()
}

// bufferLender is a destination that lends the room in its buffer
// (bufio.Writer.AvailableBuffer, bytes.Buffer.AvailableBuffer): an empty
// slice to append to and pass to the next Write.
type bufferLender interface {
	AvailableBuffer() []byte
}

type writer struct {
	cfg    *config
	dst    io.Writer
	lender bufferLender // dst, if it lends its buffer; else nil
	pool   *workers     // nil: seal in the calling goroutine
	nslots int          // chunks this writer may allocate
	nalloc int
	free   []*chunk
	// inflight holds submitted chunks in stream order, in parallel mode.
	inflight queue

	// pending holds plaintext not yet sealed, pending.pt[:pendingLen]. It is
	// sealed only once more data arrives (then it is not final) or at Close
	// (then it is), so a plaintext that is a positive multiple of the chunk
	// size ends with a full final chunk, and only the empty plaintext has an
	// empty one.
	pending    *chunk
	pendingLen int

	index uint64 // index of the next chunk to seal
	err   error
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	total := len(p)
	borrowed := false
	cs := w.cfg.chunkSize
	for len(p) > 0 && w.err == nil {
		switch {
		case w.pendingLen == cs:
			// More data follows, so the pending chunk is not the last.
			w.submit(w.pending, w.pending.pt, false)
			w.pending, w.pendingLen = nil, 0
		case w.pending == nil && len(p) > cs:
			// A full chunk followed by more data: seal it straight from p.
			c := w.get()
			if c == nil {
				break
			}
			w.submit(c, p[:cs], false)
			borrowed = true
			p = p[cs:]
		default:
			if !w.startPending() {
				break
			}
			n := copy(w.pending.pt[w.pendingLen:], p)
			w.pendingLen += n
			p = p[n:]
		}
	}
	if borrowed {
		// Workers must be done with p before Write returns.
		w.drain()
	}
	if w.err != nil {
		return 0, w.err
	}
	return total, nil
}

// ReadFrom reads src until io.EOF into chunk buffers, sealing and writing
// chunks as they fill. It returns the number of bytes read.
func (w *writer) ReadFrom(src io.Reader) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	var total int64
	cs := w.cfg.chunkSize
	for w.err == nil {
		if !w.startPending() {
			break
		}
		if w.pendingLen < cs {
			n, err := src.Read(w.pending.pt[w.pendingLen:])
			w.pendingLen += n
			total += int64(n)
			if err == io.EOF {
				return total, nil
			}
			if err != nil {
				return total, err
			}
			continue
		}
		// The pending chunk is full: it is final unless src has more. Read
		// ahead into a second chunk to find out.
		next := w.get()
		if next == nil {
			break
		}
		if next.pt == nil {
			next.pt = make([]byte, cs)
		}
		n, err := src.Read(next.pt)
		total += int64(n)
		if n > 0 {
			w.submit(w.pending, w.pending.pt, false)
			w.pending, w.pendingLen = next, n
		} else {
			w.free = append(w.free, next)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
	return total, w.err
}

// Close seals and writes the final chunk, waits for every chunk to be
// written and stops the workers, waiting for them to exit. It does not
// close dst.
func (w *writer) Close() error {
	if w.err == nil && w.startPending() {
		w.submit(w.pending, w.pending.pt[:w.pendingLen], true)
		w.pending, w.pendingLen = nil, 0
		w.drain()
	}
	if w.pool != nil {
		// Also after an error, which stopped the workers without waiting.
		w.pool.close()
	}
	if w.err != nil {
		return w.err
	}
	w.err = errWriterClosed
	w.free = nil // let the buffers go even if the Writer is kept
	return nil
}

// startPending makes sure there is a pending chunk with a plaintext buffer.
func (w *writer) startPending() bool {
	if w.pending != nil {
		return true
	}
	c := w.get()
	if c == nil {
		return false
	}
	if c.pt == nil {
		c.pt = make([]byte, w.cfg.chunkSize)
	}
	w.pending, w.pendingLen = c, 0
	return true
}

// get returns an idle chunk: a free one, a new one if the budget allows, or
// the oldest in flight once it is written. It returns nil if that write
// fails.
func (w *writer) get() *chunk {
	if n := len(w.free); n > 0 {
		c := w.free[n-1]
		w.free = w.free[:n-1]
		return c
	}
	if w.nalloc < w.nslots {
		w.nalloc++
		// The plaintext buffer is allocated only if the chunk is ever
		// filled: chunks sealed straight from Write's argument need none.
		return newChunk(w.cfg, false)
	}
	c := w.inflight.pop()
	w.finish(c)
	if w.err != nil {
		w.free = append(w.free, c)
		return nil
	}
	return c
}

// submit seals c.in = in as the next chunk. In parallel mode a worker seals
// it and finish writes it later; otherwise both happen now.
func (w *writer) submit(c *chunk, in []byte, final bool) {
	if !final && w.index+1 >= MaxChunks {
		// The final chunk must still get an index below MaxChunks.
		w.fail(ErrTooLarge)
		w.free = append(w.free, c)
		return
	}
	c.index, c.in, c.final, c.seal = w.index, in, final, true
	w.index++
	if w.pool == nil {
		c.sealInto(w.sealBuffer(c))
		c.in = nil
		w.write(c.out)
		c.out = nil
		w.free = append(w.free, c)
		return
	}
	w.inflight.push(c)
	w.pool.submit(c)
}

// sealBuffer returns where to seal c in the calling goroutine: in the room
// dst lends, if it holds the whole sealed chunk and none of the plaintext
// (which may be the caller's), so that dst need not copy it; else in c's
// own buffer.
func (w *writer) sealBuffer(c *chunk) []byte {
	if w.lender != nil {
		b := w.lender.AvailableBuffer()
		if cap(b) >= len(c.in)+w.cfg.overhead && !anyOverlap(b[:cap(b)], c.in) {
			return b[:0]
		}
	}
	return c.ct[:0]
}

// finish waits for the worker to seal c and writes it, unless an earlier
// chunk failed.
func (w *writer) finish(c *chunk) {
	w.pool.wait(c)
	c.in = nil
	if w.err == nil {
		w.write(c.out)
	}
	c.out = nil
}

// drain writes every chunk in flight, or after an error waits for them.
func (w *writer) drain() {
	for w.inflight.len() > 0 {
		c := w.inflight.pop()
		w.finish(c)
		w.free = append(w.free, c)
	}
}

func (w *writer) write(b []byte) {
	n, err := w.dst.Write(b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.fail(err)
	}
}

func (w *writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
	if w.pool != nil {
		w.pool.stop()
	}
}
