package stream

import (
	"sync"
	"sync/atomic"
)

// workers seals or opens chunks on a fixed number of goroutines for one
// Writer or Reader. The goroutines start with the first chunk and exit when
// stop is called: by Close, at the end of the stream, after an error, or by
// a cleanup when the Writer or Reader is dropped unfinished. They hold no
// reference to the Writer or Reader, so that the cleanup can run.
type workers struct {
	n       int
	jobs    chan *chunk
	started atomic.Bool

	mu      sync.Mutex // guards starting and stopping
	stopped bool
}

// newWorkers returns a pool of n goroutines for at most queue chunks in
// flight at once, so submit never blocks.
func newWorkers(n, queue int) *workers {
	return &workers{n: n, jobs: make(chan *chunk, queue)}
}

// submit hands c to a worker, which runs it and then signals c.done.
func (w *workers) submit(c *chunk) {
	if !w.started.Load() {
		w.start()
	}
	w.jobs <- c
}

func (w *workers) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || w.started.Load() {
		return
	}
	for range w.n {
		go work(w.jobs)
	}
	w.started.Store(true)
}

func work(jobs <-chan *chunk) {
	for c := range jobs {
		c.run()
		c.done <- struct{}{}
	}
}

// stop lets the goroutines exit once the chunks already submitted are done.
// Nothing may be submitted afterwards.
func (w *workers) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.stopped = true
		close(w.jobs)
	}
}

// queue is a fixed-capacity FIFO of chunks in stream order.
type queue struct {
	buf   []*chunk
	head  int
	count int
}

func newQueue(n int) queue { return queue{buf: make([]*chunk, n)} }

func (q *queue) len() int { return q.count }

func (q *queue) push(c *chunk) {
	q.buf[(q.head+q.count)%len(q.buf)] = c
	q.count++
}

func (q *queue) pop() *chunk {
	c := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.count--
	return c
}
