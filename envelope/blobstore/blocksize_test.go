package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/geoseal/geoseal/stream"
)

func TestPlanBlocks(t *testing.T) {
	const maxBlob = int64(maxBlocks-1) * MaxBlockSize // the body's share of the largest blob
	cases := []struct {
		fixed, hint int64
		want        int64
		err         error
	}{
		{0, -1, DefaultBlockSize, nil},
		{0, 0, DefaultBlockSize, nil},
		{0, 256 << 20, DefaultBlockSize, nil},
		{0, (maxBlocks - 1) * DefaultBlockSize, DefaultBlockSize, nil},
		{0, (maxBlocks-1)*DefaultBlockSize + 1, DefaultBlockSize + minBlockSize, nil},
		{0, 1 << 40, roundUp(ceilDiv(1<<40, maxBlocks-1), minBlockSize), nil},
		{0, maxBlob, MaxBlockSize, nil},
		{0, maxBlob + 1, 0, ErrTooLarge},
		{testBlock, -1, testBlock, nil},
		{testBlock, (maxBlocks - 1) * testBlock, testBlock, nil},
		{testBlock, (maxBlocks-1)*testBlock + 1, 0, ErrTooManyBlocks},
	}
	for _, c := range cases {
		s, err := planBlocks(c.fixed, c.hint)
		if !errors.Is(err, c.err) || err == nil && s.size != c.want {
			t.Errorf("planBlocks(%d, %d) = %d, %v; want %d, %v", c.fixed, c.hint, s.size, err, c.want, c.err)
		}
		if err == nil && c.hint >= 0 && ceilDiv(c.hint, s.size) > maxBlocks-1 {
			t.Errorf("planBlocks(%d, %d): %d blocks of %d do not fit", c.fixed, c.hint, ceilDiv(c.hint, s.size), s.size)
		}
	}
}

// TestBlockGrowth runs the sizer of a stream of unknown length to the
// block limit: blocks never shrink, each is at most about a hundredth of
// what came before it (past the first DefaultBlockSize ones), and the
// blocks hold at least 98% of the largest blob the service allows.
func TestBlockGrowth(t *testing.T) {
	s, err := planBlocks(0, -1)
	if err != nil {
		t.Fatal(err)
	}
	var staged, prev int64
	for n := 1; n < maxBlocks; n++ {
		b := s.next(staged)
		if b < prev || b > MaxBlockSize || b%minBlockSize != 0 {
			t.Fatalf("block %d: %d bytes after %d", n, b, prev)
		}
		if b > DefaultBlockSize && b > staged/growthDivisor+minBlockSize {
			t.Fatalf("block %d: %d bytes after %d staged", n, b, staged)
		}
		staged += b
		prev = b
	}
	if max := int64(maxBlocks) * MaxBlockSize; staged < max*98/100 {
		t.Fatalf("49,999 growing blocks hold %d bytes, %.1f%% of the service's %d", staged, 100*float64(staged)/float64(max), max)
	}
	t.Logf("a stream of unknown length fits up to %.1f TiB (%.1f%% of the service's maximum)", float64(staged)/(1<<40), 100*float64(staged)/float64(int64(maxBlocks)*MaxBlockSize))

	// A source that announced a size grows only past it.
	s, _ = planBlocks(0, 10<<30)
	if b := s.next(5 << 30); b != DefaultBlockSize {
		t.Fatalf("within the announced size: %d", b)
	}
	if b := s.next(20 << 30); b <= DefaultBlockSize {
		t.Fatalf("past the announced size: %d", b)
	}
}

// sized is a reader that announces a size, whatever it yields.
type sized struct {
	io.Reader
	size int64
}

func (s sized) Size() int64 { return s.size }

// TestUploadSizes uses the size a source reports: too large fails before
// any request, a large one gets larger blocks, an *os.File is measured
// from its offset.
func TestUploadSizes(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	_, err := f.client.Upload(ctx, "huge", sized{bytes.NewReader(nil), int64(maxBlocks) * MaxBlockSize}, nil)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("an upload larger than a blob: %v, want ErrTooLarge", err)
	}
	_, err = f.client.Upload(ctx, "fixed", sized{bytes.NewReader(nil), int64(maxBlocks) * testBlock}, &UploadOptions{BlockSize: testBlock})
	if !errors.Is(err, ErrTooManyBlocks) {
		t.Fatalf("too many fixed blocks: %v, want ErrTooManyBlocks", err)
	}
	if f.wire.Requests.Load() != 0 {
		t.Fatalf("refused uploads made requests: %v", f.wire)
	}

	// Announcing 300 GiB makes blocks of about 300 GiB / 49,999: the
	// 10 MiB that follow go in two blocks, not three of 4 MiB.
	pt := randomBytes(10 << 20)
	if _, err := f.client.Upload(ctx, "big", sized{bytes.NewReader(pt), 300 << 30}, nil); err != nil {
		t.Fatal(err)
	}
	sizes := blockSizes(t, f, "big")
	want := roundUp(ceilDiv(stream.EncryptedSize(300<<30, nil), maxBlocks-1), minBlockSize)
	if len(sizes) != 3 || sizes[1] != want {
		t.Fatalf("block sizes %v, want the header and blocks of %d", sizes, want)
	}
	if got, err := download(f.client, "big", nil); err != nil || !bytes.Equal(got, pt) {
		t.Fatal(err)
	}

	// A file is measured from where it is read.
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, pt, 0o600); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.Seek(1<<20, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if n := sourceSize(fh); n != 9<<20 {
		t.Fatalf("sourceSize of a file at 1 MiB: %d", n)
	}
	if _, err := f.client.Upload(ctx, "file", fh, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := download(f.client, "file", nil); err != nil || !bytes.Equal(got, pt[1<<20:]) {
		t.Fatal(err)
	}
	if n := sourceSize(struct{ io.Reader }{fh}); n != -1 {
		t.Fatalf("sourceSize of a plain reader: %d", n)
	}
}

// blockSizes returns the sizes of a blob's committed blocks.
func blockSizes(t *testing.T, f *fixture, name string) []int64 {
	t.Helper()
	bl, err := f.plain.NewBlockBlobClient(name).GetBlockList(context.Background(), blockblob.BlockListTypeCommitted, nil)
	if err != nil {
		t.Fatal(err)
	}
	var s []int64
	for _, b := range bl.BlockList.CommittedBlocks {
		s = append(s, *b.Size)
	}
	return s
}
