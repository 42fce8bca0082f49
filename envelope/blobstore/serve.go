package blobstore

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/geoseal/geoseal/envelope"
)

// ServeBlob serves the plaintext of the blob name over HTTP the way
// http.ServeContent serves a file (it calls it): GET and HEAD, Range with
// one or several ranges, If-None-Match, If-Match and If-Range with the
// blob's ETag, If-Modified-Since and If-Unmodified-Since with its
// Last-Modified, and Content-Length of the plaintext. Other methods get
// 405.
//
// It opens the blob first (see Open, with ClientOptions.RequireContext),
// so every failure that can be known before the first byte is an error
// status before any header is written: 404 for a missing blob, 403 for a
// context mismatch, 500 when the object cannot be opened (no key unwraps
// it, its header or final chunk does not authenticate, it is not a
// geoseal object), 502 for other storage errors. A failure in the middle
// of the body (a chunk that does not authenticate, a blob replaced since
// it was opened) cannot change the status any more: ServeBlob aborts the
// response by panicking with http.ErrAbortHandler, which net/http's
// server turns into a broken connection, so the client never takes a cut
// body for a whole one. The reason of an error status or an abort goes to
// ClientOptions.Logger, not to the client.
//
// Each range fetches only the chunks that hold it (see Blob). The
// Content-Type is the one the caller set on w, else the one of name's
// extension, else application/octet-stream: the blob's stored
// Content-Type is not authenticated and is not used.
func (c *Client) ServeBlob(w http.ResponseWriter, r *http.Request, name string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	b, err := c.open(r.Context(), name, openRequest{checkKey: true})
	if err != nil {
		code := serveStatus(err)
		c.logServe(r.Context(), name, code, err)
		http.Error(w, http.StatusText(code), code)
		return
	}
	defer b.Close()
	h := w.Header()
	h.Set("ETag", quoteETag(string(b.props.ETag)))
	if _, ok := h["Content-Type"]; !ok {
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.Set("Content-Type", ct)
	}
	content := &servedBlob{b: b}
	// The name is not passed: the Content-Type is set, and ServeContent
	// must not read the body to sniff one.
	http.ServeContent(w, r, "", b.props.LastModified, content)
	if err := content.failure(); err != nil {
		c.logServe(r.Context(), name, 0, err)
		panic(http.ErrAbortHandler)
	}
}

// servedBlob is the io.ReadSeeker ServeContent reads: a Blob that records
// its first read error, which ServeContent itself would only take for a
// short body.
type servedBlob struct {
	b   *Blob
	mu  sync.Mutex
	err error
}

func (s *servedBlob) Read(p []byte) (int, error) {
	n, err := s.b.Read(p)
	if err != nil && err != io.EOF {
		s.mu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.mu.Unlock()
	}
	return n, err
}

func (s *servedBlob) Seek(offset int64, whence int) (int64, error) {
	return s.b.Seek(offset, whence)
}

func (s *servedBlob) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// serveStatus is the HTTP status ServeBlob answers a failed open with.
func serveStatus(err error) int {
	switch {
	case isNotFound(err), errors.Is(err, ErrInvalidName):
		// Under SealNames a name that cannot be sealed names no blob.
		return http.StatusNotFound
	case errors.Is(err, envelope.ErrContextMismatch):
		return http.StatusForbidden
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	case statusCode(err) != 0:
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// quoteETag returns an ETag in the quoted form HTTP validators use.
func quoteETag(etag string) string {
	if strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, `W/"`) {
		return etag
	}
	return `"` + etag + `"`
}

func (c *Client) logServe(ctx context.Context, name string, status int, err error) {
	if c.opts.Logger == nil {
		return
	}
	if status == 0 {
		c.opts.Logger.WarnContext(ctx, "blobstore: ServeBlob aborted the response", "blob", name, "err", err)
		return
	}
	c.opts.Logger.WarnContext(ctx, "blobstore: ServeBlob refused", "blob", name, "status", status, "err", err)
}
