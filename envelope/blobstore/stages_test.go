package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/geoseal/geoseal/keyring"
	"go.uber.org/goleak"
)

// TestCancelAtEveryStage cancels each operation just before each of the
// requests it makes, in turn: the operation returns (an error, or, for a
// commit already under way, success), no goroutine outlives it, and an
// upload leaves either the old blob or the new one, whole.
func TestCancelAtEveryStage(t *testing.T) {
	f := newFixture(t, &ClientOptions{BlockSize: testBlock, RangeSize: 2 * testBlock, Concurrency: 3})
	old := randomBytes(3*testBlock + 11)
	f.upload(t, "doc", old, &UploadOptions{ChunkSize: testChunk})
	for i := range 3 {
		f.upload(t, fmt.Sprintf("all/%d", i), randomBytes(1000*i), nil)
	}
	next := randomBytes(5*testBlock + 3)
	srv := f.serve(t, f.client)

	ops := []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"Upload", func(ctx context.Context) error {
			_, err := f.client.Upload(ctx, "up", bytes.NewReader(next), &UploadOptions{ChunkSize: testChunk})
			return err
		}},
		{"Download", func(ctx context.Context) error {
			resp, err := f.client.Download(ctx, "doc", nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, err = io.Copy(io.Discard, resp.Body)
			return err
		}},
		{"Open and read", func(ctx context.Context) error {
			b, err := f.client.Open(ctx, "doc", nil)
			if err != nil {
				return err
			}
			defer b.Close()
			if _, err := b.ReadAt(make([]byte, 2*testBlock), 1000); err != nil {
				return err
			}
			buf := make([]byte, 5000)
			for {
				if _, err := b.Read(buf); err != nil {
					return err
				}
			}
		}},
		{"GetProperties", func(ctx context.Context) error {
			_, err := f.client.GetProperties(ctx, "doc", nil)
			return err
		}},
		{"Rewrap", func(ctx context.Context) error {
			_, err := f.client.Rewrap(ctx, "all/1", f.kr, nil)
			return err
		}},
		{"RewrapAll", func(ctx context.Context) error {
			_, err := f.client.RewrapAll(ctx, f.kr, &RewrapAllOptions{Prefix: "all/"})
			return err
		}},
		{"Audit", func(ctx context.Context) error {
			_, err := f.client.Audit(ctx, &AuditOptions{Prefix: "all/", Keys: []keyring.Wrapper{f.kr}})
			return err
		}},
		{"ServeBlob", func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/doc", nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, err = io.Copy(io.Discard, resp.Body)
			return err
		}},
	}
	for _, op := range ops {
		// A dry run counts the requests.
		f.wire.Reset()
		f.client.opened = openCache{} // every run opens from scratch
		if err := op.run(context.Background()); err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("%s: %v", op.name, err)
		}
		total := int(f.wire.Requests.Load())
		for n := 1; n <= total; n++ {
			t.Run(fmt.Sprintf("%s/%d-of-%d", op.name, n, total), func(t *testing.T) {
				f.client.opened = openCache{}
				before := goleak.IgnoreCurrent()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var count atomic.Int64
				f.wire.Intercept(func(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
					if count.Add(1) == int64(n) {
						cancel()
					}
					return send(req)
				})
				err := op.run(ctx)
				f.wire.Intercept(nil)
				if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
					t.Errorf("%s cancelled before request %d: %v, want context.Canceled", op.name, n, err)
				}
				verifyNoLeak(t, before, func() {
					srv.CloseClientConnections()
					srv.Client().CloseIdleConnections()
					f.transport.CloseIdleConnections()
				})
				if op.name == "Upload" {
					got, derr := download(f.client, "up", nil)
					if derr != nil && !isNotFound(derr) || derr == nil && !bytes.Equal(got, next) {
						t.Errorf("after a cancel at request %d the upload left %d bytes, %v", n, len(got), derr)
					}
					if err == nil && derr != nil {
						t.Errorf("Upload said committed, but the blob is missing: %v", derr)
					}
					f.plain.NewBlobClient("up").Delete(context.Background(), nil)
				}
			})
		}
	}
}

// verifyNoLeak is goleak.VerifyNone for a test whose HTTP transports may
// still be finishing a dial that a cancelled request started: net/http puts
// such a connection in its idle pool after the request has returned, where
// it keeps two goroutines until it is closed. So closeIdle runs again
// before each look, for a few looks. A connection held by a response body
// nobody closed is not idle, so it is still found.
func verifyNoLeak(t *testing.T, before goleak.Option, closeIdle func()) {
	t.Helper()
	var err error
	for range 5 {
		closeIdle()
		if err = goleak.Find(before); err == nil {
			return
		}
	}
	t.Error(err)
}
