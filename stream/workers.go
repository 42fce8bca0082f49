package stream

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// workers seals or opens chunks on a fixed number of goroutines for one
// Writer or Reader. The goroutines start with the first chunk and exit once
// stopped: close stops them and waits (Close, the end of the stream, an
// error); stop alone is for the cleanup of a Writer or Reader dropped
// unfinished, which must not block. They hold no reference to the Writer
// or Reader, so that the cleanup can run.
type workers struct {
	n       int
	jobs    chan *chunk
	started atomic.Bool
	running sync.WaitGroup // one per goroutine started

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
	w.running.Add(w.n)
	for range w.n {
		go func() {
			defer w.running.Done()
			work(w.jobs)
		}()
	}
	w.started.Store(true)
}

// spinBeforePark is how many times an idle worker yields its core (with
// runtime.Gosched) looking for the next chunk before it parks on the
// channel: on an otherwise idle core about 20 µs, a chunk or so of work.
// Goroutines that are runnable meanwhile get the core, so the spin takes
// nothing from them.
//
// Sealing a 64 KiB chunk takes no longer than resuming a worker that has
// parked and whose core has gone idle (a futex call and, in a VM, an
// inter-processor interrupt), so workers that park whenever the queue is
// empty for a moment leave a core idle. The price is up to that much CPU
// time per idle period when the producer is slower than the workers (a
// network source). BENCHMARKS.md has the trace and the measurements behind
// the number.
const spinBeforePark = 200

func work(jobs <-chan *chunk) {
	for {
		c, ok := next(jobs)
		if !ok {
			return
		}
		c.run()
		c.done <- struct{}{}
	}
}

// next returns the next chunk to run, or false once jobs is closed and
// drained.
func next(jobs <-chan *chunk) (*chunk, bool) {
	for range spinBeforePark {
		select {
		case c, ok := <-jobs:
			return c, ok
		default:
			runtime.Gosched()
		}
	}
	c, ok := <-jobs
	return c, ok
}

// wait returns once c has run. Until then the calling goroutine runs queued
// chunks itself instead of sleeping. Chunks are queued in stream order, so if
// no worker has taken c yet the caller runs c (or an earlier chunk) itself,
// and it never sleeps while there is work it could do: a core is not left
// idle while the workers are busy and chunks wait in the queue, and the
// caller does not need a worker to wake it for every chunk (BENCHMARKS.md
// measures what that is worth).
func (w *workers) wait(c *chunk) {
	for {
		select {
		case <-c.done:
			return
		default:
		}
		select {
		case <-c.done:
			return
		case j, ok := <-w.jobs:
			if !ok {
				// Stopped and drained: a worker has c.
				<-c.done
				return
			}
			j.run()
			j.done <- struct{}{}
		}
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

// close stops the goroutines and returns once they have exited, after
// running the chunks already submitted.
func (w *workers) close() {
	w.stop()
	w.running.Wait()
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
