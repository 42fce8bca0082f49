package stream

import (
	"bytes"
	"testing"
	"time"
)

// TestWaitRunsQueuedChunks checks that a goroutine waiting for a chunk runs
// the queued chunks itself, in order, rather than sleeping until a worker
// gets to them: with no worker started, only the waiter can run them.
func TestWaitRunsQueuedChunks(t *testing.T) {
	const n = 4
	cfg, err := newConfig(testKey(1), &Options{ChunkSize: MinChunkSize, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	pool := newWorkers(2, n) // never started
	pt := plaintext(n*MinChunkSize, 1)
	var chunks []*chunk
	for i := range n {
		c := newChunk(cfg, false)
		c.index, c.seal, c.final = uint64(i), true, i == n-1
		c.in = pt[i*MinChunkSize : (i+1)*MinChunkSize]
		chunks = append(chunks, c)
		pool.jobs <- c
	}

	waited := make(chan struct{})
	go func() {
		defer close(waited)
		pool.wait(chunks[1])
	}()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		pool.stop() // not started: nothing else would ever run the chunks
		t.Fatal("wait did not run the queued chunks itself")
	}
	// Chunks 0 and 1 are run (0 first, queue order), 2 and 3 still queued.
	if got := len(pool.jobs); got != n-2 {
		t.Errorf("%d chunks left queued, want %d", got, n-2)
	}
	if len(chunks[0].done) != 1 {
		t.Error("chunk 0 ran without signalling done")
	}
	pool.wait(chunks[0])
	pool.wait(chunks[3])
	if len(pool.jobs) != 0 {
		t.Errorf("%d chunks left queued after waiting for the last", len(pool.jobs))
	}
	pool.stop()

	for i, c := range chunks[:n] {
		if c.out == nil {
			t.Fatalf("chunk %d was not sealed", i)
		}
		o := newChunk(cfg, true)
		o.index, o.final, o.in = c.index, c.final, c.out
		o.run()
		if o.err != nil || !bytes.Equal(o.out, c.in) {
			t.Errorf("chunk %d: sealed by wait does not open to its plaintext: %v", i, o.err)
		}
	}
}
