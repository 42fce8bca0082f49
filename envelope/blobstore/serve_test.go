package blobstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/internal/formattest"
	"go.uber.org/goleak"
)

// serveFixture is a fixture with an HTTP server that serves its blobs
// through ServeBlob at /NAME.
type serveFixture struct {
	*fixture
	srv *httptest.Server
}

func newServeFixture(t *testing.T, opts *ClientOptions) *serveFixture {
	t.Helper()
	f := newFixture(t, opts)
	return &serveFixture{fixture: f, srv: f.serve(t, f.client)}
}

// serve returns an HTTP server that serves c's blobs at /NAME.
func (f *fixture) serve(t *testing.T, c *Client) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.ServeBlob(w, r, strings.TrimPrefix(r.URL.Path, "/"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// get sends a request with the given headers and returns the response with
// its body read (or the error reading it).
func (s *serveFixture) get(t *testing.T, method, name string, hdr map[string]string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+"/"+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestServeBlob(t *testing.T) {
	s := newServeFixture(t, &ClientOptions{RangeSize: testBlock})
	pt := randomBytes(10*testChunk + 123)
	s.upload(t, "doc.txt", pt, &UploadOptions{ChunkSize: testChunk})
	props, err := s.client.GetProperties(context.Background(), "doc.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	etag := quoteETag(string(props.ETag))
	lastMod := props.LastModified.UTC().Format(http.TimeFormat)
	size := len(pt)

	cases := []struct {
		name     string
		method   string
		hdr      map[string]string
		status   int
		body     []byte // nil: empty
		checkHdr map[string]string
	}{
		{"whole", "GET", nil, 200, pt, map[string]string{"Content-Length": fmt.Sprint(size), "ETag": etag, "Last-Modified": lastMod, "Accept-Ranges": "bytes", "Content-Type": "text/plain; charset=utf-8"}},
		{"HEAD", "HEAD", nil, 200, nil, map[string]string{"Content-Length": fmt.Sprint(size), "ETag": etag}},
		{"range", "GET", map[string]string{"Range": "bytes=5000-5099"}, 206, pt[5000:5100], map[string]string{"Content-Range": fmt.Sprintf("bytes 5000-5099/%d", size), "Content-Length": "100"}},
		{"suffix range", "GET", map[string]string{"Range": "bytes=-10"}, 206, pt[size-10:], map[string]string{"Content-Range": fmt.Sprintf("bytes %d-%d/%d", size-10, size-1, size)}},
		{"open range", "GET", map[string]string{"Range": fmt.Sprintf("bytes=%d-", testChunk-1)}, 206, pt[testChunk-1:], nil},
		{"range past the end", "GET", map[string]string{"Range": fmt.Sprintf("bytes=%d-", size+10)}, 416, nil, nil},
		{"If-None-Match", "GET", map[string]string{"If-None-Match": etag}, 304, nil, nil},
		{"If-None-Match other", "GET", map[string]string{"If-None-Match": `"other"`}, 200, pt, nil},
		{"If-Modified-Since", "GET", map[string]string{"If-Modified-Since": lastMod}, 304, nil, nil},
		{"If-Modified-Since before", "GET", map[string]string{"If-Modified-Since": props.LastModified.Add(-time.Hour).UTC().Format(http.TimeFormat)}, 200, pt, nil},
		{"If-Match other", "GET", map[string]string{"If-Match": `"other"`}, 412, nil, nil},
		{"If-Match", "GET", map[string]string{"If-Match": etag, "Range": "bytes=0-0"}, 206, pt[:1], nil},
		{"If-Range stale", "GET", map[string]string{"If-Range": `"stale"`, "Range": "bytes=0-9"}, 200, pt, nil},
		{"If-Range", "GET", map[string]string{"If-Range": etag, "Range": "bytes=0-9"}, 206, pt[:10], nil},
		{"POST", "POST", nil, 405, nil, map[string]string{"Allow": "GET, HEAD"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body, err := s.get(t, c.method, "doc.txt", c.hdr)
			if err != nil {
				t.Fatalf("reading the body: %v", err)
			}
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if c.body != nil && !bytes.Equal(body, c.body) {
				t.Fatalf("body of %d bytes, want %d", len(body), len(c.body))
			}
			if c.body == nil && c.status < 400 && len(body) != 0 {
				t.Fatalf("body of %d bytes, want none", len(body))
			}
			for k, v := range c.checkHdr {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}

	t.Run("multi-range", func(t *testing.T) {
		resp, body, err := s.get(t, "GET", "doc.txt", map[string]string{"Range": "bytes=0-9,8000-8999,-5"})
		if err != nil || resp.StatusCode != 206 {
			t.Fatalf("status %d, %v", resp.StatusCode, err)
		}
		mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/byteranges" {
			t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
		}
		if cl := resp.Header.Get("Content-Length"); cl != fmt.Sprint(len(body)) {
			t.Errorf("Content-Length %s for a body of %d", cl, len(body))
		}
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for _, want := range [][2]int{{0, 10}, {8000, 9000}, {size - 5, size}} {
			p, err := mr.NextPart()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(p)
			if !bytes.Equal(got, pt[want[0]:want[1]]) || p.Header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", want[0], want[1]-1, size) {
				t.Fatalf("part %v: %q, %d bytes", want, p.Header.Get("Content-Range"), len(got))
			}
		}
		if _, err := mr.NextPart(); err != io.EOF {
			t.Fatalf("more parts: %v", err)
		}
	})

	t.Run("Content-Type set by the caller", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-step")
			s.client.ServeBlob(w, r, "doc.txt")
		}))
		defer srv.Close()
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "application/x-step" {
			t.Fatalf("Content-Type %q", ct)
		}
	})
}

// TestServeBlobErrors checks that what fails before the first byte is an
// error status, and what fails in the middle of the body breaks the
// connection.
func TestServeBlobErrors(t *testing.T) {
	s := newServeFixture(t, &ClientOptions{RangeSize: testBlock})
	pt := randomBytes(40*testChunk + 5)
	s.upload(t, "doc", pt, &UploadOptions{ChunkSize: testChunk})

	if resp, _, _ := s.get(t, "GET", "missing", nil); resp.StatusCode != 404 {
		t.Errorf("missing blob: %d", resp.StatusCode)
	}
	wrong := s.serve(t, s.newClient(t, formattest.NewAES(t), nil))
	resp, err := http.Get(wrong.URL + "/doc")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || bytes.Contains(body, pt[:16]) {
		t.Errorf("wrong key: status %d, %d bytes", resp.StatusCode, len(body))
	}
	s.putRaw(t, "plain", []byte("not encrypted"), nil)
	if resp, body, _ := s.get(t, "GET", "plain", nil); resp.StatusCode != 500 || bytes.Contains(body, []byte("not encrypted")) {
		t.Errorf("a blob that is not encrypted: %d %q", resp.StatusCode, body)
	}

	// A chunk in the middle modified: the header and final chunk still
	// authenticate, so the response starts 200 OK, and then breaks.
	raw, md := s.rawBlob(t, "doc")
	h, _ := envelope.Inspect(bytes.NewReader(raw))
	tampered := bytes.Clone(raw)
	tampered[h.Size+20*(testChunk+chunkOverhead)+50] ^= 1
	s.putRaw(t, "tampered", tampered, md)
	resp, body, err = s.get(t, "GET", "tampered", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("tampered body: status %d before the body", resp.StatusCode)
	}
	if err == nil {
		t.Fatalf("the response with a tampered chunk ended cleanly, with %d of %s bytes", len(body), resp.Header.Get("Content-Length"))
	}
	if len(body) > 20*testChunk || !bytes.Equal(body, pt[:len(body)]) {
		t.Fatalf("%d bytes before the abort: more than the chunks before the tampered one, or not the plaintext", len(body))
	}
	t.Logf("tampered chunk: %v after %d bytes", err, len(body))
	// A range that avoids the modified chunk is served.
	if resp, body, err := s.get(t, "GET", "tampered", map[string]string{"Range": "bytes=0-99"}); err != nil || resp.StatusCode != 206 || !bytes.Equal(body, pt[:100]) {
		t.Fatalf("range before the tampered chunk: %d, %v", resp.StatusCode, err)
	}

	// The blob replaced after the response started: the abort again.
	var once bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.client.ServeBlob(&replacingWriter{ResponseWriter: w, replace: func() {
			if !once {
				once = true
				s.upload(t, "doc", []byte("replaced"), nil)
			}
		}}, r, "doc")
	}))
	defer srv.Close()
	resp, err = http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || resp.StatusCode != 200 {
		t.Fatalf("blob replaced mid-response: status %d, %d bytes, %v", resp.StatusCode, len(body), err)
	}
}

// replacingWriter calls replace after the first body write.
type replacingWriter struct {
	http.ResponseWriter
	replace func()
	n       int
}

func (w *replacingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	if w.n += n; w.n > 0 {
		w.replace()
	}
	return n, err
}

// TestServeBlobFetchBudget counts what a 100-byte Range costs: the chunk
// or two that hold it, plus, on the request that first opens the blob, the
// header and the final chunk (later requests find them in the client's
// open cache, and pay a HEAD).
func TestServeBlobFetchBudget(t *testing.T) {
	s := newServeFixture(t, nil)
	const chunk = 64 << 10 // the default
	enc := int64(chunk + chunkOverhead)
	for _, size := range []int{3<<20 + 999, 3 << 20} { // a short and a full final chunk
		name := fmt.Sprint("video-", size)
		pt := randomBytes(size)
		s.upload(t, name, pt, nil)
		_, header, final := objectLayout(t, s.fixture, name)
		for i, off := range []int{0, 1 << 20, 2<<20 + 7, chunk - 50, 3<<20 - 100, size - 100, 5 * chunk} {
			s.wire.Reset()
			resp, body, err := s.get(t, "GET", name, map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", off, off+99)})
			if err != nil || resp.StatusCode != 206 || !bytes.Equal(body, pt[off:off+100]) {
				t.Fatalf("range at %d: %d, %v", off, resp.StatusCode, err)
			}
			got := s.wire.Received.Load()
			budget := enc + 1024 // the range's chunk
			if off%chunk+100 > chunk {
				budget += enc // the range straddles two chunks
			}
			if i == 0 {
				budget += header + final // the first request opens the blob
			}
			if got > budget {
				t.Errorf("%s, request %d, 100 bytes at %d: fetched %d bytes, budget %d (%v)", name, i, off, got, budget, s.wire)
			}
			t.Logf("%s, 100 bytes at %d: %d bytes fetched in %d requests", name, off, got, s.wire.Requests.Load())
		}
	}
}

// TestServeBlobNoLeak serves and aborts responses: no goroutine survives.
func TestServeBlobNoLeak(t *testing.T) {
	s := newServeFixture(t, &ClientOptions{RangeSize: testBlock, Concurrency: 4})
	pt := randomBytes(60 * testChunk)
	s.upload(t, "doc", pt, &UploadOptions{ChunkSize: testChunk})
	setupDone := goleak.IgnoreCurrent()
	for range 3 {
		// A client that reads a little and hangs up.
		resp, err := s.srv.Client().Get(s.srv.URL + "/doc")
		if err != nil {
			t.Fatal(err)
		}
		io.ReadFull(resp.Body, make([]byte, 1000))
		resp.Body.Close()
		if _, body, err := s.get(t, "GET", "doc", map[string]string{"Range": "bytes=0-9,100000-100009"}); err != nil || len(body) == 0 {
			t.Fatal(err)
		}
	}
	s.srv.CloseClientConnections()
	s.srv.Client().CloseIdleConnections()
	s.transport.CloseIdleConnections()
	goleak.VerifyNone(t, setupDone)
}
