package csev2

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
)

// Protocol 1.0 ("CSE v1") is what the SDKs wrote before CSE v2 (.NET up to
// 12.12, Java up to 12.17, Python up to 12.12) and still the Python SDK's
// default: the whole blob is AES-256-CBC with PKCS #7 padding under a random
// content key and the IV in the metadata (ContentEncryptionIV); the key
// wrapped is the bare 32-byte content key. It has no integrity at all: a
// blob can be modified, cut at a block boundary, or have its blocks moved,
// and it still decrypts, to something else. Only a broken padding can be
// noticed, and reporting that differently from other failures would make
// the reader a padding oracle. So this package reads it only when asked
// (ReaderOptions.ReadCSEv1), reports every failure of the body with one
// error, ErrV1Decrypt, checks the padding in constant time, and never writes
// it. Microsoft's advice after CVE-2022-30187 is to download, decrypt and
// re-encrypt such blobs; do that, to geoseal's format.

const (
	// Protocol10 is "1.0": CSE v1, AES-256-CBC without integrity. It is
	// read only with ReaderOptions.ReadCSEv1, and never written.
	Protocol10 = "1.0"

	// algorithmAESCBC256 is the content encryption algorithm of CSE v1.
	algorithmAESCBC256 = "AES_CBC_256"

	// v1Chunk is how much ciphertext a v1 reader decrypts at a time.
	v1Chunk = 64 << 10
)

// ErrV1Decrypt is the one error a CSE v1 body fails with, whatever is wrong
// with it: a length that is not a positive multiple of 16, a cut, or a
// broken padding. v1 has no integrity check, so most modifications are not
// noticed at all; those that are must not be told apart.
var ErrV1Decrypt = errors.New("csev2: CSE v1 ciphertext does not decrypt (v1 has no integrity check: a modified blob may also decrypt to wrong plaintext)")

// validateV1 checks the members protocol 1.0 needs.
func (ed *EncryptionData) validateV1() error {
	if ed.EncryptionAgent.EncryptionAlgorithm != algorithmAESCBC256 {
		return fmt.Errorf("%w: protocol 1.0 with encryption algorithm %q, want %s", ErrUnsupportedProtocol, ed.EncryptionAgent.EncryptionAlgorithm, algorithmAESCBC256)
	}
	if len(ed.ContentEncryptionIV) != aes.BlockSize {
		return fmt.Errorf("%w: ContentEncryptionIV of %d bytes, want %d", ErrInvalidEncryptionData, len(ed.ContentEncryptionIV), aes.BlockSize)
	}
	return nil
}

// isV1 reports whether ed is protocol 1.0.
func (ed *EncryptionData) isV1() bool { return ed.EncryptionAgent.Protocol == Protocol10 }

// checkV1 refuses a protocol 1.0 ed unless opts ask for it.
func (o *ReaderOptions) checkV1(ed *EncryptionData) error {
	if ed.isV1() && (o == nil || !o.ReadCSEv1) {
		return fmt.Errorf("%w: protocol 1.0 (CSE v1, AES-CBC without integrity) is read only with ReaderOptions.ReadCSEv1", ErrUnsupportedProtocol)
	}
	return nil
}

// v1Block refuses the protocol 1.0 ed unless opts ask for it, then unwraps
// its content key and returns its AES block cipher. The key itself lives on
// only in the cipher.
func v1Block(ctx context.Context, ed *EncryptionData, kr KeyResolver, opts *ReaderOptions) (cipher.Block, error) {
	if err := opts.checkV1(ed); err != nil {
		return nil, err
	}
	cek, err := unwrapContentKey(ctx, ed, kr, opts.logger())
	if err != nil {
		return nil, err
	}
	defer clear(cek)
	return aes.NewCipher(cek)
}

// v1Size checks a v1 ciphertext length: PKCS #7 always pads, so it is a
// positive multiple of the block size.
func v1Size(size int64) error {
	if size < aes.BlockSize || size%aes.BlockSize != 0 {
		return ErrV1Decrypt
	}
	return nil
}

// pkcs7Padding returns the padding length of the last block of a PKCS #7
// padded plaintext, and whether the padding is well formed. It runs in
// constant time with respect to the block's bytes.
func pkcs7Padding(last []byte) (int, bool) {
	pad := int(last[aes.BlockSize-1])
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, aes.BlockSize)
	for i := range aes.BlockSize {
		// Byte i is padding when i >= BlockSize-pad.
		inPad := subtle.ConstantTimeLessOrEq(aes.BlockSize-pad, i)
		good &= subtle.ConstantTimeSelect(inPad, subtle.ConstantTimeByteEq(last[i], byte(pad)), 1)
	}
	return pad, good == 1
}

// cbcStream is the state of a Reader of CSE v1 ciphertext.
type cbcStream struct {
	block   cipher.Block
	mode    cipher.BlockMode // nil until the IV is known
	unpad   bool             // the stream ends with the blob's last block
	pending []byte           // ciphertext read but not yet decrypted
}

// newV1Reader returns a Reader of the v1 ciphertext src. With iv nil the
// first block of src is the IV (a range that starts after block 0); with
// unpad the stream must end with the blob's padded last block.
func newV1Reader(src io.Reader, block cipher.Block, iv []byte, unpad bool) *Reader {
	s := &cbcStream{block: block, unpad: unpad}
	if iv != nil {
		s.mode = cipher.NewCBCDecrypter(block, iv)
	}
	return &Reader{src: src, v1: s}
}

// nextV1 decrypts the next chunk of v1 ciphertext into r.plain. The last
// complete block read is held back until the source ends, since it may be
// the padded last block of the blob.
func (r *Reader) nextV1() error {
	s := r.v1
	want := v1Chunk + 2*aes.BlockSize
	if cap(s.pending) < want {
		s.pending = make([]byte, 0, want)
	}
	n, err := io.ReadFull(r.src, s.pending[len(s.pending):want])
	s.pending = s.pending[:len(s.pending)+n]
	eof := err == io.EOF || err == io.ErrUnexpectedEOF
	if err != nil && !eof {
		return err
	}
	if s.mode == nil {
		// The first block fetched is the IV of the range.
		if len(s.pending) < aes.BlockSize {
			return ErrV1Decrypt
		}
		s.mode = cipher.NewCBCDecrypter(s.block, s.pending[:aes.BlockSize])
		s.pending = append(s.pending[:0], s.pending[aes.BlockSize:]...)
	}
	k := len(s.pending) / aes.BlockSize * aes.BlockSize
	if !eof {
		k -= aes.BlockSize // hold the last complete block back
	} else if k != len(s.pending) || (s.unpad && k == 0) {
		return ErrV1Decrypt // cut inside a block, or no last block
	}
	r.wipe()
	if cap(r.pbuf) < k {
		r.pbuf = make([]byte, 0, want)
	}
	pt := r.pbuf[:k]
	s.mode.CryptBlocks(pt, s.pending[:k])
	s.pending = append(s.pending[:0], s.pending[k:]...)
	if eof && s.unpad {
		pad, ok := pkcs7Padding(pt[k-aes.BlockSize:])
		if !ok {
			clear(pt)
			return ErrV1Decrypt
		}
		pt = pt[:k-pad]
	}
	r.plain = pt
	if eof {
		return io.EOF
	}
	return nil
}

// cbcAt is the state of a ReaderAt of CSE v1 ciphertext.
type cbcAt struct {
	block cipher.Block
	iv    [aes.BlockSize]byte
}

// newV1ReaderAt checks the v1 ciphertext src of size bytes, decrypting its
// last block to learn the plaintext size from the padding.
func newV1ReaderAt(src io.ReaderAt, size int64, block cipher.Block, iv []byte) (*ReaderAt, error) {
	if err := v1Size(size); err != nil {
		return nil, err
	}
	c := &cbcAt{block: block}
	copy(c.iv[:], iv)
	var tail [2 * aes.BlockSize]byte // the block before the last (or the IV), and the last
	if size == aes.BlockSize {
		copy(tail[:aes.BlockSize], iv)
		if _, err := src.ReadAt(tail[aes.BlockSize:], 0); err != nil {
			return nil, v1ReadError(err)
		}
	} else if _, err := src.ReadAt(tail[:], size-2*aes.BlockSize); err != nil {
		return nil, v1ReadError(err)
	}
	cipher.NewCBCDecrypter(block, tail[:aes.BlockSize]).CryptBlocks(tail[aes.BlockSize:], tail[aes.BlockSize:])
	pad, ok := pkcs7Padding(tail[aes.BlockSize:])
	clear(tail[:])
	if !ok {
		return nil, ErrV1Decrypt
	}
	return &ReaderAt{src: src, v1: c, csize: size, size: size - int64(pad)}, nil
}

// v1ReadError turns a source shorter than its declared size into
// ErrV1Decrypt, and leaves other errors as they are.
func v1ReadError(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return ErrV1Decrypt
	}
	return err
}

// readAtV1 is ReadAt for v1 ciphertext: it reads the blocks of [off, off+len(p))
// and the block before them, which is their IV, v1Chunk at a time.
func (r *ReaderAt) readAtV1(p []byte, off int64) (int, error) {
	end := min(off+int64(len(p)), r.size)
	bp := r.buffer()
	defer r.release(bp)
	buf := (*bp)[:cap(*bp)]
	n := 0
	for off < end {
		first := off / aes.BlockSize * aes.BlockSize // first block of this chunk
		last := min(first+v1Chunk, (end+aes.BlockSize-1)/aes.BlockSize*aes.BlockSize)
		var iv []byte
		from := first
		if first == 0 {
			iv = r.v1.iv[:]
		} else {
			from = first - aes.BlockSize
		}
		ct := buf[:last-from]
		if _, err := r.src.ReadAt(ct, from); err != nil {
			return n, v1ReadError(err)
		}
		if iv == nil {
			iv, ct = ct[:aes.BlockSize], ct[aes.BlockSize:]
		}
		cipher.NewCBCDecrypter(r.v1.block, iv).CryptBlocks(ct, ct)
		m := copy(p[n:], ct[off-first:min(end, last)-first])
		n += m
		off += int64(m)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
