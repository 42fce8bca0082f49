package envelope

import (
	"context"
	"io"

	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
)

// DecryptOptions configures Decrypt and DecryptAt. Nil means the defaults.
type DecryptOptions struct {
	// RequireContext lists pairs the object's encryption context must
	// contain; an object without one of them fails with ErrContextMismatch.
	// The context may hold other pairs too.
	RequireContext keyring.Context

	// Concurrency is how many chunks are opened in parallel; 0 or 1 opens
	// them in the calling goroutine.
	Concurrency int

	// MaxWrappedKeys is how many wrapped keys an object may list before it
	// is refused (with an error matching keyring.ErrTooManyKeys) without
	// any unwrap attempt. Zero means keyring.DefaultMaxWrappedKeys; the
	// format's hard limit is MaxWrappedKeys.
	MaxWrappedKeys int
}

// Decrypt reads the header of the object in src, unwraps its data key with
// u, verifies the key commitment, the header tag and opts.RequireContext,
// and returns a Reader of the plaintext.
//
// Nothing is returned from the body before it is authenticated: every chunk
// is verified before any of its bytes are, and a truncated, reordered or
// extended body fails with an error matching ErrBodyTampered instead of
// io.EOF. A caller that must not act on a partial plaintext should buffer
// it until Read returns io.EOF.
//
// With opts.Concurrency > 1 the Reader opens chunks on goroutines of its
// own: Close it (see Reader.Close). ctx bounds the key operations; it does
// not cancel the reads that follow.
func Decrypt(ctx context.Context, src io.Reader, u keyring.Unwrapper, opts *DecryptOptions) (*Reader, error) {
	header, err := format.ReadHeader(src)
	if err != nil {
		return nil, err
	}
	body, err := unlockBody(ctx, header, u, opts)
	if err != nil {
		return nil, err
	}
	return openBody(src, body)
}

// DecryptAt opens the object of the given size in src for random access,
// with the checks of Decrypt. It reads the header and authenticates the
// final chunk before it returns, so the returned ReaderAt's Size is the
// trusted plaintext size; each ReadAt authenticates the chunks it reads.
//
// Errors of the open itself are those of Decrypt. Errors of ReadAt come
// from package stream: a chunk that fails authentication is reported as a
// *stream.ChunkError matching stream.ErrAuthentication, and no byte of it is
// returned.
func DecryptAt(ctx context.Context, src io.ReaderAt, size int64, u keyring.Unwrapper, opts *DecryptOptions) (*stream.ReaderAt, error) {
	header, err := format.ReadHeaderAt(src, size)
	if err != nil {
		return nil, err
	}
	body, err := unlockBody(ctx, header, u, opts)
	if err != nil {
		return nil, err
	}
	off := int64(len(header))
	return openBodyAt(io.NewSectionReader(src, off, size-off), size-off, body)
}

// openBody returns the Reader of the body in src and zeroes the content
// key: the stream.Reader keeps no copy of it.
func openBody(src io.Reader, body *format.Body) (*Reader, error) {
	defer body.Zero()
	r, err := stream.NewReader(src, body.Key, &body.Options)
	if err != nil {
		return nil, format.BodyError(err)
	}
	return &Reader{r: r}, nil
}

// openBodyAt returns the ReaderAt of the body of the given size in src and
// zeroes the content key: the stream.ReaderAt keeps no copy of it.
func openBodyAt(src io.ReaderAt, size int64, body *format.Body) (*stream.ReaderAt, error) {
	defer body.Zero()
	ra, err := stream.NewReaderAt(src, size, body.Key, &body.Options)
	if err != nil {
		return nil, format.BodyError(err)
	}
	return ra, nil
}

// unlockBody unlocks the complete header with u (format.Unlock: commitment,
// tag, opts.RequireContext) and returns what opens the body after it.
func unlockBody(ctx context.Context, header []byte, u keyring.Unwrapper, opts *DecryptOptions) (*format.Body, error) {
	if opts == nil {
		opts = &DecryptOptions{}
	}
	_, body, err := format.Unlock(ctx, header, u, &format.UnlockOptions{
		RequireContext: opts.RequireContext,
		MaxWrappedKeys: opts.MaxWrappedKeys,
	})
	if err != nil {
		return nil, err
	}
	body.Options.Concurrency = opts.Concurrency
	return body, nil
}

// A Reader is the plaintext of an object, as Decrypt returns it. It reads
// the body through a stream.Reader and reports a body that fails to
// authenticate with an error matching ErrBodyTampered (and the
// *stream.ChunkError naming the chunk).
//
// A Reader that opens chunks in parallel (DecryptOptions.Concurrency > 1)
// owns goroutines until io.EOF, an error, or Close. Close every Reader not
// read to the end; one abandoned without Close keeps its goroutines and
// buffers until the garbage collector finds it unreachable.
//
// A Reader is not safe for concurrent use.
type Reader struct{ r *stream.Reader }

// Read reads up to len(p) bytes of authenticated plaintext into p. It
// returns io.EOF only at the authenticated end of the object.
func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = format.BodyError(err)
	}
	return n, err
}

// WriteTo writes the plaintext to dst until the end of the object or an
// error, straight from the chunk buffers; io.Copy uses it.
func (r *Reader) WriteTo(dst io.Writer) (int64, error) {
	n, err := r.r.WriteTo(dst)
	if err != nil {
		err = format.BodyError(err)
	}
	return n, err
}

// Close stops the Reader's goroutines, waiting for them to exit, and
// releases its buffers; Read fails afterwards. It is safe to call more
// than once and returns nil.
func (r *Reader) Close() error { return r.r.Close() }
