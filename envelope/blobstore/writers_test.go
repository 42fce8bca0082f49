package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/internal/formattest"
)

// pausingReader yields data, and when at least after bytes were read
// calls pause once and blocks until it returns.
func pausingReader(data []byte, after int, pause func()) io.Reader {
	return newEventReader(data, after, pause)
}

// otherWriter returns a Client on the fixture's container through an
// uncounted pipeline: another process writing the same blobs.
func (f *fixture) otherWriter(t *testing.T) *Client {
	t.Helper()
	return f.newClientOn(t, f.plain)
}

func (f *fixture) newClientOn(t *testing.T, cc *container.Client) *Client {
	t.Helper()
	c, err := NewClient(cc, f.kr, unrestrictedGuard(t), &ClientOptions{BlockSize: testBlock})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestConcurrentWriters overlaps two uploads of one blob: the one that
// commits second gets ErrBlobChanged, never a raw InvalidBlockList, stops
// sending early, and the blob is entirely the other writer's.
func TestConcurrentWriters(t *testing.T) {
	for _, existing := range []bool{false, true} {
		name := map[bool]string{false: "new", true: "existing"}[existing]
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, &ClientOptions{BlockSize: testBlock, Concurrency: 2})
			ctx := context.Background()
			if existing {
				f.upload(t, "doc", []byte("before both"), nil)
			}
			other := f.otherWriter(t)
			winner := randomBytes(3*testBlock + 5)
			const total = 60 * testBlock
			var sentAtWin int64
			_, err := f.client.Upload(ctx, "doc", pausingReader(randomBytes(total), 10*testBlock, func() {
				if _, err := other.Upload(ctx, "doc", bytes.NewReader(winner), nil); err != nil {
					t.Error(err)
				}
				sentAtWin = f.wire.Sent.Load()
			}), &UploadOptions{ChunkSize: testChunk})
			if !errors.Is(err, ErrBlobChanged) {
				t.Fatalf("the writer that lost: got %v, want ErrBlobChanged", err)
			}
			if bloberror.HasCode(err, bloberror.InvalidBlockList) && !errors.Is(err, ErrBlobChanged) {
				t.Fatalf("a raw InvalidBlockList: %v", err)
			}
			// Detected within the blocks between two checks (8) and those in
			// flight, not after sending everything.
			if after, limit := f.wire.Sent.Load()-sentAtWin, int64(16*testBlock); after > limit {
				t.Errorf("the loser sent %d bytes after the other commit, more than %d", after, limit)
			}
			t.Logf("loser: %v; sent %d of %d bytes", err, f.wire.Sent.Load(), total)
			if got, err := download(f.client, "doc", nil); err != nil || !bytes.Equal(got, winner) {
				t.Fatalf("the blob is not the winner's: %v", err)
			}
		})
	}
}

// TestLateCommitLoses lets the other writer commit between the loser's
// last check and its commit: the commit's condition catches it.
func TestLateCommitLoses(t *testing.T) {
	f := newFixture(t, &ClientOptions{BlockSize: testBlock})
	ctx := context.Background()
	f.upload(t, "doc", []byte("v1"), nil)
	other := f.otherWriter(t)
	f.wire.Intercept(func(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
		if isCommit(req) {
			f.wire.Intercept(nil)
			if _, err := other.Upload(ctx, "doc", strings.NewReader("the winner"), nil); err != nil {
				t.Error(err)
			}
		}
		return send(req)
	})
	_, err := f.client.Upload(ctx, "doc", bytes.NewReader(randomBytes(2*testBlock)), nil)
	if !errors.Is(err, ErrBlobChanged) || errors.Is(err, ErrCommitUncertain) {
		t.Fatalf("late commit: got %v, want ErrBlobChanged", err)
	}
	if got, err := download(f.client, "doc", nil); err != nil || string(got) != "the winner" {
		t.Fatalf("blob: %q, %v", got, err)
	}
}

func isCommit(req *http.Request) bool {
	return req.Method == http.MethodPut && req.URL.Query().Get("comp") == "blocklist"
}

// TestRewrapDuringUpload documents what happens when a blob is rewrapped
// while an upload of it is staging: the Rewrap commits (the old content,
// under the new key), and the Upload fails with ErrBlobChanged, early,
// since the Rewrap's commit discarded its staged blocks. It fails loudly,
// never silently, and a retry succeeds.
func TestRewrapDuringUpload(t *testing.T) {
	f := newFixture(t, &ClientOptions{BlockSize: testBlock, Concurrency: 2})
	ctx := context.Background()
	old := randomBytes(2*testBlock + 77)
	f.upload(t, "doc", old, &UploadOptions{ChunkSize: testChunk})
	newKR := formattest.NewAES(t)
	rotator := f.otherWriter(t)
	next := randomBytes(40 * testBlock)
	var rewrapErr error
	_, err := f.client.Upload(ctx, "doc", pausingReader(next, 8*testBlock, func() {
		_, rewrapErr = rotator.Rewrap(ctx, "doc", newKR, nil)
	}), &UploadOptions{ChunkSize: testChunk})
	if rewrapErr != nil {
		t.Fatalf("Rewrap during an upload: %v", rewrapErr)
	}
	if !errors.Is(err, ErrBlobChanged) {
		t.Fatalf("Upload during a Rewrap: got %v, want ErrBlobChanged", err)
	}
	if s := f.wire.Sent.Load(); s > int64(len(next))/2 {
		t.Errorf("the upload sent %d of %d bytes before failing", s, len(next))
	}
	got, err := download(f.newClient(t, newKR, nil), "doc", nil)
	if err != nil || !bytes.Equal(got, old) {
		t.Fatalf("after the race the blob should be the old content under the new key: %v", err)
	}
	if _, err := f.client.Upload(ctx, "doc", bytes.NewReader(next), &UploadOptions{ChunkSize: testChunk}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got, err := download(f.client, "doc", nil); err != nil || !bytes.Equal(got, next) {
		t.Fatalf("after the retry: %v", err)
	}
}

// errLost stands for a response lost on the way back.
var errLost = errors.New("connection reset (test)")

// TestCommitCertainty makes the commit fail in the ways that leave its
// outcome open, and checks that Upload reports what happened.
func TestCommitCertainty(t *testing.T) {
	cases := []struct {
		name string
		// hook intercepts the requests of the upload's commit phase.
		hook          func(f *fixture, cancel context.CancelFunc) func(*http.Request, func(*http.Request) (*http.Response, error)) (*http.Response, error)
		wantCommitted bool
		wantErr       error
	}{
		{"response lost, retried", func(f *fixture, _ context.CancelFunc) func(*http.Request, func(*http.Request) (*http.Response, error)) (*http.Response, error) {
			var lost atomic.Bool
			return func(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
				resp, err := send(req)
				if isCommit(req) && err == nil && lost.CompareAndSwap(false, true) {
					resp.Body.Close()
					return nil, errLost // the retry then fails If-Match: the first attempt changed the ETag
				}
				return resp, err
			}
		}, true, nil},
		{"every response lost", func(f *fixture, _ context.CancelFunc) func(*http.Request, func(*http.Request) (*http.Response, error)) (*http.Response, error) {
			return func(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
				resp, err := send(req)
				if isCommit(req) && err == nil {
					resp.Body.Close()
					return nil, errLost
				}
				return resp, err
			}
		}, true, nil},
		{"never arrived", func(f *fixture, _ context.CancelFunc) func(*http.Request, func(*http.Request) (*http.Response, error)) (*http.Response, error) {
			return func(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
				if isCommit(req) {
					return nil, errLost
				}
				return send(req)
			}
		}, false, errLost},
		{"lost, and the read-back fails", func(f *fixture, _ context.CancelFunc) func(*http.Request, func(*http.Request) (*http.Response, error)) (*http.Response, error) {
			return func(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
				if req.URL.Query().Get("comp") == "blocklist" && req.Method == http.MethodGet {
					return nil, errLost
				}
				resp, err := send(req)
				if isCommit(req) && err == nil {
					resp.Body.Close()
					return nil, errLost
				}
				return resp, err
			}
		}, true, ErrCommitUncertain},
		{"cancelled while committing", func(f *fixture, cancel context.CancelFunc) func(*http.Request, func(*http.Request) (*http.Response, error)) (*http.Response, error) {
			return func(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
				if isCommit(req) {
					cancel() // the caller gives up once everything is staged
				}
				return send(req)
			}
		}, true, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, &ClientOptions{BlockSize: testBlock})
			f.upload(t, "doc", []byte("old"), nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f.wire.Intercept(c.hook(f, cancel))
			next := randomBytes(2*testBlock + 3)
			resp, err := f.client.Upload(ctx, "doc", bytes.NewReader(next), nil)
			f.wire.Intercept(nil)
			switch {
			case c.wantErr == nil && err != nil:
				t.Fatalf("Upload: %v, want success", err)
			case c.wantErr != nil && !errors.Is(err, c.wantErr):
				t.Fatalf("Upload: %v, want %v", err, c.wantErr)
			}
			got, derr := download(f.client, "doc", nil)
			if derr != nil {
				t.Fatal(derr)
			}
			if committed := bytes.Equal(got, next); committed != c.wantCommitted {
				t.Fatalf("committed: %v, want %v (Upload said %v)", committed, c.wantCommitted, err)
			}
			if !c.wantCommitted && string(got) != "old" {
				t.Fatalf("the old blob is not intact: %q", got)
			}
			if err == nil {
				props, _ := f.plain.NewBlobClient("doc").GetProperties(context.Background(), nil)
				if resp.ETag == nil || *resp.ETag != *props.ETag {
					t.Errorf("UploadResponse.ETag %v, the blob's %v", resp.ETag, *props.ETag)
				}
			}
		})
	}
}

// TestCommitReadBack checks the read-back alone: a block list that is not
// the upload's is no success.
func TestCommitReadBack(t *testing.T) {
	f := newFixture(t, nil)
	bb := f.container.NewBlockBlobClient("x")
	f.upload(t, "x", []byte("someone else's"), nil)
	ids := []string{blockID([16]byte{1}, 0)}
	etag := azcore.ETag(`"stale"`)
	_, err := commit(context.Background(), bb, ids, &blockblob.CommitBlockListOptions{AccessConditions: ifMatch(etag)})
	if !errors.Is(err, ErrBlobChanged) || errors.Is(err, ErrCommitUncertain) {
		t.Fatalf("commit against a stale ETag: %v", err)
	}
}
