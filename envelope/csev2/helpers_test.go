package csev2

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"os"
	"sync"
	"testing"
)

// testPlaintext is the vectors' plaintext: byte(i*31 + i>>11).
func testPlaintext(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>11)
	}
	return b
}

// testSeal encrypts pt into regions as the SDKs do, independently of the
// package's sealer: with cipher.NewGCM where allowed, and in FIPS 140-only
// mode (where NewGCM refuses caller-chosen nonces) with AES-CTR and a GHASH
// written from NIST SP 800-38D. The two agree (TestTestSeal).
func testSeal(t testing.TB, cek []byte, scheme NonceScheme, regionLen int, pt []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(cek)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for i := 0; i*regionLen < len(pt); i++ {
		chunk := pt[i*regionLen : min((i+1)*regionLen, len(pt))]
		var n [nonceSize]byte
		scheme.nonce(&n, uint64(i))
		out = append(out, n[:]...)
		if fips140.Enforced() {
			out = append(out, manualGCMSeal(block, n[:], chunk)...)
		} else {
			g, err := cipher.NewGCM(block)
			if err != nil {
				t.Fatal(err)
			}
			out = g.Seal(out, n[:], chunk, nil)
		}
	}
	return out
}

// manualGCMSeal is AES-GCM with a 96-bit nonce and no additional data,
// built from AES-CTR (allowed in FIPS 140-only mode) and a bitwise GHASH.
func manualGCMSeal(block cipher.Block, nonce, pt []byte) []byte {
	var h, j0, ekj0 [16]byte
	block.Encrypt(h[:], h[:])
	copy(j0[:], nonce)
	j0[15] = 1
	block.Encrypt(ekj0[:], j0[:])
	ctr := j0
	ctr[15] = 2
	ct := make([]byte, len(pt))
	cipher.NewCTR(block, ctr[:]).XORKeyStream(ct, pt)

	hh, hl := binary.BigEndian.Uint64(h[:8]), binary.BigEndian.Uint64(h[8:])
	var yh, yl uint64
	absorb := func(b []byte) {
		var blk [16]byte
		copy(blk[:], b)
		yh ^= binary.BigEndian.Uint64(blk[:8])
		yl ^= binary.BigEndian.Uint64(blk[8:])
		yh, yl = gfMul(yh, yl, hh, hl)
	}
	for i := 0; i < len(ct); i += 16 {
		absorb(ct[i:min(i+16, len(ct))])
	}
	var lens [16]byte
	binary.BigEndian.PutUint64(lens[8:], uint64(len(ct))*8)
	absorb(lens[:])
	var tag [16]byte
	binary.BigEndian.PutUint64(tag[:8], yh)
	binary.BigEndian.PutUint64(tag[8:], yl)
	for i := range tag {
		tag[i] ^= ekj0[i]
	}
	return append(ct, tag[:]...)
}

// gfMul multiplies in GF(2^128) with GCM's bit order (SP 800-38D, Algorithm 1).
func gfMul(xh, xl, yh, yl uint64) (uint64, uint64) {
	var zh, zl uint64
	vh, vl := yh, yl
	for i := 0; i < 128; i++ {
		var bit uint64
		if i < 64 {
			bit = xh >> (63 - i) & 1
		} else {
			bit = xl >> (127 - i) & 1
		}
		if bit == 1 {
			zh ^= vh
			zl ^= vl
		}
		lsb := vl & 1
		vl = vl>>1 | vh<<63
		vh >>= 1
		if lsb == 1 {
			vh ^= 0xe1 << 56
		}
	}
	return zh, zl
}

func loadRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile("testdata/rsa2048.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("testdata/rsa2048.pem: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

// mustGenerateRSA returns a 2048-bit RSA key other than testdata's,
// generated once per test binary.
func mustGenerateRSA(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := otherRSAKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var otherRSAKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

// testRSAKEK is a local RSA-OAEP-256 key-encryption key, which reads in every
// FIPS 140 mode (local A256KW does not: see LocalAESKEK).
func testRSAKEK(t testing.TB) KeyEncryptionKey {
	t.Helper()
	k, err := LocalRSAKEK("local:test-rsa", loadRSAKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// wrapAlgorithm is the algorithm a test wraps with under kek: A256KW for an
// AES key, RSA-OAEP-256 for an RSA key.
func wrapAlgorithm(t testing.TB, kek KeyEncryptionKey) string {
	t.Helper()
	kt, err := kek.(KeyTyper).KeyType(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if kt == KeyTypeAES {
		return AlgorithmA256KW
	}
	return AlgorithmRSAOAEP256
}

// loadJSON decodes the JSON file path into v.
func loadJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// vectorKeys resolves a vector file's two keys: its AES KEK and the RSA key
// of testdata/rsa2048.pem.
func vectorKeys(t testing.TB, aesHex, aesKID, rsaKID string) KeyResolver {
	t.Helper()
	aesKEK, err := LocalAESKEK(aesKID, mustHex(t, aesHex))
	if err != nil {
		t.Fatal(err)
	}
	rsaKEK, err := LocalRSAKEK(rsaKID, loadRSAKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return Keys(aesKEK, rsaKEK)
}

// rangeOf is what DownloadRange(offset, count) of pt returns: count 0 means
// to the end, and a range past the end is cut there.
func rangeOf(pt []byte, offset, count int64) []byte {
	end := int64(len(pt))
	if count > 0 {
		end = min(end, offset+count)
	}
	if offset >= end {
		return []byte{}
	}
	return pt[offset:end]
}
