package envelope

import (
	"context"
	"fmt"
	"io"

	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
)

// EncryptOptions configures Encrypt. The zero value (or nil) encrypts with
// AES-256-GCM, the default chunk size and no context.
type EncryptOptions struct {
	// Context is the encryption context, stored in the clear in the header
	// and authenticated with it, and given to the keyring, which may bind it
	// to the wrapped key. Never put secrets or technical data in it.
	Context keyring.Context

	// ChunkSize is the plaintext size of a body chunk: a power of two
	// between 4 KiB and 16 MiB. Zero means stream.DefaultChunkSize.
	ChunkSize int

	// Concurrency is how many chunks are sealed in parallel; 0 or 1 seals
	// them in the calling goroutine.
	Concurrency int

	// Suite is the AEAD that seals the body. The zero value is
	// stream.AES256GCM, which is FIPS 140 approved; stream.ChaCha20Poly1305
	// is refused in FIPS 140-only mode.
	Suite stream.Suite
}

// Encrypt starts a new object in dst under a fresh data key wrapped by w,
// and returns a WriteCloser that encrypts what is written to it into the
// object's body. The header reaches dst with the first sealed chunk; if
// Encrypt fails, nothing has been written to dst.
//
// The caller must call Close: it seals the final chunk, without which the
// object does not decrypt (an empty plaintext still has one). Close does not
// close dst.
//
// ctx bounds the key operations (wrapping, which may reach a Key Vault or an
// HSM); it does not cancel the writes that follow.
func Encrypt(ctx context.Context, dst io.Writer, w keyring.Wrapper, opts *EncryptOptions) (io.WriteCloser, error) {
	if opts == nil {
		opts = &EncryptOptions{}
	}
	header, body, err := format.New(ctx, w, &format.Params{Suite: opts.Suite, ChunkSize: opts.ChunkSize, Context: opts.Context})
	if err != nil {
		return nil, err
	}
	body.Options.Concurrency = opts.Concurrency
	return sealBody(&headerFirst{w: dst, header: header}, body)
}

// sealBody returns the stream.Writer of an object's body and zeroes the
// content key: the Writer keeps no copy of it.
func sealBody(dst io.Writer, body *format.Body) (io.WriteCloser, error) {
	defer body.Zero()
	sw, err := stream.NewWriter(dst, body.Key, &body.Options)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return sw, nil
}

// headerFirst writes the header to w before the first bytes of the body.
type headerFirst struct {
	w      io.Writer
	header []byte // nil once written
}

func (h *headerFirst) Write(p []byte) (int, error) {
	if h.header != nil {
		if _, err := h.w.Write(h.header); err != nil {
			return 0, fmt.Errorf("envelope: writing header: %w", err)
		}
		h.header = nil
	}
	return h.w.Write(p)
}
