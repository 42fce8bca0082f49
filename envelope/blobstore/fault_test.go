package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"go.uber.org/goleak"
)

// eventReader yields data and calls event once, when at least after bytes
// have been read.
type eventReader struct {
	r     io.Reader
	after int
	read  int
	once  sync.Once
	event func()
}

func newEventReader(data []byte, after int, event func()) *eventReader {
	return &eventReader{r: bytes.NewReader(data), after: after, event: event}
}

func (e *eventReader) Read(p []byte) (int, error) {
	if e.read >= e.after {
		e.once.Do(e.event)
	}
	n, err := e.r.Read(p[:min(len(p), 16<<10)])
	e.read += n
	return n, err
}

// TestUploadAzuriteStopped stops the emulator in the middle of an upload:
// the upload fails, the previous blob is intact and no new one is
// committed; after a restart the same upload succeeds.
func TestUploadAzuriteStopped(t *testing.T) {
	f := newFixture(t, &ClientOptions{BlockSize: testBlock, Concurrency: 2})
	if f.srv.External() {
		t.Skip("the emulator was not started by this test and cannot be stopped")
	}
	ctx := context.Background()
	old := randomBytes(2*testBlock + 10)
	oldResp := f.upload(t, "doc", old, &UploadOptions{ChunkSize: testChunk})

	next := randomBytes(20 * testBlock)
	stopped := false
	_, err := f.client.Upload(ctx, "doc", newEventReader(next, 5*testBlock, func() {
		if err := f.srv.Stop(); err != nil {
			t.Error(err)
		}
		stopped = true
	}), &UploadOptions{ChunkSize: testChunk})
	if !stopped {
		t.Fatal("the upload finished before the emulator was stopped")
	}
	if err == nil {
		t.Fatal("Upload succeeded with the emulator stopped")
	}
	t.Logf("upload with the emulator stopped: %v", err)

	if err := f.srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	props, err := f.plain.NewBlobClient("doc").GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *props.ETag != *oldResp.ETag {
		t.Fatalf("the blob changed: ETag %s, was %s", *props.ETag, *oldResp.ETag)
	}
	if got, err := download(f.client, "doc", nil); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("the previous blob is not intact: %v", err)
	}

	// Retry: the same upload, same client, after the restart.
	if _, err := f.client.Upload(ctx, "doc", bytes.NewReader(next), &UploadOptions{ChunkSize: testChunk}); err != nil {
		t.Fatalf("retry after restart: %v", err)
	}
	if got, err := download(f.client, "doc", nil); err != nil || !bytes.Equal(got, next) {
		t.Fatalf("after the retry: %v", err)
	}
}

// TestUploadCancel cancels uploads midway: nothing is committed, the
// previous blob stands, and no goroutine outlives Upload.
func TestUploadCancel(t *testing.T) {
	f := newFixture(t, &ClientOptions{BlockSize: testBlock, Concurrency: 3})
	old := randomBytes(testBlock + 1)
	oldResp := f.upload(t, "existing", old, nil)
	setupDone := goleak.IgnoreCurrent()

	for _, name := range []string{"existing", "new"} {
		ctx, cancel := context.WithCancel(context.Background())
		_, err := f.client.Upload(ctx, name, newEventReader(randomBytes(30*testBlock), 6*testBlock, cancel),
			&UploadOptions{ChunkSize: testChunk, Concurrency: 3})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled upload of %q: got %v, want context.Canceled", name, err)
		}
	}
	f.transport.CloseIdleConnections()
	goleak.VerifyNone(t, setupDone)

	ctx := context.Background()
	if _, err := f.plain.NewBlobClient("new").GetProperties(ctx, nil); !bloberror.HasCode(err, bloberror.BlobNotFound) {
		t.Fatalf("a cancelled upload committed a blob: %v", err)
	}
	props, err := f.plain.NewBlobClient("existing").GetProperties(ctx, nil)
	if err != nil || *props.ETag != *oldResp.ETag {
		t.Fatalf("the previous blob changed: %v", err)
	}
	if got, err := download(f.client, "existing", nil); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("the previous blob is not intact: %v", err)
	}
}

// TestDownloadCloseEarly closes downloads and Blobs before their end, and
// cancels one: no goroutine survives.
func TestDownloadCloseEarly(t *testing.T) {
	f := newFixture(t, &ClientOptions{BlockSize: testBlock, RangeSize: testBlock, Concurrency: 4})
	pt := randomBytes(12 * testBlock)
	f.upload(t, "big", pt, &UploadOptions{ChunkSize: testChunk})
	setupDone := goleak.IgnoreCurrent()

	ctx := context.Background()
	resp, err := f.client.Download(ctx, "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, testBlock+5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || !bytes.Equal(buf, pt[:len(buf)]) {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := resp.Body.Read(buf); err == nil {
		t.Fatal("Read after Close succeeded")
	}

	b, err := f.client.Open(ctx, "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Seek(100, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	for range 10 { // ramps up to parallel GETs
		if _, err := io.ReadFull(b, buf); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	if _, err := b.Read(buf); err == nil {
		t.Fatal("Read after Close succeeded")
	}
	if _, err := b.ReadAt(buf, 0); err == nil {
		t.Fatal("ReadAt after Close succeeded")
	}
	if _, err := b.ReadAt(buf[:10], b.Size()-10); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("ReadAt of the final chunk after Close: %v, want fs.ErrClosed", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	resp, err = f.client.Download(cctx, "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.ReadAll(resp.Body)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: got %v, want context.Canceled", err)
	}
	resp.Body.Close()

	f.transport.CloseIdleConnections()
	goleak.VerifyNone(t, setupDone)
}

// TestStagerMemory checks the stager's bound: however much is written, at
// most Concurrency + 1 block buffers exist and at most Concurrency blocks
// are in flight.
func TestStagerMemory(t *testing.T) {
	f := newFixture(t, nil)
	const concurrency = 2
	bb := f.container.NewBlockBlobClient("bounded")
	sizer, err := planBlocks(testBlock, -1)
	if err != nil {
		t.Fatal(err)
	}
	s := newStager(context.Background(), bb, pinned{}, uploadPlan{sizer: sizer, concurrency: concurrency}, &UploadOptions{}, new(bufferPool))
	data := randomBytes(40 * testBlock)
	f.wire.Reset()
	err = s.run([]byte("header"), func(w io.Writer) error {
		for p := data; len(p) > 0; p = p[min(len(p), 1000):] {
			if _, err := w.Write(p[:min(len(p), 1000)]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.total != int64(len(data))+6 || len(s.ids) != 41 {
		t.Fatalf("staged %d bytes in %d blocks", s.total, len(s.ids))
	}
	if s.nbufs > concurrency+1 {
		t.Fatalf("%d block buffers allocated, bound is %d", s.nbufs, concurrency+1)
	}
	if m := f.wire.MaxPuts.Load(); m > concurrency {
		t.Fatalf("%d blocks in flight at once, bound is %d", m, concurrency)
	}
	if _, err := bb.CommitBlockList(context.Background(), s.ids, nil); err != nil {
		t.Fatal(err)
	}
	raw, _ := f.rawBlob(t, "bounded")
	if !bytes.Equal(raw, append([]byte("header"), data...)) {
		t.Fatal("the blocks do not reassemble the input")
	}
	bl, err := bb.GetBlockList(context.Background(), blockblob.BlockListTypeCommitted, nil)
	if err != nil || *bl.BlockList.CommittedBlocks[0].Size != 6 {
		t.Fatalf("the header is not its own block: %v", err)
	}
}
