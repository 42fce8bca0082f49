package envelope

import (
	"context"
	"crypto/fips140"
	"crypto/rand"
	"fmt"
	"io"

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
	header, body, key, err := newObject(ctx, w, opts)
	if err != nil {
		return nil, err
	}
	sw, err := stream.NewWriter(&headerFirst{w: dst, header: header}, key, &body)
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

// newObject draws a data key (or asks a keyring.DataKeyGenerator for one),
// wraps it, and builds and authenticates the header of a new object. It
// returns the encoded header, the options and the content key that seal the
// body, which must follow the header immediately.
func newObject(ctx context.Context, w keyring.Wrapper, opts *EncryptOptions) (header []byte, body stream.Options, key []byte, err error) {
	if opts == nil {
		opts = &EncryptOptions{}
	}
	f := headerFields{suite: opts.Suite, chunkSize: opts.ChunkSize, context: opts.Context}
	if f.chunkSize == 0 {
		f.chunkSize = stream.DefaultChunkSize
	}
	if _, err := chunkLog2(f.chunkSize); err != nil {
		return nil, body, nil, err
	}
	if _, err := suiteCode(f.suite); err != nil {
		return nil, body, nil, err
	}
	if err := checkSuiteApproved(f.suite); err != nil {
		return nil, body, nil, err
	}
	// Fail on a bad context before the keyring is called.
	if _, err := f.context.MarshalBinary(); err != nil {
		return nil, body, nil, fmt.Errorf("envelope: %w", err)
	}
	if w == nil {
		return nil, body, nil, fmt.Errorf("envelope: nil keyring")
	}

	var dek []byte
	var keys []keyring.WrappedKey
	if g, ok := w.(keyring.DataKeyGenerator); ok {
		dek, keys, err = g.GenerateDataKey(ctx, f.context)
	} else {
		dek = make([]byte, dekLen)
		rand.Read(dek)
		keys, err = w.Wrap(ctx, dek, f.context)
	}
	defer zero(dek)
	if err != nil {
		return nil, body, nil, fmt.Errorf("envelope: wrapping the data key: %w", err)
	}
	rand.Read(f.messageID[:])

	k, err := deriveKeys(dek, f.messageID)
	if err != nil {
		return nil, body, nil, err
	}
	defer zero(k.header)
	copy(f.commitment[:], k.commitment)

	header, err = buildHeader(&f, keys, k.header)
	if err != nil {
		return nil, body, nil, err
	}
	body, err = bodyOptions(&f, opts.Concurrency)
	if err != nil {
		return nil, body, nil, err
	}
	return header, body, k.content, nil
}

// bodyOptions returns the stream options of an object's body.
func bodyOptions(f *headerFields, concurrency int) (stream.Options, error) {
	aad, err := bodyAAD(f.suite, f.chunkSize, f.messageID)
	if err != nil {
		return stream.Options{}, err
	}
	return stream.Options{ChunkSize: f.chunkSize, Concurrency: concurrency, AAD: aad, Suite: f.suite}, nil
}

// checkSuiteApproved refuses, in FIPS 140-only mode, a suite that is not
// approved, before any key is wrapped or unwrapped for it.
func checkSuiteApproved(s stream.Suite) error {
	if s != stream.AES256GCM && fips140.Enforced() {
		return fmt.Errorf("envelope: suite %v: %w", s, stream.ErrNotApproved)
	}
	return nil
}
