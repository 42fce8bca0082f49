package blobstore

import (
	"context"
	"errors"
	"io"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// A seqReader reads the plaintext of [pos, end) of a geoseal object in
// order. Ranged GETs of whole chunks run ahead of the reader, in an
// errgroup that bounds them to Concurrency, and each makes its bytes
// available as they arrive: the reader opens a chunk (stream.ReaderAt) as
// soon as all of it is there, straight into the caller's buffer when the
// read covers whole chunks, while the fetches behind it keep streaming.
//
// Fetches ramp up: the first is sized to the first read (the chunks that
// hold it), each next one is twice the previous up to RangeSize, and one
// more may be in flight each time a fetch is used up, up to Concurrency.
// A reader asked to read to the end (first == 0) starts at full speed.
// The final chunk is never fetched: open holds it. The fetches' buffers
// come from the Client's pool and go back to it.
type seqReader struct {
	g   *geosealContent
	ctx context.Context
	eg  *errgroup.Group
	// cancel stops the fetches in flight (Close).
	cancel context.CancelFunc

	pos, end  int64 // plaintext still to return
	next      int64 // next chunk to fetch
	stop      int64 // chunks from stop on are not fetched
	size      int64 // chunks in the next fetch
	maxChunks int64 // chunks in a fetch of RangeSize
	window    int   // fetches allowed in flight
	queue     []*fetch

	plain []byte // one chunk of plaintext, for reads of part of a chunk
	avail []byte // the part of plain not yet returned
	err   error
}

// A fetch is a ranged GET of chunks [first, first+n) of the body into buf,
// registered as a span whose filled part grows as the response arrives.
type fetch struct {
	first, n int64
	buf      []byte
	sp       *span
	filled   atomic.Int64  // bytes of buf received
	progress chan struct{} // signalled (without blocking) when filled grows
	err      error         // set before done is closed
	done     chan struct{}
}

func (g *geosealContent) reader(off, end int64, first int) (seqSource, error) {
	l := g.lay
	ctx, cancel := context.WithCancel(g.src.ctx)
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(g.t.concurrency)
	r := &seqReader{
		g:         g,
		ctx:       ctx,
		eg:        eg,
		cancel:    cancel,
		pos:       off,
		end:       end,
		next:      off / l.chunk,
		stop:      min(ceilDiv(end, l.chunk), l.chunks-1),
		maxChunks: max(g.t.rangeSize/l.enc, 1),
		window:    1,
	}
	r.size = r.maxChunks
	if first > 0 {
		r.size = min(ceilDiv(off%l.chunk+int64(first), l.chunk), r.maxChunks)
	} else {
		r.window = g.t.concurrency
	}
	return r, nil
}

// fill starts fetches until window are in flight or nothing is left.
func (r *seqReader) fill() {
	l := r.g.lay
	for len(r.queue) < r.window && r.next < r.stop {
		n := min(r.size, r.stop-r.next)
		f := &fetch{first: r.next, n: n, buf: r.g.buffers.get(int(n * l.enc)), progress: make(chan struct{}, 1), done: make(chan struct{})}
		f.sp = r.g.src.add(f.first*l.enc, f.buf, &f.filled)
		r.next += n
		r.size = min(2*r.size, r.maxChunks)
		r.queue = append(r.queue, f)
		r.eg.Go(func() error {
			defer close(f.done)
			f.err = fetchRange(r.ctx, r.g.src.b, r.g.src.etag, f.buf, l.headerLen+f.first*l.enc, func(n int) {
				f.filled.Store(int64(n))
				select {
				case f.progress <- struct{}{}:
				default:
				}
			})
			return f.err
		})
	}
}

// release drops the head fetch, used up, and lets one more run ahead. The
// fetch is done, and its span no longer registered: its buffer goes back
// to the pool.
func (r *seqReader) release() {
	f := r.queue[0]
	r.queue = r.queue[1:]
	r.g.src.remove(f.sp)
	r.g.buffers.put(f.buf)
	r.window = min(r.window+1, r.g.t.concurrency)
}

var errFetchShort = errors.New("blobstore: internal error: a fetch ended short without an error")

// await waits until chunk ci of the head fetch has arrived, and returns
// how many whole chunks of the fetch, from ci on, are there.
func (r *seqReader) await(ci int64) (int64, error) {
	f := r.queue[0]
	enc := r.g.lay.enc
	need := (ci - f.first + 1) * enc
	for {
		if got := f.filled.Load(); got >= need {
			return got/enc - (ci - f.first), nil
		}
		select {
		case <-f.progress:
		case <-f.done:
			if f.err != nil {
				return 0, f.err
			}
			if f.filled.Load() < need {
				return 0, errFetchShort
			}
		case <-r.ctx.Done():
			return 0, context.Cause(r.ctx)
		}
	}
}

func (r *seqReader) Read(p []byte) (int, error) {
	if len(r.avail) > 0 {
		n := copy(p, r.avail)
		r.avail = r.avail[n:]
		r.pos += int64(n)
		return n, nil
	}
	if r.err != nil {
		return 0, r.err
	}
	if r.pos >= r.end {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	l := r.g.lay
	ci := r.pos / l.chunk
	ready := int64(1) // whole chunks from ci on that are at hand
	if ci < l.chunks-1 {
		// The head fetch must be the one holding chunk ci.
		for len(r.queue) > 0 && r.queue[0].first+r.queue[0].n <= ci {
			r.release()
		}
		r.fill()
		var err error
		if ready, err = r.await(ci); err != nil {
			r.err = r.g.src.explain(err)
			return 0, r.err
		}
	}
	// Whole chunks straight into p: from a chunk boundary, those at hand,
	// not past the end (the final chunk goes through plain).
	cstart := ci * l.chunk
	if r.pos == cstart && int64(len(p)) >= l.chunk && ci < l.chunks-1 {
		k := min(int64(len(p))/l.chunk, ready, r.end/l.chunk-ci)
		if k > 0 {
			n, err := r.g.ra.ReadAt(p[:k*l.chunk], r.pos)
			r.pos += int64(n)
			if err != nil {
				r.err = r.g.src.explain(err)
				return n, r.err
			}
			return n, nil
		}
	}
	// Part of a chunk: open it whole into plain, return what is wanted.
	clen := min(l.chunk, l.size-cstart)
	if r.plain == nil {
		r.plain = make([]byte, l.chunk)
	}
	if m, err := r.g.ra.ReadAt(r.plain[:clen], cstart); int64(m) < clen {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.err = r.g.src.explain(err)
		return 0, r.err
	}
	r.avail = r.plain[r.pos-cstart : min(clen, r.end-cstart)]
	n := copy(p, r.avail)
	r.avail = r.avail[n:]
	r.pos += int64(n)
	return n, nil
}

// WriteTo writes the rest of the range to w, opening whole chunks into a
// buffer of up to 16 chunks.
func (r *seqReader) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, min(max(r.end-r.pos, 1), 16*r.g.lay.chunk))
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Close stops the fetches in flight and waits for their goroutines.
func (r *seqReader) Close() error {
	r.cancel()
	r.eg.Wait()
	for _, f := range r.queue {
		r.g.src.remove(f.sp)
		r.g.buffers.put(f.buf)
	}
	r.queue = nil
	clear(r.plain)
	r.avail = nil
	if r.err == nil {
		r.err = errBlobClosed
	}
	return nil
}
