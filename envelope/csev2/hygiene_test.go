package csev2

import (
	"bytes"
	"context"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"math/big"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/geoseal/geoseal/internal/keyfile"
	"github.com/geoseal/geoseal/internal/kvtest"
	"github.com/geoseal/geoseal/keyring"
)

// weakPublicKey is an RSA public key of the given size (not a real key: its
// modulus is only the right length, which is all the size check looks at).
func weakPublicKey(bits int) *rsa.PublicKey {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	n.Add(n, big.NewInt(0xffff))
	return &rsa.PublicKey{N: n, E: 65537}
}

// TestRSAKeySize: an RSA key below keyring.MinRSABits is refused wherever it
// enters: LocalRSAKEK (public or private), and a vault key, which gets no
// wrapkey or unwrapkey request.
func TestRSAKeySize(t *testing.T) {
	for _, bits := range []int{512, 1024, keyring.MinRSABits - 1} {
		if _, err := LocalRSAKEK("local:weak", nil, weakPublicKey(bits)); err == nil {
			t.Errorf("LocalRSAKEK accepted a %d-bit public key", bits)
		}
	}
	if _, err := LocalRSAKEK("local:big", nil, weakPublicKey(keyfile.MaxRSABits+1)); err == nil {
		t.Error("LocalRSAKEK accepted a key whose wraps exceed the metadata bound")
	}
	if _, err := LocalRSAKEK("local:ok", nil, weakPublicKey(keyring.MinRSABits)); err != nil {
		t.Errorf("a %d-bit key: %v", keyring.MinRSABits, err)
	}
	if !fips140.Enforced() { // FIPS 140-only mode cannot make 1024-bit keys
		priv, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := LocalRSAKEK("local:weak", priv, nil); err == nil {
			t.Error("LocalRSAKEK accepted a 1024-bit private key")
		}
	}

	kv := kvtest.NewServer(t)
	client, err := azkeys.NewClient(kv.URL, kv.Credential(), kv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kid := kv.CreateRSAKey("weak", 1024)
	resolver, err := KeyVaultResolver(client, kv.KeyURL("weak"))
	if err != nil {
		t.Fatal(err)
	}
	kv.ResetCounts()
	_, err = NewReader(ctx, strings.NewReader(""), metadataNaming(kid, AlgorithmRSAOAEP256, bytes.Repeat([]byte{1}, 128)), resolver, nil)
	if !errors.Is(err, ErrUnwrap) {
		t.Fatalf("blob under a 1024-bit vault key: %v, want ErrUnwrap", err)
	}
	kek, err := KeyVaultKEK(client, kid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kek.WrapKey(ctx, AlgorithmRSAOAEP256, make([]byte, 40)); err == nil {
		t.Error("a 1024-bit vault key wrapped")
	}
	if c := kv.Counts(); c.WrapKey+c.UnwrapKey != 0 {
		t.Errorf("a 1024-bit vault key was asked to wrap or unwrap: %+v", c)
	}
}

// TestReaderZeroesPlaintext: the readers leave no plaintext in their buffers
// once it is read, once a read fails, and after Close; ReaderAt's pooled
// region buffers come back zeroed.
func TestReaderZeroesPlaintext(t *testing.T) {
	ctx := context.Background()
	kek := testRSAKEK(t)
	const rl = 64
	pt := bytes.Repeat([]byte{0xee}, 5*rl+9) // no zero byte: any leftover shows
	ct, ed := sealedBlob(t, kek, NoncePython, Protocol21, rl, pt)
	zero := func(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }

	// Read to the end.
	r, err := NewReader(ctx, bytes.NewReader(ct), ed, Keys(kek), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, pt) {
		t.Fatal(err)
	}
	if !zero(r.pbuf[:cap(r.pbuf)]) {
		t.Error("plaintext left in the Reader after EOF")
	}
	// The last bytes read, without asking for EOF.
	r, _ = NewReader(ctx, bytes.NewReader(ct), ed, Keys(kek), nil)
	if _, err := io.ReadFull(r, make([]byte, len(pt))); err != nil {
		t.Fatal(err)
	}
	if !zero(r.pbuf[:cap(r.pbuf)]) {
		t.Error("plaintext left in the Reader after its last byte was read")
	}
	// Half way, then Close.
	r, _ = NewReader(ctx, bytes.NewReader(ct), ed, Keys(kek), nil)
	if _, err := io.ReadFull(r, make([]byte, rl+10)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if !zero(r.pbuf[:cap(r.pbuf)]) {
		t.Error("plaintext left in the Reader after Close")
	}
	if n, err := r.Read(make([]byte, 10)); n != 0 || err == nil {
		t.Errorf("Read after Close: %d, %v", n, err)
	}
	// A failing region after good ones.
	bad := bytes.Clone(ct)
	bad[2*(rl+Overhead)+20] ^= 1
	r, _ = NewReader(ctx, bytes.NewReader(bad), ed, Keys(kek), nil)
	if _, err := io.ReadAll(r); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("tampered: %v", err)
	}
	if !zero(r.pbuf[:cap(r.pbuf)]) {
		t.Error("plaintext left in the Reader after a failed region")
	}

	// ReaderAt: every buffer back in the pool is zero. sync.Pool may drop
	// what is put (it does at random under -race): many reads leave some.
	ra, err := NewReaderAt(ctx, bytes.NewReader(ct), int64(len(ct)), ed, Keys(kek), nil)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for i := range 100 {
		p := make([]byte, 30)
		if _, err := ra.ReadAt(p, int64(i*3%len(pt))); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if bp, ok := ra.pool.Get().(*[]byte); ok {
			found++
			if !zero(*bp) {
				t.Fatal("plaintext left in a pooled region buffer")
			}
		}
	}
	if found == 0 {
		t.Fatal("no region buffer came back to the pool")
	}
}
