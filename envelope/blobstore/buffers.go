package blobstore

import (
	"math/bits"
	"sync"
)

// Ciphertext buffers: the blocks Upload stages and the ranges the reads
// fetch, up to tens of MiB per call. Allocating them for every call costs
// the runtime zeroing them and the kernel faulting their pages in, as
// much CPU as a fast link leaves for the decryption. A Client keeps the
// buffers its calls are done with for the next ones, in one sync.Pool per
// size class, which the garbage collector empties: it holds nothing long
// that is not used. Plaintext never goes into them.
const (
	// Classes are the powers of two from minPooledBuffer to 1 MiB, then
	// the multiples of 1 MiB up to maxPooledBuffer: a buffer holds at
	// most twice what was asked below 1 MiB, one MiB more above.
	minPooledBuffer = 64 << 10
	maxPooledBuffer = 64 << 20

	smallClasses = 5 // 64 KiB to 1 MiB
	classCount   = smallClasses + maxPooledBuffer>>20 - 1
)

// A bufferPool lends ciphertext buffers. The zero value is ready to use.
type bufferPool struct {
	classes [classCount]sync.Pool // of *[]byte, full capacity
}

// bufferClass returns the capacity of the buffers that hold n bytes and
// the index of their class, or -1 for sizes not pooled.
func bufferClass(n int) (size, index int) {
	switch {
	case n <= 0 || n > maxPooledBuffer:
		return n, -1
	case n <= 1<<20:
		size = max(minPooledBuffer, 1<<bits.Len(uint(n-1)))
		return size, bits.Len(uint(size)) - bits.Len(minPooledBuffer)
	}
	size = int(roundUp(int64(n), 1<<20))
	return size, smallClasses + size>>20 - 2
}

// get returns a buffer of n bytes (its capacity may be larger), whose
// content is whatever its last user left.
func (p *bufferPool) get(n int) []byte {
	size, i := bufferClass(n)
	if i < 0 {
		return make([]byte, n)
	}
	if v := p.classes[i].Get(); v != nil {
		return (*v.(*[]byte))[:n]
	}
	return make([]byte, n, size)
}

// put gives b back for another call: the caller must not use it any more.
// Buffers whose capacity is not a class's are left to the collector.
func (p *bufferPool) put(b []byte) {
	size, i := bufferClass(cap(b))
	if i < 0 || size != cap(b) {
		return
	}
	b = b[:cap(b)]
	p.classes[i].Put(&b)
}
