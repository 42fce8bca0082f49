package envelope

import (
	"context"
	"crypto/hmac"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

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
// ctx bounds the key operations; it does not cancel the reads that follow.
func Decrypt(ctx context.Context, src io.Reader, u keyring.Unwrapper, opts *DecryptOptions) (io.Reader, error) {
	header, err := readHeader(src)
	if err != nil {
		return nil, err
	}
	_, body, key, err := openObject(ctx, header, u, opts)
	if err != nil {
		return nil, err
	}
	r, err := stream.NewReader(src, key, &body)
	if err != nil {
		return nil, bodyError(err)
	}
	return &bodyReader{r: r}, nil
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
	header, err := readHeaderAt(src, size)
	if err != nil {
		return nil, err
	}
	_, body, key, err := openObject(ctx, header, u, opts)
	if err != nil {
		return nil, err
	}
	off := int64(len(header))
	ra, err := stream.NewReaderAt(io.NewSectionReader(src, off, size-off), size-off, key, &body)
	if err != nil {
		return nil, bodyError(err)
	}
	return ra, nil
}

// openObject parses a complete header, unwraps the data key with u and
// verifies, in this order, the key commitment (in constant time), the
// header tag and opts.RequireContext. It returns the authenticated header
// and the options and content key that open the body following it.
func openObject(ctx context.Context, header []byte, u keyring.Unwrapper, opts *DecryptOptions) (h *Header, body stream.Options, key []byte, err error) {
	if opts == nil {
		opts = &DecryptOptions{}
	}
	h, f, dek, k, err := unlock(ctx, header, u, opts)
	if err != nil {
		return nil, body, nil, err
	}
	zero(dek)
	zero(k.header)
	body, err = bodyOptions(f, opts.Concurrency)
	if err != nil {
		return nil, body, nil, err
	}
	return h, body, k.content, nil
}

// commitmentCheck is the check keyring.UnwrapChecked runs on each data key
// a keyring recovers from h: it must match h's key commitment, so that a
// wrapped key holding another data key is a failed attempt and the next one
// is tried, whatever keyring, Multi or Cache is in front.
func commitmentCheck(h *Header) func(dek []byte) error {
	return func(dek []byte) error {
		k, err := deriveKeys(dek, h.MessageID)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCommitment, err)
		}
		zero(k.content)
		zero(k.header)
		if subtle.ConstantTimeCompare(k.commitment, h.Commitment[:]) != 1 {
			return ErrCommitment
		}
		return nil
	}
}

// unlock does the work of openObject and returns the data key too, for
// Rewrap. The caller must zero dek and the keys it does not hand on.
func unlock(ctx context.Context, header []byte, u keyring.Unwrapper, opts *DecryptOptions) (*Header, *headerFields, []byte, *objectKeys, error) {
	h, tag, err := parseHeader(header)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if err := checkSuiteApproved(h.Suite); err != nil {
		return nil, nil, nil, nil, err
	}
	limit := opts.MaxWrappedKeys
	if limit <= 0 {
		limit = keyring.DefaultMaxWrappedKeys
	}
	if len(h.WrappedKeys) > limit {
		return nil, nil, nil, nil, fmt.Errorf("envelope: object lists %d wrapped keys, at most %d accepted: %w", len(h.WrappedKeys), limit, keyring.ErrTooManyKeys)
	}
	// The context is not authenticated yet, but refusing here saves an
	// unwrap (and an HSM or Key Vault call) for an object that would be
	// refused anyway; once the tag verifies, the context checked is the
	// authentic one.
	if !h.Context.Contains(opts.RequireContext) {
		return nil, nil, nil, nil, ErrContextMismatch
	}
	if u == nil {
		return nil, nil, nil, nil, fmt.Errorf("envelope: nil keyring")
	}

	dek, err := keyring.UnwrapChecked(ctx, u, h.WrappedKeys, h.Context, commitmentCheck(h))
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("envelope: %w", err)
	}
	if len(dek) != dekLen {
		zero(dek)
		return nil, nil, nil, nil, fmt.Errorf("%w: unwrapped a key of %d bytes", ErrCommitment, len(dek))
	}
	k, err := deriveKeys(dek, h.MessageID)
	if err != nil {
		zero(dek)
		return nil, nil, nil, nil, err
	}
	fail := func(err error) (*Header, *headerFields, []byte, *objectKeys, error) {
		zero(dek)
		zero(k.content)
		zero(k.header)
		return nil, nil, nil, nil, err
	}
	if subtle.ConstantTimeCompare(k.commitment, h.Commitment[:]) != 1 {
		return fail(ErrCommitment)
	}
	if !hmac.Equal(headerTag(k.header, header[:len(header)-tagLen]), tag[:]) {
		return fail(ErrHeaderTampered)
	}
	f := &headerFields{
		suite:      h.Suite,
		chunkSize:  h.ChunkSize,
		messageID:  h.MessageID,
		commitment: h.Commitment,
		context:    h.Context,
	}
	return h, f, dek, k, nil
}

// bodyReader reports failures of the body as ErrBodyTampered.
type bodyReader struct{ r io.Reader }

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = bodyError(err)
	}
	return n, err
}

// bodyError adds ErrBodyTampered to the chain of a stream error that
// means the ciphertext itself is wrong, and leaves other errors (a failing
// source, bad options) as they are.
func bodyError(err error) error {
	for _, target := range []error{stream.ErrAuthentication, stream.ErrTruncated, stream.ErrTrailingData, stream.ErrTooLarge, stream.ErrInvalidSize} {
		if errors.Is(err, target) {
			return fmt.Errorf("%w: %w", ErrBodyTampered, err)
		}
	}
	return fmt.Errorf("envelope: %w", err)
}
