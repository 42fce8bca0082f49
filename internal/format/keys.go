package format

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/geoseal/geoseal/internal/fips"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
)

// HKDF-SHA-256 info strings (FORMAT.md section 4). Each derived value has
// its own, so no output can stand in for another.
const (
	infoContentKey = "geoseal/v1 content key"
	infoHeaderKey  = "geoseal/v1 header key"
	infoCommitment = "geoseal/v1 key commitment"
)

// Keys are the values derived from an object's data key.
type Keys struct {
	Content    []byte // the body's content key (stream.KeySize bytes)
	Header     []byte // the HMAC-SHA-256 key of the header tag
	Commitment []byte // stored in the header, compared on Unlock
}

// Zero overwrites the keys.
func (k *Keys) Zero() {
	clear(k.Content)
	clear(k.Header)
	clear(k.Commitment)
}

// DeriveKeys derives an object's keys from its data key with
// HKDF-SHA-256, salted with the message id.
func DeriveKeys(dek []byte, messageID [MessageIDSize]byte) (*Keys, error) {
	if len(dek) != DataKeySize {
		return nil, fmt.Errorf("envelope: data key of %d bytes, want %d", len(dek), DataKeySize)
	}
	var k Keys
	var err error
	if k.Content, err = hkdf.Key(sha256.New, dek, messageID[:], infoContentKey, stream.KeySize); err != nil {
		return nil, fmt.Errorf("envelope: deriving the content key: %w", err)
	}
	if k.Header, err = hkdf.Key(sha256.New, dek, messageID[:], infoHeaderKey, 32); err != nil {
		return nil, fmt.Errorf("envelope: deriving the header key: %w", err)
	}
	if k.Commitment, err = hkdf.Key(sha256.New, dek, messageID[:], infoCommitment, CommitmentSize); err != nil {
		return nil, fmt.Errorf("envelope: deriving the key commitment: %w", err)
	}
	return &k, nil
}

// headerTag is HMAC-SHA-256 under the header key of every header byte that
// precedes the tag.
func headerTag(headerKey, headerWithoutTag []byte) []byte {
	m := hmac.New(sha256.New, headerKey)
	m.Write(headerWithoutTag)
	return m.Sum(nil)
}

// A Body is what seals or opens the body of an object: its content key and
// the stream options (suite, chunk size, body AAD) to use it with. Key
// belongs to the caller, who must Zero it once the stream.Writer,
// stream.Reader or stream.ReaderAt is made: they keep no copy of it.
type Body struct {
	Key     []byte
	Options stream.Options
}

// Zero overwrites the content key.
func (b *Body) Zero() { clear(b.Key) }

// Params are the choices made for a new object. The zero value means
// AES-256-GCM, stream.DefaultChunkSize and no context.
type Params struct {
	Suite     stream.Suite
	ChunkSize int
	Context   keyring.Context
}

// New makes the header of a new object: a data key drawn at random (or
// asked of w, if it is a keyring.DataKeyGenerator) and wrapped by w, a
// random message id, the commitment and the tag. It returns the encoded
// header and the Body that seals the body, which must follow the header.
//
// Bad parameters (chunk size, suite, a suite refused in FIPS 140-only
// mode, context) fail before w is called.
func New(ctx context.Context, w keyring.Wrapper, p *Params) ([]byte, *Body, error) {
	if p == nil {
		p = &Params{}
	}
	h := &Header{Suite: p.Suite, ChunkSize: p.ChunkSize, Context: p.Context}
	if h.ChunkSize == 0 {
		h.ChunkSize = stream.DefaultChunkSize
	}
	if err := CheckChunkSize(h.ChunkSize); err != nil {
		return nil, nil, err
	}
	if _, err := SuiteCode(h.Suite); err != nil {
		return nil, nil, err
	}
	if err := checkSuiteApproved(h.Suite); err != nil {
		return nil, nil, err
	}
	// Fail on a bad context before the keyring is called.
	if _, err := h.Context.MarshalBinary(); err != nil {
		return nil, nil, fmt.Errorf("envelope: %w", err)
	}
	if w == nil {
		return nil, nil, errors.New("envelope: nil keyring")
	}

	var dek []byte
	var err error
	if g, ok := w.(keyring.DataKeyGenerator); ok {
		dek, h.WrappedKeys, err = g.GenerateDataKey(ctx, h.Context)
	} else {
		dek = make([]byte, DataKeySize)
		rand.Read(dek)
		h.WrappedKeys, err = w.Wrap(ctx, dek, h.Context)
	}
	defer clear(dek)
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: wrapping the data key: %w", err)
	}
	rand.Read(h.MessageID[:])

	k, err := DeriveKeys(dek, h.MessageID)
	if err != nil {
		return nil, nil, err
	}
	copy(h.Commitment[:], k.Commitment)
	raw, err := Build(h, k.Header)
	clear(k.Header)
	if err != nil {
		clear(k.Content)
		return nil, nil, err
	}
	return raw, body(h, k.Content), nil
}

// body returns the Body of h, whose suite and chunk size are valid.
func body(h *Header, key []byte) *Body {
	opts, err := BodyOptions(h)
	if err != nil {
		panic("format: body options of a checked header: " + err.Error())
	}
	return &Body{Key: key, Options: opts}
}

// UnlockOptions configure Unlock. Nil means the defaults.
type UnlockOptions struct {
	// RequireContext lists pairs the header's context must contain;
	// otherwise Unlock fails with ErrContextMismatch.
	RequireContext keyring.Context

	// MaxWrappedKeys is how many wrapped keys a header may list before it
	// is refused, with an error matching keyring.ErrTooManyKeys, without
	// any unwrap attempt. Zero means keyring.DefaultMaxWrappedKeys; at
	// most MaxWrappedKeys.
	MaxWrappedKeys int
}

// Unlock parses the complete encoded header raw, unwraps its data key with
// u and verifies, in this order, that the suite is approved in FIPS
// 140-only mode, the wrapped-key limit, opts.RequireContext, the key
// commitment (in constant time) and the header tag. It returns the
// authenticated header and the Body that opens what follows it; on error
// it returns neither, and every key it derived is zeroed.
func Unlock(ctx context.Context, raw []byte, u keyring.Unwrapper, opts *UnlockOptions) (*Header, *Body, error) {
	h, dek, k, err := unlock(ctx, raw, u, opts)
	if err != nil {
		return nil, nil, err
	}
	clear(dek)
	clear(k.Header)
	return h, body(h, k.Content), nil
}

// Rewrap returns a new header for the object whose complete encoded header
// is raw: it unlocks raw with u (up to MaxWrappedKeys wrapped keys), wraps
// the data key again with w, and builds a header with the same suite,
// chunk size, message id, commitment and context, w's wrapped keys only,
// and a tag recomputed with the header key. The body is unchanged and
// opens under the new header.
func Rewrap(ctx context.Context, raw []byte, u keyring.Unwrapper, w keyring.Wrapper) ([]byte, error) {
	if w == nil {
		return nil, errors.New("envelope: nil keyring")
	}
	h, dek, k, err := unlock(ctx, raw, u, &UnlockOptions{MaxWrappedKeys: MaxWrappedKeys})
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	defer k.Zero()

	// Wrap, not GenerateDataKey: the body is sealed under this data key.
	if h.WrappedKeys, err = w.Wrap(ctx, dek, h.Context); err != nil {
		return nil, fmt.Errorf("envelope: wrapping the data key: %w", err)
	}
	return Build(h, k.Header)
}

// unlock does the work of Unlock and returns the data key and all the
// derived keys. The caller must zero what it does not hand on.
func unlock(ctx context.Context, raw []byte, u keyring.Unwrapper, opts *UnlockOptions) (*Header, []byte, *Keys, error) {
	if opts == nil {
		opts = &UnlockOptions{}
	}
	h, err := Parse(raw)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := checkSuiteApproved(h.Suite); err != nil {
		return nil, nil, nil, err
	}
	limit := opts.MaxWrappedKeys
	if limit <= 0 {
		limit = keyring.DefaultMaxWrappedKeys
	}
	if len(h.WrappedKeys) > limit {
		return nil, nil, nil, fmt.Errorf("envelope: object lists %d wrapped keys, at most %d accepted: %w", len(h.WrappedKeys), limit, keyring.ErrTooManyKeys)
	}
	// The context is not authenticated yet, but refusing here saves an
	// unwrap (and an HSM or Key Vault call) for an object that would be
	// refused anyway; once the tag verifies, the context checked is the
	// authentic one.
	if !h.Context.Contains(opts.RequireContext) {
		return nil, nil, nil, ErrContextMismatch
	}
	if u == nil {
		return nil, nil, nil, errors.New("envelope: nil keyring")
	}

	dek, err := keyring.UnwrapChecked(ctx, u, h.WrappedKeys, h.Context, commitmentCheck(h))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("envelope: %w", err)
	}
	if len(dek) != DataKeySize {
		clear(dek)
		return nil, nil, nil, fmt.Errorf("%w: unwrapped a key of %d bytes", ErrCommitment, len(dek))
	}
	k, err := DeriveKeys(dek, h.MessageID)
	if err != nil {
		clear(dek)
		return nil, nil, nil, err
	}
	fail := func(err error) (*Header, []byte, *Keys, error) {
		clear(dek)
		k.Zero()
		return nil, nil, nil, err
	}
	if subtle.ConstantTimeCompare(k.Commitment, h.Commitment[:]) != 1 {
		return fail(ErrCommitment)
	}
	if !hmac.Equal(headerTag(k.Header, raw[:len(raw)-TagSize]), h.Tag[:]) {
		return fail(ErrHeaderTampered)
	}
	return h, dek, k, nil
}

// commitmentCheck is the check keyring.UnwrapChecked runs on each data key
// a keyring recovers from h: it must match h's key commitment, so that a
// wrapped key holding another data key is a failed attempt and the next one
// is tried, whatever keyring, Multi or Cache is in front.
func commitmentCheck(h *Header) func(dek []byte) error {
	return func(dek []byte) error {
		k, err := DeriveKeys(dek, h.MessageID)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCommitment, err)
		}
		defer k.Zero()
		if subtle.ConstantTimeCompare(k.Commitment, h.Commitment[:]) != 1 {
			return ErrCommitment
		}
		return nil
	}
}

// checkSuiteApproved refuses, in FIPS 140-only mode, a suite that is not
// approved, before any key is wrapped or unwrapped for it.
func checkSuiteApproved(s stream.Suite) error {
	if s != stream.AES256GCM && fips.Enforced() {
		return fmt.Errorf("envelope: suite %v: %w", s, stream.ErrNotApproved)
	}
	return nil
}

// BodyError classifies an error of the stream that opens a body: one that
// means the ciphertext itself is wrong (a chunk that does not
// authenticate, a truncated, extended or impossibly sized stream) also
// matches ErrBodyTampered; other errors (a failing source, bad options)
// keep their own meaning.
func BodyError(err error) error {
	for _, target := range []error{stream.ErrAuthentication, stream.ErrTruncated, stream.ErrTrailingData, stream.ErrTooLarge, stream.ErrInvalidSize} {
		if errors.Is(err, target) {
			return fmt.Errorf("%w: %w", ErrBodyTampered, err)
		}
	}
	return fmt.Errorf("envelope: %w", err)
}
