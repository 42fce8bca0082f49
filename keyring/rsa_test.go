package keyring

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/geoseal/geoseal/internal/keyfile"
	"github.com/geoseal/geoseal/internal/wycheproof"
)

// rsaTestKeys are generated once per test binary: 2048-bit key generation
// is slow, more so under -race.
var rsaTestKeys = sync.OnceValues(func() ([2]*rsa.PrivateKey, error) {
	var keys [2]*rsa.PrivateKey
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return keys, err
		}
		keys[i] = k
	}
	return keys, nil
})

func rsaTestKey(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	keys, err := rsaTestKeys()
	if err != nil {
		t.Fatal(err)
	}
	return keys[i]
}

func mustNewRSAPrivate(t testing.TB, priv *rsa.PrivateKey, opts *RSAOptions) *RSA {
	t.Helper()
	k, err := NewRSAPrivate(priv, opts)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustNewRSAPublic(t testing.TB, pub *rsa.PublicKey, opts *RSAOptions) *RSA {
	t.Helper()
	k, err := NewRSAPublic(pub, opts)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRSARoundTrip(t *testing.T) {
	ctx := context.Background()
	priv := rsaTestKey(t, 0)
	k := mustNewRSAPrivate(t, priv, nil)
	dek := testDEK(t)
	keys, err := k.Wrap(ctx, dek, Context{"a": "b"})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].Provider != ProviderRSA || keys[0].Algorithm != AlgorithmRSA || keys[0].KeyID != k.KeyID() || len(keys[0].Ciphertext) != 256 {
		t.Fatalf("wrapped keys %+v", keys)
	}
	got, err := k.Unwrap(ctx, keys, Context{"a": "b"})
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("Unwrap: %v", err)
	}
	// The wrapped key is plain RSA-OAEP-256 with an empty label, as Key
	// Vault and HSMs produce and accept.
	pt, err := rsa.DecryptOAEP(sha256.New(), nil, priv, keys[0].Ciphertext, nil)
	if err != nil || !bytes.Equal(pt, dek) {
		t.Fatalf("standard RSA-OAEP-256 decryption: %v", err)
	}
}

func TestRSAPublicWrapPrivateUnwrap(t *testing.T) {
	ctx := context.Background()
	priv := rsaTestKey(t, 0)
	pubOnly := mustNewRSAPublic(t, &priv.PublicKey, nil)
	full := mustNewRSAPrivate(t, priv, nil)
	if pubOnly.KeyID() != full.KeyID() {
		t.Fatalf("key ids differ: %s, %s", pubOnly.KeyID(), full.KeyID())
	}
	dek := testDEK(t)
	keys, err := pubOnly.Wrap(ctx, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := full.Unwrap(ctx, keys, nil)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("private unwrap of a public wrap: %v", err)
	}
	_, err = pubOnly.Unwrap(ctx, keys, nil)
	var nm *NoMatchError
	if !errors.As(err, &nm) || len(nm.Tried) != 1 || !errors.Is(err, ErrNoPrivateKey) {
		t.Fatalf("public-only Unwrap: %v", err)
	}
	if !strings.Contains(err.Error(), "only a public key") {
		t.Fatalf("public-only error is not clear: %v", err)
	}
}

func TestRSACrossKeyring(t *testing.T) {
	ctx := context.Background()
	a, b := mustNewRSAPrivate(t, rsaTestKey(t, 0), nil), mustNewRSAPrivate(t, rsaTestKey(t, 1), nil)
	keys, err := a.Wrap(ctx, testDEK(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Unwrap(ctx, keys, nil)
	var nm *NoMatchError
	if !errors.As(err, &nm) || len(nm.Tried) != 0 || len(nm.Available) != 1 {
		t.Fatalf("other key: %v", err)
	}
	forged := keys[0]
	forged.KeyID = b.KeyID()
	_, err = b.Unwrap(ctx, []WrappedKey{forged}, nil)
	if !errors.As(err, &nm) || len(nm.Tried) != 1 || !errors.Is(err, errRSAOpen) {
		t.Fatalf("forged key id: %v", err)
	}
	// AES's wrapped keys are not RSA's, even relabelled.
	aes := mustNewAES(t, mustAESKey(t), nil)
	aesKeys, _ := aes.Wrap(ctx, testDEK(t), nil)
	if _, err := a.Unwrap(ctx, aesKeys, nil); !errors.As(err, &nm) || len(nm.Tried) != 0 {
		t.Fatalf("AES key offered to RSA: %v", err)
	}
	if _, err := aes.Unwrap(ctx, keys, nil); !errors.As(err, &nm) || len(nm.Tried) != 0 {
		t.Fatalf("RSA key offered to AES: %v", err)
	}
}

func TestRSAMalformed(t *testing.T) {
	ctx := context.Background()
	k := mustNewRSAPrivate(t, rsaTestKey(t, 0), &RSAOptions{MaxWrappedKeys: 3})
	keys, err := k.Wrap(ctx, testDEK(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ct := keys[0].Ciphertext
	// A correctly padded plaintext that is not 32 bytes is refused.
	wrongSize, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &rsaTestKey(t, 0).PublicKey, make([]byte, 16), nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string][]byte{
		"empty":     nil,
		"short":     ct[:255],
		"long":      append(bytes.Clone(ct), 0),
		"flipped":   append([]byte{ct[0] ^ 0x80}, ct[1:]...),
		"modulus":   rsaTestKey(t, 0).N.Bytes(),
		"16-byte":   wrongSize,
		"all ones":  bytes.Repeat([]byte{0xff}, 256),
		"all zeros": make([]byte, 256),
	} {
		dek, err := k.Unwrap(ctx, []WrappedKey{{ProviderRSA, k.KeyID(), AlgorithmRSA, c}}, nil)
		var nm *NoMatchError
		if !errors.As(err, &nm) || len(nm.Tried) != 1 || dek != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := k.Unwrap(ctx, []WrappedKey{{ProviderRSA, k.KeyID(), "RSA-OAEP", ct}}, nil); err == nil {
		t.Error("RSA-OAEP (SHA-1) algorithm accepted")
	}
	if _, err := k.Unwrap(ctx, make([]WrappedKey, 4), nil); !errors.Is(err, ErrTooManyKeys) {
		t.Errorf("4 keys with a limit of 3: %v", err)
	}
	if _, err := k.Wrap(ctx, make([]byte, 31), nil); err == nil {
		t.Error("wrapped a 31-byte data key")
	}
}

func TestRSAKeyChecks(t *testing.T) {
	small := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 1023), E: 65537}
	small.N.Add(small.N, big.NewInt(1))
	if _, err := NewRSAPublic(small, nil); err == nil || !strings.Contains(err.Error(), "2048") {
		t.Errorf("1024-bit key: %v", err)
	}
	big2048 := rsaTestKey(t, 0).PublicKey
	for name, pub := range map[string]*rsa.PublicKey{
		"nil":        nil,
		"nil N":      {E: 65537},
		"even E":     {N: big2048.N, E: 65536},
		"E 1":        {N: big2048.N, E: 1},
		"huge":       {N: new(big.Int).Lsh(big.NewInt(1), 20000), E: 65537},
		"1024 bits":  small,
		"2047 bits:": {N: new(big.Int).Rsh(big2048.N, 1), E: 65537},
	} {
		if _, err := NewRSAPublic(pub, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewRSAPrivate(&rsa.PrivateKey{PublicKey: *small, D: big.NewInt(3)}, nil); err == nil || !strings.Contains(err.Error(), "at least 2048") {
		t.Errorf("1024-bit private key: %v", err)
	}
	// internal/keyfile, which keyring imports, applies the same bounds to
	// key files.
	if MinRSABits != keyfile.MinRSABits || maxRSABits != keyfile.MaxRSABits {
		t.Errorf("keyring allows %d to %d bits, keyfile %d to %d", MinRSABits, maxRSABits, keyfile.MinRSABits, keyfile.MaxRSABits)
	}
	if _, err := NewRSAPrivate(nil, nil); err == nil {
		t.Error("nil private key accepted")
	}
	broken := *rsaTestKey(t, 0)
	broken.D = big.NewInt(12345)
	broken.Precomputed = rsa.PrecomputedValues{}
	if _, err := NewRSAPrivate(&broken, nil); err == nil {
		t.Error("inconsistent private key accepted")
	}
}

func TestRSAKeyID(t *testing.T) {
	pub := &rsaTestKey(t, 0).PublicKey
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	if got, want := mustNewRSAPublic(t, pub, nil).KeyID(), hex.EncodeToString(sum[:16]); got != want {
		t.Fatalf("key id %s, want %s", got, want)
	}
	if mustNewRSAPublic(t, &rsaTestKey(t, 1).PublicKey, nil).KeyID() == mustNewRSAPublic(t, pub, nil).KeyID() {
		t.Fatal("two keys share a key id")
	}
}

// TestLoadRSAPEM checks that the loaders read PEM files through
// internal/keyfile (whose tests cover the formats and checks) and make the
// keyring of the key.
func TestLoadRSAPEM(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	priv := rsaTestKey(t, 0)
	want := mustNewRSAPublic(t, &priv.PublicKey, nil).KeyID()
	write := func(name, typ string, der []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pkix, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadRSAPublicPEM(write("pkix.pem", "PUBLIC KEY", pkix, 0o644), nil)
	if err != nil || pub.KeyID() != want {
		t.Fatalf("LoadRSAPublicPEM: %v", err)
	}
	dek := testDEK(t)
	keys, err := pub.Wrap(ctx, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	full, err := LoadRSAPrivatePEM(write("pkcs1.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(priv), 0o600), nil)
	if err != nil || full.KeyID() != want {
		t.Fatalf("LoadRSAPrivatePEM: %v", err)
	}
	if got, err := full.Unwrap(ctx, keys, nil); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("Unwrap: %v", err)
	}
	if _, err := LoadRSAPrivatePEM(write("open.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(priv), 0o644), nil); err == nil {
		t.Error("loaded a private key file readable by others")
	}
	if _, err := LoadRSAPublicPEM(filepath.Join(dir, "missing.pem"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestRSAAudit(t *testing.T) {
	ctx := context.Background()
	audit, logger := newCapturedAudit()
	priv := rsaTestKey(t, 0)
	k := mustNewRSAPrivate(t, priv, &RSAOptions{Logger: logger})
	pubOnly := mustNewRSAPublic(t, &priv.PublicKey, &RSAOptions{Logger: logger})
	dek := testDEK(t)
	keys, err := pubOnly.Wrap(ctx, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Unwrap(ctx, keys, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pubOnly.Unwrap(ctx, keys, nil); err == nil {
		t.Fatal("public-only unwrapped")
	}
	recs := audit.records(t)
	if len(recs) != 3 {
		t.Fatalf("%d audit records:\n%s", len(recs), audit.output())
	}
	checkRecord(t, recs[0], "wrap", ProviderRSA, k.KeyID(), AlgorithmRSA, "ok")
	checkRecord(t, recs[1], "unwrap", ProviderRSA, k.KeyID(), AlgorithmRSA, "ok")
	checkRecord(t, recs[2], "unwrap", ProviderRSA, k.KeyID(), AlgorithmRSA, "error")
	if !strings.Contains(recs[2]["error"].(string), "only a public key") {
		t.Errorf("error attribute %q", recs[2]["error"])
	}
	audit.assertNoSecrets(t, dek, priv.D.Bytes(), priv.Primes[0].Bytes())
}

// loadWycheproofRSAOAEP256 returns the key and vectors of the Wycheproof
// RSA-OAEP (SHA-256, MGF1-SHA-256) file, whose single 2048-bit key the fuzz
// targets reuse.
func loadWycheproofRSAOAEP256(t testing.TB) (*rsa.PrivateKey, []wycheproof.Test) {
	t.Helper()
	file := wycheproof.Load(t, wycheproof.RSAOAEPSHA256)
	if len(file.TestGroups) != 1 {
		t.Fatalf("%d test groups, want 1", len(file.TestGroups))
	}
	g := file.TestGroups[0]
	if g.KeySize != 2048 || g.SHA != "SHA-256" || g.MGF != "MGF1" || g.MGFSHA != "SHA-256" {
		t.Fatalf("unexpected group %d %s %s %s", g.KeySize, g.SHA, g.MGF, g.MGFSHA)
	}
	priv, err := g.RSAPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return priv, g.Tests
}

// TestRSAOAEPWycheproof drives rsaOAEP256Open, the decryption the RSA
// keyring's Unwrap uses, with Wycheproof's vectors.
func TestRSAOAEPWycheproof(t *testing.T) {
	priv, tests := loadWycheproofRSAOAEP256(t)
	var valid, invalid int
	for _, tc := range tests {
		ct, msg, label := tc.CT, tc.Msg, tc.Label
		pt, err := rsaOAEP256Open(priv, ct, label)
		switch tc.Result {
		case "valid":
			valid++
			if err != nil || !bytes.Equal(pt, msg) {
				t.Errorf("tcId %d (%s): valid vector: %v", tc.TcID, tc.Comment, err)
			}
		case "invalid":
			invalid++
			if err == nil {
				t.Errorf("tcId %d (%s): invalid vector decrypted", tc.TcID, tc.Comment)
			} else if err != errRSAOpen {
				t.Errorf("tcId %d: error %v is not the single uniform error", tc.TcID, err)
			}
		default:
			t.Errorf("tcId %d: unexpected result %q", tc.TcID, tc.Result)
		}
	}
	if valid == 0 || invalid == 0 {
		t.Fatalf("ran %d valid and %d invalid vectors", valid, invalid)
	}
	t.Logf("%d valid and %d invalid RSA-OAEP-256 vectors", valid, invalid)

	// The keyring itself, with the vectors' key, unwraps the vectors whose
	// message is a 32-byte data key and whose label is empty.
	k := mustNewRSAPrivate(t, priv, nil)
	var throughKeyring int
	for _, tc := range tests {
		if !tc.Valid() || len(tc.Label) != 0 || len(tc.Msg) != 32 {
			continue
		}
		got, err := k.Unwrap(context.Background(), []WrappedKey{{ProviderRSA, k.KeyID(), AlgorithmRSA, tc.CT}}, nil)
		if err != nil || !bytes.Equal(got, tc.Msg) {
			t.Errorf("tcId %d through the keyring: %v", tc.TcID, err)
		}
		throughKeyring++
	}
	if throughKeyring == 0 {
		t.Fatal("no vector went through the keyring")
	}
}

func BenchmarkRSAWrap(b *testing.B) {
	k := mustNewRSAPublic(b, &rsaTestKey(b, 0).PublicKey, nil)
	dek := testDEK(b)
	for b.Loop() {
		if _, err := k.Wrap(context.Background(), dek, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRSAUnwrap(b *testing.B) {
	k := mustNewRSAPrivate(b, rsaTestKey(b, 0), nil)
	keys, err := k.Wrap(context.Background(), testDEK(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := k.Unwrap(context.Background(), keys, nil); err != nil {
			b.Fatal(err)
		}
	}
}
