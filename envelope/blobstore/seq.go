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
// available as they arrive: a Read waits until the chunks it can take
// from the head fetch are there (as many as p holds, so that it is woken
// once rather than for every piece of the response) and opens them where
// they lie (stream.ReaderAt.OpenAt), straight into p when the read covers
// whole chunks, while the fetches behind it keep streaming. Their buffers
// come from the Client's pool and go back to it.
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

	plain []byte // one chunk of plaintext, for reads of part of a chunk
	avail []byte // the part of plain not yet returned
	err   error
}

// A fetch is a ranged GET of chunks [first, first+n) of the body into buf,
// whose filled part grows as the response arrives.
type fetch struct {
	first, n int64
	buf      []byte
	filled   atomic.Int64 // bytes of buf received
	// want is how many bytes of buf the reader waits for: progress is
	// signalled (without blocking) once filled reaches it.
	want     atomic.Int64
	progress chan struct{}
	err      error // set before done is closed
	done     chan struct{}
}

// received records that got bytes of f.buf have arrived, and wakes the
// reader if it waits for no more. The reader publishes want before it
// checks filled again and sleeps, and received stores filled before it
// checks want, so one of them sees the other's store: no wake-up is lost.
func (f *fetch) received(got int) {
	f.filled.Store(int64(got))
	if w := f.want.Load(); w > 0 && int64(got) >= w {
		select {
		case f.progress <- struct{}{}:
		default:
		}
	}
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
		maxChunks: g.chunksPerFetch(),
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
		r.next += n
		r.size = min(2*r.size, r.maxChunks)
		r.queue = append(r.queue, f)
		r.eg.Go(func() error {
			defer close(f.done)
			f.err = fetchRange(r.ctx, r.g.src.b, r.g.src.etag, f.buf, l.headerLen+f.first*l.enc, f.received)
			return f.err
		})
	}
}

// release drops the head fetch, used up, and lets one more run ahead. The
// fetch is done with its buffer (all of it has arrived), which goes back
// to the pool.
func (r *seqReader) release() {
	f := r.queue[0]
	r.queue = r.queue[1:]
	r.g.buffers.put(f.buf)
	r.window = min(r.window+1, r.g.t.concurrency)
}

var errFetchShort = errors.New("blobstore: internal error: a fetch ended short without an error")

// await waits until chunks [ci, ci+k) of the head fetch have arrived (those
// of them it holds), and returns its ciphertext from chunk ci to the end
// of what has arrived, whole chunks only.
func (r *seqReader) await(ci, k int64) ([]byte, error) {
	f := r.queue[0]
	enc := r.g.lay.enc
	from := (ci - f.first) * enc
	need := from + min(k, f.first+f.n-ci)*enc
	for {
		if got := f.filled.Load(); got >= need {
			return f.buf[from : got/enc*enc], nil
		}
		f.want.Store(need)
		if f.filled.Load() >= need {
			continue
		}
		select {
		case <-f.progress:
		case <-f.done:
			if f.err != nil {
				return nil, f.err
			}
			if f.filled.Load() < need {
				return nil, errFetchShort
			}
		case <-r.ctx.Done():
			return nil, context.Cause(r.ctx)
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
	cstart := ci * l.chunk
	aligned := r.pos == cstart
	var held []byte // the ciphertext from chunk ci on that is at hand, or nil for the final chunk
	if ci < l.chunks-1 {
		// The head fetch must be the one holding chunk ci.
		for len(r.queue) > 0 && r.queue[0].first+r.queue[0].n <= ci {
			r.release()
		}
		r.fill()
		want := int64(1)
		if aligned {
			want = max(int64(len(p))/l.chunk, 1)
		}
		var err error
		if held, err = r.await(ci, want); err != nil {
			r.err = r.g.src.explain(r.ctx, err)
			return 0, r.err
		}
	}
	// Whole chunks straight into p: from a chunk boundary, those at hand,
	// not past the end (the final chunk goes through plain).
	if aligned && int64(len(p)) >= l.chunk && held != nil {
		k := min(int64(len(p))/l.chunk, int64(len(held))/l.enc, r.end/l.chunk-ci)
		if k > 0 {
			n, err := r.g.ra.OpenAt(p[:k*l.chunk], r.pos, held)
			r.pos += int64(n)
			if err != nil {
				r.err = r.g.src.explain(r.ctx, err)
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
	var m int
	var err error
	if held != nil {
		m, err = r.g.ra.OpenAt(r.plain[:clen], cstart, held)
	} else {
		m, err = r.g.ra.ReadAt(r.plain[:clen], cstart) // the final chunk, which open holds
	}
	if int64(m) < clen {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.err = r.g.src.explain(r.ctx, err)
		return 0, r.err
	}
	r.avail = r.plain[r.pos-cstart : min(clen, r.end-cstart)]
	n := copy(p, r.avail)
	r.avail = r.avail[n:]
	r.pos += int64(n)
	return n, nil
}

// WriteTo writes the rest of the range to w, opening whole chunks into a
// buffer of up to 16 chunks, cleared when it returns.
func (r *seqReader) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, min(max(r.end-r.pos, 1), 16*r.g.lay.chunk))
	defer clear(buf)
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
