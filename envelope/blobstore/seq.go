package blobstore

import (
	"context"
	"io"

	"golang.org/x/sync/errgroup"
)

// A seqReader reads the plaintext of [pos, end) of a geoseal object in
// order. Ranged GETs of whole chunks run ahead of the reader, in an
// errgroup that bounds them to Concurrency; the reader opens each chunk
// (stream.ReaderAt) as it reaches it, straight into the caller's buffer
// when the read covers whole chunks.
//
// Fetches ramp up: the first is sized to the first read (the chunks that
// hold it), each next one is twice the previous up to RangeSize, and one
// more may be in flight each time a fetch is used up, up to Concurrency.
// A reader asked to read to the end (first == 0) starts at full speed.
// The final chunk is never fetched: open holds it.
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
	free      [][]byte

	plain []byte // one chunk of plaintext, for reads of part of a chunk
	avail []byte // the part of plain not yet returned
	err   error
}

// A fetch is a ranged GET of chunks [first, first+n) of the body.
type fetch struct {
	first, n int64
	buf      []byte
	sp       *span // registered once the fetch is done
	err      error
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
		f := &fetch{first: r.next, n: n, buf: r.buffer(n * l.enc), done: make(chan struct{})}
		r.next += n
		r.size = min(2*r.size, r.maxChunks)
		r.queue = append(r.queue, f)
		r.eg.Go(func() error {
			defer close(f.done)
			f.err = getRange(r.ctx, r.g.src.b, r.g.src.etag, f.buf, l.headerLen+f.first*l.enc)
			if f.err == nil {
				f.sp = r.g.src.add(f.first*l.enc, f.buf)
			}
			return f.err
		})
	}
}

// buffer returns a ciphertext buffer of n bytes, reusing a free one.
func (r *seqReader) buffer(n int64) []byte {
	for i, b := range r.free {
		if int64(cap(b)) >= n {
			r.free = append(r.free[:i], r.free[i+1:]...)
			return b[:n]
		}
	}
	return make([]byte, n)
}

// release drops the head fetch, used up, and lets one more run ahead.
func (r *seqReader) release() {
	f := r.queue[0]
	r.queue = r.queue[1:]
	if f.sp != nil {
		r.g.src.remove(f.sp)
	}
	r.free = append(r.free, f.buf)
	if len(r.free) > r.window {
		r.free = r.free[1:]
	}
	r.window = min(r.window+1, r.g.t.concurrency)
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
	if ci < l.chunks-1 {
		// Make sure the fetch holding chunk ci is done.
		for len(r.queue) > 0 && r.queue[0].first+r.queue[0].n <= ci {
			r.release()
		}
		r.fill()
		f := r.queue[0]
		select {
		case <-f.done:
			if f.err != nil {
				r.err = r.g.src.explain(f.err)
				return 0, r.err
			}
		case <-r.ctx.Done():
			r.err = r.g.src.explain(context.Cause(r.ctx))
			return 0, r.err
		}
	}
	// Whole chunks straight into p: from a chunk boundary, within the
	// fetch (or the final chunk), not past the end.
	cstart := ci * l.chunk
	var n int
	var err error
	if r.pos == cstart && int64(len(p)) >= l.chunk && r.end-r.pos >= l.chunk {
		upto := min(r.end/l.chunk, l.chunks-1) // chunks [ci, upto) are full and wanted whole
		if ci < l.chunks-1 {
			f := r.queue[0]
			upto = min(upto, f.first+f.n)
		}
		k := min(int64(len(p))/l.chunk, upto-ci)
		if k > 0 {
			n, err = r.g.ra.ReadAt(p[:k*l.chunk], r.pos)
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
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		r.err = r.g.src.explain(err)
		return 0, r.err
	}
	r.avail = r.plain[r.pos-cstart : min(clen, r.end-cstart)]
	n = copy(p, r.avail)
	r.avail = r.avail[n:]
	r.pos += int64(n)
	return n, nil
}

// WriteTo writes the rest of the range to w, opening whole chunks into a
// buffer of up to a fetch.
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
		if f.sp != nil {
			r.g.src.remove(f.sp)
		}
	}
	r.queue, r.free = nil, nil
	clear(r.plain)
	r.avail = nil
	if r.err == nil {
		r.err = errBlobClosed
	}
	return nil
}
