package csev2

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"io"
	"testing"
)

// FuzzParseEncryptionData: no panic on any input; what parses re-encodes to
// JSON that parses to the same values.
func FuzzParseEncryptionData(f *testing.F) {
	vf, _ := loadVectors(f)
	for _, v := range vf.Vectors {
		f.Add([]byte(v.EncryptionData))
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"EncryptionAgent":{"Protocol":"1.0","EncryptionAlgorithm":"AES_CBC_256"},"ContentEncryptionIV":"AAAAAAAAAAAAAAAAAAAAAA=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ed, err := ParseEncryptionData(b)
		if err != nil {
			return
		}
		js, err := ed.Marshal()
		if err != nil {
			t.Fatalf("parsed data does not marshal: %v", err)
		}
		ed2, err := ParseEncryptionData(js)
		if err != nil {
			t.Fatalf("re-encoded data does not parse: %v", err)
		}
		js2, _ := ed2.Marshal()
		if !bytes.Equal(js, js2) {
			t.Fatalf("round trip changed the data:\n%s\n%s", js, js2)
		}
	})
}

// fuzzCEK is the content key of every ciphertext in the region fuzzer's
// corpus, so that any authenticated output must be the test plaintext.
var fuzzCEK = bytes.Repeat([]byte{0x5a}, 32)

// fuzzKEK "unwraps" its one wrapped key to fuzzCEK under protocol 2.1, so
// that the region fuzzer spends its time on regions, not on key wrap, and
// runs in every FIPS 140 mode.
type fuzzKEK struct{}

func (fuzzKEK) KeyID() string { return "fuzz" }
func (fuzzKEK) WrapKey(context.Context, string, []byte) ([]byte, error) {
	return nil, errors.New("fuzzKEK does not wrap")
}
func (fuzzKEK) UnwrapKey(_ context.Context, _ string, wrapped []byte) ([]byte, error) {
	if string(wrapped) != "fuzz wrapped key" {
		return nil, errors.New("not the fuzz key")
	}
	return append([]byte("2.1\x00\x00\x00\x00\x00"), fuzzCEK...), nil
}

// FuzzReader feeds arbitrary ciphertext, and an arbitrary region length, to
// NewReader and NewReaderAt under a fixed key. Since nobody can forge a
// region under that key, whatever comes out must be a region-aligned prefix
// of the plaintext the corpus was sealed from: no panic, no unauthenticated
// byte, no region out of place. Memory stays bounded by the input, whatever
// region length (up to 1 GiB) the metadata claims.
func FuzzReader(f *testing.F) {
	kek := fuzzKEK{}
	wrapped := []byte("fuzz wrapped key")
	pt := testPlaintext(200)
	for s := NonceJava; s <= NonceDotNet; s++ {
		for _, n := range []int{0, 1, 16, 17, 60, 200} {
			ct := testSeal(f, fuzzCEK, s, 16, pt[:n])
			f.Add(ct, uint32(16))
			if len(ct) > 60 {
				f.Add(append(append([]byte{}, ct[44:88]...), ct[:44]...), uint32(16))
			}
		}
	}
	f.Add([]byte("short"), uint32(1<<30))
	f.Fuzz(func(t *testing.T, ct []byte, rl uint32) {
		regionLen := int64(max(MinRegionLength, min(rl, MaxRegionLength)))
		ed := &EncryptionData{
			WrappedContentKey:   WrappedContentKey{KeyID: kek.KeyID(), EncryptedKey: wrapped, Algorithm: AlgorithmA256KW},
			EncryptionAgent:     EncryptionAgent{Protocol: Protocol21, EncryptionAlgorithm: algorithmAESGCM256},
			EncryptedRegionInfo: &EncryptedRegionInfo{DataLength: regionLen, NonceLength: nonceSize},
		}
		ctx := context.Background()
		r, err := NewReader(ctx, bytes.NewReader(ct), ed, Keys(kek), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		checkPrefix(t, got, pt, regionLen, err)

		ra, err := NewReaderAt(ctx, bytes.NewReader(ct), int64(len(ct)), ed, Keys(kek), nil)
		if err != nil {
			return // a size no region layout fits: ErrTruncated
		}
		got = make([]byte, min(ra.Size(), int64(len(ct))))
		n, err := ra.ReadAt(got, 0)
		if err == io.EOF {
			err = nil
		}
		checkPrefix(t, got[:n], pt, regionLen, err)
	})
}

func checkPrefix(t *testing.T, got, pt []byte, regionLen int64, err error) {
	t.Helper()
	if len(got) == 0 {
		return
	}
	// Under a region length other than the corpus's 16, only a lone short
	// region (region 0) can authenticate; it too must be a prefix.
	if len(got) > len(pt) || !bytes.Equal(got, pt[:len(got)]) {
		t.Fatalf("output is not a prefix of the plaintext (err %v)", err)
	}
	if err != nil && int64(len(got))%regionLen != 0 {
		t.Fatalf("failed read returned a partial region")
	}
}

// fuzzV1IV is the IV of the v1 reader fuzzer's metadata.
var fuzzV1IV = bytes.Repeat([]byte{0x17}, 16)

// fuzzV1KEK "unwraps" its one wrapped key to fuzzCEK, bare, as protocol 1.0
// wraps it.
type fuzzV1KEK struct{ fuzzKEK }

func (fuzzV1KEK) UnwrapKey(_ context.Context, _ string, wrapped []byte) ([]byte, error) {
	if string(wrapped) != "fuzz wrapped key" {
		return nil, errors.New("not the fuzz key")
	}
	return bytes.Clone(fuzzCEK), nil
}

// FuzzV1Reader feeds arbitrary ciphertext to the CSE v1 readers under a
// fixed key. v1 has no integrity, so the property is exactness: whatever
// NewReader returns must be the AES-CBC decryption of the input without its
// PKCS #7 padding, all or nothing beyond the held-back last block, and every
// failure is ErrV1Decrypt; NewReaderAt must agree, and its ranges with its
// whole.
func FuzzV1Reader(f *testing.F) {
	block, err := aes.NewCipher(fuzzCEK)
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 100} {
		pt := testPlaintext(n)
		pad := aes.BlockSize - n%aes.BlockSize
		ct := append(bytes.Clone(pt), bytes.Repeat([]byte{byte(pad)}, pad)...)
		cipher.NewCBCEncrypter(block, fuzzV1IV).CryptBlocks(ct, ct)
		f.Add(ct, uint16(0), uint16(0))
		f.Add(ct[:len(ct)-1], uint16(1), uint16(7))
	}
	f.Add([]byte{}, uint16(0), uint16(1))
	kek := fuzzV1KEK{}
	ed := &EncryptionData{
		WrappedContentKey:   WrappedContentKey{KeyID: kek.KeyID(), EncryptedKey: []byte("fuzz wrapped key"), Algorithm: AlgorithmA256KW},
		EncryptionAgent:     EncryptionAgent{Protocol: Protocol10, EncryptionAlgorithm: algorithmAESCBC256},
		ContentEncryptionIV: fuzzV1IV,
	}
	f.Fuzz(func(t *testing.T, ct []byte, off, n uint16) {
		// What a correct reader returns, computed independently.
		var want []byte
		valid := len(ct) >= aes.BlockSize && len(ct)%aes.BlockSize == 0
		if valid {
			want = make([]byte, len(ct))
			cipher.NewCBCDecrypter(block, fuzzV1IV).CryptBlocks(want, ct)
			pad := int(want[len(want)-1])
			valid = pad >= 1 && pad <= aes.BlockSize && bytes.Count(want[len(want)-pad:], []byte{byte(pad)}) == pad
			if valid {
				want = want[:len(want)-pad]
			}
		}
		ctx := context.Background()
		r, err := NewReader(ctx, bytes.NewReader(ct), ed, Keys(kek), &ReaderOptions{ReadCSEv1: true})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if valid != (err == nil) || (err != nil && !errors.Is(err, ErrV1Decrypt)) {
			t.Fatalf("NewReader: %v, valid %v", err, valid)
		}
		if valid && !bytes.Equal(got, want) {
			t.Fatal("NewReader's plaintext differs from AES-CBC's")
		}
		ra, err := NewReaderAt(ctx, bytes.NewReader(ct), int64(len(ct)), ed, Keys(kek), &ReaderOptions{ReadCSEv1: true})
		if valid != (err == nil) || (err != nil && !errors.Is(err, ErrV1Decrypt)) {
			t.Fatalf("NewReaderAt: %v, valid %v", err, valid)
		}
		if !valid {
			return
		}
		if ra.Size() != int64(len(want)) {
			t.Fatalf("Size %d, want %d", ra.Size(), len(want))
		}
		p := make([]byte, n)
		k, err := ra.ReadAt(p, int64(off))
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		exp := []byte{}
		if int(off) < len(want) {
			exp = want[off:min(len(want), int(off)+int(n))]
		}
		if !bytes.Equal(p[:k], exp) {
			t.Fatalf("ReadAt(%d, %d) differs", n, off)
		}
	})
}

// FuzzV1EncryptionData: metadata that parses as protocol 1.0 is refused by
// every reader without ReaderOptions.ReadCSEv1, before any key is asked; and
// what parses re-encodes to itself.
func FuzzV1EncryptionData(f *testing.F) {
	vf, _ := loadV1Vectors(f)
	for _, v := range vf.Vectors[:6] {
		f.Add([]byte(v.EncryptionData))
	}
	f.Add([]byte(`{"EncryptionAgent":{"Protocol":"1.0","EncryptionAlgorithm":"AES_CBC_256"},"ContentEncryptionIV":"AAAAAAAAAAAAAAAAAAAAAA==","WrappedContentKey":{"KeyId":"k","EncryptedKey":"AAAA","Algorithm":"A256KW"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ed, err := ParseEncryptionData(b)
		if err != nil || ed.EncryptionAgent.Protocol != Protocol10 {
			return
		}
		if len(ed.ContentEncryptionIV) != 16 || ed.EncryptionAgent.EncryptionAlgorithm != algorithmAESCBC256 {
			t.Fatalf("accepted a 1.0 document without a 16-byte IV and AES_CBC_256: %s", b)
		}
		js, err := ed.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if ed2, err := ParseEncryptionData(js); err != nil || !bytes.Equal(ed2.ContentEncryptionIV, ed.ContentEncryptionIV) {
			t.Fatalf("round trip: %v", err)
		}
		kek := &countingKEK{inner: fuzzV1KEK{}}
		ctx := context.Background()
		for _, opts := range []*ReaderOptions{nil, {}, {AllowMisorderedRegions: true}} {
			if _, err := NewReader(ctx, bytes.NewReader(nil), ed, Keys(kek), opts); !errors.Is(err, ErrUnsupportedProtocol) {
				t.Fatalf("NewReader without ReadCSEv1: %v", err)
			}
			if _, err := NewReaderAt(ctx, bytes.NewReader(nil), 32, ed, Keys(kek), opts); !errors.Is(err, ErrUnsupportedProtocol) {
				t.Fatalf("NewReaderAt without ReadCSEv1: %v", err)
			}
		}
		if kek.unwraps.Load() != 0 {
			t.Fatal("a key was asked for a v1 blob nobody opted into")
		}
	})
}
