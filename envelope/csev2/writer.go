package csev2

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
)

// encryptionLibrary is what this package records under "EncryptionLibrary"
// in KeyWrappingMetadata, where the SDKs record their own name and version.
const encryptionLibrary = "geoseal-csev2"

// WriterOptions configures encryption. A nil *WriterOptions is valid and
// means protocol 2.0, 4 MiB regions, .NET nonces and the key-encryption key's
// default wrap algorithm.
type WriterOptions struct {
	// Protocol is Protocol20 (the default) or Protocol21. Protocol 2.0 is
	// read by every SDK release that knows CSE v2; 2.1 only by releases that
	// support custom region lengths (not, for example, Python
	// azure-storage-blob 12.15).
	Protocol string

	// RegionLength is the plaintext length of a full region, in
	// [MinRegionLength, MaxRegionLength]. Zero means DefaultRegionLength.
	// Protocol 2.0 allows only DefaultRegionLength.
	RegionLength int64

	// NonceScheme chooses how region nonces are derived; zero means
	// NonceDotNet, the one scheme every SDK reader that checks region order
	// accepts. Every scheme is a counter, so nonces never repeat.
	NonceScheme NonceScheme

	// KeyWrapAlgorithm is passed to the key-encryption key's WrapKey and
	// recorded in the metadata: A256KW for an AES key, RSA-OAEP-256 or
	// RSA-OAEP for an RSA key. Empty means A256KW or RSA-OAEP-256 by the key's
	// KeyType (for KeyVaultKEK, the vault's key); a key that is no KeyTyper
	// must be given one.
	KeyWrapAlgorithm string
}

// newEncryption draws a content key, wraps it with its protocol prefix, and
// returns the metadata and a sealer for the regions.
func newEncryption(ctx context.Context, kek KeyEncryptionKey, opts *WriterOptions) (*EncryptionData, *sealer, error) {
	var o WriterOptions
	if opts != nil {
		o = *opts
	}
	if kek == nil {
		return nil, nil, errors.New("csev2: nil KeyEncryptionKey")
	}
	if o.Protocol == "" {
		o.Protocol = Protocol20
	}
	if o.RegionLength == 0 {
		o.RegionLength = DefaultRegionLength
	}
	if o.NonceScheme == 0 {
		o.NonceScheme = NonceDotNet
	}
	switch o.Protocol {
	case Protocol20:
		if o.RegionLength != DefaultRegionLength {
			return nil, nil, fmt.Errorf("csev2: protocol 2.0 has %d-byte regions; use protocol 2.1 for a region length of %d", DefaultRegionLength, o.RegionLength)
		}
	case Protocol21:
		if o.RegionLength < MinRegionLength || o.RegionLength > MaxRegionLength {
			return nil, nil, fmt.Errorf("csev2: region length %d outside [%d, %d]", o.RegionLength, MinRegionLength, MaxRegionLength)
		}
	default:
		return nil, nil, fmt.Errorf("%w: cannot write protocol %q", ErrUnsupportedProtocol, o.Protocol)
	}
	// The FIPS refusal (in newSealer) comes before the key type is asked or
	// anything is wrapped, so that a refused write costs no Key Vault call.
	payload := make([]byte, versionPrefixSize+cekSize)
	defer clear(payload)
	prefix := versionPrefix(o.Protocol)
	copy(payload, prefix[:])
	cek := payload[versionPrefixSize:]
	rand.Read(cek)
	s, err := newSealer(cek, o.NonceScheme)
	if err != nil {
		return nil, nil, err
	}
	if o.KeyWrapAlgorithm == "" {
		t, ok := kek.(KeyTyper)
		if !ok {
			return nil, nil, errors.New("csev2: WriterOptions.KeyWrapAlgorithm is required for a key-encryption key that is no KeyTyper")
		}
		kt, err := t.KeyType(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("csev2: key type of %q: %w", kek.KeyID(), err)
		}
		switch kt {
		case KeyTypeAES:
			o.KeyWrapAlgorithm = AlgorithmA256KW
		case KeyTypeRSA:
			o.KeyWrapAlgorithm = AlgorithmRSAOAEP256
		default:
			return nil, nil, fmt.Errorf("csev2: key %q is of unknown type %q: set WriterOptions.KeyWrapAlgorithm", kek.KeyID(), kt)
		}
	}
	// What is written is held to what is read: never RSA1_5, never an
	// algorithm of the other key type.
	if err := checkAlgorithm(ctx, kek, o.KeyWrapAlgorithm); err != nil {
		return nil, nil, err
	}

	wrapped, err := kek.WrapKey(ctx, o.KeyWrapAlgorithm, payload)
	if err != nil {
		return nil, nil, fmt.Errorf("csev2: wrapping the content key with %q (%s): %w", kek.KeyID(), o.KeyWrapAlgorithm, err)
	}
	ed := &EncryptionData{
		WrappedContentKey: WrappedContentKey{
			KeyID:        kek.KeyID(),
			EncryptedKey: wrapped,
			Algorithm:    o.KeyWrapAlgorithm,
		},
		EncryptionAgent: EncryptionAgent{
			Protocol:            o.Protocol,
			EncryptionAlgorithm: algorithmAESGCM256,
		},
		EncryptedRegionInfo: &EncryptedRegionInfo{
			DataLength:  o.RegionLength,
			NonceLength: nonceSize,
		},
		KeyWrappingMetadata: map[string]string{"EncryptionLibrary": encryptionLibrary},
		EncryptionMode:      encryptionMode,
	}
	if err := ed.validate(); err != nil {
		return nil, nil, err
	}
	return ed, s, nil
}

// A Writer encrypts what is written to it into CSE v2 regions. Close must be
// called to write the last, short region.
type Writer struct {
	dst       io.Writer
	ed        *EncryptionData
	s         *sealer
	regionLen int
	index     uint64
	buf       []byte // plaintext of the current region
	out       []byte // sealed region
	err       error
}

// NewWriter returns a Writer that encrypts into dst under a fresh content key
// wrapped by kek. The metadata to store with the ciphertext is available at
// once from EncryptionData, before anything is written.
//
// In FIPS 140-only mode it returns an error matching ErrNotApproved: the
// SDKs' counter nonces need caller-chosen GCM nonces.
func NewWriter(ctx context.Context, dst io.Writer, kek KeyEncryptionKey, opts *WriterOptions) (*Writer, error) {
	ed, s, err := newEncryption(ctx, kek, opts)
	if err != nil {
		return nil, err
	}
	return &Writer{dst: dst, ed: ed, s: s, regionLen: int(ed.regionLength())}, nil
}

// EncryptionData returns the metadata for the ciphertext: store its Marshal
// under MetadataKey.
func (w *Writer) EncryptionData() *EncryptionData { return w.ed }

// Write encrypts p. Full regions are written to dst as they fill.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), w.regionLen-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		n += k
		if len(w.buf) == w.regionLen {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// Close writes the last region, if it holds any plaintext. An empty
// plaintext is an empty ciphertext, as in the SDKs. Close does not close dst.
func (w *Writer) Close() error {
	if w.err != nil {
		if w.err == errClosed {
			return nil
		}
		return w.err
	}
	if len(w.buf) > 0 {
		if err := w.flush(); err != nil {
			return err
		}
	}
	clear(w.buf)
	w.err = errClosed
	return nil
}

var errClosed = errors.New("csev2: write to closed Writer")

func (w *Writer) flush() error {
	w.out = w.s.seal(w.out[:0], w.buf, w.index)
	w.index++
	clear(w.buf)
	w.buf = w.buf[:0]
	if _, err := w.dst.Write(w.out); err != nil {
		w.err = err
		return err
	}
	return nil
}

// encryptingReader is the pull form of Writer, for uploads that read their
// body: each Read returns ciphertext of regions sealed from src.
type encryptingReader struct {
	src       io.Reader
	s         *sealer
	regionLen int64
	index     uint64
	pt, ct    []byte
	pending   []byte
	err       error
}

func (r *encryptingReader) Read(p []byte) (int, error) {
	for len(r.pending) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		n, err := readRegion(r.src, &r.pt, r.regionLen)
		if n == 0 {
			r.err = err // io.EOF, or the source's error
			continue
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			r.err = err
			continue
		}
		r.ct = r.s.seal(r.ct[:0], r.pt[:n], r.index)
		clear(r.pt[:n])
		r.index++
		r.pending = r.ct
		if err == io.ErrUnexpectedEOF {
			r.err = io.EOF
		}
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}
