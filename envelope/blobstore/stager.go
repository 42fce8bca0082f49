package blobstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"golang.org/x/sync/errgroup"
)

// changeCheckEvery is how many blocks an upload stages between two checks
// that no other writer committed the blob meanwhile: a HEAD per 32 MiB at
// the default block size, so a losing writer stops within a few blocks of
// the other's commit instead of sending all its data.
const changeCheckEvery = 8

// A stager cuts what is written to it into blocks and stages them,
// Concurrency at a time (an errgroup with that limit), each from its own
// buffer. Buffers are reused: there are at most Concurrency + 1 of them,
// one being filled and the others being sent, so an upload's memory does
// not depend on its length; they come from the Client's pool and go back
// to it at the end. The first failure cancels the other requests and makes
// every later Write fail.
type stager struct {
	ctx    context.Context // the group's: done at the first failure
	cancel context.CancelCauseFunc
	g      *errgroup.Group
	bb     *blockblob.Client
	stage  *blockblob.StageBlockOptions
	pin    pinned

	uploadID [16]byte
	ids      []string // block IDs in order, header first
	sizer    blockSizer
	body     int64 // body bytes cut into blocks so far
	total    int64 // all bytes cut into blocks so far

	cur     []byte      // the block being filled
	free    chan []byte // buffers not in use
	nbufs   int         // buffers allocated and not dropped
	maxBufs int         // Concurrency + 1
	pool    *bufferPool

	mu       sync.Mutex // guards staged and serializes progress calls
	staged   int64
	progress func(int64)
}

func newStager(ctx context.Context, bb *blockblob.Client, pin pinned, plan uploadPlan, opts *UploadOptions, pool *bufferPool) *stager {
	s := &stager{
		pool:     pool,
		bb:       bb,
		pin:      pin,
		sizer:    plan.sizer,
		free:     make(chan []byte, plan.concurrency+1),
		maxBufs:  plan.concurrency + 1,
		progress: opts.Progress,
	}
	if ac := opts.AccessConditions; ac != nil && ac.LeaseAccessConditions != nil {
		s.stage = &blockblob.StageBlockOptions{LeaseAccessConditions: ac.LeaseAccessConditions}
	}
	rand.Read(s.uploadID[:])
	ctx, s.cancel = context.WithCancelCause(ctx)
	s.g, s.ctx = errgroup.WithContext(ctx)
	s.g.SetLimit(plan.concurrency)
	return s
}

// run stages header as a block of its own, then what body writes, and
// waits for every request. On failure every goroutine it started has
// exited when it returns, and the error is the first cause: a failed
// request, the body's own error, or the cancellation of the caller's
// context.
func (s *stager) run(header []byte, body func(io.Writer) error) error {
	defer s.cancel(nil)
	s.send(header)
	err := body(s)
	if err == nil {
		err = s.cut()
	}
	if err != nil {
		s.cancel(err)
		s.g.Wait()
		return err
	}
	if err := s.g.Wait(); err != nil {
		return err
	}
	s.recycle()
	return nil
}

// recycle gives the buffers back to the pool once every request has
// succeeded. After a failure they are left to the collector: net/http may
// still be reading the body of a cancelled request after StageBlock
// returned (RoundTrip may close it in another goroutine), and the next
// upload must not write into a buffer that is still being sent.
func (s *stager) recycle() {
	if s.cur != nil {
		s.pool.put(s.cur)
		s.cur = nil
	}
	for {
		select {
		case b := <-s.free:
			s.pool.put(b)
		default:
			return
		}
	}
}

// Write copies p into blocks, staging each one as it fills. A p that
// starts the room AvailableBuffer lent is in the block already: nothing
// is copied.
func (s *stager) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if err := s.startBlock(); err != nil {
			return n, err
		}
		room := s.cur[len(s.cur):cap(s.cur)]
		m := min(len(p), len(room))
		if &room[0] != &p[0] {
			copy(room, p)
		}
		s.cur = s.cur[:len(s.cur)+m]
		p = p[m:]
		n += m
		if len(s.cur) == cap(s.cur) {
			if err := s.cut(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// AvailableBuffer lends the room left in the block being filled, as
// bufio.Writer does: the stream.Writer seals chunks that fit straight
// into it and passes them to Write, which then copies nothing. It is empty
// if no block can be had (Write reports why).
func (s *stager) AvailableBuffer() []byte {
	if err := s.startBlock(); err != nil {
		return nil
	}
	return s.cur[len(s.cur):]
}

// startBlock makes sure there is a block being filled, with room left,
// unless the upload has failed.
func (s *stager) startBlock() error {
	if err := context.Cause(s.ctx); err != nil {
		return err
	}
	if s.cur != nil {
		return nil
	}
	buf, err := s.buffer(s.sizer.next(s.body))
	if err != nil {
		return err
	}
	s.cur = buf
	return nil
}

// buffer returns an empty block buffer of capacity size: a free one, a new
// one while fewer than maxBufs exist, or else one a request returns.
// Buffers smaller than size (the block size grew) are dropped.
func (s *stager) buffer(size int64) ([]byte, error) {
	for {
		var b []byte
		select {
		case b = <-s.free:
		default:
			if s.nbufs < s.maxBufs {
				s.nbufs++
				// The block is cut at its capacity.
				return s.pool.get(int(size))[:0:size], nil
			}
			select {
			case b = <-s.free:
			case <-s.ctx.Done():
				return nil, context.Cause(s.ctx)
			}
		}
		if int64(cap(b)) == size {
			return b[:0], nil
		}
		s.nbufs-- // the block size changed: let it go
		s.pool.put(b)
	}
}

// cut ends the current block, if it holds anything, and stages it.
func (s *stager) cut() error {
	if len(s.cur) == 0 {
		return nil
	}
	buf := s.cur
	s.cur = nil
	s.body += int64(len(buf))
	return s.sendBuffer(buf)
}

// send stages b, which is not a pooled buffer, as the next block.
func (s *stager) send(b []byte) {
	id, n := s.nextBlock(len(b))
	s.g.Go(func() error { return s.stageBlock(id, n, b) })
}

// nextBlock appends the ID of the next block, of size bytes, to the block
// list and returns it with the block's number.
func (s *stager) nextBlock(size int) (id string, n int) {
	n = len(s.ids)
	id = blockID(s.uploadID, uint64(n))
	s.ids = append(s.ids, id)
	s.total += int64(size)
	return id, n
}

// sendBuffer stages a pooled buffer as the next block, and every
// changeCheckEvery blocks checks that no other writer committed.
func (s *stager) sendBuffer(buf []byte) error {
	if len(s.ids) >= maxBlocks {
		s.free <- buf
		return s.sizer.tooMany()
	}
	id, n := s.nextBlock(len(buf))
	s.g.Go(func() error {
		defer func() { s.free <- buf }()
		return s.stageBlock(id, n, buf)
	})
	if n%changeCheckEvery == 0 {
		s.g.Go(func() error { return s.pin.unchanged(s.ctx, s.bb.BlobClient()) })
	}
	return nil
}

func (s *stager) stageBlock(id string, n int, b []byte) error {
	if _, err := s.bb.StageBlock(s.ctx, id, streaming.NopCloser(bytes.NewReader(b)), s.stage); err != nil {
		return fmt.Errorf("staging block %d: %w", n, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.staged += int64(len(b))
	if s.progress != nil {
		s.progress(s.staged)
	}
	return nil
}

// blockID returns the ID of block n of an upload. Every ID a Client writes
// has the same length, as the service requires of the blocks of one blob
// (Rewrap mixes a new header block with the old body blocks): 24 bytes,
// the upload's random ID and the block number, in base64.
func blockID(upload [16]byte, n uint64) string {
	var raw [24]byte
	copy(raw[:], upload[:])
	binary.BigEndian.PutUint64(raw[16:], n)
	return base64.StdEncoding.EncodeToString(raw[:])
}
