package blobstore

import "testing"

// TestBufferClass checks the size classes: each holds what it is asked
// for, wastes at most half below 1 MiB and one MiB above, and sizes out
// of range are not pooled.
func TestBufferClass(t *testing.T) {
	for _, tc := range []struct{ n, size, index int }{
		{0, 0, -1},
		{-1, -1, -1},
		{1, 64 << 10, 0},
		{64 << 10, 64 << 10, 0},
		{64<<10 + 1, 128 << 10, 1},
		{2 * 65564, 256 << 10, 2}, // a 100-byte ReadAt: two chunks of 64 KiB
		{1 << 20, 1 << 20, 4},
		{1<<20 + 1, 2 << 20, 5},
		{16 * 65564, 2 << 20, 5}, // 16 chunks of 64 KiB, sealed
		{4 << 20, 4 << 20, 7},    // DefaultBlockSize
		{255 * 65564, 16 << 20, 19},
		{maxPooledBuffer, maxPooledBuffer, classCount - 1},
		{maxPooledBuffer + 1, maxPooledBuffer + 1, -1},
	} {
		size, index := bufferClass(tc.n)
		if size != tc.size || index != tc.index {
			t.Errorf("bufferClass(%d) = %d, %d; want %d, %d", tc.n, size, index, tc.size, tc.index)
		}
	}
	// Every class is the class of its own size, and classes grow.
	prev := 0
	for n := 1; n <= maxPooledBuffer; n += 64 << 10 {
		size, index := bufferClass(n)
		if size < n || index < 0 || index >= classCount || size < prev {
			t.Fatalf("bufferClass(%d) = %d, %d", n, size, index)
		}
		if s2, i2 := bufferClass(size); s2 != size || i2 != index {
			t.Fatalf("bufferClass(%d) = %d, %d; its class is %d, %d", size, s2, i2, size, index)
		}
		prev = size
	}
}

// TestBufferPool checks that get returns n bytes in a buffer of the
// class's capacity, also when it reuses one that was put back.
func TestBufferPool(t *testing.T) {
	var p bufferPool
	for _, n := range []int{1, 100 << 10, 3<<20 + 5, maxPooledBuffer + 1} {
		size, _ := bufferClass(n)
		for range 3 {
			b := p.get(n)
			if len(b) != n || cap(b) != size {
				t.Fatalf("get(%d): len %d, cap %d; want %d, %d", n, len(b), cap(b), n, size)
			}
			p.put(b[:1])
			p.put(b[:0:n]) // a capacity no class has unless n is one: dropped
		}
	}
}
