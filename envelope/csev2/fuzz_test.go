package csev2

import (
	"bytes"
	"context"
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
