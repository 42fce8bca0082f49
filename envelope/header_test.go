package envelope

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"runtime"
	"testing"

	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/internal/formattest"
)

// TestHostileHeaderAllocation feeds headers that claim huge lengths and
// counts to Inspect and Decrypt and checks that each allocates under 1 MiB.
func TestHostileHeaderAllocation(t *testing.T) {
	const (
		magic    = "geoseal\x00"
		fixedLen = format.PrefixSize + 2 + format.MessageIDSize + format.CommitmentSize
	)
	// A prefix claiming a 4 GiB header followed by an endless stream.
	huge := append([]byte(magic), 1, 0xff, 0xff, 0xff, 0xff)
	// A maximal header whose context claims 64 Ki bytes and whose inner
	// fields claim the most they can, with no bytes behind the claims.
	maxHdr := make([]byte, MaxHeaderSize)
	copy(maxHdr, magic)
	maxHdr[len(magic)] = 1
	binary.BigEndian.PutUint32(maxHdr[len(magic)+1:], MaxHeaderSize)
	maxHdr[format.PrefixSize] = 0x01 // AES-256-GCM
	maxHdr[format.PrefixSize+1] = 20
	for i := fixedLen; i < len(maxHdr); i++ {
		maxHdr[i] = 0xff
	}
	// A well-formed context length with a maximal key count and lengths.
	keysHdr := bytes.Clone(maxHdr)
	binary.BigEndian.PutUint16(keysHdr[fixedLen:], 2)
	binary.BigEndian.PutUint16(keysHdr[fixedLen+2:], 0)
	keysHdr[fixedLen+4] = MaxWrappedKeys

	for _, tc := range []struct {
		name string
		r    func() io.Reader
	}{
		{"4 GiB claimed", func() io.Reader { return io.MultiReader(bytes.NewReader(huge), zeros{}) }},
		{"64 KiB of maximal lengths", func() io.Reader { return io.MultiReader(bytes.NewReader(maxHdr), zeros{}) }},
		{"64 wrapped keys of maximal lengths", func() io.Reader { return io.MultiReader(bytes.NewReader(keysHdr), zeros{}) }},
	} {
		alloc := allocatedBytes(func() {
			for range 10 {
				h, err := Inspect(tc.r())
				if err == nil || h != nil {
					t.Errorf("%s: parsed", tc.name)
				}
				if _, err := Decrypt(context.Background(), tc.r(), formattest.PlainKeyring{ID: "k"}, nil); err == nil {
					t.Errorf("%s: decrypted", tc.name)
				}
			}
		}) / 10
		t.Logf("%s: %d bytes allocated per parse and decrypt", tc.name, alloc)
		if alloc >= 1<<20 {
			t.Errorf("%s: %d bytes allocated, want < 1 MiB", tc.name, alloc)
		}
	}
}

// zeros is an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// allocatedBytes returns how many bytes the heap grew by, in total
// allocations, while f ran.
func allocatedBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
