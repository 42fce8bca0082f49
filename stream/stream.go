package stream

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"unsafe"

	"github.com/geoseal/geoseal/internal/fips"
	"golang.org/x/crypto/chacha20poly1305"
)

// Suite selects the AEAD that seals every chunk.
type Suite uint8

const (
	// AES256GCM seals chunks with AES-256-GCM and a random 96-bit nonce
	// (crypto/cipher.NewGCMWithRandomNonce). It is the default, and the only
	// suite approved in FIPS 140-only mode.
	AES256GCM Suite = 0

	// ChaCha20Poly1305 seals chunks with XChaCha20-Poly1305 and a random
	// 192-bit nonce (golang.org/x/crypto/chacha20poly1305.NewX). The extended
	// nonce makes random nonces safe without a birthday bound worth
	// mentioning; the chunk limit is the same as for AES256GCM so the two
	// suites differ only in the cipher. It is not FIPS approved: in FIPS
	// 140-only mode the constructors return ErrNotApproved.
	ChaCha20Poly1305 Suite = 1
)

// String returns the suite's name, as used in error messages and FORMAT.md.
func (s Suite) String() string {
	switch s {
	case AES256GCM:
		return "AES-256-GCM"
	case ChaCha20Poly1305:
		return "XChaCha20-Poly1305"
	}
	return "Suite(" + strconv.Itoa(int(s)) + ")"
}

// KeySize is the length in bytes of the content key every suite takes.
const KeySize = 32

// DefaultChunkSize is the plaintext size of every chunk but the last when
// Options.ChunkSize is zero.
//
// 64 KiB, as in age and minio/sio, keeps random access cheap (a ReadAt
// opens whole chunks, and a ranged blob read fetches up to two chunks more
// than it asks for) and a chunk's buffers in L2, at a modest cost in
// sequential speed, which grows with the chunk because every chunk pays for
// its random nonce: callers that only stream can pass 256 KiB. It allows
// 2^32 × 64 KiB = 256 TiB per content key, more than the largest Azure block
// blob (about 190.7 TiB). The measurements behind the choice are in
// BENCHMARKS.md at the root of the module.
const DefaultChunkSize = 64 << 10

const (
	// MinChunkSize and MaxChunkSize bound Options.ChunkSize, which must
	// also be a power of two.
	MinChunkSize = 4 << 10
	MaxChunkSize = 16 << 20

	// MaxChunks is the largest number of chunks in one stream, final chunk
	// included. Nonces are random, so one key must seal at most 2^32
	// messages (NIST SP 800-38D, section 8.3); every chunk is one message.
	// A Writer fails with ErrTooLarge rather than exceed it.
	MaxChunks = 1 << 32

	// maxConcurrency bounds Options.Concurrency, and so the memory and the
	// goroutines one Writer or Reader may take.
	maxConcurrency = 1024
)

const (
	flagNotFinal = 0x00
	flagFinal    = 0x01

	// aadSuffixLen is the per-chunk part of the AAD: the big-endian
	// uint64 chunk index and the final flag.
	aadSuffixLen = 8 + 1
)

// ErrNotApproved is returned by the constructors for a suite that is not
// FIPS 140 approved (ChaCha20Poly1305) when the process runs in FIPS 140-only
// mode (GODEBUG=fips140=only). It matches errors.ErrUnsupported, and the
// ErrNotApproved of every other geoseal package (keyring.ErrNotApproved...).
var ErrNotApproved = fips.NotApproved("stream: suite not approved in FIPS 140-only mode")

// Errors a Reader or ReaderAt returns for ciphertext it refuses. They come
// wrapped in a *ChunkError naming the chunk; match them with errors.Is.
var (
	// ErrAuthentication means a chunk did not authenticate: the ciphertext
	// was modified, reordered, cut inside a chunk, or the key, AAD or chunk
	// size differ from the ones it was written with.
	ErrAuthentication = errors.New("stream: chunk authentication failed")

	// ErrTruncated means the stream ends without its final chunk. It is
	// never reported as io.EOF: a stream cut at a chunk boundary looks
	// complete otherwise.
	ErrTruncated = errors.New("stream: truncated: final chunk missing")

	// ErrTrailingData means bytes follow the final chunk.
	ErrTrailingData = errors.New("stream: trailing data after final chunk")

	// ErrTooLarge means a stream would exceed MaxChunks chunks: a Writer
	// refuses to seal more, a Reader refuses to open more.
	ErrTooLarge = errors.New("stream: stream exceeds the maximum number of chunks")

	// ErrInvalidSize means an encrypted size no Writer produces with the
	// given options (returned by PlaintextSize and NewReaderAt).
	ErrInvalidSize = errors.New("stream: impossible encrypted size")
)

// ChunkError reports the chunk at which reading stopped. Err is one of
// ErrAuthentication, ErrTruncated, ErrTrailingData or ErrTooLarge. No byte
// of chunk Index (or of any later chunk) has been returned to the caller.
type ChunkError struct {
	Index uint64
	Err   error
}

func (e *ChunkError) Error() string {
	return e.Err.Error() + " (chunk " + strconv.FormatUint(e.Index, 10) + ")"
}

func (e *ChunkError) Unwrap() error { return e.Err }

// Options tunes a stream. The zero value (or a nil *Options) means
// AES-256-GCM, DefaultChunkSize, no AAD and no extra goroutines. The reading
// side must use the same ChunkSize, AAD and Suite as the writing side;
// Concurrency may differ.
type Options struct {
	// ChunkSize is the plaintext size of every chunk but the last. It must
	// be a power of two from MinChunkSize (4 KiB) to MaxChunkSize (16 MiB);
	// zero means DefaultChunkSize.
	ChunkSize int

	// Concurrency is the number of chunks sealed or opened in parallel by
	// worker goroutines. Zero or one means all work happens in the calling
	// goroutine. Above one, the calling goroutine also seals or opens queued
	// chunks while it waits for the one it must write or return next, rather
	// than sleep. At most 1024.
	Concurrency int

	// AAD is authenticated with every chunk but not encrypted or stored.
	// It is copied: changing it after the call has no effect.
	AAD []byte

	// Suite selects the AEAD. The zero value is AES256GCM.
	Suite Suite
}

// config is validated Options plus the AEAD built from the key.
type config struct {
	aead        cipher.AEAD
	chunkSize   int
	overhead    int // nonce + tag bytes per chunk
	concurrency int
	aadPrefix   []byte
}

// encChunkSize is the size on the wire of every chunk but the last.
func (c *config) encChunkSize() int { return c.chunkSize + c.overhead }

func suiteOverhead(s Suite) (int, error) {
	switch s {
	case AES256GCM:
		return 12 + 16, nil
	case ChaCha20Poly1305:
		return chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead, nil
	}
	return 0, fmt.Errorf("stream: unknown suite %d", uint8(s))
}

// sizeParams validates the options that determine the layout, for the size
// functions, which take no key.
func sizeParams(opts *Options) (chunkSize, overhead int, err error) {
	if opts == nil {
		opts = &Options{}
	}
	chunkSize = opts.ChunkSize
	if chunkSize == 0 {
		chunkSize = DefaultChunkSize
	}
	if chunkSize < MinChunkSize || chunkSize > MaxChunkSize || bits.OnesCount(uint(chunkSize)) != 1 {
		return 0, 0, fmt.Errorf("stream: chunk size %d is not a power of two from %d to %d", opts.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	overhead, err = suiteOverhead(opts.Suite)
	return chunkSize, overhead, err
}

func newConfig(key []byte, opts *Options) (*config, error) {
	if opts == nil {
		opts = &Options{}
	}
	chunkSize, overhead, err := sizeParams(opts)
	if err != nil {
		return nil, err
	}
	if opts.Concurrency < 0 || opts.Concurrency > maxConcurrency {
		return nil, fmt.Errorf("stream: concurrency %d is not between 0 and %d", opts.Concurrency, maxConcurrency)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("stream: key is %d bytes, want %d", len(key), KeySize)
	}
	var aead cipher.AEAD
	switch opts.Suite {
	case AES256GCM:
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("stream: %w", err)
		}
		// NewGCMWithRandomNonce is the only GCM constructor allowed in FIPS
		// 140-only mode, for sealing and for opening.
		aead, err = cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("stream: %w", err)
		}
	case ChaCha20Poly1305:
		if fips.Enforced() {
			return nil, fmt.Errorf("stream: %v: %w", opts.Suite, ErrNotApproved)
		}
		x, err := chacha20poly1305.NewX(key)
		if err != nil {
			return nil, fmt.Errorf("stream: %w", err)
		}
		aead = xchachaRandomNonce{x}
	}
	return &config{
		aead:        aead,
		chunkSize:   chunkSize,
		overhead:    overhead,
		concurrency: opts.Concurrency,
		aadPrefix:   append([]byte(nil), opts.AAD...),
	}, nil
}

// xchachaRandomNonce gives XChaCha20-Poly1305 the calling convention of
// cipher.NewGCMWithRandomNonce: Seal prepends a random nonce, Open takes it
// from the front of the ciphertext, NonceSize is zero.
type xchachaRandomNonce struct{ aead cipher.AEAD }

func (x xchachaRandomNonce) NonceSize() int { return 0 }
func (x xchachaRandomNonce) Overhead() int {
	return chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
}

func (x xchachaRandomNonce) Seal(dst, nonce, plaintext, additionalData []byte) []byte {
	if len(nonce) != 0 {
		panic("stream: non-empty nonce passed to xchachaRandomNonce")
	}
	ret := append(dst, make([]byte, chacha20poly1305.NonceSizeX)...)
	n := ret[len(dst):]
	rand.Read(n)
	return x.aead.Seal(ret, n, plaintext, additionalData)
}

func (x xchachaRandomNonce) Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error) {
	if len(nonce) != 0 {
		panic("stream: non-empty nonce passed to xchachaRandomNonce")
	}
	if len(ciphertext) < chacha20poly1305.NonceSizeX {
		return nil, errors.New("chacha20poly1305: message authentication failed")
	}
	return x.aead.Open(dst, ciphertext[:chacha20poly1305.NonceSizeX], ciphertext[chacha20poly1305.NonceSizeX:], additionalData)
}

// chunkCount returns the number of chunks a plaintext of size n is cut
// into: ceil(n / chunkSize), and one (the empty final chunk) for n = 0.
func chunkCount(n int64, chunkSize int) int64 {
	if n == 0 {
		return 1
	}
	c := n / int64(chunkSize)
	if n%int64(chunkSize) != 0 {
		c++
	}
	return c
}

// EncryptedSize returns the size of the stream a Writer with opts produces
// for plaintextSize bytes. It returns -1 if plaintextSize is negative, needs
// more than MaxChunks chunks, or opts is invalid.
func EncryptedSize(plaintextSize int64, opts *Options) int64 {
	chunkSize, overhead, err := sizeParams(opts)
	if err != nil || plaintextSize < 0 {
		return -1
	}
	chunks := chunkCount(plaintextSize, chunkSize)
	if chunks > MaxChunks {
		return -1
	}
	return plaintextSize + chunks*int64(overhead)
}

// PlaintextSize returns the plaintext size of a stream of encryptedSize
// bytes written with opts. It returns an error wrapping ErrInvalidSize for
// sizes no Writer produces: shorter than one empty chunk, a final chunk too
// short to hold a nonce, a tag and at least one byte (only a stream's first
// chunk may be empty), or more than MaxChunks chunks.
//
// It trusts nothing about the stream beyond its length; NewReaderAt
// authenticates the final chunk to make the size trusted.
func PlaintextSize(encryptedSize int64, opts *Options) (int64, error) {
	chunkSize, overhead, err := sizeParams(opts)
	if err != nil {
		return 0, err
	}
	if encryptedSize < int64(overhead) {
		return 0, fmt.Errorf("%w: %d bytes is shorter than one chunk", ErrInvalidSize, encryptedSize)
	}
	if encryptedSize == int64(overhead) {
		return 0, nil // the empty plaintext: one empty final chunk
	}
	full := int64(chunkSize + overhead)
	chunks := encryptedSize / full
	if encryptedSize%full != 0 {
		chunks++
	}
	last := encryptedSize - (chunks-1)*full
	if last <= int64(overhead) {
		return 0, fmt.Errorf("%w: %d bytes leaves a final chunk of %d bytes", ErrInvalidSize, encryptedSize, last)
	}
	if chunks > MaxChunks {
		return 0, fmt.Errorf("%w: %d bytes is more than %d chunks", ErrInvalidSize, encryptedSize, int64(MaxChunks))
	}
	return encryptedSize - chunks*int64(overhead), nil
}

// chunk is one unit of work: a buffer pair that a Writer fills and seals or
// a Reader fills and opens, possibly on a worker goroutine. Buffers are
// allocated once and reused for the life of the stream.
type chunk struct {
	aead  cipher.AEAD
	pt    []byte // plaintext buffer, len chunkSize
	ct    []byte // ciphertext buffer, len chunkSize+overhead
	aad   []byte // aadPrefix || index || flag
	index uint64
	final bool
	seal  bool

	// in is the input of run: plaintext to seal (a prefix of pt, or a
	// window of the caller's buffer) or ciphertext to open (a prefix of ct).
	in []byte
	// full is set by a Reader when in is a full-size chunk, so that a
	// failure can be diagnosed by trying the other final flag.
	full bool

	out  []byte // result of run: sealed chunk or authenticated plaintext
	err  error
	done chan struct{} // receives once run finishes, in parallel mode
}

func newChunk(c *config, withPlaintext bool) *chunk {
	ch := &chunk{
		aead: c.aead,
		ct:   make([]byte, c.encChunkSize()),
		aad:  make([]byte, len(c.aadPrefix)+aadSuffixLen),
		done: make(chan struct{}, 1),
	}
	if withPlaintext {
		ch.pt = make([]byte, c.chunkSize)
	}
	copy(ch.aad, c.aadPrefix)
	return ch
}

func (c *chunk) setAAD(final bool) {
	suffix := c.aad[len(c.aad)-aadSuffixLen:]
	binary.BigEndian.PutUint64(suffix, c.index)
	suffix[8] = flagNotFinal
	if final {
		suffix[8] = flagFinal
	}
}

// run seals or opens in, out of place (in-place use of the random-nonce
// AEADs costs a copy, and for GCM an allocation, per chunk), into the
// chunk's own buffers.
func (c *chunk) run() {
	if c.seal {
		c.sealInto(c.ct[:0])
		return
	}
	c.open(c.pt[:0])
}

// sealInto seals c.in as chunk c.index and appends it to dst, which must
// not overlap c.in, and sets c.out to the result.
func (c *chunk) sealInto(dst []byte) {
	c.setAAD(c.final)
	c.out = c.aead.Seal(dst, nil, c.in, c.aad)
}

// anyOverlap reports whether x and y share memory (as
// crypto/internal/alias.AnyOverlap, which is internal): a Writer must not
// seal into a buffer that holds the plaintext, and a ReaderAt must not open
// into the ciphertext.
func anyOverlap(x, y []byte) bool {
	return len(x) > 0 && len(y) > 0 &&
		uintptr(unsafe.Pointer(&x[0])) <= uintptr(unsafe.Pointer(&y[len(y)-1])) &&
		uintptr(unsafe.Pointer(&y[0])) <= uintptr(unsafe.Pointer(&x[len(x)-1]))
}

// open authenticates and decrypts c.in into dst (which must not overlap it)
// and sets c.out, or sets c.err to a *ChunkError and leaves dst cleared.
func (c *chunk) open(dst []byte) {
	c.setAAD(c.final)
	out, err := c.aead.Open(dst, nil, c.in, c.aad)
	if err == nil {
		c.out, c.err = out, nil
		return
	}
	c.out = nil
	reason := ErrAuthentication
	if c.full {
		// A full-size chunk is final or not depending on what follows it.
		// If it authenticates with the other flag, say what went wrong
		// with the stream rather than with the chunk. Its plaintext is
		// discarded either way.
		c.setAAD(!c.final)
		if out, err := c.aead.Open(dst, nil, c.in, c.aad); err == nil {
			clear(out)
			if c.final {
				reason = ErrTruncated // sealed as non-final, but nothing follows
			} else {
				reason = ErrTrailingData // sealed as final, but something follows
			}
		}
	}
	c.err = &ChunkError{Index: c.index, Err: reason}
}
