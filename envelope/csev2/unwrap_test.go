package csev2

import (
	"bytes"
	"context"
	"crypto/fips140"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/geoseal/geoseal/internal/kvtest"
)

// countingKEK is a caller's own KeyEncryptionKey (no KeyTyper): it counts the
// calls that reach it and forwards them to inner.
type countingKEK struct {
	inner   KeyEncryptionKey
	unwraps atomic.Int32
}

func (k *countingKEK) KeyID() string { return k.inner.KeyID() }
func (k *countingKEK) WrapKey(ctx context.Context, alg string, key []byte) ([]byte, error) {
	return k.inner.WrapKey(ctx, alg, key)
}
func (k *countingKEK) UnwrapKey(ctx context.Context, alg string, wrapped []byte) ([]byte, error) {
	k.unwraps.Add(1)
	return k.inner.UnwrapKey(ctx, alg, wrapped)
}

// typedKEK is a caller's KEK that declares its type.
type typedKEK struct {
	*countingKEK
	kt KeyType
}

func (k typedKEK) KeyType(context.Context) (KeyType, error) { return k.kt, nil }

// metadataNaming returns v2 metadata whose wrapped key claims algorithm alg.
func metadataNaming(kid, alg string, wrapped []byte) *EncryptionData {
	return &EncryptionData{
		WrappedContentKey:   WrappedContentKey{KeyID: kid, EncryptedKey: wrapped, Algorithm: alg},
		EncryptionAgent:     EncryptionAgent{Protocol: Protocol20, EncryptionAlgorithm: algorithmAESGCM256},
		EncryptedRegionInfo: &EncryptedRegionInfo{DataLength: DefaultRegionLength, NonceLength: nonceSize},
	}
}

// TestUnwrapAlgorithmAllowList: whatever algorithm the metadata names, a key
// is asked only for the algorithms of its type, and anything else is refused
// with ErrUnwrap before the key sees a call: for the package's own keys, and
// for a caller's KEK (which, declaring no type, may be asked for the three
// CSE algorithms and nothing else).
func TestUnwrapAlgorithmAllowList(t *testing.T) {
	ctx := context.Background()
	rsaKey, err := LocalRSAKEK("local:rsa", loadRSAKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	hostile := []string{"RSA1_5", "RSA-OAEP-384", "RSA-OAEP-512", "A128KW", "A256GCMKW", "dir", "a256kw", "rsa-oaep-256", "RSA-OAEP-256 ", "CKM_RSA_AES_KEY_WRAP"}
	for _, c := range []struct {
		name    string
		kt      KeyType // "" for no KeyTyper
		inner   KeyEncryptionKey
		allowed []string
	}{
		{"caller's AES KEK", "", testAESKEK(t), []string{AlgorithmA256KW, AlgorithmRSAOAEP256, AlgorithmRSAOAEP}},
		{"caller's RSA KEK", "", rsaKey, []string{AlgorithmA256KW, AlgorithmRSAOAEP256, AlgorithmRSAOAEP}},
		{"typed AES KEK", KeyTypeAES, testAESKEK(t), []string{AlgorithmA256KW}},
		{"typed RSA KEK", KeyTypeRSA, rsaKey, []string{AlgorithmRSAOAEP256, AlgorithmRSAOAEP}},
	} {
		for _, alg := range append(append([]string{}, hostile...), AlgorithmA256KW, AlgorithmRSAOAEP256, AlgorithmRSAOAEP, algorithmRSA) {
			t.Run(c.name+"/"+alg, func(t *testing.T) {
				ck := &countingKEK{inner: c.inner}
				var kek KeyEncryptionKey = ck
				if c.kt != "" {
					kek = typedKEK{ck, c.kt}
				}
				ed := metadataNaming(kek.KeyID(), alg, bytes.Repeat([]byte{1}, 256))
				_, err := NewReader(ctx, strings.NewReader(""), ed, Keys(kek), nil)
				if err == nil {
					t.Fatal("a made-up wrapped key unwrapped")
				}
				passed := false
				for _, a := range c.allowed {
					passed = passed || a == alg
				}
				switch {
				case alg == AlgorithmRSAOAEP && passed && fips140.Enforced():
					passed = false // refused before the call, with ErrNotApproved
					if !errors.Is(err, ErrNotApproved) {
						t.Fatalf("RSA-OAEP in FIPS 140-only mode: %v, want ErrNotApproved", err)
					}
				case alg == AlgorithmA256KW && passed && isLocalAES(c.inner) && fips140.Enforced():
					// The caller's KEK is asked; the local AES key inside
					// it refuses.
					if !errors.Is(err, ErrNotApproved) {
						t.Fatalf("local A256KW in FIPS 140-only mode: %v, want ErrNotApproved", err)
					}
				case !errors.Is(err, ErrUnwrap):
					t.Fatalf("got %v, want ErrUnwrap", err)
				}
				if got := ck.unwraps.Load(); (got == 1) != passed || got > 1 {
					t.Fatalf("the key saw %d UnwrapKey calls for %q; want %d", got, alg, map[bool]int{true: 1}[passed])
				}
			})
		}
	}
}

// TestKeyVaultAllowList reads blobs whose metadata names algorithms a vault
// key must never be asked for, through the real azkeys client and the kvtest
// vault: RSA1_5 costs no request at all; an algorithm of the other key type
// costs at most the one GET that tells the KEK the key's type (once per key
// version, shared by the resolver's KEKs) and never an unwrapkey. The vault
// KEK refuses the same when called directly.
func TestKeyVaultAllowList(t *testing.T) {
	kv := kvtest.NewServer(t)
	client, err := azkeys.NewClient(kv.URL, kv.Credential(), kv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rsaKID := kv.CreateRSAKey("allow-rsa", 2048)
	aesKID := kv.CreateOctHSMKey("allow-aes")
	wrapped := bytes.Repeat([]byte{7}, 256)

	for _, c := range []struct {
		kid, keyURL, alg string
		gets             int // GETs of the key type, for the first blob only
	}{
		{rsaKID, kv.KeyURL("allow-rsa"), "RSA1_5", 0},
		{rsaKID, kv.KeyURL("allow-rsa"), "RSA-OAEP-384", 0},
		{rsaKID, kv.KeyURL("allow-rsa"), algorithmRSA, 0},
		{rsaKID, kv.KeyURL("allow-rsa"), AlgorithmA256KW, 1},
		{aesKID, kv.KeyURL("allow-aes"), "RSA1_5", 0},
		{aesKID, kv.KeyURL("allow-aes"), AlgorithmRSAOAEP256, 1},
		{aesKID, kv.KeyURL("allow-aes"), AlgorithmRSAOAEP, 1},
	} {
		resolver, err := KeyVaultResolver(client, c.keyURL)
		if err != nil {
			t.Fatal(err)
		}
		kv.ResetCounts()
		for blob := range 3 {
			_, err := NewReader(ctx, strings.NewReader(""), metadataNaming(c.kid, c.alg, wrapped), resolver, nil)
			if c.alg == AlgorithmRSAOAEP && c.kid == rsaKID && fips140.Enforced() {
				if !errors.Is(err, ErrNotApproved) {
					t.Fatalf("%s on %s: %v, want ErrNotApproved", c.alg, c.kid, err)
				}
			} else if !errors.Is(err, ErrUnwrap) {
				t.Fatalf("%q on %s: %v, want ErrUnwrap", c.alg, c.kid, err)
			}
			got := kv.Counts()
			if got.UnwrapKey+got.WrapKey+got.Decrypt+got.Encrypt != 0 || got.GetKey != c.gets {
				t.Fatalf("blob %d naming %q made requests %+v; want %d GETs and no key operation", blob, c.alg, got, c.gets)
			}
		}
	}

	// Called directly, the vault KEK refuses too, before any request.
	kek, err := KeyVaultKEK(client, rsaKID)
	if err != nil {
		t.Fatal(err)
	}
	kv.ResetCounts()
	for _, alg := range []string{"RSA1_5", "RSA-OAEP-384", algorithmRSA} {
		if _, err := kek.UnwrapKey(ctx, alg, wrapped); err == nil {
			t.Errorf("KeyVaultKEK.UnwrapKey(%q) succeeded", alg)
		}
		if _, err := kek.WrapKey(ctx, alg, make([]byte, 40)); err == nil {
			t.Errorf("KeyVaultKEK.WrapKey(%q) succeeded", alg)
		}
	}
	if got := kv.Counts(); got != (kvtest.Counts{}) {
		t.Errorf("refused algorithms made requests: %+v", got)
	}
}

// TestUnwrapErrorIsOpaque: every way a content key can fail to unwrap gives
// ErrUnwrap with one and the same text, which names none of the steps; the
// reason goes to the audit log only. Among them a wrong A256KW key, whose
// keywrap integrity failure used to surface as keywrap's own error.
func TestUnwrapErrorIsOpaque(t *testing.T) {
	ctx := context.Background()
	const kid = "local:opaque"
	rsaPriv := loadRSAKey(t)
	rsaKEK, err := LocalRSAKEK(kid, rsaPriv, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherRSA, err := LocalRSAKEK(kid, mustGenerateRSA(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	wrapRSA := func(payload []byte) []byte {
		w, err := rsaKEK.WrapKey(ctx, AlgorithmRSAOAEP256, payload)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	good := append([]byte("2.0\x00\x00\x00\x00\x00"), bytes.Repeat([]byte{4}, 32)...)
	cases := []opaqueCase{
		{"algorithm refused", rsaKEK, "RSA1_5", wrapRSA(good), "RSA1_5"},
		{"algorithm of the other type", rsaKEK, AlgorithmA256KW, wrapRSA(good), "type RSA"},
		{"wrong key", otherRSA, AlgorithmRSAOAEP256, wrapRSA(good), "key-encryption key"},
		{"corrupted wrapped key", rsaKEK, AlgorithmRSAOAEP256, append(wrapRSA(good)[:255:255], 0), "key-encryption key"},
		{"wrong length", rsaKEK, AlgorithmRSAOAEP256, wrapRSA(good[:39]), "unwrapped 39 bytes"},
		{"bare key (a 1.0 wrap)", rsaKEK, AlgorithmRSAOAEP256, wrapRSA(good[8:]), "unwrapped 32 bytes"},
		{"downgraded prefix", rsaKEK, AlgorithmRSAOAEP256, wrapRSA(append([]byte("2.1\x00\x00\x00\x00\x00"), good[8:]...)), "prefix"},
	}
	if !fips140.Enforced() {
		// Local A256KW runs outside the FIPS module: these need the default mode.
		aes, _ := LocalAESKEK(kid, bytes.Repeat([]byte{0x42}, 32))
		wrongAES, _ := LocalAESKEK(kid, bytes.Repeat([]byte{0x43}, 32))
		w, err := aes.WrapKey(ctx, AlgorithmA256KW, good)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, opaqueCase{"wrong AES key (keywrap integrity)", wrongAES, AlgorithmA256KW, w, "integrity"},
			opaqueCase{"A256KW ciphertext of a bad length", aes, AlgorithmA256KW, w[:41], "ciphertext length"})
	}
	// A vault that refuses: a 4xx from the service.
	kv := kvtest.NewServer(t)
	client, err := azkeys.NewClient(kv.URL, kv.Credential(), kv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	vaultKEK, err := KeyVaultKEK(client, kv.CreateRSAKey("opaque", 2048))
	if err != nil {
		t.Fatal(err)
	}
	cases = append(cases, opaqueCase{"the vault's 400", vaultKEK, AlgorithmRSAOAEP256, bytes.Repeat([]byte{9}, 256), "400"},
		opaqueCase{"RSA1_5 to the vault", vaultKEK, "RSA1_5", bytes.Repeat([]byte{9}, 256), "RSA1_5"})

	for _, c := range cases {
		var log bytes.Buffer
		ed := metadataNaming(c.kek.KeyID(), c.alg, c.wrapped)
		_, err := NewReader(ctx, strings.NewReader(""), ed, Keys(c.kek), &ReaderOptions{Logger: slog.New(slog.NewTextHandler(&log, nil))})
		if !errors.Is(err, ErrUnwrap) {
			t.Fatalf("%s: %v, want ErrUnwrap", c.name, err)
		}
		// The same words for every failure: only the key id differs, and
		// it is the metadata's own.
		if want := fmt.Sprintf("%v (key %q)", ErrUnwrap, c.kek.KeyID()); err.Error() != want {
			t.Errorf("%s: error text %q, want %q", c.name, err, want)
		}
		if !strings.Contains(log.String(), c.reason) || !strings.Contains(log.String(), "outcome=failed") {
			t.Errorf("%s: the audit log does not give the reason %q: %s", c.name, c.reason, log.String())
		}
	}
}

type opaqueCase struct {
	name    string
	kek     KeyEncryptionKey
	alg     string
	wrapped []byte
	reason  string // in the audit log
}

func isLocalAES(k KeyEncryptionKey) bool {
	_, ok := k.(*aesKEK)
	return ok
}

// TestRSAAlias: the name RSA, which the Python SDK's own RSAKeyWrapper
// writes for RSA-OAEP with SHA-1, is read as RSA-OAEP for a local RSA key
// (not in FIPS 140-only mode, where SHA-1 is refused), and for no other key.
func TestRSAAlias(t *testing.T) {
	ctx := context.Background()
	kek := testRSAKEK(t)
	payload := append([]byte("2.0\x00\x00\x00\x00\x00"), bytes.Repeat([]byte{8}, 32)...)
	var wrapped []byte
	if !fips140.Enforced() {
		var err error
		if wrapped, err = kek.WrapKey(ctx, AlgorithmRSAOAEP, payload); err != nil {
			t.Fatal(err)
		}
	} else {
		wrapped = bytes.Repeat([]byte{1}, 256)
	}
	ed := metadataNaming(kek.KeyID(), algorithmRSA, wrapped)
	_, err := NewReader(ctx, strings.NewReader(""), ed, Keys(kek), nil)
	if fips140.Enforced() {
		if !errors.Is(err, ErrNotApproved) {
			t.Fatalf("RSA in FIPS 140-only mode: %v, want ErrNotApproved", err)
		}
	} else if err != nil {
		t.Fatalf("RSA with a local RSA key: %v", err)
	}
	// The same key behind a caller's KEK is not local: refused uncalled.
	ck := &countingKEK{inner: kek}
	if _, err := NewReader(ctx, strings.NewReader(""), ed, Keys(ck), nil); !errors.Is(err, ErrUnwrap) || ck.unwraps.Load() != 0 {
		t.Fatalf("RSA through a caller's KEK: %v after %d calls", err, ck.unwraps.Load())
	}
}
